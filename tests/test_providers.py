"""Tests of call identification, response analysis and the SSE parser.

Fixtures follow the providers' documented wire formats; each is checked against the official
SDK's own types, and assembled streams are compared with the SDKs' own stream accumulators.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types import Completion, CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response

from workbench.providers import CallFacts, SSEEvent, SSEParser, analyse, identify

SSE = "text/event-stream; charset=utf-8"
JSON = "application/json"
CHAT_REQUEST = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Say hello to the world in one short sentence."},
    ],
}
MESSAGES_REQUEST = {
    "model": "claude-sonnet-4-20250514",
    "max_tokens": 256,
    "system": "You are terse.",
    "messages": [{"role": "user", "content": [{"type": "text", "text": "Weather in SF?"}]}],
}


def sse(*events: Any, done: bool = False, names: bool = False) -> bytes:
    """An event stream as a provider sends it: one ``data:`` line per JSON event."""
    out = []
    for event in events:
        name = f"event: {event['type']}\n" if names else ""
        out.append(f"{name}data: {orjson.dumps(event).decode()}\n\n")
    if done:
        out.append("data: [DONE]\n\n")
    return "".join(out).encode()


# -- OpenAI chat ------------------------------------------------------------------------------

CHAT_JSON: dict[str, Any] = {
    "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
    "object": "chat.completion",
    "created": 1741570283,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello, world!",
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 1117,
        "completion_tokens": 4,
        "total_tokens": 1121,
        "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "service_tier": "default",
    "system_fingerprint": "fp_06737a9306",
}


def chat_chunk(choices: list[Any], usage: Any = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-123",
        "object": "chat.completion.chunk",
        "created": 1694268190,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_44709d6fcb",
        "choices": choices,
        "usage": usage,
    }


def delta(index: int = 0, finish: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"index": index, "delta": fields, "logprobs": None, "finish_reason": finish}


TEXT_CHUNKS = [
    chat_chunk([delta(role="assistant", content="", refusal=None)]),
    chat_chunk([delta(content="Hello")]),
    chat_chunk([delta(content=", wörld 🌍")]),
    chat_chunk([delta(content="!")]),
    chat_chunk([delta(finish="stop")]),
    chat_chunk(
        [],
        usage={
            "prompt_tokens": 30,
            "completion_tokens": 5,
            "total_tokens": 35,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        },
    ),
]


def call(index: int, **fields: Any) -> dict[str, Any]:
    return {"index": index, **fields}


TOOL_CHUNKS = [
    chat_chunk([delta(role="assistant", content=None)]),
    chat_chunk(
        [
            delta(
                tool_calls=[
                    call(
                        0,
                        id="call_a",
                        type="function",
                        function={"name": "get_weather", "arguments": ""},
                    )
                ]
            )
        ]
    ),
    chat_chunk([delta(tool_calls=[call(0, function={"arguments": '{"location": '})])]),
    chat_chunk([delta(tool_calls=[call(0, function={"arguments": '"Paris"}'})])]),
    chat_chunk(
        [
            delta(
                tool_calls=[
                    call(
                        1,
                        id="call_b",
                        type="function",
                        function={"name": "get_time", "arguments": '{"tz": "CET"}'},
                    )
                ]
            )
        ]
    ),
    chat_chunk([delta(finish="tool_calls")]),
]


def sdk_chat_completion(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """What the openai SDK's own accumulator makes of the chunks, as a plain ChatCompletion."""
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    for chunk in chunks:
        state.handle_chunk(ChatCompletionChunk.model_validate(chunk))
    final = state.get_final_completion().model_dump()
    for choice in final["choices"]:
        choice["message"].pop("parsed", None)
        for tool_call in choice["message"].get("tool_calls") or ():
            tool_call["function"].pop("parsed_arguments", None)
            tool_call.pop("index", None)  # a streaming artefact: non-streamed calls have none
    return ChatCompletion.model_validate(final).model_dump()


