"""Tests for workbench.testing.ModelServer, driven by the real openai and anthropic SDKs."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from anthropic.types import Message, TextBlock
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletion

import workbench.testing
import workbench.testmodel
from workbench.exceptions import TestServerError
from workbench.testing import ModelServer

GPT = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5"
REPO_ROOT = Path(__file__).resolve().parents[1]

# Prompts are typed Any: they go to both SDKs, and each types messages as its own TypedDicts.
QUESTION: Any = [{"role": "user", "content": "What is the capital of France today"}]  # 7 words
CACHED_SYSTEM: Any = [
    {
        "type": "text",
        "text": "You answer questions about geography",  # 5 words
        "cache_control": {"type": "ephemeral"},
    }
]


@pytest.fixture
def server() -> Iterator[ModelServer]:
    with ModelServer() as running:
        yield running


@pytest.fixture
def oai(server: ModelServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0) as client:
        yield client


@pytest.fixture
def claude(server: ModelServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        base_url=server.anthropic_base_url, api_key="sk-test", max_retries=0
    ) as client:
        yield client


def _content(completion: ChatCompletion) -> str:
    content = completion.choices[0].message.content
    assert content is not None
    return content


def _usage(completion: ChatCompletion) -> CompletionUsage:
    assert completion.usage is not None
    return completion.usage


def _cached_tokens(completion: ChatCompletion) -> int:
    details = _usage(completion).prompt_tokens_details
    assert details is not None and details.cached_tokens is not None
    return details.cached_tokens


def _text(message: Message) -> str:
    block = message.content[0]
    assert isinstance(block, TextBlock)
    return block.text


def _error_body(error: openai.APIStatusError | anthropic.APIStatusError) -> dict[str, Any]:
    assert isinstance(error.body, dict)
    return error.body


def _raw_request(server: ModelServer, body: dict[str, Any], headers: dict[str, str]) -> bytes:
    """A streaming chat-completions request as bytes, for tests that read the raw socket."""
    payload = json.dumps(body).encode()
    extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:{server.port}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(payload)}\r\n{extra}\r\n"
    ).encode() + payload


def _event_arrival_times(
    server: ModelServer, body: dict[str, Any], headers: dict[str, str]
) -> list[float]:
    """Seconds from sending a streaming request until each SSE ``data:`` line arrived."""
    arrivals: list[float] = []
    received = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        start = time.perf_counter()
        sock.sendall(_raw_request(server, body, headers))
        while not received.endswith(b"0\r\n\r\n"):
            data = sock.recv(65536)
            assert data, "the server closed the connection before the end of the stream"
            received += data
            now = time.perf_counter() - start
            arrivals += [now] * (received.count(b"data: ") - len(arrivals))
    return arrivals


# -- OpenAI ------------------------------------------------------------------------------------


def test_openai_json_answer_has_openai_shape_and_usage(oai: openai.OpenAI) -> None:
    """A chat completion parses in the SDK with the model echoed, "stop" and word-count usage."""
    completion = oai.chat.completions.create(model=GPT, messages=QUESTION)
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == GPT
    assert completion.choices[0].finish_reason == "stop"
    assert completion.choices[0].message.role == "assistant"
    assert "What is the capital of France" in _content(completion)
    usage = _usage(completion)
    assert usage.prompt_tokens == 7
    assert usage.completion_tokens == len(_content(completion).split())
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert _cached_tokens(completion) == 0


def test_openai_max_tokens_cuts_answer_with_length(oai: openai.OpenAI) -> None:
    """max_tokens and max_completion_tokens cut the answer and report finish_reason "length"."""
    by_max_tokens = oai.chat.completions.create(model=GPT, messages=QUESTION, max_tokens=3)
    by_max_completion_tokens = oai.chat.completions.create(
        model=GPT, messages=QUESTION, max_completion_tokens=2
    )
    for completion, limit in ((by_max_tokens, 3), (by_max_completion_tokens, 2)):
        assert completion.choices[0].finish_reason == "length"
        assert len(_content(completion).split()) == limit
        assert _usage(completion).completion_tokens == limit


def test_openai_stream_matches_json_answer_and_ends_with_usage(oai: openai.OpenAI) -> None:
    """A stream has a role chunk, word deltas, a finish chunk and, on request, a usage chunk."""
    expected = oai.chat.completions.create(model=GPT, messages=QUESTION)
    chunks = list(
        oai.chat.completions.create(
            model=GPT, messages=QUESTION, stream=True, stream_options={"include_usage": True}
        )
    )
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == _content(expected)
    assert len([chunk for chunk in chunks if chunk.choices and chunk.choices[0].delta.content]) > 3
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == _usage(expected).completion_tokens
    assert all(chunk.usage is None for chunk in chunks[:-1])


def test_openai_stream_without_include_usage_has_no_usage_chunk(oai: openai.OpenAI) -> None:
    """Without stream_options the last chunk carries finish_reason and no usage, as at OpenAI."""
    chunks = list(oai.chat.completions.create(model=GPT, messages=QUESTION, stream=True))
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(chunk.usage is None for chunk in chunks)


def test_openai_async_json_and_stream(server: ModelServer) -> None:
    """The async OpenAI client gets the same answer as JSON and as a stream."""

    async def run() -> tuple[str | None, str]:
        async with openai.AsyncOpenAI(
            base_url=server.openai_base_url, api_key="sk-test", max_retries=0
        ) as client:
            completion = await client.chat.completions.create(model=GPT, messages=QUESTION)
            stream = await client.chat.completions.create(model=GPT, messages=QUESTION, stream=True)
            pieces = [chunk.choices[0].delta.content or "" async for chunk in stream]
            return completion.choices[0].message.content, "".join(pieces)

    json_text, streamed_text = asyncio.run(run())
    assert json_text == streamed_text


def test_openai_repeated_prompt_reports_cached_tokens(oai: openai.OpenAI) -> None:
    """A prompt this server saw before reports its prompt tokens as cached, still counted."""
    first = oai.chat.completions.create(model=GPT, messages=QUESTION)
    second = oai.chat.completions.create(model=GPT, messages=QUESTION)
    other_model = oai.chat.completions.create(model="gpt-4o", messages=QUESTION)
    assert _cached_tokens(first) == 0
    assert _cached_tokens(second) == _usage(second).prompt_tokens == 7
    assert _cached_tokens(other_model) == 0


def test_openai_embeddings_are_deterministic_floats_and_base64(oai: openai.OpenAI) -> None:
    """Embeddings are unit vectors fixed by (model, text), in float and base64 encodings."""
    model = "text-embedding-3-small"
    floats = oai.embeddings.create(model=model, input=["a b", "c"], encoding_format="float")
    again = oai.embeddings.create(model=model, input="a b", encoding_format="float")
    assert floats.data[0].embedding == again.data[0].embedding
    assert floats.data[0].embedding != floats.data[1].embedding
    assert sum(value * value for value in floats.data[0].embedding) == pytest.approx(1.0)
    assert floats.usage.prompt_tokens == 3
    encoded = oai.embeddings.with_raw_response.create(
        model=model, input="a b", encoding_format="base64", dimensions=16
    )
    raw = base64.b64decode(json.loads(encoded.text)["data"][0]["embedding"])
    assert struct.unpack("<16f", raw)[0] == pytest.approx(
        oai.embeddings.create(model=model, input="a b", dimensions=16).data[0].embedding[0]
    )


def test_models_list_answers_each_sdk_in_its_shape(
    oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    """GET /v1/models answers both SDKs, each in its own provider's shape."""
    assert GPT in [model.id for model in oai.models.list()]
    assert CLAUDE in [model.id for model in claude.models.list()]


