"""Experiments: replay many recorded executions against one change, and say what changed.

>>> exp = RequestReplay().replay_many({"pipeline_id": "research_assistant", "since": "7d"},
...                                   modifications={"model": "gpt-4o-mini"}, workers=2)
>>> exp.summary(); exp.changed(); exp.to_json()

``RequestReplay.replay_many`` is the entry; :func:`run_experiment` is what it calls. The
experiment is kept in the store (``workbench experiments list|show|resume``). Engines:
``inline``, ``processes`` (default), ``dask`` (see ``_engines``). The names below are imported
on first use, so that the CLI, which imports this package's commands, starts without the
replay machinery.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.experiments._experiment import Progress, resume_experiment, run_experiment
    from workbench.experiments._names import ENGINES, FILTER_KEYS
    from workbench.experiments._result import (
        ExperimentComparison,
        ExperimentResult,
        ExperimentSummary,
    )

__all__ = [  # noqa: RUF022 - sorted as sorted() sorts (test_exported_members)
    "ENGINES",
    "ExperimentComparison",
    "ExperimentResult",
    "ExperimentSummary",
    "FILTER_KEYS",
    "Progress",
    "resume_experiment",
    "run_experiment",
]

_HOMES = {
    "ENGINES": "_names",
    "ExperimentComparison": "_result",
    "ExperimentResult": "_result",
    "ExperimentSummary": "_result",
    "FILTER_KEYS": "_names",
    "Progress": "_experiment",
    "resume_experiment": "_experiment",
    "run_experiment": "_experiment",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'workbench.experiments' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"workbench.experiments.{home}"), name)
    globals()[name] = value
    return value
