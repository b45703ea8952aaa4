"""The SQLite store: one file, WAL, blobs content-addressed and compressed.

Owns opening (path resolution, schema check), the write table the background writer drains, and
the query API that turns rows back into records. It knows nothing of contextvars, HTTP or
pricing: the recorder hands it finished rows, or callables that build them off the caller's path.
"""

from __future__ import annotations

import collections.abc
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import zstandard

from workbench._gc import paused
from workbench._json import decode
from workbench._when import parse_when
from workbench.exceptions import (
    ExecutionNotFoundError,
    ProfileNotFoundError,
    StoreError,
    StoreFullError,
)
from workbench.records import (
    ErrorInfo,
    Execution,
    LogRecord,
    ModelCall,
    Profile,
    ProfileSummary,
    State,
)
from workbench.redaction import scrub_rendered
from workbench.store import _process
from workbench.store import _rows as rows
from workbench.store._codec import KnownBlobs, blob_hash, compress, decompress
from workbench.store._errors import disk_full, store_error
from workbench.store._owner import is_alive, owner_stamp
from workbench.store._process import install_sigterm_handler
from workbench.store._prune import Pruned, prunable
from workbench.store._queries import Queries
from workbench.store._schema import ensure_schema
from workbench.store._sql import (
    commit_retrying,
    delete_executions,
    import_rows,
    interrupt,
    vacuum,
)
from workbench.store._ui_reads import UIReads
from workbench.store._unwritten import RETRY_S, Groups, Unwritten
from workbench.store._writer import Op, Writer

__all__ = [
    "DEFAULT_PATH",
    "ExecutionList",
    "Store",
    "open_store",
    "resolve_store_path",
]

DEFAULT_PATH = Path("recordings") / "workbench.db"
DB_ENV = "WORKBENCH_DB"
log = logging.getLogger("workbench.store")
#: Free bytes beyond the kept rows' size that make a full disk worth trying again at once.
_ROOM_MARGIN = 64 << 10


class ExecutionList(list[Execution]):
    """The executions :meth:`Store.list_executions` could read, newest first.

    ``damaged`` maps the id of each matching execution whose record could not be read to what
    is wrong with it (``workbench runs show ID`` says the same); those are not in the list.
    """

    def __init__(
        self, executions: Iterable[Execution] = (), damaged: dict[str, str] | None = None
    ) -> None:
        super().__init__(executions)
        self.damaged: dict[str, str] = dict(damaged or {})

    def _repr_html_(self) -> str:
        """Jupyter's view: one execution a row, damaged ids named below the table."""
        from workbench._notebook import executions_html

        return executions_html(self, self.damaged)


def _moment(name: str, value: object) -> float:
    """``since``/``until`` as a Unix time; a value that is none of the forms is refused."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return parse_when(value).timestamp()
        except ValueError as exc:
            raise StoreError(f"list_executions({name}={value!r}): {exc}") from None
    raise StoreError(
        f"list_executions({name}={value!r}): use a datetime, a Unix time in seconds, or a "
        f"relative or ISO form like '2d' or '2024-05-01'"
    )


def _undecodable_text(exc: BaseException | None) -> bool:
    """Whether sqlite3 refused a TEXT value that is not UTF-8 (a damaged row)."""
    return isinstance(exc, sqlite3.OperationalError) and "Could not decode" in str(exc)


def _mount_point(path: Path) -> Path:
    folder = path.resolve().parent
    while not os.path.ismount(folder) and folder != folder.parent:
        folder = folder.parent
    return folder


def resolve_store_path(path: str | os.PathLike[str] | None = None) -> Path:
    """Argument, then ``WORKBENCH_DB``, then ``workbench.yaml``'s ``store.path``, then default."""
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get(DB_ENV)
    if env:
        return Path(env).expanduser()
    from workbench.config import load_config

    configured = load_config().store_path()
    return configured if configured is not None else DEFAULT_PATH


