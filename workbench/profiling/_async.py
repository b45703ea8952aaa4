"""Async I/O profiles: yappi with the wall clock, coroutine-aware, saved as a pstat file.

Owns yappi in this process (:class:`AsyncProfile`) and reading any yappi pstat file back into a
summary (:func:`summarise_pstat`), which ``workbench profile --async -- CMD`` uses for the
file its bootstrap wrote in the command's process.

The wall clock is the point: an awaiting coroutine uses no CPU, so only wall time shows where
an async pipeline waits (yappi's CPU clock also costs ~46x more here). yappi attributes a
coroutine's time across its suspensions. Functions are ranked by total wall time, which is where
the waiting shows; workbench's own threads (store writer, profilers, test server) are left out.

yappi installs the interpreter's profile hook, which memray also uses: it holds
``_base.INTERPRETER_HOOK`` while it runs.
"""

from __future__ import annotations

import pstats
import threading
import time
from pathlib import Path
from typing import Any

from workbench.exceptions import ProfilerError
from workbench.profiling._base import Capture, release_hook, take_hook
from workbench.profiling._bootstrap import OWN_THREAD_PREFIX
from workbench.records import FunctionStat, ProfileSummary

__all__ = ["AsyncProfile", "load_yappi", "summarise_pstat"]

_WALL_CLOCK_NOTE = "wall-clock time: a coroutine's total includes the time it spent awaiting"


def load_yappi() -> Any:
    try:
        import yappi
    except ImportError as exc:
        raise ProfilerError(
            f"async I/O profiles need yappi, which is not installed ({exc}); install it with "
            f"pip install 'pipeline-workbench[profiling]'"
        ) from exc
    return yappi


class AsyncProfile(Capture):
    """Wall time per function (coroutines included) of the program's threads."""

    kind = "async"

    def __init__(self, path: Path, *, top: int) -> None:
        super().__init__(path, top=top)
        self._yappi: Any = None
        self._names: dict[int, str] = {}

    def start(self) -> None:
        yappi = load_yappi()
        take_hook("async I/O profiler (yappi)")
        if yappi.is_running():
            release_hook()
            raise ProfilerError(
                "cannot start the async I/O profiler: yappi is already running in this "
                "process (started by the program itself); stop it, or drop async_io from the "
                "trigger's profile_type"
            )
        yappi.clear_stats()
        # Contexts named after their threads, so that workbench's own threads can be left out
        # even when they ended before the profile did.
        yappi.set_context_name_callback(_thread_name)
        yappi.set_clock_type("wall")
        yappi.start(builtins=False, profile_threads=True)
        self._yappi = yappi
        self._mark_started()
        self.first_sample_at = self.started_at

    def stop(self) -> ProfileSummary:
        yappi = self._yappi
        if yappi is None:
            raise ProfilerError("the async I/O profile was stopped before it started")
        self._yappi = None
        try:
            yappi.stop()
            duration = time.perf_counter() - (self.started_at or time.perf_counter())
            own = {
                ts.id for ts in yappi.get_thread_stats() if ts.name.startswith(OWN_THREAD_PREFIX)
            }
            stats = yappi.get_func_stats(filter_callback=lambda s: s.ctx_id not in own)
            stats.save(str(self.path), type="pstat")
        except (OSError, RuntimeError) as exc:
            raise ProfilerError(
                f"yappi could not write the async profile {self.path}: {exc}"
            ) from exc
        finally:
            yappi.clear_stats()
            yappi.set_context_name_callback(None)
            release_hook()
        return summarise_pstat(self.path, top=self.top, duration_s=duration)


def summarise_pstat(path: Path, *, top: int, duration_s: float) -> ProfileSummary:
    """The summary of yappi's pstat file: functions ranked by total wall time, where the
    waiting shows."""
    try:
        loaded = pstats.Stats(str(path))
    except (OSError, EOFError, ValueError, TypeError) as exc:
        raise ProfilerError(
            f"cannot read the async profile {path} ({type(exc).__name__}: {exc}); yappi wrote "
            f"no usable pstat file"
        ) from exc
    stats: dict[tuple[str, int, str], tuple[Any, ...]] = loaded.stats  # type: ignore[attr-defined]
    # yappi writes (calls, non-recursive calls, self, total, callers) per function.
    ranked = sorted(stats.items(), key=lambda item: (-item[1][3], item[0][2], item[0][0]))
    functions = tuple(
        FunctionStat(name, file, line, float(own), float(total), int(calls), "s")
        for (file, line, name), (calls, _, own, total, _) in ranked[:top]
    )
    return ProfileSummary(
        kind="async",
        sampler="yappi",
        duration_s=duration_s,
        samples=sum(int(row[0]) for row in stats.values()),
        top_functions=functions,
        artifacts={"pstat": str(path)},
        notes=(_WALL_CLOCK_NOTE,),
    )


def _thread_name() -> str:
    return threading.current_thread().name
