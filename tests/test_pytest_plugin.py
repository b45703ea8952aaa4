"""The pytest plugin, driven through pytester: each marker, record mode and option, passing and
failing, against the real test model server on 127.0.0.1."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path

import openai
import pytest
from _pytest.pytester import SysModulesSnapshot

import workbench
from workbench.exceptions import ConfigError
from workbench.store import Store
from workbench.testing import Budget, ModelServer, TestRun

pytest_plugins = ["pytester"]

# The inner test suites' conftest: a fixture that asks the outer session's model server.
CONFTEST = """
import openai, pytest

URL = {url!r}


@pytest.fixture
def ask():
    client = openai.OpenAI(base_url=URL, api_key="sk-test", max_retries=0)

    def ask(text="hi", model="gpt-4o-mini", latency=None):
        headers = {{"x-workbench-latency": str(latency)}} if latency else None
        reply = client.chat.completions.create(
            model=model, messages=[{{"role": "user", "content": text}}], extra_headers=headers
        )
        return reply.choices[0].message.content

    return ask
"""


@pytest.fixture
def project(
    pytester: pytest.Pytester, model_server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> pytest.Pytester:
    """A pytester project whose tests can ask the model server (``ask`` fixture), off CI."""
    monkeypatch.delenv("CI", raising=False)
    # An in-process run forgets the modules first imported during it. workbench and the HTTP
    # libraries patch or cache process-wide state when imported (logging, the httpx classes,
    # exception maps), so importing them a second time later would stack a second copy: keep
    # every module but the inner suite's own, as a real pytest process would.
    monkeypatch.setattr(
        pytester,
        "_Pytester__take_sys_modules_snapshot",
        lambda: SysModulesSnapshot(preserve=_not_the_inner_suites),
    )
    pytester._sys_modules_snapshot = SysModulesSnapshot(preserve=_not_the_inner_suites)  # type: ignore[attr-defined]
    pytester.makeconftest(CONFTEST.format(url=model_server.openai_base_url))
    return pytester


def _not_the_inner_suites(name: str) -> bool:
    return name != "conftest" and not name.startswith("test_")


def run(project: pytest.Pytester, *args: str) -> pytest.RunResult:
    # Hypothesis' plugin costs a second per inner session; the inner suites do not use it.
    return project.runpytest(
        "-p",
        "no:cacheprovider",
        "-p",
        "no:hypothesispytest",
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",
        *args,
    )


def record_execution(path: Path | str, server: ModelServer, text: str, latency: float = 0.0) -> str:
    """Record one execution with one model call into the store at ``path``; its id."""
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)
    store = Store(path)
    headers = {"x-workbench-latency": str(latency)} if latency else None
    with workbench.record("recorded", inputs={}, store=store) as run:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": text}], extra_headers=headers
        )
    store.close()
    return run.id


def test_workbench_run_exposes_cost_tokens_calls_steps_and_latency(
    project: pytest.Pytester,
) -> None:
    """The fixture's values add up the test body's calls and steps as recorded so far."""
    project.makepyfile(
        """
        import workbench

        def test_values(ask, workbench_run):
            assert workbench_run.cost_usd == 0 and workbench_run.model_calls == []

            @workbench.step("summarise")
            def summarise():
                return ask("summarise this")

            summarise()
            ask("and this")
            assert len(workbench_run.model_calls) == 2
            assert [s.step_id for s in workbench_run.steps] == ["summarise"]
            assert 0 < workbench_run.cost_usd < 0.01
            tokens = workbench_run.tokens
            assert tokens.input > 0 and tokens.output > 0
            assert tokens.total == tokens.input + tokens.output
            assert 0 < workbench_run.latency.p50 <= workbench_run.latency.p95
            assert workbench_run.latency.p95 <= workbench_run.latency.p99 < 5
            assert workbench_run.latency.steps.count == 1
            assert workbench_run.duration_s >= workbench_run.latency.p50
        """
    )
    run(project).assert_outcomes(passed=1)


def test_cost_and_token_markers_pass_and_fail_with_the_costliest_calls(
    project: pytest.Pytester,
) -> None:
    """max_cost and max_tokens pass under their limits and fail over them, naming the measure,
    the limit and the costliest calls."""
    project.makepyfile(
        """
        import pytest

        @pytest.mark.max_cost(1.0)
        @pytest.mark.max_tokens(100_000)
        def test_cheap(ask):
            ask("hello")

        @pytest.mark.max_cost(0.0000001)
        def test_too_expensive(ask):
            ask("a long question " * 30)
            ask("short")

        @pytest.mark.max_tokens(3)
        def test_too_many_tokens(ask):
            ask("a long question " * 10)
        """
    )
    result = run(project)
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "max_cost: this test's model calls cost $*, over the limit of $0.0000001 (2 calls).",
            "most expensive calls:",
            "*openai gpt-4o-mini  no step  *",
            "max_tokens: this test's model calls used * tokens *, over the limit of 3.",
            "calls with the most tokens:",
        ]
    )


def test_unknown_price_fails_a_cost_budget(project: pytest.Pytester) -> None:
    """A call whose price is unknown makes the cost unknown, which no budget accepts."""
    project.makepyfile(
        """
        import pytest

        @pytest.mark.max_cost(100)
        def test_unpriced(ask, workbench_run):
            ask("hi", model="house-model-7")
            assert workbench_run.cost_usd is None
        """
    )
    result = run(project)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["max_cost: the cost of this test is unknown*house-model-7*"])


def test_latency_marker_passes_and_fails_on_percentiles_and_total(project: pytest.Pytester) -> None:
    """max_latency holds p95 and total to their limits, listing the slowest calls."""
    project.makepyfile(
        """
        import pytest

        @pytest.mark.max_latency(p95=30, p99=30, total=60)
        def test_fast_enough(ask):
            ask("quick")

        @pytest.mark.max_latency(p95=0.05)
        def test_slow_call(ask):
            ask("quick")
            ask("slow", latency=0.12)

        @pytest.mark.max_latency(total=0.05)
        def test_slow_body(ask):
            ask("slow", latency=0.1)
        """
    )
    result = run(project)
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            # Timed on a shared machine: the figures are at least the server's delays.
            "max_latency: p95 model-call latency 0.1*s is over the limit of 0.050s (over 2 calls).",
            "slowest calls:",
            "    0.1*s  openai gpt-4o-mini*",
            "max_latency: total time *s is over the limit of 0.050s (the wall time of the "
            "test body).",
        ]
    )


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ("max_cost('cheap')", "*max_cost('cheap'): usd must be a number >= 0*"),
        ("max_tokens(1.5)", "*max_tokens takes a whole number*"),
        ("max_latency(2)", "*max_latency takes seconds by keyword: p50=, p95=, p99=, total=*"),
        ("max_latency(p90=1)", "*max_latency takes seconds by keyword*"),
        ("workbench(record_mode='sometimes')", "*record_mode* 'sometimes'*record modes: none,*"),
        ("workbench(store='x.db')", "*workbench takes record_mode, block_network, allowed_hosts*"),
        ("replay(42)", "*replay takes one execution id and an optional store*"),
    ],
)
def test_a_bad_marker_is_an_error_naming_what_is_allowed(
    project: pytest.Pytester, marker: str, message: str
) -> None:
    """A marker given the wrong arguments errors at setup with what it takes."""
    project.makepyfile(
        f"""
        import pytest

        @pytest.mark.{marker}
        def test_marked():
            pass
        """
    )
    result = run(project)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([message])


RECORDED_TEST = """
import os, workbench