# -- Anthropic ---------------------------------------------------------------------------------


def test_anthropic_json_answer_has_anthropic_shape_and_usage(claude: anthropic.Anthropic) -> None:
    """A message parses in the SDK with text content, end_turn and word-count usage."""
    message = claude.messages.create(
        model=CLAUDE, max_tokens=100, system="Be brief", messages=QUESTION
    )
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == CLAUDE
    assert message.id.startswith("msg_")
    assert message.stop_reason == "end_turn"
    assert message.stop_sequence is None
    assert "What is the capital of France" in _text(message)
    assert message.usage.input_tokens == 2 + 7  # system + user words
    assert message.usage.output_tokens == len(_text(message).split())
    assert message.usage.cache_creation_input_tokens == 0
    assert message.usage.cache_read_input_tokens == 0


def test_anthropic_max_tokens_cut_reports_max_tokens(claude: anthropic.Anthropic) -> None:
    """A max_tokens smaller than the answer cuts it and reports stop_reason "max_tokens"."""
    message = claude.messages.create(model=CLAUDE, max_tokens=2, messages=QUESTION)
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 2
    assert len(_text(message).split()) == 2


def test_anthropic_stream_sends_full_event_sequence(server: ModelServer) -> None:
    """The raw SSE stream is Anthropic's sequence: start, block start, ping, deltas, stops."""
    body = {"model": CLAUDE, "max_tokens": 100, "messages": QUESTION, "stream": True}
    with httpx.Client() as client:
        response = client.post(f"{server.url}/v1/messages", json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    lines = response.text.splitlines()
    names = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}


