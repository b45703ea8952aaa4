"""workbench: record, replay, diff and profile AI pipelines.

>>> import workbench
>>> with workbench.record("research_assistant", inputs={"topic": "llamas"}) as run:
...     run.outputs = research("llamas")
"""

from workbench import debug
from workbench.diff import Difference, ExecutionDiff, compare_executions
from workbench.exceptions import (
    ConfigError,
    DamagedRecordingError,
    ExecutionNotFoundError,
    NotAStoreError,
    PipelineError,
    RecordingError,
    ReplayError,
    ReplayMismatchError,
    SchemaVersionError,
    StoreError,
    WorkbenchError,
)
from workbench.pipelines import action, arun_pipeline, run_pipeline
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
    "PipelineError",
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
    "action",
    "arun_pipeline",
    "carry_context",
    "compare_executions",
    "debug",
    "now",
    "open_store",
    "pipeline",
    "random",
    "record",
    "run_pipeline",
    "span",
    "state",
    "step",
    "uuid4",
]