def test_recorded(ask, workbench_run):
    with workbench.record("inner", inputs={}):
        ask("inside an execution the test starts")
    ask(os.environ.get("QUESTION", "what is recorded?"))
"""


def test_record_modes_once_none_new_all(
    project: pytest.Pytester, model_server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """once records then replays, none only replays (an unrecorded call fails the test with the
    nearest recorded request), new adds calls, all records everything again."""
    project.makepyfile(RECORDED_TEST)
    store = ["--workbench-store", "recordings.db"]
    sent = model_server.request_count

    def requests_since() -> int:
        nonlocal sent
        now = model_server.request_count
        count, sent = now - sent, now
        return count

    run(project, *store).assert_outcomes(passed=1)  # default mode off CI: once
    assert requests_since() == 2
    run(project, *store, "--workbench-record-mode=once").assert_outcomes(passed=1)
    assert requests_since() == 0
    run(project, *store, "--workbench-record-mode=none").assert_outcomes(passed=1)
    assert requests_since() == 0

    monkeypatch.setenv("QUESTION", "a question never recorded")
    result = run(project, *store, "--workbench-record-mode=none")
    result.assert_outcomes(failed=1)
    assert requests_since() == 0
    result.stdout.fnmatch_lines(
        [
            "1 model call(s) had no recorded answer (record mode 'none' answers only from the "
            "test's recording exec_*",
            "  POST /v1/chat/completions model=gpt-4o-mini 'a question never recorded'  (no step)",
            "    nearest recorded request: POST /v1/chat/completions model=gpt-4o-mini "
            "'what is recorded?'",
            '      -      "content": "what is recorded?",',
            '      +      "content": "a question never recorded",',
        ]
    )
    assert "Error code: 400" not in result.stdout.str()  # replaced by the explanation
    run(project, *store, "--workbench-record-mode=once").assert_outcomes(failed=1)

    run(project, *store, "--workbench-record-mode=new").assert_outcomes(passed=1)
    assert requests_since() == 1  # only the new question went out
    run(project, *store, "--workbench-record-mode=none").assert_outcomes(passed=1)
    assert requests_since() == 0
    run(project, *store, "--workbench-record-mode=all").assert_outcomes(passed=1)
    assert requests_since() == 2


def test_on_ci_the_default_mode_is_none(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With CI set and no recording, a model call fails the test and says how to record."""
    project.makepyfile(RECORDED_TEST)
    monkeypatch.setenv("CI", "true")
    result = run(project)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*record mode 'none', and the test has no recording in */recordings/"
            "test_on_ci_the_default_mode_is_none.db; record it with "
            "--workbench-record-mode=once*and commit the recordings file*"
        ]
    )


