"""Executions: ``workbench.record(...)`` and the live handle it returns.

Owns an execution's life: its row at start (status ``running``, with the pid that owns it, so a
killed process's run reads ``interrupted``; committed before ``record()`` returns its handle, so
a ``kill -9`` at any later moment leaves the execution in the store), its outputs, and its end
(status, success, error, the root span, a durable flush). Those flushes wait for the store only
briefly (``Store.flush_soon``): under contention recording lags rather than the application.
Steps, spans and states are in ``_step``; capture of model calls
in ``workbench.capture``; the SQL in the store.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Any

from workbench import _hooks, _ids
from workbench._context import AsyncFromSync, Frame, current
from workbench._json import encode
from workbench.config import load_config
from workbench.debug import RecordingPlan, traceback_with_locals
from workbench.debug import decide as decide_sampling
from workbench.exceptions import RecordingError
from workbench.records import ErrorInfo, Execution
from workbench.redaction import (
    encode_redacted,
    remember_environment,
    sensitive_names_for,
)
from workbench.store import Store, install_sigterm_handler, open_store, owner_stamp
from workbench.types import JSON

__all__ = ["LiveExecution", "RecordedStep", "record"]


@dataclass(frozen=True, slots=True)
class RecordedStep:
    """A step a replay answers from the recording instead of running it (``from_step``).

    ``inner_steps`` and ``inner_requests`` are the step ids and request keys recorded inside
    it: skipping the step skips them too, so their occurrence counters are advanced as if they
    had run, and later steps and requests keep the numbers they had in the recording.
    """

    result: Any
    inner_steps: tuple[str, ...] = ()
    inner_requests: tuple[str, ...] = ()


@cache
def code_version() -> str | None:
    """The git commit of the working directory, read from ``.git`` (no subprocess)."""
    for folder in (Path.cwd(), *Path.cwd().parents):
        git = folder / ".git"
        if not git.is_dir():
            continue
        try:
            head = (git / "HEAD").read_text().strip()
            if not head.startswith("ref: "):
                return f"git:{head[:12]}"
            ref = head[5:]
            ref_file = git / ref
            if ref_file.is_file():
                return f"git:{ref_file.read_text().strip()[:12]}"
            packed = git / "packed-refs"
            if packed.is_file():
                for line in packed.read_text().splitlines():
                    if line.endswith(" " + ref):
                        return f"git:{line[:12]}"
        except OSError:
            return None
        return None
    return None


_INTERRUPTING = (KeyboardInterrupt, SystemExit, GeneratorExit, asyncio.CancelledError)


async def flush_off_loop(store: Store) -> None:
    """Wait for a durable flush without blocking the event loop (other tasks keep running)."""
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, store.flush_soon)


class LiveExecution:
    """The execution being recorded. Read its ``id``; set ``outputs`` or ``success`` on it."""

    def __init__(
        self,
        store: Store,
        pipeline_id: str,
        *,
        inputs: JSON,
        user_id: str | None = None,
        session_id: str | None = None,
        environment: str | None = None,
        metadata: dict[str, Any] | None = None,
        pipeline_version: str | None = None,
        entrypoint: str | None = None,
        replay_of: str | None = None,
        modifications: dict[str, Any] | None = None,
        sampled: bool | None = None,
        debug: bool = False,
    ) -> None:
        if not isinstance(pipeline_id, str) or not pipeline_id:
            raise RecordingError(
                f"pipeline_id must be a non-empty string naming the pipeline, got {pipeline_id!r}"
            )
        config = load_config()
        self.store = store
        self.id = _ids.execution_id()
        parent = current.get()
        # Sampled debug mode (see ``workbench.debug``) decides once, here, what this execution
        # records: everything beneath it follows that decision.
        plan = decide_sampling(
            config,
            self.id,
            user_id=user_id,
            pipeline_id=pipeline_id,
            requested=True if replay_of is not None else sampled,
            parent=parent.run.plan if parent is not None else None,
        )
        #: What this execution records (a :class:`workbench.debug.RecordingPlan`).
        self.plan: RecordingPlan = plan
        #: False for an execution debug mode did not sample: no row of any kind is written for
        #: it, but observers still hear of its start, end and model calls (metrics, cost).
        self.recording = plan.recording
        self.keep_trace = plan.keep_trace
        self.keep_states = plan.keep_states
        self.keep_prompts = plan.keep_prompts
        if plan.recording:
            remember_environment()  # keys set after import, e.g. by a test or a secrets manager
        self.trace_id = _ids.trace_id()
        self.root_span_id = _ids.span_id()
        self.pipeline_id = pipeline_id
        self.pipeline_version = pipeline_version
        self.entrypoint = entrypoint
        self.inputs = inputs
        self.user_id = user_id
        #: The conversation this run belongs to (a chat session, a thread): exported as
        #: ``session.id`` and ``gen_ai.conversation.id``, so a backend groups its runs.
        self.session_id = session_id
        self.environment = environment
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.replay_of = replay_of
        self.modifications = dict(modifications or {})
        self.sampled = plan.sampled
        self.debug = debug or plan.debug
        self.started_at = time.time()
        self.outputs: JSON = None
        #: Set to judge the run yourself; otherwise success is "completed without an error".
        self.success: bool | None = None
        self.status = "running"
        #: Wall-clock seconds from start to finish; set when the execution finishes.
        self.duration_s: float | None = None
        self.sensitive = sensitive_names_for(config)
        #: Span attribute names seen in this run, and whether each names a secret.
        self.attribute_names: dict[str, bool] = {}
        self.volatile_fields = tuple(config.capture.volatile_fields)
        self.capture_enabled = config.capture.enabled
        self.config = config
        self._t0 = time.perf_counter()
        self._step_counts: dict[str, Iterator[int]] = {}
        self._request_counts: dict[str, Iterator[int]] = {}
        self._state_seq = itertools.count()
        self._lock = threading.Lock()
        self._open_calls: set[Any] = set()
        self._inputs_hash = self.blob(inputs) if plan.recording else None
        #: Set by replay: asked for an answer before each model call is sent (see
        #: ``workbench.capture._call.Interceptor``); ``None`` sends every call for real.
        self.interceptor: Any = None
        #: Who hears this run's steps and model calls, fixed once it has started.
        self.listeners: _hooks.Listeners = _hooks.NOBODY
        #: Set by replay: ``{step_id: value}`` for steps that return ``value`` without running.
        self.step_outputs: dict[str, Any] = {}
        #: Set by replay (``from_step``): steps, by ``(step_id, occurrence)``, that return their
        #: recorded result without running.
        self.recorded_steps: dict[tuple[str, int], RecordedStep] = {}
        #: Set by replay (``save_all_states``): each step's parameters and result are also
        #: kept as the states ``<step>.inputs`` and ``<step>.outputs``.
        self.save_all_states = False
        #: Set by replay: values of ``workbench.now()`` & co., by ``(step_id, state name)``.
        self.recorded_values: dict[tuple[str | None, str], Any] = {}
        #: Helper calls of a replay that the recording had no value for (a real one was used).
        self.fresh_values: list[str] = []
        self._value_counts: dict[str, Iterator[int]] = {}
        #: Queue one row for the writer with no wake-up check: the span hot path.
        self.enqueue = store.enqueue
        self.queue = store.backlog

    def __repr__(self) -> str:
        return f"<LiveExecution {self.id} {self.pipeline_id!r} {self.status}>"

    # -- used by steps and capture ---------------------------------------------------------

    def blob(self, value: Any) -> str:
        """Store ``value`` once, secrets redacted; returns its hash."""
        return self.store.blob_bytes(encode_redacted(value, self.sensitive))

    def json_text(self, value: Any) -> str:
        """``value`` as JSON text for a column, secrets redacted and scrubbed."""
        return encode_redacted(value, self.sensitive).decode()

    def error_text(self, exc: BaseException) -> str:
        """An exception as JSON text for an ``error`` column, with no secret in its message."""
        info = ErrorInfo.from_exception(exc)
        if self.plan.error_locals:  # debug mode's extended_error_details
            info = ErrorInfo(info.type, info.message, traceback_with_locals(exc, self.sensitive))
        return self.json_text(info.to_json())

    def next_occurrence(self, step_id: str) -> int:
        """0 for a step's first run in this execution, 1 for its second, ..."""
        return self._next(self._step_counts, step_id)

    def next_request_occurrence(self, request_key: str) -> int:
        """The n-th identical request of this execution gets n (replay answers it in order)."""
        return self._next(self._request_counts, request_key)

    def _next(self, counts: dict[str, Iterator[int]], key: str) -> int:
        counter = counts.get(key)
        if counter is None:
            with self._lock:
                counter = counts.setdefault(key, itertools.count())
        return next(counter)  # itertools.count is atomic under the GIL

    def next_value_index(self, key: str) -> int:
        """The n-th call of one determinism helper in one step occurrence gets n."""
        return self._next(self._value_counts, key)

    def skip_recorded(self, recorded: RecordedStep) -> None:
        """Count what ran inside a step answered from the recording, as if it ran again."""
        for step_id in recorded.inner_steps:
            self.next_occurrence(step_id)
        for key in recorded.inner_requests:
            self.next_request_occurrence(key)

    def next_state_seq(self) -> int:
        return next(self._state_seq)

    def open_call(self, call: Any) -> None:
        with self._lock:
            self._open_calls.add(call)

    def close_call(self, call: Any) -> None:
        with self._lock:
            self._open_calls.discard(call)

    # -- the row ---------------------------------------------------------------------------

    def write_row(self) -> None:
        """(Re)write the execution row; the store replaces it, so later marks overwrite."""
        if not self.recording:
            return
        self.store.put(
            "exec",
            (
                self.id,
                self.pipeline_id,
                self.pipeline_version,
                self.entrypoint,
                self._inputs_hash,
                None,
                "running",
                None,
                None,
                self.user_id,
                self.session_id,
                self.environment,
                int(self.sampled),
                int(self.debug),
                self.started_at,
                None,
                None,
                None,
                0,
                0,
                self.replay_of,
                self.json_text(self.modifications),
                code_version(),
                self.json_text(self.metadata),
                self.trace_id,
                *owner_stamp(),
                None,  # experiment_id: a replay is tagged once its experiment keeps its run
            ),
        )

    def mark_entrypoint(
        self, entrypoint: str, arguments: dict[str, Any], version: str | None = None
    ) -> None:
        """Called by ``@workbench.pipeline``: remember what to call to run this again."""
        self.entrypoint = entrypoint
        if self.pipeline_version is None:
            self.pipeline_version = version
        if self.inputs in (None, {}):
            self.inputs = arguments
            if self.recording:
                self._inputs_hash = self.blob(arguments)
        else:
            self.metadata["entrypoint_arguments"] = arguments
        self.write_row()

    def set_output(self, value: JSON) -> None:
        self.outputs = value

    def execution(self) -> Execution:
        """Everything recorded so far, read back from the store."""
        if not self.recording:
            raise RecordingError(
                f"execution {self.id} was not recorded: debug mode did not sample it "
                f"({self.plan.reason}; see debug.sampling in workbench.yaml). Force one with "
                f"workbench.debug.force(True) or record(..., sampled=True)"
            )
        return self.store.get_execution(self.id)

    def finish(self, exc: BaseException | None, *, flush: bool = True) -> None:
        with self._lock:
            pending = list(self._open_calls)
        for call in pending:
            call.abandon()
        if exc is None:
            self.status = "completed"
        elif isinstance(exc, _INTERRUPTING):
            self.status = "interrupted"
        else:
            self.status = "failed"
        success = self.success
        if success is None and self.status != "interrupted":
            success = self.status == "completed"
        ended = time.time()
        duration = self.duration_s = time.perf_counter() - self._t0
        if not self.recording:  # counted by the observers, never written
            _hooks.execution_finished(self)
            return
        error = None if exc is None else self.error_text(exc)
        outputs_hash = self.blob(self.outputs) if self.outputs is not None else None
        self.store.put(
            "span",
            (
                self.root_span_id,
                self.trace_id,
                None,
                self.id,
                self.pipeline_id,
                "execution",
                encode({"workbench.pipeline_id": self.pipeline_id}),
                None,
                "error" if exc is not None else "ok",
                self.started_at,
                ended,
            ),
        )
        self.store.put(
            "exec_end",
            (
                self.status,
                None if success is None else int(success),
                error,
                outputs_hash,
                ended,
                duration,
                self.json_text(self.metadata),
                self.id,
            ),
        )
        _hooks.execution_finished(self)
        if flush:
            self.store.flush_soon()


