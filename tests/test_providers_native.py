"""Tests of the native provider APIs: Gemini/Vertex, Bedrock, Ollama, Cohere, OpenAI media.

Each API is driven over real HTTP against the test model server (which speaks each wire
format as the provider's API reference shows it), captured by a real ``workbench.record``,
and checked for provider, operation, model, tokens, text and cost.
"""

from __future__ import annotations

import logging
from typing import Any

import boto3
import genai_prices
import httpx
import openai
import pytest

import workbench
from workbench.providers import analyse, identify
from workbench.records import ModelCall
from workbench.store import Store
from workbench.testing import ModelServer

GEMINI = "https://generativelanguage.googleapis.com"
VERTEX = "https://us-central1-aiplatform.googleapis.com"
BEDROCK = "https://bedrock-runtime.us-east-1.amazonaws.com"
COHERE = "https://api.cohere.com"
OLLAMA = "http://localhost:11434"
GEMINI_PROMPT = {"contents": [{"role": "user", "parts": [{"text": "Hello there Gemini"}]}]}
BEDROCK_PROMPT = {"messages": [{"role": "user", "content": [{"text": "Hi Bedrock"}]}]}
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"


@pytest.mark.parametrize(
    ("url", "body", "expected"),
    [
        (GEMINI + "/v1beta/models/gemini-2.0-flash:generateContent", None,
         ("gcp.gemini", "generate_content")),
        (GEMINI + "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse", None,
         ("gcp.gemini", "generate_content")),
        (VERTEX + "/v1/projects/p/locations/us-central1/publishers/google/models/"
         "gemini-2.0-flash:generateContent", None, ("gcp.vertex_ai", "generate_content")),
        (BEDROCK + "/model/" + HAIKU + "/converse", None, ("aws.bedrock", "chat")),
        (BEDROCK + "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream", None,
         ("aws.bedrock", "chat")),
        (BEDROCK + "/model/" + HAIKU + "/invoke", None, ("aws.bedrock", "chat")),
        (OLLAMA + "/api/chat", {"model": "llama3.2", "messages": []}, ("ollama", "chat")),
        (OLLAMA + "/api/generate", {"model": "llama3.2"}, ("ollama", "text_completion")),
        (OLLAMA + "/api/embed", {"model": "nomic-embed-text"}, ("ollama", "embeddings")),
        (COHERE + "/v2/chat", {"model": "command-r-plus"}, ("cohere", "chat")),
        (COHERE + "/v2/embed", {"model": "embed-v4.0"}, ("cohere", "embeddings")),
        ("https://api.openai.com/v1/audio/transcriptions", None, ("openai", "transcription")),
        ("https://api.openai.com/v1/images/generations", {"model": "gpt-image-1"},
         ("openai", "image_generation")),
        ("https://api.groq.com/openai/v1/audio/transcriptions", None, ("groq", "transcription")),
    ],
)  # fmt: skip
def test_native_paths_name_their_provider_and_operation(
    url: str, body: Any, expected: tuple[str, str]
) -> None:
    """Each native API path is a model call of its provider, not plain HTTP."""
    assert identify("POST", url, body) == expected


class _ToServer(httpx.HTTPTransport):
    """Sends a request meant for a provider's host to the test model server, path kept."""

    def __init__(self, server: ModelServer) -> None:
        super().__init__()
        self._base = httpx.URL(server.url)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(
            scheme=self._base.scheme, host=self._base.host, port=self._base.port
        )
        return super().handle_request(request)


def _call(store: Store, server: ModelServer, url: str, **kwargs: Any) -> ModelCall:
    """POST ``url`` (really: to the test server) inside a recorded run; its one model call."""
    with (
        httpx.Client(transport=_ToServer(server)) as client,
        workbench.record("native", inputs={}, store=store) as run,
    ):
        response = client.post(url, **kwargs)
        response.raise_for_status()
        response.read()
    (call,) = store.get_execution(run.id).model_calls
    return call


def _price(model: str, api_url: str, input_tokens: int, output_tokens: int) -> float:
    usage = genai_prices.Usage(input_tokens=input_tokens, output_tokens=output_tokens)
    return float(genai_prices.calc_price(usage, model, provider_api_url=api_url).total_price)


