"""The two store backends side by side: PostgreSQL ("ours" column) against SQLite ("peer").

Same process, same work, on a fresh store of each backend: a SQLite file in a temporary
folder, and a database of a throwaway PostgreSQL cluster (``workbench.testing._postgres``,
``initdb`` + ``pg_ctl``) reached over its unix socket. Measured:

* sustained ingest: ``executions x spans`` ``workbench.span`` calls, timed until
  ``store.flush()`` returns (every span committed), as spans/s (target >= 50,000/s on
  PostgreSQL over a unix socket);
* a durable ``@step``: the wall-clock cost of one empty step whose end waits for its commit
  (the recorder's ``flush_soon``), in µs;
* ``list_executions()`` first page (100) with ``N`` executions stored, in ms (target <= 100 ms);
* ``workbench store copy`` of ``M`` executions from a SQLite file into the backend
  (``copy_store``), in executions/s.

* the budget check per model call (``BudgetGuard.model_call_starting`` with daily, monthly and
  per-user budgets, nothing recorded since the previous check), in µs (target <= 50 µs), on a
  fresh store: its ledger read is by ``seq``, so its cost does not grow with the calls stored
  (``bench_queries`` measures it on SQLite with 1,000,000).

Not measured here (yet): capture overhead per model call, the budget check and a daily cost
report with 1,000,000 calls stored (``bench_queries``, SQLite only). Skipped, saying why, without
PostgreSQL. The variants alternate, rounds repeat, the table shows medians.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import _common
from _common import Row, fmt, median, rotated

import workbench
from workbench.store import Store

__all__ = ["main"]

TARGET_SPANS_PER_S = 50_000
TARGET_LIST_MS = 100.0


def _ingest(store: Store, executions: int, spans: int) -> float:
    start = time.perf_counter()
    for number in range(executions):
        with workbench.record("bench_store", inputs={"n": number}, store=store):
            for i in range(spans):
                with workbench.span("s", i=i):
                    pass
    store.flush()
    return executions * spans / (time.perf_counter() - start)


def _step_us(store: Store, steps: int) -> float:
    with workbench.record("bench_step", inputs={}, store=store):
        start = time.perf_counter()
        for i in range(steps):
            with workbench.step("s") as step:
                step.set_result(i)
        seconds = time.perf_counter() - start
    return seconds / steps * 1e6


TARGET_BUDGET_US = 50.0


def _budget_us(store: Store, checks: int) -> float:
    from bench_metrics import _call_event

    from workbench.monitoring.cost._budget import BudgetGuard

    url = "https://api.openai.com/v1/chat/completions"
    canonical: dict[str, object] = {"body": {"model": "gpt-4o-mini"}}
    with workbench.record("bench_budget", inputs={}, store=store, user_id="u1") as run:
        guard = BudgetGuard()
        guard.model_call_starting(run, "POST", url, canonical)  # the month summed once
        guard.model_call_finished(_call_event(run, 0.001))
        store.flush()
        start = time.perf_counter()
        for _ in range(checks):
            guard.model_call_starting(run, "POST", url, canonical)
        seconds = time.perf_counter() - start
    return seconds / checks * 1e6


@contextlib.contextmanager
def _budgets(folder: Path) -> Iterator[None]:
    """Daily, monthly and per-user budgets (never reached) configured while inside."""
    (folder / "workbench.yaml").write_text(
        "cost_tracking:\n  budgets: {daily_limit: 1000000, monthly_limit: 10000000, "
        "per_user_limit: 1000000}\n"
    )
    previous = os.environ.get("WORKBENCH_CONFIG")
    os.environ["WORKBENCH_CONFIG"] = str(folder / "workbench.yaml")
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("WORKBENCH_CONFIG", None)
        else:
            os.environ["WORKBENCH_CONFIG"] = previous


def _fill(store: Store, executions: int) -> list[str]:
    ids = []
    for number in range(executions):
        with workbench.record("bench_list", inputs={"n": number}, store=store) as run:
            with workbench.step("s", parameters={"n": number}):
                workbench.state("v", number)
        ids.append(run.id)
    store.flush()
    return ids


def _list_ms(store: Store, rounds: int = 5) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        store.list_executions(limit=100)
        times.append((time.perf_counter() - start) * 1e3)
    return median(times)


def _copy_rate(source: Store, make_target: Callable[[], Store], ids: list[str]) -> float:
    from workbench.store._export import copy_store

    with make_target() as target:
        start = time.perf_counter()
        copy_store(source, target, ids)
        return len(ids) / (time.perf_counter() - start)


def main(quick: bool = False) -> list[Row]:
    from workbench.testing._postgres import PostgresServer, find_postgres_bin

    if find_postgres_bin() is None:
        print("  store: skipped, PostgreSQL is not installed (no initdb)", flush=True)
        return []
    executions, spans, steps, listed, copied, rounds = (
        (2, 5_000, 200, 300, 100, 2) if quick else (4, 10_000, 500, 2_000, 500, 3)
    )
    checks = 2_000 if quick else 10_000
    results: dict[str, dict[str, list[float]]] = {
        name: {"ingest": [], "step": [], "budget": [], "list": [], "copy": []}
        for name in ("postgresql", "sqlite")
    }
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp, PostgresServer() as server:
        folder = Path(tmp)
        made = 0

        def fresh(backend: str) -> Store:
            nonlocal made
            made += 1
            if backend == "sqlite":
                return Store(folder / f"s{made}.db")
            return Store(server.url(server.new_database(), socket=True))

        with _budgets(folder), Store(folder / "source.db") as source:
            copy_ids = _fill(source, copied)
            for index in range(rounds):
                for backend in rotated(("postgresql", "sqlite"), index):
                    numbers = results[backend]
                    with fresh(backend) as store:
                        numbers["ingest"].append(_ingest(store, executions, spans))
                    with fresh(backend) as store:
                        numbers["step"].append(_step_us(store, steps))
                    with fresh(backend) as store:
                        numbers["budget"].append(_budget_us(store, checks))
                    if index == 0:  # filling N executions is the slow part: once
                        with fresh(backend) as store:
                            _fill(store, listed)
                            numbers["list"].append(_list_ms(store))
                    numbers["copy"].append(
                        _copy_rate(source, lambda b=backend: fresh(b), copy_ids)  # type: ignore[misc]
                    )
    pg = {k: median(v) for k, v in results["postgresql"].items()}
    lite = {k: median(v) for k, v in results["sqlite"].items()}
    print(
        f"  store: ingest PostgreSQL {pg['ingest']:,.0f} vs SQLite {lite['ingest']:,.0f} spans/s;"
        f" durable step {pg['step']:.0f} vs {lite['step']:.0f} µs; budget check "
        f"{pg['budget']:.1f} vs {lite['budget']:.1f} µs; list {pg['list']:.1f} vs "
        f"{lite['list']:.1f} ms; copy {pg['copy']:,.0f} vs {lite['copy']:,.0f} executions/s",
        flush=True,
    )
    return [
        Row(
            "store",
            f"spans/s until flush(), {executions} x {spans:,} (ours PostgreSQL, peer SQLite)",
            f"{pg['ingest']:,.0f}",
            f"{lite['ingest']:,.0f}",
            fmt(pg["ingest"] / lite["ingest"], 2, "x"),
            f">= {TARGET_SPANS_PER_S:,}/s",
            pg["ingest"] >= TARGET_SPANS_PER_S,
        ),
        Row(
            "store",
            "durable @step, µs (ours PostgreSQL, peer SQLite)",
            f"{pg['step']:.0f}",
            f"{lite['step']:.0f}",
            fmt(pg["step"] / lite["step"], 2, "x"),
            "-",
            None,
        ),
        Row(
            "store",
            "budget check per model call, nothing new, µs (ours PostgreSQL, peer SQLite)",
            f"{pg['budget']:.1f}",
            f"{lite['budget']:.1f}",
            fmt(pg["budget"] / lite["budget"], 2, "x"),
            f"<= {TARGET_BUDGET_US:.0f} µs",
            pg["budget"] <= TARGET_BUDGET_US and lite["budget"] <= TARGET_BUDGET_US,
        ),
        Row(
            "store",
            f"list_executions first page, {listed:,} stored, ms",
            f"{pg['list']:.1f}",
            f"{lite['list']:.1f}",
            fmt(pg["list"] / lite["list"], 2, "x"),
            f"<= {TARGET_LIST_MS:.0f} ms",
            pg["list"] <= TARGET_LIST_MS and lite["list"] <= TARGET_LIST_MS,
        ),
        Row(
            "store",
            f"store copy of {copied} executions from SQLite, executions/s",
            f"{pg['copy']:,.0f}",
            f"{lite['copy']:,.0f}",
            fmt(pg["copy"] / lite["copy"], 2, "x"),
            "-",
            None,
        ),
    ]


if __name__ == "__main__":
    _common.cli(__doc__ or "", main)
