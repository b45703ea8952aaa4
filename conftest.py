"""Fixtures shared by the whole suite: a model server on 127.0.0.1 and a fresh store per test.

They are thin wrappers over ``workbench.testing``, which works without pytest.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench.redaction import forget_secrets
from workbench.store import Store
from workbench.testing import ModelServer, fresh_store


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


@pytest.fixture(autouse=True)
def _isolated_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep every test off the developer's workbench.yaml, WORKBENCH_DB and real API keys."""
    for name in ("WORKBENCH_CONFIG", "WORKBENCH_DB", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    forget_secrets()  # secret values remembered by one test must not scrub another's data
