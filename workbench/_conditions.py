"""Trigger conditions: the small grammar of ``profiling.triggers[].condition``, and triggers.

Owns :class:`Observation` (what the watchdog sees of an execution at one check), the parser of
condition text into a :class:`Condition` — a comparison of an observed quantity with a number
and a unit, joined by ``and``/``or`` — and :class:`Trigger`, the parsed form of one configured
trigger. It never ``eval``s: text that is not in the grammar is a :class:`ConfigError` naming
the bad part and what is allowed. Python callables ``Callable[[Observation], bool]`` are
accepted wherever a condition is, for what the grammar cannot say.

It does not watch anything (``workbench.profiling._watchdog``) or start profilers. It sits below
both ``workbench.config``, which validates conditions with it when the file is read, and
``workbench.profiling``, which evaluates them: so it imports nothing of workbench but the
exceptions (the layering test holds the configuration, and the store that reads it, below
profiling).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from workbench.exceptions import ConfigError

__all__ = [
    "KINDS",
    "NAMES",
    "Condition",
    "Observation",
    "ProfileKind",
    "Trigger",
    "parse_condition",
    "parse_size",
]

#: What a trigger starts: the configuration's ``types`` (``async_io`` is stored as ``async``).
ProfileKind = Literal["cpu", "memory", "async_io"]
KINDS: tuple[ProfileKind, ...] = ("cpu", "memory", "async_io")


@dataclass(frozen=True, slots=True)
class Observation:
    """What the watchdog sees of one execution at one check; a callable trigger receives it.

    ``step_time`` is how long the execution's longest-running step has been running, or, when
    no step is running, how long the most recently finished one took; ``None`` before the first.
    ``memory_usage`` is the process's resident set size in bytes and ``cpu_percent`` its CPU
    use since the previous check (100 = one core busy); both are ``None`` when no trigger of
    the execution needs them, because sampling them costs a system call each.
    """

    execution_id: str
    pipeline_id: str
    execution_time: float
    step_time: float | None = None
    memory_usage: int | None = None
    cpu_percent: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "execution_time": round(self.execution_time, 6),
            "step_time": self.step_time,
            "memory_usage": self.memory_usage,
            "cpu_percent": self.cpu_percent,
        }


# -- the grammar ------------------------------------------------------------------------------

_TIME_UNITS = {"": 1.0, "s": 1.0, "ms": 1e-3, "m": 60.0, "min": 60.0, "h": 3600.0}
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1024,
    "kib": 1024,
    "mb": 1024**2,
    "mib": 1024**2,
    "gb": 1024**3,
    "gib": 1024**3,
    "tb": 1024**4,
    "tib": 1024**4,
}
_PERCENT_UNITS = {"": 1.0, "%": 1.0}

#: Each observable name, with the units its numbers may carry (lower case; "" = no unit).
NAMES: dict[str, dict[str, float]] = {
    "execution_time": _TIME_UNITS,
    "step_time": _TIME_UNITS,
    "memory_usage": {unit: float(factor) for unit, factor in _SIZE_UNITS.items()},
    "cpu_percent": _PERCENT_UNITS,
}
_UNIT_HELP = {
    "execution_time": "ms, s, m or h (a bare number is seconds)",
    "step_time": "ms, s, m or h (a bare number is seconds)",
    "memory_usage": "B, KB, MB, GB or TB, powers of 1024 (a bare number is bytes)",
    "cpu_percent": "% or none (100 is one core busy)",
}
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
_COMPARISON = re.compile(
    r"""^\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*
        (?P<op>>=|<=|==|!=|>|<)\s*
        (?P<number>\d+(?:\.\d*)?|\.\d+)\s*
        (?P<unit>[A-Za-z%]*)\s*$""",
    re.VERBOSE,
)
_JOINER = re.compile(r"\s+(and|or)\b\s*", re.IGNORECASE)
_EXAMPLES = "'execution_time > 60', 'memory_usage > 1GB', 'step_time >= 500ms and cpu_percent > 90'"


@dataclass(frozen=True, slots=True)
class _Comparison:
    name: str
    op: str
    value: float  # in seconds, bytes or percent

    def holds(self, observation: Observation) -> bool:
        seen = getattr(observation, self.name)
        return seen is not None and _OPS[self.op](seen, self.value)


class Condition:
    """A parsed condition; call it with an :class:`Observation`.

    ``and`` binds tighter than ``or``, as in Python; there are no parentheses. A quantity that
    was not observed (``step_time`` before any step ended) makes its comparison false.
    """

    __slots__ = ("_any_of", "names", "text")

    def __init__(self, text: str, any_of: Sequence[Sequence[_Comparison]]) -> None:
        self.text = text
        self._any_of = tuple(tuple(group) for group in any_of)
        #: The observed quantities the condition reads (the watchdog samples only those).
        self.names = frozenset(c.name for group in self._any_of for c in group)

    def __call__(self, observation: Observation) -> bool:
        return any(all(c.holds(observation) for c in group) for group in self._any_of)

    def __repr__(self) -> str:
        return f"Condition({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Condition) and other._any_of == self._any_of

    def __hash__(self) -> int:
        return hash(self._any_of)


def parse_condition(text: str) -> Condition:
    """Parse ``text`` (e.g. ``"memory_usage > 1GB"``); raises :class:`ConfigError` if it is not
    in the grammar, naming the part that is not and what is allowed there."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(
            f"trigger condition {text!r} is empty; write a comparison such as {_EXAMPLES}"
        )
    groups: list[list[_Comparison]] = [[]]
    parts = _JOINER.split(text.strip())
    # re.split with one group alternates: comparison, joiner, comparison, ...
    for index, part in enumerate(parts):
        if index % 2:
            if part.lower() == "or":
                groups.append([])
            continue
        groups[-1].append(_comparison(text, part))
    return Condition(text.strip(), groups)


