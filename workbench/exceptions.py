"""The one error tree of workbench.

Every error workbench raises on purpose derives from :class:`WorkbenchError`, and every message
names the bad input, what was allowed, and how to fix it. Third-party errors (``sqlite3``,
``yaml``, ``pydantic``) are translated at one boundary with ``raise ... from exc``.

Provider errors (a 429, a 500, a malformed stream) are not translated: the application sees the
SDK's own error, exactly as without recording, and the recorder keeps it on the model call and
the step.

::

    WorkbenchError
    ├── ConfigError            workbench.yaml or a keyword argument holds a value we cannot use
    ├── StoreError             the SQLite store cannot be opened, read or written
    │   ├── SchemaVersionError     the file was written by a newer workbench
    │   └── NotAStoreError         the file is not a workbench store (or is corrupt)
    ├── DiffError              two executions cannot be compared (an execution with itself, ...)
    ├── ExecutionNotFoundError the execution id is not in the store (also a KeyError)
    ├── RecordingError         the recorder was used wrongly (a step outside an execution, ...)
    ├── ReplayError            an execution cannot be replayed (still running, no entrypoint, ...)
    │   ├── ReplayMismatchError    the replay sent a request the recording has no answer for
    │   └── DamagedRecordingError  a recorded response is missing from the store or corrupt
    └── TestServerError        the built-in test model server could not start or was misused

    UserWarning
    └── WorkbenchWarning       something was probably not what the caller meant
        └── UnmatchedIgnoreWarning  a diff ``ignore`` pattern matched no field of either run
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConfigError",
    "DamagedRecordingError",
    "DiffError",
    "ExecutionNotFoundError",
    "NotAStoreError",
    "RecordingError",
    "ReplayError",
    "ReplayMismatchError",
    "SchemaVersionError",
    "StoreError",
    "TestServerError",
    "UnmatchedIgnoreWarning",
    "WorkbenchError",
    "WorkbenchWarning",
]


class WorkbenchError(Exception):
    """Root of every error workbench raises on purpose."""


class ConfigError(WorkbenchError):
    """A configuration value (workbench.yaml, environment, or argument) cannot be used."""


class StoreError(WorkbenchError):
    """The store cannot be opened, read or written."""


class SchemaVersionError(StoreError):
    """The store file was written by a newer workbench than this one."""


class NotAStoreError(StoreError):
    """The file is not a workbench store, or it is corrupt."""


class DiffError(WorkbenchError):
    """Two executions cannot be compared as asked."""


class ExecutionNotFoundError(WorkbenchError, KeyError):
    """No execution with the given id is in the store."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class RecordingError(WorkbenchError):
    """The recorder API was used in a way it cannot record."""


class ReplayError(WorkbenchError):
    """An execution cannot be replayed, or its replay failed where the original did not."""


class ReplayMismatchError(ReplayError):
    """A replayed request has no recorded answer (``on_miss="error"``).

    ``mismatches`` holds one :class:`workbench.replay.Mismatch` per request that missed, and
    ``execution_id`` the replay's own (failed) execution.
    """

    def __init__(self, message: str, *, mismatches: list[Any], execution_id: str) -> None:
        super().__init__(message)
        self.mismatches = mismatches
        self.execution_id = execution_id


class DamagedRecordingError(ReplayError):
    """A recorded response the replay would serve is missing from the store or corrupt.

    Raised before the replay starts, so nothing is run or recorded. ``execution_id`` is the
    original execution, and ``damaged`` maps each affected model call's id to what is wrong.
    """

    def __init__(self, message: str, *, execution_id: str, damaged: dict[str, str]) -> None:
        super().__init__(message)
        self.execution_id = execution_id
        self.damaged = damaged


class TestServerError(WorkbenchError):
    """The built-in test model server could not start, or was asked for something it cannot do."""

    __test__ = False  # not a pytest test class despite the name


class WorkbenchWarning(UserWarning):
    """Root of the warnings workbench emits: something was probably not what the caller meant."""


class UnmatchedIgnoreWarning(WorkbenchWarning):
    """A diff ``ignore`` pattern matched no field of either execution (a typo ignores nothing)."""