def _recordings(project: pytest.Pytester) -> tuple[bytes, dict[str, int]]:
    """The committed recordings file of the inner suite's module: its bytes and row counts."""
    path = project.path / "recordings" / "test_recorded.db"
    assert path.exists(), "no recordings file beside the tests"
    with Store(path) as store:
        counts = store.stats()
    return path.read_bytes(), counts


def test_recordings_persist_beside_the_tests_and_ci_replays_them(
    project: pytest.Pytester, model_server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no store configured, the default `once` records into recordings/<module>.db beside
    the test module; the next CI runs replay from it and leave it byte for byte unchanged."""
    project.makepyfile(test_recorded=RECORDED_TEST)
    sent = model_server.request_count
    run(project).assert_outcomes(passed=1)
    assert model_server.request_count == sent + 2
    recorded, counts = _recordings(project)
    assert counts["executions"] == 2  # the test body and the execution it started
    monkeypatch.setenv("CI", "1")
    for _ in range(3):
        run(project).assert_outcomes(passed=1)
        assert _recordings(project) == (recorded, counts)
    assert model_server.request_count == sent + 2
    assert sorted(p.name for p in (project.path / "recordings").iterdir()) == ["test_recorded.db"]


def test_a_test_without_model_calls_keeps_no_recording(project: pytest.Pytester) -> None:
    """A recording run that calls no model writes no recordings file (as vcrpy writes no empty
    cassette), and a test that stopped calling models loses its old recording on rewrite."""
    project.makepyfile(
        test_recorded="""
        import os

        def test_maybe(ask, workbench_run):
            if os.environ.get("ASK"):
                ask("hi")
        """
    )
    run(project).assert_outcomes(passed=1)
    assert not (project.path / "recordings").exists()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ASK", "1")
        run(project).assert_outcomes(passed=1)
    assert _recordings(project)[1]["executions"] == 1
    run(project, "--workbench-record-mode=rewrite").assert_outcomes(passed=1)
    assert _recordings(project)[1]["executions"] == 0


def test_all_rewrite_and_new_replace_the_recording_instead_of_appending(
    project: pytest.Pytester, model_server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """all, rewrite and new each leave one recording per test (the new one), which replays;
    a shared --workbench-store is replaced in the same way."""
    project.makepyfile(test_recorded=RECORDED_TEST)
    run(project).assert_outcomes(passed=1)
    _, counts = _recordings(project)
    for mode in ("all", "rewrite", "new", "all"):
        run(project, f"--workbench-record-mode={mode}").assert_outcomes(passed=1)
        assert _recordings(project)[1] == counts, mode
    sent = model_server.request_count
    run(project, "--workbench-record-mode=none").assert_outcomes(passed=1)
    assert model_server.request_count == sent

    shared = ["--workbench-store", "shared.db"]
    for mode in ("once", "all", "rewrite", "none", "none"):
        run(project, *shared, f"--workbench-record-mode={mode}").assert_outcomes(passed=1)
        with Store(project.path / "shared.db") as store:
            assert len(store.list_executions()) == 2, mode


def test_disable_recording_sends_calls_for_real_and_keeps_no_recording(
    project: pytest.Pytester, model_server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--disable-recording (pytest-recording's name) answers nothing from the recording and
    writes nothing to it, even on CI; without a recording it creates no file."""
    project.makepyfile(test_recorded=RECORDED_TEST)
    sent = model_server.request_count
    run(project, "--disable-recording").assert_outcomes(passed=1)
    assert model_server.request_count == sent + 2
    assert not (project.path / "recordings").exists()
    run(project).assert_outcomes(passed=1)
    before = _recordings(project)
    monkeypatch.setenv("CI", "1")
    monkeypatch.setenv("QUESTION", "a question never recorded")
    run(project, "--workbench-disable-recording").assert_outcomes(passed=1)
    assert model_server.request_count == sent + 6
    assert _recordings(project) == before


def test_latency_under_replay_is_the_recorded_latency(
    project: pytest.Pytester, model_server: ModelServer
) -> None:
    """A test replaying a slow recording fails a latency budget the replay itself would meet,
    and the message says the recorded latencies count."""
    project.makepyfile(
        """
        import pytest

        @pytest.mark.max_latency(p95=0.1)
        def test_slow_model(ask, workbench_run):
            ask("slow", latency=0.2)
        """
    )
    store = ["--workbench-store", "recordings.db"]
    run(project, *store).assert_outcomes(failed=1)  # recorded: the model really was slow
    sent = model_server.request_count
    result = run(project, *store, "--workbench-record-mode=none")
    result.assert_outcomes(failed=1)
    assert model_server.request_count == sent
    result.stdout.fnmatch_lines(
        [
            "max_latency: p95 model-call latency 0.2*s is over the limit of 0.100s (over 1 "
            "call). Under replay: 1 of 1 calls were answered from recording exec_*: their "
            "recorded latencies count, not the replay's speed.",
            "*(recorded)",
        ]
    )


def test_replay_marker_answers_from_a_recorded_execution(
    project: pytest.Pytester, model_server: ModelServer
) -> None:
    """@pytest.mark.replay serves an execution's calls: the same call passes without reaching
    the server, a different one fails, an unknown id is an error."""
    recorded = record_execution(project.path / "prod.db", model_server, "recorded question")
    project.makepyfile(
        f"""
        import pytest

        @pytest.mark.replay({recorded!r}, store="prod.db")
        def test_same(ask, workbench_run):
            assert ask("recorded question")
            assert workbench_run.summary().recording_id == {recorded!r}

        @pytest.mark.replay({recorded!r}, store="prod.db")
        def test_different(ask):
            ask("another question")

        @pytest.mark.replay("exec_nope", store="prod.db")
        def test_unknown():
            pass
        """
    )
    sent = model_server.request_count
    result = run(project)
    result.assert_outcomes(passed=1, failed=1, errors=1)
    assert model_server.request_count == sent
    result.stdout.fnmatch_lines(
        [
            "*@pytest.mark.replay('exec_nope'): no such execution in *",
            f"*had no recorded answer (@pytest.mark.replay({recorded!r}) answers calls from "
            f"that execution only)*",
        ]
    )
    assert "During handling" not in result.stdout.str()


def test_replay_marker_answers_from_an_execution_in_postgresql(
    project: pytest.Pytester, model_server: ModelServer, postgres_url: str
) -> None:
    """@pytest.mark.replay(id, store="postgresql://...") serves the calls of an execution
    recorded into PostgreSQL (the URL is not looked for as a file)."""
    recorded = record_execution(postgres_url, model_server, "recorded question")
    project.makepyfile(
        f"""
        import pytest

        @pytest.mark.replay({recorded!r}, store={postgres_url!r})
        def test_same(ask, workbench_run):
            assert ask("recorded question")
            assert workbench_run.summary().recording_id == {recorded!r}
        """
    )
    sent = model_server.request_count
    run(project).assert_outcomes(passed=1)
    assert model_server.request_count == sent


def test_block_network_refuses_connections_off_the_machine(project: pytest.Pytester) -> None:
    """--workbench-block-network fails a connection to another host (before any packet leaves)
    and a model call to a remote API, while loopback calls go through."""
    project.makepyfile(
        """
        import socket
        import openai
        import pytest
        from workbench.exceptions import NetworkBlockedError

        def test_loopback_is_allowed(ask, workbench_run):
            ask("local")

        def test_plain_socket_is_blocked():
            with pytest.raises(NetworkBlockedError, match="blocked a connection to 203.0.113.9"):
                socket.create_connection(("203.0.113.9", 443), timeout=1)

        @pytest.mark.workbench(record_mode="all")
        def test_remote_model_call_fails_the_test(workbench_run):
            client = openai.OpenAI(
                base_url="https://api.openai.invalid/v1", api_key="sk-test", max_retries=0
            )
            try:
                client.chat.completions.create(model="gpt-4o-mini", messages=[])
            except openai.APIStatusError:
                pass  # swallowed: the test still fails
        """
    )
    result = run(project, "--workbench-block-network")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        ["POST https://api.openai.invalid/v1/chat/completions would leave the machine*"]
    )