class Store(Queries, UIReads):
    """A workbench store in one SQLite file. Thread-safe; one per file per process is enough."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = resolve_store_path(path)
        self._open_checked()
        self._read_lock = threading.Lock()
        self._reader = self._connect()
        self._reader_pid = os.getpid()
        #: The SQLAlchemy engine that ``_read`` runs statements on, made on first use.
        self._engine: Any = None
        self._known_blobs = KnownBlobs()
        #: Rows a full disk refused, written before the next batch once it has space.
        self._unwritten = Unwritten()
        self._writer = Writer(
            self._connect,
            self._write_batch,
            name=f"store {self.path}",
            retry_due=self._retry_due,
        )
        self._closed = False
        _process.register(self)
        install_sigterm_handler()

    def _after_fork(self) -> None:
        # SQLite connections must not cross a fork, a lock may have been held by a thread that
        # does not exist here, and the blobs known to the parent's writer are the parent's.
        self._read_lock = threading.Lock()
        self._reader = self._connect()
        self._reader_pid = os.getpid()
        if self._engine is not None:
            self._engine.dispose(close=False)  # the parent's connections stay the parent's
        self._known_blobs = KnownBlobs()
        self._unwritten.clear()  # the parent's rows: its writer writes them, not the child's

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # -- opening ---------------------------------------------------------------------------

    def _open_checked(self) -> None:
        if self.path.is_dir():
            raise StoreError(
                f"store path {self.path} is a folder; give a file path like "
                f"{self.path / 'workbench.db'}"
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the folder for store {self.path}: {exc.strerror}; choose a "
                f"writable path (argument, {DB_ENV}, or store.path in workbench.yaml)"
            ) from exc
        if self.path.exists() and not os.access(self.path, os.R_OK | os.W_OK):
            raise StoreError(
                f"store {self.path} is not readable and writable by this user; fix its "
                f"permissions or choose another path ({DB_ENV} or store.path in workbench.yaml)"
            )
        # Checked before anything switches the file to WAL: a file that is not ours is refused
        # unchanged.
        conn = self._connect(wal=False)
        try:
            ensure_schema(conn, str(self.path))
        except sqlite3.OperationalError as exc:
            if self._disk_full(exc):
                raise self._full_disk_error(opening=True) from exc
            raise store_error(exc, self.path, "creating the tables of") from exc
        finally:
            conn.close()

    def _connect(self, *, wal: bool = True) -> sqlite3.Connection:
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
            if self._disk_full(exc):
                raise self._full_disk_error() from exc
            raise store_error(exc, self.path, "opening") from exc
        return conn

    def _disk_full(self, exc: sqlite3.Error) -> bool:
        return disk_full(exc, self.path)

    def _full_disk_error(self, *, opening: bool = False, dropped: int = 0) -> StoreFullError:
        consequence = (
            "cannot be opened"
            if opening
            else "cannot be written: recorded rows are kept in memory (up to "
            f"{self._unwritten.max_bytes / 2**20:.3g} MB, newer rows are dropped past that) "
            "and written as soon as there is space again"
        )
        return StoreFullError(
            f"the disk at {_mount_point(self.path)} is full, so store {self.path} "
            f"{consequence}. Free space on that disk, or point {DB_ENV} (or store.path in "
            f"workbench.yaml) at another disk",
            dropped=dropped,
        )

    # -- writing (called by the recorder; cheap, never blocks but in flush) ------------------

    def put(self, kind: str, row: tuple[Any, ...]) -> None:
        """Queue one row of ``kind`` (see ``_SQL``) for the writer."""
        self._writer.put((kind, row))

    @property
    def enqueue(self) -> Callable[[tuple[Any, ...]], None]:
        """Queue one ``(kind, row)`` op with no wake-up: the recorder's span hot path."""
        return self._writer.enqueue

    @property
    def backlog(self) -> collections.abc.Sized:
        """The ops queued but not yet written (its ``len``), for callers that bound it."""
        return self._writer._queue

    def defer(self, build: Callable[[], Iterable[tuple[str, tuple[Any, ...]]]]) -> None:
        """Queue work that produces rows, to be done by the writer thread, not the caller."""
        self._writer.put(("deferred", build))

    @staticmethod
    def blob_hash(data: bytes) -> str:
        """The hash ``data`` is stored under as a blob (to compare with one already stored)."""
        return blob_hash(data)

    def blob_op(self, data: bytes) -> tuple[str, tuple[str, tuple[str, bytes]] | None]:
        """For deferred builders on the writer thread: the hash, and the op to queue if new."""
        digest = blob_hash(data)
        if digest in self._known_blobs:
            return digest, None
        self._known_blobs.add(digest)
        return digest, ("blob", (digest, data))

    def blob_bytes(self, data: bytes) -> str:
        digest = blob_hash(data)
        if digest not in self._known_blobs:
            self._known_blobs.add(digest)
            self._writer.put(("blob", (digest, data)))
        return digest

    def flush(self, timeout: float | None = 30.0, *, strict: bool = True) -> None:
        """Block until everything queued so far is committed to the file.

        ``strict=False`` does not raise a write failure (the writer has logged it, once a
        minute), so that a full disk degrades recording rather than the caller's work.
        """
        try:
            done = self._writer.flush(timeout)
        except StoreError:
            if strict:
                raise
            return
        if not done:
            message = (
                f"store {self.path} did not commit within {timeout}s; another process may "
                f"hold a long write lock on it"
            )
            if strict:
                raise StoreError(message + "; try again when it is done")
            log.warning("workbench: %s; carrying on, the writer commits when it can", message)

    def flush_soon(self) -> bool:
        """The recorder's flush (execution start, step end, execution end): wait at most
        100 ms for everything queued so far to be committed, then carry on.

        The application's latency must not depend on the store's: when another process holds
        the write lock, recording lags (``write_lag_s``, one warning) and the writer commits
        as soon as the lock is free. ``True`` when committed within the bound.
        """
        return self._writer.flush_soon()

    @property
    def write_lag_s(self) -> float:
        """Seconds the oldest recording not committed within ``flush_soon``'s bound has waited
        (0 when the store keeps up): the ``store_write_lag_seconds`` metric."""
        return self._writer.lag_s

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._unwritten.retry_at = 0.0  # the last chance for rows a full disk refused
        try:
            self._writer.close()
        finally:
            lost = self._unwritten.clear()
            if lost:
                log.warning(
                    "workbench closed store %s with %d recorded rows it kept while the disk at "
                    "%s was full still unwritten; they are lost",
                    self.path,
                    lost,
                    _mount_point(self.path),
                )
            self._reader.close()
            if self._engine is not None:
                self._engine.dispose()
            _process.unregister(self)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _write_batch(self, connection: Callable[[], sqlite3.Connection], ops: list[Op]) -> None:
        groups = self._built(ops)
        unwritten = self._unwritten
        if unwritten and not self._retry_due():
            # The disk was full a moment ago and still is: keep these rows too, rather than
            # rewrite all the kept ones at every step's end.
            self._forget_blobs(groups)
            raise self._full_disk_error(dropped=unwritten.keep(groups))
        batch = unwritten.before(groups) if unwritten else groups
        try:
            commit_retrying(connection(), batch)
        except StoreFullError:  # the writer's connection could not even be opened
            self._forget_blobs(groups)
            self._retry_later()
            raise self._full_disk_error(dropped=unwritten.keep(groups)) from None
        except sqlite3.Error as exc:
            # Not written: its blobs must not count as stored, or a later row with the same
            # content would point at a blob that is never written (kept rows carry their own).
            self._forget_blobs(groups)
            if self._disk_full(exc):
                # SQLite rolled the whole transaction back: the rows can be written again.
                self._retry_later()
                raise self._full_disk_error(dropped=unwritten.keep(groups)) from exc
            # Another failure may be caused by a row of the batch: no retry, kept rows included.
            given_up = unwritten.clear()
            also = f"; {given_up} rows kept from a full disk were lost with it" if given_up else ""
            raise store_error(exc, self.path, "writing to", detail=also) from exc
        unwritten.clear()

    def _retry_later(self) -> None:
        self._unwritten.retry_at = time.monotonic() + RETRY_S
        self._unwritten.free_at_failure = self._free_bytes()

    def _retry_due(self) -> bool:
        """Whether rows a full disk refused are kept, and it is time to try them again: a
        second after the last try, or at once when the disk has gained room for them since (a
        statvfs, cheap next to a try, which rewrites them all)."""
        unwritten = self._unwritten
        if not unwritten:
            return False
        if unwritten.due():
            return True
        gained = self._free_bytes() - unwritten.free_at_failure
        return gained > unwritten.bytes + _ROOM_MARGIN

    def _free_bytes(self) -> int:
        try:
            return shutil.disk_usage(self.path.parent).free
        except OSError:
            return 0

    def _built(self, ops: list[Op]) -> Groups:
        """The rows of ``ops`` by kind, deferred builders run, blobs compressed, spans
        scrubbed: what a transaction writes (and what a full disk's refusal keeps)."""
        groups: Groups = {}
        for kind, payload in ops:
            if kind == "deferred":
                try:
                    built = list(payload())
                except Exception:  # one bad builder must not cost the rest of the batch
                    log.exception("workbench could not build a recorded row; it is skipped")
                    continue
                for sub_kind, row in built:
                    groups.setdefault(sub_kind, []).append(row)
            else:
                groups.setdefault(kind, []).append(payload)
        if "blob" in groups:
            groups["blob"] = [
                (digest, codec, len(data), packed)
                for digest, data in groups["blob"]
                for codec, packed in (compress(data),)
            ]
        if "span" in groups:
            groups["span"] = [_scrubbed_span(row) for row in groups["span"]]
        return groups

    def _forget_blobs(self, groups: Groups) -> None:
        for digest, *_ in groups.get("blob", ()):
            self._known_blobs.discard(digest)

    def mark_interrupted(self) -> None:
        """Flush, then mark this process's still-running executions and steps ``interrupted``.

        Uses a connection of its own, not the reader and its lock: it runs from a signal
        handler, which may have interrupted this very thread inside a read.
        """
        self.flush(strict=False)
        conn = self._connect()
        try:
            pid, host, _ = owner_stamp()
            interrupt(conn, "pid = ? AND host = ?", (pid, host))
        finally:
            conn.close()

    def delete_executions(self, execution_ids: Iterable[str]) -> tuple[int, int]:
        """Delete these executions with their steps, spans, model calls, states, logs and
        profiles, and the blobs no remaining row names; ``(executions, blobs)`` removed.

        Unknown ids are skipped. The cost ledger keeps its rows (money spent stays spent).
        Another process recording into the store meanwhile may have counted on a blob that
        goes: prune a store no one is recording into.
        """
        ids = list(dict.fromkeys(execution_ids))
        self.flush()
        if not ids:
            return 0, 0
        conn = self._connect()
        try:
            removed = delete_executions(conn, ids)
        except sqlite3.Error as exc:
            raise store_error(exc, self.path, "deleting executions from") from exc
        finally:
            conn.close()
        # The blobs this process queued may be among those gone: write them again when named.
        self._known_blobs = KnownBlobs()
        return removed

    def prune(
        self,
        *,
        keep_last: int | None = None,
        older_than: datetime | float | str | None = None,
        replays: bool = False,
        dry_run: bool = False,
    ) -> Pruned:
        """Delete the executions matching every condition given (see
        :func:`~workbench.store._prune.prunable`) with their children and orphaned blobs,
        then compact the file; what went (``dry_run``: what would go, nothing deleted)."""
        chosen = prunable(self, keep_last=keep_last, older_than=older_than, replays=replays)
        before = self.stats()["bytes"]
        if dry_run or not chosen:
            return Pruned(chosen, 0, before, before)
        _, blobs = self.delete_executions(execution.id for execution in chosen)
        conn = self._connect()
        try:
            vacuum(conn)
        except sqlite3.Error as exc:  # the rows are gone; only the file stays as large
            log.warning("workbench: could not compact store %s after pruning: %s", self.path, exc)
        finally:
            conn.close()
        return Pruned(chosen, blobs, before, self.stats()["bytes"])

    def import_rows(
        self, rows: dict[str, list[tuple[Any, ...]]], execution_ids: Sequence[str]
    ) -> None:
        """Write whole executions at once, as ``(kind, row)`` groups the writer's kinds name
        (``workbench.store._export`` builds them from exported files), replacing executions
        of the same ids; their calls add nothing to the cost ledger (spent elsewhere)."""
        groups = dict(rows)
        if "blob" in groups:  # kept compressed, as the writer keeps them
            groups["blob"] = [
                (digest, codec, len(data), packed)
                for digest, data in groups["blob"]
                for codec, packed in (compress(data),)
            ]
        self.flush()
        conn = self._connect()
        try:
            import_rows(conn, groups, list(execution_ids))
        except sqlite3.Error as exc:
            raise store_error(exc, self.path, "importing into") from exc
        finally:
            conn.close()
        self._known_blobs = KnownBlobs()  # orphaned blobs of replaced executions went

    # -- reading ---------------------------------------------------------------------------

    def _query(self, sql: str, params: Sequence[Any] = (), *, rows: Any = sqlite3.Row) -> list[Any]:
        """The rows of ``sql``: ``sqlite3.Row`` objects, or plain tuples with ``rows=tuple``."""
        if self._closed:
            raise StoreError(f"store {self.path} is closed; open it again with Store(path)")
        with self._read_lock:
            self._reader.row_factory = rows if rows is not tuple else None
            try:
                return list(self._reader.execute(sql, params))
            except sqlite3.DatabaseError as exc:
                raise store_error(exc, self.path, "reading") from exc

    def _read(self, statement: Any) -> list[Any]:
        """The rows of a SQLAlchemy Core ``statement`` over :mod:`._tables`, as mappings
        (``row["column"]``), rendered for this store's backend."""
        import sqlalchemy as sa

        if self._closed:
            raise StoreError(f"store {self.path} is closed; open it again with Store(path)")
        if self._engine is None:
            # Each pooled connection is one of the store's own (WAL, its timeout).
            self._engine = sa.create_engine("sqlite+pysqlite://", creator=self._connect)
        try:
            with self._engine.connect() as conn:
                return list(conn.execute(statement).mappings())
        except sa.exc.DBAPIError as exc:
            raise store_error(exc.orig or exc, self.path, "reading") from exc

    def _blobs(self, hashes: Iterable[str | None]) -> dict[str, Any]:
        wanted = sorted({h for h in hashes if h})
        found: dict[str, Any] = {}
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            marks = ", ".join("?" for _ in chunk)
            for row in self._query(
                f"SELECT hash, codec, data FROM blobs WHERE hash IN ({marks})", chunk
            ):
                found[row["hash"]] = decompress(row["codec"], row["data"])
        return found

    def _refresh_liveness(self, rows: list[sqlite3.Row]) -> list[str]:
        dead = [
            row["id"]
            for row in rows
            if row["status"] == "running"
            and not is_alive(row["pid"], row["host"], row["proc_start"])
        ]
        if dead:
            marks = ", ".join("?" for _ in dead)
            try:
                with self._read_lock:
                    interrupt(self._reader, f"id IN ({marks})", dead)
            except sqlite3.Error as exc:
                raise store_error(
                    exc,
                    self.path,
                    f"marking {len(dead)} execution(s) of ended processes interrupted in",
                    fix="try again when other writers are done",
                ) from exc
        return dead

    def get_execution(self, execution_id: str, *, model_calls: bool = True) -> Execution:
        """The execution with its steps, spans, model calls, states, logs and profiles.

        ``model_calls=False`` leaves ``model_calls`` empty, for a reader that gets them another
        way (replay reads :meth:`recorded_responses`): the calls are most of a large recording.
        """
        self.flush()
        rows = self._query("SELECT * FROM executions WHERE id = ?", (execution_id,))
        if not rows:
            raise ExecutionNotFoundError(
                f"no execution {execution_id!r} in store {self.path}; list the recorded ones "
                f"with `workbench runs list`"
            )
        dead = self._refresh_liveness(rows)
        try:
            with paused():  # decoding thousands of calls: a large, long-lived graph at once
                return self._execution(
                    rows[0], full=True, interrupted=bool(dead), model_calls=model_calls
                )
        except (ValueError, zstandard.ZstdError) as exc:  # undecodable JSON or blob
            raise StoreError(
                f"execution {execution_id!r} in store {self.path} has a damaged record "
                f"({type(exc).__name__}: {exc}); restore the store file from a backup, or "
                f"record the run again"
            ) from exc

    def list_executions(
        self,
        *,
        pipeline_id: str | None = None,
        status: str | None = None,
        user_id: str | None = None,
        since: datetime | float | str | None = None,
        until: datetime | float | str | None = None,
        replay_of: str | None = None,
        limit: int | None = 100,
    ) -> ExecutionList:
        """Executions, newest first, without their children (use ``get_execution`` for those).

        ``since``/``until``: a ``datetime``, a Unix time, or what the CLI's ``--since`` takes
        (``30m``, ``2d``, ``1w`` ago; an ISO date or datetime).

        An execution whose record cannot be read (a damaged file) is left out and named, with
        what is wrong, in the result's ``damaged``: one bad row does not hide the others.
        """
        allowed = ("running", "completed", "failed", "interrupted")
        if status is not None and status not in allowed:
            raise StoreError(f"status {status!r} is not one of {', '.join(allowed)}")
        self.flush()
        running = "SELECT * FROM executions WHERE status = 'running'"
        try:
            self._refresh_liveness(self._query(running))
        except StoreError as exc:
            if not _undecodable_text(exc.__cause__):
                raise
            # A damaged running row (named by the listing below): judge the readable ones.
            self._refresh_liveness(self._readable_rows(running, (), {}))
        where: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("pipeline_id", pipeline_id),
            ("user_id", user_id),
            ("replay_of", replay_of),
            ("status", status),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            where.append("started_at >= ?")
            params.append(_moment("since", since))
        if until is not None:
            where.append("started_at < ?")
            params.append(_moment("until", until))
        sql = "SELECT * FROM executions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        damaged: dict[str, str] = {}
        try:
            found = self._query(sql, params)
        except StoreError as exc:
            if not _undecodable_text(exc.__cause__):
                raise
            found = self._readable_rows(sql, params, damaged)
        listed = []
        for row in found:
            try:
                listed.append(self._execution(row, full=False, interrupted=False))
            except (ValueError, zstandard.ZstdError) as exc:  # undecodable JSON or blob
                damaged[row["id"]] = f"{type(exc).__name__}: {exc}"
        return ExecutionList(listed, damaged)

    def _readable_rows(
        self, sql: str, params: Sequence[Any], damaged: dict[str, str]
    ) -> list[sqlite3.Row]:
        """The rows of an executions query one by one, when some hold text that is not UTF-8:
        the readable rows, and each unreadable one named in ``damaged``."""
        keys = self._query(
            sql.replace("SELECT *", "SELECT rowid, CAST(id AS BLOB) AS raw_id", 1), params
        )
        readable = []
        for key in keys:
            try:
                readable.extend(
                    self._query("SELECT * FROM executions WHERE rowid = ?", (key["rowid"],))
                )
            except StoreError as exc:
                if not _undecodable_text(exc.__cause__):
                    raise
                raw_id = bytes(key["raw_id"] or b"").decode("utf-8", "replace")
                damaged[raw_id] = f"text that is not UTF-8 ({exc.__cause__})"
        return readable

    def _execution(
        self, row: sqlite3.Row, *, full: bool, interrupted: bool, model_calls: bool = True
    ) -> Execution:
        blobs = self._blobs([row["inputs_hash"], row["outputs_hash"]])
        execution_id = row["id"]
        children: dict[str, Any] = {}
        if full:
            children = self._children(execution_id, interrupted, model_calls)
        return Execution(
            id=execution_id,
            pipeline_id=row["pipeline_id"],
            pipeline_version=row["pipeline_version"],
            entrypoint=row["entrypoint"],
            inputs=rows.decoded(blobs, row["inputs_hash"]),
            outputs=rows.decoded(blobs, row["outputs_hash"]),
            status="interrupted" if interrupted else row["status"],
            success=None if row["success"] is None or interrupted else bool(row["success"]),
            error=ErrorInfo.from_json(rows.json_column(row["error"])),
            user_id=row["user_id"],
            environment=row["environment"],
            sampled=bool(row["sampled"]),
            debug=bool(row["debug"]),
            started_at=row["started_at"],
            ended_at=row["ended_at"],
            duration_s=row["duration_s"],
            cost_usd=row["cost_usd"],
            tokens_in=row["tokens_in"] or 0,
            tokens_out=row["tokens_out"] or 0,
            replay_of=row["replay_of"],
            modifications=rows.json_column(row["modifications"]) or {},
            code_version=row["code_version"],
            metadata=rows.json_column(row["metadata"]) or {},
            trace_id=row["trace_id"],
            session_id=row["session_id"],
            **children,
        )

    def _children(self, execution_id: str, interrupted: bool, calls: bool) -> dict[str, Any]:
        by_exec = (execution_id,)
        step_rows = self._query(
            "SELECT * FROM steps WHERE execution_id = ? ORDER BY started_at, rowid", by_exec
        )
        span_rows = self._query(
            "SELECT * FROM spans WHERE execution_id = ? ORDER BY start, span_id", by_exec
        )
        call_rows = (
            self._query(
                "SELECT * FROM model_calls WHERE execution_id = ? ORDER BY started_at, id", by_exec
            )
            if calls
            else []
        )
        state_rows = self._query(
            "SELECT * FROM states WHERE execution_id = ? ORDER BY seq, rowid", by_exec
        )
        log_rows = self._query(
            "SELECT * FROM logs WHERE execution_id = ? ORDER BY created_at, rowid", by_exec
        )
        profile_rows = self._query(
            "SELECT * FROM profiles WHERE execution_id = ? ORDER BY created_at", by_exec
        )
        blobs = self._blobs(
            [r["parameters_hash"] for r in step_rows]
            + [r["result_hash"] for r in step_rows]
            + [h for r in call_rows for h in (r["request_hash"], r["body_hash"])]
            + [r["blob_hash"] for r in state_rows]
        )
        return {
            "steps": [rows.step(r, blobs, interrupted) for r in step_rows],
            "spans": [rows.span(r) for r in span_rows],
            "model_calls": [rows.model_call(r, blobs) for r in call_rows],
            "states": [
                State(
                    r["execution_id"],
                    r["step_id"],
                    r["name"],
                    r["seq"],
                    r["blob_hash"],
                    rows.decoded(blobs, r["blob_hash"]),
                    r["recorded_at"],
                )
                for r in state_rows
            ],
            "logs": [
                LogRecord(
                    r["execution_id"],
                    r["trace_id"],
                    r["span_id"],
                    r["step_id"],
                    r["level"],
                    r["logger"],
                    r["message"],
                    rows.json_column(r["fields"]) or {},
                    r["created_at"],
                )
                for r in log_rows
            ],
            "profiles": [
                Profile(
                    r["id"],
                    r["execution_id"],
                    r["kind"],
                    r["trigger"],
                    r["path"],
                    ProfileSummary.from_json(rows.json_column(r["summary"])),
                    r["created_at"],
                )
                for r in profile_rows
            ],
        }

    def model_calls(self, execution_id: str) -> list[ModelCall]:
        """An execution's model calls with their requests and responses, in recorded order,
        as written so far (no flush: a reader on the writer's side, the trace exporter,
        flushes first as it needs)."""
        try:
            with paused():
                call_rows = self._query(
                    "SELECT * FROM model_calls WHERE execution_id = ? ORDER BY started_at, id",
                    (execution_id,),
                )
                blobs = self._blobs(
                    h for r in call_rows for h in (r["request_hash"], r["body_hash"])
                )
                return [rows.model_call(r, blobs) for r in call_rows]
        except (ValueError, zstandard.ZstdError) as exc:
            raise StoreError(
                f"execution {execution_id!r} in store {self.path} has a damaged model call "
                f"({type(exc).__name__}: {exc}); restore the store file from a backup, or "
                f"record the run again"
            ) from exc

    def recorded_responses(self, execution_id: str) -> list[rows.RecordedResponse]:
        """An execution's model calls as a replay answers from them, in recorded order: one
        query, each response body read once (see :class:`~workbench.store.RecordedResponse`)."""
        self.flush()
        try:
            with paused():  # as in get_execution: a large, long-lived graph of new objects
                columns = ", ".join(f"c.{name}" for name in rows.RESPONSE_COLUMNS)
                return [
                    rows.recorded_response(
                        values[:-3],
                        None if values[-1] is None else decompress(*values[-2:]),
                        values[-3],
                    )
                    for values in self._query(
                        # The request's hash only where its blob is there to point at.
                        f"SELECT {columns}, r.hash, b.codec, b.data FROM model_calls AS c "
                        "LEFT JOIN blobs AS r ON r.hash = c.request_hash "
                        "LEFT JOIN blobs AS b ON b.hash = c.body_hash "
                        "WHERE c.execution_id = ? ORDER BY c.started_at, c.id",
                        (execution_id,),
                        rows=tuple,
                    )
                ]
        except (ValueError, zstandard.ZstdError) as exc:
            raise StoreError(
                f"execution {execution_id!r} in store {self.path} has a damaged model call "
                f"({type(exc).__name__}: {exc}); restore the store file from a backup, or "
                f"record the run again"
            ) from exc

    def get_profile(self, profile_id: str) -> Profile:
        """One profile by id (``workbench profile show``); its execution's are on the execution."""
        self.flush()
        found = self._query("SELECT * FROM profiles WHERE id = ?", (profile_id,))
        if not found:
            raise ProfileNotFoundError(
                f"no profile {profile_id!r} in store {self.path}; the ids are listed by "
                f"`workbench runs show EXECUTION_ID --json` under profiles"
            )
        r = found[0]
        summary = ProfileSummary.from_json(rows.json_column(r["summary"]))
        return Profile(
            r["id"], r["execution_id"], r["kind"], r["trigger"], r["path"], summary, r["created_at"]
        )

    def blob_value(self, digest: str) -> Any:
        """The stored value behind a content hash (states, payloads)."""
        found = self._blobs([digest])
        if digest not in found:
            raise StoreError(f"no blob {digest!r} in store {self.path}")
        return decode(found[digest])

    def stats(self) -> dict[str, int]:
        """Row counts per table and the file size in bytes: what the recordings cost."""
        self.flush()
        counts = {
            table: self._query(f"SELECT COUNT(*) AS n FROM {table}")[0]["n"]
            for table in ("executions", "steps", "spans", "model_calls", "states", "logs", "blobs")
        }
        counts["bytes"] = sum(
            p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists()
        )
        return counts


