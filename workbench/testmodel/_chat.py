"""OpenAI chat completions and legacy completions, as the test model answers them.

Owns reading a chat request's ``tools``, ``tool_choice`` and ``response_format`` into the
provider-neutral values of ``_reply``, and writing the answer back as a ``chat.completion`` body or
its ``chat.completion.chunk`` SSE sequence: prose, JSON for a schema, or a tool call whose
arguments stream in pieces. Also ``/v1/completions`` (``text_completion``). Does not own what the
answer says (``_answers``), the tool decision (``_reply``) nor HTTP (``_server``).
"""

from __future__ import annotations

from typing import Any

from workbench.testmodel._answers import answer_for, count_tokens, cut_answer, fingerprint, text_of
from workbench.testmodel._example import schema_of_example
from workbench.testmodel._protocol import (
    CallContext,
    InvalidRequest,
    JsonObject,
    JsonReply,
    Reply,
    StreamReply,
    optional_token_limit,
    require,
    sse,
)
from workbench.testmodel._reply import (
    AUTO,
    TEXT,
    OutputFormat,
    Tool,
    ToolCall,
    ToolChoice,
    Turn,
    decide,
)

SYSTEM_FINGERPRINT = "fp_workbench"


def chat_completions(body: JsonObject, ctx: CallContext) -> Reply:
    """``POST /v1/chat/completions``, as JSON or as ``chat.completion.chunk`` events."""
    model = require(body, "model", str, "a model name string")
    messages = require(body, "messages", list, "a list of message objects")
    limit = optional_token_limit(body, "max_completion_tokens", "max_tokens")
    tools, choice = _tool_choice(body, _tools(body))
    output = _output_format(body, messages)
    # One digest of the prompt seeds the generated JSON and keys the prompt cache.
    seed = fingerprint("openai", model, messages)

    decision = decide(
        tools,
        choice,
        _turn(messages),
        output,
        answer=answer_for(model, messages, None),
        limit=limit,
        seed=seed,
    )
    call = decision.call
    content = None if call is not None else decision.text
    finish_reason = "tool_calls" if call is not None else "length" if decision.cut else "stop"
    completion_tokens = decision.output_tokens
    pieces = decision.pieces

    prompt_tokens = sum(
        count_tokens(text_of(message.get("content")))
        for message in messages
        if isinstance(message, dict)
    )
    # OpenAI caches whole prompt prefixes automatically; a repeated prompt is the simplest prefix.
    (seen,) = ctx.cache.remember([seed])
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": prompt_tokens if seen else 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    header = {
        "id": "chatcmpl-" + ctx.call_id,
        "object": "chat.completion",
        "created": ctx.created,
        "model": model,
    }
    if body.get("stream") is True:
        first: JsonObject = {"role": "assistant", "content": "", "refusal": None}
        deltas: list[JsonObject] = [{"content": piece} for piece in pieces]
        if call is not None:
            # The call's id and name come first; its arguments follow in pieces, as at OpenAI.
            opening = _tool_call(call, "")
            first = {**first, "content": None, "tool_calls": [{"index": 0, **opening}]}
            deltas = [
                {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]} for piece in pieces
            ]
        stream_usage = usage if _include_usage(body) else None
        return _chunks(header, first, deltas, finish_reason, stream_usage)
    message: JsonObject = {
        "role": "assistant",
        "content": content,
        "refusal": None,
        "annotations": [],
    }
    if call is not None:
        message["tool_calls"] = [_tool_call(call, call.arguments_json)]
    return JsonReply(
        {
            **header,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
            ],
            "usage": usage,
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
    )


def _tool_call(call: ToolCall, arguments: str) -> JsonObject:
    return {
        "id": "call_" + call.call_id,
        "type": "function",
        "function": {"name": call.name, "arguments": arguments},
    }


