"""Experiments: many recorded executions replayed against one change, on every engine.

Real replays of the example pipelines recorded against the test model server (the openai and
anthropic SDKs, streamed and concurrent calls), real worker processes, a real Dask
LocalCluster, real SIGKILL and SIGINT, the real CLI in a pseudo-terminal and in a pipe.
"""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest
from click.testing import CliRunner

import workbench
from workbench._context import current
from workbench.cli import cli
from workbench.debugging import RequestReplay
from workbench.examples.research_assistant import research
from workbench.exceptions import (
    ConfigError,
    ExperimentError,
    ExperimentNotFoundError,
    ReplayError,
    SchedulerUnreachableError,
)
from workbench.experiments import ExperimentResult
from workbench.store import Store
from workbench.testing import ModelServer

KEY = "sk-test-experiments-0123456789"
TESTS = str(Path(__file__).resolve().parent)
CHANGE_CRITIQUE = {"step_outputs": {"critique": "Looks fine."}}


@workbench.pipeline
def ask_concurrently(questions: list[str], *, base_url: str) -> list[str]:
    """Three chat completions at once from threads, one of them streamed."""

    def ask(question: str) -> str:
        with openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0) as client:
            if question.endswith("?"):
                parts = []
                for chunk in client.chat.completions.create(
                    model="gpt-4o-mini",
                    stream=True,
                    messages=[{"role": "user", "content": question}],
                ):
                    if chunk.choices and chunk.choices[0].delta.content:
                        parts.append(chunk.choices[0].delta.content)
                return "".join(parts)
            reply = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": question}]
            )
            return reply.choices[0].message.content or ""

    with ThreadPoolExecutor(3) as pool:
        return list(pool.map(workbench.carry_context(ask), questions))


@workbench.pipeline
def die_in_replay(n: int, *, marker: str, always: bool = False) -> int:
    """Kills its own process (SIGKILL) in a replay while ``marker`` is missing (the first
    attempt creates it), or in every replay with ``always``; records normally otherwise."""
    frame = current.get()
    if frame is not None and frame.run.replay_of is not None:
        path = Path(marker)
        if always or not path.exists():
            path.touch()
            os.kill(os.getpid(), signal.SIGKILL)
    return n * 2


@workbench.pipeline
def slow(n: int, *, seconds: float) -> int:
    """No model call: sleeps, so that an experiment of these takes a while."""
    time.sleep(seconds)
    return n + 1


def _record_research(store: Store, server: ModelServer, count: int) -> list[str]:
    ids = []
    for i in range(count):
        with workbench.record("research_assistant", inputs={}, store=store) as run:
            research(
                f"prompt caching {i}",
                openai_base_url=server.openai_base_url,
                anthropic_base_url=server.anthropic_base_url,
            )
        ids.append(run.id)
    store.flush()
    return ids


@pytest.fixture
def researched(store: Store, model_server: ModelServer) -> list[str]:
    """Three recorded runs of the example research assistant (newest last)."""
    return _record_research(store, model_server, 3)


def _record(store: Store, pipeline: object, pipeline_id: str, **arguments: object) -> str:
    with workbench.record(pipeline_id, inputs={}, store=store) as run:
        pipeline(**arguments)  # type: ignore[operator]
    store.flush()
    return run.id


@pytest.fixture
def worker_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """This module imports in worker processes (they get this process's sys.path)."""
    monkeypatch.syspath_prepend(TESTS)


# -- engines -------------------------------------------------------------------------------------


def test_inline_experiment_replays_every_selected_run_unchanged(
    store: Store, researched: list[str]
) -> None:
    """An inline experiment replays each selected run from the recording: nothing changes,
    every call is served from the recording, and each replay is tagged with the experiment."""
    exp = RequestReplay(store).replay_many(
        {"pipeline_id": "research_assistant"}, engine="inline", name="baseline"
    )
    summary = exp.summary()
    assert (summary.n, summary.replayed, summary.changed, summary.failed) == (3, 3, 0, 0)
    assert (summary.calls_recorded, summary.calls_live) == (9, 0)
    assert summary.cost_before == pytest.approx(summary.cost_after)
    assert [run.original_id for run in exp.runs] == researched[::-1]  # newest first
    for run in exp.runs:
        replay = store.get_execution(run.replay_id or "")
        assert (replay.replay_of, replay.experiment_id) == (run.original_id, exp.id)
    assert store.get_experiment(exp.id).status == "completed"


