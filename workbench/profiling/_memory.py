"""Memory profiles: a memray ``Tracker`` started while the program runs.

The tracker runs in this process (trigger-based profiles), or in a profiled command's process,
started by its bootstrap (``_bootstrap``), and :meth:`MemoryProfile.summarise` reads either
capture back.

The tracker writes memray's aggregated format (a count per allocating stack rather than every
allocation: a long capture stays small), and the summary reads its high-water mark back: the
peak of the tracked heap, the functions holding the most of it, and — with ``heap_dump`` — the
largest stacks and memray's flame graph HTML. Allocations made before the tracker started are
not attributed: memray sees only what happens while it runs, and the summary says so.

memray installs the interpreter's profile hook, which yappi also uses: the tracker holds
``_base.INTERPRETER_HOOK`` while it runs, and a second tracker is a :class:`ProfilerError`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from workbench.exceptions import ProfilerError
from workbench.profiling._base import Capture, release_hook, take_hook
from workbench.profiling._summary import function_stats
from workbench.records import AllocationStack, ProfileSummary

__all__ = ["MemoryProfile", "load_memray"]

_SUPPORTED = ("linux", "darwin")
_OWN_FILES = str(Path(__file__).parent)
_NOT_ATTRIBUTED = (
    "allocations made before the profile started are not attributed: memray tracks from the "
    "moment it starts, so the peak is of what was allocated (and still held) since then"
)


def load_memray() -> Any:
    """The ``memray`` module, or a :class:`ProfilerError` saying why it cannot be used here."""
    if not sys.platform.startswith(_SUPPORTED):
        raise ProfilerError(
            f"memory profiles need memray, which runs on Linux and macOS only, not on "
            f"{sys.platform}; drop memory from profiling.types on this machine"
        )
    try:
        import memray
    except ImportError as exc:
        raise ProfilerError(
            f"memory profiles need memray, which is not installed ({exc}); install it with "
            f"pip install 'pipeline-workbench[profiling]'"
        ) from exc
    return memray


class MemoryProfile(Capture):
    """Heap allocations of every thread, from ``start()`` to ``stop()``, in memray's file."""

    kind = "memory"

    def __init__(
        self,
        path: Path,
        *,
        top: int,
        heap_dump: bool = False,
        flamegraph: bool | None = None,
        from_start: bool = False,
    ) -> None:
        super().__init__(path, top=top)
        #: The capture began with the process (``workbench profile --memory -- CMD``), so
        #: nothing the program allocated went untracked.
        self.from_start = from_start
        #: Keep the largest stacks at the high-water mark in the summary.
        self.heap_dump = heap_dump
        #: Write memray's flame graph HTML beside the capture (default: with heap_dump).
        self.flamegraph = heap_dump if flamegraph is None else flamegraph
        self._tracker: Any = None

    def start(self) -> None:
        memray = load_memray()
        take_hook("memory profiler (memray)")
        try:
            if self.path.exists():
                self.path.unlink()  # memray refuses to overwrite
            tracker = memray.Tracker(
                str(self.path), file_format=memray.FileFormat.AGGREGATED_ALLOCATIONS
            )
            tracker.__enter__()
        except (RuntimeError, OSError) as exc:
            release_hook()
            raise ProfilerError(
                f"memray could not start tracking into {self.path} ({exc}); if the program "
                f"runs a memray Tracker of its own, only one can be active per process"
            ) from exc
        self._tracker = tracker
        self._mark_started()
        self.first_sample_at = self.started_at

    def stop(self) -> ProfileSummary:
        if self._tracker is None:
            raise ProfilerError("the memory profile was stopped before it started")
        try:
            self._tracker.__exit__(None, None, None)
        finally:
            self._tracker = None
            release_hook()
        return self.summarise()

    def summarise(self) -> ProfileSummary:
        memray = load_memray()
        notes = [] if self.from_start else [_NOT_ATTRIBUTED]
        artifacts = {"memray": str(self.path)}
        try:
            reader = memray.FileReader(str(self.path))
            metadata = reader.metadata
            records = list(reader.get_high_watermark_allocation_records(merge_threads=True))
            stacks = [
                (record.size, record.n_allocations, _frames(record.stack_trace()))
                for record in records
            ]
            if self.flamegraph:
                flamegraph = self.path.with_suffix(".flamegraph.html")
                try:
                    _flamegraph(reader, records, flamegraph)
                    artifacts["flamegraph"] = str(flamegraph)
                except Exception as exc:  # memray's reporter is internal API: keep the rest
                    notes.append(f"memray's flame graph could not be written: {exc}")
            reader.close()
        except (OSError, RuntimeError, ValueError) as exc:
            raise ProfilerError(
                f"cannot read the memory profile {self.path} ({exc}); memray's file is "
                f"incomplete or damaged"
            ) from exc
        # The profiler's own bookkeeping (its thread, its files) is not the program's.
        stacks = [s for s in stacks if not any(_is_own(f) for f in s[2])]
        # A memory "function" is an allocating line (function, file, line): where the bytes
        # were asked for, as memray's own reports show it.
        stats, _, _ = function_stats(
            ((tuple(reversed(frames)), float(size), n) for size, n, frames in stacks),
            unit="B",
            top=self.top,
        )
        top_stacks: tuple[AllocationStack, ...] = ()
        if self.heap_dump:
            largest = sorted(stacks, key=lambda s: -s[0])[: self.top]
            top_stacks = tuple(AllocationStack(size, n, tuple(f)) for size, n, f in largest)
        duration = (metadata.end_time - metadata.start_time).total_seconds()
        return ProfileSummary(
            kind="memory",
            sampler="memray",
            duration_s=max(0.0, duration),
            samples=int(metadata.total_allocations),
            top_functions=tuple(stats),
            peak_bytes=int(metadata.peak_memory),
            top_stacks=top_stacks,
            artifacts=artifacts,
            notes=tuple(notes),
        )


def _is_own(frame: tuple[str, str, int]) -> bool:
    """A frame of the profiler's bookkeeping: its own modules, or the interpreter start-up's
    ``sitecustomize``, where ``workbench profile``'s bootstrap started the tracker."""
    name, file, _ = frame
    return file.startswith(_OWN_FILES) or name == "execsitecustomize"


def _frames(trace: Iterable[tuple[str, str, int]]) -> tuple[tuple[str, str, int], ...]:
    """memray's stack (innermost first) as frame keys."""
    return tuple((name, file, line) for name, file, line in trace)


def _flamegraph(reader: Any, records: list[Any], html: Path) -> None:
    """memray's own flame graph of the high-water mark, as ``memray flamegraph`` writes it
    (without its progress bar, which would land in the profiled program's terminal)."""
    from memray.reporters.flamegraph import FlameGraphReporter

    reporter = FlameGraphReporter.from_snapshot(
        records,
        memory_records=tuple(reader.get_memory_snapshots()),
        native_traces=reader.metadata.has_native_traces,
    )
    with html.open("w", encoding="utf-8") as out:
        reporter.render(
            outfile=out,
            metadata=reader.metadata,
            show_memory_leaks=False,
            merge_threads=True,
            inverted=False,
        )
