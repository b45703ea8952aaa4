"""Fixtures shared by the whole suite: a model server on 127.0.0.1 and a fresh store per test.

They are thin wrappers over ``workbench.testing``, which works without pytest.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import openai
import pytest

from workbench.redaction import forget_secrets
from workbench.store import Store
from workbench.testing import ModelServer, NetworkGuard, fresh_store
from workbench.testing._postgres import PostgresServer, find_postgres_bin


@pytest.fixture(scope="session")
def model_server() -> Iterator[ModelServer]:
    """One loopback model server for the session (tests select faults and latency per request)."""
    with ModelServer() as server:
        yield server


@pytest.fixture
def store() -> Iterator[Store]:
    """A new store in a real SQLite file in a temporary folder."""
    with fresh_store() as fresh:
        yield fresh


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL cluster for the session (initdb + pg_ctl in a temporary folder,
    a unix socket there and a free 127.0.0.1 port), stopped at the end; skips without it."""
    if find_postgres_bin() is None:
        pytest.skip(
            "PostgreSQL is not installed (no initdb on PATH nor under /usr/lib/postgresql): "
            "install Debian's postgresql package, as .ci/run does"
        )
    with PostgresServer() as server:
        yield server
        # The process's shared stores (open_store: a reader opened by a URL) on this cluster
        # are closed before it stops, else their pools retry it and log every refusal.
        from workbench.store import _store

        for shared in list(_store._defaults.values()):
            if shared.backend == "postgresql":
                shared.close()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL (TCP, with a password) of a new empty database of the session's cluster."""
    name = postgres_server.new_database()
    yield postgres_server.url(name)
    postgres_server.drop_database(name)


@pytest.fixture
def postgres_store(postgres_url: str) -> Iterator[Store]:
    """A new store in a database of its own on the session's PostgreSQL cluster."""
    with Store(postgres_url) as fresh:
        yield fresh


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a new store goes, on each backend in turn: a SQLite file's path, then the URL
    of a new empty PostgreSQL database (for tests that open it in other processes)."""
    if request.param == "sqlite":
        return str(tmp_path / "workbench.db")
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """A new store on each backend in turn: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        with fresh_store() as fresh:
            yield fresh
    else:
        yield request.getfixturevalue("postgres_store")


@pytest.fixture(autouse=True)
def _isolated_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep every test off the developer's workbench.yaml, WORKBENCH_DB and real API keys."""
    for name in ("WORKBENCH_CONFIG", "WORKBENCH_DB", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    forget_secrets()  # secret values remembered by one test must not scrub another's data


@pytest.fixture
def offline_litellm(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """litellm, kept off the network: its bundled cost map and offline mode (it fetches both
    from GitHub otherwise), and a guard that fails the test on any connection off the machine."""
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    monkeypatch.setenv("LITELLM_OFFLINE_MODE", "true")
    monkeypatch.delenv("DISABLE_AIOHTTP_TRANSPORT", raising=False)
    # Where asyncio.run leaves it: else litellm's sync calls make the main thread an event loop
    # that nobody closes (its sockets then warn in whichever test collects them).
    asyncio.set_event_loop(None)
    with NetworkGuard() as guard:
        module = importlib.import_module("litellm")
        assert module.disable_aiohttp_transport is False  # its default: aiohttp under httpx
        # The sync client litellm makes at import serves its native-API providers (Ollama,
        # Cohere, Gemini, Bedrock): one of the test's own, closed below.
        from litellm.llms.custom_httpx.http_handler import HTTPHandler

        handler = HTTPHandler()
        monkeypatch.setattr(module, "module_level_client", handler)
        yield module
    # litellm keeps its clients for the life of the process; close the ones these tests made
    # (the async ones are closed in their own event loop, by the test) for the same reason.
    cache = module.in_memory_llm_clients_cache
    for client in list(cache.cache_dict.values()):
        if isinstance(client, openai.OpenAI | HTTPHandler):
            client.close()
    cache.flush_cache()
    handler.close()
    gc.collect()  # anything still left open warns here, in these tests, not in another one
    assert guard.blocked == []