def test_processes_engine_finds_the_changed_runs_and_their_first_divergent_step(
    store: Store, researched: list[str]
) -> None:
    """Two worker processes replay a change of the critique step: every output changed, the
    first divergent step is critique#0 in each, and changed() lists them costliest first."""
    exp = RequestReplay(store).replay_many(
        researched, modifications=CHANGE_CRITIQUE, engine="processes", workers=2
    )
    summary = exp.summary()
    assert (summary.replayed, summary.changed, summary.unchanged) == (3, 3, 0)
    assert summary.first_divergent_steps == {"critique#0": 3}
    costs = [run.cost_after or 0.0 for run in exp.changed()]
    assert costs == sorted(costs, reverse=True) and len(costs) == 3
    assert exp.diff(exp.runs[0]).first_divergent_step == "critique#0"


def test_streamed_and_concurrent_calls_replay_in_worker_processes(
    store: Store, model_server: ModelServer, worker_path: None
) -> None:
    """Runs that stream and make concurrent calls from threads replay faithfully in workers."""
    ids = [
        _record(
            store,
            ask_concurrently,
            "concurrent",
            questions=[f"plain {i}", f"streamed {i}?", f"third {i}"],
            base_url=model_server.openai_base_url,
        )
        for i in range(2)
    ]
    exp = RequestReplay(store).replay_many(ids, engine="processes", workers=2)
    summary = exp.summary()
    assert (summary.replayed, summary.changed, summary.calls_recorded) == (2, 0, 6)


