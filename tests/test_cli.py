"""The ``workbench`` CLI: listing, showing and demo runs over real recordings.

Recordings are made with the real ``openai`` and ``anthropic`` SDKs against the loopback model
server, into a fresh SQLite store per test; the CLI is driven with click's ``CliRunner``, and
once as a real ``python -m workbench.cli`` process.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import logging
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import httpx
import openai
import pytest
import yaml
from click.testing import CliRunner, Result

import workbench
from workbench import _render
from workbench.cli import cli, parse_when
from workbench.cli._options import DB_HELP, db_option, json_option, money_rounded
from workbench.cli.demo import _EXAMPLE
from workbench.config import WorkbenchConfig, load_config
from workbench.examples.research_assistant import research
from workbench.monitoring.alerts._alerts import AlertManager
from workbench.monitoring.prometheus._store_metrics import store_registry
from workbench.records import StreamChunk
from workbench.store import Store
from workbench.testing import ModelServer

REPO_ROOT = Path(__file__).resolve().parents[1]
EXECUTION_ID = re.compile(r"exec_[0-9a-f]{16}")


@pytest.fixture
def runner() -> CliRunner:
    # Rich must not pick up the developer's terminal width or forced colours.
    return CliRunner(env={"COLUMNS": None, "FORCE_COLOR": None, "NO_COLOR": None})


@pytest.fixture
def runs(store: Store, model_server: ModelServer) -> dict[str, str]:
    """Four recorded executions: two research runs, one failed run, one with an unpriced model."""
    ids: dict[str, str] = {}
    for user in ("alice", "bob"):
        with workbench.record("research_assistant", inputs={}, store=store, user_id=user) as run:
            research(
                f"streaming latency for {user}",
                openai_base_url=model_server.openai_base_url,
                anthropic_base_url=model_server.anthropic_base_url,
            )
        ids[user] = run.id
    with (
        pytest.raises(RuntimeError),
        workbench.record("flaky", inputs={"n": 1}, store=store, user_id="carol") as run,
        workbench.step("fetch"),
    ):
        raise RuntimeError("upstream timed out")
    ids["failed"] = run.id
    with (
        workbench.record("in_house", inputs={}, store=store, user_id="dave") as run,
        openai.OpenAI(base_url=model_server.openai_base_url, api_key="sk-test") as client,
    ):
        client.chat.completions.create(
            model="acme-in-house-7b", messages=[{"role": "user", "content": "hello"}]
        )
    ids["unpriced"] = run.id
    store.flush()
    return ids


def invoke(runner: CliRunner, store: Store, *args: str) -> Result:
    return runner.invoke(cli, [*args, "--db", str(store.path)], catch_exceptions=False)


def listed_ids(result: Result) -> list[str]:
    assert result.exit_code == 0, result.output
    return [row["id"] for row in json.loads(result.stdout)]


def assert_one_error_line(result: Result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output  # 2: trouble, as diff(1) (0/1 are answers)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.output


# -- runs list ------------------------------------------------------------------------------------


def test_list_shows_every_execution_newest_first(
    runner: CliRunner, store: Store, runs: dict[str, str]
) -> None:
    """The table has one row per execution, newest first, with status, user, cost and tokens."""
    result = invoke(runner, store, "runs", "list")
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if EXECUTION_ID.search(line)]
    order = [EXECUTION_ID.search(row)[0] for row in rows]  # type: ignore[index]
    assert order == [runs["unpriced"], runs["failed"], runs["bob"], runs["alice"]]
    research_row = rows[order.index(runs["alice"])]
    assert "research_assistant" in research_row and "completed" in research_row
    assert "alice" in research_row and "$0.0" in research_row
    assert "failed" in rows[order.index(runs["failed"])]


def test_list_shows_unknown_cost_not_zero(
    runner: CliRunner, store: Store, runs: dict[str, str]
) -> None:
    """A call to a model without a price makes the cost "unknown" in the table and null in JSON."""
    table = invoke(runner, store, "runs", "list", "--user", "dave")
    (row,) = [line for line in table.stdout.splitlines() if runs["unpriced"] in line]
    assert "unknown" in row and "$0.000000" not in row
    (listed,) = json.loads(invoke(runner, store, "runs", "list", "--user", "dave", "--json").stdout)
    assert listed["cost_usd"] is None


def test_list_filters_by_pipeline_status_user_and_limit(
    runner: CliRunner, store: Store, runs: dict[str, str]
) -> None:
    """--pipeline, --status, --user and --limit narrow the listing as the store does."""
    by_pipeline = invoke(
        runner, store, "runs", "list", "--pipeline", "research_assistant", "--json"
    )
    assert listed_ids(by_pipeline) == [runs["bob"], runs["alice"]]
    by_status = invoke(runner, store, "runs", "list", "--status", "failed", "--json")
    assert listed_ids(by_status) == [runs["failed"]]
    by_user = invoke(runner, store, "runs", "list", "--user", "alice", "--json")
    assert listed_ids(by_user) == [runs["alice"]]
    limited = invoke(runner, store, "runs", "list", "--limit", "2", "--json")
    assert listed_ids(limited) == [runs["unpriced"], runs["failed"]]


def test_list_filters_by_since(runner: CliRunner, store: Store, runs: dict[str, str]) -> None:
    """--since takes relative times and ISO dates: recent runs are in, a future date has none."""
    assert len(listed_ids(invoke(runner, store, "runs", "list", "--since", "1h", "--json"))) == 4
    started = store.get_execution(runs["alice"]).started_at
    today = datetime.fromtimestamp(started).date().isoformat()  # not now(): midnight may pass
    assert len(listed_ids(invoke(runner, store, "runs", "list", "--since", today, "--json"))) == 4
    tomorrow = (datetime.fromtimestamp(started) + timedelta(days=1)).date().isoformat()
    assert listed_ids(invoke(runner, store, "runs", "list", "--since", tomorrow, "--json")) == []
    empty = invoke(runner, store, "runs", "list", "--since", tomorrow)
    assert empty.exit_code == 0 and "No executions" in empty.stdout


def test_since_rejects_what_is_not_a_time(runner: CliRunner, store: Store) -> None:
    """An unreadable --since is a usage error (exit 2) naming the forms allowed."""
    result = invoke(runner, store, "runs", "list", "--since", "yesterday")
    assert result.exit_code == 2
    assert "30m, 1h, 2d or 1w" in result.stderr and "2024-05-01" in result.stderr


def test_parse_when_relative_and_iso_forms() -> None:
    """Relative forms count back from now; ISO values without an offset are local time."""
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert parse_when("30m", now=now) == now - timedelta(minutes=30)
    assert parse_when("2d", now=now) == now - timedelta(days=2)
    assert parse_when("1.5h", now=now) == now - timedelta(minutes=90)
    assert parse_when("2024-05-01T13:30+02:00") == datetime(2024, 5, 1, 11, 30, tzinfo=UTC)
    local = parse_when("2024-05-01")
    assert local.tzinfo is not None and local == datetime(2024, 5, 1).astimezone()
    with pytest.raises(ValueError, match="relative form"):
        parse_when("last week")


def test_list_json_shape(runner: CliRunner, store: Store, runs: dict[str, str]) -> None:
    """--json prints a list of execution objects with the Execution fields but no children."""
    listed = json.loads(invoke(runner, store, "runs", "list", "--json").stdout)
    assert isinstance(listed, list) and len(listed) == 4
    alice = next(row for row in listed if row["id"] == runs["alice"])
    assert alice["pipeline_id"] == "research_assistant" and alice["status"] == "completed"
    assert alice["entrypoint"] == "workbench.examples.research_assistant:research"
    assert alice["tokens_in"] > 0 and alice["tokens_out"] > 0 and alice["cost_usd"] > 0
    assert alice["inputs"]["topic"] == "streaming latency for alice"
    assert not {"steps", "model_calls", "states", "logs"} & set(alice)


@pytest.mark.parametrize("columns", [80, 120])
def test_list_fits_the_terminal_with_ids_and_costs_whole(
    store: Store, runs: dict[str, str], columns: int
) -> None:
    """At 80 and 120 columns the listing fits the width, every id and cost is printed whole
    (never `r… c… $…`), and a column left out for lack of width is named under the table."""
    runner = CliRunner(env={"COLUMNS": str(columns), "FORCE_COLOR": None, "NO_COLOR": None})
    result = invoke(runner, store, "runs", "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert all(len(line.rstrip()) <= columns for line in lines), result.stdout
    assert "…" not in result.stdout
    for execution_id in runs.values():
        execution = store.get_execution(execution_id)
        (row,) = [line for line in lines if execution_id in line]
        assert _render.format_cost(execution.cost_usd) in row
        assert execution.status in row
    if columns == 120:
        assert "research_assistant" in result.stdout
    else:
        assert "not shown for lack of width: pipeline" in " ".join(result.stdout.split())


@pytest.mark.parametrize("columns", [80, 120])
def test_show_model_calls_fit_the_terminal(
    store: Store, runs: dict[str, str], columns: int
) -> None:
    """The model-call table of `runs show` keeps each call's step, model and cost whole at 80
    and 120 columns, dropping the least useful columns rather than squeezing all of them."""
    runner = CliRunner(env={"COLUMNS": str(columns), "FORCE_COLOR": None, "NO_COLOR": None})
    result = invoke(runner, store, "runs", "show", runs["alice"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert all(len(line.rstrip()) <= columns for line in lines), result.stdout
    for call in store.get_execution(runs["alice"]).model_calls:
        (row,) = [line for line in lines if f" {call.step_id}#0 " in line and "$" in line]
        assert call.model is not None and call.model in row
        assert _render.format_cost(call.cost_usd) in row


# -- runs show ------------------------------------------------------------------------------------


def test_show_renders_steps_calls_costs_states_and_logs(
    runner: CliRunner, store: Store, runs: dict[str, str]
) -> None:
    """The detail view lists every step, every model call with its cost, the state and the log."""
    result = invoke(runner, store, "runs", "show", runs["alice"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert runs["alice"] in out and "research_assistant" in out and "alice" in out
    for step in ("retrieve#0", "outline#0", "draft#0", "critique#0"):
        assert step in out
    calls = [line for line in out.splitlines() if "gpt-4o-mini" in line or "claude" in line]
    assert len(calls) == 3
    assert sum(" yes " in line for line in calls) == 1  # the streamed draft
    assert all(re.search(r"\$0\.\d{6}", line) for line in calls)
    assert "retrieval_scores" in out and "doc-" in out
    # The test model answers JSON mode in the shape the prompt shows: nothing to warn about.
    assert "outline JSON" not in out and "outline answer" not in out


def test_show_failed_execution_has_error_and_traceback(
    runner: CliRunner, store: Store, runs: dict[str, str]
) -> None:
    """A failed run shows its error, its traceback and the failing step."""
    result = invoke(runner, store, "runs", "show", runs["failed"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "RuntimeError: upstream timed out" in out and "Traceback" in out
    assert "fetch#0" in out and "failed" in out


def test_show_lists_the_profiles_of_a_run(runner: CliRunner, store: Store) -> None:
    """A profiled run's view lists each profile: kind, trigger, top function and its file."""
    from workbench.profiling import profile_executions

    def busy() -> int:
        return sum(i * i for i in range(400_000))

    with profile_executions("cpu", trigger="execution_time >= 0") as session:
        with workbench.record("hot", inputs={}, store=store) as run:
            for _ in range(5):
                busy()
    (profile,) = session.profiles
    result = invoke(runner, store, "runs", "show", run.id)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "profiles (1)" in out and profile.id in out and "execution_time >= 0" in out
    assert "top:" in out