def test_workbench_store_isolation(project: pytest.Pytester) -> None:
    """Two tests get two temporary stores, each removed when its test ends; a shared store is
    one file for the whole session, kept."""
    project.makepyfile(
        """
        import os
        import workbench
        SEEN = []

        def test_one(workbench_store):
            SEEN.append(workbench_store.path)
            with workbench.record("one", inputs={}):
                pass  # the default store is the test's store
            assert [e.pipeline_id for e in workbench_store.list_executions()] == ["one"]

        def test_two(workbench_store):
            shared = bool(os.environ.get("SHARED"))
            SEEN.append(workbench_store.path)
            assert (SEEN[0] == SEEN[1]) == shared
            assert len(workbench_store.list_executions()) == (1 if shared else 0)
            assert SEEN[0].exists() == shared
        """
    )
    run(project).assert_outcomes(passed=2)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SHARED", "1")
        run(project, "--workbench-store", "shared.db").assert_outcomes(passed=2)
    assert (project.path / "shared.db").exists()


def test_a_shared_postgresql_store_is_the_default_store_by_its_whole_url(
    project: pytest.Pytester, postgres_url: str
) -> None:
    """With ``--workbench-store postgresql://...`` a test's WORKBENCH_DB is the URL as given
    (password included, not the masked one printed), so a run opened from it lands there."""
    project.makepyfile(
        f"""
        import os
        import workbench

        def test_default_store_is_the_shared_database(workbench_store):
            assert os.environ["WORKBENCH_DB"] == {postgres_url!r}
            with workbench.record("via_env", inputs={{}}):
                pass  # the default store, opened from WORKBENCH_DB
            assert [e.pipeline_id for e in workbench_store.list_executions()] == ["via_env"]
        """
    )
    run(project, "--workbench-store", postgres_url).assert_outcomes(passed=1)


