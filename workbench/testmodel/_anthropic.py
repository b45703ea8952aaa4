"""The Anthropic dialect of the test server: messages and models, in Anthropic's shapes.

Owns the ``message`` JSON body, the full ``message_start`` … ``message_stop`` SSE sequence, the
``{"type": "error", "error": {...}}`` body, and how ``cache_control`` breakpoints turn into
cache-creation and cache-read token counts. Does not own what the answer says (``_answers``) nor
HTTP, latency and faults (``_server``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import orjson

from workbench.testmodel._answers import PromptCache, answer_for, count_tokens, cut_answer, text_of
from workbench.testmodel._protocol import (
    CallContext,
    Dialect,
    JsonObject,
    JsonReply,
    Reply,
    StreamReply,
    optional_token_limit,
    require,
    sse,
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
    words, was_cut = cut_answer(answer_for(model, prompt, system), limit)
    stop_reason = "max_tokens" if was_cut else "end_turn"
    input_tokens, written, read = cache_split(model, system, prompt, ctx.cache)
    usage = {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
        "output_tokens": len(words),
        "service_tier": "standard",
    }
    message = {
        "id": "msg_" + ctx.call_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": " ".join(words)}],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }
    if body.get("stream") is not True:
        return JsonReply(message)

    pieces = [word if i == 0 else " " + word for i, word in enumerate(words)]
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
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
            "content_block_start",
        ),
        sse({"type": "ping"}, "ping"),
        *(
            sse(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": piece},
                },
                "content_block_delta",
            )
            for piece in pieces
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
    return StreamReply(tuple(events), break_at=3 + len(pieces) // 2)


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
    endpoints={("POST", "/v1/messages"): messages, ("GET", "/v1/models"): models},
    error_payload=error_payload,
    request_id_header="request-id",
    request_id_prefix="req_",
)
