"""The web UI's server: its /api/ answers, pages, guards and errors, driven with httpx against
the real app over a real store of recorded example runs (``workbench.ui``)."""

from __future__ import annotations

import asyncio
import re
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from _ui_runs import record_failing, record_profiled, record_python, record_yaml
from click.testing import CliRunner

from workbench.cli import cli
from workbench.store import Store
from workbench.testing import ModelServer
from workbench.ui import create_app
from workbench.ui._app import API, replay_request
from workbench.ui._serve import background_server, public_warning

ROOT = Path(__file__).resolve().parent.parent
ORIGIN = "http://127.0.0.1"


class Client:
    """A synchronous face over httpx's ASGI transport (the app is async, the tests are not)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as client:
                return await client.request(method, path, **kwargs)

        return asyncio.run(go())

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)


#: A test run on both backends: the app over a SQLite file, then over a PostgreSQL database.
both_backends = pytest.mark.parametrize("store", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def store(request: pytest.FixtureRequest, store: Store) -> Store:
    """A SQLite store; a PostgreSQL one for a test marked ``both_backends`` (second run)."""
    if getattr(request, "param", "sqlite") == "postgresql":
        return request.getfixturevalue("postgres_store")  # type: ignore[no-any-return]
    return store


@pytest.fixture
def client(store: Store) -> Client:
    return Client(create_app(store))


@pytest.fixture
def recorded(store: Store, model_server: ModelServer) -> dict[str, str]:
    """The Python example recorded twice (two users, two topics) and its YAML twin once."""
    return {
        "caching": record_python(store, model_server, "prompt caching", user="ana"),
        "alpacas": record_python(store, model_server, "alpacas and their fibre", user="cy"),
        "yaml": record_yaml(store, model_server, "llamas"),
    }


# -- the run list ------------------------------------------------------------------------------


@both_backends
def test_run_list_pages_with_the_total(client: Client, recorded: dict[str, str]) -> None:
    """A page holds `limit` runs, newest first, with the total of all matching runs."""
    first = client.get("/api/runs", params={"limit": 2}).json()
    second = client.get("/api/runs", params={"limit": 2, "offset": 2}).json()
    assert first["total"] == second["total"] == 3
    ids = [r["id"] for r in first["runs"] + second["runs"]]
    assert ids == [recorded["yaml"], recorded["alpacas"], recorded["caching"]]
    assert first["runs"][0]["model_calls"] == 3 and first["runs"][0]["tokens_in"] > 0


@both_backends
def test_run_list_filters_by_pipeline_user_and_status(
    client: Client, recorded: dict[str, str], store: Store
) -> None:
    """Pipeline, user and status filters keep only the runs that match all of them."""
    failed = record_failing(store)
    assert [r["id"] for r in client.get("/api/runs?user=cy").json()["runs"]] == [
        recorded["alpacas"]
    ]
    assert [r["id"] for r in client.get("/api/runs?status=failed").json()["runs"]] == [failed]
    page = client.get("/api/runs?pipeline=research_assistant&user=ana").json()
    assert [r["id"] for r in page["runs"]] == [recorded["caching"]]
    assert client.get("/api/runs?since=2000-01-01&until=2000-01-02").json()["total"] == 0


@both_backends
def test_run_list_searches_the_text_of_prompts(client: Client, recorded: dict[str, str]) -> None:
    """``q`` finds the runs whose prompts hold the words, whatever their case."""
    page = client.get("/api/runs", params={"q": "ALPACAS and their"}).json()
    assert [r["id"] for r in page["runs"]] == [recorded["alpacas"]]
    assert client.get("/api/runs", params={"q": "no prompt says this"}).json()["total"] == 0


@both_backends
def test_run_list_sorts_by_a_column_either_way(client: Client, recorded: dict[str, str]) -> None:
    """``sort`` and ``order`` order the whole list, not just the page."""
    ascending = client.get("/api/runs?sort=started_at&order=asc&limit=1").json()
    assert ascending["runs"][0]["id"] == recorded["caching"]
    by_user = [r["user_id"] for r in client.get("/api/runs?sort=user_id&order=asc").json()["runs"]]
    assert by_user == ["ana", "bo", "cy"]


def test_run_list_refuses_a_bad_sort_naming_the_allowed_ones(client: Client) -> None:
    """An unknown sort key is a 400 that lists the keys there are."""
    answer = client.get("/api/runs?sort=colour")
    assert answer.status_code == 400
    assert "colour" in answer.json()["error"]["message"]
    assert "started_at" in answer.json()["error"]["message"]


@both_backends
def test_facets_list_the_pipelines_and_users(client: Client, recorded: dict[str, str]) -> None:
    """The filter choices are every pipeline and user the store has runs of."""
    facets = client.get("/api/facets").json()
    assert facets["pipelines"] == ["research_assistant"]
    assert facets["users"] == ["ana", "bo", "cy"]


# -- a run ------------------------------------------------------------------------------------


@both_backends
def test_run_trace_nests_every_step_and_model_call(
    client: Client, recorded: dict[str, str]
) -> None:
    """The trace rows are the execution, its four steps under it and each step's model call
    under its step, in start order on one time axis."""
    rows = client.get(f"/api/runs/{recorded['caching']}").json()["trace"]["rows"]
    shape = [(r["kind"], r["depth"], r.get("step_id")) for r in rows]
    assert shape == [
        ("execution", 0, None),
        ("step", 1, "retrieve"),
        ("step", 1, "outline"),
        ("model_call", 2, "outline"),
        ("step", 1, "draft"),
        ("model_call", 2, "draft"),
        ("step", 1, "critique"),
        ("model_call", 2, "critique"),
    ]
    by_key = {r["key"]: r for r in rows}
    for row in rows[1:]:
        parent = by_key[row["parent"]]
        assert parent["depth"] == row["depth"] - 1
        assert parent["start"] <= row["start"] + 1e-6
    draft_call = rows[5]
    assert draft_call["streamed"] and draft_call["ttft_s"] > 0 and len(draft_call["chunks"]) > 3


def test_yaml_run_trace_nests_its_steps_too(client: Client, recorded: dict[str, str]) -> None:
    """The YAML twin's trace has its five steps, three with a model call each."""
    rows = client.get(f"/api/runs/{recorded['yaml']}").json()["trace"]["rows"]
    steps = [r["step_id"] for r in rows if r["kind"] == "step"]
    assert steps == ["retrieve", "outline", "sections", "draft", "critique"]
    calls = [(r["step_id"], r["parent"]) for r in rows if r["kind"] == "model_call"]
    parents = {r["key"]: r["step_id"] for r in rows if r["kind"] == "step"}
    assert [(step, parents[parent]) for step, parent in calls] == [
        ("outline", "outline"),
        ("draft", "draft"),
        ("critique", "critique"),
    ]


