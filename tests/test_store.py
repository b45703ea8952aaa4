"""The SQLite store: opening, schema checks, path resolution, dedup and record round-trips."""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
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
    StoreFullError,
)
from workbench.redaction import sensitive_names
from workbench.store import Store, _tables, open_store, resolve_store_path
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


def test_unknown_execution_id(any_store: Store) -> None:
    """Asking for an id that is not there raises ExecutionNotFoundError (also a KeyError)."""
    store = any_store
    with pytest.raises(ExecutionNotFoundError, match="no execution 'exec_nope'") as info:
        store.get_execution("exec_nope")
    assert isinstance(info.value, KeyError)


def test_identical_states_are_stored_once(any_store: Store) -> None:
    """The same large state recorded in two executions adds one blob, not two."""
    store = any_store
    big = {"rows": [{"id": i, "text": f"document {i}", "score": i / 7} for i in range(2_000)]}
    with workbench.record("p", inputs={}, store=store):
        workbench.state("table", big)
    blobs_after_first = store.stats()["blobs"]
    with workbench.record("p", inputs={}, store=store):
        workbench.state("table", big)
        workbench.state("again", big)
    assert store.stats()["blobs"] == blobs_after_first  # same inputs, same state: no new blob
    blobs = _tables.table("blobs")
    rows = store._read(
        sa.select(blobs.c.size, sa.func.length(blobs.c.data).label("stored")).order_by(
            blobs.c.size.desc()
        )
    )
    assert rows[0]["stored"] < rows[0]["size"] / 3  # and it is kept compressed


def test_deleting_executions_removes_their_rows_and_only_orphaned_blobs(any_store: Store) -> None:
    """delete_executions removes the executions with their steps, spans, states and logs, and
    the blobs no remaining row names; a blob another execution shares stays readable, and a
    blob written again after the delete is stored again."""
    store = any_store
    shared = {"rows": list(range(500))}
    ids = []
    for n in range(3):
        with workbench.record("p", inputs={"n": n}, store=store) as run:
            with workbench.step("s", parameters={"n": n}):
                workbench.state("shared", shared)
                workbench.state("own", {"n": n, "text": "x" * 100})
            logging.getLogger("deleting").warning("run %s", n)
        ids.append(run.id)
    before = store.stats()
    assert store.delete_executions([ids[0], ids[1], "exec_unknown"]) == (
        2,
        4,
    )  # each: inputs = parameters, own state
    after = store.stats()
    assert after["executions"] == 1 and after["steps"] == before["steps"] - 2
    assert after["states"] == 2 and after["blobs"] == before["blobs"] - 4
    kept = store.get_execution(ids[2])
    assert [s.value for s in kept.states] == [shared, {"n": 2, "text": "x" * 100}]
    spans = _tables.table("spans")
    assert store._read(sa.select(spans).where(spans.c.execution_id == ids[0])) == []
    with workbench.record("p", inputs={"n": 0}, store=store) as again:
        workbench.state("own", {"n": 0, "text": "x" * 100})  # its blob was deleted above
    assert store.get_execution(again.id).states[0].value == {"n": 0, "text": "x" * 100}


def test_list_executions_filters(any_store: Store) -> None:
    """Listing filters by pipeline, status, user and time range, newest first."""
    store = any_store
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


def test_list_executions_takes_the_clis_time_forms_and_refuses_others(any_store: Store) -> None:
    """``since="1d"`` means a day ago, as ``--since 1d`` does (not a string compared with a
    number, which matched nothing); a form it cannot read is a StoreError naming it."""
    store = any_store
    with workbench.record("a", inputs={}, store=store) as run:
        pass
    assert [e.id for e in store.list_executions(since="1d")] == [run.id]
    assert [e.id for e in store.list_executions(since="2000-01-01")] == [run.id]
    assert store.list_executions(until="1d") == []
    with pytest.raises(StoreError, match=r"since='yesterday'.*30m, 1h, 2d"):
        store.list_executions(since="yesterday")
    with pytest.raises(StoreError, match=r"until=\[1\].*datetime"):
        store.list_executions(until=[1])  # type: ignore[arg-type]


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
    any_store: Store, inputs: Any, params: Any, result: Any, state: Any, output: Any
) -> None:
    """Whatever JSON goes into an execution's inputs, steps, states and outputs reads back equal
    (on SQLite and on PostgreSQL)."""
    store = any_store
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


def test_odd_values_are_rendered_not_refused(any_store: Store) -> None:
    """Sets, bytes, objects and huge ints are stored as readable JSON instead of failing."""
    store = any_store

    class Thing:
        def __repr__(self) -> str:
            return "<Thing 7>"

    with workbench.record(
        "odd", inputs={"s": {3, 1, 2}, "b": b"\x00hi", "t": Thing(), "n": 2**80}, store=store
    ) as run:
        pass
    inputs = store.get_execution(run.id).inputs
    assert inputs == {"s": [1, 2, 3], "b": {"__bytes__": "AGhp"}, "t": "<Thing 7>", "n": 2**80}


