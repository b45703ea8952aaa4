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
* ``Store.list_executions()`` first page (50 newest of 100,000 executions);
* the ledger read of one budget check with nothing new (``Store.ledger_since``).

Targets: ≤ 50 µs per budget check, ≤ 100 ms for the daily report and the first page. The peer
of the reports and the ledger read is the raw SQL the readers ran on sqlite3 connections of
their own before the store's query API (issue 15), the statement alone on an open connection
(ours also flushes the store and builds the report's records), alternating with ours in each
round; the budget check's peer is ``bench_metrics``' naive ``SUM`` per call. Not in ``run.py``:
``bench_metrics`` already times the budget check there; run this one on its own.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import _common
import bench_metrics
from _common import Row, fmt, median, rotated

import workbench
from workbench.monitoring import CostReporter

__all__ = ["main"]

TARGET_REPORT_MS = 100.0


# The SQL the readers ran on sqlite3 connections of their own before the store's query API.
_DAILY_SQL = (
    "SELECT model, pipeline_id, user_id, SUM(cost_usd), COUNT(*), SUM(cost_usd IS NULL), "
    "SUM(input_tokens), SUM(output_tokens) FROM cost_ledger WHERE started_at >= ? AND "
    "started_at < ? GROUP BY model, pipeline_id, user_id"
)
_LEDGER_SQL = "SELECT seq, started_at, user_id, cost_usd FROM cost_ledger WHERE seq > ?"


def _ms(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def _trend_sql(edges: list[float]) -> tuple[str, tuple[float, ...]]:
    selects = " UNION ALL ".join(
        f"SELECT {i}, (SELECT COALESCE(SUM(cost_usd), 0.0) FROM cost_ledger "
        f"WHERE started_at >= ? AND started_at < ?)"
        for i in range(len(edges) - 1)
    )
    return selects, tuple(v for i in range(len(edges) - 1) for v in (edges[i], edges[i + 1]))


def reports(path: Path, calls: int, rounds: int) -> list[Row]:
    """Ours (the store's typed queries, as CostReporter and the budget ledger call them) and
    the raw SQL they replaced, alternating in each round, medians."""
    store = workbench.Store(path)
    reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        reporter = CostReporter(store, timezone="UTC")
        today = datetime.now(UTC).date()
        start, end = reporter._bounds(today)
        first = today - timedelta(days=29)
        edges = [reporter._bounds(first + timedelta(days=i))[0] for i in range(30)] + [end]
        trend_sql, trend_params = _trend_sql(edges)
        seq = store.ledger_snapshot(since=0.0, recent_since=0.0).seq
        work: dict[str, dict[str, Callable[[], object]]] = {
            "daily": {
                "ours": reporter.get_daily_report,
                "raw": lambda: reader.execute(_DAILY_SQL, (start, end)).fetchall(),
            },
            "trend": {
                "ours": lambda: reporter.get_cost_trends(days=30),
                "raw": lambda: reader.execute(trend_sql, trend_params).fetchall(),
            },
            "page": {"ours": lambda: store.list_executions(limit=50), "raw": lambda: None},
        }
        times: dict[tuple[str, str], list[float]] = {
            (k, v): [] for k in work for v in ("ours", "raw")
        }
        ledger: dict[str, list[float]] = {"ours": [], "raw": []}
        for r in range(rounds):
            for kind, variants in work.items():
                for variant in rotated(("ours", "raw"), r):
                    times[(kind, variant)].append(_ms(variants[variant]))
            for variant in rotated(("ours", "raw"), r):
                n = 20_000
                begin = time.perf_counter()
                if variant == "ours":
                    for _ in range(n):
                        store.ledger_since(seq)
                else:
                    for _ in range(n):
                        reader.execute(_LEDGER_SQL, (seq,)).fetchall()
                ledger[variant].append((time.perf_counter() - begin) / n * 1e6)
    finally:
        reader.close()
        store.close()
    m = {key: median(values) for key, values in times.items()}
    ledger_ours, ledger_raw = median(ledger["ours"]), median(ledger["raw"])
    print(
        f"  daily cost report {m['daily', 'ours']:.1f} ms (raw SQL {m['daily', 'raw']:.1f}), "
        f"30-day trend {m['trend', 'ours']:.1f} ms (raw SQL {m['trend', 'raw']:.1f}), "
        f"list_executions first page {m['page', 'ours']:.1f} ms; ledger read with nothing "
        f"new {ledger_ours:.2f} us (raw {ledger_raw:.2f})",
        flush=True,
    )
    target = f"<= {TARGET_REPORT_MS:.0f} ms"

    def row(kind: str, measure: str) -> Row:
        ours, raw = m[kind, "ours"], m[kind, "raw"]
        return Row("queries", measure, fmt(ours, 1, " ms"), f"raw SQL {fmt(raw, 1, ' ms')}",
                   f"{ours / raw:.2f}x", target, ours <= TARGET_REPORT_MS)  # fmt: skip

    return [
        row("daily", f"daily cost report, {calls:,} calls stored"),
        row("trend", "30-day cost trend"),
        Row("queries", "list_executions first page (50 of 100,000)",
            fmt(m["page", "ours"], 1, " ms"), "-", "-", target,
            m["page", "ours"] <= TARGET_REPORT_MS),
        Row("queries", "ledger read per budget check, nothing new", fmt(ledger_ours, 2, " us"),
            f"raw SQL {fmt(ledger_raw, 2, ' us')}", f"{ledger_ours / ledger_raw:.2f}x",
            "-", None),
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
            rows = reports(path, calls, 3 if quick else 7)
            rows += bench_metrics._measure_checks(path, calls, n, n_new)
        finally:
            if previous is None:
                os.environ.pop("WORKBENCH_CONFIG", None)
            else:
                os.environ["WORKBENCH_CONFIG"] = previous
    return rows


if __name__ == "__main__":
    _common.cli(__doc__ or "", main)