def test_model_call_reads_as_a_chat_with_its_stream(
    client: Client, recorded: dict[str, str]
) -> None:
    """A streamed call: system and user messages, the assistant's answer, SSE events with
    growing offsets, tokens (cached apart) and its cost."""
    run = client.get(f"/api/runs/{recorded['caching']}").json()
    rows = run["trace"]["rows"]
    draft = next(r for r in rows if r["kind"] == "model_call" and r["step_id"] == "draft")
    call = client.get(f"/api/runs/{recorded['caching']}/calls/{draft['call_id']}").json()
    assert [m["role"] for m in call["messages"]] == ["system", "user"]
    assert "prompt caching" in call["messages"][1]["parts"][0]["text"]
    answer = call["response_messages"][0]
    assert answer["role"] == "assistant" and answer["parts"][0]["text"] == call["text"]
    offsets = [e["offset_s"] for e in call["events"]]
    assert len(offsets) > 3 and offsets == sorted(offsets)
    assert call["input_tokens"] > 0 and call["output_tokens"] > 0
    assert call["cache_read_tokens"] is not None and call["cost_usd"] > 0
    assert call["request_headers"]["authorization"] == "[REDACTED]"


def test_step_shows_parameters_result_and_the_error_with_traceback(
    client: Client, store: Store
) -> None:
    """A failed step's view has its parameters, its error and the traceback."""
    failed = record_failing(store)
    step = client.get(f"/api/runs/{failed}/steps/explode/0").json()
    assert step["status"] == "failed" and step["parameters"] == {"reason": "no sources"}
    assert step["error"]["type"] == "ValueError"
    assert "cannot go on: no sources" in step["error"]["message"]
    assert "explode" in step["error"]["traceback"]


def test_run_shows_states_logs_and_profiles(
    client: Client, store: Store, recorded: dict[str, str], tmp_path: Path
) -> None:
    """The run answer holds its states, and a profiled run its profile."""
    run = client.get(f"/api/runs/{recorded['caching']}").json()
    assert [s["name"] for s in run["states"]] == ["retrieval_scores"]
    profiled = record_profiled(store, tmp_path)
    profiles = client.get(f"/api/runs/{profiled}").json()["profiles"]
    assert [p["kind"] for p in profiles] == ["cpu"]


