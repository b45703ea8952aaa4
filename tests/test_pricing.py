"""Tests of PriceBook: agreement with genai-prices, overrides, unknown models and caching."""

from __future__ import annotations

import logging
import math
import threading
from typing import Any

import genai_prices
import pytest
from genai_prices import Usage, calc_price, data_snapshot
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.config import CostTrackingConfig
from workbench.exceptions import ConfigError
from workbench.pricing import PriceBook, PriceOverride, default_price_book

MODELS = [
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4o-mini-2024-07-18"),
    ("anthropic", "claude-3-5-haiku-latest"),
    ("anthropic", "claude-sonnet-4-20250514"),
    ("anthropic", "claude-sonnet-4-5"),  # tiered: rates change above 200k input tokens
    ("perplexity", "sonar"),  # a per-request fee on top of tokens
    ("deepseek", "deepseek-chat"),  # off-peak (time-of-day) prices
]


def reference(
    provider: str, model: str, input_tokens: int, output_tokens: int, read: int, write: int
) -> float:
    usage = Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=read,
        cache_write_tokens=write,
    )
    return float(calc_price(usage, model, provider_id=provider).total_price)


@pytest.mark.parametrize(("provider", "model"), MODELS)
@pytest.mark.parametrize(
    ("input_tokens", "output_tokens", "read", "write"),
    [(1000, 200, 0, 0), (1200, 300, 800, 0), (5000, 50, 1000, 2000), (250_000, 4000, 100_000, 0)],
)
def test_known_models_cost_what_genai_prices_says(
    provider: str, model: str, input_tokens: int, output_tokens: int, read: int, write: int
) -> None:
    """A known model's cost is positive and equals genai_prices.calc_price, cache included."""
    cost = PriceBook().cost_usd(
        provider,
        model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=read,
        cache_write_tokens=write,
    )
    assert cost is not None and cost > 0
    assert cost == pytest.approx(
        reference(provider, model, input_tokens, output_tokens, read, write), abs=1e-12
    )


BOOK = PriceBook()


@settings(max_examples=300)
@given(
    st.sampled_from(MODELS),
    st.integers(min_value=0, max_value=400_000),
    st.integers(min_value=0, max_value=50_000),
    st.floats(min_value=0, max_value=1),
    st.floats(min_value=0, max_value=1),
)
def test_any_usage_costs_what_genai_prices_says(
    model: tuple[str, str], input_tokens: int, output_tokens: int, read: float, write: float
) -> None:
    """For any consistent usage (cache within input), the cost matches genai-prices."""
    cache_read = int(input_tokens * read)
    cache_write = int((input_tokens - cache_read) * write)
    cost = BOOK.cost_usd(
        *model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
    )
    expected = reference(*model, input_tokens, output_tokens, cache_read, cache_write)
    assert cost == pytest.approx(expected, abs=1e-12)


def test_override_wins_and_prices_cache_at_its_own_rates() -> None:
    """An override replaces genai-prices; cache rates apply to cached tokens, else input's."""
    book = PriceBook(
        {
            ("openai", "gpt-4o-mini"): PriceOverride(1.0, 2.0),
            ("Anthropic", "Claude-Custom"): PriceOverride(3.0, 15.0, 0.3, 3.75),
        }
    )
    plain = book.cost_usd(
        "openai", "gpt-4o-mini", input_tokens=2000, output_tokens=500, cache_read_tokens=1000
    )
    assert plain == pytest.approx(2.0 * 1.0 + 0.5 * 2.0)  # cached tokens at the input rate
    cached = book.cost_usd(
        "anthropic",
        "claude-custom",
        input_tokens=10_000,
        output_tokens=1000,
        cache_read_tokens=6000,
        cache_write_tokens=3000,
    )
    assert cached == pytest.approx(1.0 * 3.0 + 1.0 * 15.0 + 6.0 * 0.3 + 3.0 * 3.75)


def test_override_matches_dated_model_names() -> None:
    """An override for a model family also prices its dated snapshots."""
    book = PriceBook({("openai", "gpt-4o-mini"): PriceOverride(1.0, 1.0)})
    for model in ("gpt-4o-mini-2024-07-18", "GPT-4o-mini-20240718"):
        assert book.cost_usd("openai", model, input_tokens=1000, output_tokens=0) == 1.0
    assert book.cost_usd("openai", "gpt-4o-mini-tts", input_tokens=1000, output_tokens=0) != 1.0


def test_unknown_model_is_none_and_warned_once(caplog: pytest.LogCaptureFixture) -> None:
    """An unknown model costs None (never 0.0), with one warning naming the fix."""
    book = PriceBook()
    caplog.set_level(logging.WARNING, logger="workbench.pricing")
    for _ in range(3):
        assert book.cost_usd("openai", "llama-local-7b", input_tokens=10, output_tokens=5) is None
    warnings = [r for r in caplog.records if r.name == "workbench.pricing"]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "'llama-local-7b'" in message
    assert "cost_tracking.providers.openai.models.llama-local-7b.input_cost_per_1k" in message
    assert "workbench.yaml" in message


