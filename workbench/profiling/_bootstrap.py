"""The profiler bootstrap that ``workbench profile -- CMD`` puts into CMD's Python process.

Owns what happens inside the profiled command, and only that: ``workbench profile`` (see
``_command``) puts a folder holding a ``sitecustomize.py`` first on ``PYTHONPATH``, and that
file runs this one by path (:func:`sitecustomize_source`), as interpreter start-up runs any
``sitecustomize``. It imports nothing from workbench, so that profiling a plain script neither
slows its start by workbench's own import nor puts workbench's allocations in its heap profile;
the in-process CPU sampler is the one exception, imported only when py-spy cannot be used.

In the first Python process of the command (it claims the job with an exclusive file; later
ones, and any it starts, are left alone), before the program's first line, it:

* hands the ``sitecustomize`` it shadows its turn, and takes its folder off the paths again;
* for py-spy, lets a tracer that is not its ancestor attach (Yama's ``ptrace_scope`` 1), says
  hello with its pid and waits until the parent's py-spy samples (or tells it to sample itself);
* starts memray's ``Tracker`` (on a short-lived thread: started in a frame that then returns,
  memray loses the stacks of the thread it was started on) or yappi on the wall clock;
* stops them after ``duration`` seconds or when the interpreter exits, writing the artifacts.

It reports each stage as one JSON line appended to the ``report`` file. The parent reads the
artifacts back and summarises them; nothing here raises into the program being profiled.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = [
    "ENV_BOOTSTRAP",
    "OWN_THREAD_PREFIX",
    "RUN_NAME",
    "allow_any_tracer",
    "sitecustomize_source",
]

#: JSON of the bootstrap's instructions (see :func:`main`).
ENV_BOOTSTRAP = "WORKBENCH_PROFILE_BOOTSTRAP"
#: ``__name__`` this file runs under when started by the generated ``sitecustomize``.
RUN_NAME = "workbench_profile_bootstrap"
#: The names of workbench's own threads start with this; profiles leave them out.
OWN_THREAD_PREFIX = "workbench-"

_PR_SET_PTRACER = 0x59616D61
_PR_SET_PTRACER_ANY = ctypes.c_ulong(-1).value
_GO_POLL_S = 0.002
_GO_TIMEOUT_S = 10.0
_THREAD_NAME = "workbench-profiler-bootstrap"


def sitecustomize_source() -> str:
    """The text of the ``sitecustomize.py`` that runs this file at interpreter start-up."""
    return (
        '"""Written by `workbench profile`: runs its profiler bootstrap in this process."""\n'
        "import runpy\n"
        f"runpy.run_path({os.path.abspath(__file__)!r}, run_name={RUN_NAME!r})\n"
    )


def allow_any_tracer() -> str | None:
    """Let a tracer that is not our ancestor (py-spy) attach, where Yama's ptrace_scope needs it.

    Returns a note when the kernel's policy cannot be relaxed from here, else ``None``.
    """
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as file:
            scope = file.read().strip()
    except OSError:
        return None  # no Yama (or not Linux): ordinary ptrace rules apply
    if scope == "1":
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_PTRACER, ctypes.c_ulong(_PR_SET_PTRACER_ANY), 0, 0, 0) != 0:
                return f"prctl(PR_SET_PTRACER) failed: {os.strerror(ctypes.get_errno())}"
        except (OSError, AttributeError) as exc:
            return f"prctl(PR_SET_PTRACER) is not available: {exc}"
    if scope in ("2", "3"):
        return f"kernel.yama.ptrace_scope is {scope}: only a privileged tracer may attach"
    return None


class _Report:
    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, "pid": os.getpid(), "at": time.time(), **fields})
        try:
            with open(self.path, "a", encoding="utf-8") as file:
                file.write(line + "\n")
        except OSError:
            pass  # the parent says the profile is missing; the program must go on regardless


class _Profilers:
    """What runs in this process, and the one way they stop (timer or exit, first wins)."""

    def __init__(self, plan: dict[str, Any], report: _Report) -> None:
        self.plan = plan
        self.report = report
        self.pid = os.getpid()
        self.started_at = time.perf_counter()
        self.stops: list[tuple[str, Callable[[], None]]] = []
        self._lock = threading.Lock()
        self._stopped = False

    def start(self) -> None:
        starters = {
            "cpu": self._start_sampler,
            "memory": self._start_memray,
            "async": self._start_yappi,
        }
        for kind, path in self.plan["in_process"].items():
            try:
                starters[kind](path)
            except Exception as exc:  # the program runs unprofiled by it, and the parent says so
                self.report("failed", kind=kind, error=_describe(kind, exc))
            else:
                self.report("started", kind=kind)
        atexit.register(self.stop)
        duration = self.plan.get("duration")
        if duration is not None and self.stops:
            timer = threading.Timer(float(duration), self.stop)
            timer.name = _THREAD_NAME
            timer.daemon = True
            timer.start()

    def stop(self) -> None:
        if os.getpid() != self.pid:
            return  # a forked child inherited the exit hook, not the profilers
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        duration = time.perf_counter() - self.started_at
        for kind, stop in self.stops:
            try:
                stop()
            except Exception as exc:
                self.report("failed", kind=kind, error=_describe(kind, exc))
            else:
                self.report("stopped", kind=kind, duration_s=duration)

    def _start_memray(self, path: str) -> None:
        import memray

        tracker = memray.Tracker(path, file_format=memray.FileFormat.AGGREGATED_ALLOCATIONS)
        failure: list[BaseException] = []

        def enter() -> None:
            try:
                tracker.__enter__()
            except BaseException as exc:
                failure.append(exc)

        starter = threading.Thread(target=enter, name=_THREAD_NAME)
        starter.start()
        starter.join()
        if failure:
            raise failure[0]
        self.stops.append(("memory", lambda: tracker.__exit__(None, None, None)))

    def _start_yappi(self, path: str) -> None:
        import yappi

        # Contexts named after their threads, so that workbench's own can be left out.
        yappi.set_context_name_callback(lambda: threading.current_thread().name)
        yappi.set_clock_type("wall")
        yappi.start(builtins=False, profile_threads=True)

        def stop() -> None:
            yappi.stop()
            own = {
                ts.id for ts in yappi.get_thread_stats() if ts.name.startswith(OWN_THREAD_PREFIX)
            }
            stats = yappi.get_func_stats(
                filter_callback=lambda s: s.ctx_id not in own and s.module != __file__
            )
            stats.save(path, type="pstat")

        self.stops.append(("async", stop))

    def _start_sampler(self, path: str) -> None:
        # py-spy could not be used: the one import of workbench here, paid only in this case.
        from pathlib import Path

        from workbench.profiling._cpu import InProcessSampler

        sampler = InProcessSampler(int(self.plan.get("rate", 100)))
        sampler.start()
        self.stops.append(("cpu", lambda: sampler.stop(Path(path))))


def _describe(kind: str, exc: BaseException) -> str:
    if isinstance(exc, ImportError):
        tool = {"cpu": "workbench", "memory": "memray", "async": "yappi"}[kind]
        return (
            f"{tool} cannot be imported by {sys.executable}, the Python that ran the command "
            f"({exc}); install pipeline-workbench[profiling] into that environment"
        )
    return f"{type(exc).__name__}: {exc}"


def _claim(path: str) -> bool:
    """Whether this process is the first of the command to get here (it profiles; no other)."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except OSError:
        return False
    return True


