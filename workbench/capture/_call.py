"""One captured HTTP call, from the request as sent to the ``ModelCall`` row.

On the caller's thread it does only what must happen there: canonicalise the request (its key
and occurrence follow send order) and copy each chunk as the caller receives it. Understanding
the response — provider, tokens, price — is deferred to the store's writer thread, so the
application sees the response exactly when it would without recording.

It also defines the seam replay uses without capture importing replay: a run may carry an
:class:`Interceptor`, asked for a :class:`RecordedAnswer` before each request is sent; the
client wrappers then build their library's own response from the answer instead of sending.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from workbench import _hooks
from workbench._context import Frame
from workbench._http import decode_content
from workbench._ids import new_id
from workbench._json import encode
from workbench.capture.canonical import canonical_request, request_key
from workbench.providers import CallFacts, analyse, identify, is_stream, request_fields
from workbench.records import ErrorInfo
from workbench.redaction import (
    redact_headers,
    scrub_bytes,
    scrub_chunks,
    scrub_derived,
    scrub_rendered,
)
from workbench.store import RecordedResponse

__all__ = [
    "Interceptor",
    "PendingCall",
    "RecordedAnswer",
    "answer_chunks",
    "answer_chunks_async",
    "answer_for",
    "recorded_exception",
    "rewritten_body",
    "start_call",
]

log = logging.getLogger("workbench.capture")

# Response headers that describe the connection rather than the answer; not worth storing.
_DROPPED_HEADERS = frozenset(
    {
        "date",
        "server",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "alt-svc",
        "cf-ray",
        "cf-cache-status",
        "via",
        "strict-transport-security",
    }
)


@dataclass(frozen=True, slots=True)
class RecordedAnswer:
    """A response to serve instead of sending the request: what a replay answers with.

    ``chunks`` are ``(offset_s, bytes)`` as the original caller received them, bytes still
    content-encoded if the headers say so; ``realtime`` replays them at their offsets.
    """

    status_code: int
    headers: list[tuple[str, str]]
    chunks: list[tuple[float, bytes]]
    realtime: bool = False
    #: The recorded call these bytes come from: its analysis is reused when the replay is
    #: recorded, and its headers are already redacted.
    recorded: RecordedResponse | None = None
    #: Not served here: the request goes on to the transport, where stubs installed by the
    #: replay (vcrpy's) answer it with the ``recorded`` response.
    via_stubs: bool = False
    #: What the original caller got instead of a whole response, raised again at the same
    #: point: before any response when ``status_code`` is 0, else after the last chunk.
    error: ErrorInfo | None = None

    @property
    def failed_before_response(self) -> bool:
        return self.error is not None and self.status_code == 0


class Interceptor(Protocol):
    """What a run's ``interceptor`` must be: asked once per request, before it is sent.

    ``rewrite`` comes first, before the request is captured, so the recorded request (and the
    one sent, if any) is the rewritten one; ``answer`` then decides who answers it.
    """

    def rewrite(self, frame: Frame, url: str, body: bytes) -> bytes | None:
        """The body to send instead of ``body``, or ``None`` to send it unchanged."""
        ...

    def answer(self, call: PendingCall) -> RecordedAnswer | None:
        """The answer to serve, or ``None`` to send the request for real."""
        ...


def refusal(error_type: str, message: str) -> RecordedAnswer:
    """A 400 answer the SDKs do not retry, carrying ``message``: how a replay or a test
    refuses a request with no recorded answer. Raising inside the transport instead would be
    retried, then wrapped by the SDKs (as ``APIConnectionError``)."""
    body = encode({"error": {"type": error_type, "message": message}})
    headers = [("content-type", "application/json"), ("x-should-retry", "false")]
    return RecordedAnswer(400, headers, [(0.0, body)])


def answer_for(call: PendingCall) -> RecordedAnswer | None:
    """The interceptor's answer for ``call``, or ``None`` when its run has no interceptor."""
    run = call.frame.run
    interceptor: Interceptor | None = run.interceptor
    answer = None if interceptor is None else interceptor.answer(call)
    if answer is None:
        # Going out for real: budgets may delay or stop it (the caller records the error).
        _hooks.model_call_starting(run, call.method, call.url, call.canonical)
    else:
        call.replayed = True
        call.replay_error = answer.error
        recorded = answer.recorded
        if recorded is not None and recorded.status_code == answer.status_code:
            call.recorded = recorded
            call.status_code = recorded.status_code
            call.headers = recorded.headers  # as stored: already redacted, never re-read
        if answer.via_stubs and not answer.failed_before_response:
            return None  # "send it": the stubs under the client answer from the recording
    return answer


