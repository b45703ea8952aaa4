"""The pytest plugin's session summary under pytest-xdist: one summary, printed by the controller.

Each worker keeps the :class:`~workbench.testing._report.TestReport` of the tests it ran; when it
finishes it hands them to the controller in ``workeroutput`` (plain data: execnet carries only
builtins), and the controller adds them to its own report, which ``pytest_terminal_summary`` then
prints once. Without xdist these hooks do nothing. Loaded by ``workbench.pytest_plugin``
(``pytest_plugins``); it only wires, the report is ``workbench.testing._report``.
"""

from __future__ import annotations

from typing import Any

import pytest

__all__ = ["pytest_sessionfinish", "pytest_testnodedown"]

#: The key of the workers' reports in ``workeroutput``.
WORKER_OUTPUT_KEY = "workbench_test_reports"


def is_xdist_worker(config: pytest.Config) -> bool:
    """This process is a pytest-xdist worker (its terminal output is never shown)."""
    return hasattr(config, "workeroutput")


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if not is_xdist_worker(config):
        return
    from workbench.pytest_plugin import _SESSION

    state = config.stash.get(_SESSION, None)
    if state is None or state.report is None:
        return
    config.workeroutput[WORKER_OUTPUT_KEY] = [test.to_wire() for test in state.report.tests]  # type: ignore[attr-defined]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """A worker finished: add the reports of the tests it ran to the controller's."""
    tests = getattr(node, "workeroutput", {}).get(WORKER_OUTPUT_KEY)
    if not tests:
        return
    from workbench.pytest_plugin import _SESSION
    from workbench.testing._report import SessionReport, TestReport

    state = node.config.stash.get(_SESSION, None)
    if state is None:
        return
    if state.report is None:
        state.report = SessionReport()
    for data in tests:
        state.report.add(TestReport.from_wire(data))
