"""The Anthropic dialect of the test server: messages, token counts and models.

Owns the ``message`` JSON body (a text block, or a ``tool_use`` block whose input is generated
from the tool's ``input_schema``), the full ``message_start`` … ``message_stop`` SSE sequence
(``text_delta`` or ``input_json_delta``), reading ``tools``, ``tool_choice`` and
``output_config.format`` into the values of ``_reply``, the ``{"type": "error", ...}`` body, and
how ``cache_control`` breakpoints turn into cache-creation and cache-read token counts. Does not
own what the answer says (``_answers``), the tool decision (``_reply``) nor HTTP (``_server``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import orjson

from workbench.testmodel._answers import (
    PromptCache,
    answer_for,
    count_tokens,
    fingerprint,
    text_of,
)
from workbench.testmodel._protocol import (
    CallContext,
    Dialect,
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

_MODELS = ("claude-haiku-4-5", "claude-sonnet-4-5")

_ERROR_TYPES = {
    400: "invalid_request_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
}


def error_payload(status: int, message: str) -> JsonObject:
    """Anthropic's error body: ``{"type": "error", "error": {"type", "message"}}``."""
    return {
        "type": "error",
        "error": {"type": _ERROR_TYPES.get(status, "api_error"), "message": message},
    }


def _prompt_blocks(system: object, messages: list[object]) -> Iterator[tuple[str, object]]:
    """Every block of the prompt in the order Anthropic caches it: system, then each message's."""
    if isinstance(system, list):
        yield from (("system", block) for block in system)
    elif system is not None:
        yield "system", system
    for message in messages:
        if not isinstance(message, dict):
            continue
        role = str(message.get("role"))
        content = message.get("content")
        if isinstance(content, list):
            yield from ((role, block) for block in content)
        else:
            yield role, content


def cache_split(
    model: str, system: object, messages: list[object], cache: PromptCache
) -> tuple[int, int, int]:
    """``(input_tokens, cache_creation_input_tokens, cache_read_input_tokens)`` of a prompt.

    Each block carrying ``cache_control`` ends a cacheable prefix. As at Anthropic, the longest
    prefix sent before is read from cache, the rest up to the last breakpoint is written to it,
    and ``input_tokens`` counts only what lies after the last breakpoint.
    """
    prefix = hashlib.blake2b(model.encode(), digest_size=16)
    total = 0
    breakpoints: list[tuple[str, int]] = []  # (prefix key, tokens up to and including it)
    for role, block in _prompt_blocks(system, messages):
        marked = isinstance(block, dict) and block.get("cache_control") is not None
        if isinstance(block, dict) and marked:
            # Moving a breakpoint must not change the key of the content it covers.
            block = {key: value for key, value in block.items() if key != "cache_control"}
        prefix.update(orjson.dumps([role, block], option=orjson.OPT_SORT_KEYS))
        total += count_tokens(text_of(block))
        if marked:
            breakpoints.append((prefix.hexdigest(), total))
    if not breakpoints:
        return total, 0, 0
    seen = cache.remember([key for key, _ in breakpoints])
    read = max(
        (tokens for (_, tokens), hit in zip(breakpoints, seen, strict=True) if hit), default=0
    )
    written = breakpoints[-1][1] - read
    return total - read - written, written, read


