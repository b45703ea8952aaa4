"""A test's recorded model calls, served back: record modes and ``@pytest.mark.replay``.

Owns :class:`Cassette`, the interceptor (see ``workbench.capture._call.Interceptor``) that the
pytest plugin puts on every execution a test runs, and finding a test's latest recording in a
store. A request is answered by the next recorded call with the same request key, in recorded
order across all of the recording's executions (as a vcrpy cassette plays its interactions); a
request with no recorded answer goes out for real (record modes ``once`` without a recording,
``new``, ``all``) or is refused with a 400 the SDKs do not retry (``none``, ``once`` with a
recording, replay), and the refusal is kept so the test fails with an explanation.

Recordings are the executions the plugin records per test, with ``pipeline_id`` the test's node
id and ``metadata["workbench.pytest"]`` saying whether it is a recording, which executions the
test started inside it, and the recorded latency of calls that were themselves answered from an
earlier recording (so latencies survive being replayed and re-recorded).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from workbench._context import Frame
from workbench.capture._call import PendingCall, RecordedAnswer, refusal
from workbench.exceptions import ExecutionNotFoundError
from workbench.records import Execution, ModelCall
from workbench.replay._index import RecordedCalls, request_diff, request_summary
from workbench.store import Store
from workbench.testing._network import is_local_url

__all__ = [
    "META",
    "RECORDINGS_DIR",
    "Cassette",
    "Recording",
    "latest_recording",
    "load_recording",
    "recorded_runs",
]

#: The metadata key of the executions the pytest plugin records.
META = "workbench.pytest"
#: The folder, beside a test module, of its recordings (``<module>.db``).
RECORDINGS_DIR = "recordings"
OnMiss = Literal["refuse", "live"]


@dataclass(frozen=True)
class Recording:
    """The model calls of a recorded execution and of the executions started inside it."""

    execution_id: str
    calls: list[ModelCall]
    #: Recorded latency per recorded call id (an earlier recording's, for calls it replayed).
    latencies: dict[str, float] = field(default_factory=dict)
    duration_s: float | None = None


def latest_recording(store: Store, nodeid: str) -> Execution | None:
    """The newest finished execution recorded as ``nodeid``'s recording, if any."""
    for execution in store.list_executions(pipeline_id=nodeid, limit=None):
        meta = execution.metadata.get(META)
        if isinstance(meta, dict) and meta.get("recording") and execution.status != "running":
            return execution
    return None


def recorded_runs(store: Store, nodeid: str) -> list[str]:
    """The ids of every execution the plugin recorded for ``nodeid`` in ``store`` (its
    recordings, earlier runs, and the executions they started): what replacing the test's
    recording removes."""
    ids: list[str] = []
    for execution in store.list_executions(pipeline_id=nodeid, limit=None):
        meta = execution.metadata.get(META)
        if not isinstance(meta, dict):
            continue  # not the plugin's: an execution the user named after the test
        ids.append(execution.id)
        ids.extend(str(nested) for nested in meta.get("executions") or ())
    return ids


def load_recording(store: Store, execution_id: str) -> Recording:
    """Execution ``execution_id`` and the executions a test started inside it, as a
    :class:`Recording` (:class:`ExecutionNotFoundError` for an unknown id)."""
    root = store.get_execution(execution_id)
    meta = root.metadata.get(META)
    executions = [root]
    if isinstance(meta, dict):
        for nested in meta.get("executions") or ():
            try:
                executions.append(store.get_execution(str(nested)))
            except ExecutionNotFoundError:
                continue  # recorded in another store: its calls are not ours to serve
    latencies: dict[str, float] = {}
    for execution in executions:
        recorded = execution.metadata.get(META)
        if isinstance(recorded, dict) and isinstance(recorded.get("latencies"), dict):
            latencies.update(recorded["latencies"])
    calls = sorted(
        (call for execution in executions for call in execution.model_calls),
        key=lambda call: call.started_at,
    )
    return Recording(root.id, calls, latencies, root.duration_s)


