"""Where recording a model call spends its time: a cProfile of the capture path.

What: N = 1,000 distinct chat completions through the real ``openai`` SDK against a loopback
:class:`workbench.testing.ModelServer`, inside one ``workbench.record`` (flush included), under
``cProfile`` - once on the calling thread, and once on the store's writer thread (where the
response is analysed, priced, compressed and written). Prints, per thread, the functions
defined under ``workbench/`` with the most self time (``tottime``), and their cumulative time.

There is no peer here: this is the tool behind the numbers of ``bench_capture``. Run it with
``python benchmarks/profile_capture.py [--quick] [--top 15]``; it is not part of ``run.py``.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import _common
import openai

import workbench
from workbench.capture import install as install_capture
from workbench.testing import ModelServer

__all__ = ["main"]

PACKAGE = str(_common.ROOT / "workbench")
WRITER_THREAD = "workbench-writer"


class WriterProfiler:
    """Starts a ``cProfile.Profile`` inside the store's writer thread when that thread starts."""

    def __init__(self) -> None:
        self.profile: cProfile.Profile | None = None

    def hook(self, frame: FrameType, event: str, arg: Any) -> None:
        sys.setprofile(None)  # only the first event of each new thread lands here
        if threading.current_thread().name == WRITER_THREAD and self.profile is None:
            self.profile = cProfile.Profile()
            self.profile.enable()

    def stop(self) -> list[tuple[str, tuple[Any, ...]]]:
        """Queued as deferred work, so it runs on the writer thread; it writes no rows."""
        if self.profile is not None:
            self.profile.disable()
        return []


def top_workbench(profile: cProfile.Profile, top: int) -> list[tuple[str, int, float, float]]:
    """(function, calls, self seconds, cumulative seconds) for ``workbench/`` functions."""
    stats = pstats.Stats(profile)
    entries: list[tuple[str, int, float, float]] = []
    for (filename, line, name), (_, calls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        if filename.startswith(PACKAGE):
            where = f"{Path(filename).relative_to(_common.ROOT)}:{line} {name}"
            entries.append((where, calls, tottime, cumtime))
    entries.sort(key=lambda entry: entry[2], reverse=True)
    return entries[:top]


def print_top(title: str, profile: cProfile.Profile | None, n: int, top: int) -> None:
    print(f"\n{title}")
    if profile is None:
        print("  (not profiled)")
        return
    total = sum(entry[2] for entry in top_workbench(profile, 10_000))
    print(f"  self time in workbench/: {total * 1e3:.1f} ms = {total / n * 1e6:.1f} us/call")
    print(f"  {'self us/call':>12} {'cum us/call':>12} {'calls':>7}  function")
    for where, calls, tottime, cumtime in top_workbench(profile, top):
        print(f"  {tottime / n * 1e6:12.2f} {cumtime / n * 1e6:12.2f} {calls:7d}  {where}")


def main(n: int = 1_000, top: int = 15) -> None:
    writer = WriterProfiler()
    with (
        tempfile.TemporaryDirectory(prefix="profile-capture-") as tmp,
        ModelServer() as server,
        openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0) as client,
    ):
        install_capture()

        def calls(prefix: str, count: int) -> None:
            for i in range(count):
                client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": f"{prefix} {i:07d}: llama diets?"}],
                )

        calls("warm-up", 50)
        store = workbench.Store(Path(tmp) / "profile.db")
        threading.setprofile(writer.hook)  # the writer thread starts at the store's first row
        caller = cProfile.Profile()
        start = time.perf_counter()
        caller.enable()
        with workbench.record("profile_capture", inputs={"n": n}, store=store):
            calls("profiled", n)
        caller.disable()
        elapsed = time.perf_counter() - start
        threading.setprofile(None)
        store.defer(writer.stop)  # runs on the writer thread, where its profiler must stop
        store.close()
    print(f"{n} recorded calls in {elapsed:.2f}s under cProfile ({elapsed / n * 1e3:.3f} ms/call)")
    print_top("calling thread, workbench/ functions by self time:", caller, n, top)
    print_top("writer thread, workbench/ functions by self time:", writer.profile, n, top)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 calls instead of 1,000")
    parser.add_argument("--top", type=int, default=15, help="functions to list per thread")
    args = parser.parse_args()
    main(200 if args.quick else 1_000, args.top)
