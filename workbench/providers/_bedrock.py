"""Amazon Bedrock's runtime API: ``converse`` / ``converse-stream``, and ``invoke`` of Claude.

Owns recognising ``/model/<model id>/converse`` (and ``converse-stream``, ``invoke``,
``invoke-with-response-stream``) as ``aws.bedrock``'s ``chat``, the model id from that path
(Bedrock's bodies do not name it), reading the Converse ``usage`` (``inputTokens`` leaves out
cache reads and writes, which OpenTelemetry's input includes) and assembling a
``converse-stream`` — an AWS binary event stream (``_eventstream``) of ``messageStart``,
``contentBlockDelta``, ``messageStop`` and the final ``metadata`` event with the usage — into
the Converse response. ``invoke`` bodies are the model's own format: Anthropic's messages are
read by ``_anthropic``, and so are the events an ``invoke-with-response-stream`` carries.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any
from urllib.parse import unquote

from workbench._eventstream import decode_events
from workbench.providers import _anthropic
from workbench.providers._common import (
    INVALID,
    JSON,
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
from workbench.providers._sse import SSEEvent

__all__ = ["FORMAT"]

_PATH = re.compile(r"/model/([^/]+)/(converse|converse-stream|invoke|invoke-with-response-stream)$")
EVENT_STREAM = "application/vnd.amazon.eventstream"


def _recognise(target: Target) -> tuple[str, str] | None:
    if _PATH.search(target.path) is None:
        return None
    return provider_of(target, "aws.bedrock"), "chat"


def _model_of(target: Target) -> str | None:
    found = _PATH.search(target.path)
    return unquote(found.group(1)) if found else None


def _usage(usage: Any) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    uncached = as_int(usage.get("inputTokens"))
    cache_read = as_int(usage.get("cacheReadInputTokens")) or 0
    cache_write = as_int(usage.get("cacheWriteInputTokens")) or 0
    input_tokens = None if uncached is None else uncached + cache_read + cache_write
    return input_tokens, as_int(usage.get("outputTokens")), cache_read, cache_write


def _reads_json(provider: str, operation: str, data: JSON) -> bool:
    return (
        isinstance(data, dict)
        and isinstance(data.get("output"), dict)
        and ("stopReason" in data or "usage" in data)
    )


def _read_json(operation: str, data: dict[str, Any]) -> Read:
    read = Read(response=data)
    read.usage = _usage(data.get("usage"))
    read.finish_reason = as_str(data.get("stopReason"))
    message = data["output"].get("message")
    blocks = as_list(message.get("content")) if isinstance(message, dict) else []
    blocks = [block for block in blocks if isinstance(block, dict)]
    read.text = "".join(block["text"] for block in blocks if isinstance(block.get("text"), str))
    read.output_chars = sum(text_chars(block) for block in blocks)
    return read


def _reads_body(provider: str, operation: str, media_type: str) -> bool:
    return media_type == EVENT_STREAM


def _read_event_stream(operation: str, body: bytes) -> Read:
    events, errors = decode_events(body)
    objects: list[tuple[str, Any]] = []
    for number, event in enumerate(events, 1):
        kind = event.headers.get(":event-type") or event.headers.get(":exception-type") or ""
        if event.headers.get(":message-type", "event") != "event":
            value = parse_json(event.payload)
            message = value.get("message") if isinstance(value, dict) else None
            errors.append(f"error event: {kind}: {message or event.payload[:200]!r}")
            continue
        value = parse_json(event.payload)
        if not isinstance(value, dict):
            errors.append(f"event {number} is not a JSON object")
            continue
        objects.append((kind, value))
    if any(kind == "chunk" for kind, _ in objects):
        return _read_invoke_stream(objects, errors)
    return _read_converse_stream(objects, errors)


def _read_converse_stream(objects: list[tuple[str, Any]], errors: list[str]) -> Read:
    role = "assistant"
    blocks: dict[int, dict[str, Any]] = {}
    tool_inputs: dict[int, list[str]] = {}
    response: dict[str, Any] = {}
    for kind, event in objects:
        index = event.get("contentBlockIndex")
        index = index if type(index) is int else 0
        if kind == "messageStart":
            role = as_str(event.get("role")) or role
        elif kind == "contentBlockStart" and isinstance(event.get("start"), dict):
            tool = event["start"].get("toolUse")
            if isinstance(tool, dict):
                blocks[index] = {"toolUse": {**tool, "input": {}}}
        elif kind == "contentBlockDelta" and isinstance(event.get("delta"), dict):
            delta = event["delta"]
            block = blocks.setdefault(index, {})
            if isinstance(delta.get("text"), str):
                block["text"] = block.get("text", "") + delta["text"]
            tool = delta.get("toolUse")
            if isinstance(tool, dict) and isinstance(tool.get("input"), str):
                tool_inputs.setdefault(index, []).append(tool["input"])
        elif kind == "messageStop":
            response["stopReason"] = event.get("stopReason")
        elif kind == "metadata":
            for name in ("usage", "metrics"):
                if name in event:
                    response[name] = event[name]
    for index, pieces in tool_inputs.items():
        value = parse_json("".join(pieces)) if pieces else {}
        if value is INVALID or not isinstance(value, dict):
            errors.append(f"invalid tool input JSON in content block {index}")
            value = {}
        blocks.setdefault(index, {}).setdefault("toolUse", {})["input"] = value
    if "stopReason" not in response:
        errors.append("stream ended without messageStop")
    if "usage" not in response:
        errors.append("stream ended without its metadata event (no usage)")
    content = [blocks[index] for index in sorted(blocks)]
    assembled = {"output": {"message": {"role": role, "content": content}}, **response}
    read = _read_json("chat", assembled)
    read.errors = errors
    return read


def _read_invoke_stream(objects: list[tuple[str, Any]], errors: list[str]) -> Read:
    """An ``invoke-with-response-stream`` of Claude: each ``chunk`` event carries one of
    Anthropic's stream events, base64-encoded, read as Anthropic's stream is."""
    events: list[SSEEvent] = []
    for _, event in objects:
        try:
            data = base64.b64decode(event.get("bytes") or "", validate=True)
        except (binascii.Error, ValueError):
            errors.append("a chunk event's bytes are not base64")
            continue
        events.append(SSEEvent(None, data.decode("utf-8", "replace")))
    return _anthropic.FORMAT.read_sse("chat", events, errors)  # type: ignore[misc]


FORMAT = WireFormat(
    name="bedrock",
    recognise=_recognise,
    reads_json=_reads_json,
    read_json=_read_json,
    reads_body=_reads_body,
    read_body=_read_event_stream,
    model_of=_model_of,
)