class record(AsyncFromSync):
    """Record everything inside the block as one execution of ``pipeline_id``.

    >>> with workbench.record("research_assistant", inputs={"topic": "llamas"}) as run:
    ...     run.outputs = research("llamas")

    Also ``async with``. The block's exception, if any, is recorded and re-raised.

    ``sampled``: ``True`` records this execution, ``False`` skips it (observers still hear of
    it), ``None`` leaves it to debug mode's sampling (see :mod:`workbench.debug`).

    ``user_id`` and ``session_id`` say who ran it and in which conversation (a chat session,
    a thread); both are kept on the execution and exported with its trace (``user.id``,
    ``session.id``, ``gen_ai.conversation.id``).
    """

    def __init__(
        self,
        pipeline_id: str,
        *,
        inputs: JSON,
        user_id: str | None = None,
        session_id: str | None = None,
        environment: str | None = None,
        metadata: dict[str, Any] | None = None,
        store: Store | str | os.PathLike[str] | None = None,
        pipeline_version: str | None = None,
        replay_of: str | None = None,
        modifications: dict[str, Any] | None = None,
        sampled: bool | None = None,
        debug: bool = False,
        entrypoint: str | None = None,
    ) -> None:
        self._kwargs: dict[str, Any] = {
            "inputs": inputs,
            "user_id": user_id,
            "session_id": session_id,
            "environment": environment,
            "metadata": metadata,
            "pipeline_version": pipeline_version,
            "replay_of": replay_of,
            "modifications": modifications,
            "sampled": sampled,
            "debug": debug,
            "entrypoint": entrypoint,
        }
        self._pipeline_id = pipeline_id
        self._store = store
        self._run: LiveExecution | None = None
        self._token: Any = None

    def __enter__(self) -> LiveExecution:
        run = self._start()
        if run.recording:
            run.store.flush_soon()  # durable from here on: a kill -9 leaves it interrupted
        return run

    async def __aenter__(self) -> LiveExecution:
        run = self._start()
        if run.recording:
            await flush_off_loop(run.store)
        return run

    def _start(self) -> LiveExecution:
        from workbench.capture import install as install_capture
        from workbench.recorder._logging import install as install_logging

        store = self._store if isinstance(self._store, Store) else open_store(self._store)
        run = LiveExecution(store, self._pipeline_id, **self._kwargs)
        install_capture()
        install_logging()
        install_sigterm_handler()
        _hooks.load_builtin_observers(run.config)
        run.write_row()
        _hooks.execution_started(run)
        run.listeners = _hooks.listeners(run)
        _count_open(1)
        self._run = run
        self._token = current.set(Frame(run, run.root_span_id, None))
        return run

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._leave().finish(exc)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        run = self._leave()
        run.finish(exc, flush=False)
        if run.recording:
            await flush_off_loop(run.store)

    def _leave(self) -> LiveExecution:
        run = self._run
        assert run is not None, "record exited without being entered"
        _count_open(-1)
        try:
            current.reset(self._token)
        except ValueError:  # exited in another context (an async generator's finaliser)
            current.set(None)
        return run


_open = 0
_open_lock = threading.Lock()


def _count_open(change: int) -> None:
    global _open
    with _open_lock:
        _open += change


def executions_open() -> int:
    """How many ``workbench.record`` blocks are open in this process, in any thread."""
    return _open
