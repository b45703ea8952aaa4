"""Google's native Gemini API (AI Studio and Vertex AI): ``:generateContent`` and its streams.

Owns recognising ``…/models/<model>:generateContent`` and ``:streamGenerateContent`` (on
``generativelanguage.googleapis.com`` as ``gcp.gemini``, on ``*aiplatform.googleapis.com`` as
``gcp.vertex_ai``, anywhere else as ``gcp.gemini``: the path is Gemini's alone), reading
``usageMetadata`` and assembling a stream — server-sent events with ``alt=sse``, else one JSON
array of partial responses — into the one response it stands for. The operation is
OpenTelemetry's ``generate_content``. Gemini's OpenAI-compatible API is ``_openai``'s.

Tokens: ``promptTokenCount`` includes cached content (as OpenTelemetry's input does); output
is ``candidatesTokenCount`` plus ``thoughtsTokenCount``, which Google bills as output.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from workbench.providers._common import (
    JSON,
    Read,
    Target,
    Usage,
    WireFormat,
    as_int,
    as_list,
    as_str,
    error_text,
    event_objects,
    provider_of,
    text_chars,
)
from workbench.providers._sse import SSEEvent

__all__ = ["FORMAT"]

_PATH = re.compile(r"/models/([^/:]+):(generateContent|streamGenerateContent)$")
OPERATION = "generate_content"


def _recognise(target: Target) -> tuple[str, str] | None:
    if _PATH.search(target.path) is None:
        return None
    return provider_of(target, "gcp.gemini"), OPERATION


def _model_of(target: Target) -> str | None:
    found = _PATH.search(target.path)
    return unquote(found.group(1)) if found else None


def _usage(metadata: Any) -> Usage | None:
    if not isinstance(metadata, dict):
        return None
    prompt = as_int(metadata.get("promptTokenCount"))
    candidates = as_int(metadata.get("candidatesTokenCount"))
    thoughts = as_int(metadata.get("thoughtsTokenCount"))
    output = (
        None if candidates is None and thoughts is None else (candidates or 0) + (thoughts or 0)
    )
    return prompt, output, as_int(metadata.get("cachedContentTokenCount")) or 0, 0


def _reads_json(provider: str, operation: str, data: JSON) -> bool:
    return operation == OPERATION and isinstance(data, dict | list)


def _read_json(operation: str, data: JSON) -> Read:
    if isinstance(data, list):  # :streamGenerateContent without alt=sse: a JSON array
        errors: list[str] = []
        chunks = [chunk for chunk in data if isinstance(chunk, dict)]
        if len(chunks) != len(data):
            errors.append("stream array holds an item that is not a JSON object")
        return _assemble(chunks, errors)
    return _read_response(data)


def _read_response(data: dict[str, Any]) -> Read:
    read = Read(response=data, model=as_str(data.get("modelVersion")))
    read.usage = _usage(data.get("usageMetadata"))
    candidates = as_list(data.get("candidates"))
    first = candidates[0] if candidates and isinstance(candidates[0], dict) else {}
    read.finish_reason = as_str(first.get("finishReason"))
    content = first.get("content")
    parts = as_list(content.get("parts")) if isinstance(content, dict) else []
    # Parts marked "thought" are the model's thinking summary, not its answer.
    answer = [part for part in parts if isinstance(part, dict) and not part.get("thought")]
    read.text = "".join(part["text"] for part in answer if isinstance(part.get("text"), str))
    read.output_chars = sum(text_chars(part) for part in answer)
    return read


def _reads_sse(provider: str, operation: str, events: list[SSEEvent]) -> bool:
    return operation == OPERATION


def _read_sse(operation: str, events: list[SSEEvent], errors: list[str]) -> Read:
    chunks, _ = event_objects(events, errors)
    return _assemble(chunks, errors)


def _assemble(chunks: list[dict[str, Any]], errors: list[str]) -> Read:
    """The partial responses of a stream as one response: the parts' text joined, the last
    finish reason and usage (each chunk's ``usageMetadata`` is the running total)."""
    top: dict[str, Any] = {}
    parts: list[dict[str, Any]] = []
    finish: str | None = None
    usage: Any = None
    for chunk in chunks:
        if "error" in chunk:
            errors.append(f"error event: {error_text(chunk)}")
            continue
        for name in ("modelVersion", "responseId", "createTime"):
            if name not in top and chunk.get(name):
                top[name] = chunk[name]
        if chunk.get("usageMetadata") is not None:
            usage = chunk["usageMetadata"]
        candidates = as_list(chunk.get("candidates"))
        first = candidates[0] if candidates and isinstance(candidates[0], dict) else {}
        finish = as_str(first.get("finishReason")) or finish
        content = first.get("content")
        for part in as_list(content.get("parts")) if isinstance(content, dict) else ():
            if not isinstance(part, dict):
                continue
            last = parts[-1] if parts else None
            # Consecutive text pieces of the same kind (answer or thought) make one part.
            if (
                last is not None
                and isinstance(part.get("text"), str)
                and isinstance(last.get("text"), str)
                and bool(part.get("thought")) == bool(last.get("thought"))
                and set(part) <= {"text", "thought"}
            ):
                last["text"] += part["text"]
            else:
                parts.append(dict(part))
    if finish is None:
        errors.append("stream ended without a finishReason")
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    response = {"candidates": [candidate], "usageMetadata": usage, **top}
    read = _read_response(response)
    read.errors = errors
    return read


FORMAT = WireFormat(
    name="gemini",
    recognise=_recognise,
    reads_json=_reads_json,
    read_json=_read_json,
    reads_sse=_reads_sse,
    read_sse=_read_sse,
    model_of=_model_of,
)