def test_dask_engine_on_an_existing_two_worker_local_cluster(
    store: Store, researched: list[str]
) -> None:
    """The replays run as Dask tasks on a real LocalCluster of 2 worker processes, reached by
    its scheduler's address, and the experiment records the engine."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0"
    ) as cluster:
        exp = RequestReplay(store).replay_many(
            {"pipeline_id": "research_assistant"},
            modifications=CHANGE_CRITIQUE,
            engine="dask",
            address=cluster.scheduler_address,
        )
    assert (exp.summary().replayed, exp.summary().changed) == (3, 3)
    assert exp.experiment.engine == "dask"


def test_a_worker_killed_mid_experiment_loses_only_its_replay_which_is_retried_once(
    store: Store, tmp_path: Path, worker_path: None
) -> None:
    """SIGKILL under one replay: that run is sent again once and completes (attempts 2); a run
    that kills every worker it lands on is reported failed; the other runs are untouched."""
    once = _record(store, die_in_replay, "dying", n=1, marker=str(tmp_path / "once"))
    always = _record(
        store, die_in_replay, "dying", n=2, marker=str(tmp_path / "always"), always=True
    )
    fine = [_record(store, die_in_replay, "dying", n=n, marker=str(tmp_path / "x")) for n in (3, 4)]
    (tmp_path / "x").touch()  # those two never die
    exp = RequestReplay(store).replay_many([once, always, *fine], engine="processes", workers=2)
    by_id = {run.original_id: run for run in exp.runs}
    assert (by_id[once].status, by_id[once].attempts) == ("replayed", 2)
    assert by_id[always].status == "failed" and "died twice" in (by_id[always].error or "")
    assert all(by_id[i].status == "replayed" and by_id[i].attempts == 1 for i in fine)


def test_a_dask_worker_killed_mid_experiment_is_rescheduled(
    store: Store, tmp_path: Path, worker_path: None
) -> None:
    """On a LocalCluster started for the experiment, the task of a worker killed under it runs
    again on a (restarted) worker, and the run completes."""
    once = _record(store, die_in_replay, "dying", n=1, marker=str(tmp_path / "once"))
    exp = RequestReplay(store).replay_many([once], engine="dask", workers=2)
    assert exp.runs[0].status == "replayed"
    assert store.get_execution(exp.runs[0].replay_id or "").outputs == 2


# -- bad input -------------------------------------------------------------------------------


def test_a_selection_that_matches_nothing_is_refused(store: Store, researched: list[str]) -> None:
    """A filter that selects no run raises ExperimentError naming the selection."""
    with pytest.raises(ExperimentError, match=r"matches no recorded execution"):
        RequestReplay(store).replay_many({"pipeline_id": "nope"}, engine="inline")


def test_replays_are_left_out_of_a_selection_unless_included(
    store: Store, researched: list[str]
) -> None:
    """A filter selects original runs only; include_replays=True takes replays too."""
    replay = RequestReplay(store)
    first = replay.replay_many({"pipeline_id": "research_assistant"}, engine="inline")
    again = replay.replay_many({"pipeline_id": "research_assistant"}, engine="inline")
    assert set(again.experiment.originals) == set(first.experiment.originals)
    both = replay.replay_many(
        {"pipeline_id": "research_assistant", "include_replays": True, "limit": 4},
        engine="inline",
    )
    assert len(both.runs) == 4 and any(
        store.get_execution(i, model_calls=False).replay_of for i in both.experiment.originals
    )


def test_an_unknown_filter_key_is_refused(store: Store) -> None:
    """A selection key that is not a filter raises ConfigError listing the filters."""
    with pytest.raises(ConfigError, match=r"'pipline' are not filters; use include_replays"):
        RequestReplay(store).replay_many({"pipline": "x"})


def test_an_entrypoint_that_does_not_import_is_refused(store: Store) -> None:
    """A selected run whose recorded entrypoint cannot be imported stops the experiment
    before it starts, with the entrypoint named."""
    with workbench.record("gone", inputs={}, store=store, entrypoint="nowhere_at_all:run") as r:
        pass
    store.flush()
    with pytest.raises(ReplayError, match=r"nowhere_at_all:run of execution"):
        RequestReplay(store).replay_many([r.id], engine="inline")
    assert store.list_experiments() == []


def test_an_entrypoint_that_imports_only_here_is_refused_by_the_workers(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An entrypoint importable in this process only (a module put in sys.modules by hand)
    is refused by the worker processes, which name it and the fix."""
    import types

    module = types.ModuleType("made_by_hand")
    module.run = lambda: 1  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "made_by_hand", module)
    with workbench.record("by_hand", inputs={}, store=store, entrypoint="made_by_hand:run") as r:
        pass
    store.flush()
    with pytest.raises(ExperimentError, match=r"made_by_hand:run .* do not import in a worker"):
        RequestReplay(store).replay_many([r.id], engine="processes", workers=1)


def test_a_modification_no_run_accepts_is_refused(store: Store, researched: list[str]) -> None:
    """A step override naming a step no selected run has fails every run, and the experiment
    raises ExperimentError saying so (the experiment is kept, every run failed)."""
    with pytest.raises(ExperimentError, match=r"no selected run accepts the modifications"):
        RequestReplay(store).replay_many(
            researched, modifications={"step_outputs": {"summarise": "x"}}, engine="inline"
        )


def test_an_unknown_modification_is_refused_before_anything_runs(store: Store) -> None:
    """A modification replay does not know raises ConfigError before any selection."""
    with pytest.raises(ConfigError, match=r"unknown replay modification 'temperature'"):
        RequestReplay(store).replay_many({"pipeline_id": "x"}, modifications={"temperature": 1})


def test_a_dead_scheduler_address_is_refused(store: Store, researched: list[str]) -> None:
    """An address where no Dask scheduler answers raises SchedulerUnreachableError."""
    with pytest.raises(SchedulerUnreachableError, match=r"no Dask scheduler answers at"):
        RequestReplay(store).replay_many(
            researched, engine="dask", address="tcp://127.0.0.1:9", workers=1
        )


def test_an_address_without_the_dask_engine_is_refused(store: Store) -> None:
    """A scheduler address with another engine raises ConfigError naming engine='dask'."""
    with pytest.raises(ConfigError, match=r"engine='dask'"):
        RequestReplay(store).replay_many(["x"], engine="processes", address="tcp://h:8786")