def recorded_exception(error: ErrorInfo, fallback: type[Exception]) -> Exception:
    """The exception a recorded call failed with, to raise again when it is replayed.

    Of the recorded class when that class is loaded in this process (the client library's own
    ``RemoteProtocolError``, ``ClientPayloadError``...), so the application and its SDK see
    what they saw live; otherwise a ``fallback`` of the client library, with the recorded
    message. Nothing is imported to find the class: a replay must not run import-time code of
    modules the application never loaded.
    """
    parts = error.type.split(".")
    for cut in range(len(parts) - 1, -1, -1):
        owner: Any = sys.modules.get(".".join(parts[:cut])) if cut else builtins
        if owner is None:
            continue
        for name in parts[cut:]:
            owner = getattr(owner, name, None)
        if isinstance(owner, type) and issubclass(owner, Exception):
            try:
                return owner(error.message)
            except Exception:  # a constructor that wants more than a message
                break
        break
    return fallback(error.message)


def rewritten_body(frame: Frame, url: str, body: bytes | None) -> bytes | None:
    """The body the run's interceptor sends instead of ``body``; ``None``: send it as it is."""
    interceptor: Interceptor | None = frame.run.interceptor
    if interceptor is None or not body:
        return None
    return interceptor.rewrite(frame, url, body)


def answer_chunks(answer: RecordedAnswer, started: float) -> Iterator[bytes]:
    """The answer's chunks, each not before its offset from ``started`` when realtime."""
    for offset, data in answer.chunks:
        if answer.realtime:
            delay = offset - (time.perf_counter() - started)
            if delay > 0:
                time.sleep(delay)
        yield data


async def answer_chunks_async(answer: RecordedAnswer, started: float) -> AsyncIterator[bytes]:
    """:func:`answer_chunks` for async clients: waiting does not block the event loop."""
    for offset, data in answer.chunks:
        if answer.realtime:
            delay = offset - (time.perf_counter() - started)
            if delay > 0:
                await asyncio.sleep(delay)
        yield data