def test_unknown_provider_and_missing_model_are_none(caplog: pytest.LogCaptureFixture) -> None:
    """An unknown provider or a call without a model costs None and is warned about."""
    caplog.set_level(logging.WARNING, logger="workbench.pricing")
    book = PriceBook()
    assert book.cost_usd("no-such-cloud", "gpt-4o", input_tokens=1, output_tokens=1) is None
    assert book.cost_usd("openai", None, input_tokens=1, output_tokens=1) is None
    assert len(caplog.records) == 2


def test_plain_http_and_missing_usage_are_none_silently(caplog: pytest.LogCaptureFixture) -> None:
    """A non-model call, or a call that reported no tokens, is None without a warning."""
    caplog.set_level(logging.WARNING, logger="workbench.pricing")
    book = PriceBook()
    assert book.cost_usd("http", None, input_tokens=None, output_tokens=None) is None
    assert book.cost_usd("http", "x", input_tokens=10, output_tokens=10) is None
    assert book.cost_usd("openai", "gpt-4o-mini", input_tokens=None, output_tokens=None) is None
    assert caplog.records == []


def test_missing_counts_are_zero_and_inconsistent_ones_clamped() -> None:
    """One missing count is taken as 0; cache counts above the input never give a negative."""
    book = PriceBook({("p", "m"): PriceOverride(1.0, 1.0, 0.5, None)})
    assert book.cost_usd("p", "m", input_tokens=None, output_tokens=1000) == 1.0
    odd = book.cost_usd("p", "m", input_tokens=100, output_tokens=0, cache_read_tokens=1000)
    assert odd == pytest.approx(0.5)
    missing = book.cost_usd(
        "p",
        "m",
        input_tokens=1000,
        output_tokens=0,
        cache_read_tokens=None,
        cache_write_tokens=None,
    )
    assert missing == 1.0


def test_prices_are_looked_up_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """After the first call for a model, genai-prices is not consulted again (hits and misses)."""
    lookups: list[str] = []
    real = data_snapshot.get_snapshot

    def counting() -> Any:
        lookups.append("snapshot")
        return real()

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("PriceBook must not call genai_prices.calc_price")

    monkeypatch.setattr(data_snapshot, "get_snapshot", counting)
    monkeypatch.setattr(genai_prices, "calc_price", forbidden)
    book = PriceBook()
    for _ in range(5):
        book.cost_usd("openai", "gpt-4o-mini", input_tokens=100, output_tokens=10)
        book.cost_usd("anthropic", "claude-sonnet-4-5", input_tokens=100, output_tokens=10)
        book.cost_usd("openai", "not-a-model", input_tokens=100, output_tokens=10)
    assert len(lookups) == 3


def test_concurrent_first_calls_look_up_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Threads pricing a new model at the same moment share one lookup and one answer."""
    lookups: list[int] = []
    real = data_snapshot.get_snapshot

    def counting() -> Any:
        lookups.append(1)
        return real()

    monkeypatch.setattr(data_snapshot, "get_snapshot", counting)
    book = PriceBook()
    results: list[float | None] = []
    start = threading.Barrier(8)

    def price() -> None:
        start.wait()
        results.append(book.cost_usd("openai", "gpt-4o-mini", input_tokens=1000, output_tokens=1))

    threads = [threading.Thread(target=price) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(lookups) == 1
    assert len(set(results)) == 1 and results[0] is not None


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf, True, "0.1"])
def test_invalid_override_is_a_config_error(bad: Any) -> None:
    """A negative, non-finite or non-numeric price is rejected with the field named."""
    with pytest.raises(ConfigError, match="input_cost_per_1k"):
        PriceOverride(bad, 1.0)


def test_overrides_come_from_workbench_yaml_section() -> None:
    """from_config reads cost_tracking.providers.<provider>.models.<model>."""
    section = CostTrackingConfig.model_validate(
        {
            "providers": {
                "openai": {
                    "models": {
                        "ft:gpt-4o-mini:acme": {"input_cost_per_1k": 0.3, "output_cost_per_1k": 1.2}
                    }
                }
            }
        }
    )
    book = PriceBook.from_config(section)
    cost = book.cost_usd("openai", "ft:gpt-4o-mini:acme", input_tokens=1000, output_tokens=1000)
    assert cost == pytest.approx(1.5)


def test_default_price_book_is_built_once() -> None:
    """default_price_book returns one shared, working book."""
    book = default_price_book()
    assert book is default_price_book()
    cost = book.cost_usd("openai", "gpt-4o-mini", input_tokens=1000, output_tokens=0)
    assert cost is not None and cost > 0