def test_a_failing_run_does_not_stop_the_others(store: Store, researched: list[str]) -> None:
    """A selected run that cannot be replayed (it recorded no entrypoint) is a failed run,
    with the reason, and the others replay."""
    with workbench.record("research_assistant", inputs={}, store=store, entrypoint=None) as r:
        pass  # no entrypoint: this run cannot be replayed
    store.flush()
    exp = RequestReplay(store).replay_many([*researched, r.id], engine="inline")
    summary = exp.summary()
    assert (summary.replayed, summary.failed) == (3, 1)
    assert "no recorded entrypoint" in (exp.run(r.id).error or "")


# -- the record, shown again ---------------------------------------------------------------------


def test_an_experiment_is_shown_again_from_the_store_without_replaying(
    store: Store, researched: list[str]
) -> None:
    """ExperimentResult.load gives the same summary and runs as the run itself, from the
    kept rows, and to_json and the notebook view render it."""
    exp = RequestReplay(store).replay_many(
        researched, modifications=CHANGE_CRITIQUE, engine="inline", name="critique"
    )
    before = store.stats()["executions"]
    again = ExperimentResult.load(store, exp.id)
    assert store.stats()["executions"] == before
    assert again.summary() == exp.summary() and again.runs == exp.runs
    document = again.to_json()
    assert document["schema"] == "workbench.experiment/1"
    assert document["summary"]["changed"] == 3 and len(document["runs"]) == 3
    assert "critique#0" in again._repr_html_()
    with pytest.raises(ExperimentNotFoundError, match=r"workbench experiments list"):
        ExperimentResult.load(store, "exp_missing")


def test_compare_experiments_shows_two_changes_side_by_side(
    store: Store, researched: list[str]
) -> None:
    """compare_experiments pairs the runs both experiments replayed and names the originals
    one change altered and the other did not."""
    replay = RequestReplay(store)
    a = replay.replay_many(researched, engine="inline", name="none")
    b = replay.replay_many(researched, modifications=CHANGE_CRITIQUE, engine="inline")
    comparison = replay.compare_experiments(a.id, b.id)
    assert len(comparison.pairs) == 3
    assert sorted(comparison.disagreements()) == sorted(researched)
    assert comparison.to_json()["common"] == 3


def test_an_old_store_gains_the_experiment_tables_when_opened(tmp_path: Path) -> None:
    """A store created before experiments gains their tables and executions.experiment_id."""
    import sqlite3

    path = tmp_path / "old.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.executescript(
        "DROP TABLE experiments; DROP TABLE experiment_runs;"
        "ALTER TABLE executions DROP COLUMN experiment_id;"
    )
    conn.close()
    with Store(path) as store:
        with workbench.record("p", inputs={}, store=store) as run:
            pass
        store.flush()
        assert store.get_execution(run.id).experiment_id is None
        assert store.list_experiments() == []


# -- a PostgreSQL store -------------------------------------------------------------------------


@pytest.fixture
def researched_pg(postgres_store: Store, model_server: ModelServer) -> list[str]:
    """Three recorded runs of the example research assistant in a PostgreSQL store."""
    return _record_research(postgres_store, model_server, 3)


def test_inline_experiment_on_a_postgresql_store_is_kept_and_read_back(
    postgres_store: Store, researched_pg: list[str]
) -> None:
    """An inline experiment on a PostgreSQL store replays every run unchanged, tags each
    replay with it, and its record and runs read back as the run returned them."""
    store = postgres_store
    exp = RequestReplay(store).replay_many(
        {"pipeline_id": "research_assistant"}, engine="inline", name="baseline"
    )
    summary = exp.summary()
    assert (summary.n, summary.replayed, summary.changed, summary.failed) == (3, 3, 0, 0)
    assert (summary.calls_recorded, summary.calls_live) == (9, 0)
    for run in exp.runs:
        replay = store.get_execution(run.replay_id or "")
        assert (replay.replay_of, replay.experiment_id) == (run.original_id, exp.id)
    kept = store.get_experiment(exp.id)
    assert (kept.status, kept.name) == ("completed", "baseline")
    assert kept.originals == researched_pg[::-1]
    assert kept.counts == {"replayed": 3, "failed": 0, "changed": 0}
    assert [e.id for e in store.list_experiments(pipeline_id="research_assistant")] == [exp.id]
    assert store.list_experiments(pipeline_id="another") == []
    assert sorted(store.experiment_runs(exp.id), key=lambda r: r.original_id) == sorted(
        exp.runs, key=lambda r: r.original_id
    )


