"""Executions exported as canonical JSON files, imported back, and a store shown to git diff."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings

import workbench
from workbench.cli import cli
from workbench.exceptions import StoreError
from workbench.records import Execution, ModelCall
from workbench.store import Store
from workbench.store._export import (
    by_column,
    dumps,
    execution_document,
    export_executions,
    import_documents,
    import_executions,
)
from workbench.strategies import json_values
from workbench.testing import ModelServer, fresh_store

SECRET = "sk-live-0123456789abcdefghijklmnopqrstuv"


def record_everything(store: Store, server: ModelServer, question: str = "why?") -> str:
    """One execution with a step, states, a log, a plain, a streamed and an Anthropic call."""
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)
    claude = anthropic.Anthropic(
        base_url=server.anthropic_base_url, api_key="sk-ant-test", max_retries=0
    )
    with workbench.record(
        "export",
        inputs={"question": question, "api_key": SECRET},
        session_id="conversation-1",
        store=store,
    ) as run:
        with workbench.step("ask", parameters={"question": question}) as step:
            answer = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": question}]
            )
            workbench.state("answer", {"text": answer.choices[0].message.content})
            step.set_result({"ok": True})
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "stream it"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        claude.messages.create(
            model="claude-3-5-haiku-latest",
            max_tokens=50,
            messages=[{"role": "user", "content": "and you?"}],
        )
        logging.getLogger("export").warning("streamed %d characters", len(text))
        run.outputs = {"text": text}
    client.close()
    claude.close()
    return run.id


def _files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.glob("*.json"))}


def test_export_import_export_is_byte_identical_and_replays_the_same(
    store: Store, model_server: ModelServer, tmp_path: Path
) -> None:
    """Exporting, importing into a new store and exporting again gives the same bytes, and
    the imported store serves the very responses (bodies, stream chunks and timing) that the
    original does."""
    ids = [record_everything(store, model_server), record_everything(store, model_server, "how?")]
    first = export_executions(store, tmp_path / "a")
    assert sorted(p.name for p in first) == sorted(f"{i}.json" for i in ids)
    with fresh_store() as other:
        assert sorted(import_executions(other, tmp_path / "a")) == sorted(ids)
        export_executions(other, tmp_path / "b")
        assert _files(tmp_path / "a") == _files(tmp_path / "b")
        for execution_id in ids:
            assert [
                (r.request_key, r.status_code, r.body, r.chunks, r.cost_usd, r.input_tokens)
                for r in other.recorded_responses(execution_id)
            ] == [
                (r.request_key, r.status_code, r.body, r.chunks, r.cost_usd, r.input_tokens)
                for r in store.recorded_responses(execution_id)
            ]
            got, want = other.get_execution(execution_id), store.get_execution(execution_id)
            assert [c.response for c in got.model_calls] == [c.response for c in want.model_calls]
            assert (got.session_id, got.outputs, got.cost_usd, got.tokens_in) == (
                "conversation-1",
                want.outputs,
                want.cost_usd,
                want.tokens_in,
            )


def test_an_export_is_pretty_sorted_readable_and_redacted(
    store: Store, model_server: ModelServer, tmp_path: Path
) -> None:
    """The file is indented JSON with sorted keys, shows the prompt, the answer body and the
    stream's chunks as text, and holds no secret."""
    execution_id = record_everything(store, model_server)
    (path,) = export_executions(store, tmp_path, execution_ids=[execution_id])
    text = path.read_text()
    assert SECRET not in text and '"api_key": "[REDACTED]"' in text
    document = json.loads(text)
    assert text == dumps(document) and text.startswith('{\n  "execution": {')
    plain, streamed, claude = document["model_calls"]
    assert plain["request"]["body"]["messages"] == [{"role": "user", "content": "why?"}]
    assert json.loads(plain["body"])["choices"][0]["message"]["content"]
    assert streamed["streamed"] and streamed["chunks"][0]["data"].startswith("data: ")
    assert claude["provider"] == "anthropic" and document["states"][0]["name"] == "answer"
    assert [log["message"] for log in document["logs"]][-1].startswith("streamed ")


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    inputs=json_values(),
    params=json_values(),
    result=json_values(),
    state=json_values(),
    output=json_values(),
    metadata=json_values(),
)
def test_any_recorded_values_round_trip_byte_identically(
    store: Store, inputs: Any, params: Any, result: Any, state: Any, output: Any, metadata: Any
) -> None:
    """Whatever JSON an execution's inputs, steps, states, outputs and metadata hold, its
    export imported into another store exports to the same bytes."""
    with workbench.record("p", inputs=inputs, metadata={"m": metadata}, store=store) as run:
        with workbench.step("s", parameters=params) as step:
            workbench.state("value", state)
            step.set_result(result)
        run.outputs = output
    text = dumps(execution_document(store.get_execution(run.id)))
    with fresh_store() as other:
        import_documents(other, [("drawn", json.loads(text))])
        assert dumps(execution_document(other.get_execution(run.id))) == text