def test_openai_chat_json() -> None:
    """A chat completion gives text, finish reason and usage with cached tokens included."""
    ChatCompletion.model_validate(CHAT_JSON)
    facts = analyse("openai", "chat", CHAT_REQUEST, 200, JSON, orjson.dumps(CHAT_JSON))
    assert facts == CallFacts(
        provider="openai",
        operation="chat",
        model="gpt-4o-mini-2024-07-18",
        input_tokens=1117,
        output_tokens=4,
        cache_read_tokens=1024,
        cache_write_tokens=0,
        tokens_estimated=False,
        finish_reason="stop",
        text="Hello, world!",
        response=CHAT_JSON,
        stream_error=None,
    )


def test_openai_chat_stream_with_usage_matches_the_sdk() -> None:
    """A streamed chat with include_usage assembles to what the SDK builds, usage included."""
    facts = analyse("openai", "chat", CHAT_REQUEST, 200, SSE, sse(*TEXT_CHUNKS, done=True))
    assert facts.stream_error is None
    assert facts.text == "Hello, wörld 🌍!"
    assert (facts.input_tokens, facts.output_tokens, facts.cache_read_tokens) == (30, 5, 0)
    assert facts.finish_reason == "stop"
    assert not facts.tokens_estimated
    assert ChatCompletion.model_validate(facts.response).model_dump() == sdk_chat_completion(
        TEXT_CHUNKS
    )


def test_openai_tool_call_stream_without_usage_is_estimated() -> None:
    """Streamed parallel tool calls assemble like the SDK's; missing usage is estimated."""
    facts = analyse("openai", "chat", CHAT_REQUEST, 200, SSE, sse(*TOOL_CHUNKS, done=True))
    assert facts.stream_error is None
    assert facts.finish_reason == "tool_calls"
    assert ChatCompletion.model_validate(facts.response).model_dump() == sdk_chat_completion(
        TOOL_CHUNKS
    )
    calls = facts.response["choices"][0]["message"]["tool_calls"]
    assert [c["function"]["arguments"] for c in calls] == ['{"location": "Paris"}', '{"tz": "CET"}']
    assert facts.tokens_estimated
    prompt_chars = len("You are terse.") + len("Say hello to the world in one short sentence.")
    assert facts.input_tokens == (prompt_chars + 3) // 4
    assert facts.output_tokens is not None and facts.output_tokens > 0
    assert facts.cache_read_tokens is None


def test_openai_stream_without_done_is_reported() -> None:
    """A stream cut before [DONE] keeps its text and says what is missing."""
    facts = analyse("openai", "chat", CHAT_REQUEST, 200, SSE, sse(*TEXT_CHUNKS[:3]))
    assert facts.text == "Hello, wörld 🌍"
    assert facts.stream_error == "stream ended without [DONE]"


def test_openai_stream_with_invalid_json_is_reported() -> None:
    """An unparseable event is skipped and named; the rest of the stream is still read."""
    body = sse(*TEXT_CHUNKS[:2]) + b"data: {broken\n\n" + sse(*TEXT_CHUNKS[2:], done=True)
    facts = analyse("openai", "chat", CHAT_REQUEST, 200, SSE, body)
    assert facts.text == "Hello, wörld 🌍!"
    assert facts.stream_error == "invalid JSON in event 3"
    assert facts.input_tokens == 30


def test_openai_stream_cut_mid_event() -> None:
    """A stream that stops inside an event reports both the cut and the missing [DONE]."""
    body = sse(*TEXT_CHUNKS[:2]) + b'data: {"id": "chatcmpl-123", "choi'
    facts = analyse("openai", "chat", CHAT_REQUEST, 200, SSE, body)
    assert facts.text == "Hello"
    assert facts.stream_error is not None
    assert "middle of an event" in facts.stream_error
    assert "invalid JSON in event 3" in facts.stream_error
    assert "[DONE]" in facts.stream_error


def test_openai_error_event_in_stream() -> None:
    """An error object sent inside a stream becomes the stream error."""
    error = {"error": {"type": "server_error", "message": "The server had an error"}}
    body = sse(*TEXT_CHUNKS[:2]) + b"data: " + orjson.dumps(error) + b"\n\n"
    facts = analyse("openai", "chat", CHAT_REQUEST, 200, SSE, body)
    assert facts.stream_error is not None
    assert "error event: server_error: The server had an error" in facts.stream_error


