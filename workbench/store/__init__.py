"""The store subsystem: SQLite recordings, written in the background, read as records."""

from workbench.store._aggregates import (
    CostGroup,
    ExecutionAggregate,
    ExecutionOutcome,
    ExecutionTiming,
    Histogram,
    LedgerEntry,
    LedgerSnapshot,
    ModelCallAggregate,
    ModelCallFailure,
    ModelCallTiming,
    StepAggregate,
    StepTiming,
)
from workbench.store._owner import owner_stamp
from workbench.store._process import install_sigterm_handler, write_lag_s
from workbench.store._rows import RecordedResponse
from workbench.store._store import (
    DEFAULT_PATH,
    ExecutionList,
    Store,
    open_store,
    resolve_store_path,
)
from workbench.store._ui_reads import CallTiming, DailyCosts, RunFacets, RunPage, RunSummary
from workbench.store._writer import MAX_QUEUED

__all__ = [  # noqa: RUF022 - sorted as sorted() sorts (test_exported_members)
    "CallTiming",
    "CostGroup",
    "DEFAULT_PATH",
    "DailyCosts",
    "ExecutionAggregate",
    "ExecutionList",
    "ExecutionOutcome",
    "ExecutionTiming",
    "Histogram",
    "LedgerEntry",
    "LedgerSnapshot",
    "MAX_QUEUED",
    "ModelCallAggregate",
    "ModelCallFailure",
    "ModelCallTiming",
    "RecordedResponse",
    "RunFacets",
    "RunPage",
    "RunSummary",
    "StepAggregate",
    "StepTiming",
    "Store",
    "install_sigterm_handler",
    "open_store",
    "owner_stamp",
    "resolve_store_path",
    "write_lag_s",
]
