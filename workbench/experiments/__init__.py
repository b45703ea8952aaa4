"""Experiments: replay many recorded executions against one change, and say what changed.

>>> exp = RequestReplay().replay_many({"pipeline_id": "research_assistant", "since": "7d"},
...                                   modifications={"model": "gpt-4o-mini"}, workers=2)
>>> exp.summary(); exp.changed(); exp.to_json()

``RequestReplay.replay_many`` is the entry; :func:`run_experiment` is what it calls. The
experiment is kept in the store (``workbench experiments list|show|resume``). Engines:
``inline``, ``processes`` (default), ``dask`` (see ``_engines``).
"""

from workbench.experiments._experiment import (
    FILTER_KEYS,
    Progress,
    resume_experiment,
    run_experiment,
)
from workbench.experiments._result import (
    ExperimentComparison,
    ExperimentResult,
    ExperimentSummary,
)

__all__ = [  # noqa: RUF022 - sorted as sorted() sorts (test_exported_members)
    "ExperimentComparison",
    "ExperimentResult",
    "ExperimentSummary",
    "FILTER_KEYS",
    "Progress",
    "resume_experiment",
    "run_experiment",
]
