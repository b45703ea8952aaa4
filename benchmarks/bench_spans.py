"""Cost of one recorded span: ``workbench.span`` against the OpenTelemetry SDK.

What: the wall time per span of ``with workbench.span("s", i=i): pass`` and of
``with tracer.start_as_current_span("s", attributes={"i": i}): pass``, measured two ways:

* in the loop - what the instrumented code pays while it runs (each library's background
  thread runs meanwhile and is charged wherever it takes the GIL);
* until stored - the loop plus the time until the spans are handed off for good: for ours the
  ``with workbench.record`` block's exit (a durable SQLite commit of every span), for OTel the
  root span's end and ``TracerProvider.force_flush()`` (every span handed to the exporter).

The target (<= 0.1x the SDK) is on the loop, at N = 10,000 and 50,000: what instrumented code
pays. "Until stored" is shown for context: ours ends in a durable SQLite commit of every span,
the SDK's in an in-memory list.

The peer is the OpenTelemetry SDK as documented for production: a ``TracerProvider`` with a
``BatchSpanProcessor`` over the ``InMemorySpanExporter`` (the cheapest exporter there is; its
queue is sized so no span is dropped). Both loops run under a parent (the execution's root span;
an OTel root span). The variants alternate, rounds repeat, the table shows medians.

Also, apart: a ``@workbench.step`` decorated call. A step is durable when it returns (it waits
for the writer to commit, so a finished step survives ``kill -9``), so it costs a writer
round-trip and a commit; its peer for context is the floor for that: one ``INSERT`` and
``COMMIT`` per call on a raw ``sqlite3`` connection (WAL, ``synchronous=NORMAL``, as ours).
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from pathlib import Path

import _common
from _common import Row, fmt, median, rotated
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import workbench

__all__ = ["main"]

TARGET_RATIO = 0.1
VARIANTS = ("ours", "otel")


def ours_spans(folder: Path, run: int, n: int) -> tuple[float, float]:
    """(seconds in the loop, seconds until the execution's block exits)."""
    store = workbench.Store(folder / f"spans-{run}.db")
    start = time.perf_counter()
    with workbench.record("bench_spans", inputs={"n": n}, store=store):
        loop_start = time.perf_counter()
        for i in range(n):
            with workbench.span("s", i=i):
                pass
        in_loop = time.perf_counter() - loop_start
    stored = time.perf_counter() - start
    recorded = store.stats()["spans"]
    store.close()
    if recorded != n + 1:  # the spans and the execution's root span
        raise RuntimeError(f"workbench stored {recorded} spans, expected {n + 1}")
    return in_loop, stored


def otel_spans(n: int) -> tuple[float, float]:
    """(seconds in the loop, seconds until every span reached the exporter)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=n + 16))
    tracer = provider.get_tracer("bench_spans")
    start = time.perf_counter()
    with tracer.start_as_current_span("root"):
        loop_start = time.perf_counter()
        for i in range(n):
            with tracer.start_as_current_span("s", attributes={"i": i}):
                pass
        in_loop = time.perf_counter() - loop_start
    provider.force_flush()
    stored = time.perf_counter() - start
    exported = len(exporter.get_finished_spans())
    provider.shutdown()
    if exported != n + 1:
        raise RuntimeError(f"OpenTelemetry exported {exported} spans, expected {n + 1}")
    return in_loop, stored


def steps(folder: Path, n: int) -> float:
    """Seconds per ``@workbench.step`` call, each durable before it returns."""

    @workbench.step("work")
    def work(i: int) -> int:
        return i

    store = workbench.Store(folder / "steps.db")
    with workbench.record("bench_steps", inputs={"n": n}, store=store):
        work(-1)
        start = time.perf_counter()
        for i in range(n):
            work(i)
        seconds = time.perf_counter() - start
    store.close()
    return seconds / n


def sqlite_commits(folder: Path, n: int) -> float:
    """Seconds per INSERT + COMMIT on a raw connection, the floor of a durable step."""
    conn = sqlite3.connect(folder / "commits.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS steps (id INTEGER, status TEXT, started REAL, ended REAL)"
    )
    start = time.perf_counter()
    for i in range(n):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO steps VALUES (?, ?, ?, ?)", (i, "completed", 0.0, 1.0))
        conn.execute("COMMIT")
    seconds = time.perf_counter() - start
    conn.close()
    return seconds / n


def main(quick: bool = False) -> list[Row]:
    sizes, rounds = ((10_000,), 2) if quick else ((10_000, 50_000), 5)
    step_n, step_rounds = (200, 2) if quick else (1_000, 3)
    in_loop: dict[tuple[int, str], list[float]] = {}
    stored: dict[tuple[int, str], list[float]] = {}
    step_costs: list[float] = []
    commit_costs: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-spans-") as tmp:
        folder = Path(tmp)
        ours_spans(folder, -1, 1_000)  # warm-up: imports, the writer thread, OTel's lazy paths
        otel_spans(1_000)
        for n in sizes:
            for index in range(rounds):
                for variant in rotated(VARIANTS, index):
                    loop_s, stored_s = (
                        ours_spans(folder, n * 10 + index, n)
                        if variant == "ours"
                        else otel_spans(n)
                    )
                    in_loop.setdefault((n, variant), []).append(loop_s / n * 1e6)
                    stored.setdefault((n, variant), []).append(stored_s / n * 1e6)
        for _ in range(step_rounds):
            step_costs.append(steps(folder, step_n) * 1e6)
            commit_costs.append(sqlite_commits(folder, step_n) * 1e6)

    rows: list[Row] = []
    for n in sizes:
        for label, values in (("in the loop", in_loop), ("until stored/exported", stored)):
            ours, peer = median(values[(n, "ours")]), median(values[(n, "otel")])
            print(f"  span, {label}, N={n:,}: ours {ours:.2f} us, OTel {peer:.2f} us", flush=True)
            rows.append(
                Row(
                    "spans",
                    f"us/span {label}, N={n:,} (peer OTel SDK, BatchSpanProcessor)",
                    fmt(ours, 2, " us"),
                    fmt(peer, 2, " us"),
                    f"{ours / peer:.2f}x",
                    f"<= {TARGET_RATIO}x" if label == "in the loop" else "-",
                    ours / peer <= TARGET_RATIO if label == "in the loop" else None,
                )
            )
    step_us, commit_us = median(step_costs), median(commit_costs)
    print(
        f"  @workbench.step: {step_us:.1f} us/call; it returns once its rows are committed "
        f"(a writer round-trip and a commit). Floor, raw sqlite3 INSERT+COMMIT: "
        f"{commit_us:.1f} us",
        flush=True,
    )
    rows.append(
        Row(
            "spans",
            f"@step call, durable at return, N={step_n:,} (peer: raw sqlite3 INSERT+COMMIT)",
            fmt(step_us, 1, " us"),
            fmt(commit_us, 1, " us"),
            f"{step_us / commit_us:.2f}x",
            "-",
            None,
        )
    )
    return rows


if __name__ == "__main__":
    _common.cli(__doc__ or "", main)
