"""Test helpers that work without pytest; workbench's pytest fixtures are thin wrappers over them.

Owns the public surface of the testing helpers: :func:`fresh_store`, a temporary store, and the
logic of the pytest plugin: :class:`TestRun` (what the ``workbench_run`` fixture is),
:class:`RunSummary`, :class:`Budget`, :class:`NetworkGuard`. Re-exports :class:`ModelServer`, the
test model server, from :mod:`workbench.testmodel`, where it lives because replay and the CLI use
it at run time. Does not own pytest fixtures (``workbench.pytest_plugin``) or anything that needs
pytest.
"""

from __future__ import annotations

from workbench.testing._budgets import Budget, BudgetCheck, check_budget
from workbench.testing._network import NetworkGuard
from workbench.testing._run import TestRun
from workbench.testing._store import fresh_store
from workbench.testing._summary import Latency, Percentiles, RunSummary, Tokens
from workbench.testmodel import ModelServer, ModelServerFault, ReceivedRequest

__all__ = [
    "Budget",
    "BudgetCheck",
    "Latency",
    "ModelServer",
    "ModelServerFault",
    "NetworkGuard",
    "Percentiles",
    "ReceivedRequest",
    "RunSummary",
    "TestRun",
    "Tokens",
    "check_budget",
    "fresh_store",
]
