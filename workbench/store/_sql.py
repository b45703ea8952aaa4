"""The SQL that writes recorded rows: columns, multi-row INSERTs, commits, interrupt marks.

Owns how a batch of queued rows becomes statements and one transaction, and how executions of
ended processes are marked interrupted. It does not decide what is queued (the recorder) or
when a batch is written (``_writer``).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from workbench._json import encode
from workbench._retry import RetryPolicy
from workbench.store._errors import locked
from workbench.store._schema import _TABLES, rollback

__all__ = [
    "CALL_COLUMNS",
    "EXEC_COLUMNS",
    "KINDS",
    "LEDGER_COLUMNS",
    "ORDER",
    "commit_retrying",
    "delete_executions",
    "import_rows",
    "interrupt",
    "vacuum",
]

log = logging.getLogger("workbench.store")

# The row each kind of queued op carries, by position: a table's columns in ``_schema``'s order
# (one definition; a column added there is a column here).
EXEC_COLUMNS = tuple(_TABLES["executions"][0])
_SPAN_COLUMNS = tuple(_TABLES["spans"][0])
_STEP_COLUMNS = tuple(_TABLES["steps"][0])
CALL_COLUMNS = tuple(_TABLES["model_calls"][0])
_STATE_COLUMNS = tuple(_TABLES["states"][0])
_LOG_COLUMNS = tuple(_TABLES["logs"][0])
_PROFILE_COLUMNS = tuple(_TABLES["profiles"][0])
#: A spend the store keeps without its call: an unsampled execution's call (debug mode) still
#: counts for budgets and cost reports, as the trigger on ``model_calls`` counts recorded ones.
LEDGER_COLUMNS = (
    "execution_id",
    "started_at",
    "user_id",
    "pipeline_id",
    "provider",
    "model",
    "cost_usd",
    "input_tokens",
    "output_tokens",
)


#: Kinds of queued op, in the order a batch writes them (blobs before the rows naming them,
#: execution rows before their end): the table, the row's columns, and what a row whose key
#: is already there does ("replace" it, "ignore" the new one, or "append": no key).
KINDS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "blob": ("blobs", ("hash", "codec", "size", "data"), "ignore"),
    "exec": ("executions", EXEC_COLUMNS, "replace"),
    "step": ("steps", _STEP_COLUMNS, "replace"),
    "span": ("spans", _SPAN_COLUMNS, "replace"),
    "call": ("model_calls", CALL_COLUMNS, "replace"),
    "state": ("states", _STATE_COLUMNS, "append"),
    "log": ("logs", _LOG_COLUMNS, "append"),
    "profile": ("profiles", _PROFILE_COLUMNS, "replace"),
    "ledger": ("cost_ledger", LEDGER_COLUMNS, "append"),
}
_VERBS = {"replace": "INSERT OR REPLACE", "ignore": "INSERT OR IGNORE", "append": "INSERT"}


def _insert(table: str, columns: Sequence[str], conflict: str) -> str:
    names = ", ".join(f'"{c}"' for c in columns)
    return f"{_VERBS[conflict]} INTO {table} ({names}) VALUES "


_SQL: dict[str, str] = {
    **{kind: _insert(*spec) for kind, spec in KINDS.items()},
    "exec_end": """
        UPDATE executions SET status = ?, success = ?, error = ?, outputs_hash = ?,
            ended_at = ?, duration_s = ?, metadata = ?,
            tokens_in = (SELECT COALESCE(SUM(input_tokens), 0) FROM model_calls
                         WHERE execution_id = executions.id),
            tokens_out = (SELECT COALESCE(SUM(output_tokens), 0) FROM model_calls
                          WHERE execution_id = executions.id),
            cost_usd = (SELECT CASE WHEN SUM(cost_usd IS NULL AND status_code < 400) > 0
                                    THEN NULL
                                    ELSE COALESCE(SUM(cost_usd), 0.0) END
                        FROM model_calls WHERE execution_id = executions.id
                          AND provider != 'http')
        WHERE id = ?""",
}
ORDER = tuple(_SQL)

# As many rows per INSERT statement as SQLite's 32,766 bound variables allow (up to 2,000).
# One statement is one sqlite3_step, and sqlite3 releases and re-takes the GIL around each
# step: with executemany, a writer competing with a busy recording thread got the GIL back
# about once per switch interval (5 ms) *per row*, and fell ever further behind.
_MAX_VARIABLES = 32_000
_MAX_ROWS = 2_000
_multi_sql: dict[tuple[str, int, int], str] = {}


def _insert_rows(conn: sqlite3.Connection, kind: str, rows: list[tuple[Any, ...]]) -> None:
    width = len(rows[0])
    step = max(1, min(_MAX_ROWS, _MAX_VARIABLES // width))
    for start in range(0, len(rows), step):
        chunk = rows[start : start + step]
        key = (kind, len(chunk), width)
        sql = _multi_sql.get(key)
        if sql is None:
            row = "(" + ", ".join("?" * width) + ")"
            sql = _multi_sql[key] = _SQL[kind] + ", ".join([row] * len(chunk))
        conn.execute(sql, [value for row in chunk for value in row])


def commit_retrying(conn: sqlite3.Connection, groups: dict[str, list[tuple[Any, ...]]]) -> None:
    """Commit, retrying when other processes keep the store locked past the busy timeout."""
    _LOCKED.call(lambda: _commit_binding_safely(conn, groups), on_retry=_warn_locked)


def _warn_locked(exc: BaseException, retry: int, wait_s: float) -> None:
    log.warning("workbench store is locked by another process; retrying the write")


#: Three attempts in all, 0.5 s then 1 s apart: the busy timeout already waited inside each.
_LOCKED = RetryPolicy(retries=2, retry_if=locked, backoff_s=0.5)


def _commit_binding_safely(
    conn: sqlite3.Connection, groups: dict[str, list[tuple[Any, ...]]]
) -> None:
    try:
        _commit(conn, groups)
    except (sqlite3.InterfaceError, sqlite3.ProgrammingError):
        # A value sqlite3 cannot bind (a plain dict in a row): render every such value to
        # JSON and write the batch again, rather than lose the batch.
        log.warning("workbench rendered unbindable values in a batch of recorded rows")
        _commit(
            conn,
            {kind: [tuple(map(_bindable, row)) for row in rows] for kind, rows in groups.items()},
        )


def _commit(conn: sqlite3.Connection, groups: dict[str, list[tuple[Any, ...]]]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for kind in ORDER:
            rows = groups.get(kind)
            if not rows:
                continue
            if kind == "exec_end":
                conn.executemany(_SQL[kind], rows)
            else:
                _insert_rows(conn, kind, rows)
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise


def _bindable(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bytes)):
        return value
    return encode(value).decode()


def interrupt(conn: sqlite3.Connection, where: str, params: Sequence[Any]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        ids = [
            r[0]
            for r in conn.execute(
                f"SELECT id FROM executions WHERE status = 'running' AND {where}", params
            )
        ]
        if ids:
            marks = ", ".join("?" for _ in ids)
            now = time.time()
            conn.execute(
                f"UPDATE executions SET status = 'interrupted', success = NULL, "
                f"ended_at = COALESCE(ended_at, ?) WHERE id IN ({marks})",
                (now, *ids),
            )
            conn.execute(
                f"UPDATE steps SET status = 'interrupted' WHERE status = 'running' "
                f"AND execution_id IN ({marks})",
                ids,
            )
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise


#: The tables whose rows belong to one execution (``execution_id``), children before parents.
_CHILD_TABLES = ("steps", "spans", "model_calls", "states", "logs", "profiles")
#: Every column that names a blob: a blob none of them names is an orphan.
_BLOB_REFERENCES = (
    ("executions", "inputs_hash"),
    ("executions", "outputs_hash"),
    ("steps", "parameters_hash"),
    ("steps", "result_hash"),
    ("model_calls", "request_hash"),
    ("model_calls", "body_hash"),
    ("states", "blob_hash"),
)


def _delete_rows(conn: sqlite3.Connection, ids: Sequence[str]) -> int:
    removed = 0
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        marks = ", ".join("?" for _ in chunk)
        for table in _CHILD_TABLES:
            conn.execute(f"DELETE FROM {table} WHERE execution_id IN ({marks})", chunk)
        removed += conn.execute(f"DELETE FROM executions WHERE id IN ({marks})", chunk).rowcount
    return removed


def _delete_orphaned_blobs(conn: sqlite3.Connection) -> int:
    named = " UNION ".join(
        f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL"
        for table, column in _BLOB_REFERENCES
    )
    return int(conn.execute(f"DELETE FROM blobs WHERE hash NOT IN ({named})").rowcount)


def delete_executions(conn: sqlite3.Connection, ids: Sequence[str]) -> tuple[int, int]:
    """Delete executions ``ids`` with their children, then the blobs nothing names any more,
    in one transaction; how many executions and blobs went.

    The cost ledger keeps its rows: budgets count money spent, and a deleted recording was
    still paid for (and the ledger's ``seq`` must only grow).
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        removed = _delete_rows(conn, ids)
        blobs = _delete_orphaned_blobs(conn)
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise
    return removed, blobs


def import_rows(
    conn: sqlite3.Connection, groups: dict[str, list[tuple[Any, ...]]], ids: Sequence[str]
) -> None:
    """Write whole executions ``ids`` (their rows in ``groups``, by kind) in one transaction,
    replacing executions of the same ids.

    Their model calls add nothing to the cost ledger: that money was spent where they were
    recorded, and a budget here must not count it again. The ledger rows the insert trigger
    appends are taken out before anyone can see them, so ``seq`` still only grows.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        _delete_rows(conn, ids)
        last = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM cost_ledger").fetchone()[0]
        for kind in ORDER:
            rows = groups.get(kind)
            if rows:
                _insert_rows(conn, kind, rows)
        conn.execute("DELETE FROM cost_ledger WHERE seq > ?", (last,))
        _delete_orphaned_blobs(conn)
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise


def vacuum(conn: sqlite3.Connection) -> None:
    """Give the pages freed by deleted rows back to the file system: the file shrinks."""
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("VACUUM")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
