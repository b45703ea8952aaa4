"""The ``replay_many`` pytest marker, loaded by the ``workbench`` plugin (``pytest_plugins``).

``@pytest.mark.replay_many(pipeline="research_assistant", since="7d", modifications={...},
max_changed=0)`` runs the test body, then replays the selected recorded runs with the
modifications (an experiment kept in the store) and fails the test, listing the changed runs
and their first divergent step, when more outputs changed than ``max_changed`` or a run failed.
This module only wires: the check is ``workbench.testing._experiments``'.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

__all__ = ["pytest_configure", "pytest_runtest_call"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "replay_many(pipeline=, since=, status=, limit=, executions=, modifications=, "
        "on_miss='error', engine='processes', workers=, store=, max_changed=0): after the test, "
        "replay the selected recorded runs with the modifications; fail when more than "
        "max_changed outputs changed or a run failed",
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    marker = item.get_closest_marker("replay_many")
    if marker is None:
        return (yield)
    result = yield
    from workbench.exceptions import WorkbenchError
    from workbench.testing._experiments import replay_many_problem

    if marker.args:
        pytest.fail(
            f"{item.nodeid}: replay_many takes keyword arguments only, got {marker.args!r}",
            pytrace=False,
        )
    try:
        problem = replay_many_problem(dict(marker.kwargs))
    except WorkbenchError as exc:
        pytest.fail(f"{item.nodeid}: replay_many: {exc}", pytrace=False)
    if problem is not None:
        pytest.fail(problem, pytrace=False)
    return result