def test_show_json_round_trips_ids(runner: CliRunner, store: Store, runs: dict[str, str]) -> None:
    """--json prints the whole execution; its ids and stream chunks match the store's records."""
    shown = json.loads(invoke(runner, store, "runs", "show", runs["alice"], "--json").stdout)
    recorded = store.get_execution(runs["alice"])
    assert shown["id"] == recorded.id and shown["trace_id"] == recorded.trace_id
    assert [call["id"] for call in shown["model_calls"]] == [c.id for c in recorded.model_calls]
    assert [s["step_id"] for s in shown["steps"]] == [s.step_id for s in recorded.steps]
    (streamed,) = [call for call in shown["model_calls"] if call["streamed"]]
    assert streamed["chunks"] and all(c["data"].startswith("data:") for c in streamed["chunks"])
    assert "".join(c["data"] for c in streamed["chunks"]).encode() == next(
        c.body for c in recorded.model_calls if c.streamed
    )


def test_json_renders_chunks_that_are_not_utf8_as_base64(
    store: Store, runs: dict[str, str]
) -> None:
    """A chunk that splits a UTF-8 character is base64 under "__bytes__", never mangled text."""
    recorded = store.get_execution(runs["alice"])
    call = dataclasses.replace(
        recorded.model_calls[0],
        chunks=[StreamChunk(0.0, "€".encode()[:2]), StreamChunk(0.1, b"ok")],
    )
    value: Any = _render.execution_json(dataclasses.replace(recorded, model_calls=[call]))
    assert value["model_calls"][0]["chunks"] == [
        {"offset_s": 0.0, "data": {"__bytes__": "4oI="}},
        {"offset_s": 0.1, "data": "ok"},
    ]


