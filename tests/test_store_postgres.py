"""The PostgreSQL store: chosen by URL, its password kept out of sight, its schema checked and
migrated, and a server restart survived; against the session's own real cluster."""

from __future__ import annotations

import logging
import subprocess
import threading
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

import workbench
from workbench.exceptions import (
    MigrationNeededError,
    NotAStoreError,
    SchemaVersionError,
    StoreError,
)
from workbench.store import Store, _tables, resolve_store_path
from workbench.store._codec import decompress
from workbench.store._url import DatabaseURL, parse_location
from workbench.testing._postgres import PostgresServer


def test_a_path_or_sqlite_url_is_sqlite_and_a_postgresql_url_is_postgresql(tmp_path: Path) -> None:
    """Paths and sqlite:/// URLs choose SQLite; postgresql:// URLs (TCP or a socket folder, and
    as a --db path option hands them over, one slash collapsed) choose PostgreSQL."""
    assert parse_location(tmp_path / "w.db").backend == "sqlite"
    sqlite = parse_location(f"sqlite:///{tmp_path}/w.db")
    assert (sqlite.backend, sqlite.path) == ("sqlite", tmp_path / "w.db")
    for url in (
        "postgresql://u:pw@db.example:5432/wb",
        "postgresql:///wb?host=/run/postgresql",
    ):
        location = parse_location(url)
        assert location.backend == "postgresql" and location.path.secret == url  # type: ignore[union-attr]
        assert parse_location(Path(url)).path.secret == url  # type: ignore[union-attr]
    with pytest.raises(StoreError, match=r"scheme 'mysql'.*postgresql://"):
        parse_location("mysql://u:hunter2@h/db")
    with pytest.raises(StoreError) as info:
        parse_location("mysql://u:hunter2@h/db")
    assert "hunter2" not in str(info.value)


def test_store_url_in_workbench_yaml_and_workbench_db_choose_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """store.url in workbench.yaml is read like WORKBENCH_DB, which wins over it."""
    (tmp_path / "workbench.yaml").write_text("store:\n  url: postgresql://u:pw@h/wb\n")
    monkeypatch.setenv("WORKBENCH_CONFIG", str(tmp_path / "workbench.yaml"))
    assert resolve_store_path() == DatabaseURL("postgresql://u:pw@h/wb")
    monkeypatch.setenv("WORKBENCH_DB", f"sqlite:///{tmp_path}/env.db")
    assert resolve_store_path() == tmp_path / "env.db"


