"""The OpenAI dialect of the test server: chat completions, embeddings and models.

Owns the JSON bodies, the ``chat.completion.chunk`` SSE sequence and the ``{"error": {...}}`` body,
each in exactly OpenAI's shape. Does not own what the answer says (``_answers``) nor HTTP,
latency and faults (``_server``).
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from workbench.testmodel._answers import (
    answer_for,
    count_tokens,
    cut_answer,
    embedding_for,
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

_SYSTEM_FINGERPRINT = "fp_workbench"
_DEFAULT_DIMENSIONS = 8
_MAX_DIMENSIONS = 4096
_MODELS = ("gpt-4o", "gpt-4o-mini", "text-embedding-3-small")

# (type, code) per status, as OpenAI labels its errors.
_ERROR_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    404: ("invalid_request_error", "unknown_url"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
}


def error_payload(status: int, message: str) -> JsonObject:
    """OpenAI's error body: ``{"error": {"message", "type", "param", "code"}}``."""
    kind, code = _ERROR_KINDS.get(status, ("server_error", None))
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def chat_completions(body: JsonObject, ctx: CallContext) -> Reply:
    """``POST /v1/chat/completions``, as JSON or as ``chat.completion.chunk`` events."""
    model = require(body, "model", str, "a model name string")
    messages = require(body, "messages", list, "a list of message objects")
    limit = optional_token_limit(body, "max_completion_tokens", "max_tokens")
    words, was_cut = cut_answer(answer_for(model, messages, None), limit)
    finish_reason = "length" if was_cut else "stop"

    prompt_tokens = sum(
        count_tokens(text_of(message.get("content")))
        for message in messages
        if isinstance(message, dict)
    )
    # OpenAI caches whole prompt prefixes automatically; a repeated prompt is the simplest prefix.
    (seen,) = ctx.cache.remember([fingerprint("openai", model, messages)])
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": len(words),
        "total_tokens": prompt_tokens + len(words),
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
        stream_options = body.get("stream_options")
        include_usage = isinstance(stream_options, dict) and stream_options.get("include_usage")
        return _chunks(header, words, finish_reason, usage if include_usage is True else None)
    message: JsonObject = {
        "role": "assistant",
        "content": " ".join(words),
        "refusal": None,
        "annotations": [],
    }
    return JsonReply(
        {
            **header,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
            ],
            "usage": usage,
            "service_tier": "default",
            "system_fingerprint": _SYSTEM_FINGERPRINT,
        }
    )


def _chunks(
    header: JsonObject, words: list[str], finish_reason: str, usage: JsonObject | None
) -> StreamReply:
    base = {
        **header,
        "object": "chat.completion.chunk",
        "service_tier": "default",
        "system_fingerprint": _SYSTEM_FINGERPRINT,
    }
    if usage is not None:
        # With include_usage, OpenAI puts "usage": null on every chunk but the last.
        base["usage"] = None

    def chunk(delta: JsonObject, finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return sse({**base, "choices": [choice]})

    pieces = [word if i == 0 else " " + word for i, word in enumerate(words)]
    events = [chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [chunk({"content": piece}) for piece in pieces]
    events.append(chunk({}, finish_reason))
    if usage is not None:
        events.append(sse({**base, "choices": [], "usage": usage}))
    events.append(b"data: [DONE]\n\n")
    return StreamReply(tuple(events), break_at=1 + len(pieces) // 2)


def embeddings(body: JsonObject, ctx: CallContext) -> Reply:
    """``POST /v1/embeddings``: a deterministic unit vector per input, floats or base64."""
    model = require(body, "model", str, "a model name string")
    raw_input = body.get("input")
    inputs: list[Any] = raw_input if isinstance(raw_input, list) else [raw_input]
    if inputs and all(isinstance(item, int) for item in inputs):
        inputs = [inputs]  # one input given as token ids, not a batch of inputs
    if not inputs or not all(isinstance(item, str | list) for item in inputs):
        raise InvalidRequest(
            f"input: expected a string or a list of strings, got {raw_input!r:.60}"
        )
    dimensions = _DEFAULT_DIMENSIONS
    if body.get("dimensions") is not None:
        dimensions = require(body, "dimensions", int, "an integer from 1 to 4096")
        if not 1 <= dimensions <= _MAX_DIMENSIONS:
            raise InvalidRequest(
                f"dimensions: expected an integer from 1 to 4096, got {dimensions}"
            )
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    tokens = 0
    for index, item in enumerate(inputs):
        # Token-id inputs (lists of ints) are embedded by their JSON text.
        text = item if isinstance(item, str) else str(item)
        tokens += count_tokens(text) if isinstance(item, str) else len(item)
        vector = embedding_for(model, text, dimensions)
        encoded: object = vector
        if as_base64:
            encoded = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    return JsonReply(
        {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def models(body: JsonObject, ctx: CallContext) -> Reply:
    """``GET /v1/models``: a fixed short list, enough for clients that probe before calling."""
    return JsonReply(
        {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": 1_700_000_000, "owned_by": "workbench"}
                for name in _MODELS
            ],
        }
    )


OPENAI = Dialect(
    name="openai",
    endpoints={
        ("POST", "/v1/chat/completions"): chat_completions,
        ("POST", "/v1/embeddings"): embeddings,
        ("GET", "/v1/models"): models,
    },
    error_payload=error_payload,
    request_id_header="x-request-id",
    request_id_prefix="req_",
)