class PendingCall:
    """A call in flight: created when the request is sent, finished when its body is read."""

    __slots__ = (
        "_arrived",
        "_done",
        "_latency",
        "_lock",
        "_t0",
        "canonical",
        "chunks",
        "decoded",
        "error",
        "frame",
        "headers",
        "id",
        "key",
        "method",
        "occurrence",
        "on_done",
        "recorded",
        "replay_error",
        "replayed",
        "started_at",
        "status_code",
        "stream_error",
        "url",
    )

    def __init__(
        self,
        frame: Frame,
        method: str,
        url: str,
        headers: Iterable[tuple[str, str]],
        body: bytes | None,
    ) -> None:
        run = frame.run
        self.frame = frame
        self.id = new_id("call")
        self.method = method
        self.url = url
        self.started_at = time.time()
        self._t0 = time.perf_counter()
        self.canonical = canonical_request(
            method,
            url,
            headers,
            body,
            volatile_fields=run.volatile_fields,
            sensitive_fields=run.sensitive,
        )
        self.key = request_key(self.canonical)
        self.occurrence = run.next_request_occurrence(self.key)
        self.status_code: int | None = None
        self.headers: dict[str, str] = {}
        self.chunks: list[tuple[float, bytes]] = []
        self.decoded = False
        self.error: BaseException | None = None
        self.stream_error: str | None = None
        self.replayed = False
        #: Set when the answer is a recorded call's, served as it was (see ``_rows``).
        self.recorded: RecordedResponse | None = None
        #: Set when the replayed answer must fail after its chunks, as the recorded call did.
        self.replay_error: ErrorInfo | None = None
        self._done = False
        self._latency = 0.0
        self._arrived = 0  # chunks that arrived before ``finish``: the ones the row keeps
        self._lock = threading.Lock()
        #: Called once the call is finished (the aiohttp tee forgets its reader then).
        self.on_done: Callable[[], None] | None = None
        run.open_call(self)

    def response(
        self, status_code: int, headers: Iterable[tuple[str, str]], *, decoded: bool = False
    ) -> None:
        """The status line and headers arrived. ``decoded``: the client undoes content-encoding
        before we see the bytes (requests, aiohttp), so the stored headers must not claim it."""
        if self.recorded is not None:
            if not decoded:
                return  # a recorded answer's status and stored headers, set by ``answer_for``
            self.recorded = None  # the client rewrote the bytes: analyse what it passed on
        self.status_code = status_code
        self.decoded = decoded
        kept = [
            (name, value)
            for name, value in headers
            if name.lower() not in _DROPPED_HEADERS
            and not (decoded and name.lower() == "content-encoding")
        ]
        self.headers = redact_headers(kept, self.frame.run.sensitive)

    def chunk(self, data: bytes) -> None:
        # One list of (offset, bytes) pairs: a single append cannot be seen half-done by the
        # writer thread, which may read a call abandoned at the execution's end.
        if data and not self._done:
            self.chunks.append((time.perf_counter() - self._t0, bytes(data)))

    def finish(self, error: BaseException | None = None, stream_error: str | None = None) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
        self._latency = time.perf_counter() - self._t0
        if error is not None:
            self.error = error
        if stream_error is not None:
            self.stream_error = stream_error
        run = self.frame.run
        run.close_call(self)
        # What arrived until now (later reads are the caller's only), counted rather than
        # copied, and the bound method rather than a closure: a queued call waits for the
        # writer with as few objects as it can, each one more for the cyclic collector to walk.
        self._arrived = len(self.chunks)
        run.store.defer(self._rows)
        if self.on_done is not None:
            self.on_done()

    def abandon(self) -> None:
        """The execution ended with this response unread: keep what arrived, and say so."""
        self.finish(stream_error="the response was not read to its end before the execution ended")

    # -- on the writer thread --------------------------------------------------------------

    def _rows(self) -> list[tuple[str, tuple[Any, ...]]]:
        latency, chunks = self._latency, self.chunks[: self._arrived]
        run = self.frame.run
        store = run.store
        ops: list[tuple[str, tuple[Any, ...]]] = []

        def blob(data: bytes | None) -> str | None:
            if data is None:
                return None
            digest, op = store.blob_op(data)
            if op is not None:
                ops.append(op)
            return digest

        if self.recorded is None:  # a recording's bytes were scrubbed when it was made
            # As the store keeps it, cut where it was: all read from it is scrubbed alike.
            chunks = scrub_chunks(chunks, run.sensitive)
        body = b"".join(data for _, data in chunks)
        content_type = self.headers.get("content-type")
        request_body = request_fields(self.canonical)
        # What the response was: analysed here, or, for a replay that served these very bytes,
        # the recording's own analysis (a RecordedResponse carries the same fields, read as is).
        facts: CallFacts | RecordedResponse | None = None
        cost = None
        recorded = self.recorded
        body_hash: str | None = None
        if recorded is not None and body == recorded.body and recorded.provider is not None:
            facts, cost = recorded, recorded.cost_usd
            provider, operation = recorded.provider, recorded.operation or ""
            body_hash = recorded.body_hash
        else:
            provider, operation = identify(self.method, self.url, request_body)
            if self.status_code is not None:
                facts, cost = self._analyse(provider, operation, request_body, content_type, body)
        streamed = is_stream(content_type)
        step = self.frame.step
        error = None if self.error is None else run.error_text(self.error)
        # Debug mode: an unsampled run keeps no row (its observers still hear of the call);
        # a sampled one without log_model_prompts keeps the call but not what was said.
        keep, prompts = run.recording, run.keep_prompts
        request_hash = self._request_blob(blob, prompts) if keep else None
        row = (
            self.id,
            run.id,
            self.frame.span_id,
            step.step_id if step is not None else None,
            step.occurrence if step is not None else None,
            facts.provider if facts else provider,
            (facts.model if facts else None) or _request_model(request_body),
            facts.operation if facts else operation,
            request_hash,
            self.status_code,
            self._headers_text(keep),
            int(streamed),
            (body_hash or blob(scrub_bytes(body))) if body and prompts else None,
            _chunk_index(chunks) if streamed and prompts else None,
            facts.input_tokens if facts else None,
            facts.output_tokens if facts else None,
            facts.cache_read_tokens if facts else None,
            facts.cache_write_tokens if facts else None,
            int(facts.tokens_estimated) if facts else 0,
            cost,
            chunks[0][0] if streamed and chunks else None,
            latency,
            facts.finish_reason if facts else None,
            facts.text if facts is not None and prompts else None,  # inline: short
            self.key,
            self.occurrence,
            self.started_at,
            error,
            self.stream_error or (facts.stream_error if facts else None),
            int(self.replayed),
        )
        if keep:
            ops.append(("call", row))
        elif (
            self.status_code is not None
            and self.status_code < 400
            and row[5] != "http"
            and not self.replayed
        ):
            # Unsampled: no call row, but its spend still counts (as the ledger's trigger
            # counts a recorded call), so budgets and cost reports do not shrink with the rate.
            provider_model = row[5:7]
            spent = (cost, row[14], row[15])  # cost, input and output tokens
            ledger = (run.id, self.started_at, run.user_id, run.pipeline_id)
            ops.append(("ledger", (*ledger, *provider_model, *spent)))
        if run.listeners.calls:
            _hooks.model_call_finished(
                _hooks.ModelCallEvent(
                    run=run,
                    call_id=self.id,
                    step_id=row[3],
                    provider=row[5],
                    model=row[6],
                    operation=row[7],
                    status_code=self.status_code,
                    input_tokens=row[14],
                    output_tokens=row[15],
                    cache_read_tokens=row[16],
                    cache_write_tokens=row[17],
                    cost_usd=cost,
                    latency_s=latency,
                    ttft_s=row[20],
                    error=error or row[28],
                    replayed=self.replayed,
                )
            )
        return ops

    def _headers_text(self, keep: bool) -> str:
        """The response headers as stored: a recorded answer's are the recording's own, which
        were redacted and scrubbed when it was made (as its body was), so not scrubbed again."""
        if not keep:
            return "{}"
        rendered = encode(self.headers)
        if self.recorded is None:
            rendered = scrub_rendered(rendered, self.frame.run.sensitive)
        return rendered.decode()

    def _request_blob(self, blob: Callable[[bytes], str | None], prompts: bool) -> str | None:
        """The hash of the stored request; the recorded call's own blob when this call sent
        the very request the recording holds (a replay, mostly), so it is neither scrubbed
        nor stored again: those bytes were scrubbed when the recording was made."""
        run = self.frame.run
        rendered = encode(self.canonical if prompts else _unsaid(self.canonical))
        recorded = self.recorded
        if recorded is not None and recorded.request_hash is not None:
            digest = run.store.blob_hash(rendered)
            if digest == recorded.request_hash:
                return digest
        return blob(scrub_rendered(rendered, run.sensitive))

    def _analyse(
        self,
        provider: str,
        operation: str,
        request_body: Any,
        content_type: str | None,
        body: bytes,
    ) -> tuple[CallFacts | None, float | None]:
        """Provider, model, tokens and price, read from the response (``None`` where unknown)."""
        from workbench.capture import price_book

        status = self.status_code
        assert status is not None
        readable = body if self.decoded else decode_content(body, self.headers)
        try:
            # Scrubbed like the body: a content-encoded body's text was out of the scrub's reach.
            facts = scrub_derived(
                analyse(
                    provider, operation, request_body, status, content_type, readable, url=self.url
                ),
                self.frame.run.sensitive,
            )
            if facts is None or status >= 400:
                return facts, None
            cost = price_book(self.frame.run.config).cost_usd(
                facts.provider,
                facts.model,
                input_tokens=facts.input_tokens,
                output_tokens=facts.output_tokens,
                cache_read_tokens=facts.cache_read_tokens,
                cache_write_tokens=facts.cache_write_tokens,
            )
            return facts, cost
        except Exception:  # the call is still kept, with what we could not work out left empty
            log.exception(
                "workbench could not analyse the response of %s %s", self.method, self.url
            )
            return None, None


