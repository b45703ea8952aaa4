"""What a model call cost in US dollars, from its token counts.

This module owns turning ``(provider, model, tokens)`` into a price: prices come from the
``genai-prices`` package, or from ``cost_tracking.providers.<provider>.models.<model>`` in
workbench.yaml, which wins. It does not count tokens (``workbench.providers`` reads
them from responses), sum costs per execution, or enforce budgets (the metrics layer does).

``genai_prices.calc_price`` looks the model up and walks its unit registry on every call, which
is too slow for the capture path. :class:`PriceBook` looks each ``(provider, model)`` up once,
keeps the resolved prices as floats, and afterwards prices a call with plain arithmetic —
tiered prices (a rate that depends on the prompt's size) and per-request fees included. Only
time-of-day prices (off-peak discounts) are priced by the cached ``genai-prices`` model object
itself, still without a lookup.

An unknown price is ``None``, never ``0.0``: a cost report must be able to say "unknown".
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from workbench._hosts import pricing_of
from workbench.exceptions import ConfigError

if TYPE_CHECKING:
    from workbench.config import CostTrackingConfig

__all__ = ["PriceBook", "PriceOverride", "default_price_book"]

logger = logging.getLogger("workbench.pricing")

# Providers whose calls are not model calls: nothing to price, nothing to warn about.
_UNPRICED_PROVIDERS = frozenset({"http"})
# The four per-token prices PriceBook computes itself. Any other *token* price in genai-prices
# is for a finer kind of token (audio, images, 1-hour cache writes) that workbench never
# reports, so it applies to zero tokens; a price in another unit needs usage we never report
# either — except a per-request fee, which every call pays.
_TOKEN_PRICE_KEYS = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")
# A trailing date on a model name ("-2024-07-18", "-20241022"): responses name the dated
# snapshot while users write overrides for the family name.
_DATE_SUFFIX = re.compile(r"-\d{4}-?\d{2}-?\d{2}$")


@dataclass(frozen=True, slots=True)
class PriceOverride:
    """A model's prices in USD per 1,000 tokens, from workbench.yaml or given in code.

    Cache rates left ``None`` mean cached tokens cost the same as other input tokens.
    """

    input_cost_per_1k: float
    output_cost_per_1k: float
    cache_read_cost_per_1k: float | None = None
    cache_write_cost_per_1k: float | None = None

    def __post_init__(self) -> None:
        for name in (
            "input_cost_per_1k",
            "output_cost_per_1k",
            "cache_read_cost_per_1k",
            "cache_write_cost_per_1k",
        ):
            value = getattr(self, name)
            if value is None and name.startswith("cache"):
                continue
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                raise ConfigError(
                    f"price override {name}={value!r} is not a price; give a finite, "
                    "non-negative number of US dollars per 1,000 tokens"
                )


@dataclass(frozen=True, slots=True)
class _Rates:
    """Per-token rates in USD; a ``None`` cache rate bills those tokens as plain input."""

    input: float
    output: float
    cache_read: float | None
    cache_write: float | None
    per_request: float = 0.0

    def cost(self, total_in: int, output: int, cache_read: int, cache_write: int) -> float:
        uncached = total_in
        cost = self.per_request + output * self.output
        # Cached tokens without a rate of their own stay in (and are billed as) input.
        if self.cache_read is not None:
            uncached -= cache_read
            cost += cache_read * self.cache_read
        if self.cache_write is not None:
            uncached -= cache_write
            cost += cache_write * self.cache_write
        # Counts that do not add up (cache > input) are clamped rather than priced below 0.
        return cost + max(uncached, 0) * self.input


#: Tiers of one rate: (base, ((start, rate), ...)) with starts descending.
_Tiers = tuple[float, tuple[tuple[int, float], ...]]


def _tier_rate(rate: float | _Tiers | None, total_in: int) -> float | None:
    if not isinstance(rate, tuple):
        return rate
    base, tiers = rate
    for start, tier_rate in tiers:
        if total_in > start:
            return tier_rate
    return base


@dataclass(frozen=True, slots=True)
class _TieredRates:
    """genai-prices' threshold tiers: once the *total input* passes a tier's start, all tokens
    of a kind are billed at that tier's rate. Tiers are picked per call, then priced alike."""

    input: float | _Tiers
    output: float | _Tiers
    cache_read: float | _Tiers | None
    cache_write: float | _Tiers | None
    per_request: float = 0.0

    def cost(self, total_in: int, output: int, cache_read: int, cache_write: int) -> float:
        rates = _Rates(
            _tier_rate(self.input, total_in) or 0.0,
            _tier_rate(self.output, total_in) or 0.0,
            _tier_rate(self.cache_read, total_in),
            _tier_rate(self.cache_write, total_in),
            self.per_request,
        )
        return rates.cost(total_in, output, cache_read, cache_write)