def test_processes_engine_on_a_postgresql_store_finds_the_changed_runs(
    postgres_store: Store, researched_pg: list[str]
) -> None:
    """Two worker processes, each opening the PostgreSQL store by its URL (password
    included), replay a change of the critique step: every run changed at critique#0, and
    the runs they kept read back from the store."""
    store = postgres_store
    exp = RequestReplay(store).replay_many(
        researched_pg, modifications=CHANGE_CRITIQUE, engine="processes", workers=2
    )
    summary = exp.summary()
    assert (summary.replayed, summary.changed, summary.unchanged) == (3, 3, 0)
    assert summary.first_divergent_steps == {"critique#0": 3}
    assert {run.original_id for run in store.experiment_runs(exp.id)} == set(researched_pg)
    assert all(run.changed for run in store.experiment_runs(exp.id))
    assert store.get_experiment(exp.id).engine == "processes"
    again = ExperimentResult.load(store, exp.id)
    assert again.summary() == summary


def test_runs_of_a_refused_write_are_not_kept_and_their_replays_stay_untagged(
    any_store: Store,
) -> None:
    """A write of runs whose last statement the driver refuses (the experiment's record given
    with them holds a value no database column takes) keeps none of the runs and tags no
    replay: one transaction, on either backend."""
    from dataclasses import replace

    from workbench.exceptions import StoreError
    from workbench.records import Experiment, ExperimentRun

    store = any_store
    with workbench.record("p", inputs={}, store=store) as run:
        pass
    store.flush()
    experiment = Experiment(
        id="exp_1", name=None, pipeline_id="p", selection={}, originals=[run.id],
        modifications={}, on_miss="error", engine="inline", workers=1, status="running",
        started_at=1.0, ended_at=None, counts={},
    )  # fmt: skip
    store.put_experiment(experiment)
    good = ExperimentRun(
        experiment_id="exp_1", original_id="o1", replay_id=run.id, status="replayed",
        error=None, changed=True, first_divergent_step=None, cost_before=None,
        cost_after=None, tokens_before=0, tokens_after=0, latency_before=None,
        latency_after=None, calls_recorded=0, calls_live=0, attempts=1, ended_at=2.0,
    )  # fmt: skip
    unwritable = replace(experiment, engine=object())  # type: ignore[arg-type]
    with pytest.raises(StoreError, match=r"writing an experiment to store"):
        store.put_experiment_runs([good], unwritable)
    assert store.experiment_runs("exp_1") == []
    assert store.get_execution(run.id).experiment_id is None


# -- Ctrl-C and resume, the CLI --------------------------------------------------------------------


def _cli_env(store: Store) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([TESTS, *sys.path])
    env["WORKBENCH_DB"] = str(store.path)
    env.pop("COLUMNS", None)
    return env


def _workbench(*args: str) -> list[str]:
    return [sys.executable, "-m", "workbench.cli", *args]


