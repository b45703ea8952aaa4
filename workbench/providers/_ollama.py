"""Ollama's native API: ``/api/chat``, ``/api/generate`` and ``/api/embed``, JSON and NDJSON.

Owns recognising those paths (named ``ollama`` unless the host table knows the host as
another provider's), reading ``prompt_eval_count`` / ``eval_count`` as input / output tokens
and assembling a newline-delimited JSON stream (Ollama's default: one object a line, the last
with ``"done": true`` and the counts) into the final response with the whole message. Ollama's
OpenAI-compatible ``/v1`` paths are ``_openai``'s. Self-hosted: no public price applies.
"""

from __future__ import annotations

from typing import Any

from workbench.providers._common import (
    INVALID,
    JSON,
    TOO_DEEP,
    TOO_DEEP_TEXT,
    Read,
    Target,
    Usage,
    WireFormat,
    as_int,
    as_list,
    as_str,
    parse_json,
    provider_of,
    text_chars,
)

__all__ = ["FORMAT"]

_PATHS = (
    ("/api/chat", "chat"),
    ("/api/generate", "text_completion"),
    ("/api/embed", "embeddings"),
)
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl"})


def _recognise(target: Target) -> tuple[str, str] | None:
    for suffix, operation in _PATHS:
        if target.path.endswith(suffix):
            known = provider_of(target, "")
            # A path this generic may be an application's own API: on a host nobody named,
            # only a body naming a model makes it a model call.
            if known or (
                isinstance(target.body, dict) and isinstance(target.body.get("model"), str)
            ):
                return known or "ollama", operation
            return None
    return None


def _usage(data: dict[str, Any], operation: str) -> Usage | None:
    prompt = as_int(data.get("prompt_eval_count"))
    output = as_int(data.get("eval_count"))
    if operation == "embeddings" and prompt is not None:
        output = 0  # embeddings produce no tokens
    if prompt is None and output is None:
        return None
    # Ollama leaves prompt_eval_count out when the whole prompt came from its cache.
    return prompt if prompt is not None else 0, output, 0, 0


def _reads_json(provider: str, operation: str, data: JSON) -> bool:
    return isinstance(data, dict) and (
        "done" in data or (operation == "embeddings" and "embeddings" in data and "model" in data)
    )


def _read_json(operation: str, data: dict[str, Any]) -> Read:
    read = Read(response=data, model=as_str(data.get("model")))
    read.usage = _usage(data, operation)
    read.finish_reason = as_str(data.get("done_reason"))
    message = data.get("message")
    if isinstance(message, dict):
        read.text = as_str(message.get("content"))
        read.output_chars = len(read.text or "") + text_chars(message.get("tool_calls"))
    elif isinstance(data.get("response"), str):
        read.text = data["response"]
        read.output_chars = len(read.text)
    return read


def _reads_body(provider: str, operation: str, media_type: str) -> bool:
    return media_type in NDJSON_TYPES


def _read_ndjson(operation: str, body: bytes) -> Read:
    errors: list[str] = []
    chunks: list[dict[str, Any]] = []
    for number, line in enumerate(body.splitlines(), 1):
        if not line.strip():
            continue
        value = parse_json(line)
        if value is INVALID or value is TOO_DEEP or not isinstance(value, dict):
            errors.append(
                f"line {number} is {TOO_DEEP_TEXT}"
                if value is TOO_DEEP
                else f"line {number} is not a JSON object"
            )
            continue
        if "error" in value:
            errors.append(f"error line: {value['error']}")
            continue
        chunks.append(value)
    final: dict[str, Any] = next((c for c in reversed(chunks) if c.get("done")), {})
    if not final:
        errors.append('stream ended without its "done": true line')
        final = dict(chunks[-1]) if chunks else {}
    else:
        final = dict(final)
    contents: list[str] = []
    thinking: list[str] = []
    tool_calls: list[Any] = []
    responses: list[str] = []
    role = "assistant"
    for chunk in chunks:
        message = chunk.get("message")
        if isinstance(message, dict):
            role = as_str(message.get("role")) or role
            if isinstance(message.get("content"), str):
                contents.append(message["content"])
            if isinstance(message.get("thinking"), str):
                thinking.append(message["thinking"])
            tool_calls.extend(as_list(message.get("tool_calls")))
        if isinstance(chunk.get("response"), str):
            responses.append(chunk["response"])
    if operation == "text_completion" or (responses and not contents):
        final["response"] = "".join(responses)
    else:
        message = {"role": role, "content": "".join(contents)}
        if thinking:
            message["thinking"] = "".join(thinking)
        if tool_calls:
            message["tool_calls"] = tool_calls
        final["message"] = message
    read = _read_json(operation, final)
    read.errors = errors
    return read


FORMAT = WireFormat(
    name="ollama",
    recognise=_recognise,
    reads_json=_reads_json,
    read_json=_read_json,
    reads_body=_reads_body,
    read_body=_read_ndjson,
)