def test_settings_precedence_marker_cli_fixture_file(project: pytest.Pytester) -> None:
    """workbench.yaml < workbench_config fixture < command line < marker, key by key; a budget
    in workbench.yaml holds every test, workbench fixtures or not."""
    (project.path / "workbench.yaml").write_text("pytest:\n  max_tokens: 1\n  record_mode: all\n")
    project.makepyfile(
        """
        import pytest

        def test_file_budget(ask):  # max_tokens 1 from workbench.yaml
            ask("hi")

        @pytest.mark.max_tokens(100_000)
        def test_marker_beats_file(ask):
            ask("hi")
        """
    )
    result = run(project)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*over the limit of 1.*"])

    project.makeconftest(
        CONFTEST.format(url=_url(project))
        + """

@pytest.fixture
def workbench_config():
    return {"pytest": {"max_tokens": 100_000, "record_mode": "none"}}
"""
    )
    project.makepyfile(
        """
        import pytest

        def test_fixture_beats_file(ask):  # record_mode none: no recording, so it fails
            ask("hi")

        @pytest.mark.workbench(record_mode="once")
        def test_marker_beats_cli(ask):
            ask("hi")
        """
    )
    result = run(project)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*record mode 'none', and the test has no recording*"])
    result = run(project, "--workbench-record-mode=once")
    result.assert_outcomes(passed=2)  # the command line beats the fixture's "none"
    shutil.rmtree(project.path / "recordings")  # the recordings just made persist: start again
    result = run(project, "--workbench-record-mode=none")
    result.assert_outcomes(passed=1, failed=1)  # ... and the marker beats the command line


