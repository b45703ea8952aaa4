"""Metric updates against raw prometheus_client, and the budget check with 1,000,000 calls stored.

What, part 1 — one metric update, in one process, the same work for both, variants alternating:

* counter: ``.labels("a", "b").inc()`` on a counter declared with ``metrics.Counter`` (ours)
  and on a ``prometheus_client.Counter`` in a registry of its own (peer);
* histogram: ``.labels("a").observe(0.3)``, likewise;
* ``@monitor(metric_type="histogram")`` around a trivial function against prometheus_client's
  own ``@Histogram.time()`` decorator.

Target: ours ≤ 1.2× the peer. Also printed, without a peer: what the built-in metrics cost the
recorder per finished step and per analysed model call (the observer's work).

Part 2 — the budget check on the model-call path (``BudgetGuard.model_call_starting``, with
daily, monthly and per-user budgets) on a store holding 1,000,000 recorded model calls (100,000
executions, 100 users, spread over this month). The store is built with bulk SQL inserts into
the real schema (the cost ledger's trigger fills the ledger as it would for recorded calls).
Measured: the check when no call was recorded since the previous one; the check when one call
was recorded (by another connection) before each check, so each check reads one new ledger
row; the first check of a process (it sums the month from the ledger's covering index); and
the end-of-call write a budget adds to every call (``store.flush()``: one small commit). The
peer is the naive check: one ``SUM(cost_usd)`` over this month's model calls per call.
Target: ≤ 50 µs per check.
"""

from __future__ import annotations

import os
import random
import sqlite3
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import _common
import prometheus_client
from _common import Row, fmt, median, rotated

import workbench
from workbench import _hooks
from workbench.monitoring import metrics, monitor
from workbench.monitoring.cost._budget import BudgetGuard
from workbench.monitoring.prometheus._builtin import MetricsObserver
from workbench.testing import fresh_store

__all__ = ["main"]

TARGET_RATIO = 1.2
TARGET_CHECK_US = 50.0
VARIANTS = ("ours", "raw")


# -- part 1: metric updates -------------------------------------------------------------------


def _metric_pairs() -> dict[str, dict[str, Any]]:
    raw = prometheus_client.CollectorRegistry()
    tag = f"{os.getpid()}_{time.monotonic_ns()}"

    def plain() -> int:
        return 1

    raw_histogram = prometheus_client.Histogram(f"bench_raw_fn_{tag}", "x", registry=raw)
    return {
        "counter .labels().inc()": {
            "ours": metrics.Counter(f"bench_counter_{tag}", "x", labels=["a", "b"]),
            "raw": prometheus_client.Counter(
                f"bench_counter_{tag}", "x", labelnames=["a", "b"], registry=raw
            ),
        },
        "histogram .labels().observe()": {
            "ours": metrics.Histogram(f"bench_hist_{tag}", "x", labels=["a"]),
            "raw": prometheus_client.Histogram(
                f"bench_hist_{tag}", "x", labelnames=["a"], registry=raw
            ),
        },
        "@monitor vs @Histogram.time()": {
            "ours": monitor(metric_name=f"bench_fn_{tag}", metric_type="histogram")(plain),
            "raw": raw_histogram.time()(plain),
        },
    }


def _update_loop(kind: str, target: Any, n: int) -> float:
    start = time.perf_counter()
    if kind.startswith("counter"):
        for _ in range(n):
            target.labels("a", "b").inc()
    elif kind.startswith("histogram"):
        for _ in range(n):
            target.labels("a").observe(0.3)
    else:
        for _ in range(n):
            target()
    return (time.perf_counter() - start) / n * 1e6


def metric_updates(quick: bool) -> list[Row]:
    n, rounds = (50_000, 3) if quick else (200_000, 7)
    pairs = _metric_pairs()
    rows = []
    for kind, variants in pairs.items():
        costs: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for v in VARIANTS:
            _update_loop(kind, variants[v], 1_000)  # warm-up
        for index in range(rounds):
            for v in rotated(VARIANTS, index):
                costs[v].append(_update_loop(kind, variants[v], n))
        ours, raw = median(costs["ours"]), median(costs["raw"])
        print(f"  {kind}: ours {ours:.3f} us, raw prometheus_client {raw:.3f} us", flush=True)
        rows.append(
            Row(
                "metrics",
                f"us/update, {kind}, N={n:,} (peer raw prometheus_client)",
                fmt(ours, 3, " us"),
                fmt(raw, 3, " us"),
                f"{ours / raw:.2f}x",
                f"<= {TARGET_RATIO}x",
                ours / raw <= TARGET_RATIO,
            )
        )
    rows.extend(observer_costs(quick))
    return rows