def test_anthropic_stream_parses_to_same_message(claude: anthropic.Anthropic) -> None:
    """The SDK's stream helper rebuilds the JSON answer's text, stop reason and usage."""
    expected = claude.messages.create(model=CLAUDE, max_tokens=100, messages=QUESTION)
    with claude.messages.stream(model=CLAUDE, max_tokens=100, messages=QUESTION) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_message()
    assert events.count("content_block_delta") > 3
    assert _text(final) == _text(expected)
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == expected.usage.output_tokens
    assert final.usage.input_tokens == expected.usage.input_tokens


def test_anthropic_async_json_and_stream(server: ModelServer) -> None:
    """The async Anthropic client gets the same answer as JSON and as raw stream events."""

    async def run() -> tuple[str, str, str | None]:
        async with anthropic.AsyncAnthropic(
            base_url=server.anthropic_base_url, api_key="sk-test", max_retries=0
        ) as client:
            message = await client.messages.create(model=CLAUDE, max_tokens=100, messages=QUESTION)
            stream = await client.messages.create(
                model=CLAUDE, max_tokens=100, messages=QUESTION, stream=True
            )
            pieces: list[str] = []
            stop_reason = None
            async for event in stream:
                if event.type == "content_block_delta" and event.delta.type == "text_delta":
                    pieces.append(event.delta.text)
                elif event.type == "message_delta":
                    stop_reason = event.delta.stop_reason
            return _text(message), "".join(pieces), stop_reason

    json_text, streamed_text, stop_reason = asyncio.run(run())
    assert json_text == streamed_text
    assert stop_reason == "end_turn"


def test_anthropic_cache_control_creates_then_reads(claude: anthropic.Anthropic) -> None:
    """A cache_control block is written on first sight, read after, and left out of input_tokens."""
    first = claude.messages.create(
        model=CLAUDE, max_tokens=50, system=CACHED_SYSTEM, messages=QUESTION
    )
    spain: Any = [{"role": "user", "content": "And of Spain"}]
    second = claude.messages.create(
        model=CLAUDE, max_tokens=50, system=CACHED_SYSTEM, messages=spain
    )
    assert first.usage.cache_creation_input_tokens == 5
    assert first.usage.cache_read_input_tokens == 0
    assert first.usage.input_tokens == 7
    assert second.usage.cache_creation_input_tokens == 0
    assert second.usage.cache_read_input_tokens == 5
    assert second.usage.input_tokens == 3


