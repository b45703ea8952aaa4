"""Cohere's v2 API: ``/v2/chat`` (JSON and its server-sent-event stream) and ``/v2/embed``.

Owns recognising those paths (``cohere``), reading ``usage`` — ``billed_units``, what Cohere
charges, else ``tokens`` — and assembling a chat stream (``message-start``, ``content-delta``,
``tool-call-*``, ``message-end`` with the finish reason and usage) into the response it
stands for. The model is the request's: Cohere's responses do not name it.
"""

from __future__ import annotations

from typing import Any

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

_PATHS = (("/v2/chat", "chat"), ("/v2/embed", "embeddings"))


def _recognise(target: Target) -> tuple[str, str] | None:
    for suffix, operation in _PATHS:
        if target.path.endswith(suffix):
            known = provider_of(target, "")
            # A path this generic may be an application's own API: on a host nobody named,
            # only a body naming a model makes it a model call.
            if known or (
                isinstance(target.body, dict) and isinstance(target.body.get("model"), str)
            ):
                return known or "cohere", operation
            return None
    return None


def _usage(usage: Any, *, embeddings: bool = False) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    # billed_units is what the call is charged; tokens also counts Cohere's own system prompt.
    for name in ("billed_units", "tokens"):
        counts = usage.get(name)
        if isinstance(counts, dict):
            input_tokens = as_int(counts.get("input_tokens"))
            output_tokens = as_int(counts.get("output_tokens"))
            if embeddings and output_tokens is None and input_tokens is not None:
                output_tokens = 0
            if input_tokens is not None or output_tokens is not None:
                return input_tokens, output_tokens, 0, 0
    return None


def _reads_json(provider: str, operation: str, data: JSON) -> bool:
    if not isinstance(data, dict):
        return False
    if operation == "embeddings":
        return "embeddings" in data and "meta" in data
    return isinstance(data.get("message"), dict) and "finish_reason" in data


def _read_json(operation: str, data: dict[str, Any]) -> Read:
    if operation == "embeddings":
        read = Read(response=data)
        meta = data.get("meta")
        read.usage = _usage(meta, embeddings=True) if isinstance(meta, dict) else None
        return read
    read = Read(response=data)
    read.usage = _usage(data.get("usage"))
    read.finish_reason = as_str(data.get("finish_reason"))
    message = data["message"]
    blocks = [block for block in as_list(message.get("content")) if isinstance(block, dict)]
    read.text = "".join(
        block["text"]
        for block in blocks
        if block.get("type") == "text" and isinstance(block.get("text"), str)
    )
    read.output_chars = sum(text_chars(block) for block in blocks) + text_chars(
        message.get("tool_calls")
    )
    return read


_EVENTS = ("message-start", "content-start", "content-delta", "message-end")


def _reads_sse(provider: str, operation: str, events: list[SSEEvent]) -> bool:
    if operation != "chat":
        return False
    for event in events[:3]:
        if event.event in _EVENTS or any(f'"type":"{name}"' in event.data for name in _EVENTS):
            return True
    return False


def _read_sse(operation: str, events: list[SSEEvent], errors: list[str]) -> Read:
    objects, _ = event_objects(events, errors)
    response: dict[str, Any] = {}
    texts: list[str] = []
    tool_calls: dict[int, dict[str, Any]] = {}
    ended = False
    for event in objects:
        kind = event.get("type")
        delta = event.get("delta") if isinstance(event.get("delta"), dict) else {}
        message = delta.get("message") if isinstance(delta.get("message"), dict) else {}
        if kind == "message-start":
            if isinstance(event.get("id"), str):
                response["id"] = event["id"]
        elif kind == "content-delta":
            content = message.get("content")
            if isinstance(content, dict) and isinstance(content.get("text"), str):
                texts.append(content["text"])
        elif kind in ("tool-call-start", "tool-call-delta"):
            index = event.get("index") if type(event.get("index")) is int else len(tool_calls)
            call = message.get("tool_calls")
            if isinstance(call, dict):
                slot = tool_calls.setdefault(index, {"function": {"arguments": ""}})
                for name in ("id", "type"):
                    if call.get(name):
                        slot[name] = call[name]
                function = call.get("function")
                if isinstance(function, dict):
                    if isinstance(function.get("name"), str):
                        slot["function"]["name"] = function["name"]
                    if isinstance(function.get("arguments"), str):
                        slot["function"]["arguments"] += function["arguments"]
        elif kind == "message-end":
            ended = True
            if "finish_reason" in delta:
                response["finish_reason"] = delta["finish_reason"]
            if "usage" in delta:
                response["usage"] = delta["usage"]
            if delta.get("error"):
                errors.append(f"error event: {delta['error']}")
        elif kind == "error" or ("error" in event and kind is None):
            errors.append(f"error event: {error_text(event)}")
    if not ended:
        errors.append("stream ended without message-end")
    assembled: dict[str, Any] = {"role": "assistant", "content": []}
    if texts:
        assembled["content"] = [{"type": "text", "text": "".join(texts)}]
    if tool_calls:
        assembled["tool_calls"] = [call for _, call in sorted(tool_calls.items())]
    response.setdefault("finish_reason", None)
    response["message"] = assembled
    read = _read_json(operation, response)
    read.errors = errors
    return read


FORMAT = WireFormat(
    name="cohere",
    recognise=_recognise,
    reads_json=_reads_json,
    read_json=_read_json,
    reads_sse=_reads_sse,
    read_sse=_read_sse,
)
