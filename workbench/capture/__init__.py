"""Model-call capture at the HTTP layer: httpx, httpx2, requests and aiohttp.

Installed once, at the first ``workbench.record``; from then on each HTTP call made inside an
execution becomes a ``ModelCall`` (provider, model, tokens, cost, timings, the stream's chunks),
whatever SDK made it, with no per-SDK patching. Calls outside an execution pass straight through.
A call that passes through several patched clients (an httpx transport that sends with
aiohttp) is recorded once, by the first: see ``_guard``.
"""

from __future__ import annotations

import importlib
import threading
from typing import TYPE_CHECKING

from workbench.config import load_config

if TYPE_CHECKING:
    from workbench.config import WorkbenchConfig
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


_books: dict[int, tuple[WorkbenchConfig, PriceBook]] = {}


def price_book(config: WorkbenchConfig | None = None) -> PriceBook:
    """The price book for a configuration (overrides from its ``cost_tracking`` section).

    One book per configuration object; the configuration is kept with it, so its ``id`` cannot
    be reused by another configuration while the book is cached.
    """
    from workbench.pricing import PriceBook

    config = config if config is not None else load_config()
    entry = _books.get(id(config))
    if entry is None or entry[0] is not config:
        entry = _books[id(config)] = (config, PriceBook.from_config(config.cost_tracking))
    return entry[1]
