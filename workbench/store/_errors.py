"""The one translation of SQLite's errors into the store's: :class:`StoreError` and its kinds.

Owns recognising what an ``sqlite3`` error means — the file is not a database (or is damaged),
the file is read-only, another process holds the write lock, the disk is full — and the message
each gets: the store, what was being done, SQLite's words, and the way out. Every module that
talks to SQLite raises ``store_error(...) from exc`` rather than wording its own; what a caller
does about a full disk (keep the rows, retry) stays the caller's.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

from workbench.exceptions import NotAStoreError, StoreError

__all__ = ["disk_full", "locked", "not_a_store", "store_error"]

#: Free bytes under which SQLite's "disk I/O error" is taken for a full disk (a failed write to
#: its shared-memory file, which SQLite does not report as SQLITE_FULL).
_NEARLY_FULL = 1 << 20
_WHERE = "argument, WORKBENCH_DB, or store.path in workbench.yaml"


def _primary(exc: BaseException) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def locked(exc: BaseException) -> bool:
    """Whether another connection holds the lock SQLite needed (past the busy timeout)."""
    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc)
    )


def disk_full(exc: BaseException, path: str | os.PathLike[str]) -> bool:
    """Whether ``exc`` says the disk of the store at ``path`` is full."""
    if not isinstance(exc, sqlite3.Error):
        return False
    primary = _primary(exc)
    if primary == sqlite3.SQLITE_FULL or "disk is full" in str(exc):
        return True
    if primary == sqlite3.SQLITE_IOERR or "disk I/O error" in str(exc):
        try:
            return shutil.disk_usage(Path(path).parent).free < _NEARLY_FULL
        except OSError:
            return False
    return False


def _not_a_database(exc: BaseException) -> bool:
    # sqlite3 raises DatabaseError itself (not a subclass) for SQLITE_NOTADB and SQLITE_CORRUPT.
    return type(exc) is sqlite3.DatabaseError or _primary(exc) in (
        sqlite3.SQLITE_NOTADB,
        sqlite3.SQLITE_CORRUPT,
    )


def not_a_store(path: str | os.PathLike[str], exc: BaseException) -> str:
    """The message for a file SQLite cannot read as a database: another file, or a damaged
    store, and the ways back from each (a damaged store is restored or recovered, not lost)."""
    return (
        f"{path} is not a workbench store, or is a damaged one (SQLite says: {exc}). If it is "
        f"a store, restore it from a backup, or recover what SQLite can still read with "
        f"`sqlite3 {path} .recover | sqlite3 {path}.recovered` and use {path}.recovered; "
        f"if it is another file, pass the path of a store"
    )


def store_error(
    exc: BaseException,
    path: str | os.PathLike[str],
    doing: str,
    *,
    detail: str = "",
    fix: str = "",
) -> StoreError:
    """The store's error for ``exc``, raised while ``doing`` (``"reading"``, ``"writing to"``,
    ``"reading spend from"``) the store at ``path``; ``detail`` is added to SQLite's words and
    ``fix`` replaces the generic way out. A full disk is the caller's to recognise first
    (:func:`disk_full`): what it means depends on what the caller keeps."""
    if _not_a_database(exc):
        return NotAStoreError(not_a_store(path, exc))
    failed = f"{doing} store {path} failed: {exc}{detail}"
    if isinstance(exc, sqlite3.OperationalError) and "readonly" in str(exc):
        return StoreError(
            f"{failed}; the store is read-only to this process: "
            f"{fix or f'fix its permissions or choose another path ({_WHERE})'}"
        )
    if locked(exc):
        return StoreError(
            f"{failed}; another process holds the store locked: "
            f"{fix or 'try again when it is done'}"
        )
    return StoreError(f"{failed}; {fix}" if fix else failed)