# -- other OpenAI endpoints -------------------------------------------------------------------


def test_openai_embeddings() -> None:
    """Embeddings report prompt tokens as input and zero output tokens, and no text."""
    body = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.0023, -0.0093]}],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 8, "total_tokens": 8},
    }
    CreateEmbeddingResponse.model_validate(body)
    request = {"model": "text-embedding-3-small", "input": "The food was delicious"}
    facts = analyse("openai", "embeddings", request, 200, JSON, orjson.dumps(body))
    assert (facts.input_tokens, facts.output_tokens, facts.text) == (8, 0, None)
    assert facts.model == "text-embedding-3-small"
    assert not facts.tokens_estimated


def test_openai_legacy_completions_json_and_stream() -> None:
    """Legacy completions are read from choices[].text, streamed or not."""
    body: dict[str, Any] = {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1589478378,
        "model": "gpt-3.5-turbo-instruct",
        "choices": [
            {"text": "This is a test", "index": 0, "logprobs": None, "finish_reason": "length"}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
    }
    Completion.model_validate(body)
    request = {"model": "gpt-3.5-turbo-instruct", "prompt": "Say this is a test"}
    facts = analyse("openai", "text_completion", request, 200, JSON, orjson.dumps(body))
    assert (facts.text, facts.finish_reason, facts.input_tokens) == ("This is a test", "length", 5)
    chunks: list[dict[str, Any]] = [
        {**body, "choices": [{"text": piece, "index": 0, "logprobs": None, "finish_reason": None}]}
        for piece in ("This", " is a", " test")
    ]
    chunks[-1]["choices"][0]["finish_reason"] = "length"
    streamed = analyse("openai", "text_completion", request, 200, SSE, sse(*chunks, done=True))
    assert (streamed.text, streamed.finish_reason) == ("This is a test", "length")
    assert streamed.input_tokens == 5  # every chunk carried usage here; the last one wins
    Completion.model_validate(streamed.response)


RESPONSE_OBJECT: dict[str, Any] = {
    "id": "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
    "object": "response",
    "created_at": 1741476542,
    "status": "completed",
    "model": "gpt-4.1-2025-04-14",
    "output": [
        {
            "type": "message",
            "id": "msg_67ccd2bf17f0819081ff3bb2cf6508e60bb6a6b452d3795b",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "In a peaceful grove.", "annotations": []}],
        }
    ],
    "parallel_tool_calls": True,
    "tool_choice": "auto",
    "tools": [],
    "incomplete_details": None,
    "usage": {
        "input_tokens": 36,
        "input_tokens_details": {"cached_tokens": 12, "cache_write_tokens": 4},
        "output_tokens": 87,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 123,
    },
}


def test_openai_responses_json_and_stream() -> None:
    """The Responses API is read from output_text parts and its final completed event."""
    Response.model_validate(RESPONSE_OBJECT)
    request = {"model": "gpt-4.1", "input": "Tell me a three sentence bedtime story."}
    facts = analyse("openai", "responses", request, 200, JSON, orjson.dumps(RESPONSE_OBJECT))
    assert facts.text == "In a peaceful grove."
    assert facts.finish_reason == "completed"
    assert (facts.input_tokens, facts.output_tokens) == (36, 87)
    assert (facts.cache_read_tokens, facts.cache_write_tokens) == (12, 4)
    in_progress = {**RESPONSE_OBJECT, "status": "in_progress", "output": [], "usage": None}
    events = [
        {"type": "response.created", "sequence_number": 0, "response": in_progress},
        {"type": "response.output_text.delta", "sequence_number": 1, "delta": "In a peaceful"},
        {"type": "response.output_text.delta", "sequence_number": 2, "delta": " grove."},
        {"type": "response.completed", "sequence_number": 3, "response": RESPONSE_OBJECT},
    ]
    streamed = analyse("openai", "responses", request, 200, SSE, sse(*events, names=True))
    assert streamed.stream_error is None
    assert streamed.response == RESPONSE_OBJECT
    assert streamed.text == "In a peaceful grove."
    cut = analyse("openai", "responses", request, 200, SSE, sse(*events[:3], names=True))
    assert cut.text == "In a peaceful grove."
    assert cut.stream_error == "stream ended without response.completed"
    assert cut.tokens_estimated


