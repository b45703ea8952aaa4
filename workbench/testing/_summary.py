"""What a test's executions cost and how long they took: :class:`RunSummary`.

Owns adding up recorded executions — cost, tokens, model calls, steps, duration — and the
latency percentiles over model calls and over steps. A call answered from a recording counts
with the latency it had when it was recorded (``recorded_latency_s``), so that a test judged
under replay is judged by the real model's speed, not by the replay's. It reads records; it
does not record, and needs no pytest.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from workbench._stats import percentile
from workbench.records import Execution, ModelCall, Step

__all__ = ["Latency", "Percentiles", "RunSummary", "Tokens"]


@dataclass(frozen=True, slots=True)
class Percentiles:
    """Latency percentiles in seconds over ``count`` measurements (all ``0.0`` when none)."""

    count: int
    p50: float
    p95: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: Iterable[float]) -> Percentiles:
        kept = [v for v in values if v is not None]
        return cls(
            len(kept),
            percentile(kept, 0.50),
            percentile(kept, 0.95),
            percentile(kept, 0.99),
            max(kept, default=0.0),
        )


@dataclass(frozen=True, slots=True)
class Latency:
    """``p50``/``p95``/``p99`` over model calls; ``steps`` over steps; ``total``: the run's
    wall time (the recording's, when every call was answered from a recording)."""

    calls: Percentiles
    steps: Percentiles
    total: float

    @property
    def p50(self) -> float:
        return self.calls.p50

    @property
    def p95(self) -> float:
        return self.calls.p95

    @property
    def p99(self) -> float:
        return self.calls.p99


@dataclass(frozen=True, slots=True)
class Tokens:
    """Token counts (OpenTelemetry GenAI semantics: ``input`` includes cached tokens)."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0

    @property
    def total(self) -> int:
        """``input + output``: what ``max_tokens`` limits."""
        return self.input + self.output


@dataclass(frozen=True)
class RunSummary:
    """The executions of one test (or any set of executions), added up.

    ``cost_usd`` is ``None`` when a successful call's price is unknown (unknown is not $0);
    ``unpriced_calls`` lists them. ``call_latency`` maps each call id to the latency it is
    judged by: measured, or recorded for a call answered from a recording.
    """

    executions: tuple[Execution, ...]
    model_calls: list[ModelCall]
    steps: list[Step]
    cost_usd: float | None
    unpriced_calls: list[ModelCall]
    tokens: Tokens
    duration_s: float
    latency: Latency
    call_latency: dict[str, float] = field(repr=False)
    #: Calls answered from a recording, and the recording's id (when all came from one).
    replayed_calls: frozenset[str] = frozenset()
    recording_id: str | None = None
    #: ``latency.total`` is the recording's wall time (every call was answered from it).
    recorded_total: bool = False

    @classmethod
    def of(
        cls,
        executions: Sequence[Execution],
        *,
        recorded_latency_s: Mapping[str, float] | None = None,
        recorded_duration_s: float | None = None,
        recording_id: str | None = None,
        now: float | None = None,
    ) -> RunSummary:
        """Add up ``executions``. ``recorded_latency_s`` (call id → seconds) replaces the
        measured latency of calls answered from a recording; ``recorded_duration_s`` is the
        recording's wall time, used as ``latency.total`` when every call was answered so."""
        recorded = dict(recorded_latency_s or {})
        calls = [call for execution in executions for call in execution.model_calls]
        steps = [step for execution in executions for step in execution.steps]
        call_latency = {
            call.id: recorded.get(call.id, call.latency_s or 0.0)
            for call in calls
            if call.latency_s is not None or call.id in recorded
        }
        unpriced = [
            call
            for call in calls
            if call.cost_usd is None and call.status_code is not None and call.status_code < 400
        ]
        cost = None if unpriced else sum(call.cost_usd or 0.0 for call in calls)
        tokens = Tokens(
            input=sum(call.input_tokens or 0 for call in calls),
            output=sum(call.output_tokens or 0 for call in calls),
            cache_read=sum(call.cache_read_tokens or 0 for call in calls),
            cache_write=sum(call.cache_write_tokens or 0 for call in calls),
        )
        duration = _wall_time(executions, now)
        replayed = frozenset(call.id for call in calls if call.id in recorded)
        all_replayed = bool(calls) and len(replayed) == len(calls)
        recorded_total = all_replayed and recorded_duration_s is not None
        total = recorded_duration_s if recorded_total and recorded_duration_s else duration
        step_times = [s.duration_s for s in steps if s.duration_s is not None]
        return cls(
            executions=tuple(executions),
            model_calls=calls,
            steps=steps,
            cost_usd=cost,
            unpriced_calls=unpriced,
            tokens=tokens,
            duration_s=duration,
            latency=Latency(
                Percentiles.of(call_latency.values()), Percentiles.of(step_times), total
            ),
            call_latency=call_latency,
            replayed_calls=replayed,
            recording_id=recording_id if replayed else None,
            recorded_total=recorded_total,
        )

    @property
    def replayed(self) -> bool:
        """Some calls were answered from a recording (their latencies are the recorded ones)."""
        return bool(self.replayed_calls)

    def most_expensive(self, n: int = 5) -> list[ModelCall]:
        return sorted(self.model_calls, key=lambda c: c.cost_usd or 0.0, reverse=True)[:n]

    def slowest(self, n: int = 5) -> list[ModelCall]:
        latency = self.call_latency
        return sorted(self.model_calls, key=lambda c: latency.get(c.id, 0.0), reverse=True)[:n]

    def most_tokens(self, n: int = 5) -> list[ModelCall]:
        return sorted(
            self.model_calls,
            key=lambda c: (c.input_tokens or 0) + (c.output_tokens or 0),
            reverse=True,
        )[:n]


def _wall_time(executions: Sequence[Execution], now: float | None) -> float:
    """From the first execution's start to the last one's end (now, for a running one)."""
    if not executions:
        return 0.0
    moment = time.time() if now is None else now
    start = min(e.started_at for e in executions)
    ends = [
        e.ended_at
        if e.ended_at is not None
        else (e.started_at + e.duration_s if e.duration_s is not None else moment)
        for e in executions
    ]
    return max(0.0, max(ends) - start)