def test_a_row_with_an_unbindable_value_does_not_cost_the_batch(any_store: Store) -> None:
    """A plain dict queued where JSON text belongs is rendered, and the rest of the batch kept."""
    store = any_store
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
    any_store: Store,
    user: str | None,
    environment: str | None,
    metadata: dict[str, Any],
    attribute: Any,
    message: str,
    field: Any,
) -> None:
    """Scalars, metadata, span attributes, log records and errors read back as recorded (on
    PostgreSQL, whose text cannot hold NUL, a NUL in a text column reads back as U+FFFD)."""
    store = any_store

    def stored(text: str | None) -> str | None:
        if text is None or store.backend == "sqlite":
            return text
        return text.replace("\x00", "\ufffd")

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
    assert (got.user_id, got.environment) == (stored(user), stored(environment))
    assert got.metadata == to_jsonable(metadata)
    (span,) = [s for s in got.spans if s.name == "s"]
    assert span.attributes == {"value": to_jsonable(attribute)}
    (log,) = [r for r in got.logs if r.logger == "roundtrip"]
    assert (log.message, log.fields) == (stored(message), {"field": to_jsonable(field)})
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


def _damage_inputs(store: Store, execution_id: str) -> None:
    """Overwrite an execution's inputs blob with bytes that are not UTF-8 JSON."""
    conn = sqlite3.connect(store.path)
    (digest,) = conn.execute(
        "SELECT inputs_hash FROM executions WHERE id = ?", (execution_id,)
    ).fetchone()
    conn.execute(
        "UPDATE blobs SET codec = 0, data = X'7B2261223A22FF227D' WHERE hash = ?", (digest,)
    )
    conn.commit()
    conn.close()


def test_listing_keeps_the_readable_executions_and_names_the_damaged(store: Store) -> None:
    """One execution with an undecodable blob, one with a non-UTF-8 text column: the listing
    holds the other executions and names both damaged ids with what is wrong."""
    ids = []
    for i in range(4):
        with workbench.record("p", inputs={"i": i}, store=store) as run:
            pass
        ids.append(run.id)
    _damage_inputs(store, ids[1])
    conn = sqlite3.connect(store.path)
    conn.execute(
        "UPDATE executions SET metadata = CAST(X'7B2261223A22FF227D' AS TEXT) WHERE id = ?",
        (ids[2],),
    )
    conn.commit()
    conn.close()
    listed = store.list_executions()
    assert [e.id for e in listed] == [ids[3], ids[0]]
    assert sorted(listed.damaged) == sorted([ids[1], ids[2]])
    assert all(listed.damaged.values())
    assert len(store.list_executions(limit=None)) == 2


def test_a_damaged_store_says_restore_or_recover(tmp_path: Path) -> None:
    """A store whose file is damaged is refused with the ways back: a backup, or .recover."""
    path = tmp_path / "w.db"
    with Store(path) as store, workbench.record("p", inputs={}, store=store):
        pass
    data = bytearray(path.read_bytes())
    data[:16] = b"garbage garbage!"  # the SQLite header: "file is not a database"
    path.write_bytes(bytes(data))
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    with pytest.raises(NotAStoreError) as info:
        Store(path)
    message = str(info.value)
    assert str(path) in message and "backup" in message and ".recover" in message


def test_known_blob_hashes_stay_bounded(store: Store) -> None:
    """The in-process memory of stored blobs does not grow with every execution recorded."""
    from workbench.store import _codec

    limit = _codec.KNOWN_BLOBS
    for i in range(limit + 10):
        store.blob_bytes(workbench._json.encode({"n": i}))
    assert len(store._known_blobs) <= limit
    digest = store.blob_bytes(workbench._json.encode({"n": 0}))  # forgotten, so written again
    store.flush()
    assert store.blob_value(digest) == {"n": 0}


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs mounted for the test: a disk that really fills up."""
    if os.geteuid() != 0:
        pytest.skip("a tiny filesystem for the disk-full test needs root to mount a tmpfs")
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"the disk-full test needs a tmpfs, and mount refused: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder: Path) -> Path:
    filler = folder / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def test_a_full_disk_is_one_warning_and_recording_resumes(
    tiny_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """200 steps on a full disk: the application is unaffected, the log has one warning naming
    the full disk and the store, no traceback; once space returns, recording resumes."""
    store = Store(tiny_disk / "w.db")
    filler = _fill(tiny_disk)
    caplog.set_level(logging.INFO, logger="workbench")
    with workbench.record("full", inputs={}, store=store):
        for i in range(200):
            with workbench.step("s") as step:
                workbench.state("noise", os.urandom(512).hex())
                step.set_result(i)
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(problems) == 1, [r.getMessage() for r in problems]
    message = problems[0].getMessage()
    assert "full" in message and str(store.path) in message
    assert problems[0].exc_info is None
    assert "rollback" not in caplog.text
    filler.unlink()
    with workbench.record("after", inputs={}, store=store) as run:
        with workbench.step("s") as step:
            step.set_result("kept")
    got = store.get_execution(run.id)
    assert got.status == "completed" and [s.result for s in got.steps] == ["kept"]
    assert store._query("PRAGMA integrity_check")[0][0] == "ok"
    store.close()


@pytest.mark.parametrize("warm", [True, False], ids=["writing", "not-yet-connected"])
def test_rows_recorded_on_a_full_disk_are_written_once_space_returns(
    tiny_disk: Path, caplog: pytest.LogCaptureFixture, warm: bool
) -> None:
    """An execution recorded while the disk is full is kept in memory and written, whole, once
    space returns, with nothing new recorded to prompt it (the writer retries by itself);
    also when the writer's connection is first opened on the full disk."""
    store = Store(tiny_disk / "w.db")
    if warm:
        with workbench.record("warm", inputs={}, store=store):
            pass  # the writer's connection is open before the disk fills
    filler = _fill(tiny_disk)
    caplog.set_level(logging.INFO, logger="workbench")
    with workbench.record("full", inputs={"n": 50}, store=store) as run:
        for i in range(50):
            with workbench.step("s") as step:
                workbench.state("noise", os.urandom(256).hex())
                step.set_result(i)
    store.flush(strict=False)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "kept" in warnings[0], warnings
    filler.unlink()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            got = store.get_execution(run.id)
        except ExecutionNotFoundError:
            time.sleep(0.1)
            continue
        if got.status == "completed":
            break
        time.sleep(0.1)
    got = store.get_execution(run.id)
    assert got.status == "completed" and [s.result for s in got.steps] == list(range(50))
    assert len(got.states) == 50
    assert store._query("PRAGMA integrity_check")[0][0] == "ok"
    assert "lost" not in caplog.text
    store.close()


