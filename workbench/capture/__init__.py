"""Model-call capture at the HTTP layer: httpx, httpx2, requests and aiohttp.

Installed once, at the first ``workbench.record``; from then on each HTTP call made inside an
execution becomes a ``ModelCall`` (provider, model, tokens, cost, timings, the stream's chunks),
whatever SDK made it, with no per-SDK patching. Calls outside an execution pass straight through.
"""

from __future__ import annotations

import importlib
import threading
from typing import TYPE_CHECKING

from workbench.config import load_config

if TYPE_CHECKING:
    from workbench.pricing import PriceBook

__all__ = ["install", "price_book"]

_installed = False
_lock = threading.Lock()


def install() -> None:
    """Patch every supported HTTP client that is importable (idempotent)."""
    global _installed
    if _installed:
        return
    with _lock:
        if _installed:
            return
        from workbench.capture import _aiohttp, _httpx, _requests

        for name, patch in (
            ("httpx", _httpx.patch),
            ("httpx2", _httpx.patch),
            ("requests", _requests.patch),
            ("aiohttp", _aiohttp.patch),
        ):
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue
            if name == "requests":
                importlib.import_module("requests.adapters")
            patch(module)
        _installed = True


_books: dict[int, PriceBook] = {}


def price_book() -> PriceBook:
    """The price book for the current configuration (overrides from ``cost_tracking``)."""
    from workbench.pricing import PriceBook, PriceOverride

    config = load_config()
    book = _books.get(id(config))
    if book is None:
        overrides = {
            (provider, model): PriceOverride(
                input_cost_per_1k=price.input_cost_per_1k,
                output_cost_per_1k=price.output_cost_per_1k,
                cache_read_cost_per_1k=price.cache_read_cost_per_1k,
                cache_write_cost_per_1k=price.cache_write_cost_per_1k,
            )
            for provider, prices in config.cost_tracking.providers.items()
            for model, price in prices.models.items()
        }
        book = _books.setdefault(id(config), PriceBook(overrides))
    return book