def _url(project: pytest.Pytester) -> str:
    text = (project.path / "conftest.py").read_text()
    return text.split("URL = ", 1)[1].split("\n", 1)[0].strip("'\"")


def test_workbench_config_fixture_configures_the_recording(project: pytest.Pytester) -> None:
    """Sections of the workbench_config fixture other than pytest apply to the test's
    executions: a price set there is the price the test pays; debug sampling never skips a
    test's recording; a bad key is an error naming the fixture."""
    project.makeconftest(
        CONFTEST.format(url=_url(project))
        + """

@pytest.fixture
def workbench_config(request):
    if request.node.name == "test_bad":
        return {"pytest": {"record_mode": "always"}}
    prices = {"gpt-4o-mini": {"input_cost_per_1k": 1000.0, "output_cost_per_1k": 1000.0}}
    return {
        "cost_tracking": {"providers": {"openai": {"models": prices}}},
        "debug": {"enabled": True, "sampling": {"rate": 0.0}},
    }
"""
    )
    project.makepyfile(
        """
        def test_priced(ask, workbench_run):
            ask("hi")
            assert workbench_run.cost_usd == workbench_run.tokens.total  # $1 per token
            assert workbench_run.executions[0].sampled

        def test_bad(workbench_run):
            pass
        """
    )
    result = run(project)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*the workbench_config fixture: key 'pytest.record_mode' has value 'always'*"]
    )


def test_assert_matches_fails_with_the_diff(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """assert_matches passes against a recording of the same behaviour and fails with the
    diff engine's rendering when a prompt changed."""
    project.makepyfile(
        """
        import os
        import workbench

        def test_snapshot(ask, workbench_run):
            @workbench.step("draft")
            def draft(topic):
                return ask(f"write about {topic}")

            draft(os.environ.get("TOPIC", "llamas"))
            if os.environ.get("MATCH"):
                workbench_run.assert_matches(os.environ["MATCH"])
        """
    )
    run(project, "--workbench-store", "snap.db").assert_outcomes(passed=1)
    store = Store(project.path / "snap.db")
    (recorded,) = store.list_executions()
    store.close()
    monkeypatch.setenv("MATCH", recorded.id)
    # Live runs that keep no recording: the reference stays what it was.
    args = ("--workbench-store", "snap.db", "--disable-recording")
    run(project, *args).assert_outcomes(passed=1)
    monkeypatch.setenv("TOPIC", "alpacas")
    result = run(project, *args)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            f"*this test's run (exec_*) differs from recorded execution {recorded.id}:*",
            "*first divergent step: draft#0*",
            "*steps.draft#0.parameters.topic*changed*llamas*alpacas*",
        ]
    )