def test_closing_a_store_on_a_still_full_disk_says_what_is_lost(
    tiny_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Rows kept for a full disk that is still full when the store closes are named as lost in
    one warning, and close() raises the full disk's StoreFullError."""
    store = Store(tiny_disk / "w.db")
    _fill(tiny_disk)
    with workbench.record("never", inputs={}, store=store):
        with workbench.step("s") as step:
            step.set_result(1)
    caplog.set_level(logging.WARNING, logger="workbench")
    with pytest.raises(StoreFullError):
        store.close()
    lost = [r.getMessage() for r in caplog.records if "lost" in r.getMessage()]
    assert len(lost) == 1 and str(store.path) in lost[0], lost


def test_rows_kept_for_a_full_disk_are_bounded(
    tiny_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Past the bound on rows kept for a full disk, newer batches are dropped and counted, the
    older ones kept and written once there is space; memory stays under the bound."""
    store = Store(tiny_disk / "w.db")
    store._unwritten.max_bytes = 40_000  # the bound of a long outage, scaled to a tiny disk
    filler = _fill(tiny_disk)
    caplog.set_level(logging.INFO, logger="workbench")
    with workbench.record("first", inputs={}, store=store) as first:
        with workbench.step("s") as step:
            step.set_result("kept")
    with workbench.record("flood", inputs={}, store=store):
        for i in range(20):
            with workbench.step("big") as step:
                workbench.state("noise", os.urandom(4096).hex())
                step.set_result(i)
    store.flush(strict=False)
    assert 0 < store._unwritten.bytes <= 40_000
    filler.unlink()
    store.flush(strict=False)  # prompts the try: there is space now
    got = store.get_execution(first.id)
    assert got.status == "completed" and [s.result for s in got.steps] == ["kept"]
    resumed = [r.getMessage() for r in caplog.records if "writing recordings" in r.getMessage()]
    assert resumed and "lost" in resumed[0], resumed
    store.close()


def test_a_store_written_before_session_ids_gains_the_column(tmp_path: Path) -> None:
    """An older store without executions.session_id is brought up to it when opened: its old
    executions read back with no session, new ones keep theirs."""
    path = tmp_path / "old.db"
    with Store(path) as old:
        with workbench.record("before", inputs={}, store=old) as before:
            pass
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE executions DROP COLUMN session_id")
    conn.commit()
    conn.close()
    with Store(path) as reopened:
        assert reopened.get_execution(before.id).session_id is None
        with workbench.record("after", inputs={}, session_id="s1", store=reopened) as after:
            pass
        assert reopened.get_execution(after.id).session_id == "s1"


def test_an_older_sqlite_store_is_refused_when_auto_migrate_is_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With store.auto_migrate: false an older SQLite store is refused on open, naming
    `workbench store migrate`, and left unchanged; migrating upgrades it and it opens."""
    from workbench.exceptions import MigrationNeededError
    from workbench.store._store import migrate_store

    path = tmp_path / "old.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE executions DROP COLUMN session_id")
    conn.commit()
    conn.close()
    (tmp_path / "workbench.yaml").write_text("store:\n  auto_migrate: false\n")
    monkeypatch.setenv("WORKBENCH_CONFIG", str(tmp_path / "workbench.yaml"))
    with pytest.raises(MigrationNeededError, match="workbench store migrate"):
        Store(path)
    conn = sqlite3.connect(path)
    columns = {r[1] for r in conn.execute("PRAGMA table_info(executions)")}
    conn.close()
    assert "session_id" not in columns
    migrate_store(path)
    Store(path).close()
