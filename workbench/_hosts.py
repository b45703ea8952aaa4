"""Which provider serves a URL, and under which API URL genai-prices prices its models.

This module owns the table of model providers recognised by their host — OpenAI, Anthropic,
and the OpenAI-compatible APIs of Gemini, OpenRouter, Groq, DeepSeek, Mistral, Together,
Fireworks, xAI, Perplexity and Azure OpenAI — and of self-hosted servers recognised by their
default port (Ollama 11434, a LiteLLM proxy 4000, vLLM 8000). Names are the OpenTelemetry
GenAI ``gen_ai.provider.name`` values where the conventions define one (``azure.ai.openai``,
``gcp.gemini``, ``mistral_ai``). It does not read wire formats (``workbench.providers``) or
compute prices (``workbench.pricing``).

Any other host speaking an OpenAI path stays ``openai`` and is priced as OpenAI, as before:
the test model server and gateways in front of OpenAI rely on that — unless workbench.yaml's
``providers:`` names the server (:func:`configured_provider`), which wins over the table.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["Host", "configured_provider", "host_of", "known_providers", "pricing_of"]


@dataclass(frozen=True, slots=True)
class Host:
    """A provider as recognised by its host: its name and how genai-prices finds its prices.

    ``price_url`` is the API URL genai-prices matches the provider by
    (``calc_price(..., provider_api_url=...)``). ``None`` with ``unpriced`` set means no public
    price list applies (a self-hosted server); ``None`` without it means the model name alone
    picks the provider (a LiteLLM proxy serves other providers' models).
    """

    provider: str
    price_url: str | None
    unpriced: str | None = None


_SELF_HOSTED = "{name} is self-hosted, so no public price list applies (0 if it costs you nothing)"

# (host pattern, provider, API URL genai-prices knows it by), first match wins.
_CLOUD: tuple[tuple[re.Pattern[str], Host], ...] = tuple(
    (re.compile(pattern), Host(provider, url))
    for pattern, provider, url in (
        (r"api\.openai\.com", "openai", "https://api.openai.com"),
        (r"api\.anthropic\.com", "anthropic", "https://api.anthropic.com"),
        (
            r"generativelanguage\.googleapis\.com",
            "gcp.gemini",
            "https://generativelanguage.googleapis.com",
        ),
        (r"([a-z0-9-]+-)?aiplatform\.googleapis\.com", "gcp.vertex_ai", None),
        (r"(api\.)?openrouter\.ai", "openrouter", "https://openrouter.ai"),
        (r"api\.groq\.com", "groq", "https://api.groq.com"),
        (r"api\.deepseek\.com", "deepseek", "https://api.deepseek.com"),
        (r"api\.mistral\.ai", "mistral_ai", "https://api.mistral.ai"),
        (r"api\.together\.(xyz|ai)", "together", "https://api.together.xyz"),
        (r"api\.fireworks\.ai", "fireworks", "https://api.fireworks.ai"),
        (r"api\.x\.ai", "x_ai", "https://api.x.ai"),
        (r"api\.perplexity\.ai", "perplexity", "https://api.perplexity.ai"),
        (
            r"[a-z0-9-]+\.(openai\.azure\.com|cognitiveservices\.azure\.com"
            r"|services\.ai\.azure\.com)",
            "azure.ai.openai",
            "https://azure.openai.azure.com",
        ),
        (r"api\.cohere\.(com|ai)", "cohere", "https://api.cohere.com"),
        (
            r"bedrock-runtime\.[a-z0-9-]+\.amazonaws\.com",
            "aws.bedrock",
            "https://bedrock-runtime.us-east-1.amazonaws.com",
        ),
    )
)
# Vertex AI serves Google's models under Google's prices.
_CLOUD = tuple(
    (pattern, Host(host.provider, "https://aiplatform.googleapis.com"))
    if host.provider == "gcp.vertex_ai"
    else (pattern, host)
    for pattern, host in _CLOUD
)
_BY_PORT = {
    11434: Host("ollama", None, _SELF_HOSTED.format(name="ollama")),
    4000: Host("litellm", None),
    8000: Host("vllm", None, _SELF_HOSTED.format(name="vllm")),
}
_BY_NAME = {host.provider: host for _, host in _CLOUD} | {
    host.provider: host for host in _BY_PORT.values()
}


@functools.lru_cache(maxsize=256)
def host_of(host: str, port: int | None) -> Host | None:
    """The provider serving ``host:port``, or ``None`` for a host this table does not know."""
    host = host.lower()
    for pattern, found in _CLOUD:
        if pattern.fullmatch(host):
            return found
    return _BY_PORT.get(port) if port is not None else None


def pricing_of(provider: str) -> Host | None:
    """The table's entry for a provider name (``None``: a name it does not know)."""
    return _BY_NAME.get(provider.lower())


def known_providers() -> frozenset[str]:
    """Every provider name this table prices by, for validating workbench.yaml's ``providers``."""
    return frozenset(_BY_NAME) | {"openai"}


_DEFAULT_PORTS = {"http": 80, "https": 443}


@functools.lru_cache(maxsize=64)
def _route(url: str) -> tuple[str, int | None, str]:
    parts = urlsplit(url)
    port = parts.port if parts.port is not None else _DEFAULT_PORTS.get(parts.scheme)
    return (parts.hostname or "").lower(), port, parts.path.rstrip("/")


def configured_provider(scheme: str, host: str, port: int | None, path: str) -> str | None:
    """The provider workbench.yaml's ``providers:`` names for this URL, if any (the longest
    matching base URL wins), else ``None``."""
    # Imported here: the configuration validates its provider names against this table.
    from workbench.config import load_config
    from workbench.exceptions import ConfigError

    try:
        routes = load_config().providers
    except ConfigError:  # recording already refused to start on it; do not fail a call here
        return None
    if not routes:
        return None
    port = port if port is not None else _DEFAULT_PORTS.get(scheme)
    best: tuple[int, str] | None = None
    for route in routes:
        route_host, route_port, route_path = _route(route.url)
        if (
            route_host == host
            and route_port == port
            and (path == route_path or path.startswith(route_path + "/") or not route_path)
            and (best is None or len(route_path) > best[0])
        ):
            best = (len(route_path), route.provider)
    return best[1] if best is not None else None
