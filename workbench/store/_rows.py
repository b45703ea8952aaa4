"""Turning stored rows back into records (steps, spans, model calls).

A model call's response is stored once, as received: its parsed form — for a stream, the
assembled message — is derived here with ``workbench.providers``, a pure parser below the store.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from workbench._http import body_json, decode_content
from workbench._json import decode
from workbench.providers import analyse
from workbench.records import ErrorInfo, ModelCall, Span, Step, StreamChunk

__all__ = ["decoded", "json_column", "model_call", "span", "step"]


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


def model_call(r: sqlite3.Row, blobs: dict[str, Any]) -> ModelCall:
    body = blobs.get(r["body_hash"] or "", b"")
    chunks: list[StreamChunk] = []
    position = 0
    micros = 0
    for delta_us, length in json_column(r["chunks"]) or []:
        micros += delta_us
        chunks.append(StreamChunk(micros / 1_000_000, body[position : position + length]))
        position += length
    if body and not r["streamed"]:
        # A whole body is kept as one read, at the moment it was complete: what replay serves.
        chunks.append(StreamChunk(r["latency_s"] or 0.0, body))
    headers = json_column(r["response_headers"]) or {}
    request = decoded(blobs, r["request_hash"])
    # The response is stored once, as received; its parsed (for a stream: assembled) form is
    # derived from it here rather than stored a second time.
    response = None
    if body and r["status_code"] is not None:
        if r["streamed"]:
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
    )
