"""CPU profiles: py-spy attached to a process, or an in-process sampler when it can't.

py-spy attaches to this very process (trigger-based profiles) or to the Python process of a
command that ``workbench profile -- CMD`` runs, with its subprocesses (``_command``).

py-spy runs beside the program (``--nonblocking``: it reads the interpreter's memory without
pausing it; blocking mode stops every thread per sample and costs 5-15x on torch-like
programs) and writes a speedscope file. Attaching needs ptrace: where the Yama LSM allows only
ancestors to trace (``ptrace_scope`` 1) the process first names any tracer as allowed with
``prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY)``. When py-spy is missing or the kernel refuses
it, ``cpu_sampler: auto`` falls back to :class:`InProcessSampler` — a thread that reads
``sys._current_frames()`` — and the profile's notes say so and why; ``cpu_sampler: py-spy``
makes that a :class:`ProfilerError` instead.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType

import orjson

from workbench.exceptions import ProfilerError
from workbench.profiling._base import Capture
from workbench.profiling._bootstrap import allow_any_tracer
from workbench.profiling._summary import summarise_speedscope
from workbench.records import ProfileSummary

__all__ = ["CpuProfile", "InProcessSampler", "allow_ptrace", "find_py_spy", "profiler_threads"]

_ATTACH_TIMEOUT_S = 5.0
_STOP_TIMEOUT_S = 10.0
_HANDLER_GRACE_S = 0.05

#: Thread idents of workbench's own profiling threads (watchdog, sampler): never sampled.
profiler_threads: set[int] = set()
_ptrace_allowed = False


def find_py_spy(configured: str | None = None) -> str | None:
    """The py-spy executable: ``configured``, else beside the interpreter, else on PATH."""
    if configured is not None:
        return configured if os.access(configured, os.X_OK) else None
    beside = Path(sys.executable).parent / ("py-spy.exe" if os.name == "nt" else "py-spy")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("py-spy")


def allow_ptrace() -> str | None:
    """Let a tracer that is not our ancestor (py-spy, our child) attach, where Yama needs it.

    Returns a note when the kernel's policy cannot be relaxed from here, else ``None``.
    """
    global _ptrace_allowed
    if _ptrace_allowed:
        return None
    note = allow_any_tracer()
    _ptrace_allowed = note is None
    return note


class CpuProfile(Capture):
    """A CPU profile of a whole process, as a speedscope file at ``path``.

    ``pid`` is this process by default; another one (a profiled command's) is sampled with
    its subprocesses, and never falls back to sampling in-process: that process must do it.
    """

    kind = "cpu"

    def __init__(
        self,
        path: Path,
        *,
        top: int,
        rate: int = 100,
        duration_s: float | None = None,
        sampler: str = "auto",
        py_spy_path: str | None = None,
        pid: int | None = None,
    ) -> None:
        super().__init__(path, top=top)
        self.pid = os.getpid() if pid is None else pid
        self.rate = rate
        self.duration_s = duration_s
        self.sampler_choice = sampler
        self.py_spy_path = py_spy_path
        #: ``py-spy`` or ``in-process`` once started.
        self.sampler: str | None = None
        self.notes: list[str] = []
        self._process: subprocess.Popen[bytes] | None = None
        self._ready = threading.Event()
        self._output: list[str] = []
        self._errors: list[str] = []
        self._in_process: InProcessSampler | None = None
        self._readers: list[threading.Thread] = []

    # -- starting ---------------------------------------------------------------------------

    def start(self) -> None:
        self._mark_started()
        if self.sampler_choice != "in-process":
            refusal = self.attach()
            if refusal is None:
                self.sampler = "py-spy"
                return
            if self.sampler_choice == "py-spy":
                raise ProfilerError(
                    f"cannot profile CPU with py-spy: {refusal}. Install it (pip install "
                    f"py-spy), allow ptrace (run as root, give CAP_SYS_PTRACE, or set "
                    f"kernel.yama.ptrace_scope to 0 or 1), or set profiling.cpu_sampler to "
                    f"auto or in-process"
                )
            self.notes.append(
                f"py-spy could not be used ({refusal}); sampled in-process over "
                f"sys._current_frames() instead, which holds the GIL for each sample, "
                f"cannot see native frames, and tells idle threads by their CPU clocks"
            )
        self._in_process = InProcessSampler(self.rate)
        self._in_process.start()
        self.sampler = "in-process"
        self.first_sample_at = self._in_process.first_sample_at()

    def attach(self) -> str | None:
        """Start py-spy on ``pid``; the reason it cannot be used, or ``None`` once it samples."""
        if self.started_at is None:
            self._mark_started()
        executable = find_py_spy(self.py_spy_path)
        if executable is None:
            where = self.py_spy_path or "beside the interpreter or on PATH"
            return f"no py-spy executable {where}"
        own = self.pid == os.getpid()
        policy = allow_ptrace() if own else None  # another process allows it for itself
        command = [
            executable,
            "record",
            "--pid",
            str(self.pid),
            "--nonblocking",
            "--format",
            "speedscope",
            "--output",
            str(self.path),
            "--rate",
            str(self.rate),
            "--function",  # aggregate by function (its first line), as the summary does
        ]
        if self.duration_s is not None:
            command += ["--duration", str(max(1, math.ceil(self.duration_s)))]
        if not own:
            command.append("--subprocesses")  # a command's workers are the command's too
        try:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # the terminal's Ctrl-C is the program's, not py-spy's
            )
        except OSError as exc:
            return f"{executable} could not be started ({exc.strerror})"
        process = self._process
        for stream, lines in ((process.stdout, self._output), (process.stderr, self._errors)):
            reader = threading.Thread(
                target=self._read,
                args=(stream, lines),
                name="workbench-profiler-py-spy",
                daemon=True,
            )
            reader.start()
            self._readers.append(reader)
        # py-spy prints "Sampling process ..." once it has attached and read the interpreter;
        # before that it has sampled nothing.
        deadline = time.perf_counter() + _ATTACH_TIMEOUT_S
        while not self._ready.wait(0.005):
            if process.poll() is not None or time.perf_counter() > deadline:
                self._kill()
                reason = _last_error(self._errors) or "it exited without sampling"
                if policy is not None:
                    reason = f"{reason}; {policy}"
                return f"py-spy could not attach to process {self.pid}: {reason}"
        return None

    def _read(self, stream: object, lines: list[str]) -> None:
        for raw in stream:  # type: ignore[attr-defined]
            line = raw.decode(errors="replace").rstrip()
            lines.append(line)
            if "Sampling process" in line and not self._ready.is_set():
                self.first_sample_at = time.perf_counter()
                self._ready.set()

    # -- stopping ---------------------------------------------------------------------------

    def stop(self) -> ProfileSummary:
        if self._in_process is not None:
            self._in_process.stop(self.path)
            return summarise_speedscope(
                self.path, sampler="in-process", top=self.top, notes=self.notes
            )
        process = self._process
        if process is None:
            raise ProfilerError("the CPU profile was stopped before it started")
        if process.poll() is None:
            # py-spy writes its file when interrupted, as on Ctrl-C; but it prints that it
            # samples just before it installs that handler, and an interrupt in between kills
            # it without a file. Give it a moment when the profile is that short.
            since = time.perf_counter() - (self.first_sample_at or 0.0)
            if since < _HANDLER_GRACE_S:
                time.sleep(_HANDLER_GRACE_S - since)
            process.send_signal(signal.SIGINT)
        try:
            process.wait(_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._kill()
        self._close()
        if not self.path.is_file():
            reason = _last_error(self._errors) or "it wrote no file"
            raise ProfilerError(f"py-spy did not write the CPU profile {self.path}: {reason}")
        notes = list(self.notes)
        errors = _sampling_errors(self._output)
        if errors:
            notes.append(f"py-spy failed to read {errors} samples (the process was changing)")
        return summarise_speedscope(self.path, sampler="py-spy", top=self.top, notes=notes)

    def abandon(self) -> None:
        """Stop sampling without a profile (the caller failed)."""
        if self._in_process is not None:
            self._in_process.stop(self.path)
        self._kill()

    def _kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._close()

    def _close(self) -> None:
        """Read py-spy's output to its end and close the pipes."""
        for reader in self._readers:
            reader.join(_STOP_TIMEOUT_S)
        self._readers.clear()
        if self._process is not None:
            for stream in (self._process.stdout, self._process.stderr):
                if stream is not None:
                    stream.close()


def _last_error(lines: list[str]) -> str | None:
    for line in lines:
        if line.startswith("Error:"):
            return line.removeprefix("Error:").strip()
    meaningful = [line for line in lines if line.strip() and not line.startswith(" ")]
    return meaningful[0].strip() if meaningful else None


def _sampling_errors(lines: list[str]) -> int:
    for line in lines:
        if "Errors:" in line:
            try:
                return int(line.rsplit("Errors:", 1)[1].split()[0])
            except (ValueError, IndexError):
                return 0
    return 0


# -- the in-process fallback ------------------------------------------------------------------

# A thread that used less than this share of the time since the previous sample is idle.
_BUSY_SHARE = 0.05
# Where per-thread CPU clocks are missing, a thread whose innermost Python frame is one of these
# is taken to be waiting, not running (py-spy asks the OS; from inside, the code tells).
_IDLE = frozenset(
    {
        ("threading.py", "wait"),
        ("threading.py", "_wait_for_tstate_lock"),
        ("threading.py", "join"),
        ("queue.py", "get"),
        ("selectors.py", "select"),
        ("socket.py", "accept"),
        ("socket.py", "readinto"),
        ("ssl.py", "read"),
        ("ssl.py", "recv_into"),
        ("socketserver.py", "serve_forever"),
        ("subprocess.py", "_try_wait"),
        ("subprocess.py", "wait"),
        ("connection.py", "wait"),
    }
)


class InProcessSampler:
    """Samples every thread's Python stack ``rate`` times a second from a thread of its own."""

    def __init__(self, rate: int) -> None:
        self.interval = 1.0 / rate
        self._stop = threading.Event()
        self._first = threading.Event()
        self._first_at: float | None = None
        # Per thread, every sample in order (a stack is interned: repeated ones share memory).
        self._samples: dict[str, tuple[list[tuple[int, ...]], list[float]]] = {}
        self._interned: dict[tuple[int, ...], tuple[int, ...]] = {}
        self._frames: dict[tuple[str, str, int], int] = {}
        self._cpu: dict[int, float] = {}  # each thread's CPU clock at the previous sample
        self._thread = threading.Thread(
            target=self._run, name="workbench-profiler-sampler", daemon=True
        )
        self._started = 0.0
        self._ended = 0.0

    def start(self) -> None:
        self._started = time.perf_counter()
        self._thread.start()
        self._first.wait(1.0)

    def first_sample_at(self) -> float | None:
        return self._first_at

    def _run(self) -> None:
        me = threading.get_ident()
        profiler_threads.add(me)
        names = {t.ident: t.name for t in threading.enumerate()}
        previous = time.perf_counter() - self.interval
        try:
            while True:
                now = time.perf_counter()
                weight = now - previous
                previous = now
                frames = sys._current_frames()
                for ident, frame in frames.items():
                    if ident in profiler_threads:
                        continue
                    idle = self._idle(ident, weight)
                    if idle:
                        continue
                    stack = self._stack(frame, waiting_known=idle is not None)
                    if stack is None:
                        continue
                    if ident not in names:
                        names = {t.ident: t.name for t in threading.enumerate()}
                    thread = f'Thread {ident} "{names.get(ident, "?")}"'
                    samples, weights = self._samples.setdefault(thread, ([], []))
                    samples.append(self._interned.setdefault(stack, stack))
                    weights.append(weight)
                del frames
                if self._first_at is None:
                    self._first_at = time.perf_counter()
                    self._first.set()
                if self._stop.wait(self.interval):
                    return
        finally:
            profiler_threads.discard(me)

    def _idle(self, ident: int, elapsed: float) -> bool | None:
        """Whether thread ``ident`` used (almost) no CPU since the last sample; ``None`` when
        that cannot be told (first sample, no per-thread clocks): the code it waits in tells.

        The OS's thread state would not do: while this sampler holds the GIL, every other
        Python thread is asleep waiting for it, busy ones included.
        """
        try:
            used = time.clock_gettime(time.pthread_getcpuclockid(ident))
        except (AttributeError, OSError, OverflowError):
            return None
        last = self._cpu.get(ident)
        self._cpu[ident] = used
        if last is None:
            return None
        return used - last < _BUSY_SHARE * elapsed

    def _stack(self, frame: FrameType | None, *, waiting_known: bool) -> tuple[int, ...] | None:
        if frame is None:
            return None
        code = frame.f_code
        if not waiting_known and (os.path.basename(code.co_filename), code.co_name) in _IDLE:
            return None
        indexes: list[int] = []
        while frame is not None:
            code = frame.f_code
            key = (code.co_name, code.co_filename, code.co_firstlineno)
            index = self._frames.get(key)
            if index is None:
                index = self._frames[key] = len(self._frames)
            indexes.append(index)
            frame = frame.f_back
        indexes.reverse()  # speedscope lists a stack from its root
        return tuple(indexes)

    def stop(self, path: Path) -> None:
        """Stop sampling and write a speedscope file (py-spy's shape) at ``path``."""
        self._stop.set()
        self._thread.join()
        self._ended = time.perf_counter()
        frames = [
            {"name": name, "file": file, "line": line, "col": None}
            for (name, file, line), _ in sorted(self._frames.items(), key=lambda item: item[1])
        ]
        document = {
            "$schema": "https://www.speedscope.app/file-format-schema.json",
            "exporter": "workbench in-process sampler",
            "name": "workbench CPU profile",
            "activeProfileIndex": 0,
            "shared": {"frames": frames},
            "profiles": [
                {
                    "type": "sampled",
                    "name": thread,
                    "unit": "seconds",
                    "startValue": 0.0,
                    "endValue": self._ended - self._started,
                    "samples": [list(stack) for stack in samples],
                    "weights": weights,
                }
                for thread, (samples, weights) in self._samples.items()
            ],
        }
        path.write_bytes(orjson.dumps(document))