def test_the_password_never_shows_in_repr_errors_or_logs(
    postgres_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A URL's password is masked in repr(store), store.url, the error of a refused login,
    the error of a server that is not there, and the warnings of a writer that cannot write."""
    name = postgres_server.new_database()
    url = postgres_server.url(name)
    password = postgres_server.password
    try:
        with Store(url) as store:
            assert password not in repr(store) and "***" in repr(store)
            assert password not in store.url and password not in str(store.path)
        wrong = url.replace(password, "not-" + password)
        with pytest.raises(StoreError) as refused:
            Store(wrong)
        assert "password authentication failed" in str(refused.value)
        assert password not in str(refused.value)
        nowhere = f"postgresql://workbench:{password}@127.0.0.1:1/{name}"
        with pytest.raises(StoreError) as absent:
            Store(nowhere)
        assert password not in str(absent.value) and "***" in str(absent.value)
    finally:
        postgres_server.drop_database(name)
    assert all(password not in r.getMessage() for r in caplog.records)


def test_a_newer_schema_and_another_applications_database_are_refused(
    postgres_server: PostgresServer,
) -> None:
    """A database stamped by a newer workbench is a SchemaVersionError, one holding another
    application's tables a NotAStoreError, each naming the way out."""
    name = postgres_server.new_database()
    url = postgres_server.url(name)
    try:
        Store(url).close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE workbench_schema SET version = 99")
        with pytest.raises(SchemaVersionError, match=r"version 99.*pip install -U"):
            Store(url)
    finally:
        postgres_server.drop_database(name)
    name = postgres_server.new_database()
    url = postgres_server.url(name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE invoices (id int)")
        with pytest.raises(NotAStoreError, match=r"another application.*invoices"):
            Store(url)
    finally:
        postgres_server.drop_database(name)


def test_an_older_schema_is_refused_on_open_and_upgraded_by_migrate(postgres_url: str) -> None:
    """A database lacking a column of today's schema is refused on open (auto_migrate is off
    for PostgreSQL) naming `workbench store migrate`; migrating adds it, and the store opens."""
    Store(postgres_url).close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE executions DROP COLUMN session_id")
    with pytest.raises(
        MigrationNeededError, match=r"executions\.session_id.*workbench store migrate"
    ):
        Store(postgres_url)
    from click.testing import CliRunner

    from workbench.cli.store import store_group

    result = CliRunner().invoke(store_group, ["migrate", "--db", postgres_url])
    assert result.exit_code == 0, result.output
    assert "executions.session_id" in result.output
    with (
        Store(postgres_url) as store,
        workbench.record("p", inputs={}, session_id="s1", store=store) as run,
    ):
        pass
    with Store(postgres_url) as store:
        assert store.get_execution(run.id).session_id == "s1"


def test_a_database_lacking_a_later_index_opens_and_migrate_adds_it(postgres_url: str) -> None:
    """An index added by a later version (the cost report's) does not make a database
    refused on open (only speed depends on it); `workbench store migrate` adds it."""
    Store(postgres_url).close()
    indexes = "SELECT indexname FROM pg_indexes WHERE indexname = 'idx_cost_ledger_report'"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("DROP INDEX idx_cost_ledger_report")
    Store(postgres_url).close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        assert conn.execute(indexes).fetchall() == []
    from click.testing import CliRunner

    from workbench.cli.store import store_group

    result = CliRunner().invoke(store_group, ["migrate", "--db", postgres_url])
    assert result.exit_code == 0, result.output
    assert "idx_cost_ledger_report" in result.output
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        assert conn.execute(indexes).fetchall() == [("idx_cost_ledger_report",)]


def test_a_database_older_than_experiments_gains_their_tables_by_migrate(
    postgres_url: str,
) -> None:
    """A database created before experiments (no experiments, experiment_runs, nor
    executions.experiment_id) is refused on open; `workbench store migrate` adds the tables,
    their index and the column, and an experiment's record is kept and read back."""
    from click.testing import CliRunner

    from workbench.cli.store import store_group
    from workbench.records import Experiment

    Store(postgres_url).close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("DROP TABLE experiments")
        conn.execute("DROP TABLE experiment_runs")
        conn.execute("ALTER TABLE executions DROP COLUMN experiment_id")
    with pytest.raises(MigrationNeededError, match=r"table experiment.*workbench store migrate"):
        Store(postgres_url)
    result = CliRunner().invoke(store_group, ["migrate", "--db", postgres_url])
    assert result.exit_code == 0, result.output
    for added in (
        "table experiments",
        "table experiment_runs",
        "index idx_experiments_started_at",
        "executions.experiment_id",
    ):
        assert added in result.output
    experiment = Experiment(
        id="exp_1",
        name=None,
        pipeline_id="p",
        selection={"pipeline_id": "p"},
        originals=["e1"],
        modifications={},
        on_miss="error",
        engine="inline",
        workers=1,
        status="running",
        started_at=1.0,
        ended_at=None,
        counts={},
    )
    with Store(postgres_url) as store:
        store.put_experiment(experiment)
        assert store.get_experiment("exp_1") == experiment


def test_the_server_restarted_mid_recording_loses_nothing_and_warns_once(
    postgres_server: PostgresServer, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Steps recorded while the server restarts are kept and written once it is back: every
    step is in the store, and the outage is one warning."""
    caplog.set_level(logging.INFO, logger="workbench.store")
    with Store(postgres_url) as store:
        with workbench.record("restart", inputs={}, store=store) as run:
            for i in range(5):
                with workbench.step("before") as step:
                    step.set_result(i)
            restarter = threading.Thread(target=postgres_server.restart)
            restarter.start()
            for i in range(20):
                with workbench.step("during") as step:
                    step.set_result(i)
            restarter.join()
            for i in range(5):
                with workbench.step("after") as step:
                    step.set_result(i)
        store.flush(timeout=60)
        got = store.get_execution(run.id)
    assert [s.result for s in got.steps if s.step_id == "during"] == list(range(20))
    assert len(got.steps) == 30 and got.status == "completed"
    warnings = [
        r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("workbench")
    ]
    assert len(warnings) <= 1, [r.getMessage() for r in warnings]


def test_the_budget_ledger_read_survives_a_server_restart(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    """The budget check's ledger read keeps a connection of its own: after the server
    restarted, the next read is answered on a fresh one instead of failing."""
    with Store(postgres_url) as store:
        seq = store.ledger_snapshot(since=0.0, recent_since=0.0).seq
        assert store.ledger_since(seq) == []
        postgres_server.restart()
        assert store.ledger_since(seq) == []


def test_a_pg_dump_of_a_recording_holds_no_secret(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    """A recording whose inputs, parameters, states and logs carry an API key: neither the key
    nor the URL's password is in pg_dump of the whole database, nor in any decompressed blob
    (states and payloads are stored compressed, so the dump alone could not show them)."""
    key = "sk-proj-" + "Q7v" * 16
    with Store(postgres_url) as store:
        with workbench.record(
            "secrets", inputs={"api_key": key, "prompt": f"use {key}"}, store=store
        ):
            with workbench.step("s", parameters={"authorization": f"Bearer {key}"}):
                workbench.state("config", {"token": key, "note": f"key={key}"})
                logging.getLogger("app").warning("calling with %s", key)
        store.flush()
        blobs = _tables.table("blobs")
        stored = [
            decompress(codec, data)
            for codec, data in store._read(sa.select(blobs.c.codec, blobs.c.data), mappings=False)
        ]
    dump = subprocess.run(
        [str(postgres_server.bin / "pg_dump"), "--data-only", postgres_url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "calling with" in dump and len(stored) >= 3  # the log row, inputs, parameters, state
    for artefact in (dump, *(b.decode("utf-8", "replace") for b in stored)):
        assert key not in artefact and key[:20] not in artefact
        assert postgres_server.password not in artefact
