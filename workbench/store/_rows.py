"""Turning stored rows back into records (steps, spans, model calls).

A model call's response is stored once, as received: its parsed form — for a stream, the
assembled message — is derived here with ``workbench.providers``, a pure parser below the store.
"""

from __future__ import annotations

import sqlite3
from typing import Any, NamedTuple

from workbench._http import body_json, decode_content
from workbench._json import decode
from workbench.providers import CallFacts, analyse, is_stream
from workbench.records import ErrorInfo, ModelCall, Span, Step, StreamChunk

__all__ = [
    "RESPONSE_COLUMNS",
    "RecordedResponse",
    "decoded",
    "json_column",
    "model_call",
    "recorded_response",
    "span",
    "step",
]


class RecordedResponse(NamedTuple):
    """What a replay needs of one recorded model call: its lookup key and its answer.

    Lighter than a :class:`~workbench.records.ModelCall` (no request, no parsed response), so
    that opening a large recording for replay reads and decodes only what answers requests.
    The recorded analysis (tokens, price, finish reason) travels with it: a replayed call
    serves these very bytes, so the replay records them without parsing the body again.

    Immutable like the records, but a named tuple rather than a frozen dataclass: a replay
    builds one per recorded call before it can start, and a frozen dataclass of 23 fields
    costs ~2 µs to build (one ``object.__setattr__`` per field) against ~0.3 µs.
    """

    call_id: str
    step_id: str | None
    request_key: str
    occurrence: int
    status_code: int | None
    headers: dict[str, str]
    streamed: bool
    chunks: list[tuple[float, bytes]]  # (offset_s, bytes) as the caller received them
    body: bytes
    body_hash: str | None
    provider: str | None
    model: str | None
    operation: str | None
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    tokens_estimated: bool
    cost_usd: float | None
    finish_reason: str | None
    text: str | None
    stream_error: str | None
    #: Why this response cannot be served as it was received (a missing body, a stream whose
    #: chunk index does not add up to its body), or ``None``.
    damage: str | None = None
    #: What the caller got instead of a (whole) response: the connection failed before it, or
    #: the stream was cut after ``chunks``. A replay raises it again at the same point.
    error: ErrorInfo | None = None
    #: The blob of the recorded (canonical, scrubbed) request, when the store holds it: a
    #: replayed call that sends these very bytes names it instead of storing them again.
    request_hash: str | None = None

    @classmethod
    def from_model_call(cls, call: ModelCall) -> RecordedResponse:
        """The answer of a full record already in hand (tests, calls read another way)."""
        return cls(
            call_id=call.id,
            step_id=call.step_id,
            request_key=call.request_key,
            occurrence=call.occurrence,
            status_code=call.status_code,
            headers=call.response_headers,
            streamed=call.streamed,
            chunks=[(chunk.offset_s, chunk.data) for chunk in call.chunks],
            body=call.body,
            body_hash=None,
            provider=call.provider,
            model=call.model,
            operation=call.operation,
            input_tokens=call.input_tokens,
            output_tokens=call.output_tokens,
            cache_read_tokens=call.cache_read_tokens,
            cache_write_tokens=call.cache_write_tokens,
            tokens_estimated=call.tokens_estimated,
            cost_usd=call.cost_usd,
            finish_reason=call.finish_reason,
            text=call.text,
            stream_error=call.stream_error,
            error=call.error,
        )

    def facts(self) -> CallFacts:
        """What the recording worked out of this response, as capture's analysis gives it."""
        return CallFacts(
            provider=self.provider or "http",
            operation=self.operation or "",
            model=self.model,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cache_read_tokens=self.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens,
            tokens_estimated=self.tokens_estimated,
            finish_reason=self.finish_reason,
            text=self.text,
            response=None,
            stream_error=self.stream_error,
        )


def json_column(text: str | None) -> Any:
    return None if text is None else decode(text.encode() if isinstance(text, str) else text)


def decoded(blobs: dict[str, Any], digest: str | None) -> Any:
    if not digest or digest not in blobs:
        return None
    return decode(blobs[digest])


def step(r: sqlite3.Row, blobs: dict[str, Any], interrupted: bool) -> Step:
    status = r["status"]
    if interrupted and status == "running":
        status = "interrupted"
    return Step(
        execution_id=r["execution_id"],
        step_id=r["step_id"],
        occurrence=r["occurrence"],
        span_id=r["span_id"],
        parent_step_id=r["parent_step_id"],
        action=r["action"],
        parameters=decoded(blobs, r["parameters_hash"]),
        result=decoded(blobs, r["result_hash"]),
        error=ErrorInfo.from_json(json_column(r["error"])),
        status=status,
        retries=r["retries"] or 0,
        started_at=r["started_at"],
        ended_at=r["ended_at"],
        duration_s=r["duration_s"],
    )


def span(r: sqlite3.Row) -> Span:
    return Span(
        trace_id=r["trace_id"],
        span_id=r["span_id"],
        parent_span_id=r["parent_span_id"],
        execution_id=r["execution_id"],
        name=r["name"],
        kind=r["kind"],
        attributes=json_column(r["attributes"]) or {},
        events=json_column(r["events"]) or [],
        status=r["status"],
        start=r["start"],
        end=r["end"],
    )


def _chunks(
    index: str | None, streamed: Any, latency_s: float | None, body: bytes
) -> list[tuple[float, bytes]]:
    """The body cut back into the reads the caller got, each with its time offset."""
    chunks: list[tuple[float, bytes]] = []
    position = 0
    micros = 0
    for delta_us, length in json_column(index) or []:
        micros += delta_us
        chunks.append((micros / 1_000_000, body[position : position + length]))
        position += length
    if body and not streamed:
        # A whole body is kept as one read, at the moment it was complete: what replay serves.
        chunks.append((latency_s or 0.0, body))
    return chunks