def test_ctrl_c_leaves_a_partial_experiment_that_resume_finishes(
    store: Store, worker_path: None
) -> None:
    """SIGINT stops handing out runs and waits for the running one: the CLI exits 130 with a
    partial, interrupted experiment (no run failed), and `experiments resume` replays only
    the rest."""
    ids = [_record(store, slow, "slow", n=n, seconds=0.6) for n in range(6)]
    process = subprocess.Popen(
        _workbench("replay", "--pipeline", "slow", "--engine", "processes", "--workers", "1"),
        env=_cli_env(store),
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    first = process.stderr.readline()  # a plain progress line: the first run is done
    assert first.startswith("replayed 1/6"), first
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    [experiment] = store.list_experiments()
    assert experiment.status == "interrupted"
    kept = store.experiment_runs(experiment.id)
    assert 1 <= len(kept) < 6 and all(run.status == "replayed" for run in kept)
    assert f"workbench experiments resume {experiment.id}" in err
    resumed = subprocess.run(
        _workbench("experiments", "resume", experiment.id, "--json"),
        env=_cli_env(store),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    document = json.loads(resumed.stdout)
    assert document["experiment"]["status"] == "completed"
    assert sorted(run["original_id"] for run in document["runs"]) == sorted(ids)
    replays = store.list_executions(pipeline_id="slow", limit=None)
    assert len([e for e in replays if e.replay_of]) == 6  # none replayed twice


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env={"COLUMNS": None, "FORCE_COLOR": None, "NO_COLOR": None})


def test_cli_exit_status_says_whether_an_output_changed(
    runner: CliRunner, store: Store, researched: list[str]
) -> None:
    """`workbench replay --pipeline P` exits 0 when no output changed, 1 when some did, and 2
    with one error line for a selection that matches nothing."""
    db = ["--db", str(store.path), "--engine", "inline"]
    same = runner.invoke(cli, ["replay", "--pipeline", "research_assistant", *db])
    assert same.exit_code == 0, same.output
    assert "0 changed" in same.stdout
    changed = runner.invoke(
        cli,
        [
            "replay",
            "--pipeline",
            "research_assistant",
            "--modify",
            "step_outputs.critique=ok",
            "--json",
            *db,
        ],
    )
    assert changed.exit_code == 1, changed.output
    assert json.loads(changed.stdout)["summary"]["first_divergent_steps"] == {"critique#0": 3}
    nothing = runner.invoke(cli, ["replay", "--pipeline", "nope", *db])
    assert nothing.exit_code == 2 and nothing.stderr.startswith("error: the selection")


def test_cli_replay_of_one_id_is_unchanged(
    runner: CliRunner, store: Store, researched: list[str]
) -> None:
    """`workbench replay ID` still replays one execution; neither ID nor --pipeline is a
    usage error, and so are both."""
    one = runner.invoke(cli, ["replay", researched[0], "--json", "--db", str(store.path)])
    assert one.exit_code == 0, one.output
    assert json.loads(one.stdout)["replay_of"] == researched[0]
    neither = runner.invoke(cli, ["replay", "--db", str(store.path)])
    assert neither.exit_code == 2 and "--pipeline P" in neither.output
    both = runner.invoke(cli, ["replay", researched[0], "--pipeline", "research_assistant"])
    assert both.exit_code == 2 and "not both" in both.output


def test_cli_experiments_list_and_show(
    runner: CliRunner, store: Store, researched: list[str]
) -> None:
    """`experiments list` names each experiment; `experiments show ID --json` prints it again
    with the exit status of its outcome."""
    exp = RequestReplay(store).replay_many(
        researched, modifications=CHANGE_CRITIQUE, engine="inline", name="mine"
    )
    db = ["--db", str(store.path)]
    listed = runner.invoke(cli, ["experiments", "list", "--json", *db])
    assert listed.exit_code == 0 and [e["id"] for e in json.loads(listed.stdout)] == [exp.id]
    shown = runner.invoke(cli, ["experiments", "show", exp.id, "--json", *db])
    assert shown.exit_code == 1
    summary = json.loads(shown.stdout)["summary"]  # money is rounded in the CLI's JSON
    assert (summary["n"], summary["changed"], summary["first_divergent_steps"]) == (
        3,
        3,
        {"critique#0": 3},
    )
    table = runner.invoke(cli, ["experiments", "show", exp.id, *db])
    assert "critique#0" in table.stdout and "mine" in table.stdout


@pytest.fixture
def three_runs_db(store: Store, researched: list[str]) -> Iterator[Store]:
    yield store


def test_progress_is_plain_lines_in_a_pipe(three_runs_db: Store) -> None:
    """Piped, the progress is plain lines with no terminal control codes, ending at 3/3."""
    result = subprocess.run(
        _workbench("replay", "--pipeline", "research_assistant", "--engine", "inline"),
        env=_cli_env(three_runs_db),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "\x1b[" not in result.stderr and "\r" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("replayed 3/3: 0 failed, 0 changed")


def test_progress_is_a_bar_in_a_terminal(three_runs_db: Store) -> None:
    """In a pseudo-terminal, the progress is a rich bar redrawn in place."""
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(
            _workbench("replay", "--pipeline", "research_assistant", "--engine", "inline"),
            env={**_cli_env(three_runs_db), "TERM": "xterm", "COLUMNS": "120"},
            stderr=follower,
            stdout=subprocess.DEVNULL,
        )
        os.close(follower)
        output = b""
        while True:  # read as it writes: a full terminal buffer would block the command
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the command closed the terminal
                break
            if not chunk:
                break
            output += chunk
        returncode = process.wait(timeout=120)
    finally:
        os.close(leader)
    assert returncode == 0
    text = output.decode(errors="replace")
    assert "replaying" in text and "3/3" in text and "\x1b[" in text
    assert "replayed 3/3:" not in text  # not the plain lines


# -- the pytest marker -----------------------------------------------------------------------------

pytest_plugins = ["pytester"]

MARKED = """
import pytest

STORE = {store!r}


@pytest.mark.replay_many(pipeline="research_assistant", engine="inline", store=STORE)
def test_nothing_changes():
    pass


@pytest.mark.replay_many(
    pipeline="research_assistant",
    since="7d",
    engine="inline",
    store=STORE,
    modifications={{"step_outputs": {{"critique": "Looks fine."}}}},
    max_changed=0,
)
def test_the_critique_changes():
    pass


@pytest.mark.replay_many(
    pipeline="research_assistant",
    engine="inline",
    store=STORE,
    modifications={{"step_outputs": {{"critique": "Looks fine."}}}},
    max_changed=3,
)
def test_three_changes_are_allowed():
    pass
"""


def test_replay_many_marker_passes_and_fails_by_the_changed_runs(
    pytester: pytest.Pytester, three_runs_db: Store
) -> None:
    """The marker passes when no more outputs changed than max_changed, and fails otherwise,
    listing each changed run with its first divergent step."""
    pytester.makepyfile(test_marked=MARKED.format(store=str(three_runs_db.path)))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*replay_many: 3 of 3 run(s) changed their outputs (max_changed=0), 0 failed*",
            "*changed exec_* -> exec_*: first divergent step critique#0",
        ]
    )


