"""What every profiler shares: the capture interface, the interpreter-hook lock, the folder.

A :class:`Capture` is one profiler run: ``start()`` begins it (raising :class:`ProfilerError`
if it cannot), ``stop()`` ends it, writes its artifact at ``path`` and returns its summary. The
watchdog owns when; this module owns nothing about triggers or the store.

memray and yappi both install the interpreter's profile hook (``PyEval_SetProfile``): two of
them at once would each silently lose events to the other, so :data:`INTERPRETER_HOOK` lets
only one run at a time. py-spy reads the process from outside and the in-process sampler reads
``sys._current_frames()``: neither takes the lock.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from workbench.exceptions import ProfilerError
from workbench.records import ProfileSummary

__all__ = [
    "INTERPRETER_HOOK",
    "Capture",
    "prepare_folder",
    "release_hook",
    "take_hook",
]

#: Held by the memory (memray) or async (yappi) profiler while it runs.
INTERPRETER_HOOK = threading.Lock()
_holder: list[str] = []  # who holds INTERPRETER_HOOK, for the error message


def take_hook(who: str) -> None:
    """Take :data:`INTERPRETER_HOOK` for ``who`` or raise :class:`ProfilerError` naming the
    profiler that has it."""
    if not INTERPRETER_HOOK.acquire(blocking=False):
        holder = _holder[0] if _holder else "another profiler"
        raise ProfilerError(
            f"cannot start the {who}: {holder} is already running in this process, and memray "
            f"and yappi share one interpreter hook, so only one memory or async profiler runs "
            f"at a time; the execution goes on unprofiled by it. Give the triggers of memory "
            f"and async_io profiles conditions that do not hold together"
        )
    _holder[:] = [who]


def release_hook() -> None:
    _holder.clear()
    INTERPRETER_HOOK.release()


def prepare_folder(folder: Path) -> Path:
    """Create ``folder`` if needed and check that files can be written there."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ProfilerError(
            f"cannot create the profiles folder {folder} ({exc.strerror}); set "
            f"profiling.output_dir in workbench.yaml to a writable folder"
        ) from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ProfilerError(
            f"the profiles folder {folder} is not writable; set profiling.output_dir in "
            f"workbench.yaml to a writable folder, or fix its permissions"
        )
    return folder


class Capture:
    """One run of one profiler, writing its artifact at ``path``."""

    #: ``cpu``, ``memory`` or ``async`` (the kind stored on the profile).
    kind = ""

    def __init__(self, path: Path, *, top: int) -> None:
        self.path = path
        self.top = top
        #: ``time.perf_counter()`` when the first sample was taken (or tracking began).
        self.first_sample_at: float | None = None
        self.started_at: float | None = None

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> ProfileSummary:
        raise NotImplementedError

    def _mark_started(self) -> None:
        self.started_at = time.perf_counter()
