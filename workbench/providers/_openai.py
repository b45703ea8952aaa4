"""OpenAI's chat completions, legacy completions and embeddings — and every server that copies them.

Owns recognising those paths (on any host: the host only says *whose* server it is, through
``workbench._hosts``: Groq, Gemini's OpenAI-compatible API, Azure OpenAI, Ollama's ``/v1``,
...), reading their usage (``prompt_tokens_details.cached_tokens`` included) and assembling a
chat or completions stream (``data:`` chunks ending with ``[DONE]``, the
``stream_options.include_usage`` usage chunk) into the non-streaming response. This is the
format of last resort: a response no other provider module claims is read as this one.
The Responses API is ``_responses``; audio and images are ``_openai_media``.
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

__all__ = ["FORMAT", "openai_usage", "provider_of"]

# OpenAI's API paths, which every OpenAI-compatible server copies; the host says whose it is.
_PATHS = (
    ("/chat/completions", "chat"),
    ("/completions", "text_completion"),
    ("/embeddings", "embeddings"),
)


def _recognise(target: Target) -> tuple[str, str] | None:
    for suffix, operation in _PATHS:
        if target.path.endswith(suffix):
            return provider_of(target), operation
    return None


def openai_usage(usage: Any, *, embeddings: bool = False) -> Usage | None:
    """OpenAI's ``usage`` (chat, embeddings and Responses spellings) as a :data:`Usage`."""
    if not isinstance(usage, dict):
        return None
    details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details")
    if not isinstance(details, dict):
        details = {}
    input_tokens = as_int(usage.get("prompt_tokens", usage.get("input_tokens")))
    output_tokens = as_int(usage.get("completion_tokens", usage.get("output_tokens")))
    if embeddings and output_tokens is None:
        output_tokens = 0  # embeddings produce no tokens; 0 is a fact, not a gap
    # OpenAI's input count already includes cache reads and writes, as OTel's does.
    cache_read = as_int(details.get("cached_tokens")) or 0
    cache_write = as_int(details.get("cache_write_tokens")) or 0
    return input_tokens, output_tokens, cache_read, cache_write


def _reads_json(provider: str, operation: str, data: JSON) -> bool:
    return isinstance(data, dict)


def _read_json(operation: str, data: dict[str, Any]) -> Read:
    if operation == "embeddings":
        read = Read(response=data, model=as_str(data.get("model")))
        read.usage = openai_usage(data.get("usage"), embeddings=True)
        return read
    return _read_choices(data)


def _message_text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts, as some OpenAI-compatible servers send
        texts = [part.get("text") for part in content if isinstance(part, dict)]
        return "".join(text for text in texts if isinstance(text, str))
    return None


def _read_choices(data: dict[str, Any]) -> Read:
    read = Read(response=data, model=as_str(data.get("model")))
    read.usage = openai_usage(data.get("usage"))
    choices = data.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        first = choices[0]
        read.finish_reason = as_str(first.get("finish_reason"))
        message = first.get("message")
        if isinstance(message, dict):
            read.text = _message_text(message.get("content"))
            read.output_chars = len(read.text or "") + _tool_call_chars(message.get("tool_calls"))
        else:  # legacy completions
            read.text = as_str(first.get("text"))
            read.output_chars = len(read.text or "")
    return read


def _tool_call_chars(tool_calls: Any) -> int:
    if not isinstance(tool_calls, list):
        return 0
    return sum(text_chars(call.get("function")) for call in tool_calls if isinstance(call, dict))


def _reads_sse(provider: str, operation: str, events: list[SSEEvent]) -> bool:
    return True