# -- replay and diff ---------------------------------------------------------------------------


def test_replay_starts_from_a_post_and_records_the_replay(
    client: Client, store: Store, recorded: dict[str, str]
) -> None:
    """POST /replay runs a replay of the run; the new run names it in replay_of."""
    answer = client.post(f"/api/runs/{recorded['caching']}/replay", json={})
    assert answer.status_code == 200, answer.text
    replay = answer.json()
    assert replay["status"] == "completed" and replay["replay_of"] == recorded["caching"]
    assert store.get_execution(replay["execution_id"]).replay_of == recorded["caching"]
    listed = client.get(f"/api/runs/{recorded['caching']}").json()["replays"]
    assert listed == [replay["execution_id"]]


def test_replay_with_a_prompt_override_diverges_at_that_step(
    client: Client, recorded: dict[str, str]
) -> None:
    """A replay with draft's system prompt changed: the diff's first divergent step is draft,
    with the changed words as the engine's word segments."""
    original = recorded["caching"]
    payload = {"prompt_step": "draft", "system": "Be kinder.", "on_miss": "test-model"}
    replay = client.post(f"/api/runs/{original}/replay", json=payload).json()
    diff = client.get(f"/api/diff?a={original}&b={replay['execution_id']}").json()
    assert diff["schema"] == "workbench.diff/1"
    assert diff["summary"]["first_divergent_step"] == "draft#0"
    assert [s["key"] for s in diff["steps"] if s["first_divergent"]] == ["draft#0"]
    prompt = next(
        d
        for d in diff["differences"]
        if d["within"] == "model_calls.0.request.body.messages.0.content"
    )
    inserted = "".join(text for op, text in prompt["segments"] if op == "insert")
    deleted = "".join(text for op, text in prompt["segments"] if op == "delete")
    assert "kinder" in inserted and "concisely" in deleted


def test_replay_request_refuses_unknown_fields_naming_them() -> None:
    """A replay request with a field it does not take is a ConfigError listing the fields."""
    from workbench.exceptions import ConfigError

    with pytest.raises(ConfigError, match=r"colour.*takes"):
        replay_request({"colour": "red"})
    with pytest.raises(ConfigError, match="prompt_step"):
        replay_request({"system": "Be terse."})


def test_cross_site_posts_are_refused_and_start_nothing(
    client: Client, store: Store, recorded: dict[str, str]
) -> None:
    """A POST naming another origin, or sent cross-site, is a 403 and records no replay."""
    path = f"/api/runs/{recorded['caching']}/replay"
    assert client.post(path, json={}, headers={"origin": "http://evil.example"}).status_code == 403
    assert client.post(path, json={}, headers={"sec-fetch-site": "cross-site"}).status_code == 403
    assert client.post(path, json={}, headers={"origin": "null"}).status_code == 403
    assert store.list_executions(replay_of=recorded["caching"]) == []


def test_a_request_for_another_host_name_is_refused(client: Client) -> None:
    """A Host that is not loopback (a rebound DNS name) gets nothing from a loopback server."""
    answer = client.get("/api/runs", headers={"host": "evil.example:8765"})
    assert answer.status_code == 421 and "evil.example" in answer.json()["error"]["message"]


def test_pages_allow_only_their_own_scripts(client: Client, recorded: dict[str, str]) -> None:
    """Every page names only this server's assets, under a self-only CSP (no CDN)."""
    for path in ("/runs", f"/runs/{recorded['caching']}", "/costs", "/experiments"):
        page = client.get(path)
        assert page.status_code == 200
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert re.findall(r'(?:src|href)="(https?:)', page.text) == []
    script = client.get("/static/app.js")
    assert script.status_code == 200 and "https://" not in script.text


# -- bad input ---------------------------------------------------------------------------------


def test_unknown_ids_are_404_pages_naming_the_id(client: Client, recorded: dict[str, str]) -> None:
    """An unknown run, profile or call is a 404 whose page or JSON names the id."""
    for path in ("/runs/exec_nowhere", "/profiles/prof_nowhere", "/diff?a=exec_nowhere&b=x"):
        page = client.get(path)
        assert page.status_code == 404 and "nowhere" in page.text, path
        assert "<h1>Not found</h1>" in page.text
    for path in (
        "/api/runs/exec_nowhere",
        f"/api/runs/{recorded['caching']}/calls/call_nowhere",
        f"/api/runs/{recorded['caching']}/steps/nowhere/0",
        "/api/profiles/prof_nowhere",
    ):
        answer = client.get(path)
        assert answer.status_code == 404 and "nowhere" in answer.json()["error"]["message"], path