# -- Anthropic --------------------------------------------------------------------------------

MESSAGE_JSON: dict[str, Any] = {
    "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-20250514",
    "content": [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "SF"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 50,
        "cache_creation_input_tokens": 248,
        "cache_read_input_tokens": 1800,
        "output_tokens": 503,
    },
}

MESSAGE_EVENTS: list[dict[str, Any]] = [
    {
        "type": "message_start",
        "message": {
            "id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": "claude-sonnet-4-20250514",
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": 25,
                "cache_creation_input_tokens": 100,
                "cache_read_input_tokens": 2000,
                "output_tokens": 1,
            },
        },
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "ping"},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Héllo"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " 👋"}},
    {"type": "content_block_stop", "index": 0},
    {
        "type": "content_block_start",
        "index": 1,
        "content_block": {
            "type": "tool_use",
            "id": "toolu_01T1",
            "name": "get_weather",
            "input": {},
        },
    },
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": ""},
    },
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": '{"location": "San Fra'},
    },
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": 'ncisco, CA"}'},
    },
    {"type": "content_block_stop", "index": 1},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {"output_tokens": 89},
    },
    {"type": "message_stop"},
]


def sdk_message(events: list[dict[str, Any]]) -> dict[str, Any]:
    """What the anthropic SDK's own accumulator makes of the events, as a plain Message."""
    snapshot = None
    json_bufs: dict[int, bytes] = {}
    for event in events:
        if event["type"] != "ping":
            snapshot = accumulate_event(
                event=event,  # type: ignore[arg-type]
                current_snapshot=snapshot,
                json_bufs=json_bufs,
            )
    assert snapshot is not None
    return Message.model_validate(snapshot.to_dict()).model_dump()


def test_anthropic_message_json_adds_cache_tokens_to_input() -> None:
    """Anthropic's uncached input is summed with cache reads and writes (OTel semantics)."""
    Message.model_validate(MESSAGE_JSON)
    facts = analyse("anthropic", "chat", MESSAGES_REQUEST, 200, JSON, orjson.dumps(MESSAGE_JSON))
    assert facts.input_tokens == 50 + 248 + 1800
    assert (facts.cache_read_tokens, facts.cache_write_tokens) == (1800, 248)
    assert (facts.output_tokens, facts.finish_reason) == (503, "tool_use")
    assert facts.text == "Let me check."
    assert facts.model == "claude-sonnet-4-20250514"


def test_anthropic_stream_matches_the_sdk() -> None:
    """A streamed message assembles to what the SDK builds, with message_delta usage."""
    body = sse(*MESSAGE_EVENTS, names=True)
    facts = analyse("anthropic", "chat", MESSAGES_REQUEST, 200, SSE, body)
    assert facts.stream_error is None
    assert facts.text == "Héllo 👋"
    assert facts.finish_reason == "tool_use"
    assert (facts.input_tokens, facts.output_tokens) == (2125, 89)
    assert (facts.cache_read_tokens, facts.cache_write_tokens) == (2000, 100)
    assert Message.model_validate(facts.response).model_dump() == sdk_message(MESSAGE_EVENTS)
    assert facts.response["content"][1]["input"] == {"location": "San Francisco, CA"}


def test_anthropic_message_delta_usage_replaces_cumulative_counts() -> None:
    """Counts repeated in message_delta are cumulative: they replace the message_start ones."""
    events = [dict(event) for event in MESSAGE_EVENTS]
    events[-2] = {
        **events[-2],
        "usage": {"input_tokens": 30, "cache_read_input_tokens": 2000, "output_tokens": 90},
    }
    facts = analyse("anthropic", "chat", MESSAGES_REQUEST, 200, SSE, sse(*events, names=True))
    assert (facts.input_tokens, facts.output_tokens) == (30 + 2000 + 100, 90)
    assert Message.model_validate(facts.response).model_dump() == sdk_message(events)


