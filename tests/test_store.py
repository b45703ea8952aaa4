"""The SQLite store: opening, schema checks, path resolution, dedup and record round-trips."""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import workbench
import workbench._json
from workbench._json import to_jsonable
from workbench.exceptions import (
    ExecutionNotFoundError,
    NotAStoreError,
    SchemaVersionError,
    StoreError,
)
from workbench.redaction import sensitive_names
from workbench.store import Store, open_store, resolve_store_path
from workbench.store import _sql as store_sql

SENSITIVE = sensitive_names()

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        # Keys that name a secret are redacted on purpose (test_redaction proves it): not here.
        | st.dictionaries(
            st.text(max_size=8).filter(lambda k: k.lower().replace("-", "_") not in SENSITIVE),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)


def test_new_store_uses_wal_and_stamps_schema(tmp_path: Path) -> None:
    """A new store file is in WAL mode and carries the workbench schema version."""
    Store(tmp_path / "w.db").close()
    conn = sqlite3.connect(tmp_path / "w.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT app, version FROM workbench_schema").fetchone() == ("workbench", 1)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A store written by a newer workbench gives SchemaVersionError naming both versions."""
    Store(tmp_path / "w.db").close()
    conn = sqlite3.connect(tmp_path / "w.db")
    conn.execute("UPDATE workbench_schema SET version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaVersionError, match=r"version 99.*up to 1"):
        Store(tmp_path / "w.db")


def test_garbage_file_is_not_a_store(tmp_path: Path) -> None:
    """A file that is not SQLite gives NotAStoreError and is left untouched."""
    path = tmp_path / "w.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(NotAStoreError, match="not a workbench store"):
        Store(path)
    assert path.read_bytes() == b"this is not a database" * 100


def test_foreign_sqlite_database_is_not_a_store(tmp_path: Path) -> None:
    """Another application's SQLite file is refused, not written into."""
    conn = sqlite3.connect(tmp_path / "app.db")
    conn.execute("CREATE TABLE users (id INTEGER)")
    conn.commit()
    conn.close()
    before = (tmp_path / "app.db").read_bytes()
    with pytest.raises(NotAStoreError, match=r"another application.*users"):
        Store(tmp_path / "app.db")
    assert (tmp_path / "app.db").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]


def test_unwritable_path_is_a_clear_error(tmp_path: Path) -> None:
    """A store path under a file (not a folder) gives StoreError naming the path."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot create the folder"):
        Store(blocker / "sub" / "w.db")


def test_folder_path_is_a_clear_error(tmp_path: Path) -> None:
    """Giving a folder as the store path says to give a file path."""
    with pytest.raises(StoreError, match="is a folder"):
        Store(tmp_path)


def test_path_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Argument beats WORKBENCH_DB, which beats workbench.yaml, which beats the default."""
    assert resolve_store_path() == Path("recordings") / "workbench.db"
    (tmp_path / "workbench.yaml").write_text("store:\n  path: from_yaml.db\n")
    assert resolve_store_path() == tmp_path / "from_yaml.db"
    monkeypatch.setenv("WORKBENCH_DB", str(tmp_path / "from_env.db"))
    assert resolve_store_path() == tmp_path / "from_env.db"
    assert resolve_store_path(tmp_path / "arg.db") == tmp_path / "arg.db"


def test_open_store_shares_one_store_per_file(tmp_path: Path) -> None:
    """open_store returns the same Store for the same file, however the path is spelled."""
    a = open_store(tmp_path / "w.db")
    b = open_store(str(tmp_path / "." / "w.db"))
    assert a is b


def test_unknown_execution_id(store: Store) -> None:
    """Asking for an id that is not there raises ExecutionNotFoundError (also a KeyError)."""
    with pytest.raises(ExecutionNotFoundError, match="no execution 'exec_nope'") as info:
        store.get_execution("exec_nope")
    assert isinstance(info.value, KeyError)


