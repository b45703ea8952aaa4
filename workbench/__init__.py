"""workbench: record, replay, diff and profile AI pipelines.

>>> import workbench
>>> with workbench.record("research_assistant", inputs={"topic": "llamas"}) as run:
...     run.outputs = research("llamas")
"""

from workbench.diff import Difference, ExecutionDiff, compare_executions
from workbench.exceptions import (
    ConfigError,
    DamagedRecordingError,
    ExecutionNotFoundError,
    NotAStoreError,
    RecordingError,
    ReplayError,
    ReplayMismatchError,
    SchemaVersionError,
    StoreError,
    WorkbenchError,
)
from workbench.recorder import (
    LiveExecution,
    carry_context,
    now,
    pipeline,
    random,
    record,
    span,
    state,
    step,
    uuid4,
)
from workbench.records import (
    ErrorInfo,
    Execution,
    LogRecord,
    ModelCall,
    Profile,
    Span,
    State,
    Step,
    StreamChunk,
)
from workbench.store import Store, open_store

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DamagedRecordingError",
    "Difference",
    "ErrorInfo",
    "Execution",
    "ExecutionDiff",
    "ExecutionNotFoundError",
    "LiveExecution",
    "LogRecord",
    "ModelCall",
    "NotAStoreError",
    "Profile",
    "RecordingError",
    "ReplayError",
    "ReplayMismatchError",
    "SchemaVersionError",
    "Span",
    "State",
    "Step",
    "Store",
    "StoreError",
    "StreamChunk",
    "WorkbenchError",
    "__version__",
    "carry_context",
    "compare_executions",
    "now",
    "open_store",
    "pipeline",
    "random",
    "record",
    "span",
    "state",
    "step",
    "uuid4",
]
