"""Run every workbench benchmark and print one table: ours against each peer, with targets.

``python benchmarks/run.py`` (about three to four minutes on two cores) or
``python benchmarks/run.py --quick`` (smaller N, fewer rounds: well under a minute). Each
benchmark runs in this one process, one after the other, and returns its rows; see each
``bench_*`` module's docstring for what it measures, how, and against which peer:

* ``bench_capture`` - capture overhead per model call, against vcrpy;
* ``bench_spans`` - cost per span, against the OpenTelemetry SDK; a durable step's cost;
* ``bench_ingest`` - sustained spans/s until flushed, against raw ``sqlite3``;
* ``bench_bytes`` - bytes per recorded model call, against a vcrpy YAML cassette;
* ``bench_diff`` - comparing two 10,000-step executions, against a plain DeepDiff;
* ``bench_diff_concurrent`` - faithful replays of a step's threaded calls compare equal;
* ``bench_replay`` - replay cost per model call, against vcrpy playback and a dict-backed transport.
* ``bench_sampling`` - an unsampled execution's step and call against no workbench; the rate.
* ``bench_profiling`` - what an armed or firing profiler costs a workload; trigger to first sample.
* ``bench_metrics`` - a metric update against raw prometheus_client; the budget check on a
  store of 1,000,000 model calls.
* ``bench_store_faults`` - step latency while another process holds the store's write lock,
  against an unlocked store; the cost of an execution durable at ``record()`` entry.
* ``bench_pricing`` - pricing lookup per call for each provider family, against
  ``genai_prices.calc_price(..., provider_api_url=...)``.
* ``bench_install`` - what the pytest plugin adds to an empty session, ``import workbench``,
  against pytest-recording and ``import vcr``; the base install's packages and MB (not --quick).

The exit status is 0 even when a target is missed: the table says which, in ``met?``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import bench_bytes
import bench_capture
import bench_diff
import bench_diff_concurrent
import bench_ingest
import bench_install
import bench_metrics
import bench_pricing
import bench_profiling
import bench_replay
import bench_sampling
import bench_spans
import bench_store_faults
from _common import Row, print_rows

__all__ = ["BENCHMARKS", "main"]

BENCHMARKS: tuple[tuple[str, Callable[[bool], list[Row]]], ...] = (
    ("capture", bench_capture.main),
    ("spans", bench_spans.main),
    ("ingest", bench_ingest.main),
    ("bytes", bench_bytes.main),
    ("diff", bench_diff.main),
    ("diff_concurrent", bench_diff_concurrent.main),
    ("replay", bench_replay.main),
    ("sampling", bench_sampling.main),
    ("profiling", bench_profiling.main),
    ("metrics", bench_metrics.main),
    ("store_faults", bench_store_faults.main),
    ("pricing", bench_pricing.main),
    ("install", bench_install.main),
)


def main(quick: bool = False) -> list[Row]:
    rows: list[Row] = []
    started = time.perf_counter()
    for name, run in BENCHMARKS:
        print(f"== {name}{' (quick)' if quick else ''}", flush=True)
        begun = time.perf_counter()
        rows.extend(run(quick))
        print(f"   {name} took {time.perf_counter() - begun:.0f}s", flush=True)
    print(f"\nall benchmarks took {time.perf_counter() - started:.0f}s\n")
    print_rows(rows)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="smaller N and fewer rounds (under a minute)"
    )
    main(parser.parse_args().quick)
