"""Steps: the structure inside an execution.

``@workbench.step`` (decorator or context manager; sync, async, generator and async generator
functions) records rendered parameters, result, error, retries and timings, and makes its end
durable. The light-weight records (spans, states) are ``_span``'s.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, TypeVar

from workbench import _hooks, _ids
from workbench._context import AsyncFromSync, Frame, current
from workbench._json import encode
from workbench._retry import OnRetry, RetryPolicy
from workbench.exceptions import ConfigError, RecordingError
from workbench.recorder._execution import LiveExecution, executions_open, flush_off_loop
from workbench.types import JSON

__all__ = ["ActiveStep", "UnrecordedStep", "frame_or_raise", "render_parameters", "step"]

log = logging.getLogger("workbench")

F = TypeVar("F", bound=Callable[..., Any])
_get_frame = current.get  # a step's first question; a bound method saves the lookup
_MAX_ITEMS = 1_000  # yielded items kept as a generator step's result


def frame_or_raise(what: str, name: str) -> Frame:
    frame = current.get()
    if frame is None:
        raise RecordingError(
            f"{what} {name!r} was used outside an execution; wrap the call in "
            f"`with workbench.record(...)`, or decorate the entrypoint with @workbench.pipeline"
        )
    return frame


class ActiveStep:
    """One running occurrence of a step; the handle ``with workbench.step(...)`` returns."""

    __slots__ = (
        "_params_hash",
        "_parent",
        "_t0",
        "_token",
        "action",
        "events",
        "frame",
        "metrics",
        "occurrence",
        "parameters",
        "result",
        "retries",
        "run",
        "span_id",
        "started_at",
        "step_id",
    )

    def __init__(
        self, step_id: str, action: str | None, parameters: JSON, metrics: tuple[Any, ...] = ()
    ) -> None:
        parent = frame_or_raise("step", step_id)
        self.run: LiveExecution = parent.run
        self.step_id = step_id
        self.action = action
        self.parameters = parameters
        self.result: JSON = None
        self.retries = 0
        self.events: list[dict[str, Any]] = []
        self.metrics = metrics
        self.occurrence = self.run.next_occurrence(step_id)
        self.span_id = _ids.span_id()
        self.started_at = time.time()
        self._t0 = time.perf_counter()
        self.frame = Frame(self.run, self.span_id, self)
        self._token: Any = None
        self._parent = parent
        self._params_hash = (
            self.run.blob(parameters) if parameters is not None and self.run.keep_states else None
        )
        self._write("running", None, None, None, None)
        if self.run.save_all_states:
            self._keep_state("inputs", self._params_hash)

    def _keep_state(self, what: str, digest: str | None) -> None:
        """``<step>.inputs`` / ``<step>.outputs`` as a state: the hash already computed for
        the step row, so ``save_all_states`` stores no value twice."""
        run = self.run
        run.store.put(
            "state",
            (
                run.id,
                self.step_id,
                f"{self.step_id}.{what}",
                run.next_state_seq(),
                digest if digest is not None else run.blob(None),
                time.time(),
            ),
        )

    def set_result(self, value: JSON) -> None:
        self.result = value

    def _write(
        self,
        status: str,
        result_hash: str | None,
        error: str | None,
        ended: float | None,
        duration: float | None,
    ) -> None:
        parent_step = self._parent.step
        self.run.store.put(
            "step",
            (
                self.run.id,
                self.step_id,
                self.occurrence,
                self.span_id,
                parent_step.step_id if parent_step is not None else None,
                self.action,
                self._params_hash,
                result_hash,
                error,
                status,
                self.retries,
                self.started_at,
                ended,
                duration,
            ),
        )

    def enter(self) -> None:
        self._token = current.set(self.frame)

    def leave(self) -> None:
        try:
            current.reset(self._token)
        except ValueError:
            current.set(self._parent)

    async def afinish(self, exc: BaseException | None) -> None:
        """``finish`` for async code: the durable flush waits off the event loop."""
        self.finish(exc, flush=False)
        await flush_off_loop(self.run.store)

    def finish(self, exc: BaseException | None, *, flush: bool = True) -> None:
        ended = time.time()
        duration = time.perf_counter() - self._t0
        run = self.run
        keep = exc is None and self.result is not None and run.keep_states
        result_hash = run.blob(self.result) if keep else None
        error = None if exc is None else run.error_text(exc)
        status = "completed" if exc is None else "failed"
        self._write(status, result_hash, error, ended, duration)
        if exc is None and run.save_all_states:
            self._keep_state("outputs", result_hash)
        run.store.put(
            "span",
            (
                self.span_id,
                run.trace_id,
                self._parent.span_id,
                run.id,
                self.step_id,
                "step",
                encode(
                    {"workbench.step_id": self.step_id, "workbench.occurrence": self.occurrence}
                ),
                run.json_text(self.events) if self.events else None,
                "error" if exc else "ok",
                self.started_at,
                ended,
            ),
        )
        if run.listeners.steps:
            _hooks.step_finished(
                _hooks.StepEvent(
                    run=run,
                    step_id=self.step_id,
                    occurrence=self.occurrence,
                    action=self.action,
                    status=status,
                    duration_s=duration,
                    retries=self.retries,
                    result=self.result,
                    error=exc,
                    metrics=self.metrics,
                )
            )
        if flush:
            run.store.flush_soon()  # a finished step survives a kill -9 of the process


class UnrecordedStep(ActiveStep):
    """A step of an execution that records nothing (debug mode did not sample it).

    It sets the step's frame, so that model calls inside it are attributed to it, and tells
    the observers it ended (metrics count unsampled work too); it writes no row.
    """

    __slots__ = ()

    def __init__(
        self, parent: Frame, step_id: str, action: str | None, metrics: tuple[Any, ...] = ()
    ) -> None:
        run = self.run = parent.run
        self.step_id = step_id
        self.action = action
        self.parameters = None
        self.result = None
        self.retries = 0
        self.events = []
        self.metrics = metrics
        self.occurrence = run.next_occurrence(step_id)
        self.span_id = parent.span_id
        self.frame = Frame(run, parent.span_id, self)
        self._token = None
        self._parent = parent
        self._t0 = time.perf_counter()

    async def afinish(self, exc: BaseException | None) -> None:
        self.finish(exc)

    def finish(self, exc: BaseException | None, *, flush: bool = True) -> None:
        if self.run.listeners.steps:
            _hooks.step_finished(
                _hooks.StepEvent(
                    run=self.run,
                    step_id=self.step_id,
                    occurrence=self.occurrence,
                    action=self.action,
                    status="completed" if exc is None else "failed",
                    duration_s=time.perf_counter() - self._t0,
                    retries=self.retries,
                    result=self.result,
                    error=exc,
                    metrics=self.metrics,
                )
            )


def _begin(
    step_id: str, action: str | None, parameters: Callable[[], JSON], metrics: tuple[Any, ...]
) -> ActiveStep:
    """The running step: recorded, or only timed when its execution records nothing."""
    parent = frame_or_raise("step", step_id)
    run = parent.run
    if not run.recording:
        active: ActiveStep = UnrecordedStep(parent, step_id, action, metrics)
    else:
        active = ActiveStep(step_id, action, parameters() if run.keep_states else None, metrics)
    if run.listeners.steps:
        _hooks.step_started(active)
    return active


def render_parameters(
    signature: inspect.Signature | None, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    if signature is None:
        return {"args": list(args), "kwargs": kwargs}
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError:
        return {"args": list(args), "kwargs": kwargs}
    bound.apply_defaults()
    return dict(bound.arguments)


class step(AsyncFromSync):
    """Record a step: ``@workbench.step("name")``, ``@workbench.step``, or ``with step("name"):``.

    ``retries=N`` re-runs a failing decorated function up to N more times (waiting ``backoff_s``,
    doubled each time) for exceptions in ``retry_on``; the step records how many retries it took.
    ``metrics=[...]`` declares custom metrics the metrics layer evaluates from the step's result.
    """

    def __new__(cls, name: Any = None, **kwargs: Any) -> Any:
        if callable(name):  # bare @workbench.step: return the wrapped function itself
            return cls(None, **kwargs)._decorate(name)
        return super().__new__(cls)

    def __init__(
        self,
        name: str | None = None,
        *,
        action: str | None = None,
        parameters: JSON = None,
        retries: int = 0,
        retry_on: tuple[type[BaseException], ...] = (Exception,),
        backoff_s: float = 0.0,
        metrics: Sequence[Any] = (),
    ) -> None:
        if retries < 0 or backoff_s < 0:
            raise RecordingError(
                f"step retries={retries!r} and backoff_s={backoff_s!r} must be >= 0"
            )
        self.name = name
        self.action = action
        self.parameters = parameters
        self.retries = retries
        self.retry_on = retry_on
        self.backoff_s = backoff_s
        self.retry_policy = RetryPolicy(
            retries=retries, retry_if=lambda exc: isinstance(exc, retry_on), backoff_s=backoff_s
        )
        #: Custom metric declarations evaluated from the step's result by the metrics layer.
        self.metrics = tuple(metrics)

    # -- as a context manager --------------------------------------------------------------

    def __enter__(self) -> ActiveStep:
        if self.name is None:
            raise RecordingError("`with workbench.step(...)` needs a step name, e.g. step('load')")
        if current.get() is None:
            # A decorated function runs unrecorded outside an execution; a block cannot: its
            # handle (set_result, retries, events) and its exit belong to a running step.
            raise RecordingError(
                f"`with workbench.step({self.name!r})` was used outside an execution; a block "
                f"step is a part of a recorded run: wrap it in `with workbench.record(...)`, or "
                f"put its body in a function decorated with @workbench.step, which runs "
                f"unrecorded when no execution is running"
            )
        if self.retries:
            raise RecordingError(
                f"step {self.name!r}: retries= works on a decorated function, not on a `with` "
                f"block (a block cannot be run again); decorate the function instead"
            )
        given = self.parameters
        active = _begin(self.name, self.action, lambda: given, self.metrics)
        if self.name in active.run.step_outputs:
            error = ConfigError(
                f"replay modification step_outputs names {self.name!r}, a `with "
                f"workbench.step(...)` block, whose body cannot be skipped; name a decorated "
                f"step function instead"
            )
            active.finish(error)
            raise error
        active.enter()
        return active

    def _active(self) -> ActiveStep:
        # The step this context entered is the one in its frame: one ``step(...)`` object can
        # be entered by many tasks at once, each in its own context.
        frame = current.get()
        if frame is None or frame.step is None or frame.step.step_id != self.name:
            raise RecordingError(
                f"step {self.name!r} exited in a context it was not entered in; enter and "
                f"exit a step in the same task or thread"
            )
        return frame.step

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        active = self._active()
        active.leave()
        active.finish(exc)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        active = self._active()
        active.leave()
        await active.afinish(exc)

    # -- as a decorator --------------------------------------------------------------------

    def __call__(self, fn: F) -> F:
        return self._decorate(fn)  # type: ignore[return-value]

    def _decorate(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        step_id = self.name or fn.__name__
        try:
            signature: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):
            signature = None
        spec = self

        if self.retries and (inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn)):
            raise RecordingError(
                f"step {step_id!r}: retries= cannot re-run the generator function "
                f"{fn.__qualname__} (its items may already be consumed); retry inside it, or "
                f"around the code that iterates it"
            )

        def start(args: tuple[Any, ...], kwargs: dict[str, Any]) -> ActiveStep:
            return _begin(
                step_id,
                spec.action,
                lambda: render_parameters(signature, args, kwargs),
                spec.metrics,
            )

        if inspect.isasyncgenfunction(fn):

            @functools.wraps(fn)
            async def agen_wrapper(*args: Any, **kwargs: Any) -> Any:
                if _get_frame() is None:  # outside an execution: the items, unrecorded
                    _detached(step_id)
                    plain = fn(*args, **kwargs)
                    given: Any = None
                    raised: BaseException | None = None
                    while True:
                        try:
                            if raised is not None:
                                item = await plain.athrow(raised)
                            else:
                                item = await plain.asend(given)
                        except StopAsyncIteration:
                            return
                        raised = None
                        try:
                            given = yield item
                        except BaseException as exc:  # athrow()/aclose(): the body decides
                            raised = exc
                active = start(args, kwargs)
                replaced = _generator_replacement(active)
                if replaced is not _RUN:  # a replay supplies the items this step yields
                    try:
                        for item in replaced:
                            yield item
                    except BaseException as exc:
                        active.result = replaced
                        await active.afinish(None if isinstance(exc, GeneratorExit) else exc)
                        raise
                    active.result = replaced
                    await active.afinish(None)
                    return
                items: list[Any] = []
                agen = fn(*args, **kwargs)
                sent: Any = None
                thrown: BaseException | None = None
                while True:
                    active.enter()
                    try:
                        if thrown is not None:
                            item = await agen.athrow(thrown)
                        else:
                            item = await agen.asend(sent)
                    except StopAsyncIteration:
                        active.leave()
                        active.result = items
                        await active.afinish(None)
                        return
                    except BaseException as exc:
                        active.leave()
                        await active.afinish(exc)
                        raise
                    active.leave()
                    if len(items) < _MAX_ITEMS:
                        items.append(item)
                    sent, thrown = None, None
                    try:
                        sent = yield item
                    except GeneratorExit:
                        await agen.aclose()
                        active.result = items
                        await active.afinish(None)
                        raise
                    except BaseException as exc:  # athrow(): the generator body decides
                        thrown = exc

            return agen_wrapper

        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
                if _get_frame() is None:  # outside an execution: the items, unrecorded
                    _detached(step_id)
                    return (yield from fn(*args, **kwargs))
                active = start(args, kwargs)
                replaced = _generator_replacement(active)
                if replaced is not _RUN:  # a replay supplies the items this step yields
                    try:
                        yield from replaced
                    except BaseException as exc:
                        active.result = replaced
                        active.finish(None if isinstance(exc, GeneratorExit) else exc)
                        raise
                    active.result = replaced
                    active.finish(None)
                    return None
                items: list[Any] = []
                gen = fn(*args, **kwargs)
                sent: Any = None
                thrown: BaseException | None = None
                while True:
                    # The step's context is set only while the generator body runs, so the
                    # consumer's work between items is not attributed to the step.
                    active.enter()
                    try:
                        item = gen.throw(thrown) if thrown is not None else gen.send(sent)
                    except StopIteration as stop:
                        active.leave()
                        active.result = items
                        active.finish(None)
                        return stop.value
                    except BaseException as exc:
                        active.leave()
                        active.finish(exc)
                        raise
                    active.leave()
                    if len(items) < _MAX_ITEMS:
                        items.append(item)
                    sent, thrown = None, None
                    try:
                        sent = yield item
                    except GeneratorExit:
                        gen.close()
                        active.result = items
                        active.finish(None)
                        raise
                    except BaseException as exc:  # throw(): the generator body decides
                        thrown = exc

            return gen_wrapper

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:

                frame = _get_frame()
                if frame is None:  # outside an execution: the function, its retries, no record
                    _detached(step_id)
                    return await _aretrying(spec, fn, args, kwargs)
                if _unobserved(frame, spec):
                    return await fn(*args, **kwargs)
                active = start(args, kwargs)
                active.enter()

                async def attempt() -> Any:
                    replaced = _replacement(active, generator=False)
                    if replaced is not _RUN:  # a replay supplies this step's output
                        return replaced
                    return await fn(*args, **kwargs)

                try:
                    active.result = await spec.retry_policy.acall(attempt, _on_retry(active))
                except BaseException as exc:
                    active.leave()
                    await active.afinish(exc)
                    raise
                active.leave()
                await active.afinish(None)
                return active.result

            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            frame = _get_frame()
            if frame is None:  # outside an execution: the function, its retries, no record
                _detached(step_id)
                return _retrying(spec, fn, args, kwargs)
            if not frame[0].recording and not spec.retries:
                return _unrecorded_call(frame, step_id, spec, fn, args, kwargs)
            active = start(args, kwargs)
            active.enter()

            def attempt() -> Any:
                replaced = _replacement(active, generator=False)
                if replaced is not _RUN:  # a replay supplies this step's output
                    return replaced
                return fn(*args, **kwargs)

            try:
                active.result = spec.retry_policy.call(attempt, _on_retry(active))
            except BaseException as exc:
                active.leave()
                active.finish(exc)
                raise
            active.leave()
            active.finish(None)
            return active.result

        return wrapper


def _unobserved(frame: Frame, spec: step) -> bool:
    """The step can run as a plain call: its execution records nothing, no observer listens
    to its steps, and it has no retries to count."""
    run = frame[0]
    return not run.recording and not run.listeners.steps and not spec.retries


def _unrecorded_call(
    frame: Frame,
    step_id: str,
    spec: step,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """A sync step of an execution that records nothing: a plain call when nobody listens, a
    timed call when its listeners only count steps (metrics), else timed in its own frame
    (calls inside it are attributed to it) with the full events."""
    run = frame[0]
    listeners = run.listeners
    if not listeners.steps:
        return fn(*args, **kwargs)  # nothing to record and nobody to tell
    tallies = listeners.tallies
    if tallies is not None and not spec.metrics:
        t0 = _perf_counter()
        try:
            result = fn(*args, **kwargs)
        except BaseException:
            _tally(tallies, run, step_id, "failed", _perf_counter() - t0)
            raise
        seconds = _perf_counter() - t0
        for tally in tallies:  # inline: this is the whole cost of an unsampled step
            try:
                tally(run, step_id, "completed", seconds, 0)
            except Exception:  # a metric must never fail the user's pipeline
                log.exception("workbench could not count step %r", step_id)
        return result
    active = UnrecordedStep(frame, step_id, spec.action, spec.metrics)
    _hooks.step_started(active)
    active.enter()
    try:
        active.result = fn(*args, **kwargs)
    except BaseException as exc:
        active.leave()
        active.finish(exc)
        raise
    active.leave()
    active.finish(None)
    return active.result


_warned_detached: set[str] = set()


def _detached(step_id: str) -> None:
    """Warn, once per step, when a step runs outside an execution while one is open: the
    usual cause is a plain thread or executor, which does not inherit the execution."""
    if executions_open() and step_id not in _warned_detached:
        _warned_detached.add(step_id)
        log.warning(
            "workbench: step %r ran unrecorded: no execution in its context, although one is "
            "open in this process; a thread or executor does not inherit it - submit the work "
            "as workbench.carry_context(fn) to record it in that execution",
            step_id,
        )


def _retrying(spec: step, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    """A step's function called outside any execution: retried as declared, nothing kept."""
    return spec.retry_policy.call(lambda: fn(*args, **kwargs))


