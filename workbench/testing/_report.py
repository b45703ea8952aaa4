"""The end-of-session summary of a test suite's model calls: totals, top tests, near budgets.

Owns :class:`SessionReport`, which keeps a small :class:`TestReport` per test (not its
recordings) and renders the lines the pytest plugin prints after the run: total cost, tokens and
model calls, the most expensive and the slowest tests, and the tests that used at least 80% of a
budget marker's limit.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any

from workbench.testing._budgets import NEAR, BudgetCheck, seconds, usd
from workbench.testing._summary import RunSummary, Tokens

__all__ = ["SessionReport", "TestReport"]

_TOP = 5


@dataclass(frozen=True, slots=True)
class TestReport:
    """What one test's executions added up to, and how close it came to its budgets."""

    __test__ = False  # not a pytest test class despite the name

    nodeid: str
    cost_usd: float | None
    unpriced_calls: int
    tokens: Tokens
    model_calls: int
    duration_s: float  # latency.total: recorded when every call was replayed
    recorded_total: bool
    checks: tuple[BudgetCheck, ...] = ()

    @classmethod
    def of(cls, nodeid: str, summary: RunSummary, checks: list[BudgetCheck]) -> TestReport:
        return cls(
            nodeid,
            summary.cost_usd,
            len(summary.unpriced_calls),
            summary.tokens,
            len(summary.model_calls),
            summary.latency.total,
            summary.recorded_total,
            tuple(checks),
        )

    def to_wire(self) -> dict[str, Any]:
        """Plain data (builtins only) that :meth:`from_wire` reads back: what a pytest-xdist
        worker sends its controller."""
        return asdict(self)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> TestReport:
        fields = dict(data)
        fields["tokens"] = Tokens(**fields["tokens"])
        fields["checks"] = tuple(BudgetCheck(**check) for check in fields["checks"])
        return cls(**fields)


class SessionReport:
    """The tests of one session that ran under workbench, in the order they finished."""

    def __init__(self) -> None:
        self.tests: list[TestReport] = []
        self._lock = threading.Lock()

    def add(self, report: TestReport) -> None:
        with self._lock:
            self.tests.append(report)

    def lines(self) -> list[str]:
        """The summary, one string per line (empty when no test ran under workbench)."""
        tests = list(self.tests)
        if not tests:
            return []
        calls = sum(t.model_calls for t in tests)
        tokens = Tokens(
            sum(t.tokens.input for t in tests),
            sum(t.tokens.output for t in tests),
            sum(t.tokens.cache_read for t in tests),
            sum(t.tokens.cache_write for t in tests),
        )
        cost = sum(t.cost_usd or 0.0 for t in tests)
        unpriced = sum(t.unpriced_calls for t in tests)
        unknown = f" (+ {unpriced} calls with no known price)" if unpriced else ""
        lines = [
            f"{_count(len(tests), 'test')}, {_count(calls, 'model call')}, "
            f"{tokens.total:,} tokens ({tokens.input:,} "
            f"input of which {tokens.cache_read:,} cached, {tokens.output:,} output), "
            f"cost {usd(cost)}{unknown}",
        ]
        priced = [t for t in tests if t.model_calls]
        if priced:
            lines.append("most expensive tests:")
            for test in sorted(priced, key=lambda t: t.cost_usd or 0.0, reverse=True)[:_TOP]:
                price = "unknown  " if test.cost_usd is None else usd(test.cost_usd)
                lines.append(f"  {price}  {test.nodeid}")
        lines.append("slowest tests:")
        for test in sorted(tests, key=lambda t: t.duration_s, reverse=True)[:_TOP]:
            note = "  (the recording's time: all calls replayed)" if test.recorded_total else ""
            lines.append(f"  {test.duration_s:8.3f}s  {test.nodeid}{note}")
        near = [
            (test, check)
            for test in tests
            for check in test.checks
            if check.ratio is None or check.ratio >= NEAR
        ]
        if near:
            lines.append(f"tests at {NEAR:.0%} or more of a budget:")
            for test, check in near:
                lines.append(f"  {test.nodeid}  {_usage(check)}")
        return lines


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _usage(check: BudgetCheck) -> str:
    if check.ratio is None or check.measured is None:
        return f"{check.name}: unknown (a price is missing)"
    if check.name == "max_cost":
        values = f"{usd(check.measured)} of {usd(check.limit)}"
    elif check.name == "max_tokens":
        values = f"{check.measured:,.0f} of {check.limit:,.0f}"
    else:
        values = f"{seconds(check.measured)} of {seconds(check.limit)}"
    over = "  EXCEEDED" if check.exceeded else ""
    return f"{check.name}: {check.ratio:.0%} ({values}){over}"