@pytest.mark.parametrize(
    "suffix",
    [":generateContent", ":streamGenerateContent?alt=sse", ":streamGenerateContent"],
)
def test_gemini_native_calls_and_streams_are_read_and_priced(
    store: Store, model_server: ModelServer, suffix: str
) -> None:
    """generateContent, its SSE stream and its JSON-array stream give model, tokens and cost."""
    url = GEMINI + "/v1beta/models/gemini-2.0-flash" + suffix
    call = _call(store, model_server, url, json=GEMINI_PROMPT)
    assert (call.provider, call.operation, call.model) == (
        "gcp.gemini",
        "generate_content",
        "gemini-2.0-flash",
    )
    assert (call.input_tokens, call.output_tokens, call.tokens_estimated) == (3, 7, False)
    assert call.finish_reason == "STOP" and call.stream_error is None
    assert call.text is not None and call.text.endswith("Hello there Gemini")
    expected = _price("gemini-2.0-flash", GEMINI, 3, 7)
    assert call.cost_usd == pytest.approx(expected) and expected > 0


def test_gemini_usage_counts_thoughts_as_output_and_cache_as_input() -> None:
    """thoughtsTokenCount is billed output; cachedContentTokenCount is part of the input."""
    body = (
        b'{"candidates":[{"content":{"role":"model","parts":[{"text":"thinking","thought":true},'
        b'{"text":"Answer"}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":100,'
        b'"candidatesTokenCount":5,"thoughtsTokenCount":40,"cachedContentTokenCount":60},'
        b'"modelVersion":"gemini-2.5-flash"}'
    )
    facts = analyse("gcp.gemini", "generate_content", {}, 200, "application/json", body)
    assert (facts.input_tokens, facts.output_tokens, facts.cache_read_tokens) == (100, 45, 60)
    assert facts.text == "Answer" and facts.model == "gemini-2.5-flash"


