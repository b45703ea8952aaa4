"""Tests of recognising a provider by its host and pricing it under its own API URL."""

from __future__ import annotations

import json
import logging
from typing import Any

import genai_prices
import httpx2
import openai
import pytest

import workbench
from workbench.pricing import PriceBook
from workbench.providers import analyse, identify
from workbench.store import Store
from workbench.testing import ModelServer

CHAT = "/chat/completions"


@pytest.mark.parametrize(
    ("url", "provider"),
    [
        ("https://generativelanguage.googleapis.com/v1beta/openai" + CHAT, "gcp.gemini"),
        ("https://openrouter.ai/api/v1" + CHAT, "openrouter"),
        ("https://api.groq.com/openai/v1" + CHAT, "groq"),
        ("https://api.deepseek.com" + CHAT, "deepseek"),
        ("https://api.mistral.ai/v1" + CHAT, "mistral_ai"),
        ("https://api.together.xyz/v1" + CHAT, "together"),
        ("https://api.fireworks.ai/inference/v1" + CHAT, "fireworks"),
        ("https://myco.openai.azure.com/openai/deployments/prod-4o" + CHAT, "azure.ai.openai"),
        ("http://localhost:11434/v1" + CHAT, "ollama"),
        ("http://llm.internal:4000/v1" + CHAT, "litellm"),
        ("http://gpu-box:8000/v1" + CHAT, "vllm"),
        ("http://127.0.0.1:61234/v1" + CHAT, "openai"),
        ("https://gw.example.com/openai/v1" + CHAT, "openai"),
        ("https://api.anthropic.com/v1" + CHAT, "anthropic"),
    ],
)
def test_openai_compatible_hosts_name_their_provider(url: str, provider: str) -> None:
    """An OpenAI-compatible path is tagged with the provider whose host serves it."""
    assert identify("POST", url, None) == (provider, "chat")


@pytest.mark.parametrize(
    ("provider", "model", "api_url"),
    [
        ("groq", "llama-3.3-70b-versatile", "https://api.groq.com"),
        ("gcp.gemini", "gemini-2.0-flash", "https://generativelanguage.googleapis.com"),
        ("openrouter", "openai/gpt-4o", "https://openrouter.ai"),
        ("deepseek", "deepseek-chat", "https://api.deepseek.com"),
        ("mistral_ai", "mistral-large-latest", "https://api.mistral.ai"),
        ("together", "meta-llama/Llama-3.3-70B-Instruct-Turbo", "https://api.together.xyz"),
        (
            "fireworks",
            "accounts/fireworks/models/llama-v3p1-8b-instruct",
            "https://api.fireworks.ai",
        ),
        ("azure.ai.openai", "gpt-4o-2024-08-06", "https://myco.openai.azure.com"),
    ],
)
def test_each_provider_is_priced_as_genai_prices_prices_its_api_url(
    provider: str, model: str, api_url: str
) -> None:
    """The cost equals genai-prices' calc_price given the provider's API URL."""
    expected = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=1200, output_tokens=300),
        model,
        provider_api_url=api_url,
    ).total_price
    cost = PriceBook().cost_usd(provider, model, input_tokens=1200, output_tokens=300)
    assert cost == pytest.approx(float(expected))


def test_self_hosted_models_are_unknown_and_the_warning_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An Ollama model's cost is None (not $0), and the warning blames self-hosting."""
    with caplog.at_level(logging.WARNING, logger="workbench.pricing"):
        cost = PriceBook().cost_usd("ollama", "llama3.2", input_tokens=10, output_tokens=5)
    assert cost is None
    assert "ollama is self-hosted" in caplog.text
    assert "genai-prices does not know" not in caplog.text


def test_unknown_model_of_a_known_provider_names_the_api_url(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A model genai-prices lacks for Groq is reported against Groq's API URL."""
    with caplog.at_level(logging.WARNING, logger="workbench.pricing"):
        cost = PriceBook().cost_usd("groq", "no-such-model-9", input_tokens=10, output_tokens=5)
    assert cost is None
    assert "https://api.groq.com" in caplog.text


class _Loopback(httpx2.HTTPTransport):
    """Sends a request meant for a provider's host to the test model server instead."""

    def __init__(self, server: ModelServer) -> None:
        super().__init__()
        self._base = httpx2.URL(server.openai_base_url)

    def handle_request(self, request: Any) -> Any:
        request.url = request.url.copy_with(
            scheme=self._base.scheme,
            host=self._base.host,
            port=self._base.port,
            path="/v1" + CHAT,
        )
        return super().handle_request(request)


def test_a_groq_call_through_the_openai_sdk_is_tagged_and_priced(
    store: Store, model_server: ModelServer
) -> None:
    """The real openai SDK pointed at api.groq.com records a groq call priced by genai-prices."""
    client = openai.OpenAI(
        base_url="https://api.groq.com/openai/v1",
        api_key="gsk-test-0123456789",
        max_retries=0,
        http_client=httpx2.Client(transport=_Loopback(model_server)),
    )
    model = "llama-3.3-70b-versatile"
    with client, workbench.record("p", inputs={}, store=store) as run:
        reply = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "Hi Groq"}]
        )
    (call,) = store.get_execution(run.id).model_calls
    assert call.provider == "groq" and call.operation == "chat"
    usage = reply.usage
    assert usage is not None and call.cost_usd is not None
    cached = usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else 0
    expected = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=usage.prompt_tokens,
            output_tokens=usage.completion_tokens,
            cache_read_tokens=cached or 0,
        ),
        call.model or model,
        provider_api_url="https://api.groq.com",
    ).total_price
    assert call.cost_usd == pytest.approx(float(expected))