def _include_usage(body: JsonObject) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _chunks(
    header: JsonObject,
    first: JsonObject,
    deltas: list[JsonObject],
    finish_reason: str,
    usage: JsonObject | None,
) -> StreamReply:
    base = {
        **header,
        "object": "chat.completion.chunk",
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
    if usage is not None:
        # With include_usage, OpenAI puts "usage": null on every chunk but the last.
        base["usage"] = None

    def chunk(delta: JsonObject, finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return sse({**base, "choices": [choice]})

    events = [chunk(first), *(chunk(delta) for delta in deltas), chunk({}, finish_reason)]
    if usage is not None:
        events.append(sse({**base, "choices": [], "usage": usage}))
    events.append(b"data: [DONE]\n\n")
    return StreamReply(tuple(events), break_at=1 + len(deltas) // 2)


def _tools(body: JsonObject) -> list[Tool]:
    """The function tools offered; custom (grammar) tools take no JSON arguments and are skipped."""
    raw = body.get("tools")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidRequest(f"tools: expected a list of tool objects, got {raw!r:.60}")
    tools = []
    for index, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise InvalidRequest(f"tools.{index}: expected a tool object, got {entry!r:.60}")
        if entry.get("type", "function") != "function":
            continue
        function = entry.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequest(f"tools.{index}.function.name: Field required (a string)")
        tools.append(Tool(function["name"], function.get("parameters")))
    return tools


def _tool_choice(body: JsonObject, tools: list[Tool]) -> tuple[list[Tool], ToolChoice]:
    """The tools the model may call and how, from ``tool_choice`` (default ``auto``)."""
    raw = body.get("tool_choice")
    if raw is None or raw == "auto":
        return tools, AUTO
    if raw in ("none", "required"):
        return tools, ToolChoice(raw)
    if isinstance(raw, dict):
        function = raw.get("function")
        if raw.get("type") == "function" and isinstance(function, dict):
            name = function.get("name")
            if isinstance(name, str):
                return tools, ToolChoice("required", name)
        allowed = raw.get("allowed_tools")
        if raw.get("type") == "allowed_tools" and isinstance(allowed, dict):
            names = {
                entry["function"].get("name")
                for entry in allowed.get("tools") or ()
                if isinstance(entry, dict) and isinstance(entry.get("function"), dict)
            }
            mode = "required" if allowed.get("mode") == "required" else "auto"
            return [tool for tool in tools if tool.name in names], ToolChoice(mode)
    raise InvalidRequest(
        f"tool_choice: expected 'none', 'auto', 'required', "
        f'{{"type": "function", "function": {{"name": ...}}}} or allowed_tools, got {raw!r:.80}'
    )


def _turn(messages: list[Any]) -> Turn:
    called: set[str] = set()
    answered = False
    for message in reversed(messages):
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if role == "user":
            break
        if role in ("tool", "function"):
            answered = True
        elif role == "assistant":
            for call in message.get("tool_calls") or ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict) and isinstance(function.get("name"), str):
                    called.add(function["name"])
    return Turn(frozenset(called), answered)


def _output_format(body: JsonObject, messages: list[Any]) -> OutputFormat:
    raw = body.get("response_format")
    if raw is None:
        return TEXT
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind == "text":
        return TEXT
    if kind == "json_object":
        prompt = "\n".join(
            text_of(message.get("content")) for message in messages if isinstance(message, dict)
        )
        return OutputFormat("json_object", schema_of_example(prompt))
    if kind == "json_schema" and isinstance(raw, dict):
        spec = raw.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return OutputFormat("json_schema", {} if schema is None else schema)
    raise InvalidRequest(
        f"response_format: expected type 'text', 'json_object' or 'json_schema', got {raw!r:.80}"
    )


def completions(body: JsonObject, ctx: CallContext) -> Reply:
    """``POST /v1/completions``: a legacy text completion, as JSON or ``text_completion`` events."""
    model = require(body, "model", str, "a model name string")
    raw = body.get("prompt")
    if raw is None:
        raise InvalidRequest("prompt: Field required (a string or a list of strings)")
    prompts: list[Any] = (
        raw if isinstance(raw, list) and raw and not isinstance(raw[0], int) else [raw]
    )
    limit = optional_token_limit(body, "max_tokens")
    choices = []
    prompt_tokens = completion_tokens = 0
    for index, prompt in enumerate(prompts):
        text = prompt if isinstance(prompt, str) else str(prompt)
        words, was_cut = cut_answer(
            answer_for(model, [{"role": "user", "content": text}], None), limit
        )
        prompt_tokens += count_tokens(text)
        completion_tokens += len(words)
        choices.append((index, words, "length" if was_cut else "stop"))
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    header = {
        "id": "cmpl-" + ctx.call_id,
        "object": "text_completion",
        "created": ctx.created,
        "model": model,
    }
    if body.get("stream") is not True:
        return JsonReply(
            {
                **header,
                "choices": [
                    {
                        "text": " ".join(words),
                        "index": index,
                        "logprobs": None,
                        "finish_reason": end,
                    }
                    for index, words, end in choices
                ],
                "usage": usage,
                "system_fingerprint": SYSTEM_FINGERPRINT,
            }
        )

    def chunk(index: int, text: str, finish: str | None = None) -> bytes:
        choice = {"text": text, "index": index, "logprobs": None, "finish_reason": finish}
        return sse({**header, "choices": [choice], "system_fingerprint": SYSTEM_FINGERPRINT})

    events = []
    for index, words, end in choices:
        events += [chunk(index, word if i == 0 else " " + word) for i, word in enumerate(words)]
        events.append(chunk(index, "", end))
    if _include_usage(body):
        events.append(sse({**header, "choices": [], "usage": usage}))
    events.append(b"data: [DONE]\n\n")
    return StreamReply(tuple(events), break_at=len(events) // 2)