@pytest.mark.parametrize(("stream", "model"), [(True, "llama3.2"), (False, "qwen3:8b")])
def test_ollama_chat_json_and_ndjson_stream_are_read(
    store: Store,
    model_server: ModelServer,
    stream: bool,
    model: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """/api/chat (NDJSON by default) gives tokens from the counts; cost unknown, self-hosted."""
    # A model per case: the price book warns once per model.
    body = {"model": model, "messages": [{"role": "user", "content": "Hi llama"}]}
    with caplog.at_level(logging.WARNING, logger="workbench.pricing"):
        call = _call(store, model_server, OLLAMA + "/api/chat", json={**body, "stream": stream})
    assert (call.provider, call.operation, call.model) == ("ollama", "chat", model)
    assert (call.input_tokens, call.output_tokens, call.tokens_estimated) == (2, 6, False)
    assert call.text is not None and call.text.endswith("Hi llama")
    assert call.finish_reason == "stop" and call.stream_error is None
    assert call.cost_usd is None
    assert "ollama is self-hosted" in caplog.text


def test_ollama_embed_counts_its_input(store: Store, model_server: ModelServer) -> None:
    """/api/embed reads prompt_eval_count as input tokens and 0 output tokens."""
    call = _call(
        store, model_server, OLLAMA + "/api/embed",
        json={"model": "nomic-embed-text", "input": ["one two", "three"]},
    )  # fmt: skip
    assert (call.operation, call.input_tokens, call.output_tokens) == ("embeddings", 3, 0)
    assert call.tokens_estimated is False


def test_an_ndjson_stream_cut_before_done_says_so() -> None:
    """An Ollama stream without its done line keeps the text and names what is missing."""
    body = b'{"model":"m","message":{"role":"assistant","content":"Hel"},"done":false}\n'
    facts = analyse("ollama", "chat", {"model": "m"}, 200, "application/x-ndjson", body)
    assert facts.text == "Hel"
    assert facts.stream_error is not None and '"done": true' in facts.stream_error


@pytest.mark.parametrize("stream", [False, True])
def test_cohere_v2_chat_and_stream_are_read_and_priced(
    store: Store, model_server: ModelServer, stream: bool
) -> None:
    """/v2/chat bills billed_units (not the larger tokens count), streamed or not."""
    body = {
        "model": "command-r-plus",
        "messages": [{"role": "user", "content": "Hi Cohere"}],
        "stream": stream,
    }
    call = _call(store, model_server, COHERE + "/v2/chat", json=body)
    assert (call.provider, call.operation, call.model) == ("cohere", "chat", "command-r-plus")
    assert (call.input_tokens, call.output_tokens, call.tokens_estimated) == (2, 6, False)
    assert call.finish_reason == "COMPLETE" and call.stream_error is None
    assert call.text is not None and call.text.endswith("Hi Cohere")
    assert call.cost_usd == pytest.approx(_price("command-r-plus", COHERE, 2, 6))


@pytest.mark.parametrize("method", ["converse", "converse-stream"])
def test_bedrock_converse_and_its_event_stream_are_read(
    store: Store, model_server: ModelServer, method: str
) -> None:
    """converse and converse-stream (binary AWS event stream) give tokens, text, stop reason."""
    url = f"{BEDROCK}/model/anthropic.claude-3-haiku-20240307-v1%3A0/{method}"
    call = _call(store, model_server, url, json=BEDROCK_PROMPT)
    assert (call.provider, call.operation) == ("aws.bedrock", "chat")
    assert (call.input_tokens, call.output_tokens, call.tokens_estimated) == (2, 6, False)
    assert call.finish_reason == "end_turn" and call.stream_error is None
    assert call.text is not None and call.text.endswith("Hi Bedrock")
    # The model is in the path, not the body: the recorded call names it and is priced.
    assert call.model == HAIKU and call.cost_usd == pytest.approx(_price(HAIKU, BEDROCK, 2, 6))
    assert call.streamed is (method == "converse-stream")


def test_bedrock_names_its_model_from_the_path_and_is_priced() -> None:
    """Given the URL, a Converse response is priced as genai-prices prices Bedrock's model."""
    url = f"{BEDROCK}/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    body = b'{"output":{"message":{"role":"assistant","content":[{"text":"Hi"}]}},'
    body += b'"stopReason":"end_turn","usage":{"inputTokens":1000,"outputTokens":200,'
    body += b'"cacheReadInputTokens":500}}'
    facts = analyse("aws.bedrock", "chat", {}, 200, "application/json", body, url=url)
    assert facts.model == HAIKU
    # Bedrock's inputTokens leaves out cache reads; OpenTelemetry's input includes them.
    assert (facts.input_tokens, facts.cache_read_tokens, facts.output_tokens) == (1500, 500, 200)
    book = workbench.pricing.PriceBook()
    cost = book.cost_usd("aws.bedrock", facts.model, input_tokens=1000, output_tokens=200)
    assert cost == pytest.approx(_price(HAIKU, BEDROCK, 1000, 200))


def test_the_servers_bedrock_wire_format_is_what_boto3_reads(model_server: ModelServer) -> None:
    """The real boto3 client parses the test server's Converse JSON and binary event stream."""
    client = boto3.client(
        "bedrock-runtime",
        endpoint_url=model_server.url,
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="not-a-secret",
    )
    reply = client.converse(modelId=HAIKU, messages=BEDROCK_PROMPT["messages"])
    text = reply["output"]["message"]["content"][0]["text"]
    events = list(
        client.converse_stream(modelId=HAIKU, messages=BEDROCK_PROMPT["messages"])["stream"]
    )
    streamed = "".join(
        e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e
    )
    assert streamed == text
    assert events[-1]["metadata"]["usage"] == reply["usage"]


def test_a_bedrock_event_stream_cut_short_names_the_missing_metadata() -> None:
    """A converse-stream without its metadata event has no usage and says why."""
    from workbench._eventstream import encode_event

    body = encode_event(
        {":event-type": "contentBlockDelta", ":message-type": "event"},
        b'{"contentBlockIndex":0,"delta":{"text":"Hi"}}',
    )
    facts = analyse("aws.bedrock", "chat", {}, 200, "application/vnd.amazon.eventstream", body)
    assert facts.text == "Hi"
    assert facts.stream_error is not None and "metadata event" in facts.stream_error


def _openai_client(server: ModelServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test-0", max_retries=0)


def test_a_token_billed_transcription_records_tokens_and_text(
    store: Store, model_server: ModelServer
) -> None:
    """The real openai SDK's transcription (multipart) is a transcription call with tokens."""
    client = _openai_client(model_server)
    with client, workbench.record("audio", inputs={}, store=store) as run:
        reply = client.audio.transcriptions.create(
            model="gpt-4o-transcribe", file=("a.wav", b"RIFF" + bytes(40_000))
        )
    (call,) = store.get_execution(run.id).model_calls
    assert (call.provider, call.operation) == ("openai", "transcription")
    assert call.text == reply.text
    assert (call.input_tokens, call.output_tokens, call.tokens_estimated) == (20, 6, False)


def test_a_duration_billed_transcription_is_unknown_and_the_warning_says_why(
    store: Store, model_server: ModelServer, caplog: pytest.LogCaptureFixture
) -> None:
    """whisper-1 reports seconds, not tokens: no estimate, cost None, a warning naming why."""
    client = _openai_client(model_server)
    with (
        caplog.at_level(logging.WARNING, logger="workbench.providers"),
        client,
        workbench.record("audio", inputs={}, store=store) as run,
    ):
        client.audio.transcriptions.create(model="whisper-1", file=("a.wav", b"RIFF" + bytes(800)))
    (call,) = store.get_execution(run.id).model_calls
    assert call.operation == "transcription" and call.text
    assert (call.input_tokens, call.output_tokens, call.tokens_estimated) == (None, None, False)
    assert call.cost_usd is None
    assert "billed by duration" in caplog.text


def test_a_gpt_image_generation_is_read_and_priced(store: Store, model_server: ModelServer) -> None:
    """images.generate with gpt-image-1 records its token usage and genai-prices' cost."""
    client = _openai_client(model_server)
    with client, workbench.record("images", inputs={}, store=store) as run:
        reply = client.images.generate(model="gpt-image-1", prompt="a small red fox")
    (call,) = store.get_execution(run.id).model_calls
    assert (call.provider, call.operation, call.model) == (
        "openai",
        "image_generation",
        "gpt-image-1",
    )
    assert reply.usage is not None
    assert (call.input_tokens, call.output_tokens) == (
        reply.usage.input_tokens,
        reply.usage.output_tokens,
    )
    expected = _price(
        "gpt-image-1", "https://api.openai.com", call.input_tokens, call.output_tokens
    )
    assert call.cost_usd == pytest.approx(expected)


def test_a_per_image_generation_is_unknown_never_estimated(
    model_server: ModelServer, caplog: pytest.LogCaptureFixture
) -> None:
    """dall-e-3 reports no usage: tokens stay None (not characters / 4) and a warning says why."""
    body = b'{"created":1,"data":[{"url":"https://example.com/x.png"}]}'
    with caplog.at_level(logging.WARNING, logger="workbench.providers"):
        facts = analyse(
            "openai", "image_generation", {"model": "dall-e-3", "prompt": "a fox"}, 200,
            "application/json", body,
        )  # fmt: skip
    assert (facts.input_tokens, facts.output_tokens, facts.tokens_estimated) == (None, None, False)
    assert "billed per image" in caplog.text


@workbench.pipeline
def native_streams(*, base_url: str) -> list[str]:
    """Streams an Ollama chat (NDJSON) and a Bedrock converse-stream (binary event stream)."""
    with httpx.Client(base_url=base_url) as client:
        ollama = client.post(
            "/api/chat",
            json={"model": "llama3.2", "messages": [{"role": "user", "content": "Hi llama"}]},
        )
        bedrock = client.post(f"/model/{HAIKU}/converse-stream", json=BEDROCK_PROMPT)
    lines = [line for line in ollama.text.splitlines() if line]
    return [lines[-1], bedrock.content.hex()]


def test_native_streams_are_stored_assembled_and_replay_offline(store: Store) -> None:
    """NDJSON and event-stream calls read back with their assembled response, and replay
    byte for byte with no server running."""
    from workbench.debugging import RequestReplay

    with ModelServer() as server, workbench.record("native", inputs={}, store=store) as run:
        recorded_output = native_streams(base_url=server.url)
    ollama, bedrock = store.get_execution(run.id).model_calls
    assert ollama.response["message"]["content"] == ollama.text
    assert bedrock.response["output"]["message"]["content"][0]["text"] == bedrock.text
    result = RequestReplay(store).replay_execution(run.id)
    assert result.status == "completed"
    assert result.output == recorded_output
    assert [(c.provider, c.input_tokens, c.output_tokens) for c in result.model_calls] == [
        ("ollama", 2, 6),
        ("aws.bedrock", 2, 6),
    ]


def test_a_multipart_transcription_request_names_its_model() -> None:
    """request_fields reads a multipart upload's text fields (not its file) from the canonical
    request, so a transcription's model can be known and priced."""
    from workbench.capture.canonical import canonical_request
    from workbench.providers import request_fields

    request = httpx.Request(
        "POST",
        "https://api.openai.com/v1/audio/transcriptions",
        files={"file": ("a.wav", b"RIFF\x00\xff" * 100)},
        data={"model": "gpt-4o-transcribe", "response_format": "json"},
    )
    canonical = canonical_request(
        request.method, str(request.url), list(request.headers.items()), request.read()
    )
    fields = request_fields(canonical)
    assert fields == {"model": "gpt-4o-transcribe", "response_format": "json"}
    body = b'{"text":"Hi","usage":{"type":"tokens","input_tokens":20,"output_tokens":2}}'
    facts = analyse("openai", "transcription", fields, 200, "application/json", body)
    assert facts.model == "gpt-4o-transcribe"
    assert request_fields({"body_format": "json", "body": {"model": "m"}}) == {"model": "m"}


def test_an_applications_own_api_chat_path_stays_plain_http() -> None:
    """/api/chat or /v2/chat on an unnamed host without a model in the body is not a model call."""
    assert identify("POST", "https://shop.example.com/api/chat", {"text": "hi"}) == (
        "http",
        "post",
    )
    assert identify("POST", "https://shop.example.com/v2/chat", None) == ("http", "post")
    assert identify("POST", "http://127.0.0.1:9/api/chat", {"model": "llama3.2"}) == (
        "ollama",
        "chat",
    )
    assert identify("POST", "http://localhost:11434/api/chat", None) == ("ollama", "chat")


def test_a_vertex_call_is_priced_under_vertex(store: Store, model_server: ModelServer) -> None:
    """Vertex AI's generateContent is gcp.vertex_ai, priced by genai-prices' Google prices."""
    url = (
        VERTEX + "/v1/projects/p/locations/us-central1/publishers/google/models/"
        "gemini-2.0-flash:generateContent"
    )
    call = _call(store, model_server, url, json=GEMINI_PROMPT)
    assert (call.provider, call.operation, call.model) == (
        "gcp.vertex_ai",
        "generate_content",
        "gemini-2.0-flash",
    )
    expected = _price("gemini-2.0-flash", "https://aiplatform.googleapis.com", 3, 7)
    assert call.cost_usd == pytest.approx(expected)


@pytest.mark.parametrize(
    ("model", "options", "provider"),
    [
        ("ollama_chat/llama3.2", {}, "ollama"),
        ("gemini/gemini-2.0-flash", {"api_key": "g-test"}, "gcp.gemini"),
        ("cohere_chat/command-r-plus", {"api_key": "co-test"}, "cohere"),
        (f"bedrock/converse/{HAIKU}", {}, "aws.bedrock"),
    ],
)
# LiteLLM's provider modules build pydantic schemas of its own TypedDicts on first use. (Its
# stream handling trips pydantic deprecation warnings too: streams are driven with httpx above.)
@pytest.mark.filterwarnings("ignore:Items? .* (is|are) using the `ReadOnly` qualifier:UserWarning")
def test_litellm_reads_the_servers_native_apis_and_capture_agrees(
    store: Store,
    model_server: ModelServer,
    offline_litellm: Any,
    model: str,
    options: dict[str, Any],
    provider: str,
) -> None:
    """The real LiteLLM client, speaking each provider's native API to the test server, gets
    the text and usage that capture records for the same call."""
    base = {
        "ollama": model_server.url,
        "gcp.gemini": model_server.url + "/v1beta",
        "cohere": model_server.url + "/v2/chat",
    }
    if provider == "aws.bedrock":
        options = {
            "aws_bedrock_runtime_endpoint": model_server.url,
            "aws_access_key_id": "AKIDEXAMPLE",
            "aws_secret_access_key": "not-a-secret",
            "aws_region_name": "us-east-1",
        }
    else:
        options = {**options, "api_base": base[provider]}
    with workbench.record("litellm", inputs={}, store=store) as run:
        reply = offline_litellm.completion(
            model=model, messages=[{"role": "user", "content": "Hi there"}], **options
        )
    calls = [c for c in store.get_execution(run.id).model_calls if c.provider != "http"]
    (call,) = calls  # LiteLLM's /api/show probes of Ollama are plain HTTP
    assert call.provider == provider and call.text == reply.choices[0].message.content
    assert (call.input_tokens, call.output_tokens, call.tokens_estimated) == (2, 6, False)
    # LiteLLM counts Cohere's `tokens` (its hidden preamble too); workbench bills billed_units.
    prompt = 9 if provider == "cohere" else 2
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (prompt, 6)
