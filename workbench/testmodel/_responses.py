"""The OpenAI Responses API, as the test model answers it (``POST /v1/responses``).

Owns reading a Responses request (``input`` as text or items, ``instructions``, function
``tools``, ``tool_choice``, ``text.format``, ``max_output_tokens``) into the provider-neutral values
of ``_reply``, and writing the answer back as a ``response`` object or its event stream
(``response.created`` … ``response.completed``) in the shapes the ``openai`` SDK parses, for
``client.responses.create``, ``.parse`` and ``.stream`` and for openai-agents. The server keeps no
conversation state: ``previous_response_id`` is echoed, not followed. Hosted tools (web search,
file search, …) are never run. Does not own what the answer says (``_answers``), the tool
decision (``_reply``) nor HTTP (``_server``).
"""

from __future__ import annotations

from typing import Any

from workbench.testmodel._answers import answer_for, count_tokens, fingerprint, text_of
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
    ToolChoice,
    Turn,
    decide,
)

# Input items that carry a tool's result back to the model.
_TOOL_OUTPUTS = frozenset(
    {"function_call_output", "custom_tool_call_output", "computer_call_output", "mcp_call"}
)


def responses(body: JsonObject, ctx: CallContext) -> Reply:
    """``POST /v1/responses``, as a ``response`` object or as its server-sent event stream."""
    model = require(body, "model", str, "a model name string")
    items = _input_items(body)
    instructions = body.get("instructions")
    limit = optional_token_limit(body, "max_output_tokens")
    tools, choice = _tool_choice(body, _tools(body))
    output = _output_format(body, items, instructions)
    # One digest of the prompt seeds the generated JSON and keys the prompt cache.
    seed = fingerprint("openai-responses", model, items, instructions)

    decision = decide(
        tools,
        choice,
        _turn(items),
        output,
        answer=answer_for(model, items, instructions),
        limit=limit,
        seed=seed,
    )
    call = decision.call
    if call is not None:
        item: JsonObject = {
            "id": "fc_" + call.call_id,
            "type": "function_call",
            "status": "completed",
            "call_id": "call_" + call.call_id,
            "name": call.name,
            "arguments": call.arguments_json,
        }
    else:
        part = {"type": "output_text", "text": decision.text, "annotations": [], "logprobs": []}
        item = {
            "id": "msg_" + ctx.call_id,
            "type": "message",
            "status": "incomplete" if decision.cut else "completed",
            "role": "assistant",
            "content": [part],
        }

    input_tokens = count_tokens(text_of(instructions)) + sum(map(_item_tokens, items))
    (seen,) = ctx.cache.remember([seed])
    response = _response(body, ctx, model, [item])
    response["usage"] = {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": input_tokens if seen else 0},
        "output_tokens": decision.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + decision.output_tokens,
    }
    if decision.cut:
        response["status"] = "incomplete"
        response["incomplete_details"] = {"reason": "max_output_tokens"}
    if body.get("stream") is True:
        return _stream(response, item, decision.pieces)
    return JsonReply(response)


