"""Pricing lookup per call for each provider family, against calling genai-prices directly.

What: for one model of each provider family (OpenAI, Anthropic, Gemini, Groq, OpenRouter,
DeepSeek, Mistral, Together, Fireworks, Azure OpenAI, Bedrock), the time to price one call of
1,200 input and 300 output tokens (200 of them cache reads) — ``PriceBook.cost_usd`` with the
provider's ``gen_ai.provider.name`` (ours), and ``genai_prices.calc_price(usage, model,
provider_api_url=...)`` with the provider's API URL (peer), the call a user would write. Each
variant is warmed (its first lookup resolves and caches the model), then timed over N calls in
rounds that alternate ours and the peer; medians are printed.

Target: ours ≤ 0.2× the peer (the capture path prices every call on the writer thread).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import _common
import genai_prices
from _common import Row, fmt, median

from workbench.pricing import PriceBook

TARGET_RATIO = 0.2
FAMILIES = (
    ("openai", "gpt-4o-mini", "https://api.openai.com"),
    ("anthropic", "claude-sonnet-4-5", "https://api.anthropic.com"),
    ("gcp.gemini", "gemini-2.0-flash", "https://generativelanguage.googleapis.com"),
    ("groq", "llama-3.3-70b-versatile", "https://api.groq.com"),
    ("openrouter", "openai/gpt-4o", "https://openrouter.ai"),
    ("deepseek", "deepseek-chat", "https://api.deepseek.com"),
    ("mistral_ai", "mistral-large-latest", "https://api.mistral.ai"),
    ("together", "meta-llama/Llama-3.3-70B-Instruct-Turbo", "https://api.together.xyz"),
    ("fireworks", "accounts/fireworks/models/llama-v3p1-8b-instruct", "https://api.fireworks.ai"),
    ("azure.ai.openai", "gpt-4o-2024-08-06", "https://myco.openai.azure.com"),
    (
        "aws.bedrock",
        "anthropic.claude-3-haiku-20240307-v1:0",
        "https://bedrock-runtime.us-east-1.amazonaws.com",
    ),
)


def _per_call_us(work: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        work()
    return (time.perf_counter() - start) / n * 1e6


def main(quick: bool) -> list[Row]:
    n, rounds = (200, 3) if quick else (2000, 7)
    book = PriceBook()
    usage = genai_prices.Usage(input_tokens=1200, output_tokens=300, cache_read_tokens=200)
    rows: list[Row] = []
    for provider, model, api_url in FAMILIES:

        def ours(provider: str = provider, model: str = model) -> object:
            return book.cost_usd(
                provider, model, input_tokens=1200, output_tokens=300, cache_read_tokens=200
            )

        def peer(model: str = model, api_url: str = api_url) -> object:
            return genai_prices.calc_price(usage, model, provider_api_url=api_url)

        assert ours() is not None, f"{provider} {model} is not priced"
        peer()
        mine, theirs = [], []
        for index in range(rounds):
            order = (ours, peer) if index % 2 == 0 else (peer, ours)
            for work in order:
                (mine if work is ours else theirs).append(_per_call_us(work, n))
        us, peer_us = median(mine), median(theirs)
        rows.append(
            Row(
                "pricing",
                f"us/lookup, {provider} {model}, N={n:,} (peer calc_price(provider_api_url))",
                fmt(us, 2, " us"),
                fmt(peer_us, 2, " us"),
                f"{us / peer_us:.3f}x",
                f"<= {TARGET_RATIO}x",
                us / peer_us <= TARGET_RATIO,
            )
        )
    return rows


if __name__ == "__main__":
    _common.cli(__doc__ or "", main)