class _Fallback:
    """Prices a time-of-day-priced model with its genai-prices object, looked up once."""

    __slots__ = ("_model", "_provider")

    def __init__(self, model: Any, provider: Any) -> None:
        self._model = model
        self._provider = provider

    def cost(
        self, input_tokens: int, output_tokens: int, cache_read: int, cache_write: int
    ) -> float:
        from genai_prices import Usage

        usage = Usage(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
        )
        return float(self._model.calc_price(usage, self._provider).total_price)


_Resolved = _Rates | _TieredRates | _Fallback | None


class PriceBook:
    """Prices model calls; each ``(provider, model)`` is looked up once, then cached.

    ``overrides`` maps ``(provider, model)`` to a :class:`PriceOverride` and wins over
    genai-prices. A model matches an override by its exact name (case-insensitive), else by
    its name without a trailing date (``gpt-4o-mini-2024-07-18`` → ``gpt-4o-mini``).

    Prices are today's: genai-prices' dated prices are resolved at the first lookup of a model
    in this book, and a price that changes while the process runs is not picked up (build a
    new book). Service-tier and batch variants are not distinguished: standard prices apply.
    Safe to share between threads.
    """

    def __init__(self, overrides: Mapping[tuple[str, str], PriceOverride] | None = None) -> None:
        self._overrides: dict[tuple[str, str], PriceOverride] = {}
        for (provider, model), override in (overrides or {}).items():
            if not isinstance(override, PriceOverride):
                raise ConfigError(
                    f"price override for ({provider!r}, {model!r}) is a "
                    f"{type(override).__name__}; give a PriceOverride"
                )
            self._overrides[(provider.lower(), model.lower())] = override
        self._resolved: dict[tuple[str, str | None], _Resolved] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, cost_tracking: CostTrackingConfig) -> PriceBook:
        """A book with the overrides of workbench.yaml's ``cost_tracking`` section."""
        return cls(
            {
                (provider, model): PriceOverride(
                    price.input_cost_per_1k,
                    price.output_cost_per_1k,
                    price.cache_read_cost_per_1k,
                    price.cache_write_cost_per_1k,
                )
                for provider, section in cost_tracking.providers.items()
                for model, price in section.models.items()
            }
        )

    def cost_usd(
        self,
        provider: str,
        model: str | None,
        *,
        input_tokens: int | None,
        output_tokens: int | None,
        cache_read_tokens: int | None = 0,
        cache_write_tokens: int | None = 0,
    ) -> float | None:
        """The call's cost in USD, or ``None`` when the price or the usage is unknown.

        ``input_tokens`` includes cache reads and writes (OpenTelemetry GenAI semantics): the
        uncached remainder is billed at the input rate and cached tokens at their own rates.
        A missing count is taken as 0 unless both input and output are missing. An unknown
        model is reported once per ``(provider, model)`` as a warning on the
        ``workbench.pricing`` logger.
        """
        if input_tokens is None and output_tokens is None:
            return None
        key = (provider, model)
        try:
            price = self._resolved[key]
        except KeyError:
            price = self._resolve(provider, model)
        if price is None:
            return None
        counts = (
            input_tokens or 0,
            output_tokens or 0,
            cache_read_tokens or 0,
            cache_write_tokens or 0,
        )
        try:
            return price.cost(*counts)
        except ValueError:  # genai-prices (time-of-day models) rejects cache > input
            return None

    # ----------------------------------------------------------------------------------------

    def _resolve(self, provider: str, model: str | None) -> _Resolved:
        with self._lock:
            key = (provider, model)
            if key in self._resolved:  # another thread resolved it while we waited
                return self._resolved[key]
            price, reason = self._lookup(provider, model)
            self._resolved[key] = price
        if price is None and model is None and reason is not None:
            logger.warning(
                "A %r call named no model, so its cost is recorded as unknown.", provider
            )
        elif price is None and reason is not None:
            logger.warning(
                "No price for model %r of provider %r (%s); its cost is recorded as unknown. "
                "To price it, set cost_tracking.providers.%s.models.%s.input_cost_per_1k and "
                "output_cost_per_1k (USD per 1,000 tokens) in workbench.yaml.",
                model,
                provider,
                reason,
                provider,
                model,
            )
        return price

    def _lookup(self, provider: str, model: str | None) -> tuple[_Resolved, str | None]:
        """The price, or None and why (None as the reason when silence is right)."""
        if provider.lower() in _UNPRICED_PROVIDERS:
            return None, None
        if model is None:
            return None, "the call named no model"
        override = self._override(provider, model)
        if override is not None:
            return (
                _Rates(
                    override.input_cost_per_1k / 1000,
                    override.output_cost_per_1k / 1000,
                    _per_token(override.cache_read_cost_per_1k),
                    _per_token(override.cache_write_cost_per_1k),
                ),
                None,
            )
        known = pricing_of(provider)
        if known is None:
            return _from_genai_prices(model, provider_id=provider)
        if known.unpriced is not None:
            return None, known.unpriced
        return _from_genai_prices(model, api_url=known.price_url, provider_name=provider)

    def _override(self, provider: str, model: str) -> PriceOverride | None:
        provider, model = provider.lower(), model.lower()
        found = self._overrides.get((provider, model))
        if found is None:
            undated = _DATE_SUFFIX.sub("", model)
            if undated != model:
                found = self._overrides.get((provider, undated))
        return found


