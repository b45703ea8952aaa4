"""The store's tables, created with sqlite-utils, and the schema-version check.

Owns the DDL and the answer to "is this file a workbench store I can use?". It does not read or
write records (``_store``) and does not batch (``_writer``).
"""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING

from workbench.exceptions import MigrationNeededError, NotAStoreError, SchemaVersionError
from workbench.store._errors import not_a_store, store_error

if TYPE_CHECKING:
    import sqlite_utils

__all__ = ["SCHEMA_VERSION", "ensure_schema", "not_a_store", "rollback"]

SCHEMA_VERSION = 1
APP = "workbench"

_TABLES: dict[str, tuple[dict[str, type], str | tuple[str, ...] | None]] = {
    "executions": (
        {
            "id": str,
            "pipeline_id": str,
            "pipeline_version": str,
            "entrypoint": str,
            "inputs_hash": str,
            "outputs_hash": str,
            "status": str,
            "success": int,
            "error": str,
            "user_id": str,
            "session_id": str,
            "environment": str,
            "sampled": int,
            "debug": int,
            "started_at": float,
            "ended_at": float,
            "duration_s": float,
            "cost_usd": float,
            "tokens_in": int,
            "tokens_out": int,
            "replay_of": str,
            "modifications": str,
            "code_version": str,
            "metadata": str,
            "trace_id": str,
            "pid": int,
            "host": str,
            "proc_start": str,
            "experiment_id": str,
        },
        "id",
    ),
    "spans": (
        {
            "span_id": str,
            "trace_id": str,
            "parent_span_id": str,
            "execution_id": str,
            "name": str,
            "kind": str,
            "attributes": str,
            "events": str,
            "status": str,
            "start": float,
            "end": float,
        },
        ("execution_id", "span_id"),
    ),
    "steps": (
        {
            "execution_id": str,
            "step_id": str,
            "occurrence": int,
            "span_id": str,
            "parent_step_id": str,
            "action": str,
            "parameters_hash": str,
            "result_hash": str,
            "error": str,
            "status": str,
            "retries": int,
            "started_at": float,
            "ended_at": float,
            "duration_s": float,
        },
        ("execution_id", "step_id", "occurrence"),
    ),
    "model_calls": (
        {
            "id": str,
            "execution_id": str,
            "span_id": str,
            "step_id": str,
            "step_occurrence": int,
            "provider": str,
            "model": str,
            "operation": str,
            "request_hash": str,
            "status_code": int,
            "response_headers": str,
            "streamed": int,
            "body_hash": str,
            "chunks": str,
            "input_tokens": int,
            "output_tokens": int,
            "cache_read_tokens": int,
            "cache_write_tokens": int,
            "tokens_estimated": int,
            "cost_usd": float,
            "ttft_s": float,
            "latency_s": float,
            "finish_reason": str,
            "text": str,
            "request_key": str,
            "occurrence": int,
            "started_at": float,
            "error": str,
            "stream_error": str,
            "replayed": int,
        },
        ("execution_id", "id"),
    ),
    "states": (
        {
            "execution_id": str,
            "step_id": str,
            "name": str,
            "seq": int,
            "blob_hash": str,
            "recorded_at": float,
        },
        None,
    ),
    "logs": (
        {
            "execution_id": str,
            "trace_id": str,
            "span_id": str,
            "step_id": str,
            "level": str,
            "logger": str,
            "message": str,
            "fields": str,
            "created_at": float,
        },
        None,
    ),
    "blobs": ({"hash": str, "codec": int, "size": int, "data": bytes}, "hash"),
    # Experiments (``RequestReplay.replay_many``): one row each, and one per original run
    # replayed in it, with what the replay changed, so a summary of 1,000 runs reads 1,000
    # rows instead of diffing 1,000 pairs of executions again.
    "experiments": (
        {
            "id": str,
            "name": str,
            "pipeline_id": str,
            "selection": str,
            "originals": str,
            "modifications": str,
            "on_miss": str,
            "engine": str,
            "workers": int,
            "status": str,
            "started_at": float,
            "ended_at": float,
            "counts": str,
        },
        "id",
    ),
    "experiment_runs": (
        {
            "experiment_id": str,
            "original_id": str,
            "replay_id": str,
            "status": str,
            "error": str,
            "changed": int,
            "first_divergent_step": str,
            "cost_before": float,
            "cost_after": float,
            "tokens_before": int,
            "tokens_after": int,
            "latency_before": float,
            "latency_after": float,
            "calls_recorded": int,
            "calls_live": int,
            "attempts": int,
            "ended_at": float,
        },
        ("experiment_id", "original_id"),
    ),
    "profiles": (
        {
            "id": str,
            "execution_id": str,
            "kind": str,
            "trigger": str,
            "path": str,
            "summary": str,
            "created_at": float,
        },
        "id",
    ),
}

# Tables clustered on their key: one B-tree per insert instead of a table and an index, and a
# blob's hash stored once. Spans and model calls are read per execution, so they are keyed by it.
_WITHOUT_ROWID = frozenset({"spans", "model_calls", "blobs", "experiment_runs"})