# -- the process's shared stores ---------------------------------------------------------------

_defaults: dict[str, Store] = {}
_defaults_lock = threading.Lock()


def open_store(path: str | os.PathLike[str] | None = None) -> Store:
    """The process's shared :class:`Store` for ``path`` (resolved as in ``resolve_store_path``)."""
    resolved = resolve_store_path(path).resolve()
    key = str(resolved)
    with _defaults_lock:
        store = _defaults.get(key)
        if store is None or store._closed:
            store = Store(resolved)
            _defaults[key] = store
        return store


def _scrubbed_span(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A span row with key shapes and credential pairs scrubbed from its attributes' text.

    The recorder's span hot path redacts by name and by remembered value only (see
    ``workbench.recorder._span``); the rest of the scrubbing happens here, on the writer thread.
    """
    attributes = row[6]
    if isinstance(attributes, str) and attributes:  # the recorder queues the JSON as text
        data = attributes.encode()
        scrubbed = scrub_rendered(data)
        if scrubbed is not data:
            return (*row[:6], scrubbed.decode(), *row[7:])
    elif isinstance(attributes, bytes) and attributes:
        scrubbed = scrub_rendered(attributes)
        if scrubbed is not attributes:
            return (*row[:6], scrubbed, *row[7:])
    return row
