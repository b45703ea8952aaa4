"""Observers of recorded executions: how metrics, budgets and profilers hear about a run.

The recorder and capture call these functions at fixed points (an execution starts or ends, a
step ends, a model call is about to be sent or has been analysed); the subsystems above the
recorder — monitoring, profiling — register an :class:`Observer` and act. The recorder never
imports them: the built-in observers are named here by import path and loaded once, at the
first ``workbench.record``, like entry points.

An observer that raises :class:`~workbench.exceptions.CallRefused` (a budget's ``stop``)
from ``model_call_starting`` stops that call; any other exception, from any method, is logged
and swallowed, because a metric, a store hiccup or a profiler must never fail the user's
pipeline.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench._imports import import_function
from workbench.exceptions import CallRefused

if TYPE_CHECKING:
    from workbench.config import WorkbenchConfig

__all__ = [
    "NOBODY",
    "Listeners",
    "ModelCallEvent",
    "Observer",
    "StepEvent",
    "add_observer",
    "execution_finished",
    "execution_started",
    "listeners",
    "load_builtin_observers",
    "model_call_finished",
    "model_call_starting",
    "observers",
    "remove_observer",
    "step_finished",
    "step_started",
]

log = logging.getLogger("workbench")

#: ``module:function`` of each built-in observer factory, called once with the configuration
#: at the first execution; it returns an :class:`Observer` or ``None`` (switched off).
BUILTIN: tuple[str, ...] = (
    "workbench.monitoring.prometheus._builtin:observer",
    "workbench.monitoring.cost._budget:observer",
    "workbench.profiling._watchdog:observer",
    "workbench.monitoring.tracing._otel:tracing_observer",
    "workbench.monitoring.alerts._alerts:budget_alert_router",
)


# Events are built for every step and call, so they are plain slotted dataclasses: a frozen
# one pays ``object.__setattr__`` per field. Observers must treat them as read-only.
@dataclass(slots=True)
class StepEvent:
    """A step occurrence that ended (``status`` is ``completed`` or ``failed``)."""

    run: Any  # LiveExecution: typed loosely so this module stays below the recorder
    step_id: str
    occurrence: int
    action: str | None
    status: str
    duration_s: float
    retries: int
    result: Any  # the step's return value (not redacted: for custom metrics only)
    error: BaseException | None
    metrics: tuple[Any, ...]  # the step's ``metrics=[...]`` declarations


@dataclass(slots=True)
class ModelCallEvent:
    """A model call, analysed on the store's writer thread (tokens and price known)."""

    run: Any  # LiveExecution
    call_id: str
    step_id: str | None
    provider: str | None
    model: str | None
    operation: str | None
    status_code: int | None
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    cost_usd: float | None
    latency_s: float
    ttft_s: float | None
    error: str | None  # the transport error or the stream error, if any
    replayed: bool  # answered from a recording: nothing was sent or paid for


class Observer:
    """Override what you need; every method is called with the recorder's state at that point."""

    def execution_started(self, run: Any) -> None:
        """``run`` (a ``LiveExecution``) has just written its first row."""

    def execution_finished(self, run: Any) -> None:
        """``run.status`` and ``run.duration_s`` are set; its rows are queued."""

    def step_started(self, step: Any) -> None:
        """A step occurrence began, on the thread that runs it (``step`` is the recorder's
        ``ActiveStep``: ``run``, ``step_id``, ``occurrence``); the same ``step`` object ends
        in :meth:`step_finished`'s event as ``step_id``/``occurrence`` of ``run``."""

    def step_finished(self, event: StepEvent) -> None:
        """A step ended, on the thread that ran it."""

    def model_call_starting(self, run: Any, method: str, url: str, canonical: Any) -> None:
        """On the caller's thread before the request leaves; raise ``CallRefused`` to stop it."""

    def model_call_finished(self, event: ModelCallEvent) -> None:
        """On the writer thread, where the call is analysed: keep it short. It may come after
        :meth:`execution_finished` of the call's run (the caller's path never waits for it)."""

    # -- what an observer listens to, asked once per execution --------------------------------

    def wants_steps(self, run: Any) -> bool:
        """Whether ``run``'s step events are for this observer (asked when ``run`` starts, after
        :meth:`execution_started`). Say no when there is nothing to do: the run's steps then
        cost this observer nothing. Only asked of an observer that overrides a step method."""
        return True

    def wants_model_calls(self, run: Any) -> bool:
        """As :meth:`wants_steps`, for ``run``'s model-call events."""
        return True

    def step_tally(self, run: Any) -> Callable[[Any, str, str, float, int], None] | None:
        """A cheap counter for the steps of ``run`` when it records nothing (debug mode did not
        sample it), or ``None`` for the full :meth:`step_started`/:meth:`step_finished` events.

        When every observer listening to an unrecorded run's steps offers one, each such step
        runs as a plain timed call that calls ``tally(run, step_id, status, duration_s,
        retries)`` and builds no step object, frame or event.
        """
        return None


