"""The typed answers of the store's read queries (``Store.ledger_since``, ``Store.cost_groups``,
``Store.execution_aggregates`` …): frozen records, so that no reader above the store sees a row,
a column position or a SQL dialect. The queries themselves live in ``_queries``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CostGroup",
    "ExecutionAggregate",
    "ExecutionOutcome",
    "ExecutionTiming",
    "Histogram",
    "LedgerEntry",
    "LedgerSnapshot",
    "ModelCallAggregate",
    "ModelCallFailure",
    "ModelCallTiming",
    "StepAggregate",
    "StepTiming",
]


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One priced model call in the cost ledger (the ledger leaves out replays' calls)."""

    seq: int  #: the ledger's own order of arrival, across every process writing the store
    started_at: float | None
    user_id: str | None
    cost_usd: float | None  #: ``None``: the call's price is unknown


@dataclass(frozen=True, slots=True)
class LedgerSnapshot:
    """The ledger at one instant: its high-water mark and two sums read in the same snapshot."""

    seq: int  #: the last entry's ``seq`` (0 for an empty ledger)
    since_usd: float  #: spend since the earlier moment asked for (a month's start)
    recent_usd: float  #: spend since the later moment asked for (a day's start)


@dataclass(frozen=True, slots=True)
class CostGroup:
    """The priced calls of one (model, pipeline, user) over a time range, from the ledger."""

    model: str | None
    pipeline_id: str | None
    user_id: str | None
    cost_usd: float  #: the calls whose price is known (unknown prices are never $0)
    calls: int
    unpriced_calls: int
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class Histogram:
    """Values counted into buckets as Prometheus does: ``cumulative[i]`` values are ``<=
    bounds[i]``; ``count`` and ``total`` cover every value (``+Inf`` included)."""

    bounds: tuple[float, ...]
    cumulative: tuple[int, ...]
    count: int
    total: float


@dataclass(frozen=True, slots=True)
class ExecutionAggregate:
    """Executions counted over a window, for one group (``pipeline_id``/``status`` are ``None``
    unless the query was grouped by them)."""

    pipeline_id: str | None
    status: str | None
    executions: int
    running: int  #: as stored (the liveness check is :meth:`Store.list_executions`')
    failed: int
    succeeded: int  #: ``success`` is true
    judged: int  #: ``success`` is set, true or false
    #: Judged successful: ``success`` where it was set, else ``completed`` (``serve-metrics``).
    judged_successful: int
    duration: Histogram  #: the durations recorded (empty bounds unless asked)


@dataclass(frozen=True, slots=True)
class StepAggregate:
    """Steps counted over a window, for one group (``None`` keys: not grouped by them)."""

    pipeline_id: str | None
    step_id: str | None
    status: str | None
    steps: int
    retries: int
    duration: Histogram  #: the durations recorded (empty bounds unless asked)
    #: Seconds of work, each step's duration capped at the query's ``busy_cap_s`` (concurrency).
    busy_s: float


@dataclass(frozen=True, slots=True)
class ModelCallAggregate:
    """Model calls counted over a window, for one group (``None`` keys: not grouped by them;
    ``pipeline_id`` is also ``None`` for a call whose execution is not in the store)."""

    provider: str | None
    model: str | None
    pipeline_id: str | None
    in_replay: bool | None  #: the calls of replays (their execution has ``replay_of``)
    calls: int
    errors: int  #: an error recorded, or an HTTP status of 400 or more
    unanswered: int  #: no status and no error: the call never got an answer
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float | None  #: ``None``: no call of the group has a known price
    latency: Histogram  #: the latencies recorded (empty bounds unless asked)


@dataclass(frozen=True, slots=True)
class ExecutionTiming:
    """A finished execution's duration."""

    execution_id: str
    pipeline_id: str
    duration_s: float


@dataclass(frozen=True, slots=True)
class StepTiming:
    """A finished step's duration, with the pipeline of its execution."""

    execution_id: str
    pipeline_id: str | None
    step_id: str
    occurrence: int
    duration_s: float


@dataclass(frozen=True, slots=True)
class ModelCallTiming:
    """A model call's latency."""

    call_id: str
    provider: str | None
    model: str | None
    latency_s: float


@dataclass(frozen=True, slots=True)
class ExecutionOutcome:
    """How one execution ended, without its inputs, outputs or children (health checks)."""

    id: str
    status: str
    success: bool | None
    duration_s: float | None
    #: The error's type (``ValueError``, ``BudgetExceededError`` …); ``error`` when the stored
    #: error names none; ``None`` without an error.
    error_type: str | None
    started_at: float


@dataclass(frozen=True, slots=True)
class ModelCallFailure:
    """A model call that failed: an HTTP error status, or an error recorded."""

    execution_id: str
    provider: str | None
    status_code: int | None
    error_type: str | None  #: as :attr:`ExecutionOutcome.error_type`