def test_anthropic_stream_error_and_truncation() -> None:
    """An error event and a stream without message_stop are both reported."""
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    body = sse(*MESSAGE_EVENTS[:5], error, names=True)
    facts = analyse("anthropic", "chat", MESSAGES_REQUEST, 200, SSE, body)
    assert facts.text == "Héllo 👋"
    assert facts.input_tokens == 2125  # message_start usage is kept
    assert facts.stream_error == (
        "error event: overloaded_error: Overloaded; stream ended without message_stop"
    )


def test_anthropic_stream_without_event_names() -> None:
    """A messages stream is recognised from its data alone when event lines are missing."""
    facts = analyse("anthropic", "chat", MESSAGES_REQUEST, 200, SSE, sse(*MESSAGE_EVENTS))
    assert facts.stream_error is None
    assert facts.text == "Héllo 👋"


# -- errors, plain HTTP, garbage --------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "status", "body"),
    [
        (
            "openai",
            429,
            {
                "error": {
                    "message": "Rate limit reached for gpt-4o-mini",
                    "type": "requests",
                    "param": None,
                    "code": "rate_limit_exceeded",
                }
            },
        ),
        (
            "anthropic",
            529,
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        ),
    ],
)
def test_error_responses_carry_no_tokens(provider: str, status: int, body: Any) -> None:
    """A 4xx/5xx keeps the parsed error as the response, with no tokens and no text."""
    request = CHAT_REQUEST if provider == "openai" else MESSAGES_REQUEST
    facts = analyse(provider, "chat", request, status, JSON, orjson.dumps(body))
    assert facts.response == body
    assert (facts.input_tokens, facts.output_tokens, facts.text) == (None, None, None)
    assert not facts.tokens_estimated
    assert facts.model == request["model"]


def test_plain_http_calls_have_no_model_facts() -> None:
    """A non-model call keeps its JSON response and nothing else."""
    facts = analyse("http", "get", None, 200, JSON, b'{"results": [1, 2]}')
    assert facts.response == {"results": [1, 2]}
    assert facts.model is None and facts.input_tokens is None and not facts.tokens_estimated
    html = analyse("http", "get", None, 200, "text/html", b"<html></html>")
    assert html.response is None


def test_non_json_success_body_is_reported() -> None:
    """A 200 whose body is not JSON (a proxy's HTML page) is described, not raised."""
    facts = analyse("openai", "chat", CHAT_REQUEST, 200, "text/html", b"<html>bad gateway</html>")
    assert facts.stream_error == "response body is not a JSON object"
    assert facts.tokens_estimated


def test_a_response_nested_too_deep_says_so() -> None:
    """JSON nested past the depth the store can walk is named as such, in a body or an event,
    not as "not a JSON object"."""
    deep = b'{"id": "x", "choices": ' + b"[" * 300 + b"]" * 300 + b"}"
    facts = analyse("openai", "chat", CHAT_REQUEST, 200, JSON, deep)
    assert facts.stream_error is not None
    assert "not a JSON object" not in facts.stream_error
    assert "nested deeper than 250 levels" in facts.stream_error
    assert facts.response is None
    body = sse(*TEXT_CHUNKS[:2]) + b"data: " + deep + b"\n\n" + sse(*TEXT_CHUNKS[2:], done=True)
    streamed = analyse("openai", "chat", CHAT_REQUEST, 200, SSE, body)
    assert streamed.text == "Hello, wörld 🌍!"
    assert streamed.stream_error == "event 3 is JSON nested deeper than 250 levels"