def test_importing_again_replaces_and_adds_no_spend(
    store: Store, model_server: ModelServer, tmp_path: Path
) -> None:
    """An import replaces an execution of the same id (no duplicate states or logs), and its
    calls are not counted in the importing store's cost ledger: they were paid for elsewhere."""
    execution_id = record_everything(store, model_server)
    export_executions(store, tmp_path)
    with fresh_store() as other:
        import_executions(other, tmp_path)
        once = other.stats()
        import_executions(other, tmp_path / f"{execution_id}.json")
        again = other.stats()
        del once["bytes"], again["bytes"]  # the WAL file's size: not rows
        assert again == once and once["executions"] == 1
        assert other._query("SELECT COUNT(*) AS n FROM cost_ledger")[0]["n"] == 0


def test_a_file_that_is_not_an_export_is_refused_by_name(store: Store, tmp_path: Path) -> None:
    """Importing another JSON file, or a damaged export, names the file and the fix."""
    (tmp_path / "other.json").write_text('{"hello": 1}')
    with pytest.raises(StoreError, match=r"other.json is not an exported workbench execution"):
        import_executions(store, tmp_path)
    (tmp_path / "other.json").write_text('{"format": "workbench.execution/1", "execution": {}}')
    with pytest.raises(StoreError, match=r"other.json is a damaged export \(KeyError"):
        import_executions(store, tmp_path)
    with pytest.raises(StoreError, match=r"no folder or file"):
        import_executions(store, tmp_path / "missing")


def test_cli_exports_imports_and_prints_a_store(
    store: Store, model_server: ModelServer, tmp_path: Path
) -> None:
    """`workbench store export -o`, `import` and `export --stdout` / `text` agree, filtered by
    execution or pipeline."""
    runner = CliRunner()
    ids = [record_everything(store, model_server), record_everything(store, model_server, "b")]
    with workbench.record("other", inputs={}, store=store):
        pass
    db = str(store.path)
    result = runner.invoke(cli, ["store", "export", "--db", db, "--pipeline", "export", "-o", "x"])
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir("x")) == sorted(f"{i}.json" for i in ids)
    result = runner.invoke(cli, ["store", "import", "x", "--db", str(tmp_path / "copy.db")])
    assert result.exit_code == 0 and "imported 2 execution(s)" in result.output
    text = runner.invoke(cli, ["store", "text", str(tmp_path / "copy.db")]).output
    assert text == "".join(Path("x", f"{i}.json").read_text() for i in ids)
    one = runner.invoke(cli, ["store", "export", "--db", db, "--execution", ids[1], "--stdout"])
    assert one.output == Path("x", f"{ids[1]}.json").read_text()
    bad = runner.invoke(cli, ["store", "export", "--db", db])
    assert bad.exit_code == 2 and "give one of -o DIR or --stdout" in bad.output


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_diff_shows_a_committed_store_as_text(
    model_server: ModelServer, tmp_path: Path
) -> None:
    """With the README's .gitattributes line and textconv, `git diff` of a store shows the
    added recording as JSON lines, not "Binary files differ"."""
    repo = tmp_path / "repo"
    (repo / "tests" / "recordings").mkdir(parents=True)
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True
        )
        return done.stdout

    git("init", "-q")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "t")
    git("config", "diff.workbench.textconv", f"{sys.executable} -m workbench.cli store text")
    (repo / ".gitattributes").write_text("*.db diff=workbench\n")
    path = repo / "tests" / "recordings" / "test_x.db"
    with Store(path) as store:
        record_everything(store, model_server, "first question")
    git("add", ".")
    git("commit", "-q", "-m", "recording")
    with Store(path) as store:
        record_everything(store, model_server, "second question")
    diff = git("diff")
    assert "Binary files" not in diff
    assert '+        "question": "second question"' in diff
    # The old recording is unchanged, so the diff is the new execution's lines alone.
    assert diff.count('+  "format": "workbench.execution/1"') == 1 and "\n-  " not in diff


