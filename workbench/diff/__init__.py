"""The diff engine: how one execution differs from another, step by step.

>>> diff = workbench.compare_executions("exec_a", "exec_b", ignore=["steps.*.result.timestamp"])
>>> diff.differences        # [Difference(path, kind, before, after, step_id, occurrence), ...]
>>> print(diff.summary())   # counts by kind, cost/token/latency deltas, first divergent step
>>> diff.to_json()          # stable schema, see workbench.diff._model

What is compared, measured or ignored is decided in one place, :mod:`workbench.diff._fields`.
"""

from workbench.diff._engine import compare_executions
from workbench.diff._model import (
    CATEGORIES,
    Category,
    Delta,
    Difference,
    DiffSummary,
    ExecutionDiff,
    Kind,
)
from workbench.exceptions import DiffError, UnmatchedIgnoreWarning, WorkbenchWarning

__all__ = [
    "CATEGORIES",
    "Category",
    "Delta",
    "DiffError",
    "DiffSummary",
    "Difference",
    "ExecutionDiff",
    "Kind",
    "UnmatchedIgnoreWarning",
    "WorkbenchWarning",
    "compare_executions",
]
