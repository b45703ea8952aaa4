"""What survives a killed process, and many processes recording into one store at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

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


def test_kill_9_keeps_finished_steps_and_reads_interrupted(tmp_path: Path) -> None:
    """After kill -9 mid-run: the store opens, finished steps are there, the run is interrupted."""
    path = tmp_path / "killed.db"
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
    tmp_path: Path, model_server: ModelServer
) -> None:
    """4 processes x 4 threads x 4 gathered tasks into one store: 0 lost, 0 misattributed calls."""
    path = tmp_path / "many.db"
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