class _DeepJSON(http.server.BaseHTTPRequestHandler):
    """Answers every POST with valid JSON nested 300 levels deep."""

    BODY = b'{"id": "x", "choices": ' + b"[" * 300 + b"]" * 300 + b"}"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(self.BODY)))
        self.end_headers()
        self.wfile.write(self.BODY)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_show_a_response_nested_too_deep(runner: CliRunner, store: Store) -> None:
    """A response nested deeper than 250 levels is kept as received and said to be too deep;
    `runs show --json` prints the run instead of failing on it."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _DeepJSON)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with workbench.record("deep", inputs={}, store=store) as run:
            httpx.post(
                f"http://127.0.0.1:{server.server_port}/v1/chat/completions",
                json={"model": "gpt-4o-mini", "messages": []},
            )
    finally:
        server.shutdown()
        server.server_close()
    (call,) = store.get_execution(run.id).model_calls
    assert call.body == _DeepJSON.BODY and call.response is None
    assert call.stream_error is not None and "nested deeper than 250" in call.stream_error
    shown = json.loads(invoke(runner, store, "runs", "show", run.id, "--json").stdout)
    assert "nested deeper than 250" in shown["model_calls"][0]["stream_error"]


def test_list_names_a_damaged_execution_and_lists_the_rest(
    runner: CliRunner, store: Store, runs: dict[str, str]
) -> None:
    """`runs list` over a store with one damaged record lists the others and names the damaged
    id on stderr, with and without --json, where it used to crash with UnicodeDecodeError."""
    conn = sqlite3.connect(store.path)
    (digest,) = conn.execute(
        "SELECT inputs_hash FROM executions WHERE id = ?", (runs["failed"],)
    ).fetchone()
    conn.execute(
        "UPDATE blobs SET codec = 0, data = X'7B2261223A22FF227D' WHERE hash = ?", (digest,)
    )
    conn.commit()
    conn.close()
    for extra in ((), ("--json",)):
        result = invoke(runner, store, "runs", "list", *extra)
        assert result.exit_code == 0, result.output
        assert "Traceback" not in result.output
        assert runs["failed"] not in result.stdout
        assert runs["alice"] in result.stdout and runs["unpriced"] in result.stdout
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("warning: ") and runs["failed"] in line and "runs show" in line


def test_show_unknown_id_is_one_clear_line(
    runner: CliRunner, store: Store, runs: dict[str, str]
) -> None:
    """An id that is not in the store exits 1 with one line naming it and how to list ids."""
    result = invoke(runner, store, "runs", "show", "exec_doesnotexist")
    assert_one_error_line(result, "exec_doesnotexist", "workbench runs list")
    assert result.stdout == ""


def test_corrupt_store_is_one_clear_line(runner: CliRunner, tmp_path: Path) -> None:
    """A file of garbage given as --db exits 1 with one line saying it is not a store."""
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(os.urandom(4096))
    for args in (["runs", "list"], ["runs", "show", "exec_0"]):
        result = runner.invoke(cli, [*args, "--db", str(garbage)])
        assert_one_error_line(result, str(garbage), "not a workbench store")


def test_missing_store_is_an_error_not_a_new_file(runner: CliRunner, tmp_path: Path) -> None:
    """Reading a store that does not exist says so and does not create an empty one."""
    missing = tmp_path / "nowhere" / "workbench.db"
    result = runner.invoke(cli, ["runs", "list", "--db", str(missing)])
    assert_one_error_line(result, str(missing), "workbench demo")
    assert not missing.parent.exists()


def test_module_entry_point_runs_in_a_real_process(
    store: Store, runs: dict[str, str], tmp_path: Path
) -> None:
    """`python -m workbench.cli` works as a process: output on stdout, errors exit 1 on stderr."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}

    def show(execution_id: str) -> subprocess.CompletedProcess[str]:
        command = ["-m", "workbench.cli", "runs", "show", execution_id, "--db", str(store.path)]
        return subprocess.run(
            [sys.executable, *command], capture_output=True, text=True, env=env, cwd=tmp_path,
            timeout=60, check=False,
        )  # fmt: skip

    shown = show(runs["bob"])
    assert shown.returncode == 0, shown.stderr
    assert runs["bob"] in shown.stdout and "draft#0" in shown.stdout
    missing = show("exec_nope")
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.splitlines() == [missing.stderr.strip()]
    assert missing.stderr.startswith("error: no execution 'exec_nope'")