def _restore_environment(plan: dict[str, Any]) -> None:
    """Leave the processes this one starts, and its own imports, as they would have been."""
    site_dir = os.path.abspath(plan["site_dir"])
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != site_dir]
    previous = plan.get("pythonpath")
    if previous is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = previous
    # The sitecustomize this one shadows (a distribution's, a virtualenv's) still runs, and
    # its failure is reported as site.py would, not taken for the profiler's.
    ours = sys.modules.pop("sitecustomize", None)
    try:
        import sitecustomize  # noqa: F401
    except ImportError as exc:
        if ours is not None:
            sys.modules["sitecustomize"] = ours
        if exc.name != "sitecustomize":  # it exists, and failed inside
            print(f"Error in sitecustomize: {type(exc).__name__}: {exc}", file=sys.stderr)
    except Exception as exc:
        print(f"Error in sitecustomize: {type(exc).__name__}: {exc}", file=sys.stderr)


def _wait_for_go(plan: dict[str, Any], report: _Report) -> None:
    """Say hello, then wait until the parent's py-spy samples this process (or gave up on it,
    and asked this process to sample itself)."""
    go = plan["go"]
    note = allow_any_tracer()
    report("hello", python=sys.executable, ptrace=note)
    deadline = time.perf_counter() + _GO_TIMEOUT_S
    while not os.path.exists(go):
        if time.perf_counter() > deadline:
            report("failed", kind="cpu", error="py-spy did not attach within 10 s")
            return
        time.sleep(_GO_POLL_S)
    with open(go, encoding="utf-8") as file:
        answer = file.read().strip()
    if answer:  # py-spy was refused: sample in-process into the file named
        plan["in_process"]["cpu"] = answer


def main() -> None:
    text = os.environ.pop(ENV_BOOTSTRAP, None)
    if not text:
        return
    plan: dict[str, Any] = json.loads(text)
    _restore_environment(plan)
    if not _claim(plan["claim"]):
        return
    report = _Report(plan["report"])
    if plan.get("go"):
        _wait_for_go(plan, report)
    _Profilers(plan, report).start()


if __name__ == RUN_NAME:
    try:
        main()
    except Exception as exc:  # never fail the program for its profiler
        print(f"workbench profile: the profiler bootstrap failed: {exc}", file=sys.stderr)