_INDEXES: list[tuple[str, list[str]]] = [
    ("executions", ["pipeline_id", "started_at"]),
    ("executions", ["status"]),
    ("executions", ["user_id", "started_at"]),
    ("executions", ["started_at"]),
    ("executions", ["replay_of"]),
    ("states", ["execution_id", "seq"]),
    ("logs", ["execution_id", "created_at"]),
    ("profiles", ["execution_id"]),
    ("experiments", ["started_at"]),
]


# The cost ledger: one row per answered model call that may cost money (not plain HTTP, not a
# replay's, not one answered from a recording), appended by a trigger in the very transaction
# that records the call, so every process sees every other's spend. Budgets read it
# incrementally (rows past the last ``seq`` seen: rows are never deleted, so ``seq`` only
# grows); cost reports group it by day. An older version-1 store gains it when opened, filled
# from the calls it already holds.
_LEDGER_REPORT_INDEX = (
    "CREATE INDEX IF NOT EXISTS idx_cost_ledger_report ON cost_ledger (started_at, model, "
    "pipeline_id, user_id, cost_usd, input_tokens, output_tokens)"
)
_COST_LEDGER = (
    """CREATE TABLE IF NOT EXISTS cost_ledger (
        seq INTEGER PRIMARY KEY, execution_id TEXT, started_at REAL,
        user_id TEXT, pipeline_id TEXT, provider TEXT, model TEXT, cost_usd REAL,
        input_tokens INTEGER, output_tokens INTEGER)""",
    # Covering: a budget sums a month of spend from the index alone.
    "CREATE INDEX IF NOT EXISTS idx_cost_ledger_time ON cost_ledger (started_at, cost_usd)",
    # Covering the cost report: a day's calls grouped by model, pipeline and user are read
    # from the index alone, not looked up row by row in the table (the report's whole cost).
    _LEDGER_REPORT_INDEX,
    # Partial: runs without a user (most, in many deployments) cost no index entry; a
    # ``user_id = ?`` lookup implies the index's condition, so per-user budgets still use it.
    "CREATE INDEX IF NOT EXISTS idx_cost_ledger_user "
    "ON cost_ledger (user_id, started_at, cost_usd) WHERE user_id IS NOT NULL",
    """CREATE TRIGGER IF NOT EXISTS cost_ledger_on_call AFTER INSERT ON model_calls
    WHEN NEW.status_code < 400 AND NEW.provider IS NOT 'http' AND NEW.replayed IS NOT 1
    BEGIN
        INSERT INTO cost_ledger (execution_id, started_at, user_id, pipeline_id,
            provider, model, cost_usd, input_tokens, output_tokens)
        SELECT NEW.execution_id, NEW.started_at, e.user_id, e.pipeline_id,
            NEW.provider, NEW.model, NEW.cost_usd, NEW.input_tokens, NEW.output_tokens
        FROM (SELECT 1) LEFT JOIN executions e ON e.id = NEW.execution_id
        WHERE e.replay_of IS NULL;
    END""",
)
_COST_LEDGER_BACKFILL = """
    INSERT INTO cost_ledger (execution_id, started_at, user_id, pipeline_id, provider,
        model, cost_usd, input_tokens, output_tokens)
    SELECT c.execution_id, c.started_at, e.user_id, e.pipeline_id, c.provider, c.model,
        c.cost_usd, c.input_tokens, c.output_tokens
    FROM model_calls c LEFT JOIN executions e ON e.id = c.execution_id
    WHERE c.status_code < 400 AND c.provider IS NOT 'http' AND c.replayed IS NOT 1
        AND e.replay_of IS NULL
    ORDER BY c.started_at"""