# -- demo -----------------------------------------------------------------------------------------


def test_demo_records_the_research_assistant(runner: CliRunner, tmp_path: Path) -> None:
    """`workbench demo` records a retrieval step and 3 priced calls (1 streamed); prints the id."""
    db = tmp_path / "demo" / "workbench.db"
    result = runner.invoke(cli, ["demo", "--db", str(db)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (execution_id,) = set(EXECUTION_ID.findall(result.stdout))
    assert f"workbench runs show {execution_id} --db {db}" in result.stdout
    assert "3 (1 streamed)" in result.stdout
    with Store(db) as store:
        execution = store.get_execution(execution_id)
    assert execution.status == "completed" and execution.user_id == "demo"
    assert execution.entrypoint == "workbench.examples.research_assistant:research"
    assert [s.step_id for s in execution.steps] == ["retrieve", "outline", "draft", "critique"]
    assert [state.name for state in execution.states] == ["retrieval_scores"]
    calls = execution.model_calls
    streamed = [(c.provider, c.streamed) for c in calls]
    assert streamed == [("openai", False), ("openai", True), ("anthropic", False)]
    assert all(c.cost_usd is not None and c.cost_usd > 0 for c in calls)
    assert execution.cost_usd == pytest.approx(sum(c.cost_usd or 0 for c in calls))
    assert calls[1].ttft_s is not None and len(calls[1].chunks) > 1


def test_demo_and_its_replay_warn_about_nothing(
    runner: CliRunner, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The test model answers the demo's JSON-mode outline with the sections its prompt asks
    for, so neither `workbench demo` nor `workbench replay` of it logs a warning."""
    db = str(tmp_path / "demo.db")
    with caplog.at_level(logging.WARNING):
        demo = runner.invoke(cli, ["demo", "--db", db], catch_exceptions=False)
        assert demo.exit_code == 0, demo.output
        (execution_id,) = set(EXECUTION_ID.findall(demo.stdout))
        replay = runner.invoke(cli, ["replay", execution_id, "--db", db], catch_exceptions=False)
        assert replay.exit_code == 0, replay.output
    assert [r.getMessage() for r in caplog.records] == []
    assert "warning" not in (demo.output + replay.output).lower()
    with Store(db) as store:
        (outline,) = [s for s in store.get_execution(execution_id).steps if s.step_id == "outline"]
    assert isinstance(outline.result, list) and len(outline.result) == 3


def test_the_built_wheel_ships_the_demo_example(tmp_path: Path) -> None:
    """The wheel built from the source holds the demo's example pipeline, its YAML twin and
    the actions that YAML imports, so `workbench demo` works from an install (.ci/run runs it),
    and the web UI's script and stylesheet (`workbench ui` fetches nothing from elsewhere)."""
    source = tmp_path / "source"
    # A copy, so that a stale build/ folder of the checkout cannot put files into the wheel.
    shutil.copytree(
        REPO_ROOT / "workbench", source / "workbench", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(source), "-w", tmp_path],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("pipeline_workbench-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        pipeline = yaml.safe_load(archive.read("workbench/examples/research_assistant.yaml"))
    assert {
        "workbench/examples/__init__.py",
        "workbench/examples/research_assistant.py",
        "workbench/examples/research_actions.py",
        "workbench/examples/research_assistant.yaml",
        "workbench/ui/static/app.js",
        "workbench/ui/static/app.css",
    } <= names
    assert _EXAMPLE.replace(".", "/") + ".py" in names
    for module in pipeline["imports"]:
        assert module.replace(".", "/") + ".py" in names


# -- replay ----------------------------------------------------------------------------------------


def _recorded_offline(store: Store) -> str:
    with (
        ModelServer() as server,
        workbench.record("research_assistant", inputs={}, store=store) as run,
    ):
        research(
            "prompt caching",
            openai_base_url=server.openai_base_url,
            anthropic_base_url=server.anthropic_base_url,
        )
    return run.id


def test_replay_prints_json_of_the_new_execution(runner: CliRunner, store: Store) -> None:
    """`workbench replay ID --json` replays offline and names the new execution and its origin."""
    original_id = _recorded_offline(store)
    result = invoke(runner, store, "replay", original_id, "--modify", "realtime=false", "--json")
    assert result.exit_code == 0, result.output
    value = json.loads(result.stdout)
    assert value["replay_of"] == original_id and value["status"] == "completed"
    assert value["mismatches"] == [] and value["unused"] == [] and len(value["model_calls"]) == 3
    assert store.get_execution(value["execution_id"]).replay_of == original_id


def test_replay_mismatch_is_a_short_diff_with_cli_advice(runner: CliRunner, store: Store) -> None:
    """A replay whose request misses prints a few short lines: the step, the nearest recorded
    request, the diff cut around the change, and the fix as an option of the command
    (`--on-miss live`), not as Python."""
    original_id = _recorded_offline(store)
    result = invoke(runner, store, "replay", original_id, "--input", "topic=latency budgets")
    assert result.exit_code == 1, result.output
    err = result.stderr
    assert err.startswith("error: ") and "Traceback" not in result.output
    assert "in step 'outline'" in err and "nearest recorded request" in err
    assert "--on-miss live" in err and "--on-miss test-model" in err and "on_miss=" not in err
    lines = err.strip().splitlines()
    assert 5 <= len(lines) <= 25 and max(map(len, lines)) <= 220, err
    assert len(err) < 2000, len(err)
    changed = [line.strip() for line in lines if line.strip().startswith(("-", "+"))]
    assert any("prompt caching" in line for line in changed if line.startswith("-"))
    assert any("latency budgets" in line for line in changed if line.startswith("+"))


def test_a_replay_costs_the_same_in_every_view(runner: CliRunner, store: Store) -> None:
    """A replay spent nothing in `runs list`, `runs show`, `report cost`, /metrics and a cost
    alert alike, and small costs print with significant digits (`$0.000026`), never
    `$0.0000`."""
    original_id = _recorded_offline(store)
    result = invoke(runner, store, "replay", original_id, "--json")
    replay_id = json.loads(result.stdout)["execution_id"]
    original = store.get_execution(original_id)
    assert original.cost_usd and original.cost_usd < 0.001
    listing = invoke(runner, store, "runs", "list").stdout.splitlines()
    (replay_row,) = [line for line in listing if replay_id in line]
    (original_row,) = [line for line in listing if original_id in line]
    assert "$0 (replay)" in replay_row
    assert _render.format_cost(original.cost_usd) in original_row
    shown = invoke(runner, store, "runs", "show", replay_id).stdout
    (header,) = [line for line in shown.splitlines() if line.strip("│ ").startswith("cost ")]
    assert "$0 (replay)" in header and _render.format_cost(original.cost_usd) in header
    calls = [line for line in shown.splitlines() if "gpt-4o-mini" in line or "claude" in line]
    assert len(calls) == 3 and all("$0 (replay)" in line for line in calls)
    report = invoke(runner, store, "report", "cost", "--json")
    assert json.loads(report.stdout)["daily"]["total_cost"] == pytest.approx(original.cost_usd)
    text = invoke(runner, store, "report", "cost").stdout
    assert _render.format_cost(original.cost_usd) in text
    assert not re.search(r"\$0\.0000(?!\d)", text), text
    config = WorkbenchConfig.model_validate(
        {"alerts": [{"name": "spend", "expr": "model_cost_dollars > 0"}]}
    )
    manager = AlertManager(config, store=store)
    manager.evaluate()
    assert manager.states["spend"].value == pytest.approx(original.cost_usd)
    registry, collector = store_registry(store.path, load_config(), cache_s=0)
    try:
        scraped = sum(
            sample.value
            for family in registry.collect()
            if family.name == "model_cost_dollars"
            for sample in family.samples
            if sample.name == "model_cost_dollars_total"
        )
    finally:
        collector.close()
    assert scraped == pytest.approx(original.cost_usd)


def test_replay_input_and_dotted_modify_change_one_input(runner: CliRunner, store: Store) -> None:
    """`--input topic=alpacas` and `--modify inputs.topic=alpacas` replay with that topic (the
    other recorded arguments kept), as `inputs='{"topic": "alpacas"}'` does."""
    original_id = _recorded_offline(store)
    for option, topic in (
        (["--input", "topic=alpacas"], "alpacas"),
        (["--modify", "inputs.topic=alpacas"], "alpacas"),
        (["--modify", 'inputs={"topic": "alpacas"}'], "alpacas"),
        # The recorded topic is text, so a value that parses as JSON stays text too.
        (["--input", "topic=2024"], "2024"),
    ):
        args = ["replay", original_id, *option, "--on-miss", "test-model", "--json"]
        result = invoke(runner, store, *args)
        assert result.exit_code == 0, result.output
        replayed = store.get_execution(json.loads(result.stdout)["execution_id"])
        assert replayed.modifications["inputs"] == {"topic": topic}, option
        assert replayed.inputs["topic"] == topic
        outline = next(s for s in replayed.steps if s.step_id == "outline")
        assert topic in json.dumps(outline.parameters)


def test_replay_modify_of_an_input_name_says_how_to_write_it(
    runner: CliRunner, store: Store
) -> None:
    """`--modify topic=alpacas` is one error line naming 'topic', the allowed modifications and
    the two spellings that change an input; `--input topc=x` names the entrypoint's parameters."""
    original_id = _recorded_offline(store)
    result = invoke(runner, store, "replay", original_id, "--modify", "topic=alpacas")
    assert_one_error_line(
        result, "'topic'", "log_level", "--input topic=alpacas", "--modify inputs.topic=alpacas"
    )
    typo = invoke(runner, store, "replay", original_id, "--input", "topc=alpacas")
    assert_one_error_line(typo, "'topc'", "topic, openai_base_url", "--input NAME=VALUE")
    bad = invoke(runner, store, "replay", original_id, "--input", "topic")
    assert_one_error_line(bad, "--input 'topic'", "NAME=VALUE")


def test_replay_bad_modification_is_one_clear_line(runner: CliRunner, store: Store) -> None:
    """An unknown modification key lists the allowed ones."""
    original_id = _recorded_offline(store)
    result = invoke(runner, store, "replay", original_id, "--modify", "temperature=0")
    assert_one_error_line(result, "temperature", "log_level")


def test_replay_from_step_answers_earlier_steps_from_the_recording(
    runner: CliRunner, store: Store
) -> None:
    """`--from-step critique` sends only the critique call; earlier steps give recorded results."""
    original_id = _recorded_offline(store)
    result = invoke(runner, store, "replay", original_id, "--from-step", "critique", "--json")
    assert result.exit_code == 0, result.output
    value = json.loads(result.stdout)
    assert value["status"] == "completed" and value["unused"] == []
    replayed = store.get_execution(value["execution_id"])
    assert replayed.modifications == {"from_step": "critique"}
    assert [call.step_id for call in replayed.model_calls] == ["critique"]
    assert replayed.outputs == store.get_execution(original_id).outputs


def test_replay_from_step_errors_are_one_clear_line(runner: CliRunner, store: Store) -> None:
    """An unknown --from-step step lists the recorded steps; a contradicting --modify is a
    usage error."""
    original_id = _recorded_offline(store)
    unknown = invoke(runner, store, "replay", original_id, "--from-step", "critic")
    assert_one_error_line(unknown, "'critic'", "'critique', 'draft', 'outline', 'retrieve'")
    args = ["replay", original_id, "--from-step", "draft", "--modify", "from_step=critique"]
    both = invoke(runner, store, *args)
    assert both.exit_code == 2 and "contradicts" in both.stderr


# -- help -----------------------------------------------------------------------------------------


def _commands(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from _commands(sub, (*path, name))


def _command_at(path: tuple[str, ...]) -> click.Command:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return command


@pytest.mark.parametrize("path", list(_commands(cli)), ids=lambda p: " ".join(p) or "workbench")
def test_every_command_and_option_has_help(runner: CliRunner, path: tuple[str, ...]) -> None:
    """Every command and subcommand documents itself and each of its options in --help."""
    command = _command_at(path)
    assert command.help and command.help.strip()
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"{' '.join(path)} {param.opts} has no help"
    result = runner.invoke(cli, [*path, "--help"])
    assert result.exit_code == 0
    assert command.help.strip().splitlines()[0] in result.stdout


def test_help_walk_sees_every_command() -> None:
    """The help test above covers the whole tree, so a new command cannot dodge it."""
    assert set(_commands(cli)) == {
        (),
        ("runs",),
        ("runs", "list"),
        ("runs", "show"),
        ("replay",),
        ("diff",),
        ("demo",),
        ("alerts",),
        ("alerts", "export"),
        ("alerts", "check"),
        ("profile",),
        ("profile", "run"),
        ("profile", "show"),
        ("report",),
        ("report", "cost"),
        ("serve-metrics",),
        ("run",),
        ("validate",),
        ("store",),
        ("store", "export"),
        ("store", "export-cassette"),
        ("store", "import"),
        ("store", "import-cassette"),
        ("store", "prune"),
        ("store", "text"),
        ("store", "migrate"),
        ("store", "copy"),
        ("store", "info"),
        ("ui",),
        ("experiments",),
        ("experiments", "compare"),
        ("experiments", "list"),
        ("experiments", "resume"),
        ("experiments", "show"),
    }


def _options_named(flag: str) -> list[tuple[tuple[str, ...], click.Parameter]]:
    """Every option spelled ``flag`` in the whole command tree, with its command's path."""
    return [
        (path, param)
        for path in _commands(cli)
        for param in _command_at(path).params
        if flag in param.opts
    ]


def _definition(param: click.Parameter, *, help: bool = True) -> dict[str, Any]:
    info = param.to_info_dict()
    return info if help else {key: value for key, value in info.items() if key != "help"}


def test_db_option_is_defined_once() -> None:
    """Every --db in the tree is the shared option (same name, type, default, no click
    envvar, same help); only import-cassette words its default differently."""
    reference = click.command()(db_option()(lambda db: None)).params[0]
    found = _options_named("--db")
    assert len(found) >= 15  # runs list/show, replay, diff, demo, run, report, store ...
    for path, param in found:
        assert _definition(param, help=False) == _definition(reference, help=False), path
        assert param.envvar is None and param.help is not None
        if path == ("store", "import-cassette"):
            assert "pytest-recording cassette's module recordings" in param.help
        else:
            assert param.help == DB_HELP, path


def test_json_option_is_defined_once() -> None:
    """Every --json in the tree is the shared flag (``as_json``, off by default); commands
    differ only in the words of its help, which say what they print."""
    reference = click.command()(json_option()(lambda as_json: None)).params[0]
    found = _options_named("--json")
    assert len(found) >= 15
    for path, param in found:
        assert _definition(param, help=False) == _definition(reference, help=False), path
        assert param.name == "as_json" and param.help, path


def test_the_source_spells_db_and_json_once() -> None:
    """No module writes a second ``--db`` or ``--json`` option: each flag is spelled once in
    the package, in workbench/cli/_options.py."""
    package = REPO_ROOT / "workbench"
    for flag in ('"--db"', '"--json"'):
        spelled = [
            path.relative_to(REPO_ROOT).as_posix()
            for path in sorted(package.rglob("*.py"))
            for _ in range(path.read_text(encoding="utf-8").count(flag))
        ]
        assert spelled == ["workbench/cli/_options.py"], (flag, spelled)


def test_python_m_workbench_cli_help_runs() -> None:
    """`python -m workbench.cli --help` runs as a process and lists every top-level command."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    shown = subprocess.run(
        [sys.executable, "-m", "workbench.cli", "--help"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("Usage: workbench ")
    for name in cli.commands:
        assert f"  {name} " in shown.stdout, name


def test_diff_command_exit_codes_through_the_cli(runner: CliRunner, store: Store) -> None:
    """`workbench diff` exits 0 for equal runs, 1 for different ones, and --json is parseable."""
    ids = []
    for answer in ("a", "a", "b"):
        with workbench.record("p", inputs={"q": 1}, store=store) as run:
            run.outputs = {"answer": answer}
        ids.append(run.id)
    store.flush()
    same = runner.invoke(cli, ["diff", ids[0], ids[1], "--db", str(store.path)])
    assert same.exit_code == 0, same.output
    different = runner.invoke(cli, ["diff", ids[0], ids[2], "--json", "--db", str(store.path)])
    assert different.exit_code == 1, different.output
    paths = [d["path"] for d in json.loads(different.stdout)["differences"]]
    assert paths == ["outputs.answer"]


# -- exit codes and errors for scripts -------------------------------------------------------------


def test_errors_exit_2_and_are_json_under_json(
    runner: CliRunner, store: Store, runs: dict[str, str], tmp_path: Path
) -> None:
    """As diff(1): 0 equal, 1 different, 2 trouble — for `workbench diff` and every command's
    errors; with --json an error is one JSON object on stdout, nothing on stderr."""
    a, b = runs["alice"], runs["bob"]
    assert invoke(runner, store, "diff", a, a, "--ignore", "**").exit_code == 2  # itself
    assert invoke(runner, store, "diff", a, b).exit_code == 1
    missing = runner.invoke(cli, ["diff", a, b, "--db", str(tmp_path / "none.db")])
    assert missing.exit_code == 2 and missing.stderr.startswith("error: no store at")
    as_json = invoke(runner, store, "runs", "show", "exec_doesnotexist", "--json")
    assert as_json.exit_code == 2 and as_json.stderr == ""
    error = json.loads(as_json.stdout)["error"]
    assert error["type"] == "ExecutionNotFoundError" and "exec_doesnotexist" in error["message"]
    plain = invoke(runner, store, "runs", "show", "exec_doesnotexist")
    assert plain.exit_code == 2 and plain.stdout == "" and plain.stderr.startswith("error: ")


@pytest.mark.parametrize(
    "args",
    [
        ("runs", "list"),
        ("runs", "show", "exec_x"),
        ("replay", "exec_x"),
        ("diff", "exec_a", "exec_b"),
        ("profile", "show", "prof_x"),
        ("store", "export", "--stdout"),
        ("store", "prune", "--replays"),
        ("store", "export-cassette", "exec_x", "-o", "cassette.yaml"),
    ],
    ids=" ".join,
)
def test_a_missing_store_is_one_error_line_for_every_reader(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
) -> None:
    """Each command that reads a store names a missing --db in one line, exit 2, and creates
    nothing (the one shared check, not a copy per command)."""
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "none.db"
    result = runner.invoke(cli, [*args, "--db", str(missing)])
    assert_one_error_line(result, f"no store at {missing}")
    assert not missing.exists()


def test_money_in_json_is_rounded_to_ten_places() -> None:
    """Amounts under money-named keys lose float noise (10 decimal places); other numbers
    are left alone."""
    value = {"cost_usd": 1.0500000000000001e-05, "by": {"model_cost": [0.1 + 0.2]}, "x": 0.1 + 0.2}
    assert money_rounded(value) == {
        "cost_usd": 1.05e-05,
        "by": {"model_cost": [0.3]},
        "x": 0.1 + 0.2,
    }


def test_demo_json_prints_the_recorded_execution(runner: CliRunner, tmp_path: Path) -> None:
    """`workbench demo --json` prints the execution it recorded, as `runs show --json` would."""
    db = tmp_path / "demo.db"
    result = runner.invoke(cli, ["demo", "--json", "--db", str(db)])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    with Store(db) as store:
        (listed,) = store.list_executions()
    assert printed["id"] == listed.id and printed["model_calls"] and printed["cost_usd"] > 0


def test_serve_metrics_json_prints_where_it_serves(tmp_path: Path, store: Store) -> None:
    """`workbench serve-metrics --json` starts with one JSON line naming its /metrics URL."""
    with workbench.record("served", inputs={}, store=store):
        pass
    store.flush()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "workbench.cli",
            "serve-metrics",
            "--port",
            "0",
            "--json",
            "--db",
            str(store.path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        started = json.loads(server.stdout.readline())
        assert started["store"] == str(store.path) and started["pid"] == server.pid
        metrics_text = httpx.get(started["url"], timeout=10).text
        assert 'pipeline_executions_total{pipeline="served"' in metrics_text
    finally:
        server.terminate()
        server.wait(10)
        if server.stdout is not None:
            server.stdout.close()


def test_shell_completion_offers_execution_ids_from_the_store(
    store: Store, runs: dict[str, str], tmp_path: Path
) -> None:
    """Tab after `workbench runs show` (and diff, replay) offers the store's execution ids that
    start with what was typed; with no store it offers nothing and creates none."""
    from click.shell_completion import ShellComplete

    def complete(args: list[str], incomplete: str) -> list[str]:
        completion = ShellComplete(cli, {}, "workbench", "_WORKBENCH_COMPLETE")
        return [item.value for item in completion.get_completions(args, incomplete)]

    alice = runs["alice"]
    db = ["--db", str(store.path)]
    assert alice in complete(["runs", "show", *db], "")
    assert complete(["runs", "show", *db], alice[:12]) == [
        i for i in runs.values() if i.startswith(alice[:12])
    ]
    assert alice in complete(["diff", *db, runs["bob"]], "exec_")
    assert alice in complete(["replay", *db], "")
    missing = tmp_path / "none.db"
    assert complete(["runs", "show", "--db", str(missing)], "") == [] and not missing.exists()