def _comparison(text: str, part: str) -> _Comparison:
    match = _COMPARISON.match(part)
    if match is None:
        raise ConfigError(
            f"trigger condition {text!r}: {part.strip()!r} is not a comparison; write NAME OP "
            f"NUMBER[UNIT] with NAME one of {', '.join(NAMES)}, OP one of "
            f"{' '.join(_OPS)}, joined by 'and'/'or', e.g. {_EXAMPLES}"
        )
    name, op, number, unit = match["name"], match["op"], match["number"], match["unit"]
    units = NAMES.get(name)
    if units is None:
        raise ConfigError(
            f"trigger condition {text!r}: unknown quantity {name!r}; use one of {', '.join(NAMES)}"
        )
    factor = units.get(unit.lower())
    if factor is None:
        raise ConfigError(
            f"trigger condition {text!r}: unit {unit!r} does not fit {name}; use {_UNIT_HELP[name]}"
        )
    return _Comparison(name, op, float(number) * factor)


_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*$")


def parse_size(text: str | int | float) -> int:
    """``"200 MB"`` -> bytes (powers of 1024, as in the conditions); a number is bytes."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        if text < 0:
            raise ConfigError(f"memory size {text!r} is negative; give a size such as '200 MB'")
        return int(text)
    match = _SIZE.match(text) if isinstance(text, str) else None
    factor = _SIZE_UNITS.get(match[2].lower()) if match else None
    if match is None or factor is None:
        raise ConfigError(
            f"memory size {text!r} is not a size; write a number with B, KB, MB, GB or TB "
            f"(powers of 1024), e.g. '200 MB'"
        )
    return int(float(match[1]) * factor)


# -- triggers ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Trigger:
    """One configured trigger, parsed: when ``condition`` holds, start ``kinds`` for
    ``duration_s`` seconds (``None``: until the execution ends). It fires once per execution."""

    condition: Callable[[Observation], bool]
    kinds: tuple[ProfileKind, ...]
    duration_s: float | None
    heap_dump: bool = False

    @property
    def label(self) -> str:
        """How the profile names its trigger: the condition's text, or the callable's name."""
        if isinstance(self.condition, Condition):
            return self.condition.text
        name = getattr(self.condition, "__qualname__", None) or type(self.condition).__name__
        module = getattr(self.condition, "__module__", None)
        return f"callable {module}.{name}" if module else f"callable {name}"

    @property
    def names(self) -> frozenset[str]:
        """What the condition reads; a callable may read anything."""
        if isinstance(self.condition, Condition):
            return self.condition.names
        return frozenset(NAMES)

    @classmethod
    def from_config(cls, trigger: Any, types: Sequence[ProfileKind]) -> Trigger:
        """From a ``ProfilingTriggerConfig`` (validated: its kinds are among ``types``)."""
        condition = trigger.condition
        if isinstance(condition, str):
            condition = parse_condition(condition)
        kinds = trigger.profile_type
        if kinds is None:
            kinds = [types[0]] if types else ["cpu"]
        elif isinstance(kinds, str):
            kinds = [kinds]
        return cls(
            condition, tuple(dict.fromkeys(kinds)), trigger.profile_duration, trigger.heap_dump
        )