def test_anthropic_longer_prefix_reads_the_old_part_and_writes_the_new(
    claude: anthropic.Anthropic,
) -> None:
    """With two breakpoints, the prefix seen before is read and the rest up to the last written."""
    claude.messages.create(model=CLAUDE, max_tokens=5, system=CACHED_SYSTEM, messages=QUESTION)
    conversation: Any = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "four five", "cache_control": {"type": "ephemeral"}}
            ],
        },
        {"role": "assistant", "content": "six"},
        {"role": "user", "content": "seven eight"},
    ]
    message = claude.messages.create(
        model=CLAUDE, max_tokens=5, system=CACHED_SYSTEM, messages=conversation
    )
    assert message.usage.cache_read_input_tokens == 5  # the system block
    assert message.usage.cache_creation_input_tokens == 2  # "four five"
    assert message.usage.input_tokens == 3  # "six", "seven eight"


# -- determinism -------------------------------------------------------------------------------


def test_answers_are_a_pure_function_of_the_prompt(server: ModelServer) -> None:
    """The same request gets the same answer from any server; other prompts get other answers."""

    def ask(target: ModelServer, model: str, messages: Any) -> str:
        with openai.OpenAI(
            base_url=target.openai_base_url, api_key="sk-test", max_retries=0
        ) as client:
            return _content(client.chat.completions.create(model=model, messages=messages))

    answer = ask(server, GPT, QUESTION)
    with ModelServer() as other_server:
        assert ask(other_server, GPT, QUESTION) == answer
    assert ask(server, GPT, QUESTION) == answer
    assert ask(server, GPT, [{"role": "user", "content": "What is the capital of Spain"}]) != answer
    assert ask(server, "gpt-4o", QUESTION) != answer
    assert ask(server, GPT, [{"role": "system", "content": "Be brief"}, *QUESTION]) != answer


def test_anthropic_system_prompt_changes_the_answer(claude: anthropic.Anthropic) -> None:
    """Anthropic's system parameter is part of the prompt the answer depends on."""
    plain = claude.messages.create(model=CLAUDE, max_tokens=50, messages=QUESTION)
    again = claude.messages.create(model=CLAUDE, max_tokens=50, messages=QUESTION)
    brief = claude.messages.create(
        model=CLAUDE, max_tokens=50, system="Be brief", messages=QUESTION
    )
    assert _text(plain) == _text(again)
    assert _text(plain) != _text(brief)


# -- faults ------------------------------------------------------------------------------------


def test_openai_fault_headers_raise_sdk_errors(oai: openai.OpenAI) -> None:
    """Header faults 429 and 500 surface as the OpenAI SDK's RateLimitError, InternalServerError."""
    with pytest.raises(openai.RateLimitError) as rate_limited:
        oai.chat.completions.create(
            model=GPT, messages=QUESTION, extra_headers={"x-workbench-fault": "429"}
        )
    assert rate_limited.value.response.headers["retry-after"] == "1"
    assert _error_body(rate_limited.value)["code"] == "rate_limit_exceeded"
    with pytest.raises(openai.InternalServerError) as failed:
        oai.chat.completions.create(
            model=GPT, messages=QUESTION, extra_headers={"x-workbench-fault": "500"}
        )
    assert _error_body(failed.value)["type"] == "server_error"


def test_anthropic_fault_headers_raise_sdk_errors(claude: anthropic.Anthropic) -> None:
    """Header faults 429 and 500 surface as the Anthropic SDK's errors, in Anthropic's shape."""
    with pytest.raises(anthropic.RateLimitError) as rate_limited:
        claude.messages.create(
            model=CLAUDE,
            max_tokens=5,
            messages=QUESTION,
            extra_headers={"x-workbench-fault": "429"},
        )
    body = _error_body(rate_limited.value)
    assert body["type"] == "error"
    assert body["error"]["type"] == "rate_limit_error"
    assert "retry-after" in rate_limited.value.response.headers
    with pytest.raises(anthropic.InternalServerError) as failed:
        claude.messages.create(
            model=CLAUDE,
            max_tokens=5,
            messages=QUESTION,
            extra_headers={"x-workbench-fault": "500"},
        )
    assert _error_body(failed.value)["error"]["type"] == "api_error"


