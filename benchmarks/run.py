"""Run every workbench benchmark and print one table: ours against each peer, with targets.

``python benchmarks/run.py`` or ``python benchmarks/run.py --quick`` (smaller N, fewer
rounds). Before each benchmark it prints how long that one usually takes and how much of the
run is left: from this machine's last run (kept in ``benchmarks/.timings.json``, not committed)
or, on a first run, from a run on this project's two-core machine. Each
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
* ``bench_store`` - the PostgreSQL store against the SQLite one: spans/s until durable, a durable
  step, the first page of ``list_executions``, ``store copy`` (executions/s).
* ``bench_scrub`` - scrubbing a 10 KB log line (clean, near misses, a few secrets), against a
  gitleaks-style single regex and a plain ``re.sub`` of one key pattern.
* ``bench_pricing`` - pricing lookup per call for each provider family, against
  ``genai_prices.calc_price(..., provider_api_url=...)``.
* ``bench_export`` - ``workbench store export``/``import`` of 1,000 executions (executions/s)
  against vcrpy's YAML serializer, and whether the round trip is byte-identical.
* ``bench_ui`` - the web UI: the run list's first page over 100,000 runs against raw ``sqlite3``,
  a run of 10,000 spans and 1,000 model calls to first paint in Chromium, the diff page of two
  1,000-step runs (browser rows say so when chromium is absent).
* ``bench_experiments`` - ``replay_many`` throughput on processes (1 and 2 workers) and a Dask
  LocalCluster against a plain loop of ``replay_execution``; the summary of 1,000 runs.
* ``bench_install`` - what the pytest plugin adds to an empty session, ``import workbench``,
  against pytest-recording and ``import vcr``; the base install's packages and MB (not --quick).

The exit status is 0 even when a target is missed: the table says which, in ``met?``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import bench_bytes
import bench_capture
import bench_diff
import bench_diff_concurrent
import bench_experiments
import bench_export
import bench_ingest
import bench_install
import bench_metrics
import bench_pricing
import bench_profiling
import bench_replay
import bench_sampling
import bench_scrub
import bench_spans
import bench_store
import bench_store_faults
import bench_ui
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
    ("store", bench_store.main),
    ("scrub", bench_scrub.main),
    ("pricing", bench_pricing.main),
    ("export", bench_export.main),
    ("ui", bench_ui.main),
    ("experiments", bench_experiments.main),
    ("install", bench_install.main),
)


#: Seconds each benchmark took on this project's two-core machine with other work running
#: (full: measured on 2026-12-08, diff after its fix; quick: about a fifth), the estimate until
#: this machine has run them once.
TYPICAL_S: dict[str, tuple[float, float]] = {
    "capture": (165, 35),
    "spans": (17, 4),
    "ingest": (9, 3),
    "bytes": (4, 2),
    "diff": (75, 10),
    "diff_concurrent": (15, 5),
    "replay": (146, 25),
    "sampling": (18, 6),
    "profiling": (124, 30),
    "metrics": (58, 15),
    "store_faults": (37, 15),
    "store": (90, 30),
    "scrub": (30, 6),
    "pricing": (8, 3),
    "export": (11, 4),
    "ui": (75, 25),
    "experiments": (60, 35),
    "install": (28, 5),
}
TIMINGS = Path(__file__).with_name(".timings.json")


def _estimates(quick: bool) -> dict[str, float]:
    estimates = {name: TYPICAL_S.get(name, (60, 15))[quick] for name, _ in BENCHMARKS}
    try:
        measured = json.loads(TIMINGS.read_text())["quick" if quick else "full"]
        estimates.update({k: float(v) for k, v in measured.items() if k in estimates})
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # no earlier run here (or an unreadable file): the typical figures
    return estimates


def _keep(quick: bool, took: dict[str, float]) -> None:
    try:
        kept = json.loads(TIMINGS.read_text()) if TIMINGS.exists() else {}
        if not isinstance(kept, dict):
            kept = {}
        kept.setdefault("quick" if quick else "full", {}).update(took)
        TIMINGS.write_text(json.dumps(kept, indent=1) + "\n")
    except (OSError, ValueError, AttributeError):
        pass  # a read-only checkout: the next run estimates from the typical figures


def main(quick: bool = False) -> list[Row]:
    rows: list[Row] = []
    started = time.perf_counter()
    estimates = _estimates(quick)
    left = sum(estimates.values())
    source = "this machine's last run" if TIMINGS.exists() else "a two-core machine's run"
    print(f"about {left / 60:.0f} min in all, estimated from {source}", flush=True)
    took: dict[str, float] = {}
    for index, (name, run) in enumerate(BENCHMARKS, 1):
        print(
            f"== [{index}/{len(BENCHMARKS)}] {name}{' (quick)' if quick else ''}: usually "
            f"{estimates[name]:.0f}s; about {left / 60:.1f} min left",
            flush=True,
        )
        begun = time.perf_counter()
        rows.extend(run(quick))
        took[name] = round(time.perf_counter() - begun, 1)
        left = max(0.0, left - estimates[name])
        print(f"   {name} took {took[name]:.0f}s", flush=True)
    _keep(quick, took)
    print(f"\nall benchmarks took {time.perf_counter() - started:.0f}s\n")
    print_rows(rows)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="smaller N and fewer rounds (under a minute)"
    )
    main(parser.parse_args().quick)
