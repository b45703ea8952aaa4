"""The one translation of SQLite's errors: each kind of failure gets the store's error with the
store, what was being done, SQLite's words and the way out — from real SQLite failures."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from workbench.exceptions import NotAStoreError, StoreError
from workbench.monitoring.cost._budget import Ledger
from workbench.store._errors import disk_full, locked, store_error


def _failure(path: Path, *statements: str, **connect: object) -> sqlite3.Error:
    """The error SQLite raises running ``statements`` on ``path``."""
    conn = sqlite3.connect(path, isolation_level=None, **connect)  # type: ignore[arg-type]
    try:
        for statement in statements:
            conn.execute(statement)
    except sqlite3.Error as exc:
        return exc
    finally:
        conn.close()
    raise AssertionError("SQLite raised nothing")


def test_a_file_that_is_no_database_is_not_a_store(tmp_path: Path) -> None:
    """SQLITE_NOTADB becomes NotAStoreError with the recovery command."""
    path = tmp_path / "notes.db"
    path.write_bytes(b"not sqlite at all" * 100)
    error = store_error(_failure(path, "SELECT * FROM sqlite_master"), path, "reading")
    assert isinstance(error, NotAStoreError)
    assert "is not a workbench store" in str(error) and ".recover" in str(error)


def test_a_read_only_store_names_permissions(tmp_path: Path) -> None:
    """A write to a store opened read-only says so and how to fix it."""
    path = tmp_path / "s.db"
    sqlite3.connect(path).close()
    exc = _failure(Path(f"file:{path}?mode=ro"), "CREATE TABLE t (x)", uri=True)
    error = store_error(exc, path, "writing to")
    assert type(error) is StoreError
    assert str(error).startswith(f"writing to store {path} failed: ")
    assert "read-only to this process" in str(error) and "permissions" in str(error)


def test_a_locked_store_says_another_process_holds_it(tmp_path: Path) -> None:
    """ "database is locked" past the busy timeout names the lock and when to try again."""
    path = tmp_path / "s.db"
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        exc = _failure(path, "BEGIN IMMEDIATE", timeout=0)
    finally:
        holder.close()
    assert locked(exc)
    message = str(store_error(exc, path, "reading spend from"))
    assert "reading spend from store" in message
    assert "another process holds the store locked" in message
    assert message.endswith("try again when it is done")


def test_a_full_database_is_recognised(tmp_path: Path) -> None:
    """SQLITE_FULL (here: the page limit reached) is a full disk; other errors are not."""
    path = tmp_path / "s.db"
    exc = _failure(
        path,
        "PRAGMA max_page_count = 2",
        "CREATE TABLE t (x)",
        "INSERT INTO t VALUES (zeroblob(100000))",
    )
    assert disk_full(exc, path)
    assert not disk_full(_failure(path, "SELECT * FROM no_such_table"), path)


def test_any_other_failure_keeps_sqlites_words_and_the_callers_fix(tmp_path: Path) -> None:
    """A failure of no known kind is a StoreError with SQLite's words, the detail and fix."""
    path = tmp_path / "s.db"
    exc = _failure(path, "SELECT * FROM no_such_table")
    error = store_error(exc, path, "reading", detail=" (twice)", fix="run a newer workbench")
    assert str(error) == (
        f"reading store {path} failed: no such table: no_such_table (twice); run a newer workbench"
    )


def test_budgets_reading_a_file_that_is_no_store_get_the_same_error(tmp_path: Path) -> None:
    """The budget ledger, which reads SQLite itself, raises the same NotAStoreError."""
    path = tmp_path / "spend.db"
    path.write_bytes(b"garbage " * 1000)
    ledger = Ledger(str(path), ZoneInfo("UTC"))
    try:
        with pytest.raises(NotAStoreError, match="is not a workbench store"):
            ledger.totals(None, time.time())
    finally:
        ledger.close()