def test_fail_next_fails_count_calls_then_recovers(server: ModelServer, oai: openai.OpenAI) -> None:
    """fail_next queues server-wide faults for the next model calls, then answers normally."""
    server.fail_next("429", count=2)
    server.fail_next(500)
    for expected in (openai.RateLimitError, openai.RateLimitError, openai.InternalServerError):
        with pytest.raises(expected):
            oai.chat.completions.create(model=GPT, messages=QUESTION)
    completion = oai.chat.completions.create(model=GPT, messages=QUESTION)
    assert completion.choices[0].finish_reason == "stop"


def test_sdk_retries_recover_from_a_queued_fault(server: ModelServer) -> None:
    """With the SDK's own retries on, one queued 429 is retried and the call succeeds."""
    server.fail_next("429")
    with openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=2) as client:
        completion = client.chat.completions.create(model=GPT, messages=QUESTION)
    assert completion.choices[0].finish_reason == "stop"
    assert server.request_count == 2


def test_malformed_sse_breaks_openai_stream(oai: openai.OpenAI) -> None:
    """A malformed-sse fault sends some content, then bad JSON, and the OpenAI stream raises."""
    received: list[str] = []
    stream = oai.chat.completions.create(
        model=GPT,
        messages=QUESTION,
        stream=True,
        extra_headers={"x-workbench-fault": "malformed-sse"},
    )
    with pytest.raises((ValueError, openai.APIError)):
        received.extend(chunk.choices[0].delta.content or "" for chunk in stream)
    assert "".join(received)


def test_malformed_sse_breaks_anthropic_stream(
    server: ModelServer, claude: anthropic.Anthropic
) -> None:
    """A queued malformed-sse fault makes the Anthropic stream raise before message_stop."""
    server.fail_next("malformed-sse")
    seen: list[str] = []
    stream = claude.messages.stream(model=CLAUDE, max_tokens=100, messages=QUESTION)
    with stream as events, pytest.raises((ValueError, anthropic.APIError)):
        seen.extend(event.type for event in events)
    assert "content_block_delta" in seen
    assert "message_stop" not in seen


def test_malformed_sse_ends_the_connection_without_a_terminator(server: ModelServer) -> None:
    """On the wire, a malformed stream ends in a broken data line, with no [DONE] or last chunk."""
    body = {"model": GPT, "messages": QUESTION, "stream": True}
    request = _raw_request(server, body, {"x-workbench-fault": "malformed-sse"})
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(request)
        raw = b"".join(iter(lambda: sock.recv(65536), b""))  # until the server hangs up
    assert raw.startswith(b"HTTP/1.1 200 OK")
    assert b"[DONE]" not in raw
    assert not raw.endswith(b"0\r\n\r\n")
    last_data = [line for line in raw.split(b"\n") if line.startswith(b"data: ")][-1]
    with pytest.raises(ValueError):
        json.loads(last_data.removeprefix(b"data: "))


def test_unknown_fault_header_is_a_400_naming_allowed_faults(oai: openai.OpenAI) -> None:
    """An unknown x-workbench-fault value is a 400 whose message lists the allowed faults."""
    with pytest.raises(openai.BadRequestError, match="malformed-sse"):
        oai.chat.completions.create(
            model=GPT, messages=QUESTION, extra_headers={"x-workbench-fault": "teapot"}
        )


def test_fail_next_rejects_unknown_fault_and_bad_count(server: ModelServer) -> None:
    """fail_next raises TestServerError for an unknown fault name or a count below 1."""
    teapot: Any = "teapot"
    with pytest.raises(TestServerError, match="'429', '500' or 'malformed-sse'"):
        server.fail_next(teapot)
    with pytest.raises(TestServerError, match="count=0"):
        server.fail_next("429", count=0)


# -- latency -----------------------------------------------------------------------------------


