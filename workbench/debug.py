"""Sampled debug mode: which executions are recorded, and what a recorded one keeps.

Owns the decision the recorder asks for once, when an execution starts (:func:`decide`): from the
``debug`` section of ``workbench.yaml`` (``enabled``, ``features``, ``sampling: {rate, users,
pipelines}``), the ``WORKBENCH_DEBUG_RATE`` environment variable, :func:`force` and the
execution that encloses the new one. It also formats the tracebacks with local variables that
the ``extended_error_details`` feature keeps. It records nothing itself.

* Debug mode off (no ``debug`` section, or ``enabled: false``, and no ``WORKBENCH_DEBUG_RATE``):
  every execution is recorded, whole — workbench as without this module.
* Debug mode on: an execution is recorded when it is *sampled* — always for the listed users
  and pipelines, otherwise when a hash of its id falls under ``rate`` (so the same id gets the
  same answer in every process). A sampled execution records every step, span and call beneath
  it, keeping what ``features`` names; an unsampled one records none of them (no orphan spans),
  but observers — metrics, cost, budgets — still hear of its start, end and model calls, so
  totals do not shrink with the rate.

``features``: ``trace_all_requests`` keeps every ``workbench.span`` and log record;
``log_model_prompts`` keeps model calls' requests and responses; ``save_intermediate_results``
keeps ``workbench.state`` values and step parameters and results; ``extended_error_details``
keeps tracebacks with each frame's local variables. The execution, its steps (status, timings,
errors) and its model calls' provider, model, tokens, cost and timings are always kept.
"""

from __future__ import annotations

import hashlib
import os
import traceback
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, NamedTuple

from workbench.exceptions import ConfigError
from workbench.redaction import REDACTED, _normalise_name

if TYPE_CHECKING:
    from workbench.config import WorkbenchConfig

__all__ = [
    "RATE_ENV",
    "RECORD_ALL",
    "RecordingPlan",
    "decide",
    "force",
    "sampled_by_rate",
    "traceback_with_locals",
]

#: Overrides ``debug.sampling.rate``, and switches debug mode on, for this process.
RATE_ENV = "WORKBENCH_DEBUG_RATE"


@dataclass(frozen=True, slots=True)
class RecordingPlan:
    """What one execution records, decided when it starts.

    ``recording`` false: no row of any kind is written for the execution (observers still hear
    of it). ``sampled`` and ``debug`` are stored on the execution: it was chosen by debug-mode
    sampling (or forced), and it was recorded in debug mode (its ``features`` applied).
    """

    recording: bool
    sampled: bool
    debug: bool
    keep_trace: bool  # workbench.span spans and log records
    keep_prompts: bool  # model calls' request and response bodies
    keep_states: bool  # workbench.state values, step parameters and results
    error_locals: bool  # tracebacks with local variables
    reason: str


#: Debug mode off: everything recorded, as workbench always did.
RECORD_ALL = RecordingPlan(True, False, False, True, True, True, False, "debug mode is off")


class _Forced(NamedTuple):
    sampled: bool
    once: bool


_forced: ContextVar[_Forced | None] = ContextVar("workbench_debug_force", default=None)


class force:
    """Record (``True``) or skip (``False``) executions whatever the sampling says.

    ``workbench.debug.force(True)`` applies to the next execution started in this context (a
    thread, or a task and the tasks it creates); ``with workbench.debug.force(True): ...`` to
    every execution started in the block. ``force(None)`` cancels a pending override. An
    explicit ``workbench.record(..., sampled=...)`` wins over both.
    """

    def __init__(self, sampled: bool | None = True) -> None:
        if sampled is not None and not isinstance(sampled, bool):
            raise ConfigError(
                f"workbench.debug.force() takes True (record), False (skip) or None (cancel), "
                f"got {sampled!r}"
            )
        self.sampled = sampled
        self._token = _forced.set(None if sampled is None else _Forced(sampled, once=True))

    def __enter__(self) -> force:
        _forced.set(None if self.sampled is None else _Forced(self.sampled, once=False))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            _forced.reset(self._token)  # what it was before force() was called
        except ValueError:  # left in another context than entered: clear it there
            _forced.set(None)


class _Mode(NamedTuple):
    """The ``debug`` section compiled for quick decisions (one per configuration and rate)."""

    enabled: bool
    threshold: int  # an id is sampled when its 64-bit hash is below this
    users: frozenset[str]
    pipelines: frozenset[str]
    sampled: RecordingPlan
    unsampled: RecordingPlan