@settings(max_examples=300)
@given(
    st.sampled_from(
        [
            ("openai", "chat"),
            ("anthropic", "chat"),
            ("openai", "text_completion"),
            ("openai", "embeddings"),
            ("openai", "responses"),
            ("http", "post"),
        ]
    ),
    st.sampled_from([SSE, JSON, None, "text/plain"]),
    st.integers(min_value=100, max_value=599),
    st.one_of(
        st.binary(max_size=200),
        st.builds(
            lambda prefix, cut: (prefix + sse(*TEXT_CHUNKS) + sse(*MESSAGE_EVENTS))[:cut],
            st.sampled_from([b"", b"data: ", b"event: x\n"]),
            st.integers(min_value=0, max_value=3000),
        ),
        st.recursive(
            st.none() | st.integers() | st.text() | st.booleans(),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(
                    st.sampled_from(
                        ["choices", "usage", "content", "delta", "index", "type", "model"]
                    ),
                    inner,
                    max_size=4,
                )
            ),
        ).map(lambda value: b"data: " + json.dumps(value).encode() + b"\n\n"),
    ),
)
def test_analyse_never_raises(
    kind: tuple[str, str], content_type: str | None, status: int, body: bytes
) -> None:
    """Any bytes, any status, any declared type: analyse returns CallFacts and never raises."""
    provider, operation = kind
    facts = analyse(provider, operation, CHAT_REQUEST, status, content_type, body)
    assert isinstance(facts, CallFacts)
    # The readers handle garbage themselves; the last-resort net in analyse() is for bugs.
    assert not (facts.stream_error or "").startswith("could not read response")
    orjson.dumps(facts.response)  # whatever was read is still JSON


# -- identification ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "body", "expected"),
    [
        ("POST", "https://api.openai.com/v1/chat/completions", None, ("openai", "chat")),
        ("POST", "https://api.openai.com/v1/completions", None, ("openai", "text_completion")),
        ("POST", "https://api.openai.com/v1/embeddings", None, ("openai", "embeddings")),
        ("POST", "https://api.openai.com/v1/responses", None, ("openai", "responses")),
        ("POST", "https://api.anthropic.com/v1/messages", None, ("anthropic", "chat")),
        ("POST", "https://api.anthropic.com/v1/chat/completions", None, ("anthropic", "chat")),
        (
            "POST",
            "https://res.openai.azure.com/openai/deployments/gpt4/chat/completions?api-version=1",
            None,
            ("azure.ai.openai", "chat"),
        ),
        ("POST", "https://gw.example.com/openai/v1/chat/completions/", None, ("openai", "chat")),
        ("POST", "http://127.0.0.1:8000/v1/messages", None, ("anthropic", "chat")),
        ("POST", "http://proxy.local/claude/messages", MESSAGES_REQUEST, ("anthropic", "chat")),
        ("POST", "http://proxy.local/claude/messages", {"text": "hi"}, ("http", "post")),
        ("POST", "https://api.openai.com/v1/threads/t1/messages", None, ("http", "post")),
        ("GET", "https://api.openai.com/v1/chat/completions", None, ("http", "get")),
        ("GET", "https://api.openai.com/v1/responses/resp_1", None, ("http", "get")),
        ("POST", "https://api.openai.com/v1/files", None, ("http", "post")),
        ("DELETE", "https://example.com/x", None, ("http", "delete")),
    ],
)
def test_identify(method: str, url: str, body: Any, expected: tuple[str, str]) -> None:
    """Provider and operation come from method, path suffix, host and (rarely) the body."""
    assert identify(method, url, body) == expected


# -- SSE parser -------------------------------------------------------------------------------


def parse(data: bytes) -> list[SSEEvent]:
    parser = SSEParser()
    return parser.feed(data) + parser.close()


def test_sse_spec_examples() -> None:
    """The WHATWG examples: comments, multi-line data, default type, no-space values, no data."""
    stream = (
        b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\n"
        b"data:  third event\n\ndata\n\ndata\ndata\n\ndata:\n\n"
        b"event: add\ndata: 73857293\n\nevent: lonely\n\n"
        b"data: YHOO\ndata: +2\ndata: 10\n\n"
    )
    assert parse(stream) == [
        SSEEvent(None, "first event"),
        SSEEvent(None, "second event"),
        SSEEvent(None, " third event"),
        SSEEvent(None, ""),
        SSEEvent(None, "\n"),
        SSEEvent(None, ""),
        SSEEvent("add", "73857293"),
        SSEEvent(None, "YHOO\n+2\n10"),
    ]


