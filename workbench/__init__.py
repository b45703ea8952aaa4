"""workbench: record, replay, diff and profile AI pipelines.

>>> import workbench
>>> with workbench.record("research_assistant", inputs={"topic": "llamas"}) as run:
...     run.outputs = research("llamas")

Every name is imported on first use (PEP 562 ``__getattr__``): ``import workbench`` costs a few
milliseconds, and a program pays only for the subsystems it touches (recording never loads the
diff engine's deepdiff, the YAML pipelines' jinja2 or a model SDK).
"""

# Private aliases: every public name bound here is an export (tests/test_exported_members.py).
import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
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

#: Where each public name lives: imported from there on first use.
_LAZY: dict[str, str] = {
    "ConfigError": "workbench.exceptions",
    "DamagedRecordingError": "workbench.exceptions",
    "Difference": "workbench.diff",
    "ErrorInfo": "workbench.records",
    "Execution": "workbench.records",
    "ExecutionDiff": "workbench.diff",
    "ExecutionNotFoundError": "workbench.exceptions",
    "LiveExecution": "workbench.recorder",
    "LogRecord": "workbench.records",
    "ModelCall": "workbench.records",
    "NotAStoreError": "workbench.exceptions",
    "PipelineError": "workbench.exceptions",
    "Profile": "workbench.records",
    "RecordingError": "workbench.exceptions",
    "ReplayError": "workbench.exceptions",
    "ReplayMismatchError": "workbench.exceptions",
    "SchemaVersionError": "workbench.exceptions",
    "Span": "workbench.records",
    "State": "workbench.records",
    "Step": "workbench.records",
    "Store": "workbench.store",
    "StoreError": "workbench.exceptions",
    "StreamChunk": "workbench.records",
    "WorkbenchError": "workbench.exceptions",
    "action": "workbench.pipelines",
    "arun_pipeline": "workbench.pipelines",
    "carry_context": "workbench.recorder",
    "compare_executions": "workbench.diff",
    "debug": "workbench.debug",
    "now": "workbench.recorder",
    "open_store": "workbench.store",
    "pipeline": "workbench.recorder",
    "random": "workbench.recorder",
    "record": "workbench.recorder",
    "run_pipeline": "workbench.pipelines",
    "span": "workbench.recorder",
    "state": "workbench.recorder",
    "step": "workbench.recorder",
    "uuid4": "workbench.recorder",
}

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


def __getattr__(name: str) -> _typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'workbench' has no attribute {name!r}")
    value = _importlib.import_module(module)
    if name != module.rpartition(".")[2]:
        value = getattr(value, name)
    globals()[name] = value  # the next look-up is a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
