"""What survives a killed process, and many processes recording into one store at once."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import workbench
from workbench.monitoring import metrics
from workbench.monitoring.prometheus._builtin import builtin_metrics
from workbench.store import Store
from workbench.testing import ModelServer

ROOT = Path(__file__).resolve().parent.parent


def _child(script: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        stdin=subprocess.PIPE,
    )


RECORD_FOREVER = """
    import sys, time, workbench
    store = workbench.Store(sys.argv[1])
    with workbench.record("long", inputs={"n": 1}, store=store) as run:
        print(run.id, flush=True)
        for i in range(1000):
            with workbench.step("work") as step:
                workbench.state("i", i)
                step.set_result(i)
            print(i, flush=True)
            if i >= 2:
                time.sleep(0.05)
"""


def test_kill_9_keeps_finished_steps_and_reads_interrupted(any_store_location: str) -> None:
    """After kill -9 mid-run: the store opens, finished steps are there, the run is interrupted
    (a SQLite file, and a PostgreSQL database)."""
    path = any_store_location
    child = _child(RECORD_FOREVER, str(path))
    assert child.stdout is not None
    execution_id = child.stdout.readline().strip()
    finished = -1
    while finished < 4:
        finished = int(child.stdout.readline())
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=10)
    with Store(path) as store:
        got = store.get_execution(execution_id)
        assert got.status == "interrupted" and got.success is None
        done = [s for s in got.steps if s.status == "completed"]
        assert [s.result for s in done][: finished + 1] == list(range(finished + 1))
        assert all(s.status in ("completed", "interrupted") for s in got.steps)
        assert [e.status for e in store.list_executions()] == ["interrupted"]


def test_sigterm_flushes_and_marks_interrupted(tmp_path: Path) -> None:
    """SIGTERM flushes what was recorded and marks the execution interrupted before exiting."""
    path = tmp_path / "term.db"
    child = _child(RECORD_FOREVER, str(path))
    assert child.stdout is not None
    execution_id = child.stdout.readline().strip()
    while int(child.stdout.readline()) < 3:
        pass
    child.send_signal(signal.SIGTERM)
    child.communicate(timeout=10)
    assert child.returncode == -signal.SIGTERM
    with Store(path) as store:
        got = store.get_execution(execution_id)
        assert got.status == "interrupted"
        assert len([s for s in got.steps if s.status == "completed"]) >= 4


# Imports workbench once, then forks one child per store path asked for: a trial costs a fork,
# not an interpreter start. Each child enters record(), says so, and sleeps in its first step
# until it is killed; the server reports each child's death once it has reaped it (a zombie
# would still read as a live process).
FORK_SERVER = """
    import os, sys, time, workbench
    from workbench import _hooks, capture, config
    from workbench.recorder import _logging
    # What record() imports and installs at its first use, done once here, not in each child.
    capture.install()
    _logging.install()
    _hooks.load_builtin_observers(config.load_config())
    for line in sys.stdin:
        children = set()
        for path in line.split():
            sys.stdout.flush()
            pid = os.fork()
            if pid == 0:
                store = workbench.Store(path)
                with workbench.record("early", inputs={"path": path}, store=store) as run:
                    os.write(1, f"started {os.getpid()} {run.id} {path}\\n".encode())
                    with workbench.step("long"):
                        time.sleep(30)
                os._exit(0)
            children.add(pid)
        while children:
            pid, _ = os.wait()
            children.discard(pid)
        print("reaped", flush=True)
"""


def test_kill_9_early_in_the_first_step_keeps_the_execution(tmp_path: Path) -> None:
    """kill -9 0.1-0.6 s into a long first step: the execution is there, and reads interrupted."""
    server = _child(FORK_SERVER)
    assert server.stdin is not None and server.stdout is not None
    empty = tmp_path / "empty.db"
    Store(empty).close()  # copied for each trial: a child opens a store, it does not create one
    rng = random.Random(13)
    trials: list[tuple[str, str]] = []  # (execution id, store path)
    pids: list[int] = []
    deadline = time.monotonic() + 15
    try:
        while len(trials) < 50 and time.monotonic() < deadline:
            paths = [str(tmp_path / f"early-{len(trials) + k}.db") for k in range(10)]
            for path in paths:
                shutil.copyfile(empty, path)
            server.stdin.write(" ".join(paths) + "\n")
            server.stdin.flush()
            kills = []
            for _ in paths:
                word, pid, execution_id, path = server.stdout.readline().split()
                assert word == "started"
                kills.append((time.monotonic() + rng.uniform(0.1, 0.6), int(pid)))
                trials.append((execution_id, path))
                pids.append(int(pid))
            for when, pid in sorted(kills):
                time.sleep(max(0.0, when - time.monotonic()))
                os.kill(pid, signal.SIGKILL)
            assert server.stdout.readline().strip() == "reaped"
    finally:
        for pid in pids:  # after a failed assertion, children may still sleep in their step
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        server.communicate(timeout=10)  # closes its stdin: the server's loop ends
    assert len(trials) >= 20, f"only {len(trials)} trials ran in the time allowed"
    lost = []
    for execution_id, path in trials:
        with Store(path) as store:
            found = [e for e in store.list_executions() if e.id == execution_id]
            if not found:
                lost.append(execution_id)
                continue
            got = store.get_execution(execution_id)
            assert got.status == "interrupted", execution_id
            assert all(s.status == "interrupted" for s in got.steps)
    assert lost == [], f"{len(lost)} of {len(trials)} kills lost the whole execution"


LOCK_HOLDER = """
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    conn.execute("COMMIT")
    print("released", flush=True)
