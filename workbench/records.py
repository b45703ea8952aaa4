"""The records workbench stores: what happened in an execution, as frozen dataclasses.

This module owns the shape of the data and nothing else: no I/O, no clocks, no ids. The store
builds these from its rows; the recorder builds rows, not records, so that recording stays cheap.
Field names follow DESIGN.md and, for model calls, the OpenTelemetry GenAI conventions
(``input_tokens`` *includes* cached tokens).
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Any

from workbench.types import JSON, ExecutionStatus, StepStatus

__all__ = [
    "AllocationStack",
    "ErrorInfo",
    "Execution",
    "Experiment",
    "ExperimentRun",
    "FunctionStat",
    "LogRecord",
    "ModelCall",
    "Profile",
    "ProfileSummary",
    "Span",
    "State",
    "Step",
    "StreamChunk",
]


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """An exception as recorded: its type, message and formatted traceback."""

    type: str
    message: str
    traceback: str = ""

    def to_json(self) -> dict[str, str]:
        return {"type": self.type, "message": self.message, "traceback": self.traceback}

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorInfo:
        """``exc`` as recorded: qualified type name, message and formatted traceback."""
        kind = type(exc)
        name = kind.__qualname__
        if kind.__module__ != "builtins":
            name = f"{kind.__module__}.{name}"
        return cls(name, str(exc), "".join(traceback.format_exception(exc)))

    @classmethod
    def from_json(cls, value: JSON) -> ErrorInfo | None:
        if not value:
            return None
        return cls(value["type"], value["message"], value.get("traceback", ""))


@dataclass(frozen=True, slots=True)
class Span:
    """A timed unit of work in an execution's trace (OpenTelemetry's span, simplified)."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    execution_id: str
    name: str
    kind: str
    attributes: dict[str, Any]
    events: list[dict[str, Any]]
    status: str
    start: float
    end: float | None


@dataclass(frozen=True, slots=True)
class Step:
    """One run of a named step. ``occurrence`` counts runs of the same step id (loops)."""

    execution_id: str
    step_id: str
    occurrence: int
    span_id: str | None
    parent_step_id: str | None
    action: str | None
    parameters: JSON
    result: JSON
    error: ErrorInfo | None
    status: StepStatus
    retries: int
    started_at: float
    ended_at: float | None
    duration_s: float | None

    def _repr_html_(self) -> str:
        """Jupyter's view: a compact table (see :mod:`workbench._notebook`)."""
        from workbench._notebook import step_html

        return step_html(self)


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """Bytes of a response as the caller received them, ``offset_s`` after sending.

    A streamed response has one chunk per read; any other body is one chunk, at its latency.
    """

    offset_s: float
    data: bytes


@dataclass(frozen=True, slots=True)
class ModelCall:
    """One HTTP call to a model API (or any HTTP API) made inside an execution."""

    id: str
    execution_id: str
    span_id: str | None
    step_id: str | None
    step_occurrence: int | None
    provider: str
    model: str | None
    operation: str
    request: JSON
    status_code: int | None
    response: JSON
    response_headers: dict[str, str]
    streamed: bool
    chunks: list[StreamChunk]
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    tokens_estimated: bool
    cost_usd: float | None
    ttft_s: float | None
    latency_s: float | None
    finish_reason: str | None
    text: str | None
    request_key: str
    occurrence: int
    started_at: float
    error: ErrorInfo | None
    stream_error: str | None = None
    #: Answered from a recording (a replay, a test's recorded answer), not sent: it cost
    #: nothing, and budgets and cost reports leave it out.
    replayed: bool = False

    def _repr_html_(self) -> str:
        """Jupyter's view: a compact table (see :mod:`workbench._notebook`)."""
        from workbench._notebook import model_call_html

        return model_call_html(self)

    @property
    def body(self) -> bytes:
        """The response body as received (the chunks joined, for a stream)."""
        return b"".join(chunk.data for chunk in self.chunks)

    def sse_events(self) -> list[tuple[float, str | None, str]]:
        """A stream's server-sent events as ``(offset_s, event, data)``, in order.

        ``chunks`` are the reads the caller received (what replay reproduces); an event's
        offset is that of the read that completed it.
        """
        from workbench.providers._sse import SSEParser  # the grammar only: a leaf module

        parser = SSEParser()
        events = [
            (chunk.offset_s, event.event, event.data)
            for chunk in self.chunks
            for event in parser.feed(chunk.data)
        ]
        last = self.chunks[-1].offset_s if self.chunks else 0.0
        events += [(last, event.event, event.data) for event in parser.close()]
        return events