def observer_costs(quick: bool) -> list[Row]:
    """The built-in metrics' work per step and per model call (no peer: context)."""
    n = 20_000 if quick else 100_000
    observer = MetricsObserver()
    with fresh_store() as store:
        with workbench.record("bench_observer", inputs={}, store=store) as run:
            step = _hooks.StepEvent(run, "s", 0, None, "completed", 0.01, 0, None, None, ())
            call = _call_event(run, 0.001)
            results = []
            for event, notify in (
                (step, observer.step_finished),
                (call, observer.model_call_finished),
            ):
                notify(event)  # type: ignore[arg-type]
                start = time.perf_counter()
                for _ in range(n):
                    notify(event)  # type: ignore[arg-type]
                results.append((time.perf_counter() - start) / n * 1e6)
    step_us, call_us = results
    print(f"  built-in metrics: {step_us:.2f} us per step, {call_us:.2f} us per model call")
    return [
        Row("metrics", "built-in metrics per finished step (observer)", fmt(step_us, 2, " us"),
            "-", "-", "-", None),
        Row("metrics", "built-in metrics per model call (observer, writer thread)",
            fmt(call_us, 2, " us"), "-", "-", "-", None),
    ]  # fmt: skip


def _call_event(run: Any, cost: float) -> _hooks.ModelCallEvent:
    return _hooks.ModelCallEvent(
        run=run,
        call_id="call_bench",
        step_id=None,
        provider="openai",
        model="gpt-4o-mini",
        operation="chat",
        status_code=200,
        input_tokens=100,
        output_tokens=20,
        cache_read_tokens=None,
        cache_write_tokens=None,
        cost_usd=cost,
        latency_s=0.5,
        ttft_s=None,
        error=None,
        replayed=False,
    )


# -- part 2: the budget check -------------------------------------------------------------------


