"""Budgets on a test's cost, tokens and latency, and the messages that explain a breach.

Owns checking a :class:`~workbench.testing.RunSummary` against a :class:`Budget` (what the
``max_cost``, ``max_tokens`` and ``max_latency`` markers say) and writing what failed: the
measured value, the limit, and the calls that cost the most or took the longest. Latencies of
calls answered from a recording are the recorded ones, and the message says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from workbench._money import usd as _usd
from workbench.exceptions import ConfigError
from workbench.records import ModelCall
from workbench.testing._summary import RunSummary

__all__ = [
    "LATENCY_KEYS",
    "Budget",
    "BudgetCheck",
    "check_budget",
    "failure_message",
    "seconds",
    "usd",
]

#: The keys of ``max_latency``: model-call percentiles, and the test body's wall time.
LATENCY_KEYS = ("p50", "p95", "p99", "total")
_SHOWN = 5  # calls listed under a breach
#: A budget counts as "close" in the session summary from this fraction of its limit.
NEAR = 0.8


@dataclass(frozen=True, slots=True)
class Budget:
    """Limits for one test: US dollars, tokens (input + output), and seconds."""

    max_cost: float | None = None
    max_tokens: int | None = None
    max_latency: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, value in (("max_cost", self.max_cost), ("max_tokens", self.max_tokens)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value < 0
            ):
                raise ConfigError(f"{name} must be a number >= 0, got {value!r}")
        for key, seconds in self.max_latency.items():
            if key not in LATENCY_KEYS:
                raise ConfigError(
                    f"max_latency has no key {key!r}; use {', '.join(LATENCY_KEYS)} (seconds), "
                    f"e.g. max_latency(p95=2.0, total=10)"
                )
            if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
                raise ConfigError(f"max_latency {key}={seconds!r} must be a number of seconds > 0")

    def __bool__(self) -> bool:
        return self.max_cost is not None or self.max_tokens is not None or bool(self.max_latency)


@dataclass(frozen=True, slots=True)
class BudgetCheck:
    """One limit against its measure. ``measured`` is ``None`` when it cannot be known (a
    price is missing), which fails the check: an unknown cost is not within any budget."""

    name: str  # "max_cost", "max_tokens", "max_latency.p95", ...
    measured: float | None
    limit: float
    message: str

    @property
    def exceeded(self) -> bool:
        return self.measured is None or self.measured > self.limit

    @property
    def ratio(self) -> float | None:
        """measured / limit (``None`` when unknown; ``inf`` over a zero limit)."""
        if self.measured is None:
            return None
        if self.limit == 0:
            return 0.0 if self.measured == 0 else float("inf")
        return self.measured / self.limit


def check_budget(summary: RunSummary, budget: Budget) -> list[BudgetCheck]:
    """Each limit of ``budget`` checked against ``summary``, in the order of the markers."""
    checks: list[BudgetCheck] = []
    if budget.max_cost is not None:
        checks.append(_cost(summary, budget.max_cost))
    if budget.max_tokens is not None:
        checks.append(_tokens(summary, budget.max_tokens))
    for key in LATENCY_KEYS:
        if key in budget.max_latency:
            checks.append(_latency(summary, key, float(budget.max_latency[key])))
    return checks


def failure_message(checks: list[BudgetCheck]) -> str | None:
    """The messages of the exceeded checks, or ``None`` when every limit held."""
    failed = [check.message for check in checks if check.exceeded]
    return "\n\n".join(failed) if failed else None


def _cost(summary: RunSummary, limit: float) -> BudgetCheck:
    calls = len(summary.model_calls)
    if summary.cost_usd is None:
        unknown = sorted({f"{c.provider}/{c.model}" for c in summary.unpriced_calls})
        message = (
            f"max_cost: the cost of this test is unknown: {len(summary.unpriced_calls)} of its "
            f"{calls} model calls have no known price ({', '.join(unknown)}), and an unknown "
            f"cost is not within a budget of {usd(limit)}. Give the model a price under "
            f"cost_tracking.providers in workbench.yaml (or in the workbench_config fixture)."
        )
        return BudgetCheck("max_cost", None, limit, message)
    where = _replay_note(summary, "the cost of the recorded answers counts")
    lines = [
        f"max_cost: this test's model calls cost {usd(summary.cost_usd)}, over the limit of "
        f"{usd(limit)} ({calls} call{'s' if calls != 1 else ''}).{where}",
        "most expensive calls:",
        *(
            f"  {usd(c.cost_usd or 0.0):>11}  {_describe(c, summary)}"
            for c in summary.most_expensive(_SHOWN)
        ),
    ]
    return BudgetCheck("max_cost", summary.cost_usd, limit, "\n".join(lines))


def _tokens(summary: RunSummary, limit: int) -> BudgetCheck:
    tokens = summary.tokens
    lines = [
        f"max_tokens: this test's model calls used {tokens.total:,} tokens ({tokens.input:,} "
        f"input, of which {tokens.cache_read:,} cached, + {tokens.output:,} output), over the "
        f"limit of {limit:,}.",
        "calls with the most tokens:",
        *(
            f"  {(c.input_tokens or 0) + (c.output_tokens or 0):>8,}  {_describe(c, summary)}"
            for c in summary.most_tokens(_SHOWN)
        ),
    ]
    return BudgetCheck("max_tokens", float(tokens.total), float(limit), "\n".join(lines))


def _latency(summary: RunSummary, key: str, limit: float) -> BudgetCheck:
    latency = summary.latency
    if key == "total":
        measured = latency.total
        if summary.recorded_total:
            what = (
                f"the wall time of recording {summary.recording_id} (every model call was "
                f"answered from it: the recorded time counts, not the replay's speed)"
            )
        else:
            what = "the wall time of the test body"
        head = (
            f"max_latency: total time {seconds(measured)} is over the limit of "
            f"{seconds(limit)} ({what})."
        )
    else:
        measured = getattr(latency.calls, key)
        count = latency.calls.count
        where = _replay_note(summary, "their recorded latencies count, not the replay's speed")
        head = (
            f"max_latency: {key} model-call latency {seconds(measured)} is over the limit of "
            f"{seconds(limit)} (over {count} call{'s' if count != 1 else ''}).{where}"
        )
    slowest = summary.slowest(_SHOWN)
    lines = [head]
    if slowest:
        lines.append("slowest calls:")
        lines.extend(
            f"  {summary.call_latency.get(c.id, 0.0):7.3f}s  {_describe(c, summary)}"
            for c in slowest
        )
    return BudgetCheck(f"max_latency.{key}", measured, limit, "\n".join(lines))


def usd(value: float) -> str:
    """Dollars for reading, as every view writes them (``workbench._money.usd``)."""
    return _usd(value)


def seconds(value: float) -> str:
    return f"{value:.3f}s" if value == 0 or value >= 1e-3 else f"{value:.3g}s"


def _replay_note(summary: RunSummary, meaning: str) -> str:
    """`` Under replay: ...`` when some calls were answered from a recording."""
    if not summary.replayed:
        return ""
    replayed, total = len(summary.replayed_calls), len(summary.model_calls)
    source = f" from recording {summary.recording_id}" if summary.recording_id else ""
    return f" Under replay: {replayed} of {total} calls were answered{source}: {meaning}."


def _describe(call: ModelCall, summary: RunSummary) -> str:
    step = f"step {call.step_id!r}" if call.step_id else "no step"
    tokens = f"{call.input_tokens or 0:,} in / {call.output_tokens or 0:,} out tokens"
    recorded = "  (recorded)" if call.id in summary.replayed_calls else ""
    return f"{call.provider} {call.model or '?'}  {step}  {tokens}  {call.id}{recorded}"