def rollback(conn: sqlite3.Connection) -> None:
    """Roll back the open transaction, if SQLite has not already (it does on a full disk, and
    a second ROLLBACK would hide the cause behind "no transaction is active")."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _ledger_is_current(conn: sqlite3.Connection) -> bool:
    row = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'cost_ledger_on_call'"
    ).fetchone()
    return row is not None and "NEW.replayed" in row[0]


def _ensure_cost_ledger(conn: sqlite3.Connection) -> None:
    """Bring a version-1 store created before them up to the ledger and the ``replayed``
    column (once, in one transaction): the column added, the ledger created and filled from
    the calls already held, the trigger (re)created to leave calls answered from a recording
    out."""
    if _ledger_is_current(conn):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if not _ledger_is_current(conn):
            columns = {row[1] for row in conn.execute("PRAGMA table_info(model_calls)")}
            if "replayed" not in columns:
                conn.execute("ALTER TABLE model_calls ADD COLUMN replayed INTEGER")
            if not conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'cost_ledger'"
            ).fetchone():
                conn.execute(_COST_LEDGER[0])
                conn.execute(_COST_LEDGER_BACKFILL)
            conn.execute("DROP TRIGGER IF EXISTS cost_ledger_on_call")
            for statement in _COST_LEDGER[1:]:
                conn.execute(statement)
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise


def _ensure_report_index(conn: sqlite3.Connection) -> None:
    """Give a store made before it the cost report's covering index (once: a few seconds on
    a store of millions of calls). Only speed depends on it, so a store opened without
    ``auto_migrate`` is read without it rather than refused."""
    if conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'idx_cost_ledger_report'"
    ).fetchone():
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(_LEDGER_REPORT_INDEX)
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise


#: Columns added to version-1 stores after their first release, by table: a store created
#: before one of them gains it (empty for the rows it already holds) when it is opened.
_ADDED_COLUMNS: dict[str, tuple[str, ...]] = {"executions": ("session_id", "experiment_id")}
#: Tables added to version-1 stores after their first release: a store created before one of
#: them gains it (empty, with its indexes) when it is opened.
_ADDED_TABLES: tuple[str, ...] = ("experiments", "experiment_runs")


def _missing_columns(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    missing = []
    for table, added in _ADDED_COLUMNS.items():
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        missing.extend((table, column) for column in added if column not in have)
    return missing


def _missing_tables(conn: sqlite3.Connection) -> list[str]:
    have = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    return [table for table in _ADDED_TABLES if table not in have]


def _ensure_added_tables(conn: sqlite3.Connection) -> None:
    """Create the tables an older version-1 store lacks, once, in one transaction."""
    if not _missing_tables(conn):
        return
    import sqlite_utils

    db = sqlite_utils.Database(conn)
    conn.execute("BEGIN IMMEDIATE")
    try:
        for name in _missing_tables(conn):
            conn.execute(_table_sql(db, name))
            for table, index_columns in _INDEXES:
                if table == name:
                    db[table].create_index(index_columns)  # type: ignore[union-attr]
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise


def _table_sql(db: sqlite_utils.Database, name: str) -> str:
    columns, pk = _TABLES[name]
    sql = db.create_table_sql(name, columns, pk=pk)
    if name in _WITHOUT_ROWID:
        sql = sql.rstrip().rstrip(";") + " WITHOUT ROWID"
    return sql


def _ensure_added_columns(conn: sqlite3.Connection) -> None:
    """Add the columns an older version-1 store lacks, once, in one transaction (two
    processes opening the same old store: the second finds them there)."""
    if not _missing_columns(conn):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table, column in _missing_columns(conn):
            sql_type = "TEXT" if _TABLES[table][0][column] is str else "INTEGER"
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}")
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise


def ensure_schema(conn: sqlite3.Connection, path: str, *, migrate: bool = True) -> None:
    """Create the tables in a new file, or check that an existing file is ours and not newer,
    upgrading an older one in place (``migrate=False``: refusing it instead).

    Raises :class:`NotAStoreError` for a file SQLite cannot read or that holds other tables,
    :class:`SchemaVersionError` for a store written by a newer workbench, and
    :class:`MigrationNeededError` for an older one when ``migrate`` is off.
    """
    try:
        tables = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
    except sqlite3.DatabaseError as exc:
        raise store_error(exc, path, "reading") from exc
    if "workbench_schema" in tables:
        _check_version(conn, path)
        if not migrate and (
            not _ledger_is_current(conn) or _missing_columns(conn) or _missing_tables(conn)
        ):
            raise MigrationNeededError(
                f"store {path} has an older schema and store.auto_migrate is off; upgrade it "
                f"with `workbench store migrate --db {path}`"
            )
        _ensure_cost_ledger(conn)
        _ensure_added_columns(conn)
        _ensure_added_tables(conn)
        if migrate:
            _ensure_report_index(conn)
        return
    if tables - {"sqlite_sequence"}:
        raise NotAStoreError(
            f"{path} is an SQLite database of another application (tables: "
            f"{', '.join(sorted(tables)[:5])}); give workbench a file of its own"
        )
    _create(conn)


def _check_version(conn: sqlite3.Connection, path: str) -> None:
    row = conn.execute("SELECT app, version FROM workbench_schema").fetchone()
    if row is None or row[0] != APP:
        raise NotAStoreError(f"{path} has a workbench_schema table but no workbench stamp in it")
    if row[1] > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{path} was written with store schema version {row[1]}, and this workbench reads "
            f"versions up to {SCHEMA_VERSION}; upgrade with `pip install -U pipeline-workbench`"
        )


def _create(conn: sqlite3.Connection) -> None:
    import sqlite_utils  # only a new store's tables need it: 40 ms kept out of import time

    db = sqlite_utils.Database(conn)
    # One transaction, so two processes creating the same new store cannot interleave.
    conn.execute("BEGIN IMMEDIATE")
    try:
        if conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='workbench_schema'"
        ).fetchone():
            conn.execute("ROLLBACK")
            return
        for name in _TABLES:
            conn.execute(_table_sql(db, name))
        for table, index_columns in _INDEXES:
            db[table].create_index(index_columns)  # type: ignore[union-attr]
        for statement in _COST_LEDGER:
            conn.execute(statement)
        db["workbench_schema"].create(  # type: ignore[union-attr]
            {"app": str, "version": int, "created_at": float}
        )
        conn.execute(
            "INSERT INTO workbench_schema (app, version, created_at) VALUES (?, ?, ?)",
            (APP, SCHEMA_VERSION, time.time()),
        )
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise
