"""Anthropic's Messages API: recognition, usage with prompt-cache counts, stream assembly.

Owns telling a messages call from an OpenAI path (``/v1/messages``, ``/messages`` on
``api.anthropic.com``, or a body shaped like a messages request), reading ``usage`` — whose
``input_tokens`` leaves out cache reads and writes, which OpenTelemetry's includes — and
assembling a stream (``message_start``, ``content_block_*``, ``message_delta``,
``message_stop``; text, tool input JSON, thinking and citations) into the message it stands
for. Anthropic's OpenAI-compatible endpoint is ``_openai``'s.
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
    error_text,
    event_objects,
    parse_json,
    text_chars,
)
from workbench.providers._sse import SSEEvent

__all__ = ["FORMAT", "anthropic_usage", "read_message"]


def _recognise(target: Target) -> tuple[str, str] | None:
    path = target.path
    if path.endswith("/messages") and (
        path.endswith("/v1/messages")
        or target.host == "api.anthropic.com"
        or (_looks_like_messages_request(target.body) and "/threads/" not in path)
    ):
        return "anthropic", "chat"
    return None


def _looks_like_messages_request(body: JSON) -> bool:
    return (
        isinstance(body, dict) and "messages" in body and "max_tokens" in body and "model" in body
    )


def _reads_json(provider: str, operation: str, data: JSON) -> bool:
    return (
        isinstance(data, dict)
        and operation not in ("embeddings", "responses")
        and (data.get("type") == "message" or ("content" in data and "choices" not in data))
    )


def _reads_sse(provider: str, operation: str, events: list[SSEEvent]) -> bool:
    if operation != "chat":
        return False
    for event in events[:3]:
        if event.event and event.event.startswith(("message_", "content_block_")):
            return True
        if '"type":"message_start"' in event.data or '"type": "message_start"' in event.data:
            return True
    return False


def anthropic_usage(usage: Any) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    uncached = as_int(usage.get("input_tokens"))
    cache_read = as_int(usage.get("cache_read_input_tokens")) or 0
    cache_write = as_int(usage.get("cache_creation_input_tokens")) or 0
    # Anthropic's input_tokens counts only the uncached part; OTel's includes the cache.
    input_tokens = None if uncached is None else uncached + cache_read + cache_write
    return input_tokens, as_int(usage.get("output_tokens")), cache_read, cache_write


def read_message(data: dict[str, Any]) -> Read:
    read = Read(response=data, model=as_str(data.get("model")))
    read.usage = anthropic_usage(data.get("usage"))
    read.finish_reason = as_str(data.get("stop_reason"))
    content = data.get("content")
    if isinstance(content, list):
        blocks = [block for block in content if isinstance(block, dict)]
        read.text = "".join(
            block["text"]
            for block in blocks
            if block.get("type") == "text" and isinstance(block.get("text"), str)
        )
        read.output_chars = sum(text_chars(block) for block in blocks)
    return read


def _read_stream(events: list[SSEEvent], errors: list[str]) -> Read:
    objects, _ = event_objects(events, errors)
    message: dict[str, Any] | None = None
    content: list[dict[str, Any]] = []
    usage: dict[str, Any] = {}
    tool_inputs: dict[int, list[str]] = {}
    stopped = False
    for event in objects:
        kind = event.get("type")
        if kind == "message_start" and isinstance(event.get("message"), dict):
            message = dict(event["message"])
            content = [dict(b) for b in as_list(message.get("content")) if isinstance(b, dict)]
            start_usage = message.get("usage")
            usage = dict(start_usage) if isinstance(start_usage, dict) else {}
        elif kind == "content_block_start" and isinstance(event.get("content_block"), dict):
            index = _block_index(event, len(content))
            if 0 <= index <= len(content) + 16:  # a wild index must not allocate a huge list
                while len(content) <= index:
                    content.append({})
                content[index] = dict(event["content_block"])
        elif kind == "content_block_delta" and isinstance(event.get("delta"), dict):
            index = _block_index(event, len(content) - 1)
            if 0 <= index < len(content):
                _apply_block_delta(content[index], event["delta"], tool_inputs, index)
        elif kind == "content_block_stop":
            index = _block_index(event, -1)
            if index in tool_inputs and 0 <= index < len(content):
                _finish_tool_input(content[index], tool_inputs.pop(index), index, errors)
        elif kind == "message_delta":
            if message is not None and isinstance(event.get("delta"), dict):
                message.update(event["delta"])
            if isinstance(event.get("usage"), dict):
                # message_delta counts are cumulative totals: they replace, not add to, the
                # message_start ones — and a count it omits keeps its earlier value.
                usage.update((k, v) for k, v in event["usage"].items() if v is not None)
        elif kind == "message_stop":
            stopped = True
        elif kind == "error":
            errors.append(f"error event: {error_text(event)}")
    for index, pieces in tool_inputs.items():  # blocks whose stop event never came
        if 0 <= index < len(content):
            _finish_tool_input(content[index], pieces, index, errors)
    if message is None:
        errors.append("stream has no message_start event")
        message = {"type": "message", "role": "assistant"}
    elif not stopped:
        errors.append("stream ended without message_stop")
    message["content"] = content
    message["usage"] = usage
    read = read_message(message)
    read.errors = errors
    return read


def _block_index(event: dict[str, Any], default: int) -> int:
    index = event.get("index")
    return index if type(index) is int else default


def _apply_block_delta(
    block: dict[str, Any], delta: dict[str, Any], tool_inputs: dict[int, list[str]], index: int
) -> None:
    kind = delta.get("type")
    if kind == "text_delta" and isinstance(delta.get("text"), str):
        block["text"] = (as_str(block.get("text")) or "") + delta["text"]
    elif kind == "input_json_delta" and isinstance(delta.get("partial_json"), str):
        tool_inputs.setdefault(index, []).append(delta["partial_json"])
    elif kind == "thinking_delta" and isinstance(delta.get("thinking"), str):
        block["thinking"] = (as_str(block.get("thinking")) or "") + delta["thinking"]
    elif kind == "signature_delta" and isinstance(delta.get("signature"), str):
        block["signature"] = delta["signature"]
    elif kind == "citations_delta" and "citation" in delta:
        block["citations"] = [*as_list(block.get("citations")), delta["citation"]]


def _finish_tool_input(
    block: dict[str, Any], pieces: list[str], index: int, errors: list[str]
) -> None:
    text = "".join(pieces)
    if not text:
        return  # the tool takes no input: keep the start event's {}
    value = parse_json(text)
    if value is INVALID or value is TOO_DEEP:
        errors.append(
            f"invalid tool input JSON in content block {index}"
            if value is INVALID
            else f"tool input in content block {index} is {TOO_DEEP_TEXT}"
        )
        value = {}
    block["input"] = value


FORMAT = WireFormat(
    name="anthropic",
    recognise=_recognise,
    reads_json=_reads_json,
    read_json=lambda operation, data: read_message(data),
    reads_sse=_reads_sse,
    read_sse=lambda operation, events, errors: _read_stream(events, errors),
)