def test_a_store_that_cannot_be_opened_is_a_clear_page(tmp_path: Path) -> None:
    """A file that is not a store, or no file, is a 503 page saying which and why."""
    not_a_store = tmp_path / "notes.db"
    not_a_store.write_text("these are my notes, not a database")
    page = Client(create_app(not_a_store)).get("/runs")
    assert page.status_code == 503 and "not a workbench store" in page.text
    missing = Client(create_app(tmp_path / "nothing.db")).get("/api/runs")
    assert missing.status_code == 503
    assert "no store at" in missing.json()["error"]["message"]


def test_cli_with_a_store_that_cannot_be_opened_exits_with_a_message(tmp_path: Path) -> None:
    """`workbench ui --db` of a non-store is one error line and exit 2, nothing served."""
    not_a_store = tmp_path / "notes.db"
    not_a_store.write_text("these are my notes, not a database")
    result = CliRunner().invoke(cli, ["ui", "--db", str(not_a_store), "--port", "0"])
    assert result.exit_code == 2
    assert "error:" in result.output and "not a workbench store" in result.output
    missing = CliRunner().invoke(cli, ["ui", "--db", str(tmp_path / "none.db")])
    assert missing.exit_code == 2 and "no store at" in missing.output


def test_cli_without_the_ui_extra_names_it(tmp_path: Path, store: Store) -> None:
    """With starlette not importable, `workbench ui` says to install pipeline-workbench[ui]."""
    code = (
        "import sys; sys.modules['starlette'] = None\n"
        "from workbench.cli import main\n"
        f"main(['ui', '--db', {str(store.path)!r}])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert done.returncode == 2
    assert "pip install 'pipeline-workbench[ui]'" in done.stderr


def test_importing_workbench_loads_no_web_server() -> None:
    """`import workbench` and its CLI do not import starlette or uvicorn (the extra is lazy)."""
    code = (
        "import sys, workbench, workbench.cli, workbench.ui\n"
        "print(sorted(m for m in ('starlette', 'uvicorn') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert done.stdout.strip() == "[]", done.stderr


def test_serving_beyond_loopback_warns() -> None:
    """Another host than loopback gets a warning that every run is readable from there."""
    assert public_warning("127.0.0.1") is None and public_warning("localhost") is None
    warning = public_warning("0.0.0.0")
    assert warning is not None and "anyone who can reach" in warning


def test_cli_serves_on_loopback_until_stopped(store: Store, recorded: dict[str, str]) -> None:
    """`workbench ui --port 0` serves the store on 127.0.0.1 and answers the run list."""
    store.flush()
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "workbench.cli", "ui", "--db", str(store.path), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 60)
        assert ready, "workbench ui printed no address within 60 s"
        line = process.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert url, line
        with httpx.Client() as http:
            assert http.get(url.group(0) + "api/runs").json()["total"] == 3
    finally:
        process.terminate()
        process.communicate(timeout=30)


# -- costs, profiles, experiments, the API's index ---------------------------------------------


@both_backends
def test_costs_group_daily_cost_by_model_and_show_budgets(
    client: Client, recorded: dict[str, str]
) -> None:
    """Today's cost is split by the models called, and a daily budget shows what is spent."""
    Path("workbench.yaml").write_text(
        yaml.safe_dump({"cost_tracking": {"budgets": {"daily_limit": 1.0, "per_user_limit": 0.5}}})
    )
    costs = client.get("/api/costs?days=7&by=model").json()
    assert len(costs["days"]) == 7
    names = {s["name"] for s in costs["series"]}
    assert names == {"gpt-4o-mini", "claude-3-5-haiku-latest"}
    assert costs["totals"][-1] == pytest.approx(costs["total"]) and costs["total"] > 0
    daily = next(b for b in costs["budgets"] if b["name"] == "daily")
    assert daily["spent"] == pytest.approx(costs["total"]) and 0 < daily["ratio"] < 1
    users = {b["user"] for b in costs["budgets"] if b["name"] == "per_user"}
    assert users == {"ana", "bo", "cy"}
    by_user = client.get("/api/costs?days=7&by=user").json()
    assert {s["name"] for s in by_user["series"]} == {"ana", "bo", "cy"}


def test_cpu_profile_gives_its_functions_and_speedscope_file(
    client: Client, store: Store, tmp_path: Path
) -> None:
    """A CPU profile's answer names the hot function, and its speedscope file is served."""
    run = store.get_execution(record_profiled(store, tmp_path))
    profile = client.get(f"/api/profiles/{run.profiles[0].id}").json()
    assert "crunch" in [f["name"] for f in profile["top_functions"]]
    main = next(a for a in profile["artifacts"] if a["role"] == "main")
    assert main["format"] == "speedscope" and main["available"]
    document = client.get(f"/api/profiles/{profile['id']}/artifact?role=main").json()
    assert document["profiles"] and document["shared"]["frames"]
    assert client.get(f"/profiles/{profile['id']}").status_code == 200


def test_memory_profile_flame_graph_is_served_as_it_is(
    client: Client, store: Store, tmp_path: Path
) -> None:
    """memray's flame graph HTML is served byte for byte, without the pages' own CSP."""
    pytest.importorskip("memray", reason="memray is not installed (the profiling extra)")
    from _ui_runs import _environment

    import workbench

    config = tmp_path / "workbench.yaml"
    trigger = {"condition": "memory_usage > 1MB", "profile_type": "memory", "heap_dump": True}
    profiling = {"check_interval": 0.01, "types": ["memory"], "triggers": [trigger]}
    config.write_text(yaml.safe_dump({"profiling": profiling}))
    with _environment(WORKBENCH_CONFIG=str(config)):
        with workbench.record("fat", inputs={}, store=store) as run:
            kept = [bytearray(1024 * 1024) for _ in range(24)]
        del kept
    (profile,) = store.get_execution(run.id).profiles
    flamegraph = Path(profile.summary.artifacts["flamegraph"])
    answer = client.get(f"/api/profiles/{profile.id}/artifact?role=flamegraph")
    assert answer.status_code == 200 and answer.content == flamegraph.read_bytes()
    assert answer.headers["content-type"].startswith("text/html")
    assert "content-security-policy" not in answer.headers
    described = client.get(f"/api/profiles/{profile.id}").json()["artifacts"]
    assert next(a["format"] for a in described if a["available"]) == "html"  # then the capture


def test_experiments_list_changed_runs_costliest_first_each_with_its_diff(
    client: Client, store: Store, recorded: dict[str, str]
) -> None:
    """An experiment that changes one step's output is listed with its runs, the changed
    ones first and costliest first, each linking to a diff page that opens."""
    from workbench.debugging import RequestReplay
    from workbench.examples import research_assistant as ra

    RequestReplay(store).replay_many(
        {"pipeline_id": ra.PIPELINE_ID},
        modifications={"step_outputs": {"critique": "Looks fine."}},
        engine="inline",
        name="terse critique",
    )
    store.flush()
    (shown,) = client.get("/api/experiments").json()["experiments"]
    assert (shown["name"], shown["runs"], shown["changed"]) == ("terse critique", 3, 3)
    runs = shown["run_list"]
    assert {r["original_id"] for r in runs} == set(recorded.values())  # the YAML twin too
    costs = [r["cost_after"] or 0.0 for r in runs]
    assert costs == sorted(costs, reverse=True)
    assert all(r["first_divergent_step"] == "critique#0" for r in runs)
    for run in runs:
        assert client.get(run["diff"]).status_code == 200


def test_experiments_answer_is_an_empty_list(client: Client) -> None:
    """With no experiments in the store, the page is there and the list is empty."""
    assert client.get("/api/experiments").json()["experiments"] == []
    assert client.get("/experiments").status_code == 200


def test_every_endpoint_is_documented() -> None:
    """docs/ui.md describes every path the API index lists."""
    text = (ROOT / "docs" / "ui.md").read_text()
    for method, path, _ in API:
        assert f"### `{method} {path}`" in text, path
    assert "/api" in Client(create_app(ROOT / "no.db")).get("/api").json()["endpoints"][0]["path"]


@pytest.fixture
def served(store: Store, recorded: dict[str, str]) -> Iterator[str]:
    with background_server(store) as url:
        yield url


def test_a_real_server_answers_the_api(served: str) -> None:
    """uvicorn on 127.0.0.1 in this process serves the same answers as the app."""
    with httpx.Client() as http:
        assert http.get(f"{served}/api/runs").json()["total"] == 3
        assert http.get(f"{served}/api/facets").json()["users"] == ["ana", "bo", "cy"]
