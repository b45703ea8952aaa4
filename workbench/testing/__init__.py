"""Test helpers that work without pytest; workbench's pytest fixtures are thin wrappers over them.

Owns the public surface of the testing helpers: :class:`ModelServer`, a real HTTP model server on
127.0.0.1 that speaks the OpenAI and Anthropic APIs with deterministic answers, injectable latency
and faults, and :func:`fresh_store`, a temporary store. Does not own pytest fixtures (the pytest
plugin) or anything that needs pytest.
"""

from __future__ import annotations

from workbench.testing._server import ModelServer, ModelServerFault, ReceivedRequest
from workbench.testing._store import fresh_store

__all__ = [
    "ModelServer",
    "ModelServerFault",
    "ReceivedRequest",
    "fresh_store",
]
