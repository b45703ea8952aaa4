"""vcrpy / pytest-recording cassettes imported as recordings the plugin replays, and exported
back as cassettes vcrpy plays: real vcrpy, the real openai SDK, the loopback model server."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
import vcr
from click.testing import CliRunner

from workbench.cli import cli
from workbench.exceptions import ConfigError
from workbench.store import Store
from workbench.store._export import store_text
from workbench.testing import ModelServer
from workbench.testing._cassette_files import cassette_target, import_cassette

pytest_plugins = ["pytester"]

TEST = """
import os
import openai


def test_ask(workbench_run):
    client = openai.OpenAI(base_url=os.environ["MODEL_URL"], api_key="sk-test", max_retries=0)
    for question in ("from a cassette", "and a second call"):
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": question}]
        )
        assert reply.choices[0].message.content
    assert len(workbench_run.model_calls) == 2
"""


def _ask(server: ModelServer) -> list[str]:
    client = openai.OpenAI(
        base_url=server.openai_base_url, api_key="sk-cassette-secret-0123456789", max_retries=0
    )
    answers = []
    for question in ("from a cassette", "and a second call"):
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": question}]
        )
        answers.append(reply.choices[0].message.content or "")
    client.close()
    return answers


def test_pytest_recording_layout_names_the_test_and_its_module_store(tmp_path: Path) -> None:
    """tests/cassettes/test_x/test_a.yaml is test tests/test_x.py::test_a, recorded in
    tests/recordings/test_x.db; a method's Class.test is Class::test; other files keep
    their stem."""
    cassette = tmp_path / "tests" / "cassettes" / "test_x" / "test_a.yaml"
    assert cassette_target(cassette, tmp_path) == (
        "tests/test_x.py::test_a",
        tmp_path / "tests" / "recordings" / "test_x.db",
    )
    method = tmp_path / "cassettes" / "test_x" / "TestIt.test_b[1].yaml"
    assert cassette_target(method, tmp_path)[0] == "test_x.py::TestIt::test_b[1]"
    assert cassette_target(tmp_path / "calls.yaml", tmp_path) == ("calls", None)


def test_an_imported_cassette_replays_under_ci_and_exports_back_to_one_vcrpy_plays(
    pytester: pytest.Pytester,
    model_server: ModelServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A cassette vcrpy recorded becomes the test's recording: the test passes on CI without
    a request reaching the server, the cassette's API key is not kept, and the recording
    exported as a cassette answers the same calls under vcrpy with the same answers."""
    pytester.makepyfile(test_ask=TEST)
    cassette = pytester.path / "cassettes" / "test_ask" / "test_ask.yaml"
    with vcr.use_cassette(str(cassette), record_mode="once"):
        answers = _ask(model_server)
    assert "sk-cassette-secret" in cassette.read_text()  # vcrpy keeps it: we must not

    monkeypatch.chdir(pytester.path)
    result = CliRunner().invoke(cli, ["store", "import-cassette", str(cassette)])
    assert result.exit_code == 0, result.output
    recordings = pytester.path / "recordings" / "test_ask.db"
    assert result.output.startswith(f"{cassette} -> {recordings} as test_ask.py::test_ask (2 ")
    with Store(recordings) as store:
        (recording,) = store.list_executions()
        assert "sk-cassette-secret" not in store_text(store)

    monkeypatch.setenv("CI", "1")
    monkeypatch.setenv("MODEL_URL", model_server.openai_base_url)
    sent = model_server.request_count
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert model_server.request_count == sent

    out = pytester.path / "exported.yaml"
    result = CliRunner().invoke(
        cli, ["store", "export-cassette", recording.id, "-o", str(out), "--db", str(recordings)]
    )
    assert result.exit_code == 0, result.output
    assert "sk-cassette-secret" not in out.read_text()
    with vcr.use_cassette(str(out), record_mode="none"):
        assert _ask(model_server) == answers
    assert model_server.request_count == sent


def test_importing_again_replaces_the_tests_recording(
    model_server: ModelServer, tmp_path: Path
) -> None:
    """A second import of the same cassette leaves one recording, not two."""
    cassette = tmp_path / "cassettes" / "test_m" / "test_t.yaml"
    with vcr.use_cassette(str(cassette), record_mode="once"):
        _ask(model_server)
    first = import_cassette(cassette, root=tmp_path)
    second = import_cassette(cassette, root=tmp_path)
    with Store(tmp_path / "recordings" / "test_m.db") as store:
        assert [e.id for e in store.list_executions()] == [second.execution_id]
    assert first.execution_id != second.execution_id and second.calls == 2


def test_a_file_that_is_not_a_cassette_is_refused_by_name(tmp_path: Path) -> None:
    """A YAML file that is no cassette names the file and what is expected."""
    bad = tmp_path / "notes.yaml"
    bad.write_text("just: text\n")
    with (
        Store(tmp_path / "w.db") as store,
        pytest.raises(ConfigError, match=r"cannot read cassette .*notes.yaml"),
    ):
        import_cassette(bad, store=store)