_modes: dict[tuple[int, str | None], tuple[WorkbenchConfig, _Mode]] = {}
_SPACE = 1 << 64


def _env_rate(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        rate = -1.0
    if not 0 <= rate <= 1:
        raise ConfigError(
            f"{RATE_ENV}={text!r} is not a sampling rate; use a number from 0 to 1 (0.1 "
            f"records one execution in ten), or unset it to use debug.sampling.rate"
        )
    return rate


def _mode(config: WorkbenchConfig) -> _Mode:
    env = os.environ.get(RATE_ENV) or None
    key = (id(config), env)
    entry = _modes.get(key)
    if entry is not None and entry[0] is config:
        return entry[1]
    debug = config.debug
    rate = debug.sampling.rate if env is None else _env_rate(env)
    features = frozenset(debug.features)
    enabled = debug.enabled or env is not None
    sampled = RecordingPlan(
        True,
        True,
        True,
        "trace_all_requests" in features,
        "log_model_prompts" in features,
        "save_intermediate_results" in features,
        "extended_error_details" in features,
        "sampled",
    )
    unsampled = RecordingPlan(False, False, True, False, False, False, False, "not sampled")
    mode = _Mode(
        enabled,
        min(int(rate * _SPACE), _SPACE),
        frozenset(debug.sampling.users),
        frozenset(debug.sampling.pipelines),
        sampled,
        unsampled,
    )
    if len(_modes) > 64:  # configurations are few; a test suite may make many
        _modes.clear()
    _modes[key] = (config, mode)
    return mode


def _hash64(execution_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(execution_id.encode(), digest_size=8).digest(), "big")


def sampled_by_rate(execution_id: str, rate: float) -> bool:
    """Whether ``rate`` samples ``execution_id``: the same answer in every process and run."""
    return _hash64(execution_id) < min(int(rate * _SPACE), _SPACE)


def decide(
    config: WorkbenchConfig,
    execution_id: str,
    *,
    user_id: str | None,
    pipeline_id: str,
    requested: bool | None = None,
    parent: RecordingPlan | None = None,
) -> RecordingPlan:
    """What the execution ``execution_id`` records, decided once as it starts.

    In order: ``requested`` (``record(..., sampled=...)``), then :func:`force`, then the listed
    users and pipelines, then the enclosing execution's plan (``parent``), then the rate.
    """
    mode = _mode(config)
    if requested is None:
        forced = _forced.get()
        if forced is not None:
            requested = forced.sampled
            if forced.once:
                _forced.set(None)
    if requested is not None:
        if not requested:
            return mode.unsampled
        return mode.sampled if mode.enabled else _FORCED_WITHOUT_DEBUG
    if not mode.enabled:
        return RECORD_ALL if parent is None else parent
    if user_id is not None and user_id in mode.users:
        return mode.sampled
    if pipeline_id in mode.pipelines:
        return mode.sampled
    if parent is not None:
        return parent
    return mode.sampled if _hash64(execution_id) < mode.threshold else mode.unsampled


_FORCED_WITHOUT_DEBUG = RecordingPlan(True, True, False, True, True, True, False, "forced")

# -- extended_error_details ------------------------------------------------------------------

_MAX_LOCAL = 300  # characters of one local's repr


def traceback_with_locals(exc: BaseException, sensitive: frozenset[str]) -> str:
    """``exc``'s traceback with each frame's local variables, for ``extended_error_details``.

    Variables whose names are in ``sensitive`` (normalised: lower case, ``_`` for ``-``) read
    ``[REDACTED]``; long values are shortened. The caller scrubs known secret values as it
    does for any recorded error text.
    """
    formatted = traceback.TracebackException.from_exception(exc, capture_locals=True)
    seen: set[int] = set()
    pending = [formatted]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        for frame in current.stack:
            if frame.locals:
                frame.locals = {
                    name: REDACTED if _normalise_name(name) in sensitive else _short(value)
                    for name, value in frame.locals.items()
                }
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                pending.append(linked)
        pending.extend(getattr(current, "exceptions", None) or ())
    return "".join(formatted.format())


def _short(text: str) -> str:
    return text if len(text) <= _MAX_LOCAL else f"{text[: _MAX_LOCAL - 1]}…"
