"""The result of comparing two executions: :class:`Difference`, :class:`Delta`,
:class:`DiffSummary` and :class:`ExecutionDiff`.

Owns these records, their filtering (:meth:`ExecutionDiff.only`) and the stable JSON schema of
:meth:`ExecutionDiff.to_json`; how they are drawn is :mod:`._html`'s and :mod:`._rich`'s
business, how they are found the engine's. No deepdiff object appears here.

JSON schema (``"schema": "workbench.diff/1"``; keys are only ever added, never renamed)::

    {"schema": "workbench.diff/1",
     "equal": bool,                       # no difference that is not ignored
     "a": {"id", "pipeline_id", "pipeline_version", "status"},
     "b": {...same keys...},
     "ignore": [pattern, ...],
     "summary": {"counts": {"added": n, "removed": n, "changed": n},
                 "first_divergent_step": "draft#0" | null,
                 "totals": {"cost_usd" | "tokens_in" | "tokens_out" | "latency_s": delta},
                 "notes": [str, ...]},
     "differences": [{"path", "kind", "step_id", "occurrence", "before", "after",
                      "text_diff": str | null}, ...],
     "deltas": [delta, ...]}

    delta = {"path", "metric", "step_id", "occurrence", "before", "after",
             "absolute": number | null, "relative": number | null}
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from workbench._money import usd
from workbench.diff._text import unified_diff
from workbench.records import Execution
from workbench.types import JSON

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult

__all__ = [
    "CATEGORIES",
    "SCHEMA",
    "Category",
    "Delta",
    "DiffSummary",
    "Difference",
    "ExecutionDiff",
    "Kind",
]

SCHEMA = "workbench.diff/1"

Kind: TypeAlias = Literal["added", "removed", "changed"]
Category: TypeAlias = Literal["outputs", "prompts", "states", "cost", "latency"]
CATEGORIES: tuple[Category, ...] = ("outputs", "prompts", "states", "cost", "latency")

_MIRROR: dict[Kind, Kind] = {"added": "removed", "removed": "added", "changed": "changed"}
_COST_METRICS = frozenset(
    {"cost_usd", "tokens_in", "tokens_out", "cache_read_tokens", "cache_write_tokens"}
)
_LATENCY_METRICS = frozenset({"latency_s", "ttft_s"})
_TOTALS = ("cost_usd", "tokens_in", "tokens_out", "latency_s")


@dataclass(frozen=True, slots=True)
class Difference:
    """One difference in content between run ``a`` (``before``) and run ``b`` (``after``).

    ``path`` is dotted from the execution (``outputs.draft``,
    ``steps.draft#0.model_calls.0.request.body.messages.1.content``); a step is
    ``steps.<step_id>#<occurrence>``. ``before`` is ``None`` for ``added``, ``after`` for
    ``removed``. ``step_id`` and ``occurrence`` name the step the difference is in, if any.
    """

    path: str
    kind: Kind
    before: JSON
    after: JSON
    step_id: str | None = None
    occurrence: int | None = None

    def text_diff(self) -> str | None:
        """A unified (or word) diff when a text changed; ``None`` for any other difference."""
        if self.kind == "changed" and isinstance(self.before, str) and isinstance(self.after, str):
            return unified_diff(self.before, self.after, path=self.path)
        return None

    def mirrored(self) -> Difference:
        """This difference seen from the other run: added is removed, before is after."""
        return replace(self, kind=_MIRROR[self.kind], before=self.after, after=self.before)

    @property
    def within(self) -> str:
        """The path inside its step (or the execution): ``model_calls.0.text``."""
        if self.step_id is None:
            return self.path
        prefix = f"steps.{self.step_id}#{self.occurrence}"
        return self.path[len(prefix) + 1 :]

    def to_json(self) -> dict[str, JSON]:
        return {
            "path": self.path,
            "kind": self.kind,
            "step_id": self.step_id,
            "occurrence": self.occurrence,
            "before": self.before,
            "after": self.after,
            "text_diff": self.text_diff(),
        }


@dataclass(frozen=True, slots=True)
class Delta:
    """A numeric change (cost, tokens, time) between run ``a`` and run ``b``.

    ``None`` is unknown (a model without a price, a call without a first token), not zero: a
    delta with an unknown side has no ``absolute`` nor ``relative`` value.
    """

    path: str
    metric: str
    before: float | None
    after: float | None
    step_id: str | None = None
    occurrence: int | None = None

    @property
    def absolute(self) -> float | None:
        if self.before is None or self.after is None:
            return None
        return self.after - self.before

    @property
    def relative(self) -> float | None:
        """``absolute / before``; ``None`` when ``before`` is unknown or zero."""
        absolute = self.absolute
        if absolute is None or not self.before:
            return None
        return absolute / self.before

    def mirrored(self) -> Delta:
        return replace(self, before=self.after, after=self.before)

    def to_json(self) -> dict[str, JSON]:
        return {
            "path": self.path,
            "metric": self.metric,
            "step_id": self.step_id,
            "occurrence": self.occurrence,
            "before": self.before,
            "after": self.after,
            "absolute": self.absolute,
            "relative": self.relative,
        }


@dataclass(frozen=True, slots=True)
class DiffSummary:
    """What a reader wants first: how many differences of each kind, the totals' deltas, the
    first step where the runs diverge, and notes (different pipelines, unfinished runs)."""

    counts: dict[Kind, int]
    first_divergent_step: str | None
    totals: dict[str, Delta]
    notes: list[str]

    def to_json(self) -> dict[str, JSON]:
        return {
            "counts": dict(self.counts),
            "first_divergent_step": self.first_divergent_step,
            "totals": {name: delta.to_json() for name, delta in self.totals.items()},
            "notes": list(self.notes),
        }

    def __str__(self) -> str:
        counts = ", ".join(f"{n} {kind}" for kind, n in self.counts.items())
        lines = [f"differences: {counts}"]
        lines.append(f"first divergent step: {self.first_divergent_step or '-'}")
        for name, delta in self.totals.items():
            lines.append(f"{name}: {format_delta(delta)}")
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)


def format_number(value: float | None, metric: str = "") -> str:
    """A metric's value for reading; ``unknown`` for ``None`` (unknown is not zero)."""
    if value is None:
        return "unknown"
    if metric == "cost_usd":  # significant digits: a change of one token costs millionths
        return usd(value)
    if metric.endswith("_s"):
        return f"{value:.3f}s"
    return f"{value:g}" if isinstance(value, float) else str(value)


def format_delta(delta: Delta) -> str:
    """``$0.000104 -> $0.000120 (+$0.000016, +15.4%)``."""
    text = (
        f"{format_number(delta.before, delta.metric)} -> {format_number(delta.after, delta.metric)}"
    )
    absolute, relative = delta.absolute, delta.relative
    if absolute is None:
        return text
    sign = "+" if absolute >= 0 else "-"
    change = f"{sign}{format_number(abs(absolute), delta.metric)}"
    if relative is not None:
        change += f", {relative:+.1%}"
    return f"{text} ({change})"


def _category(difference: Difference, category: Category) -> bool:
    parts = difference.within.split(".")
    if category == "outputs":
        return parts[0] == ("result" if difference.step_id is not None else "outputs")
    if category == "prompts":
        return len(parts) > 2 and parts[0] == "model_calls" and parts[2] == "request"
    if category == "states":
        return parts[0] == "states"
    return False  # cost and latency are deltas, never content


@dataclass(frozen=True, slots=True)
class ExecutionDiff:
    """How run ``b`` differs from run ``a``: content differences and numeric deltas.

    ``bool(diff)`` is true when the runs differ in content not ignored; cost, tokens and time
    are in :attr:`deltas` and do not make two runs different on their own.
    """

    a: Execution
    b: Execution
    differences: list[Difference]
    deltas: list[Delta]
    ignore: tuple[str, ...] = ()
    #: step key -> position in the two runs' merged step order (for the first divergent step)
    step_order: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __bool__(self) -> bool:
        return bool(self.differences)

    @property
    def first_divergent_step(self) -> str | None:
        """The first step (``"draft#0"``) that differs in content, was added or was removed."""
        keys = {f"{d.step_id}#{d.occurrence}" for d in self.differences if d.step_id is not None}
        if not keys:
            return None
        return min(keys, key=lambda key: (self.step_order.get(key, len(self.step_order)), key))

    def summary(self) -> DiffSummary:
        counts: dict[Kind, int] = {"added": 0, "removed": 0, "changed": 0}
        for difference in self.differences:
            counts[difference.kind] += 1
        totals = {
            metric: Delta(
                metric,
                metric,
                _total(self.a, metric),
                _total(self.b, metric),
            )
            for metric in _TOTALS
        }
        return DiffSummary(counts, self.first_divergent_step, totals, self._notes())

    def _notes(self) -> list[str]:
        a, b = self.a, self.b
        notes = []
        if a.pipeline_id != b.pipeline_id:
            notes.append(
                f"the runs are of different pipelines ({a.pipeline_id!r} and {b.pipeline_id!r}):"
                " their differences include what the pipelines do differently"
            )
        elif a.pipeline_version != b.pipeline_version:
            notes.append(
                f"the runs are of different versions of {a.pipeline_id!r} "
                f"({a.pipeline_version!r} and {b.pipeline_version!r})"
            )
        for run in (a, b):
            if run.status in ("running", "interrupted"):
                notes.append(f"{run.id} is {run.status}: it may not have recorded everything")
        if b.replay_of == a.id:
            notes.append(f"{b.id} is a replay of {a.id}")
        elif a.replay_of == b.id:
            notes.append(f"{a.id} is a replay of {b.id}")
        return notes

    def only(self, category: Category) -> ExecutionDiff:
        """The part of this diff in one category: ``outputs`` (execution outputs and step
        results), ``prompts`` (model call requests), ``states``, ``cost`` (cost and token
        deltas) or ``latency`` (time deltas)."""
        if category not in CATEGORIES:
            raise ValueError(f"unknown category {category!r}; use one of {', '.join(CATEGORIES)}")
        differences = [d for d in self.differences if _category(d, category)]
        if category == "cost":
            deltas = [d for d in self.deltas if d.metric in _COST_METRICS]
        elif category == "latency":
            deltas = [d for d in self.deltas if d.metric in _LATENCY_METRICS]
        else:
            deltas = []
        return replace(self, differences=differences, deltas=deltas)

    def mirrored(self) -> ExecutionDiff:
        """This diff as ``compare_executions(b, a)`` would give it."""
        return replace(
            self,
            a=self.b,
            b=self.a,
            differences=[d.mirrored() for d in self.differences],
            deltas=[d.mirrored() for d in self.deltas],
        )

    def to_json(self) -> dict[str, JSON]:
        """The diff as JSON-ready values, in the schema of this module's docstring."""
        return {
            "schema": SCHEMA,
            "equal": not self,
            "a": _run_json(self.a),
            "b": _run_json(self.b),
            "ignore": list(self.ignore),
            "summary": self.summary().to_json(),
            "differences": [d.to_json() for d in self.differences],
            "deltas": [d.to_json() for d in self.deltas],
        }

    def _repr_html_(self) -> str:
        from workbench.diff._html import diff_html

        return diff_html(self)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from workbench.diff._rich import diff_renderable

        # Without colour (piped, NO_COLOR) the words removed and added are marked in the text.
        yield diff_renderable(self, marked=console.no_color or console.color_system is None)


def _total(run: Execution, metric: str) -> float | None:
    value: Any = run.duration_s if metric == "latency_s" else getattr(run, metric)
    return value if isinstance(value, int | float) else None


def _run_json(run: Execution) -> dict[str, JSON]:
    return {
        "id": run.id,
        "pipeline_id": run.pipeline_id,
        "pipeline_version": run.pipeline_version,
        "status": run.status,
    }