class Cassette:
    """Answers model calls from a :class:`Recording`; thread-safe.

    ``on_miss``: ``"live"`` sends a request with no recorded answer for real, ``"refuse"``
    answers it with a 400 (and keeps a description in :attr:`misses`). With ``block_network``
    a live request to a host off this machine is refused too (kept in :attr:`blocked`).
    ``answered`` maps each answered call's id to the latency recorded for its answer.
    """

    def __init__(
        self,
        recording: Recording | None,
        *,
        on_miss: OnMiss,
        why: str,
        block_network: bool = False,
        allowed_hosts: Iterable[str] = (),
    ) -> None:
        self.recording = recording
        self.on_miss = on_miss
        self.why = why
        self.block_network = block_network
        self.allowed_hosts = tuple(allowed_hosts)
        self.answered: dict[str, float] = {}
        self.misses: list[str] = []
        self.blocked: list[str] = []
        self.live: list[str] = []
        self._lock = threading.Lock()
        self._queues: dict[str, deque[ModelCall]] = {}
        self._calls: Sequence[ModelCall] = recording.calls if recording else ()
        #: For explaining a miss: the nearest recorded request, as replay finds it.
        self._index = RecordedCalls.of(self._calls)
        for call in self._calls:
            if call.status_code is not None:  # a transport error has no answer to serve
                self._queues.setdefault(call.request_key, deque()).append(call)

    @property
    def recording_id(self) -> str | None:
        return self.recording.execution_id if self.recording else None

    @property
    def duration_s(self) -> float | None:
        return self.recording.duration_s if self.recording else None

    def rewrite(self, frame: Frame, url: str, body: bytes) -> bytes | None:
        return None

    def answer(self, call: PendingCall) -> RecordedAnswer | None:
        with self._lock:
            queue = self._queues.get(call.key)
            found = queue.popleft() if queue else None
        if found is not None and found.status_code is not None:
            assert self.recording is not None
            latency = self.recording.latencies.get(found.id, found.latency_s or 0.0)
            with self._lock:
                self.answered[call.id] = latency
            return RecordedAnswer(
                found.status_code,
                list(found.response_headers.items()),
                [(chunk.offset_s, chunk.data) for chunk in found.chunks],
            )
        if self.on_miss == "live":
            if self.block_network and not is_local_url(call.url, self.allowed_hosts):
                message = (
                    f"{call.method} {call.url} would leave the machine and the network is "
                    f"blocked (--workbench-block-network); record it where the network is "
                    f"allowed, or allow the host with --workbench-allowed-hosts"
                )
                with self._lock:
                    self.blocked.append(message)
                return _refusal(message)
            with self._lock:
                self.live.append(call.id)
            return None
        message = self._describe_miss(call)
        with self._lock:
            self.misses.append(message)
        return _refusal(message)

    def unused(self) -> list[ModelCall]:
        """Recorded calls no request asked for, in recorded order."""
        with self._lock:
            left = {id(call) for queue in self._queues.values() for call in queue}
        return [call for call in self._calls if id(call) in left]

    def problems(self) -> str | None:
        """Why the test must fail although its code may have carried on: requests without a
        recorded answer, or refused because they would leave the machine."""
        with self._lock:
            misses, blocked = list(self.misses), list(self.blocked)
        if not misses and not blocked:
            return None
        parts = []
        if misses:
            parts.append(
                f"{len(misses)} model call(s) had no recorded answer ({self.why}):\n"
                + "\n".join(misses)
            )
        if blocked:
            parts.append("\n".join(blocked))
        return "\n\n".join(parts)

    def _describe_miss(self, call: PendingCall) -> str:
        request = call.canonical
        step = call.frame.step
        where = f"step {step.step_id!r}" if step is not None else "no step"
        lines = [f"  {request_summary(request)}  ({where})"]
        nearest = self._index.nearest(request)
        if nearest is not None:
            lines.append(f"    nearest recorded request: {request_summary(nearest.request)}")
            diff = request_diff(nearest.request, request)
            if diff:
                lines.extend(f"      {line}" for line in diff.splitlines())
        elif self.recording is not None:
            lines.append("    the recording has no request to this endpoint")
        return "\n".join(lines)


def _refusal(message: str) -> RecordedAnswer:
    return refusal("workbench_no_recorded_answer", "workbench: " + message)