def test_sse_line_endings_and_bom() -> None:
    """CRLF, CR and LF all end lines, mixed in one stream, and a leading BOM is dropped."""
    stream = b"\xef\xbb\xbfdata: a\r\n\r\nevent: e\rdata: b\r\rdata: c\n\n"
    assert parse(stream) == [SSEEvent(None, "a"), SSEEvent("e", "b"), SSEEvent(None, "c")]


def test_sse_close_returns_and_flags_an_unfinished_event() -> None:
    """A stream that ends without the blank line yields its last event and is flagged."""
    parser = SSEParser()
    assert parser.feed(b"data: a\n\ndata: b") == [SSEEvent(None, "a")]
    assert parser.close() == [SSEEvent(None, "b")]
    assert parser.truncated
    finished = SSEParser()
    finished.feed(b"data: a\r\n\r")
    assert finished.close() == [SSEEvent(None, "a")]
    assert not finished.truncated


STREAM_FIXTURES = [
    sse(*TEXT_CHUNKS, done=True),
    sse(*MESSAGE_EVENTS, names=True).replace(b"\n", b"\r\n"),
    b"\xef\xbb\xbf: hi\r\ndata: \xc3\xa9\xf0\x9f\x8c\x8d\rdata: x\r\r\nevent: y\ndata\n\n",
]


@pytest.mark.parametrize("stream", STREAM_FIXTURES, ids=["openai", "anthropic-crlf", "mixed"])
def test_sse_every_single_split_parses_the_same(stream: bytes) -> None:
    """Splitting a stream into two chunks at every byte offset gives the same events."""
    expected = parse(stream)
    for cut in range(len(stream) + 1):
        parser = SSEParser()
        events = parser.feed(stream[:cut]) + parser.feed(stream[cut:]) + parser.close()
        assert events == expected, cut


@settings(max_examples=300)
@given(
    st.one_of(
        st.sampled_from(STREAM_FIXTURES),
        st.lists(
            st.sampled_from(
                [
                    b"data: x",
                    b"data:",
                    b"event: t",
                    b": c",
                    b"id: 1",
                    b"data: \xc3\xa9",
                    b"\xef\xbb",
                ]
            )
            | st.sampled_from([b"\n", b"\r", b"\r\n"]),
            max_size=30,
        ).map(b"".join),
    ),
    st.lists(st.integers(min_value=0, max_value=10_000), max_size=20),
)
def test_sse_any_chunking_parses_the_same(stream: bytes, cuts: list[int]) -> None:
    """Feeding a stream in any number of chunks gives the same events as feeding it whole."""
    offsets = sorted({cut % (len(stream) + 1) for cut in cuts})
    parser = SSEParser()
    events: list[SSEEvent] = []
    previous = 0
    for offset in [*offsets, len(stream)]:
        events += parser.feed(stream[previous:offset])
        previous = offset
    events += parser.close()
    assert events == parse(stream)
    assert events == reference_parse(stream)


def reference_parse(stream: bytes) -> list[SSEEvent]:
    """The spec's algorithm, written the slow obvious way on the whole stream."""
    text = stream.decode("utf-8", errors="replace")
    text = text.removeprefix("\ufeff")
    lines = re.split(r"\r\n|\r|\n", text)
    events: list[SSEEvent] = []
    data: list[str] = []
    event = ""

    def line(text: str) -> None:
        nonlocal data, event
        if text == "":
            if data:
                events.append(SSEEvent(event or None, "\n".join(data)))
            data, event = [], ""
        elif not text.startswith(":"):
            name, colon, value = text.partition(":")
            value = value[1:] if colon and value.startswith(" ") else value
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value

    for text in lines[:-1]:
        line(text)
    # An unterminated last line and event: the spec drops them; our close() returns them.
    if lines[-1]:
        line(lines[-1])
    line("")
    return events