def indexed_bytes(index: str | None) -> int | None:
    """How many body bytes a stream's chunk index (``[[delta_us, length], ...]``) covers;
    ``None`` when it is not such a list."""
    try:
        entries = json_column(index) or []
    except ValueError:
        return None
    if not isinstance(entries, list) or not all(
        isinstance(e, list) and len(e) == 2 and isinstance(e[1], int) and e[1] >= 0 for e in entries
    ):
        return None
    return sum(int(e[1]) for e in entries)


def _damage(
    status_code: int | None,
    body_hash: str | None,
    streamed: Any,
    index: str | None,
    body: bytes | None,
) -> str | None:
    if status_code is None or body_hash is None:
        return None
    if body is None:
        return f"its response body (blob {body_hash}) is not in the store"
    if streamed:
        indexed = indexed_bytes(index)
        if indexed != len(body):
            covers = (
                "an unreadable chunk index"
                if indexed is None
                else f"a chunk index covering {indexed} bytes"
            )
            return f"its recorded stream is corrupt: {covers} for a body of {len(body)} bytes"
    return None


#: The ``model_calls`` columns :func:`recorded_response` reads, in its order (a replay reads
#: thousands of rows: positions, not a ``sqlite3.Row`` looked up by name per field).
RESPONSE_COLUMNS = (
    "id",
    "step_id",
    "request_key",
    "occurrence",
    "status_code",
    "response_headers",
    "streamed",
    "chunks",
    "latency_s",
    "body_hash",
    "provider",
    "model",
    "operation",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "tokens_estimated",
    "cost_usd",
    "finish_reason",
    "text",
    "stream_error",
    "error",
)


def recorded_response(
    values: tuple[Any, ...], stored_body: bytes | None, request_hash: str | None = None
) -> RecordedResponse:
    """One row of :data:`RESPONSE_COLUMNS`; ``stored_body`` is ``None`` when the row names a
    body blob the store does not hold, ``request_hash`` the request's blob if the store holds
    it."""
    (
        call_id,
        step_id,
        key,
        occurrence,
        status_code,
        headers,
        streamed,
        index,
        latency_s,
        body_hash,
        provider,
        model,
        operation,
        input_tokens,
        output_tokens,
        cache_read_tokens,
        cache_write_tokens,
        tokens_estimated,
        cost_usd,
        finish_reason,
        text,
        stream_error,
        error,
    ) = values
    damage = _damage(status_code, body_hash, streamed, index, stored_body)
    body = stored_body or b""
    return RecordedResponse(
        call_id=call_id,
        step_id=step_id,
        request_key=key,
        occurrence=occurrence,
        status_code=status_code,
        headers=json_column(headers) or {},
        streamed=bool(streamed),
        chunks=[] if damage else _chunks(index, streamed, latency_s, body),
        body=body,
        body_hash=body_hash,
        provider=provider,
        model=model,
        operation=operation,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read_tokens,
        cache_write_tokens=cache_write_tokens,
        tokens_estimated=bool(tokens_estimated),
        cost_usd=cost_usd,
        finish_reason=finish_reason,
        text=text,
        stream_error=stream_error,
        damage=damage,
        error=None if error is None else ErrorInfo.from_json(json_column(error)),
        request_hash=request_hash,
    )


def model_call(r: sqlite3.Row, blobs: dict[str, Any]) -> ModelCall:
    body = blobs.get(r["body_hash"] or "", b"")
    chunks = [
        StreamChunk(offset, data)
        for offset, data in _chunks(r["chunks"], r["streamed"], r["latency_s"], body)
    ]
    headers = json_column(r["response_headers"]) or {}
    request = decoded(blobs, r["request_hash"])
    # The response is stored once, as received; its parsed (for a stream: assembled) form is
    # derived from it here rather than stored a second time.
    response = None
    if body and r["status_code"] is not None:
        # NDJSON and AWS event streams are stored unflagged (capture flags SSE): assembled too.
        if r["streamed"] or is_stream(headers.get("content-type")):
            request_body = request.get("body") if isinstance(request, dict) else None
            response = analyse(
                r["provider"],
                r["operation"],
                request_body,
                r["status_code"],
                headers.get("content-type"),
                decode_content(body, headers),
            ).response
        else:
            response = body_json(body, headers)
    return ModelCall(
        id=r["id"],
        execution_id=r["execution_id"],
        span_id=r["span_id"],
        step_id=r["step_id"],
        step_occurrence=r["step_occurrence"],
        provider=r["provider"],
        model=r["model"],
        operation=r["operation"],
        request=request,
        status_code=r["status_code"],
        response=response,
        response_headers=headers,
        streamed=bool(r["streamed"]),
        chunks=chunks,
        input_tokens=r["input_tokens"],
        output_tokens=r["output_tokens"],
        cache_read_tokens=r["cache_read_tokens"],
        cache_write_tokens=r["cache_write_tokens"],
        tokens_estimated=bool(r["tokens_estimated"]),
        cost_usd=r["cost_usd"],
        ttft_s=r["ttft_s"],
        latency_s=r["latency_s"],
        finish_reason=r["finish_reason"],
        text=r["text"],
        request_key=r["request_key"],
        occurrence=r["occurrence"],
        started_at=r["started_at"],
        error=ErrorInfo.from_json(json_column(r["error"])),
        stream_error=r["stream_error"],
        replayed=bool(r["replayed"]),
    )