_STEP_METHODS = ("step_started", "step_finished")
_CALL_METHODS = ("model_call_starting", "model_call_finished")


def _overrides(observer: Any, methods: tuple[str, ...]) -> bool:
    kind = type(observer)
    return any(getattr(kind, m, None) is not getattr(Observer, m) for m in methods)


@dataclass(frozen=True, slots=True)
class Listeners:
    """Who hears one execution's events, fixed when it starts (``LiveExecution.listeners``)."""

    steps: tuple[Observer, ...] = ()
    calls: tuple[Observer, ...] = ()
    #: One tally per step listener when all offer one, else ``None`` (see ``step_tally``).
    tallies: tuple[Callable[..., None], ...] | None = ()


#: An execution nobody listens to.
NOBODY = Listeners()


def listeners(run: Any) -> Listeners:
    """The observers that want ``run``'s step and model-call events, asked once."""
    steps = tuple(o for o in _observers if _overrides(o, _STEP_METHODS) and _wants(o, run, True))
    calls = tuple(o for o in _observers if _overrides(o, _CALL_METHODS) and _wants(o, run, False))
    if not steps and not calls:
        return NOBODY
    tallies: list[Callable[..., None]] = []
    for observer in steps:
        tally = _asked(observer, "step_tally", run)
        if tally is None:
            return Listeners(steps, calls, None)
        tallies.append(tally)
    return Listeners(steps, calls, tuple(tallies))


def _wants(observer: Any, run: Any, steps: bool) -> bool:
    answer = _asked(observer, "wants_steps" if steps else "wants_model_calls", run)
    return True if answer is None else bool(answer)


def _asked(observer: Any, method: str, run: Any) -> Any:
    ask = getattr(observer, method, None)  # an observer need not subclass Observer
    if ask is None:
        return None
    try:
        return ask(run)
    except Exception:  # a broken answer must not lose the events: hear them, as before
        log.exception("workbench observer %r failed in %s", observer, method)
        return None


_observers: tuple[Observer, ...] = ()
_lock = threading.Lock()
_build_lock = threading.Lock()
_builtin_loaded = False


def observers() -> tuple[Observer, ...]:
    return _observers


def add_observer(observer: Observer) -> None:
    global _observers
    with _lock:
        if observer not in _observers:
            _observers = (*_observers, observer)


def remove_observer(observer: Observer) -> None:
    global _observers
    with _lock:
        _observers = tuple(o for o in _observers if o is not observer)


def load_builtin_observers(config: WorkbenchConfig) -> None:
    """Create the built-in observers once per process (the first execution's configuration).

    Each factory stands alone: one that fails (an optional extra missing, a bad section) is
    logged and the others are still installed — a tracing problem must not switch budgets
    off. The first such error is then raised, once, to the execution that loaded them.
    """
    global _builtin_loaded
    if _builtin_loaded:
        return
    failure: BaseException | None = None
    with _build_lock:  # a second first execution waits until the observers are in place
        if _builtin_loaded:
            return
        for target in BUILTIN:
            try:
                factory: Callable[[WorkbenchConfig], Observer | None] = import_function(target)
                observer = factory(config)
            except Exception as exc:
                log.error("workbench could not start the built-in observer %s: %s", target, exc)
                failure = failure or exc
                continue
            if observer is not None:
                add_observer(observer)
        _builtin_loaded = True
    if failure is not None:
        raise failure


def _each(method: str, *args: Any, among: tuple[Observer, ...] | None = None) -> None:
    for observer in _observers if among is None else among:
        try:
            getattr(observer, method)(*args)
        except Exception:
            log.exception("workbench observer %r failed in %s", observer, method)


def execution_started(run: Any) -> None:
    if _observers:
        _each("execution_started", run)


def execution_finished(run: Any) -> None:
    if _observers:
        _each("execution_finished", run)


def step_started(step: Any) -> None:
    _each("step_started", step, among=step.run.listeners.steps)


def step_finished(event: StepEvent) -> None:
    _each("step_finished", event, among=event.run.listeners.steps)


def model_call_starting(run: Any, method: str, url: str, canonical: Any) -> None:
    for observer in run.listeners.calls:
        try:
            observer.model_call_starting(run, method, url, canonical)
        except CallRefused:
            raise  # a budget's "stop": the call must not leave
        except Exception:
            log.exception("workbench observer %r failed in model_call_starting", observer)


def model_call_finished(event: ModelCallEvent) -> None:
    _each("model_call_finished", event, among=event.run.listeners.calls)
