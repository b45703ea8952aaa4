"""OpenAI's Responses API: recognition, reading a response object, and its event stream.

Owns ``/responses`` (on any host, named by it as ``_openai`` does), reading a response
object's output text, status and usage, and taking a stream's ``response.completed`` (or,
for a stream cut short, its last snapshot and the text deltas seen) as the response.
"""

from __future__ import annotations

from typing import Any

from workbench.providers._common import (
    JSON,
    Read,
    Target,
    WireFormat,
    as_str,
    error_text,
    event_objects,
    provider_of,
    text_chars,
)
from workbench.providers._openai import openai_usage
from workbench.providers._sse import SSEEvent

__all__ = ["FORMAT"]


def _recognise(target: Target) -> tuple[str, str] | None:
    return (provider_of(target), "responses") if target.path.endswith("/responses") else None


def _reads_json(provider: str, operation: str, data: JSON) -> bool:
    return operation == "responses" and isinstance(data, dict)


def _reads_sse(provider: str, operation: str, events: list[SSEEvent]) -> bool:
    return operation == "responses"


def _read_responses_object(data: dict[str, Any]) -> Read:
    read = Read(response=data, model=as_str(data.get("model")))
    read.usage = openai_usage(data.get("usage"))
    status = as_str(data.get("status"))
    details = data.get("incomplete_details")
    if status == "incomplete" and isinstance(details, dict) and as_str(details.get("reason")):
        read.finish_reason = details["reason"]
    else:
        read.finish_reason = status
    texts: list[str] = []
    output = data.get("output")
    for item in output if isinstance(output, list) else ():
        if isinstance(item, dict):
            if item.get("type") == "message" and isinstance(item.get("content"), list):
                texts.extend(
                    part["text"]
                    for part in item["content"]
                    if isinstance(part, dict)
                    and part.get("type") == "output_text"
                    and isinstance(part.get("text"), str)
                )
            read.output_chars += text_chars(item)
    read.text = "".join(texts)
    return read


def _read_responses_stream(events: list[SSEEvent], errors: list[str]) -> Read:
    objects, _ = event_objects(events, errors)
    snapshot: Any = None
    final: Any = None
    deltas: list[str] = []
    for event in objects:
        kind = event.get("type")
        if kind in ("response.completed", "response.incomplete", "response.failed"):
            final = event.get("response")
        elif isinstance(kind, str) and kind.startswith("response.") and "response" in event:
            snapshot = event["response"]
        elif kind == "response.output_text.delta" and isinstance(event.get("delta"), str):
            deltas.append(event["delta"])
        elif kind == "error":
            errors.append(f"error event: {error_text(event)}")
    if isinstance(final, dict):
        read = _read_responses_object(final)
    else:
        errors.append("stream ended without response.completed")
        read = (
            _read_responses_object(snapshot)
            if isinstance(snapshot, dict)
            else Read(response=snapshot)
        )
        read.text = "".join(deltas)
        read.output_chars = len(read.text)
    read.errors = errors
    return read


FORMAT = WireFormat(
    name="openai.responses",
    recognise=_recognise,
    reads_json=_reads_json,
    read_json=lambda operation, data: _read_responses_object(data),
    reads_sse=_reads_sse,
    read_sse=lambda operation, events, errors: _read_responses_stream(events, errors),
)