def test_the_document_holds_every_recorded_field(store: Store, model_server: ModelServer) -> None:
    """Every field of an Execution and a ModelCall is in the export (but what the store
    derives), so a field added to the records later cannot be dropped by export and import
    unnoticed; the import builds its rows by column name, failing on one it lacks."""
    document = execution_document(store.get_execution(record_everything(store, model_server)))
    children = {"steps", "spans", "model_calls", "states", "logs", "profiles"}
    fields = {f.name for f in dataclasses.fields(Execution)} - children
    assert set(document["execution"]) == fields
    derived = {"execution_id", "response", "chunks"}  # the parent's id; parsed from the body
    call_fields = {f.name for f in dataclasses.fields(ModelCall)} - derived
    for call in document["model_calls"]:
        assert set(call) - {"body", "chunks"} == call_fields
    with pytest.raises(StoreError, match=r"out of date with the schema: missing \['x'\]"):
        by_column(("id", "x"), {"id": 1})


def test_store_copy_sqlite_to_postgresql_to_sqlite_diffs_empty_and_is_idempotent(
    store: Store, postgres_url: str, model_server: ModelServer, tmp_path: Path
) -> None:
    """`workbench store copy` from a SQLite file into PostgreSQL and back into a new file gives
    executions whose diff against the originals is empty and whose recorded responses are the
    same; copying again adds nothing (no execution, no blob, no spend)."""
    from workbench.diff import compare_executions

    ids = sorted(
        [record_everything(store, model_server), record_everything(store, model_server, "how?")]
    )
    store.flush()
    back = tmp_path / "back.db"
    runner = CliRunner()
    for source, target in ((str(store.path), postgres_url), (postgres_url, str(back))):
        result = runner.invoke(cli, ["store", "copy", source, target])
        assert result.exit_code == 0, result.output
        assert "copied 2 execution(s)" in result.output
    with Store(postgres_url) as middle:
        counts = middle.stats()
        again = runner.invoke(cli, ["store", "copy", str(store.path), postgres_url, "--json"])
        assert again.exit_code == 0, again.output
        assert sorted(json.loads(again.output)["copied"]) == ids
        after = middle.stats()
        assert {k: v for k, v in after.items() if k != "bytes"} == {
            k: v for k, v in counts.items() if k != "bytes"
        }
    with Store(back) as copy:
        for execution_id in ids:
            original = store.get_execution(execution_id)
            # The same id twice is refused as a self-comparison: the copy compares as another.
            copied = dataclasses.replace(copy.get_execution(execution_id), id="exec_the_copy")
            diff = compare_executions(original, copied)
            assert diff.differences == [], diff.differences
            assert copy.recorded_responses(execution_id) == store.recorded_responses(execution_id)


def test_store_info_prints_backend_schema_counts_and_size(any_store: Store) -> None:
    """`workbench store info --json` names the backend and schema version, and counts rows."""
    with workbench.record("p", inputs={}, store=any_store):
        pass
    any_store.flush()
    result = CliRunner().invoke(cli, ["store", "info", "--json", "--db", os.fspath(any_store.path)])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert (info["backend"], info["schema_version"]) == (any_store.backend, 1)
    assert info["counts"]["executions"] == 1 and info["bytes"] > 0
    text = CliRunner().invoke(cli, ["store", "info", "--db", os.fspath(any_store.path)])
    assert f"backend  {any_store.backend}" in text.output