def _read_stream(events: list[SSEEvent], errors: list[str], *, chat: bool) -> Read:
    objects, done = event_objects(events, errors, "[DONE]")
    top: dict[str, Any] = {}
    usage: Any = None
    choices: dict[int, dict[str, Any]] = {}
    for chunk in objects:
        if "error" in chunk:
            errors.append(f"error event: {error_text(chunk)}")
            continue
        for name in ("id", "created", "model", "system_fingerprint", "service_tier"):
            # Azure OpenAI opens a stream with a content-filter chunk whose model and id are
            # "" and created is 0: the first chunk with a real value names the call.
            if name not in top and chunk.get(name) not in (None, "", 0):
                top[name] = chunk[name]
        if chunk.get("usage") is not None:
            usage = chunk["usage"]
        for choice in as_list(chunk.get("choices")):
            if isinstance(choice, dict):
                index = choice.get("index", 0)
                index = index if type(index) is int else 0
                _accumulate_choice(choices.setdefault(index, {"index": index}), choice, chat=chat)
    if not done:
        errors.append("stream ended without [DONE]")

    assembled = [_finish_choice(choices[index], chat=chat) for index in sorted(choices)]
    response = {
        "id": top.get("id"),
        "object": "chat.completion" if chat else "text_completion",
        "created": top.get("created"),
        "model": top.get("model"),
        "choices": assembled,
        "usage": usage,
    }
    for name in ("system_fingerprint", "service_tier"):
        if name in top:
            response[name] = top[name]
    read = _read_choices(response)
    read.errors = errors
    return read


def _accumulate_choice(state: dict[str, Any], choice: dict[str, Any], *, chat: bool) -> None:
    if choice.get("finish_reason") is not None:
        state["finish_reason"] = choice["finish_reason"]
    logprobs = choice.get("logprobs")
    if isinstance(logprobs, dict):
        for name in ("content", "refusal"):
            if isinstance(logprobs.get(name), list):
                state.setdefault("logprobs_" + name, []).extend(logprobs[name])
    if not chat:
        if isinstance(choice.get("text"), str):
            state.setdefault("text", []).append(choice["text"])
        return
    delta = choice.get("delta")
    if not isinstance(delta, dict):
        return
    if isinstance(delta.get("role"), str):
        state["role"] = delta["role"]
    for name in ("content", "refusal"):
        if isinstance(delta.get(name), str):
            state.setdefault(name, []).append(delta[name])
    if isinstance(delta.get("function_call"), dict):
        _accumulate_function(state.setdefault("function_call", {}), delta["function_call"])
    for call in as_list(delta.get("tool_calls")):
        if not isinstance(call, dict):
            continue
        calls = state.setdefault("tool_calls", {})
        index = call.get("index")
        slot = calls.setdefault(index if type(index) is int else len(calls), {"function": {}})
        for name in ("id", "type"):
            if call.get(name):
                slot[name] = call[name]
        if isinstance(call.get("function"), dict):
            _accumulate_function(slot["function"], call["function"])


def _accumulate_function(target: dict[str, Any], delta: dict[str, Any]) -> None:
    # Names and arguments arrive in pieces, as the SDKs' own accumulators assume.
    for name in ("name", "arguments"):
        if isinstance(delta.get(name), str):
            target[name] = target.get(name, "") + delta[name]


def _finish_choice(state: dict[str, Any], *, chat: bool) -> dict[str, Any]:
    logprobs = None
    if "logprobs_content" in state or "logprobs_refusal" in state:
        logprobs = {
            "content": state.get("logprobs_content"),
            "refusal": state.get("logprobs_refusal"),
        }
    if not chat:
        return {
            "index": state["index"],
            "text": "".join(state.get("text", ())),
            "finish_reason": state.get("finish_reason"),
            "logprobs": logprobs,
        }
    message: dict[str, Any] = {
        "role": state.get("role", "assistant"),
        "content": "".join(state["content"]) if "content" in state else None,
        "refusal": "".join(state["refusal"]) if "refusal" in state else None,
    }
    if "function_call" in state:
        message["function_call"] = state["function_call"]
    if "tool_calls" in state:
        message["tool_calls"] = [
            {
                "id": slot.get("id"),
                "type": slot.get("type", "function"),
                "function": {
                    "name": slot["function"].get("name", ""),
                    "arguments": slot["function"].get("arguments", ""),
                },
            }
            for _, slot in sorted(state["tool_calls"].items())
        ]
    return {
        "index": state["index"],
        "message": message,
        "finish_reason": state.get("finish_reason"),
        "logprobs": logprobs,
    }


FORMAT = WireFormat(
    name="openai",
    recognise=_recognise,
    reads_json=_reads_json,
    read_json=_read_json,
    reads_sse=_reads_sse,
    read_sse=lambda operation, events, errors: _read_stream(
        events, errors, chat=operation != "text_completion"
    ),
)