def test_latency_header_delays_one_request(oai: openai.OpenAI) -> None:
    """x-workbench-latency delays the response by at least that many seconds."""
    start = time.perf_counter()
    oai.chat.completions.create(
        model=GPT, messages=QUESTION, extra_headers={"x-workbench-latency": "0.3"}
    )
    assert time.perf_counter() - start >= 0.3


def test_server_wide_latency_and_chunk_delay(server: ModelServer, oai: openai.OpenAI) -> None:
    """latency_s delays each response and chunk_delay_s spaces out consecutive SSE events."""
    server.latency_s = 0.2
    start = time.perf_counter()
    oai.chat.completions.create(model=GPT, messages=QUESTION)
    assert time.perf_counter() - start >= 0.2
    server.latency_s = 0
    server.chunk_delay_s = 0.03
    start = time.perf_counter()
    chunks = list(oai.chat.completions.create(model=GPT, messages=QUESTION, stream=True))
    # A gap before every event after the first: the other chunks and [DONE].
    assert time.perf_counter() - start >= 0.03 * len(chunks)


def test_first_chunk_is_flushed_before_delayed_chunks(server: ModelServer) -> None:
    """The first SSE event reaches the socket at once, not held back with later delayed events."""
    # One answer word keeps the stream short: role, word, finish and [DONE] events.
    body = {"model": GPT, "messages": QUESTION, "stream": True, "max_tokens": 1}
    arrivals = _event_arrival_times(server, body, {"x-workbench-chunk-delay": "0.4"})
    # Buffered output would deliver the first two events together, with no gap between them.
    assert arrivals[1] - arrivals[0] >= 0.35


def test_latency_comes_before_the_first_chunk(server: ModelServer) -> None:
    """x-workbench-latency delays the first SSE event; the chunk delay then spaces the rest."""
    body = {"model": GPT, "messages": QUESTION, "stream": True}
    headers = {"x-workbench-latency": "0.3", "x-workbench-chunk-delay": "0.05"}
    arrivals = _event_arrival_times(server, body, headers)
    assert arrivals[0] >= 0.3
    assert arrivals[-1] - arrivals[0] >= 0.05 * (len(arrivals) - 1)


def test_bad_latency_header_is_a_400(oai: openai.OpenAI) -> None:
    """A latency header that is not a number >= 0 is a 400 naming the header."""
    with pytest.raises(openai.BadRequestError, match="x-workbench-latency"):
        oai.chat.completions.create(
            model=GPT, messages=QUESTION, extra_headers={"x-workbench-latency": "-1"}
        )


# -- HTTP behaviour ----------------------------------------------------------------------------


def test_unknown_path_and_invalid_json_get_provider_shaped_errors(server: ModelServer) -> None:
    """Unknown paths get a 404, unparsable bodies a 400, each in the caller's provider shape."""
    with httpx.Client(base_url=server.url) as client:
        missing = client.post("/v1/nothing", json={})
        bad_openai = client.post("/v1/chat/completions", content=b"{not json")
        bad_anthropic = client.post(
            "/v1/messages", content=b"{not json", headers={"anthropic-version": "2023-06-01"}
        )
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "invalid_request_error"
    assert bad_openai.status_code == 400
    assert set(bad_openai.json()["error"]) == {"message", "type", "param", "code"}
    assert bad_anthropic.status_code == 400
    assert bad_anthropic.json()["type"] == "error"
    assert bad_anthropic.json()["error"]["type"] == "invalid_request_error"


def test_missing_required_field_is_a_400_naming_it(server: ModelServer) -> None:
    """A request without a required field (Anthropic's max_tokens) is a 400 naming the field."""
    with httpx.Client(base_url=server.url) as client:
        response = client.post("/v1/messages", json={"model": CLAUDE, "messages": QUESTION})
    assert response.status_code == 400
    assert "max_tokens" in response.json()["error"]["message"]