def build_store(path: Path, calls: int) -> float:
    """A store with ``calls`` priced model calls this month; returns seconds taken."""
    started = time.perf_counter()
    workbench.Store(path).close()  # the real schema, cost ledger and trigger included
    now = time.time()
    month_start = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0).timestamp()
    rng = random.Random(7)
    per_execution = 10
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    chunk = 50_000
    for base in range(0, calls, chunk):
        conn.execute("BEGIN")
        executions = []
        rows = []
        for i in range(base, min(base + chunk, calls)):
            when = rng.uniform(month_start, now)
            if i % per_execution == 0:
                executions.append(
                    (f"exec_{i // per_execution}", f"pipeline_{i % 5}", "completed",
                     f"user_{rng.randrange(100)}", when)
                )  # fmt: skip
            rows.append(
                (f"call_{i}", f"exec_{i // per_execution}", "openai", "gpt-4o-mini", 200,
                 rng.uniform(0.0001, 0.01), 120, 30, when)
            )  # fmt: skip
        conn.executemany(
            "INSERT INTO executions (id, pipeline_id, status, user_id, started_at) "
            "VALUES (?, ?, ?, ?, ?)",
            executions,
        )
        conn.executemany(
            "INSERT INTO model_calls (id, execution_id, provider, model, status_code, cost_usd, "
            "input_tokens, output_tokens, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.execute("COMMIT")
    ledger = conn.execute("SELECT COUNT(*) FROM cost_ledger").fetchone()[0]
    conn.close()
    if ledger != calls:
        raise RuntimeError(f"the cost ledger holds {ledger} rows, expected {calls}")
    return time.perf_counter() - started


def budget_check(quick: bool) -> list[Row]:
    calls = 200_000 if quick else 1_000_000
    n = 20_000 if quick else 100_000
    n_new = 2_000 if quick else 5_000
    with tempfile.TemporaryDirectory(prefix="bench-budget-") as tmp:
        folder = Path(tmp)
        path = folder / "budget.db"
        built = build_store(path, calls)
        print(f"  built a store of {calls:,} model calls in {built:.1f}s", flush=True)
        (folder / "workbench.yaml").write_text(
            "cost_tracking:\n  budgets: {daily_limit: 1000000, monthly_limit: 10000000, "
            "per_user_limit: 1000000}\n"
        )
        previous = os.environ.get("WORKBENCH_CONFIG")
        os.environ["WORKBENCH_CONFIG"] = str(folder / "workbench.yaml")
        try:
            return _measure_checks(path, calls, n, n_new)
        finally:
            if previous is None:
                os.environ.pop("WORKBENCH_CONFIG", None)
            else:
                os.environ["WORKBENCH_CONFIG"] = previous


def _measure_checks(path: Path, calls: int, n: int, n_new: int) -> list[Row]:
    store = workbench.Store(path)
    url = "https://api.openai.com/v1/chat/completions"
    canonical: dict[str, Any] = {"body": {"model": "gpt-4o-mini"}}
    with workbench.record("bench_budget", inputs={}, store=store, user_id="user_7") as run:
        guard = BudgetGuard()
        start = time.perf_counter()
        guard.model_call_starting(run, "POST", url, canonical)
        first_ms = (time.perf_counter() - start) * 1e3
        finished = _call_event(run, 0.001)
        guard.model_call_finished(finished)

        quiet = []
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(n):
                guard.model_call_starting(run, "POST", url, canonical)
                guard.model_call_finished(finished)
            quiet.append((time.perf_counter() - start) / n * 1e6)

        writer = sqlite3.connect(path, isolation_level=None)
        busy = []
        for i in range(n_new):
            writer.execute(
                "INSERT INTO model_calls (id, execution_id, provider, model, status_code, "
                "cost_usd, started_at) VALUES (?, 'exec_1', 'openai', 'gpt-4o-mini', 200, "
                "0.001, ?)",
                (f"call_new_{i}", time.time()),
            )
            start = time.perf_counter_ns()
            guard.model_call_starting(run, "POST", url, canonical)
            busy.append((time.perf_counter_ns() - start) / 1e3)
            guard.model_call_finished(finished)
        writer.close()

        flushes = []
        for _ in range(200):
            store.put("log", (run.id, None, None, None, "INFO", "bench", "x", "{}", time.time()))
            start = time.perf_counter_ns()
            store.flush()
            flushes.append((time.perf_counter_ns() - start) / 1e3)

        month_start = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0).timestamp()
        naive = []
        reader = sqlite3.connect(path)
        for _ in range(3):
            start = time.perf_counter()
            reader.execute(
                "SELECT SUM(cost_usd) FROM model_calls WHERE started_at >= ?", (month_start,)
            ).fetchone()
            naive.append((time.perf_counter() - start) * 1e6)
        reader.close()
    store.close()
    quiet_us, busy_us, naive_us = median(quiet), median(busy), median(naive)
    flush_us = median(flushes)
    print(
        f"  budget check, {calls:,} calls stored: {quiet_us:.2f} us (nothing new), "
        f"{busy_us:.2f} us (one new call before each); first check {first_ms:.1f} ms; "
        f"end-of-call write {flush_us:.0f} us; naive SUM per call {naive_us / 1e3:.1f} ms",
        flush=True,
    )
    peer = f"naive SUM {fmt(naive_us / 1e3, 1, ' ms')}"
    return [
        Row("metrics", f"budget check/call, {calls:,} calls stored, nothing new",
            fmt(quiet_us, 2, " us"), peer, f"{quiet_us / naive_us:.5f}x",
            f"<= {TARGET_CHECK_US:.0f} us", quiet_us <= TARGET_CHECK_US),
        Row("metrics", f"budget check/call, {calls:,} calls stored, one new call each",
            fmt(busy_us, 2, " us"), peer, f"{busy_us / naive_us:.5f}x",
            f"<= {TARGET_CHECK_US:.0f} us", busy_us <= TARGET_CHECK_US),
        Row("metrics", "first budget check of a process (sums the month)",
            fmt(first_ms, 1, " ms"), "-", "-", "-", None),
        Row("metrics", "end-of-call write with a budget set (one commit)",
            fmt(flush_us, 0, " us"), "-", "-", "-", None),
    ]  # fmt: skip


def main(quick: bool = False) -> list[Row]:
    return metric_updates(quick) + budget_check(quick)


if __name__ == "__main__":
    _common.cli(__doc__ or "", main)