@dataclass(frozen=True, slots=True)
class State:
    """A named intermediate value; ``blob_hash`` addresses the deduplicated stored bytes."""

    execution_id: str
    step_id: str | None
    name: str
    seq: int
    blob_hash: str
    value: JSON
    recorded_at: float


@dataclass(frozen=True, slots=True)
class LogRecord:
    """A standard ``logging`` record emitted inside an execution."""

    execution_id: str
    trace_id: str | None
    span_id: str | None
    step_id: str | None
    level: str
    logger: str
    message: str
    fields: dict[str, Any]
    created_at: float


@dataclass(frozen=True, slots=True)
class FunctionStat:
    """One function in a profile: time (``unit`` ``"s"``) or bytes (``"B"``) spent in it.

    ``self_value`` counts what the function itself did, ``total_value`` adds its callees;
    ``count`` is samples (cpu), allocations (memory) or calls (async).
    """

    name: str
    file: str
    line: int | None
    self_value: float
    total_value: float
    count: int
    unit: str

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> FunctionStat:
        return cls(
            value["name"],
            value["file"],
            value.get("line"),
            value["self_value"],
            value["total_value"],
            value["count"],
            value["unit"],
        )


@dataclass(frozen=True, slots=True)
class AllocationStack:
    """Memory still held at the high-water mark by one stack (innermost frame first)."""

    size: int
    allocations: int
    frames: tuple[tuple[str, str, int], ...]  # (function, file, line)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> AllocationStack:
        return cls(
            value["size"],
            value["allocations"],
            tuple((f[0], f[1], f[2]) for f in value["frames"]),
        )


@dataclass(frozen=True, slots=True)
class ProfileSummary:
    """What a profile found, readable without opening its artifact.

    ``top_functions`` are ordered by what matters for the kind (self time for cpu, bytes for
    memory, total wall time for async); ``peak_bytes`` is the tracked heap's peak (memory only);
    ``sampler`` says which tool produced it (``py-spy``, ``in-process``, ``memray``, ``yappi``);
    ``notes`` say what the profile cannot show; ``error`` is set when the profiler could not run
    (the execution itself went on unprofiled).
    """

    kind: str
    sampler: str | None = None
    duration_s: float = 0.0
    samples: int = 0
    top_functions: tuple[FunctionStat, ...] = ()
    peak_bytes: int | None = None
    top_stacks: tuple[AllocationStack, ...] = ()
    artifacts: dict[str, str] = field(default_factory=dict)  # role -> path (flamegraph, ...)
    observation: dict[str, Any] = field(default_factory=dict)  # what the trigger saw
    notes: tuple[str, ...] = ()
    error: str | None = None

    @classmethod
    def from_json(cls, value: dict[str, Any] | None) -> ProfileSummary:
        value = value or {}
        return cls(
            kind=value.get("kind", "unknown"),
            sampler=value.get("sampler"),
            duration_s=value.get("duration_s", 0.0),
            samples=value.get("samples", 0),
            top_functions=tuple(FunctionStat.from_json(f) for f in value.get("top_functions", ())),
            peak_bytes=value.get("peak_bytes"),
            top_stacks=tuple(AllocationStack.from_json(s) for s in value.get("top_stacks", ())),
            artifacts=dict(value.get("artifacts", {})),
            observation=dict(value.get("observation", {})),
            notes=tuple(value.get("notes", ())),
            error=value.get("error"),
        )