def test_keep_alive_serves_many_requests_on_one_connection(server: ModelServer) -> None:
    """Several requests, JSON and streamed, are answered over one HTTP/1.1 connection."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        reader = sock.makefile("rb")
        for stream in (False, True, False, True):
            body = {"model": GPT, "messages": QUESTION, "stream": stream}
            sock.sendall(_raw_request(server, body, {}))
            assert reader.readline() == b"HTTP/1.1 200 OK\r\n"
            headers = dict(
                line.decode().rstrip().lower().split(": ", 1)
                for line in iter(reader.readline, b"\r\n")
            )
            if stream:
                assert headers["transfer-encoding"] == "chunked"
                while size := int(reader.readline(), 16):
                    reader.read(size + 2)
                assert reader.readline() == b"\r\n"
            else:
                json.loads(reader.read(int(headers["content-length"])))
        reader.close()
    assert server.request_count == 4


def test_concurrent_clients_all_get_answers(server: ModelServer) -> None:
    """Threads and asyncio tasks calling at once all get complete, correct answers."""
    with openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0) as client:

        def ask(index: int) -> str:
            question: Any = [{"role": "user", "content": f"question {index}"}]
            return _content(client.chat.completions.create(model=GPT, messages=question))

        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(ask, range(64)))
    assert all(answer.endswith(f"question {index}") for index, answer in enumerate(answers))

    async def ask_all() -> list[str]:
        async with anthropic.AsyncAnthropic(
            base_url=server.anthropic_base_url, api_key="sk-test", max_retries=0
        ) as aclient:
            calls = [
                aclient.messages.create(
                    model=CLAUDE,
                    max_tokens=50,
                    messages=[{"role": "user", "content": f"task {index}"}],
                )
                for index in range(32)
            ]
            return [_text(message) for message in await asyncio.gather(*calls)]

    texts = asyncio.run(ask_all())
    assert all(text.endswith(f"task {index}") for index, text in enumerate(texts))
    assert server.request_count == 64 + 32


def test_requests_are_recorded_and_reset_forgets_them(
    server: ModelServer, oai: openai.OpenAI
) -> None:
    """server.requests keeps method, path, headers and body; reset() clears them and the cache."""
    oai.chat.completions.create(model=GPT, messages=QUESTION, extra_headers={"x-trace": "abc"})
    (request,) = server.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.body == {"model": GPT, "messages": QUESTION}
    assert request.headers["x-trace"] == "abc"
    assert request.headers["authorization"] == "Bearer sk-test"
    server.fail_next("500")
    server.reset()
    assert server.requests == []
    again = oai.chat.completions.create(model=GPT, messages=QUESTION)
    assert _cached_tokens(again) == 0
    assert server.request_count == 1


def test_stop_closes_pooled_keep_alive_connections(server: ModelServer, oai: openai.OpenAI) -> None:
    """After stop(), a client's pooled keep-alive connection is no longer answered."""
    oai.models.list()
    server.stop()
    with pytest.raises(openai.APIConnectionError):
        oai.models.list()


# -- construction and lifecycle ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"latency_s": -0.1}, "latency_s=-0.1"),
        ({"latency_s": float("inf")}, "latency_s=inf"),
        ({"chunk_delay_s": "0.1"}, "chunk_delay_s='0.1'"),
        ({"port": 70000}, "port=70000"),
        ({"port": True}, "port=True"),
    ],
)
def test_bad_constructor_arguments_raise(kwargs: dict[str, Any], named: str) -> None:
    """Bad constructor arguments raise TestServerError naming the argument and its value."""
    with pytest.raises(TestServerError) as raised:
        ModelServer(**kwargs)
    assert named in str(raised.value)


def test_bad_delay_assignment_raises_and_keeps_the_old_value(server: ModelServer) -> None:
    """Assigning a negative server-wide delay raises TestServerError and changes nothing."""
    with pytest.raises(TestServerError, match="chunk_delay_s=-1"):
        server.chunk_delay_s = -1
    assert server.chunk_delay_s == 0


