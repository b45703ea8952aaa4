"""The replay's answers to model calls: from the recording, the test model, or nobody.

:class:`ReplayInterceptor` is what a replayed run carries as ``run.interceptor``; the capture
layer asks it once per request, before sending (see ``workbench.capture._call.Interceptor``).
It answers from the index, keeps what missed and what was never asked for, and applies the
``on_miss`` policy. It does not run the pipeline; that is ``_engine``'s.
"""

from __future__ import annotations

import base64
import threading
import time
from typing import Any, Literal
from urllib.parse import urlencode

import httpx
import orjson

from workbench._context import Frame, current
from workbench.capture._call import PendingCall, RecordedAnswer, refusal
from workbench.records import ModelCall
from workbench.replay._index import RecordedCalls, request_diff, request_summary
from workbench.replay._result import Mismatch
from workbench.replay._rewrite import RequestRewriter

__all__ = ["OnMiss", "ReplayInterceptor"]

OnMiss = Literal["error", "live", "test-model"]

# Connection-level headers of the test model's answer; the clients recompute them.
_HOP_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})


class ReplayInterceptor:
    """Answers one replay's requests; safe to call from many threads and tasks at once."""

    def __init__(
        self,
        recorded: RecordedCalls,
        *,
        on_miss: OnMiss,
        realtime: bool = False,
        use_test_models: bool = False,
        rewriter: RequestRewriter | None = None,
        skipped_calls: set[tuple[str, int]] | None = None,
        via_stubs: bool = False,
    ) -> None:
        self._recorded = recorded
        self._via_stubs = via_stubs
        self._rewriter = rewriter if rewriter else None
        self._on_miss = on_miss
        self._realtime = realtime
        self._use_test_models = use_test_models
        self._lock = threading.Lock()
        # Calls inside steps answered from their recorded results count as used.
        self._used: set[tuple[str, int]] = set(skipped_calls or ())
        self._test_model = _TestModel()
        self.mismatches: list[Mismatch] = []

    def rewrite(self, frame: Frame, url: str, body: bytes) -> bytes | None:
        """``model`` and ``prompt_overrides`` applied to a request of ``frame``'s step."""
        if self._rewriter is None:
            return None
        step = frame.step
        return self._rewriter.rewrite(step.step_id if step is not None else None, url, body)

    def answer(self, call: PendingCall) -> RecordedAnswer | None:
        if self._use_test_models:
            return self._test_model.answer(call)
        found = self._recorded.get(call.key, call.occurrence)
        # A recorded failure is an answer too: the caller gets it again, at the same point.
        if found is not None and (found.status_code is not None or found.error is not None):
            with self._lock:
                self._used.add((call.key, call.occurrence))
            return RecordedAnswer(
                found.status_code or 0,
                list(found.headers.items()),
                found.chunks,
                realtime=self._realtime,
                recorded=found,
                via_stubs=self._via_stubs,
                error=found.error,
            )
        mismatch = self._mismatch(call)
        with self._lock:
            self.mismatches.append(mismatch)
        if self._on_miss == "live":
            return None  # the capture layer sends it and records it like any live call
        if self._on_miss == "test-model":
            return self._test_model.answer(call)
        return _refusal(mismatch)

    @property
    def recorded(self) -> RecordedCalls:
        return self._recorded

    def unused(self) -> list[ModelCall]:
        """Recorded calls no replayed request asked for, in recorded order."""
        if self._use_test_models:
            return []  # the recording was not consulted at all: nothing is "unused" by choice
        with self._lock:
            used = set(self._used)
        if not self._recorded.keys() - used:
            return []  # the common case: no need to read the full recorded calls
        return [c for c in self._recorded.calls() if (c.request_key, c.occurrence) not in used]

    def close(self) -> None:
        self._test_model.close()

    def _mismatch(self, call: PendingCall) -> Mismatch:
        step = call.frame.step
        nearest = self._recorded.nearest(call.canonical)
        return Mismatch(
            step_id=step.step_id if step is not None else None,
            step_occurrence=step.occurrence if step is not None else None,
            request=request_summary(call.canonical),
            request_key=call.key,
            occurrence=call.occurrence,
            nearest=None if nearest is None else request_summary(nearest.request),
            nearest_call_id=None if nearest is None else nearest.id,
            diff="" if nearest is None else request_diff(nearest.request, call.canonical),
            answered_by=self._on_miss,
        )


def _refusal(mismatch: Mismatch) -> RecordedAnswer:
    """The SDK gets a 400 it does not retry; the engine raises the real
    :class:`ReplayMismatchError` once the entrypoint returns or fails."""
    return refusal(
        "workbench_replay_mismatch",
        "workbench replay: no recorded response for this request\n" + mismatch.describe(),
    )


class _TestModel:
    """The built-in test model, started at the first request that needs it (once per replay)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._server: Any = None
        self._client: httpx.Client | None = None

    def answer(self, call: PendingCall) -> RecordedAnswer:
        with self._lock:
            if self._client is None:
                from workbench.testmodel import ModelServer

                self._server = ModelServer().start()
                self._client = httpx.Client(timeout=60.0)
            client, base = self._client, self._server.url
        request = call.canonical
        url = base + str(request.get("path") or "/")
        if request.get("query"):
            url += "?" + urlencode(request["query"])
        headers = {
            name: value
            for name, value in (request.get("headers") or {}).items()
            if value != "[REDACTED]"
        }
        # The forward is workbench's own traffic, not a call of the replayed run: unrecorded.
        token = current.set(None)
        try:
            started = time.perf_counter()
            chunks: list[tuple[float, bytes]] = []
            with client.stream(
                str(request.get("method") or "POST"), url, headers=headers, content=_body(request)
            ) as response:
                for data in response.iter_raw():
                    chunks.append((time.perf_counter() - started, data))
                status = response.status_code
                kept = [
                    (name, value)
                    for name, value in response.headers.multi_items()
                    if name.lower() not in _HOP_HEADERS
                ]
        finally:
            current.reset(token)
        return RecordedAnswer(status, kept, chunks)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._server.stop()
            self._client = self._server = None


def _body(request: dict[str, Any]) -> bytes | None:
    """The request body again, from its canonical form (secrets stay redacted: the test
    model needs none)."""
    body, body_format = request.get("body"), request.get("body_format")
    if body_format == "json":
        return orjson.dumps(body)
    if body_format == "text" and isinstance(body, dict):
        return str(body.get("text", "")).encode()
    if body_format == "base64" and isinstance(body, dict):
        return base64.b64decode(body.get("base64", ""))
    if body_format == "form" and isinstance(body, list):
        return urlencode(body).encode()
    return None