def _response(
    body: JsonObject, ctx: CallContext, model: str, output: list[JsonObject]
) -> JsonObject:
    """The ``response`` object, echoing the request's settings as the API does."""
    text = body.get("text") if isinstance(body.get("text"), dict) else {}
    return {
        "id": "resp_" + ctx.call_id,
        "object": "response",
        "created_at": ctx.created,
        "status": "completed",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"),
        "model": model,
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}, **text},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "usage": None,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def _stream(response: JsonObject, item: JsonObject, pieces: tuple[str, ...]) -> StreamReply:
    """The event sequence of one output item, numbered as the SDK's stream helper expects."""
    events: list[bytes] = []

    def emit(kind: str, **fields: Any) -> None:
        events.append(sse({"type": kind, "sequence_number": len(events), **fields}, kind))

    started = {**response, "status": "in_progress", "output": [], "usage": None}
    started["incomplete_details"] = None
    emit("response.created", response=started)
    emit("response.in_progress", response=started)
    at = {"item_id": item["id"], "output_index": 0}
    if item["type"] == "message":
        part = item["content"][0]
        opening = {**item, "status": "in_progress", "content": []}
        emit("response.output_item.added", output_index=0, item=opening)
        emit("response.content_part.added", **at, content_index=0, part={**part, "text": ""})
        first_delta = len(events)
        for piece in pieces:
            emit("response.output_text.delta", **at, content_index=0, delta=piece, logprobs=[])
        emit("response.output_text.done", **at, content_index=0, text=part["text"], logprobs=[])
        emit("response.content_part.done", **at, content_index=0, part=part)
    else:
        opening = {**item, "status": "in_progress", "arguments": ""}
        emit("response.output_item.added", output_index=0, item=opening)
        first_delta = len(events)
        for piece in pieces:
            emit("response.function_call_arguments.delta", **at, delta=piece)
        emit(
            "response.function_call_arguments.done",
            **at,
            name=item["name"],
            arguments=item["arguments"],
        )
    emit("response.output_item.done", output_index=0, item=item)
    final = "response.incomplete" if response["status"] == "incomplete" else "response.completed"
    emit(final, response=response)
    return StreamReply(tuple(events), break_at=first_delta + len(pieces) // 2)


def _input_items(body: JsonObject) -> list[Any]:
    """``input`` as a list of items; a plain string is one user message."""
    raw = body.get("input")
    if raw is None:
        return []
    if isinstance(raw, str):
        return [{"role": "user", "content": raw}]
    if isinstance(raw, list):
        return raw
    raise InvalidRequest(f"input: expected a string or a list of input items, got {raw!r:.60}")


def _item_tokens(item: object) -> int:
    if not isinstance(item, dict):
        return 0
    output = item.get("output")
    return count_tokens(text_of(item.get("content"))) + count_tokens(text_of(output))


def _tools(body: JsonObject) -> list[Tool]:
    """The function tools offered; hosted tools are the provider's to run, and skipped here."""
    raw = body.get("tools")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidRequest(f"tools: expected a list of tool objects, got {raw!r:.60}")
    tools = []
    for index, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise InvalidRequest(f"tools.{index}: expected a tool object, got {entry!r:.60}")
        if entry.get("type") != "function":
            continue
        if not isinstance(entry.get("name"), str):
            raise InvalidRequest(f"tools.{index}.name: Field required (a string)")
        tools.append(Tool(entry["name"], entry.get("parameters")))
    return tools


def _tool_choice(body: JsonObject, tools: list[Tool]) -> tuple[list[Tool], ToolChoice]:
    raw = body.get("tool_choice")
    if raw is None or raw == "auto":
        return tools, AUTO
    if raw in ("none", "required"):
        return tools, ToolChoice(raw)
    if isinstance(raw, dict):
        kind = raw.get("type")
        if kind == "function" and isinstance(raw.get("name"), str):
            return tools, ToolChoice("required", raw["name"])
        if kind == "allowed_tools":
            names = {
                entry.get("name") for entry in raw.get("tools") or () if isinstance(entry, dict)
            }
            mode = "required" if raw.get("mode") == "required" else "auto"
            return [tool for tool in tools if tool.name in names], ToolChoice(mode)
        if isinstance(kind, str):
            # A hosted tool (web_search, file_search, mcp, …) forced: the test model runs none,
            # so it answers in text, as the provider would after running the tool.
            return [], ToolChoice("none")
    raise InvalidRequest(
        f"tool_choice: expected 'none', 'auto', 'required', "
        f'{{"type": "function", "name": ...}} or allowed_tools, got {raw!r:.80}'
    )


def _turn(items: list[Any]) -> Turn:
    called: set[str] = set()
    answered = False
    for item in reversed(items):
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if item.get("role") == "user" and kind in (None, "message"):
            break
        if kind in _TOOL_OUTPUTS:
            answered = True
        elif kind == "function_call" and isinstance(item.get("name"), str):
            called.add(item["name"])
    return Turn(frozenset(called), answered)


def _output_format(body: JsonObject, items: list[Any], instructions: object) -> OutputFormat:
    text = body.get("text")
    raw = text.get("format") if isinstance(text, dict) else None
    if raw is None:
        return TEXT
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind == "text":
        return TEXT
    if kind == "json_object":
        prompt = "\n".join(
            [
                text_of(instructions),
                *(text_of(item.get("content")) for item in items if isinstance(item, dict)),
            ]
        )
        return OutputFormat("json_object", schema_of_example(prompt))
    if kind == "json_schema" and isinstance(raw, dict):
        schema = raw.get("schema")
        return OutputFormat("json_schema", {} if schema is None else schema)
    raise InvalidRequest(
        f"text.format: expected type 'text', 'json_object' or 'json_schema', got {raw!r:.80}"
    )