async def _aretrying(spec: step, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    return await spec.retry_policy.acall(lambda: fn(*args, **kwargs))


def _tally(
    tallies: tuple[Callable[..., None], ...], run: Any, step_id: str, status: str, seconds: float
) -> None:
    for tally in tallies:
        try:
            tally(run, step_id, status, seconds, 0)
        except Exception:  # a metric must never fail the user's pipeline
            log.exception("workbench could not count step %r", step_id)


_perf_counter = time.perf_counter


#: What :func:`_replacement` returns when the step must run: ``None`` is a valid output.
_RUN: Any = object()


def _replacement(active: ActiveStep, *, generator: bool) -> Any:
    """The output a replay gives this step instead of running it, or :data:`_RUN`.

    ``step_outputs`` (by step id, every occurrence) first, then the recorded result of this
    occurrence when the replay starts at a later step (``from_step``).
    """
    run = active.run
    if not run.step_outputs and not run.recorded_steps:
        return _RUN
    if active.step_id in run.step_outputs:
        value = run.step_outputs[active.step_id]
        if generator and not isinstance(value, list):
            raise ConfigError(
                f"replay modification step_outputs[{active.step_id!r}] replaces a generator "
                f"step: give the list of items it should yield, got {value!r}"
            )
        return value
    recorded = run.recorded_steps.get((active.step_id, active.occurrence))
    if recorded is None:
        return _RUN
    # A generator step keeps at most _MAX_ITEMS items: a full list may have been cut short,
    # and running it again is then the only way to get all of them.
    if generator and (not isinstance(recorded.result, list) or len(recorded.result) >= _MAX_ITEMS):
        return _RUN
    run.skip_recorded(recorded)
    return recorded.result


def _generator_replacement(active: ActiveStep) -> Any:
    try:
        return _replacement(active, generator=True)
    except ConfigError as exc:
        active.finish(exc)
        raise


def _on_retry(active: ActiveStep) -> OnRetry:
    """What a retry leaves on the step: its count, and an event naming the failure."""

    def record(exc: BaseException, retry: int, wait_s: float) -> None:
        active.retries += 1
        active.events.append(_retry_event(exc, active.retries))

    return record


def _retry_event(exc: BaseException, attempt: int) -> dict[str, Any]:
    return {
        "name": "retry",
        "time": time.time(),
        "attempt": attempt,
        "error.type": type(exc).__name__,
        "error.message": str(exc),
    }