@dataclass(frozen=True, slots=True)
class Profile:
    """A profiler artifact linked to an execution (written by the profiling subsystem).

    ``path`` is the main artifact (speedscope JSON, memray capture or flame graph, pstat);
    it is empty when the profiler could not run, and ``summary.error`` says why.
    """

    id: str
    execution_id: str | None
    kind: str
    trigger: str | None
    path: str
    summary: ProfileSummary
    created_at: float


@dataclass(frozen=True, slots=True)
class Execution:
    """One run of a pipeline, with everything recorded in it.

    ``status`` says how far it got (``running``/``completed``/``failed``/``interrupted``);
    ``success`` says whether it did what it should — a run can complete and still be judged
    unsuccessful, and an interrupted one has ``success`` of ``None``.
    """

    id: str
    pipeline_id: str
    pipeline_version: str | None
    entrypoint: str | None
    inputs: JSON
    outputs: JSON
    status: ExecutionStatus
    success: bool | None
    error: ErrorInfo | None
    user_id: str | None
    environment: str | None
    sampled: bool
    debug: bool
    started_at: float
    ended_at: float | None
    duration_s: float | None
    cost_usd: float | None
    tokens_in: int
    tokens_out: int
    replay_of: str | None
    modifications: dict[str, Any]
    code_version: str | None
    metadata: dict[str, Any]
    trace_id: str
    steps: list[Step] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    model_calls: list[ModelCall] = field(default_factory=list)
    states: list[State] = field(default_factory=list)
    logs: list[LogRecord] = field(default_factory=list)
    profiles: list[Profile] = field(default_factory=list)
    #: The conversation the run belongs to (``record(..., session_id=...)``), if one was given.
    #: Last, so that records built by position before it existed still mean what they meant.
    session_id: str | None = None
    #: The experiment a replay was run in (``RequestReplay.replay_many``), if any.
    experiment_id: str | None = None

    def _repr_html_(self) -> str:
        """Jupyter's view: a compact table (see :mod:`workbench._notebook`)."""
        from workbench._notebook import execution_html

        return execution_html(self)


@dataclass(frozen=True, slots=True)
class Experiment:
    """Many recorded executions replayed against one change (``RequestReplay.replay_many``).

    ``selection`` is what the user asked for (a filter, or ids); ``originals`` the execution ids
    it resolved to when the experiment started, in order — what a resume works through.
    ``status`` is ``running``, ``completed`` or ``interrupted`` (stopped by Ctrl-C, or its
    process ended: ``workbench experiments resume ID`` replays the rest). ``counts`` holds
    ``replayed``, ``failed`` and ``changed`` as of the last finished run.
    """

    id: str
    name: str | None
    pipeline_id: str | None
    selection: dict[str, Any]
    originals: list[str]
    modifications: dict[str, Any]
    on_miss: str
    engine: str
    workers: int
    status: str
    started_at: float
    ended_at: float | None
    counts: dict[str, int]


@dataclass(frozen=True, slots=True)
class ExperimentRun:
    """One original execution's replay in an experiment, and what it changed.

    ``status`` is ``replayed`` or ``failed`` (``error`` says why; ``replay_id`` is set when a
    replay was recorded). ``changed`` is whether the run's outputs (the execution's and its
    steps' results) or its status differ from the original's; ``first_divergent_step`` is the
    diff engine's (``"draft#0"``). Costs, tokens and latencies are the original's (``_before``)
    and the replay's (``_after``); ``calls_recorded`` were answered from the recording,
    ``calls_live`` were sent (``on_miss`` live or test-model). ``attempts`` is 2 when a
    worker died under the first.
    """

    experiment_id: str
    original_id: str
    replay_id: str | None
    status: str
    error: str | None
    changed: bool
    first_divergent_step: str | None
    cost_before: float | None
    cost_after: float | None
    tokens_before: int
    tokens_after: int
    latency_before: float | None
    latency_after: float | None
    calls_recorded: int
    calls_live: int
    attempts: int
    ended_at: float