def _unshare_works() -> bool:
    try:
        return (
            subprocess.run(
                ["unshare", "-m", "--propagation", "private", "true"], capture_output=True
            ).returncode
            == 0
        )
    except OSError:
        return False


@pytest.mark.skipif(not _unshare_works(), reason="needs unshare -m (root on Linux)")
def test_a_sqlite_store_that_a_dask_worker_does_not_see_is_refused(
    store: Store, researched: list[str], tmp_path: Path
) -> None:
    """A Dask worker that sees no store file at the store's path (here: its own mount of an
    empty folder over the store's) makes the experiment refuse SQLite, with the reason."""
    scheduler_file = tmp_path / "scheduler.json"
    python = [sys.executable, "-m"]
    scheduler = subprocess.Popen(
        [
            *python,
            "distributed.cli.dask_scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--dashboard-address",
            "127.0.0.1:0",
            "--scheduler-file",
            str(scheduler_file),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    folder = store.path.parent
    worker = None
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        command = " ".join(
            [
                *python,
                "distributed.cli.dask_worker",
                "--nthreads",
                "1",
                "--no-nanny",
                "--no-dashboard",
                "--scheduler-file",
                str(scheduler_file),
            ]
        )
        worker = subprocess.Popen(
            [
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                f"mount -t tmpfs none {folder} && exec {command}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        address = json.loads(scheduler_file.read_text())["address"]
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(1, timeout=60)
        with pytest.raises(ExperimentError, match=r"sees no such file at that path.*SQLite"):
            RequestReplay(store).replay_many(researched, engine="dask", address=address)
    finally:
        for process in (worker, scheduler):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)
