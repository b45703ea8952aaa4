"""The store under faults: a step's latency while another process holds the write lock, and what
making an execution durable at ``record()`` entry costs.

What, in one run:

* step latency, store locked - a loop of ``with workbench.step(...)`` blocks (each records a
  state and a result around 1 ms of CPU work) inside one execution, while another process
  holds the store's write lock (``BEGIN IMMEDIATE``, then sleep) for 5 s; timed per step, from
  entering the block to leaving it, for the 4.5 s the lock is surely held. The peer is the same
  loop on the same store with no lock: there each step's end waits for its commit (a finished
  step survives ``kill -9``). Locked, the step's end waits at most 100 ms once, then recording
  lags and the writer commits as soon as the lock is free, so the application's latency does
  not depend on the store's. Reported as p50 and p99, locked against unlocked.
* ``record()`` entry - entering ``workbench.record(...)``, which now commits the execution's
  row before returning its handle (a writer round-trip and a commit), against today's entry
  before that change: the same code with the row only queued (``record._start``, the entry
  without the commit). Each entry is followed by the block's exit, outside the clock.

Variants alternate inside each round and rounds repeat; the table shows medians.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import _common
from _common import Row, fmt, median, rotated

import workbench
from workbench._stats import percentile
from workbench.recorder._execution import record

__all__ = ["main"]

TARGET_RATIO = 1.05
HOLD_S = 5.0
VARIANTS = ("locked", "unlocked")
ENTRY_VARIANTS = ("durable", "queued")

_LOCK_HOLDER = textwrap.dedent(
    """
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    conn.execute("COMMIT")
    """
)


def _work() -> int:
    """About 1 ms of CPU: the step's own work."""
    total = 0
    deadline = time.perf_counter() + 0.001
    while time.perf_counter() < deadline:
        total += 1
    return total


def step_latencies(store: workbench.Store, seconds: float) -> list[float]:
    """Seconds per step for ``seconds`` of steps, inside one execution."""
    latencies: list[float] = []
    with workbench.record("bench_store_faults", inputs={}, store=store):
        stop = time.perf_counter() + seconds
        i = 0
        while time.perf_counter() < stop:
            begun = time.perf_counter()
            with workbench.step("work") as step:
                workbench.state("i", i)
                step.set_result(_work())
            latencies.append(time.perf_counter() - begun)
            i += 1
    return latencies


def locked_latencies(store: workbench.Store) -> list[float]:
    holder = subprocess.Popen(
        [sys.executable, "-c", _LOCK_HOLDER, str(store.path), str(HOLD_S)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    if holder.stdout.readline().strip() != "locked":
        raise RuntimeError("the lock holder did not take the write lock")
    try:
        return step_latencies(store, HOLD_S - 0.5)
    finally:
        holder.communicate(timeout=30)
        store.flush()  # the lagging rows are committed before the next variant runs


def entry_seconds(store: workbench.Store, variant: str, n: int) -> float:
    """Median seconds to enter ``record()``: durable (as it enters now), or with the row only
    queued (as it entered before)."""
    times: list[float] = []
    for i in range(n):
        block = record("bench_entry", inputs={"i": i}, store=store)
        begun = time.perf_counter()
        if variant == "durable":
            block.__enter__()
        else:
            block._start()
        times.append(time.perf_counter() - begun)
        block.__exit__(None, None, None)
    return statistics.median(times)


def main(quick: bool = False) -> list[Row]:
    rounds = 1 if quick else 3
    entry_n, entry_rounds = (200, 3) if quick else (1_000, 5)
    p50: dict[str, list[float]] = {name: [] for name in VARIANTS}
    p99: dict[str, list[float]] = {name: [] for name in VARIANTS}
    entries: dict[str, list[float]] = {name: [] for name in ENTRY_VARIANTS}
    with tempfile.TemporaryDirectory(prefix="bench-store-faults-") as tmp:
        store = workbench.Store(Path(tmp) / "faults.db")
        step_latencies(store, 0.3)  # warm-up: imports, the writer thread
        for index in range(rounds):
            for variant in rotated(VARIANTS, index):
                values = (
                    locked_latencies(store)
                    if variant == "locked"
                    else step_latencies(store, HOLD_S - 0.5)
                )
                p50[variant].append(percentile(values, 0.50) * 1e3)
                p99[variant].append(percentile(values, 0.99) * 1e3)
                print(
                    f"  {variant}: {len(values)} steps, p50 {p50[variant][-1]:.3f} ms, "
                    f"p99 {p99[variant][-1]:.3f} ms, max {max(values) * 1e3:.1f} ms",
                    flush=True,
                )
        entry_store = workbench.Store(Path(tmp) / "entry.db")
        entry_seconds(entry_store, "durable", 50)  # warm-up
        for index in range(entry_rounds):
            for variant in rotated(ENTRY_VARIANTS, index):
                entries[variant].append(entry_seconds(entry_store, variant, entry_n) * 1e6)
        entry_store.close()
        store.close()

    rows: list[Row] = []
    for label, values in (("p50", p50), ("p99", p99)):
        ours, peer = median(values["locked"]), median(values["unlocked"])
        rows.append(
            Row(
                "store_faults",
                f"step latency {label}, write lock held {HOLD_S:.0f} s by another process "
                f"(peer: unlocked store)",
                fmt(ours, 3, " ms"),
                fmt(peer, 3, " ms"),
                f"{ours / peer:.2f}x",
                f"<= {TARGET_RATIO}x",
                ours / peer <= TARGET_RATIO,
            )
        )
    durable, queued = median(entries["durable"]), median(entries["queued"])
    print(
        f"  record() entry: {durable:.1f} us with the execution committed, {queued:.1f} us "
        f"with it only queued (before); durability costs {durable - queued:.1f} us",
        flush=True,
    )
    rows.append(
        Row(
            "store_faults",
            f"record() entry, execution durable at return, N={entry_n:,} "
            f"(peer: today's entry before, row only queued)",
            fmt(durable, 1, " us"),
            fmt(queued, 1, " us"),
            f"{durable / queued:.2f}x (+{durable - queued:.0f} us)",
            "-",
            None,
        )
    )
    return rows


if __name__ == "__main__":
    _common.cli(__doc__ or "", main)
