"""The store's public read queries on a store of 1,000,000 model calls (issue 15's targets).

What, on one store built like ``bench_metrics``' (1,000,000 priced model calls in 100,000
executions of 5 pipelines and 100 users, spread over this month, bulk-inserted into the real
schema so that the cost ledger's trigger fills the ledger):

* the budget check per model call (``BudgetGuard.model_call_starting`` with daily, monthly and
  per-user budgets): nothing recorded since the previous check, and one call recorded by
  another connection before each check — ``bench_metrics``' measurement, run here on the same
  store as the rest;
* ``CostReporter.get_daily_report()`` for today (the calls of this month's latest day: the
  grouped sums by model, pipeline and user) and ``get_cost_trends(days=30)``;
* ``Store.list_executions()`` first page (50 newest of 100,000 executions).

Targets: ≤ 50 µs per budget check, ≤ 100 ms for the daily report and the first page. The peer
is the naive way each was done before a ledger and an index existed: one ``SUM`` over this
month's ``model_calls`` (the check) and one full ``GROUP BY`` over ``model_calls`` (the report).
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from pathlib import Path

import _common
import bench_metrics
from _common import Row, fmt, median

import workbench
from workbench.monitoring import CostReporter

__all__ = ["main"]

TARGET_REPORT_MS = 100.0


def _timed_ms(fn: object, rounds: int = 7) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append((time.perf_counter() - start) * 1e3)
    return median(times)


def reports(path: Path, calls: int) -> list[Row]:
    store = workbench.Store(path)
    try:
        reporter = CostReporter(store, timezone="UTC")
        daily_ms = _timed_ms(reporter.get_daily_report)
        trends_ms = _timed_ms(lambda: reporter.get_cost_trends(days=30))
        page_ms = _timed_ms(lambda: store.list_executions(limit=50))
        reader = sqlite3.connect(path)
        naive_ms = _timed_ms(
            lambda: reader.execute(
                "SELECT model, COUNT(*), SUM(cost_usd) FROM model_calls GROUP BY model"
            ).fetchall(),
            rounds=3,
        )
        reader.close()
    finally:
        store.close()
    print(
        f"  daily cost report {daily_ms:.1f} ms, 30-day trend {trends_ms:.1f} ms, "
        f"list_executions first page {page_ms:.1f} ms; naive GROUP BY {naive_ms:.0f} ms",
        flush=True,
    )
    peer = f"naive GROUP BY {fmt(naive_ms, 0, ' ms')}"
    target = f"<= {TARGET_REPORT_MS:.0f} ms"
    return [
        Row("queries", f"daily cost report, {calls:,} calls stored", fmt(daily_ms, 1, " ms"),
            peer, f"{daily_ms / naive_ms:.3f}x", target, daily_ms <= TARGET_REPORT_MS),
        Row("queries", "30-day cost trend", fmt(trends_ms, 1, " ms"), peer,
            f"{trends_ms / naive_ms:.3f}x", target, trends_ms <= TARGET_REPORT_MS),
        Row("queries", "list_executions first page (50 of 100,000)", fmt(page_ms, 1, " ms"),
            "-", "-", target, page_ms <= TARGET_REPORT_MS),
    ]  # fmt: skip


def main(quick: bool = False) -> list[Row]:
    calls = 200_000 if quick else 1_000_000
    n = 20_000 if quick else 100_000
    n_new = 2_000 if quick else 5_000
    with tempfile.TemporaryDirectory(prefix="bench-queries-") as tmp:
        folder = Path(tmp)
        path = folder / "queries.db"
        built = bench_metrics.build_store(path, calls)
        print(f"  built a store of {calls:,} model calls in {built:.1f}s", flush=True)
        (folder / "workbench.yaml").write_text(
            "cost_tracking:\n  budgets: {daily_limit: 1000000, monthly_limit: 10000000, "
            "per_user_limit: 1000000}\n"
        )
        previous = os.environ.get("WORKBENCH_CONFIG")
        os.environ["WORKBENCH_CONFIG"] = str(folder / "workbench.yaml")
        try:
            rows = reports(path, calls)
            rows += bench_metrics._measure_checks(path, calls, n, n_new)
        finally:
            if previous is None:
                os.environ.pop("WORKBENCH_CONFIG", None)
            else:
                os.environ["WORKBENCH_CONFIG"] = previous
    return rows


if __name__ == "__main__":
    _common.cli(__doc__ or "", main)