def _per_token(cost_per_1k: float | None) -> float | None:
    return None if cost_per_1k is None else cost_per_1k / 1000


def _from_genai_prices(
    model: str,
    *,
    provider_id: str | None = None,
    api_url: str | None = None,
    provider_name: str | None = None,
) -> tuple[_Resolved, str | None]:
    """The price genai-prices gives ``model`` of the provider it finds by id or API URL (by
    the model name alone when neither is given: a LiteLLM proxy serves anyone's models)."""
    from genai_prices import data_snapshot, types

    try:
        found_provider, found_model = data_snapshot.get_snapshot().find_provider_model(
            model, None, provider_id, api_url
        )
    except (LookupError, ValueError):  # ValueError: data it cannot match the name against
        if api_url is not None:
            return None, f"genai-prices has no such model for {provider_name} ({api_url})"
        if provider_id is None:
            return None, "genai-prices knows no provider of a model by that name"
        return None, "genai-prices does not know it"
    now = datetime.now(tz=UTC)
    if not isinstance(found_model.prices, types.ModelPrice) and any(
        isinstance(conditional.constraint, types.TimeOfDateConstraint)
        for conditional in found_model.prices
    ):
        return _Fallback(found_model, found_provider), None
    model_price = found_model.get_prices(now)
    rates = {key: getattr(model_price, key, None) for key in _TOKEN_PRICE_KEYS}
    if rates["input_mtok"] is None and rates["output_mtok"] is None:
        return None, "genai-prices prices it in units other than tokens"
    converted = {key: _per_token_rate(rate) for key, rate in rates.items()}
    # genai-prices' one per-request unit is priced per 1,000 requests.
    fee = getattr(model_price, "requests_kcount", None)
    per_request = 0.0 if fee is None else float(fee) / 1000
    if any(isinstance(rate, tuple) for rate in converted.values()):
        return (
            _TieredRates(
                converted["input_mtok"] or 0.0,
                converted["output_mtok"] or 0.0,
                converted["cache_read_mtok"],
                converted["cache_write_mtok"],
                per_request,
            ),
            None,
        )
    return (
        _Rates(
            cast(float | None, converted["input_mtok"]) or 0.0,
            cast(float | None, converted["output_mtok"]) or 0.0,
            cast(float | None, converted["cache_read_mtok"]),
            cast(float | None, converted["cache_write_mtok"]),
            per_request,
        ),
        None,
    )


def _per_token_rate(rate: Any) -> float | _Tiers | None:
    """genai-prices' USD per million tokens (a Decimal or TieredPrices) as USD per token."""
    from genai_prices import types

    if rate is None:
        return None
    if isinstance(rate, types.TieredPrices):
        tiers = sorted(
            ((tier.start, float(tier.price) / 1_000_000) for tier in rate.tiers), reverse=True
        )
        return float(rate.base) / 1_000_000, tuple(tiers)
    return float(rate) / 1_000_000


_default: PriceBook | None = None
_default_lock = threading.Lock()


def default_price_book() -> PriceBook:
    """The process-wide book, with workbench.yaml's overrides as they were at first use."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                from workbench.config import load_config

                _default = PriceBook.from_config(load_config().cost_tracking)
    return _default