def test_identical_states_are_stored_once(store: Store) -> None:
    """The same large state recorded in two executions adds one blob, not two."""
    big = {"rows": [{"id": i, "text": f"document {i}", "score": i / 7} for i in range(2_000)]}
    with workbench.record("p", inputs={}, store=store):
        workbench.state("table", big)
    blobs_after_first = store.stats()["blobs"]
    with workbench.record("p", inputs={}, store=store):
        workbench.state("table", big)
        workbench.state("again", big)
    assert store.stats()["blobs"] == blobs_after_first  # same inputs, same state: no new blob
    rows = store._query("SELECT size, length(data) AS stored FROM blobs ORDER BY size DESC")
    assert rows[0]["stored"] < rows[0]["size"] / 3  # and it is kept compressed


def test_list_executions_filters(store: Store) -> None:
    """Listing filters by pipeline, status, user and time range, newest first."""
    with workbench.record("a", inputs={}, user_id="u1", store=store):
        pass
    with pytest.raises(ValueError), workbench.record("b", inputs={}, user_id="u2", store=store):
        raise ValueError("boom")
    with workbench.record("a", inputs={}, user_id="u2", store=store) as last:
        pass
    assert [e.pipeline_id for e in store.list_executions()] == ["a", "b", "a"]
    assert len(store.list_executions(pipeline_id="a")) == 2
    assert [e.pipeline_id for e in store.list_executions(status="failed")] == ["b"]
    assert len(store.list_executions(user_id="u2")) == 2
    assert [e.id for e in store.list_executions(since=last.started_at)] == [last.id]
    assert len(store.list_executions(until=last.started_at)) == 2
    with pytest.raises(StoreError, match="not one of"):
        store.list_executions(status="done")


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    inputs=json_values,
    params=json_values,
    result=json_values,
    state=json_values,
    output=json_values,
)
def test_records_round_trip(
    store: Store, inputs: Any, params: Any, result: Any, state: Any, output: Any
) -> None:
    """Whatever JSON goes into an execution's inputs, steps, states and outputs reads back equal."""
    with workbench.record("round-trip", inputs=inputs, store=store) as run:
        with workbench.step("s", parameters=params) as step:
            workbench.state("value", state)
            step.set_result(result)
        run.outputs = output
    got = store.get_execution(run.id)
    assert got.inputs == to_jsonable(inputs)
    assert got.outputs == to_jsonable(output)
    (step_record,) = got.steps
    assert step_record.parameters == to_jsonable(params)
    assert step_record.result == to_jsonable(result)
    assert [s.value for s in got.states] == [to_jsonable(state)]


def test_odd_values_are_rendered_not_refused(store: Store) -> None:
    """Sets, bytes, objects and huge ints are stored as readable JSON instead of failing."""

    class Thing:
        def __repr__(self) -> str:
            return "<Thing 7>"

    with workbench.record(
        "odd", inputs={"s": {3, 1, 2}, "b": b"\x00hi", "t": Thing(), "n": 2**80}, store=store
    ) as run:
        pass
    inputs = store.get_execution(run.id).inputs
    assert inputs == {"s": [1, 2, 3], "b": {"__bytes__": "AGhp"}, "t": "<Thing 7>", "n": 2**80}


