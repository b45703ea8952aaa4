"""The SQLite backend: a store in one file, WAL, the embedded default.

Owns what is SQLite's own: opening the file (and refusing one that is not a store), its
connections, the full disk (SQLite's ways of saying so), a batch as one ``BEGIN IMMEDIATE``
transaction (``_sql``), compaction, and the file's size. The store above it is the same for
both backends (``_store``); ``_postgres`` is the other.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.exceptions import StoreError, StoreFullError
from workbench.store._errors import disk_full, store_error
from workbench.store._schema import ensure_schema
from workbench.store._sql import (
    commit_retrying,
    delete_executions,
    import_rows,
    interrupt,
    vacuum,
)

if TYPE_CHECKING:
    import sqlalchemy as sa

__all__ = ["DB_ENV", "SqliteBackend", "mount_point"]

DB_ENV = "WORKBENCH_DB"


def mount_point(path: Path) -> Path:
    folder = path.resolve().parent
    while not os.path.ismount(folder) and folder != folder.parent:
        folder = folder.parent
    return folder


class SqliteBackend:
    """A store's SQLite file."""

    name = "sqlite"
    write_errors: tuple[type[BaseException], ...] = (sqlite3.Error,)

    def __init__(self, path: Path, *, auto_migrate: bool = True) -> None:
        self.path = path
        self.url = path
        self.auto_migrate = auto_migrate

    # -- opening ---------------------------------------------------------------------------

    def open_checked(self) -> None:
        path = self.path
        if path.is_dir():
            raise StoreError(
                f"store path {path} is a folder; give a file path like {path / 'workbench.db'}"
            )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the folder for store {path}: {exc.strerror}; choose a "
                f"writable path (argument, {DB_ENV}, or store.path in workbench.yaml)"
            ) from exc
        if path.exists() and not os.access(path, os.R_OK | os.W_OK):
            raise StoreError(
                f"store {path} is not readable and writable by this user; fix its "
                f"permissions or choose another path ({DB_ENV} or store.path in workbench.yaml)"
            )
        # Checked before anything switches the file to WAL: a file that is not ours is refused
        # unchanged.
        conn = self.connect(wal=False)
        try:
            ensure_schema(conn, str(path), migrate=self.auto_migrate)
        except sqlite3.OperationalError as exc:
            if self.unreachable(exc):
                raise self.kept_error(opening=True) from exc
            raise store_error(exc, path, "creating the tables of") from exc
        finally:
            conn.close()

    def connect(self, *, wal: bool = True) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, timeout=60, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise store_error(
                exc,
                self.path,
                "opening",
                fix=f"choose a writable path (argument, {DB_ENV}, or store.path in workbench.yaml)",
            ) from exc
        try:
            if wal:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            else:
                conn.execute("SELECT name FROM sqlite_master LIMIT 1").fetchall()
        except sqlite3.DatabaseError as exc:
            conn.close()
            if self.unreachable(exc):
                raise self.kept_error() from exc
            raise store_error(exc, self.path, "opening") from exc
        return conn

    def engine(self) -> sa.Engine:
        import sqlalchemy as sa

        # Each pooled connection is one of the store's own (WAL, its timeout).
        return sa.create_engine("sqlite+pysqlite://", creator=self.connect)

    def after_fork(self) -> None:
        return None

    def close(self) -> None:
        return None

    # -- a full disk -----------------------------------------------------------------------

    def unreachable(self, exc: BaseException) -> bool:
        """Whether ``exc`` is the disk being full: SQLite rolled the whole transaction back,
        so its rows can be written again once there is space."""
        return disk_full(exc, self.path)

    def kept_error(
        self, *, opening: bool = False, dropped: int = 0, max_bytes: int = 0
    ) -> StoreFullError:
        consequence = (
            "cannot be opened"
            if opening
            else "cannot be written: recorded rows are kept in memory (up to "
            f"{max_bytes / 2**20:.3g} MB, newer rows are dropped past that) "
            "and written as soon as there is space again"
        )
        return StoreFullError(
            f"the disk at {mount_point(self.path)} is full, so store {self.path} "
            f"{consequence}. Free space on that disk, or point {DB_ENV} (or store.path in "
            f"workbench.yaml) at another disk",
            dropped=dropped,
        )

    def lost_kept(self, count: int) -> str:
        return (
            f"workbench closed store {self.path} with {count} recorded rows it kept while the "
            f"disk at {mount_point(self.path)} was full still unwritten; they are lost"
        )

    def free_bytes(self) -> int:
        try:
            return shutil.disk_usage(self.path.parent).free
        except OSError:
            return 0

    def error(
        self, doing: str, exc: BaseException, *, detail: str = "", fix: str = ""
    ) -> StoreError:
        return store_error(exc, self.path, doing, detail=detail, fix=fix)

    # -- writing ---------------------------------------------------------------------------

    def commit(self, conn: sqlite3.Connection, groups: dict[str, list[tuple[Any, ...]]]) -> None:
        commit_retrying(conn, groups)

    def interrupt_ids(self, ids: Sequence[str]) -> None:
        conn = self.connect()
        try:
            interrupt(conn, f"id IN ({', '.join('?' for _ in ids)})", list(ids))
        finally:
            conn.close()

    def interrupt_owner(self, pid: int, host: str) -> None:
        conn = self.connect()
        try:
            interrupt(conn, "pid = ? AND host = ?", (pid, host))
        finally:
            conn.close()

    def delete_executions(self, ids: Sequence[str]) -> tuple[int, int]:
        conn = self.connect()
        try:
            return delete_executions(conn, ids)
        finally:
            conn.close()

    def import_rows(self, groups: dict[str, list[tuple[Any, ...]]], ids: Sequence[str]) -> None:
        conn = self.connect()
        try:
            import_rows(conn, groups, ids)
        finally:
            conn.close()

    def compact(self) -> None:
        conn = self.connect()
        try:
            vacuum(conn)
        finally:
            conn.close()

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists())

    def schema_version(self) -> int:
        conn = self.connect()
        try:
            row = conn.execute("SELECT version FROM workbench_schema").fetchone()
        finally:
            conn.close()
        return int(row[0]) if row else 0

    def migrate(self) -> list[str]:
        """SQLite's upgrades run on open (``_schema.ensure_schema``): nothing is left."""
        return []
