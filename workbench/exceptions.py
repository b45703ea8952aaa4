"""The one error tree of workbench.

Every error workbench raises on purpose derives from :class:`WorkbenchError`, and every message
names the bad input, what was allowed, and how to fix it. Third-party errors (``sqlite3``,
``yaml``, ``pydantic``) are translated at one boundary with ``raise ... from exc``.

Provider errors (a 429, a 500, a malformed stream) are not translated: the application sees the
SDK's own error, exactly as without recording, and the recorder keeps it on the model call and
the step.

::

    WorkbenchError
    ├── CallRefused            a model call was refused before it was sent (observers raise it)
    │   └── BudgetExceededError    a budget's ``stop`` alert refused it
    ├── ConfigError            workbench.yaml or a keyword argument holds a value we cannot use
    │   └── MissingExtraError      a feature that is switched on needs an extra not installed
    ├── StoreError             the store cannot be opened, read or written
    │   ├── SchemaVersionError     the file was written by a newer workbench
    │   ├── NotAStoreError         the file is not a workbench store (or is corrupt)
    │   ├── StoreFullError         the store's disk is full (rows are kept, then written)
    │   ├── StoreUnreachableError  the database server cannot be reached (rows are kept)
    │   └── MigrationNeededError   the database's schema is older; `workbench store migrate`
    ├── DiffError              two executions cannot be compared (an execution with itself, ...)
    ├── ExecutionNotFoundError the execution id is not in the store (also a KeyError)
    ├── ExperimentError        an experiment cannot run as asked (empty selection, a SQLite
    │   │                      store with a remote engine, a modification no run accepts, ...)
    │   ├── ExperimentNotFoundError  the experiment id is not in the store (also a KeyError)
    │   └── SchedulerUnreachableError the Dask scheduler address does not answer
    ├── NetworkBlockedError    a test tried to reach a host off this machine (block_network)
    ├── PipelineError          a YAML pipeline is invalid (file, line, step and the fix named)
    │   └── PipelineStepError      a step of a pipeline run failed (the execution is recorded)
    ├── ProfileNotFoundError   the profile id is not in the store (also a KeyError)
    ├── ProfilerError          a profiler could not run (py-spy, memray or yappi missing or
    │                          refused, tracker busy, profiles folder unwritable)
    ├── RecordingError         the recorder was used wrongly (a step outside an execution, ...)
    ├── ReplayError            an execution cannot be replayed (still running, no entrypoint, ...)
    │   ├── ReplayMismatchError    the replay sent a request the recording has no answer for
    │   └── DamagedRecordingError  a recorded response is missing from the store or corrupt
    └── TestServerError        the built-in test model server could not start or was misused

    UserWarning
    └── WorkbenchWarning       something was probably not what the caller meant
        ├── UnmatchedIgnoreWarning  a diff ``ignore`` pattern matched no field of either run
        └── PipelineChangedWarning  a replayed YAML pipeline's file changed since the recording
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BudgetExceededError",
    "CallRefused",
    "ConfigError",
    "DamagedRecordingError",
    "DiffError",
    "ExecutionNotFoundError",
    "ExperimentError",
    "ExperimentNotFoundError",
    "MigrationNeededError",
    "MissingExtraError",
    "NetworkBlockedError",
    "NotAStoreError",
    "PipelineChangedWarning",
    "PipelineError",
    "PipelineStepError",
    "ProfileNotFoundError",
    "ProfilerError",
    "RecordingError",
    "ReplayError",
    "ReplayMismatchError",
    "SchedulerUnreachableError",
    "SchemaVersionError",
    "StoreError",
    "StoreFullError",
    "StoreUnreachableError",
    "TestServerError",
    "UnmatchedIgnoreWarning",
    "WorkbenchError",
    "WorkbenchWarning",
]


class WorkbenchError(Exception):
    """Root of every error workbench raises on purpose."""


class CallRefused(WorkbenchError):
    """A model call was refused before it was sent: the one error an observer's
    ``model_call_starting`` may raise to stop a call (any other is logged, not raised)."""


class BudgetExceededError(CallRefused):
    """A ``cost_tracking`` budget is spent: the model call was refused before it was sent.

    ``budget`` is ``"daily"``, ``"monthly"`` or ``"per_user"``; ``spent_usd`` and ``limit_usd``
    are that budget's spend and limit, ``user_id`` the user of a per-user budget.
    """

    def __init__(
        self,
        message: str,
        *,
        budget: str,
        spent_usd: float,
        limit_usd: float,
        user_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.budget = budget
        self.spent_usd = spent_usd
        self.limit_usd = limit_usd
        self.user_id = user_id


class ConfigError(WorkbenchError):
    """A configuration value (workbench.yaml, environment, or argument) cannot be used."""


class MissingExtraError(ConfigError, ImportError):
    """A configured feature needs an optional dependency (an extra) that is not installed."""


class StoreError(WorkbenchError):
    """The store cannot be opened, read or written."""


class SchemaVersionError(StoreError):
    """The store file was written by a newer workbench than this one."""


class NotAStoreError(StoreError):
    """The file is not a workbench store, or it is corrupt."""


class StoreFullError(StoreError):
    """The disk holding the store is full. Rows that could not be written are kept in memory
    (bounded) and written once there is space; ``dropped`` counts the rows of this write that
    the bound left out, which are lost."""

    def __init__(self, message: str, *, dropped: int = 0) -> None:
        super().__init__(message)
        self.dropped = dropped


class StoreUnreachableError(StoreError):
    """The store's database server cannot be reached (down, restarting, the network). Rows
    that could not be written are kept in memory (bounded) and written once it answers again;
    ``dropped`` counts the rows of this write that the bound left out, which are lost."""

    def __init__(self, message: str, *, dropped: int = 0) -> None:
        super().__init__(message)
        self.dropped = dropped


class MigrationNeededError(StoreError):
    """The store's schema is older than this workbench's and is not upgraded on open
    (``store.auto_migrate: false``, PostgreSQL's default): run ``workbench store migrate``."""


class DiffError(WorkbenchError):
    """Two executions cannot be compared as asked."""


class ExecutionNotFoundError(WorkbenchError, KeyError):
    """No execution with the given id is in the store."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ExperimentError(WorkbenchError):
    """An experiment (``RequestReplay.replay_many``) cannot be run as asked: nothing is
    selected, the engine cannot reach the store or import the code, or no run accepts the
    modifications."""


class ExperimentNotFoundError(ExperimentError, KeyError):
    """No experiment with the given id is in the store."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class SchedulerUnreachableError(ExperimentError):
    """The Dask scheduler at the given address does not answer."""


class NetworkBlockedError(WorkbenchError):
    """A connection that would leave the machine was refused: the pytest plugin's
    ``--workbench-block-network`` (or ``block_network`` setting) is on."""


class ProfileNotFoundError(WorkbenchError, KeyError):
    """No profile with the given id is in the store."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ProfilerError(WorkbenchError):
    """A profiler could not start or finish; the execution it was meant for ran unprofiled."""


class PipelineError(WorkbenchError):
    """A YAML pipeline or its inputs are invalid (raised before anything runs or is recorded).

    ``source`` is the file (or ``<dict>``), ``line`` the 1-based line where YAML gives one, and
    ``step_id`` the step concerned, each ``None`` when not applicable.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        step_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.source = source
        self.line = line
        self.step_id = step_id


class PipelineStepError(PipelineError):
    """A step of a YAML pipeline run failed; the run is recorded as failed in ``execution_id``.

    The step's own exception is the ``__cause__``.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        step_id: str | None = None,
        execution_id: str | None = None,
    ) -> None:
        super().__init__(message, source=source, line=line, step_id=step_id)
        self.execution_id = execution_id


class RecordingError(WorkbenchError):
    """The recorder API was used in a way it cannot record."""


class ReplayError(WorkbenchError):
    """An execution cannot be replayed, or its replay failed where the original did not.

    ``execution_id`` is the replay's own recorded execution when the replay ran (so it can be
    shown and diffed against the original), ``None`` when it was refused before running.
    """

    def __init__(self, message: str, *, execution_id: str | None = None) -> None:
        super().__init__(message)
        self.execution_id = execution_id


class ReplayMismatchError(ReplayError):
    """A replayed request has no recorded answer (``on_miss="error"``).

    ``mismatches`` holds one :class:`workbench.replay.Mismatch` per request that missed,
    ``execution_id`` the replay's own (failed) execution and ``replay_of`` the one replayed.
    """

    execution_id: str

    def __init__(
        self,
        message: str,
        *,
        mismatches: list[Any],
        execution_id: str,
        replay_of: str | None = None,
    ) -> None:
        super().__init__(message, execution_id=execution_id)
        self.mismatches = mismatches
        self.replay_of = replay_of


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


class PipelineChangedWarning(WorkbenchWarning):
    """A replay runs a YAML pipeline whose file changed since the execution was recorded."""


class UnmatchedIgnoreWarning(WorkbenchWarning):
    """A diff ``ignore`` pattern matched no field of either execution (a typo ignores nothing)."""