def test_a_row_with_an_unbindable_value_does_not_cost_the_batch(store: Store) -> None:
    """A plain dict queued where JSON text belongs is rendered, and the rest of the batch kept."""
    with workbench.record("p", inputs={}, store=store) as run:
        store.put(
            "span",
            ("s1", run.trace_id, None, run.id, "odd", "internal", {"k": 1}, None, "ok", 1.0, 2.0),
        )
        workbench.state("kept", 1)
    got = store.get_execution(run.id)
    assert {s.name: s.attributes for s in got.spans}["odd"] == {"k": 1}
    assert [s.value for s in got.states] == [1]


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_childs_running_execution_is_not_judged_interrupted(tmp_path: Path) -> None:
    """An execution running in a forked child reads 'running', not 'interrupted', meanwhile."""
    path = tmp_path / "fork.db"
    store = Store(path)
    with workbench.record("parent", inputs={}, store=store):
        pass
    read_end, write_end = os.pipe()
    go_read, go_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: record an execution and wait to be told to finish
        os.close(read_end)
        os.close(go_write)
        try:
            with workbench.record("child", inputs={}, store=store) as run:
                store.flush()
                os.write(write_end, run.id.encode())
                os.read(go_read, 1)
        finally:
            os._exit(0)
    os.close(write_end)
    os.close(go_read)
    child_id = os.read(read_end, 64).decode()
    try:
        with Store(path) as reader:
            assert reader.get_execution(child_id).status == "running"
    finally:
        os.write(go_write, b"x")
        os.waitpid(pid, 0)
        os.close(read_end)
        os.close(go_write)
    with Store(path) as reader:
        assert reader.get_execution(child_id).status == "completed"
    store.close()


def test_a_lost_batch_does_not_leave_dangling_blobs(store: Store) -> None:
    """After a batch fails to write, the same content recorded again is written, not assumed."""
    value = {"content": "x" * 500}
    real_commit = store_sql._commit
    calls = []

    def failing_commit(conn: sqlite3.Connection, groups: dict[str, Any]) -> None:
        if not calls and "blob" in groups:
            calls.append(1)
            raise sqlite3.OperationalError("disk I/O error")
        real_commit(conn, groups)

    store_sql._commit = failing_commit  # the one boundary to SQLite: simulate a full disk
    try:
        digest = store.blob_bytes(workbench._json.encode(value))
        store.flush(strict=False)
        assert store.blob_bytes(workbench._json.encode(value)) == digest
        store.flush()
    finally:
        store_sql._commit = real_commit
    assert store.blob_value(digest) == value


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    user=st.one_of(st.none(), st.text(max_size=20)),
    environment=st.one_of(st.none(), st.text(max_size=20)),
    metadata=st.dictionaries(
        st.text(max_size=8).filter(lambda k: k.lower().replace("-", "_") not in SENSITIVE),
        json_values,
        max_size=3,
    ),
    attribute=json_values,
    message=st.text(max_size=40),
    field=json_values,
)
def test_execution_fields_spans_logs_and_errors_round_trip(
    store: Store,
    user: str | None,
    environment: str | None,
    metadata: dict[str, Any],
    attribute: Any,
    message: str,
    field: Any,
) -> None:
    """Scalars, metadata, span attributes, log records and errors read back as recorded."""
    logger = logging.getLogger("roundtrip")
    logger.setLevel(logging.INFO)
    with (
        pytest.raises(RuntimeError),
        workbench.record(
            "rt", inputs={}, user_id=user, environment=environment, metadata=metadata, store=store
        ) as run,
    ):
        with workbench.span("s", value=attribute):
            logger.info("%s", message, extra={"field": field})
        raise RuntimeError(message)
    got = store.get_execution(run.id)
    assert (got.user_id, got.environment) == (user, environment)
    assert got.metadata == to_jsonable(metadata)
    (span,) = [s for s in got.spans if s.name == "s"]
    assert span.attributes == {"value": to_jsonable(attribute)}
    (log,) = [r for r in got.logs if r.logger == "roundtrip"]
    assert (log.message, log.fields) == (message, {"field": to_jsonable(field)})
    assert got.error is not None and (got.error.type, got.error.message) == (
        "RuntimeError",
        message,
    )
    assert (got.status, got.success) == ("failed", False)


def test_a_damaged_record_is_a_store_error(store: Store) -> None:
    """An undecodable blob in an execution is reported as a StoreError naming the execution."""
    with workbench.record("p", inputs={"big": "x" * 500}, store=store) as run:
        pass
    conn = sqlite3.connect(store.path)
    conn.execute("UPDATE blobs SET data = X'00112233' WHERE codec = 1")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match=rf"execution '{run.id}'.*damaged record"):
        store.get_execution(run.id)
