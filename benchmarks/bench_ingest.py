"""Sustained ingest: how many spans per second workbench records and commits.

What: 200,000 spans recorded as 20 executions of 10,000 ``workbench.span("s", i=i)`` each, in
one process, on one fresh store; timed from the first ``with workbench.record`` until
``store.flush()`` returns (every span committed to the SQLite file). Reported as spans/s.

The peer is the floor for the same storage: the very rows workbench wrote (read back from its
file after the run, outside the clock) inserted with raw ``sqlite3`` ``executemany`` into a
fresh file with the same schema and indexes, with the same SQL, pragmas (WAL,
``synchronous=NORMAL``) and one transaction per execution. The floor does not build rows,
hash ids or hand off between threads; the ratio says how close to it the recorder gets.

The two variants alternate, rounds repeat, the table shows medians.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import _common
from _common import Row, fmt, median, rotated

import workbench

__all__ = ["main"]

TARGET_SPANS_PER_S = 50_000
VARIANTS = ("ours", "sqlite3")
_INSERT_SPAN = (
    'INSERT OR REPLACE INTO spans ("span_id", "trace_id", "parent_span_id", "execution_id", '
    '"name", "kind", "attributes", "events", "status", "start", "end") '
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def ours(path: Path, executions: int, spans: int) -> float:
    """Seconds to record ``executions`` x ``spans`` spans until ``flush()`` returns."""
    store = workbench.Store(path)
    start = time.perf_counter()
    for number in range(executions):
        with workbench.record("bench_ingest", inputs={"execution": number}, store=store):
            for i in range(spans):
                with workbench.span("s", i=i):
                    pass
    store.flush()
    seconds = time.perf_counter() - start
    stored = store.stats()["spans"]
    store.close()
    if stored != executions * (spans + 1):  # each execution also has its root span
        raise RuntimeError(f"workbench stored {stored} spans, expected {executions * spans}")
    return seconds


def recorded_rows(path: Path) -> list[list[tuple[Any, ...]]]:
    """The span rows workbench wrote, grouped by execution, root spans left out."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT span_id, trace_id, parent_span_id, execution_id, name, kind, attributes, "
            'events, status, start, "end" FROM spans WHERE kind = ? ORDER BY start, span_id',
            ("internal",),
        ).fetchall()
    finally:
        conn.close()
    groups: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        groups.setdefault(row[3], []).append(row)
    return list(groups.values())


def floor(path: Path, groups: list[list[tuple[Any, ...]]]) -> float:
    """Seconds to insert ``groups`` with raw sqlite3, one transaction per group."""
    workbench.Store(path).close()  # the same schema and indexes, created outside the clock
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    start = time.perf_counter()
    for rows in groups:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(_INSERT_SPAN, rows)
        conn.execute("COMMIT")
    seconds = time.perf_counter() - start
    conn.close()
    return seconds


def main(quick: bool = False) -> list[Row]:
    executions, spans, rounds = (4, 5_000, 2) if quick else (20, 10_000, 3)
    total = executions * spans
    rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        folder = Path(tmp)
        ours(folder / "warm-up.db", 1, 1_000)
        groups = recorded_rows(folder / "warm-up.db")
        for index in range(rounds):
            for variant in rotated(VARIANTS, index):
                if variant == "ours":
                    path = folder / f"ours-{index}.db"
                    rates[variant].append(total / ours(path, executions, spans))
                    groups = recorded_rows(path)
                else:
                    if sum(map(len, groups)) != total:  # first round: ours has not run yet
                        path = folder / f"rows-{index}.db"
                        ours(path, executions, spans)
                        groups = recorded_rows(path)
                    seconds = floor(folder / f"floor-{index}.db", groups)
                    rates[variant].append(total / seconds)
    ours_rate, floor_rate = median(rates["ours"]), median(rates["sqlite3"])
    print(
        f"  ingest: ours {ours_rate:,.0f} spans/s, raw sqlite3 floor {floor_rate:,.0f} spans/s",
        flush=True,
    )
    return [
        Row(
            "ingest",
            f"spans/s until flush(), {executions} x {spans:,} spans (peer: raw sqlite3 floor)",
            fmt(ours_rate, 0, "/s"),
            fmt(floor_rate, 0, "/s"),
            f"{ours_rate / floor_rate:.2f}x",
            f">= {TARGET_SPANS_PER_S:,}/s",
            ours_rate >= TARGET_SPANS_PER_S,
        )
    ]


if __name__ == "__main__":
    _common.cli(__doc__ or "", main)