def test_an_azure_stream_is_named_by_its_deployments_model() -> None:
    """Azure's opening content-filter chunk (model "") does not hide the underlying model."""
    chunks = [
        {
            "choices": [],
            "created": 0,
            "id": "",
            "model": "",
            "object": "",
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
        },
        {
            "choices": [{"delta": {"role": "assistant", "content": "Hi"}, "index": 0}],
            "created": 1741570283,
            "id": "chatcmpl-AZ1",
            "model": "gpt-4o-2024-08-06",
            "object": "chat.completion.chunk",
        },
        {
            "choices": [{"delta": {}, "finish_reason": "stop", "index": 0}],
            "created": 1741570283,
            "id": "chatcmpl-AZ1",
            "model": "gpt-4o-2024-08-06",
            "object": "chat.completion.chunk",
            "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10},
        },
    ]
    body = "".join(f"data: {json.dumps(chunk)}\n\n" for chunk in chunks) + "data: [DONE]\n\n"
    url = "https://myco.openai.azure.com/openai/deployments/prod-4o/chat/completions"
    provider, operation = identify("POST", url, None)
    request = {"messages": [{"role": "user", "content": "Hi"}], "stream": True}
    facts = analyse(provider, operation, request, 200, "text/event-stream", body.encode())
    assert (facts.provider, facts.model, facts.text) == (
        "azure.ai.openai",
        "gpt-4o-2024-08-06",
        "Hi",
    )
    assert facts.response["id"] == "chatcmpl-AZ1"
    cost = PriceBook().cost_usd(
        facts.provider, facts.model, input_tokens=facts.input_tokens, output_tokens=1
    )
    assert cost is not None


def test_workbench_yaml_names_a_self_hosted_server(tmp_path: Any) -> None:
    """A providers: entry names a server the host table cannot know, longest base URL first."""
    (tmp_path / "workbench.yaml").write_text(
        "providers:\n  'http://gpu-box:9000': vllm\n  'http://gpu-box:9000/ollama': ollama\n"
        "  'https://llm.internal': openai\n"
    )
    assert identify("POST", "http://gpu-box:9000/v1" + CHAT, {}) == ("vllm", "chat")
    assert identify("POST", "http://gpu-box:9000/ollama/api/chat", {}) == ("ollama", "chat")
    assert identify("POST", "https://llm.internal:443/v1" + CHAT, {}) == ("openai", "chat")
    # The configured URL wins over the host table's port rule (8000 is vLLM's default).
    (tmp_path / "workbench.yaml").write_text("providers: {'http://box:8000': litellm}\n")
    assert identify("POST", "http://box:8000/v1" + CHAT, {}) == ("litellm", "chat")


def test_a_call_to_a_configured_self_hosted_server_is_unpriced_and_says_why(
    tmp_path: Any, store: Store, model_server: ModelServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The real openai SDK calling a URL mapped to vllm records provider vllm, cost None."""
    (tmp_path / "workbench.yaml").write_text(f"providers: {{'{model_server.url}': vllm}}\n")
    client = openai.OpenAI(base_url=model_server.openai_base_url, api_key="sk-x", max_retries=0)
    with (
        caplog.at_level(logging.WARNING, logger="workbench.pricing"),
        client,
        workbench.record("p", inputs={}, store=store) as run,
    ):
        client.chat.completions.create(
            model="Qwen/Qwen3-8B", messages=[{"role": "user", "content": "Hi vLLM"}]
        )
    (call,) = store.get_execution(run.id).model_calls
    assert (call.provider, call.operation) == ("vllm", "chat")
    assert call.input_tokens is not None and call.cost_usd is None
    assert "vllm is self-hosted" in caplog.text