def start_call(
    frame: Frame, method: str, url: str, headers: Iterable[tuple[str, str]], body: bytes | None
) -> PendingCall | None:
    """A :class:`PendingCall`, or ``None`` (the call then goes out unrecorded) if the request
    cannot be captured: recording must never stop the application's call."""
    try:
        return PendingCall(frame, method, url, headers, body)
    except Exception:
        log.exception("workbench could not capture %s %s; it is sent unrecorded", method, url)
        return None


def _chunk_index(chunks: list[tuple[float, bytes]]) -> str:
    """``[[µs since the previous chunk, length], ...]``: the stream's timing, compactly.

    The body is stored once as a blob; this is all it takes to cut it back into the chunks the
    caller received, at the times it received them.
    """
    index = []
    previous = 0
    for offset, chunk in chunks:
        micros = round(offset * 1_000_000)
        index.append([micros - previous, len(chunk)])
        previous = micros
    return encode(index).decode()


def _unsaid(canonical: dict[str, Any]) -> dict[str, Any]:
    """The request without its body: debug mode keeps no prompt without ``log_model_prompts``."""
    return {**canonical, "body": None, "body_omitted": "debug.features has no log_model_prompts"}


def _request_model(body: Any) -> str | None:
    if isinstance(body, dict):
        model = body.get("model")
        return model if isinstance(model, str) else None
    return None
