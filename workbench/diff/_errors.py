"""The errors and warnings of the diff engine.

They live here until they join the tree in :mod:`workbench.exceptions`; each derives from the
same roots so that moving them changes no ``except`` clause::

    WorkbenchError
    └── DiffError              two executions cannot be compared (an execution with itself, ...)
    UserWarning
    └── WorkbenchWarning
        └── UnmatchedIgnoreWarning  an ``ignore`` pattern matched no field of either execution
"""

from __future__ import annotations

from workbench.exceptions import WorkbenchError

__all__ = ["DiffError", "UnmatchedIgnoreWarning", "WorkbenchWarning"]


class DiffError(WorkbenchError):
    """Two executions cannot be compared as asked."""


class WorkbenchWarning(UserWarning):
    """Root of the warnings workbench emits: something was probably not what the caller meant."""


class UnmatchedIgnoreWarning(WorkbenchWarning):
    """An ``ignore`` pattern matched no field of either execution (a typo ignores nothing)."""