def test_assert_matches_compares_the_whole_body_once_it_has_ended(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """assert_matches in the middle of a test compares the body's execution after it ended:
    a step the body runs after the call, which the recording does not have, fails the test
    (before, the comparison ran at once, on a run that had not done it yet)."""
    project.makepyfile(
        """
        import os
        import workbench

        def test_snapshot(ask, workbench_run):
            @workbench.step("draft")
            def draft(topic):
                return ask(f"write about {topic}")

            draft("llamas")
            if os.environ.get("MATCH"):
                workbench_run.assert_matches(os.environ["MATCH"])
                draft("a second topic")
        """
    )
    run(project, "--workbench-store", "whole.db").assert_outcomes(passed=1)
    store = Store(project.path / "whole.db")
    (recorded,) = store.list_executions()
    store.close()
    monkeypatch.setenv("MATCH", recorded.id)
    result = run(project, "--workbench-store", "whole.db", "--workbench-record-mode=all")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [f"*this test's run (exec_*) differs from recorded execution {recorded.id}:*", "*draft#1*"]
    )


def test_assert_matches_pairs_concurrent_calls_by_what_they_asked(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """assert_matches passes when a step's thread pool made the recorded calls in the other
    order (each worker waits for the previous one's answer, so the order is forced)."""
    project.makepyfile(
        """
        import os, threading
        from concurrent.futures import ThreadPoolExecutor
        import workbench

        def test_snapshot(ask, workbench_run):
            questions = ["first question", "second question", "third question"]
            order = [2, 1, 0] if os.environ.get("REVERSE") else [0, 1, 2]
            turns = [threading.Event() for _ in questions]

            def one(position):
                if position:
                    turns[position - 1].wait(timeout=10)
                try:
                    return ask(questions[order[position]])
                finally:
                    turns[position].set()

            with workbench.step("fan_out"), ThreadPoolExecutor(3) as pool:
                list(pool.map(workbench.carry_context(one), range(3)))
            if os.environ.get("MATCH"):
                workbench_run.assert_matches(os.environ["MATCH"])
        """
    )
    run(project, "--workbench-store", "fan.db").assert_outcomes(passed=1)
    store = Store(project.path / "fan.db")
    (recorded,) = store.list_executions()
    store.close()
    monkeypatch.setenv("MATCH", recorded.id)
    monkeypatch.setenv("REVERSE", "1")
    run(project, "--workbench-store", "fan.db", "--workbench-record-mode=all").assert_outcomes(
        passed=1
    )


def test_terminal_summary_totals_top_tests_and_near_budgets(
    project: pytest.Pytester, model_server: ModelServer
) -> None:
    """The session ends with total cost, tokens and calls, the most expensive and slowest
    tests, and the tests that used 80% or more of a budget."""
    client = openai.OpenAI(base_url=model_server.openai_base_url, api_key="sk-test")
    usage = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "a question"}]
    ).usage
    assert usage is not None
    near = math.ceil((usage.prompt_tokens + usage.completion_tokens) / 0.9)
    project.makepyfile(
        f"""
        import pytest

        @pytest.mark.max_tokens({near})
        def test_near_budget(ask):
            ask("a question")

        def test_two_calls(ask, workbench_run):
            ask("one")
            ask("two")

        def test_no_workbench():
            pass
        """
    )
    result = run(project)
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "*- workbench -*",
            "2 tests, 3 model calls, * tokens (* input of which * cached, * output), cost $*",
            "most expensive tests:",
            "  $*  test_terminal_summary_totals_top_tests_and_near_budgets.py::test_*",
            "slowest tests:",
            "tests at 80% or more of a budget:",
            "  *::test_near_budget  max_tokens: *% (* of *)",
        ]
    )