"""


def _completed_steps(path: Path, execution_id: str) -> int:
    """Committed rows only, read on a connection of our own (no flush of the writer's queue)."""
    conn = sqlite3.connect(path)
    try:
        return int(
            conn.execute(
                "SELECT COUNT(*) FROM steps WHERE execution_id = ? AND status = 'completed'",
                (execution_id,),
            ).fetchone()[0]
        )
    finally:
        conn.close()


def test_a_foreign_write_lock_does_not_stall_steps(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Another process holds the write lock for 3 s: no step waits more than its bound, one
    warning and the lag metric say recording is behind, and the steps are committed as soon as
    the lock is free."""
    builtin_metrics()  # the lag gauge is registered with the built-in metrics
    path = tmp_path / "locked.db"
    store = Store(path)
    caplog.set_level(logging.INFO, logger="workbench.store")
    with workbench.record("contended", inputs={}, store=store) as run:
        with workbench.step("before"):
            pass
        holder = _child(LOCK_HOLDER, str(path), "3")
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        latencies = []
        lag_seen = 0.0
        started = time.monotonic()
        while time.monotonic() - started < 1.5:
            begun = time.perf_counter()
            with workbench.step("work"):
                time.sleep(0.005)
            latencies.append(time.perf_counter() - begun)
            lag_seen = max(lag_seen, metrics.value("store_write_lag_seconds") or 0.0)
        assert max(latencies) < 0.5, f"a step took {max(latencies):.2f}s behind the lock"
        assert sorted(latencies)[len(latencies) // 2] < 0.05
        assert lag_seen > 0.5
        assert holder.stdout.readline().strip() == "released"
        holder.communicate(timeout=10)
        # Written as soon as the lock is free, without anyone asking for a flush.
        deadline = time.monotonic() + 3
        while _completed_steps(path, run.id) < len(latencies) + 1:
            assert time.monotonic() < deadline, "the steps were not committed after the lock"
            time.sleep(0.05)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "write lock" in warnings[0].getMessage() and str(path) in warnings[0].getMessage()
    assert metrics.value("store_write_lag_seconds") == 0.0
    store.close()


MANY = """
    import asyncio, sys, threading, openai, workbench
    path, base_url, proc = sys.argv[1], sys.argv[2], sys.argv[3]
    store = workbench.Store(path)

    async def task(client, tag):
        async with workbench.record("many", inputs={"tag": tag}, store=store):
            for i in range(3):
                async with workbench.step("ask"):
                    await client.chat.completions.create(
                        model="gpt-4o-mini", messages=[{"role": "user", "content": f"{tag}/{i}"}])

    async def thread_main(thread):
        async with openai.AsyncOpenAI(base_url=base_url, api_key="sk-test", max_retries=0) as c:
            await asyncio.gather(*(task(c, f"{proc}/{thread}/{t}") for t in range(4)))

    threads = [threading.Thread(target=lambda n=n: asyncio.run(thread_main(n))) for n in range(4)]
    for t in threads: t.start()
    for t in threads: t.join()
    store.close()
    print("ok", flush=True)
"""


def test_processes_threads_and_tasks_lose_and_misattribute_nothing(
    any_store_location: str, model_server: ModelServer
) -> None:
    """4 processes x 4 threads x 4 gathered tasks into one store (a SQLite file, and a
    PostgreSQL database): 0 lost, 0 misattributed calls."""
    path = any_store_location
    Store(path).close()
    children = [_child(MANY, str(path), model_server.openai_base_url, str(p)) for p in range(4)]
    for child in children:
        out, err = child.communicate(timeout=240)
        assert child.returncode == 0, err
        assert out.strip() == "ok"
    with Store(path) as store:
        executions = store.list_executions(limit=None)
        assert len(executions) == 4 * 4 * 4
        total = 0
        for summary in executions:
            got = store.get_execution(summary.id)
            tag = got.inputs["tag"]
            prompts = [c.request["body"]["messages"][0]["content"] for c in got.model_calls]
            assert sorted(prompts) == [f"{tag}/{i}" for i in range(3)], tag
            # Each call is on the step occurrence (and its span) that made it.
            step_spans = {s.occurrence: s.span_id for s in got.steps}
            for call in got.model_calls:
                i = int(call.request["body"]["messages"][0]["content"].rsplit("/", 1)[1])
                assert (call.step_id, call.step_occurrence) == ("ask", i)
                assert call.span_id == step_spans[i] and call.status_code == 200
            assert got.status == "completed"
            total += len(got.model_calls)
        assert total == 4 * 4 * 4 * 3
