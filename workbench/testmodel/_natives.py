"""The native dialects of the test server: Gemini, Ollama, Cohere v2 and Bedrock Converse.

Owns each API's request reading (its message shape turned into the plain messages
``_answers`` answers), its response JSON, its stream — Gemini's ``alt=sse`` events or JSON
array, Ollama's NDJSON lines, Cohere's ``message-start`` … ``message-end`` events, Bedrock's
binary AWS event stream — and its error body, as each provider's public API reference shows
them. Token counts are ``_answers.count_tokens`` of the prompt and the answer, so a test can
predict them. Does not own HTTP (``_server``) nor the OpenAI and Anthropic dialects.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, unquote

import orjson

from workbench._eventstream import encode_event
from workbench.testmodel._answers import (
    answer_for,
    count_tokens,
    cut_answer,
    embedding_for,
    text_of,
)
from workbench.testmodel._embeddings import default_dimensions
from workbench.testmodel._protocol import (
    CallContext,
    Dialect,
    InvalidRequest,
    JsonObject,
    JsonReply,
    Reply,
    StreamReply,
    require,
    sse,
)

__all__ = ["NATIVE_DIALECTS"]


def _answer(
    model: str, messages: Sequence[object], system: object, max_tokens: Any
) -> tuple[list[str], bool, int]:
    """The answer's words, whether ``max_tokens`` cut it, and the prompt's token count."""
    limit = max_tokens if type(max_tokens) is int and max_tokens > 0 else None
    words, cut = cut_answer(answer_for(model, messages, system), limit)
    prompt = count_tokens(text_of(system)) + sum(
        count_tokens(text_of(m.get("content"))) for m in messages if isinstance(m, dict)
    )
    return words, cut, prompt


def _pieces(words: list[str]) -> list[str]:
    """The answer as a stream sends it: a word at a time, spaces kept with the words."""
    return [word if index == 0 else " " + word for index, word in enumerate(words)] or [""]


# -- Gemini: POST /v1beta/models/{model}:generateContent -------------------------------------

_GEMINI_PATH = re.compile(r"/models/([^/:]+):(generateContent|streamGenerateContent)$")


def _gemini(body: JsonObject, ctx: CallContext) -> Reply:
    found = _GEMINI_PATH.search(ctx.path)
    assert found is not None  # routed here by this pattern
    model, method = unquote(found.group(1)), found.group(2)
    contents = require(body, "contents", list, "a list of Content objects")
    messages = [
        {
            "role": "user" if c.get("role", "user") == "user" else "assistant",
            "content": c.get("parts"),
        }
        for c in contents
        if isinstance(c, dict)
    ]
    config = body.get("generationConfig") if isinstance(body.get("generationConfig"), dict) else {}
    system = body.get("systemInstruction")
    words, cut, prompt = _answer(
        model,
        messages,
        system.get("parts") if isinstance(system, dict) else None,
        config.get("maxOutputTokens"),
    )
    finish = "MAX_TOKENS" if cut else "STOP"
    response_id = "resp-" + ctx.call_id

    def chunk(text: str, done: bool, output: int) -> JsonObject:
        candidate: JsonObject = {
            "content": {"role": "model", "parts": [{"text": text}]},
            "index": 0,
        }
        if done:
            candidate["finishReason"] = finish
        usage = {"promptTokenCount": prompt, "totalTokenCount": prompt + output}
        if output:
            usage["candidatesTokenCount"] = output
        return {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": model,
            "responseId": response_id,
        }

    if method == "generateContent":
        return JsonReply(chunk(" ".join(words), True, len(words)))
    pieces = _pieces(words)
    chunks = [
        chunk(piece, index == len(pieces) - 1, index + 1 if index == len(pieces) - 1 else 0)
        for index, piece in enumerate(pieces)
    ]
    if parse_qs(ctx.query).get("alt") == ["sse"]:
        events = tuple(sse(c) for c in chunks)
        return StreamReply(events, break_at=len(events) // 2)
    return JsonReply(chunks)


def _gemini_error(status: int, message: str) -> JsonObject:
    statuses = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED"}
    return {
        "error": {"code": status, "message": message, "status": statuses.get(status, "INTERNAL")}
    }


GEMINI = Dialect(
    name="gemini",
    endpoints={},
    error_payload=_gemini_error,
    request_id_header="x-goog-request-id",
    request_id_prefix="gem_",
    patterns=(("POST", _GEMINI_PATH, _gemini),),
)


# -- Ollama: POST /api/chat, /api/generate, /api/embed ---------------------------------------

_NDJSON = "application/x-ndjson"


def _ollama_line(value: JsonObject) -> bytes:
    return orjson.dumps(value) + b"\n"


def _ollama_reply(body: JsonObject, ctx: CallContext, messages: list[Any], *, chat: bool) -> Reply:
    model = require(body, "model", str, "a model name string")
    options = body.get("options") if isinstance(body.get("options"), dict) else {}
    words, cut, prompt = _answer(model, messages, body.get("system"), options.get("num_predict"))
    created = "2026-01-01T00:00:00Z"

    def piece(text: str) -> JsonObject:
        if chat:
            return {
                "model": model,
                "created_at": created,
                "message": {"role": "assistant", "content": text},
            }
        return {"model": model, "created_at": created, "response": text}

    final = {
        "done": True,
        "done_reason": "length" if cut else "stop",
        "total_duration": 1_000_000,
        "load_duration": 100_000,
        "prompt_eval_count": prompt,
        "prompt_eval_duration": 200_000,
        "eval_count": len(words),
        "eval_duration": 700_000,
    }
    if body.get("stream", True) is False:
        return JsonReply({**piece(" ".join(words)), **final})
    lines = [_ollama_line({**piece(p), "done": False}) for p in _pieces(words)]
    lines.append(_ollama_line({**piece(""), **final}))
    return StreamReply(tuple(lines), break_at=len(lines) // 2, content_type=_NDJSON)


def _ollama_chat(body: JsonObject, ctx: CallContext) -> Reply:
    messages = require(body, "messages", list, "a list of messages")
    return _ollama_reply(body, ctx, messages, chat=True)


def _ollama_generate(body: JsonObject, ctx: CallContext) -> Reply:
    prompt = require(body, "prompt", str, "a prompt string")
    return _ollama_reply(body, ctx, [{"role": "user", "content": prompt}], chat=False)


def _ollama_embed(body: JsonObject, ctx: CallContext) -> Reply:
    model = require(body, "model", str, "a model name string")
    raw = body.get("input")
    inputs = raw if isinstance(raw, list) else [raw]
    if not inputs or not all(isinstance(item, str) for item in inputs):
        raise InvalidRequest(f"input: expected a string or a list of strings, got {raw!r:.60}")
    dimensions = default_dimensions(model)
    return JsonReply(
        {
            "model": model,
            "embeddings": [embedding_for(model, text, dimensions) for text in inputs],
            "total_duration": 1_000_000,
            "load_duration": 100_000,
            "prompt_eval_count": sum(count_tokens(text) for text in inputs),
        }
    )


OLLAMA = Dialect(
    name="ollama",
    endpoints={
        ("POST", "/api/chat"): _ollama_chat,
        ("POST", "/api/generate"): _ollama_generate,
        ("POST", "/api/embed"): _ollama_embed,
    },
    error_payload=lambda status, message: {"error": message},
    request_id_header="x-request-id",
    request_id_prefix="oll_",
)


# -- Cohere: POST /v2/chat ---------------------------------------------------------------------


def _cohere_chat(body: JsonObject, ctx: CallContext) -> Reply:
    model = require(body, "model", str, "a model name string")
    messages = require(body, "messages", list, "a list of messages")
    system = [m for m in messages if isinstance(m, dict) and m.get("role") == "system"]
    turns = [m for m in messages if not (isinstance(m, dict) and m.get("role") == "system")]
    words, cut, prompt = _answer(model, turns, system or None, body.get("max_tokens"))
    finish = "MAX_TOKENS" if cut else "COMPLETE"
    # billed_units is the user's own tokens; tokens adds Cohere's hidden preamble.
    usage = {
        "billed_units": {"input_tokens": prompt, "output_tokens": len(words)},
        "tokens": {"input_tokens": prompt + 7, "output_tokens": len(words)},
    }
    call_id = "co-" + ctx.call_id
    if not body.get("stream"):
        return JsonReply(
            {
                "id": call_id,
                "finish_reason": finish,
                "message": {
                    "role": "assistant",
                    "content": [{"type": "text", "text": " ".join(words)}],
                },
                "usage": usage,
            }
        )

    def event(kind: str, **fields: Any) -> bytes:
        return sse({"type": kind, **fields}, kind)

    events = [
        event(
            "message-start",
            id=call_id,
            delta={
                "message": {
                    "role": "assistant",
                    "content": [],
                    "tool_plan": "",
                    "tool_calls": [],
                    "citations": [],
                }
            },
        ),
        event(
            "content-start", index=0, delta={"message": {"content": {"type": "text", "text": ""}}}
        ),
        *(
            event("content-delta", index=0, delta={"message": {"content": {"text": piece}}})
            for piece in _pieces(words)
        ),
        event("content-end", index=0),
        event("message-end", delta={"finish_reason": finish, "usage": usage}),
    ]
    return StreamReply(tuple(events), break_at=len(events) // 2)


COHERE = Dialect(
    name="cohere",
    endpoints={("POST", "/v2/chat"): _cohere_chat},
    error_payload=lambda status, message: {"id": "error", "message": message},
    request_id_header="x-trial-endpoint-call-id",
    request_id_prefix="co_",
)


# -- Bedrock: POST /model/{modelId}/converse and /converse-stream ----------------------------

_BEDROCK_PATH = re.compile(r"/model/([^/]+)/(converse|converse-stream)$")
_EVENT_STREAM = "application/vnd.amazon.eventstream"


def _bedrock_event(kind: str, payload: JsonObject) -> bytes:
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    return encode_event(headers, orjson.dumps(payload))


def _bedrock(body: JsonObject, ctx: CallContext) -> Reply:
    found = _BEDROCK_PATH.search(ctx.path)
    assert found is not None  # routed here by this pattern
    model, method = unquote(found.group(1)), found.group(2)
    messages = require(body, "messages", list, "a list of messages")
    config = body.get("inferenceConfig") if isinstance(body.get("inferenceConfig"), dict) else {}
    words, cut, prompt = _answer(model, messages, body.get("system"), config.get("maxTokens"))
    stop = "max_tokens" if cut else "end_turn"
    usage = {"inputTokens": prompt, "outputTokens": len(words), "totalTokens": prompt + len(words)}
    metrics = {"latencyMs": 12}
    if method == "converse":
        return JsonReply(
            {
                "output": {
                    "message": {"role": "assistant", "content": [{"text": " ".join(words)}]}
                },
                "stopReason": stop,
                "usage": usage,
                "metrics": metrics,
            }
        )
    events = [
        _bedrock_event("messageStart", {"role": "assistant"}),
        *(
            _bedrock_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}})
            for piece in _pieces(words)
        ),
        _bedrock_event("contentBlockStop", {"contentBlockIndex": 0}),
        _bedrock_event("messageStop", {"stopReason": stop}),
        _bedrock_event("metadata", {"usage": usage, "metrics": metrics}),
    ]
    return StreamReply(tuple(events), break_at=len(events) // 2, content_type=_EVENT_STREAM)


BEDROCK = Dialect(
    name="bedrock",
    endpoints={},
    error_payload=lambda status, message: {"message": message},
    request_id_header="x-amzn-requestid",
    request_id_prefix="brk_",
    patterns=(("POST", _BEDROCK_PATH, _bedrock),),
)

NATIVE_DIALECTS = (GEMINI, OLLAMA, COHERE, BEDROCK)