def test_importing_workbench_does_not_import_pytest() -> None:
    """The plugin is wiring only: workbench itself never needs pytest at import."""
    code = "import sys, workbench, workbench.testing; print('pytest' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert output.stdout.strip() == "False", output.stderr


# -- the pytest-free parts ---------------------------------------------------------------------


def test_budget_refuses_unknown_latency_keys_and_negative_limits() -> None:
    """A Budget built in code checks its limits like the markers do."""
    with pytest.raises(ConfigError, match=r"max_latency has no key 'p90'; use p50, p95, p99"):
        Budget(max_latency={"p90": 1.0})
    with pytest.raises(ConfigError, match=r"max_cost must be a number >= 0"):
        Budget(max_cost=-1)
    assert not Budget() and Budget(max_tokens=0)


def test_test_run_works_without_pytest(store: Store, model_server: ModelServer) -> None:
    """TestRun records what runs between start and stop, nested executions included, and its
    values are fixed once stopped; budgets are checked from the same summary."""
    client = openai.OpenAI(base_url=model_server.openai_base_url, api_key="sk-t", max_retries=0)
    run = TestRun("suite::case", store=store)
    run.start()
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "a"}])
    with workbench.record("nested", inputs={}):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "b"}]
        )
    assert len(run.model_calls) == 2 and run.running
    summary = run.stop()
    assert not run.running and run.summary() is summary
    assert [e.pipeline_id for e in summary.executions] == ["suite::case", "nested"]
    assert summary.cost_usd == pytest.approx(sum(c.cost_usd or 0 for c in summary.model_calls))
    (check,) = run.check_budget(Budget(max_tokens=1))
    assert check.exceeded and check.measured == summary.tokens.total
    assert "max_tokens: this test's model calls used" in check.message


def test_one_entry_point_turns_every_marker_off(pytester: pytest.Pytester) -> None:
    """`-p no:workbench` removes the profiling markers too: they belong to the one plugin."""
    on = pytester.runpytest("--markers").stdout.str()
    assert "max_memory(limit)" in on and "max_cost(usd)" in on and "profile(cpu=True" in on
    off = pytester.runpytest("-p", "no:workbench", "--markers").stdout.str()
    assert "max_memory" not in off and "max_cost" not in off and "profile(cpu" not in off


def test_a_session_that_uses_no_workbench_feature_imports_only_the_plugin(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Collecting a project that uses no fixture, marker or option loads the plugin's wiring
    modules and no other part of workbench (nor its dependencies)."""
    pytester.makeconftest(
        """
        import sys

        def pytest_collection_finish(session):
            loaded = sorted(m for m in sys.modules if m.split(".")[0] in
                            ("workbench", "pydantic", "deepdiff", "openai", "sqlite_utils"))
            print("LOADED", loaded)
        """
    )
    pytester.makepyfile("def test_nothing():\n    pass\n")
    # Other installed plugins (langsmith's, for one) import pydantic themselves: load ours alone.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    result = pytester.runpytest_subprocess(
        "--co", "-q", "-s", "-p", "no:cacheprovider", "-p", "workbench.pytest_plugin"
    )
    loaded = [line for line in result.stdout.lines if line.startswith("LOADED")]
    assert loaded == [
        "LOADED ['workbench', 'workbench._pytest_experiments', 'workbench._pytest_profiling', "
        "'workbench._pytest_summary', 'workbench.pytest_plugin']"
    ]


def test_xdist_workers_summaries_are_merged_and_printed_once(project: pytest.Pytester) -> None:
    """Under pytest-xdist the controller prints one summary adding up every worker's tests,
    including a near-budget test that ran on a worker."""
    pytest.importorskip("xdist")
    project.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("n", range(4))
        def test_calls(ask, workbench_run, n):
            ask(f"question {n}")

        @pytest.mark.max_tokens(10_000_000)
        def test_budget(ask):
            ask("within budget")
        """
    )
    result = run(project, "-n", "2")
    result.assert_outcomes(passed=5)
    output = result.stdout.str()
    assert output.count("- workbench -") == 1
    result.stdout.fnmatch_lines(["*- workbench -*", "5 tests, 5 model calls, * tokens *"])