def messages(body: JsonObject, ctx: CallContext) -> Reply:
    """``POST /v1/messages``, as a JSON ``message`` or as Anthropic's SSE event sequence."""
    model = require(body, "model", str, "a model name string")
    prompt = require(body, "messages", list, "a list of message objects")
    require(body, "max_tokens", int, "an integer of at least 1")  # required by Anthropic
    limit = optional_token_limit(body, "max_tokens")
    system = body.get("system")
    tools, choice = _tool_choice(body, _tools(body))
    output = _output_format(body)
    seed = fingerprint("anthropic", model, prompt, system)

    decision = decide(
        tools,
        choice,
        _turn(prompt),
        output,
        answer=answer_for(model, prompt, system),
        limit=limit,
        seed=seed,
    )
    call = decision.call
    if call is not None:
        block: JsonObject = {
            "type": "tool_use",
            "id": "toolu_" + call.call_id,
            "name": call.name,
            "input": call.arguments,
        }
        # The stream sends the input as JSON text in pieces, after an empty object and delta.
        opening: JsonObject = {**block, "input": {}}
        deltas = [
            {"type": "input_json_delta", "partial_json": piece} for piece in ("", *decision.pieces)
        ]
        stop_reason = "tool_use"
    else:
        block = {"type": "text", "text": decision.text}
        opening = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": piece} for piece in decision.pieces]
        stop_reason = "max_tokens" if decision.cut else "end_turn"
    input_tokens, written, read = cache_split(model, system, prompt, ctx.cache)
    usage = {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
        "output_tokens": decision.output_tokens,
        "service_tier": "standard",
    }
    message = {
        "id": "msg_" + ctx.call_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [block],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }
    if body.get("stream") is not True:
        return JsonReply(message)

    # Anthropic opens with an empty message whose usage counts the input and a token or so.
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "usage": {**usage, "output_tokens": 1},
    }
    final_usage = {key: value for key, value in usage.items() if key != "service_tier"}
    events = [
        sse({"type": "message_start", "message": start}, "message_start"),
        sse(
            {"type": "content_block_start", "index": 0, "content_block": opening},
            "content_block_start",
        ),
        sse({"type": "ping"}, "ping"),
        *(
            sse({"type": "content_block_delta", "index": 0, "delta": delta}, "content_block_delta")
            for delta in deltas
        ),
        sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": final_usage,
            },
            "message_delta",
        ),
        sse({"type": "message_stop"}, "message_stop"),
    ]
    return StreamReply(tuple(events), break_at=3 + len(deltas) // 2)


def count_message_tokens(body: JsonObject, ctx: CallContext) -> Reply:
    """``POST /v1/messages/count_tokens``: the input tokens ``messages`` would report."""
    require(body, "model", str, "a model name string")  # required, though the count ignores it
    prompt = require(body, "messages", list, "a list of message objects")
    total = sum(
        count_tokens(text_of(block)) for _, block in _prompt_blocks(body.get("system"), prompt)
    )
    return JsonReply({"input_tokens": total})


def _tools(body: JsonObject) -> list[Tool]:
    """The client tools offered; server tools (web search, code execution) are Anthropic's."""
    raw = body.get("tools")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidRequest(f"tools: expected a list of tool objects, got {raw!r:.60}")
    tools = []
    for index, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise InvalidRequest(f"tools.{index}: expected a tool object, got {entry!r:.60}")
        if entry.get("type", "custom") != "custom":
            continue
        if not isinstance(entry.get("name"), str):
            raise InvalidRequest(f"tools.{index}.name: Field required (a string)")
        if not isinstance(entry.get("input_schema"), dict):
            raise InvalidRequest(f"tools.{index}.input_schema: Field required (a JSON schema)")
        tools.append(Tool(entry["name"], entry["input_schema"]))
    return tools


def _tool_choice(body: JsonObject, tools: list[Tool]) -> tuple[list[Tool], ToolChoice]:
    """``tool_choice`` (``auto``, ``any``, ``tool`` with a name, ``none``), default ``auto``."""
    raw = body.get("tool_choice")
    kind = raw.get("type") if isinstance(raw, dict) else None
    if raw is None or kind == "auto":
        return tools, AUTO
    if kind == "any":
        return tools, ToolChoice("required")
    if kind == "none":
        return tools, ToolChoice("none")
    if kind == "tool" and isinstance(raw, dict) and isinstance(raw.get("name"), str):
        return tools, ToolChoice("required", raw["name"])
    raise InvalidRequest(
        f"tool_choice: expected type 'auto', 'any', 'none' or 'tool' with a name, got {raw!r:.80}"
    )


def _turn(prompt: list[object]) -> Turn:
    """Tool calls and results since the user last wrote; tool results come in user messages."""
    called: set[str] = set()
    answered = False
    for message in reversed(prompt):
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        blocks = content if isinstance(content, list) else []
        kinds = {block.get("type") for block in blocks if isinstance(block, dict)}
        if message.get("role") == "user":
            if "tool_result" not in kinds:
                break
            answered = True
        elif message.get("role") == "assistant":
            called.update(
                block["name"]
                for block in blocks
                if isinstance(block, dict)
                and block.get("type") == "tool_use"
                and isinstance(block.get("name"), str)
            )
    return Turn(frozenset(called), answered)


def _output_format(body: JsonObject) -> OutputFormat:
    """``output_config.format`` (or the beta's ``output_format``): JSON for a schema, or prose."""
    config = body.get("output_config")
    raw = config.get("format") if isinstance(config, dict) else None
    if raw is None:
        raw = body.get("output_format")
    if raw is None:
        return TEXT
    if isinstance(raw, dict) and raw.get("type") == "json_schema":
        schema = raw.get("schema")
        return OutputFormat("json_schema", {} if schema is None else schema)
    raise InvalidRequest(f"output_config.format: expected type 'json_schema', got {raw!r:.80}")


def models(body: JsonObject, ctx: CallContext) -> Reply:
    """``GET /v1/models``: a fixed short list in Anthropic's paginated shape."""
    data = [
        {
            "type": "model",
            "id": name,
            "display_name": name,
            "created_at": "2025-01-01T00:00:00Z",
        }
        for name in _MODELS
    ]
    return JsonReply(
        {"data": data, "has_more": False, "first_id": _MODELS[0], "last_id": _MODELS[-1]}
    )


ANTHROPIC = Dialect(
    name="anthropic",
    endpoints={
        ("POST", "/v1/messages"): messages,
        ("POST", "/v1/messages/count_tokens"): count_message_tokens,
        ("GET", "/v1/models"): models,
    },
    error_payload=error_payload,
    request_id_header="request-id",
    request_id_prefix="req_",
)
