"""Where an experiment's replays run: ``inline``, ``processes`` or ``dask``.

Each engine takes the :class:`RunTask` list, hands every finished
:class:`~workbench.records.ExperimentRun` to a callback as it arrives, and stops handing out
new tasks once :class:`Stop` is requested (Ctrl-C), waiting for the ones already running. A
task whose worker dies is sent again once; a second death makes it a failed run. What a run
does is ``_run``'s business; keeping the runs is ``_experiment``'s.

* ``inline`` replays in this process, one after the other (for debugging: breakpoints work).
* ``processes`` keeps its own small pool of spawned processes, one task at a time each, and
  watches each process's sentinel: ``concurrent.futures`` would break the whole pool, and every
  task in it, when one worker dies, and ``multiprocessing.Pool`` would wait forever for the
  dead worker's task. Each worker opens the store itself.
* ``dask`` submits the tasks to a ``distributed`` scheduler: an existing one by address, or a
  ``LocalCluster`` of ``workers`` processes started for the experiment. The scheduler itself
  reschedules a dead worker's task, once (``allowed-failures``), and reports a second death.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from typing import Any

from workbench.exceptions import (
    ConfigError,
    ExperimentError,
    MissingExtraError,
    SchedulerUnreachableError,
)
from workbench.experiments._names import ENGINES
from workbench.experiments._run import (
    RunTask,
    failed_run,
    import_entrypoints,
    replay_one,
    store_identity,
)
from workbench.records import ExperimentRun
from workbench.store import Store

__all__ = ["ENGINES", "Stop", "graceful_interrupt", "run_tasks"]

#: How often a waiting engine looks at the stop flag (a signal handler cannot wake it).
_POLL_S = 0.2

Done = Callable[[ExperimentRun], None]


class Stop:
    """Set by the first Ctrl-C: hand out no new task, let the running ones finish."""

    def __init__(self) -> None:
        self.requested = False


@contextlib.contextmanager
def graceful_interrupt() -> Iterator[Stop]:
    """The first SIGINT sets the :class:`Stop` flag instead of raising, so running replays
    finish and are kept; a second one raises ``KeyboardInterrupt`` as usual. Off the main
    thread (where Python cannot catch signals) Ctrl-C keeps its ordinary meaning."""
    stop = Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def first(signum: int, frame: Any) -> None:
        stop.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    before = signal.signal(signal.SIGINT, first)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, before)


def run_tasks(
    engine: str,
    tasks: Sequence[RunTask],
    *,
    store: Store,
    workers: int,
    entrypoints: Sequence[str],
    address: str | None,
    stop: Stop,
    done: Done,
) -> None:
    """Run ``tasks`` on ``engine``, calling ``done`` with each finished run, in this thread."""
    if engine == "inline":
        for task in tasks:
            if stop.requested:
                return
            done(replay_one(task, store))
    elif engine == "processes":
        _ProcessPool(workers, entrypoints).run(tasks, stop, done)
    elif engine == "dask":
        _run_on_dask(tasks, workers, entrypoints, address, stop, done)
    else:
        raise ConfigError(f"engine={engine!r} is not an engine; use one of {', '.join(ENGINES)}")


# -- processes ---------------------------------------------------------------------------------


@dataclass
class _Worker:
    process: subprocess.Popen[bytes]
    tasks: Connection  # we send tasks on it
    results: Connection  # we read results from it; end of file when the worker died
    task: RunTask | None = None


class _ProcessPool:
    """Worker processes started as ``python -m workbench.experiments._worker``, each sent one
    task at a time; one that dies is replaced.

    Started afresh, not forked and not by ``multiprocessing``'s spawn: each worker imports the
    code and opens the store itself, as a worker on another machine would, and the user's
    script is not imported again in every worker (spawn's ``if __name__ == "__main__"``
    trap). In a session of their own, so Ctrl-C reaches this process alone, which decides.
    """

    def __init__(self, size: int, entrypoints: Sequence[str]) -> None:
        self._entrypoints = list(entrypoints)
        self._workers: list[_Worker] = []
        try:
            for _ in range(size):
                self._workers.append(self._start())
        except BaseException:
            self._close()
            raise

    def _start(self) -> _Worker:
        task_read, task_write = os.pipe()
        result_read, result_write = os.pipe()
        env = dict(os.environ)
        # This process's import path, so the entrypoints import there as they do here.
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        try:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "workbench.experiments._worker",
                    str(task_read),
                    str(result_write),
                ],
                pass_fds=(task_read, result_write),
                env=env,
                start_new_session=True,
            )
        finally:
            os.close(task_read)
            os.close(result_write)
        worker = _Worker(
            process, Connection(task_write, readable=False), Connection(result_read, writable=False)
        )
        worker.tasks.send(("import", self._entrypoints))
        return worker

    def run(self, tasks: Sequence[RunTask], stop: Stop, done: Done) -> None:
        pending = deque(tasks)
        try:
            self._check_imports()
            while True:
                for worker in self._workers:
                    if worker.task is None and pending and not stop.requested:
                        worker.task = pending.popleft()
                        worker.tasks.send(("run", worker.task))
                busy = [w for w in self._workers if w.task is not None]
                if not busy:
                    return
                ready = wait([w.results for w in busy], timeout=_POLL_S)
                for worker in busy:
                    if worker.results in ready:
                        self._collect(worker, pending, done)
        finally:
            self._close()

    def _check_imports(self) -> None:
        for worker in self._workers:
            try:
                _, failures = worker.results.recv()
            except (EOFError, OSError):
                failures = {"(worker)": "the worker process ended while it started"}
            if failures:
                where = "; ".join(f"{path} ({why})" for path, why in failures.items())
                raise ExperimentError(
                    f"the entrypoint(s) {where} do not import in a worker process, which starts "
                    f"afresh (a function defined in a script run as __main__, or a module added "
                    f"to sys.modules by hand, is not there); make it an importable module "
                    f"(pip install -e . or PYTHONPATH), or use engine='inline' (--engine inline)"
                )

    def _collect(self, worker: _Worker, pending: deque[RunTask], done: Done) -> None:
        task = worker.task
        assert task is not None
        try:
            _, run = worker.results.recv()
        except (EOFError, OSError):
            pass
        else:
            worker.task = None
            done(run)
            return
        # The worker died under its task: that task alone is lost, and sent again once.
        code = worker.process.wait()
        self._discard(worker)
        index = self._workers.index(worker)
        self._workers[index] = replacement = self._start()
        replacement.results.recv()  # its import check: these imported before
        if task.attempt < 2:
            pending.appendleft(replace(task, attempt=task.attempt + 1))
        else:
            done(failed_run(task, f"its worker process died twice (exit code {code})"))

    @staticmethod
    def _discard(worker: _Worker) -> None:
        for conn in (worker.tasks, worker.results):
            conn.close()

    def _close(self) -> None:
        for worker in self._workers:
            with contextlib.suppress(OSError):
                worker.tasks.send(None)
        deadline = time.monotonic() + 10
        for worker in self._workers:
            try:
                worker.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
            if not worker.tasks.closed:
                self._discard(worker)


# -- dask --------------------------------------------------------------------------------------


def _run_on_dask(
    tasks: Sequence[RunTask],
    workers: int,
    entrypoints: Sequence[str],
    address: str | None,
    stop: Stop,
    done: Done,
) -> None:
    try:
        import dask
        from distributed import Client, LocalCluster, as_completed
    except ImportError as exc:
        raise MissingExtraError(
            "engine='dask' needs dask's distributed scheduler, which is not installed; install "
            "it with `pip install 'pipeline-workbench[experiments]'`"
        ) from exc
    with contextlib.ExitStack() as stack:
        if address is None:
            # A dead worker's task is run again once, then reported (KilledWorker).
            with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
                cluster = stack.enter_context(
                    LocalCluster(
                        n_workers=workers,
                        threads_per_worker=1,
                        processes=True,
                        # The scheduler's HTTP server listens even without a dashboard,
                        # on 8787 unless told: a free loopback port, so two clusters on one
                        # machine do not collide (and nothing listens beyond loopback).
                        dashboard_address="127.0.0.1:0",
                        silence_logs=logging.ERROR,
                    )
                )
            client = stack.enter_context(Client(cluster))
        else:
            client = stack.enter_context(_connected(Client, address))
        _check_dask_workers(client, tasks[0].store_path, entrypoints, address)
        slots = max(1, sum(client.nthreads().values()))
        pending = deque(tasks)
        running: dict[Any, RunTask] = {}
        completed = as_completed()

        def submit() -> None:
            while pending and len(running) < slots and not stop.requested:
                task = pending.popleft()
                future = client.submit(replay_one, task, pure=False)
                running[future] = task
                completed.add(future)

        submit()
        while running:
            try:
                future = next(completed)
            except StopIteration:
                break
            task = running.pop(future)
            try:
                done(future.result())
            except Exception as exc:  # KilledWorker: its workers died twice under it
                done(failed_run(replace(task, attempt=2), f"{type(exc).__name__}: {exc}"))
            future.release()
            submit()


@contextlib.contextmanager
def _connected(client_type: Any, address: str) -> Iterator[Any]:
    try:
        client = client_type(address, timeout=10)
    except (OSError, TimeoutError) as exc:
        raise SchedulerUnreachableError(
            f"no Dask scheduler answers at {address} ({type(exc).__name__}: {exc}); start one "
            f"(`dask scheduler`) and pass its address, e.g. tcp://host:8786, or leave "
            f"--dask-address out to start a local cluster for this experiment"
        ) from exc
    with client:
        yield client


def _check_dask_workers(
    client: Any, store_path: str, entrypoints: Sequence[str], address: str | None
) -> None:
    """Every worker sees this very store file, and imports the entrypoints."""
    if not client.nthreads():
        raise ExperimentError(
            f"the Dask scheduler at {address} has no workers; start some (`dask worker "
            f"{address}`) before the experiment"
        )
    here = store_identity(store_path)
    seen = client.run(store_identity, store_path)
    elsewhere = {worker: identity for worker, identity in seen.items() if identity != here}
    if elsewhere:
        worker, identity = next(iter(elsewhere.items()))
        where = "no such file" if identity is None else f"another file, on host {identity[0]}"
        raise ExperimentError(
            f"the store {store_path} is a SQLite file, and Dask worker {worker} sees {where} "
            f"at that path (this process runs on {socket.gethostname()}): SQLite is shared "
            f"only by processes on one machine. Run the workers on this machine, or use "
            f"engine='processes'"
        )
    for worker, failures in client.run(import_entrypoints, list(entrypoints)).items():
        if failures:
            where = "; ".join(f"{path} ({why})" for path, why in failures.items())
            raise ExperimentError(
                f"the entrypoint(s) {where} do not import on Dask worker {worker}; install the "
                f"pipeline's code where the workers run (the same environment as here)"
            )