def test_port_in_use_raises_test_server_error(server: ModelServer) -> None:
    """Starting on a port that is already listening raises TestServerError, not OSError."""
    with pytest.raises(TestServerError, match="port=0 for a free one"):
        ModelServer(port=server.port).start()


def test_addresses_need_a_running_server() -> None:
    """url raises TestServerError before start(); once running, the base URLs derive from it."""
    server = ModelServer()
    with pytest.raises(TestServerError, match="start"):
        _ = server.url
    with server.start():
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert server.openai_base_url == server.url + "/v1"
        assert server.anthropic_base_url == server.url
        with pytest.raises(TestServerError, match="already running"):
            server.start()
    assert not server.running


@pytest.mark.parametrize(
    ("module", "stop_signal"),
    [
        ("workbench.testmodel", signal.SIGTERM),
        ("workbench.testmodel", signal.SIGINT),
        ("workbench.testing", signal.SIGTERM),
    ],
)
def test_module_entry_point_prints_the_base_urls_to_export(
    module: str, stop_signal: signal.Signals
) -> None:
    """`python -m workbench.testing` (or workbench.testmodel) prints the exact OPENAI_BASE_URL
    and ANTHROPIC_BASE_URL to export, both SDKs answer there, and it exits 0 on a signal."""
    with subprocess.Popen(
        [sys.executable, "-m", module, "--latency", "0.01"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as process:
        assert process.stdout is not None
        try:
            exported = dict(
                process.stdout.readline().strip().removeprefix("export ").split("=", 1)
                for _ in range(2)
            )
            assert set(exported) == {"OPENAI_BASE_URL", "ANTHROPIC_BASE_URL"}
            with openai.OpenAI(
                base_url=exported["OPENAI_BASE_URL"], api_key="sk-test", max_retries=0
            ) as oai:
                completion = oai.chat.completions.create(model=GPT, messages=QUESTION)
            assert completion.object == "chat.completion"
            with anthropic.Anthropic(
                base_url=exported["ANTHROPIC_BASE_URL"], api_key="sk-test", max_retries=0
            ) as claude:
                message = claude.messages.create(model=CLAUDE, max_tokens=20, messages=QUESTION)
            assert message.type == "message"
        finally:
            process.send_signal(stop_signal)
            assert process.wait(timeout=30) == 0


def test_a_wrong_base_url_is_a_404_naming_the_right_one(server: ModelServer) -> None:
    """The root URL as OpenAI's base_url, or /v1 on Anthropic's, gets a 404 in the SDK's
    error shape whose message names the base URL to use instead."""
    with openai.OpenAI(base_url=server.url, api_key="sk-test", max_retries=0) as oai:
        with pytest.raises(openai.NotFoundError) as openai_error:
            oai.chat.completions.create(model=GPT, messages=QUESTION)
    assert f"OPENAI_BASE_URL={server.openai_base_url}" in str(openai_error.value)
    assert "/chat/completions" in str(openai_error.value)
    with anthropic.Anthropic(
        base_url=server.url + "/v1", api_key="sk-test", max_retries=0
    ) as claude:
        with pytest.raises(anthropic.NotFoundError) as anthropic_error:
            claude.messages.create(model=CLAUDE, max_tokens=20, messages=QUESTION)
    assert f"ANTHROPIC_BASE_URL={server.anthropic_base_url}" in str(anthropic_error.value)
    assert _error_body(anthropic_error.value)["error"]["type"] == "not_found_error"


def test_public_names_are_exported_and_sorted() -> None:
    """workbench.testing.__all__ is sorted and every name in it exists."""
    assert workbench.testing.__all__ == sorted(workbench.testing.__all__)
    assert all(hasattr(workbench.testing, name) for name in workbench.testing.__all__)


def test_workbench_testing_re_exports_the_test_model() -> None:
    """The server moved to workbench.testmodel; workbench.testing hands out the same objects."""
    for name in workbench.testmodel.__all__:
        assert name in workbench.testing.__all__
        assert getattr(workbench.testing, name) is getattr(workbench.testmodel, name)
