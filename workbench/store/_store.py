"""The store: recordings in a SQLite file or a PostgreSQL database, blobs content-addressed.

Owns choosing the backend (a path or ``sqlite:///`` URL, or a ``postgresql://`` URL), the write
table the background writer drains, and the query API that turns rows back into records, the
same for both backends: reads are SQLAlchemy Core statements over ``_tables``, rendered for the
backend in use. What is one backend's own (connections, its errors, a batch's SQL) is in
``_sqlite`` or ``_postgres``. It knows nothing of contextvars, HTTP or pricing: the recorder
hands it finished rows, or callables that build them off the caller's path.
"""

from __future__ import annotations

import collections.abc
import logging
import os
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
    ExperimentNotFoundError,
    MissingExtraError,
    ProfileNotFoundError,
    StoreError,
    StoreFullError,
    StoreUnreachableError,
)
from workbench.records import (
    ErrorInfo,
    Execution,
    Experiment,
    ExperimentRun,
    LogRecord,
    ModelCall,
    Profile,
    ProfileSummary,
    State,
)
from workbench.redaction import scrub_rendered
from workbench.store import _experiments, _process
from workbench.store import _rows as rows
from workbench.store._codec import KnownBlobs, blob_hash, compress, decompress
from workbench.store._owner import is_alive, owner_stamp
from workbench.store._process import install_sigterm_handler
from workbench.store._prune import Pruned, prunable
from workbench.store._queries import Queries
from workbench.store._sqlite import DB_ENV, SqliteBackend
from workbench.store._ui_reads import UIReads
from workbench.store._unwritten import RETRY_S, Groups, Unwritten
from workbench.store._url import DatabaseURL, StoreLocation, parse_location
from workbench.store._writer import Op, Writer

__all__ = [
    "DEFAULT_PATH",
    "ExecutionList",
    "Store",
    "open_store",
    "resolve_store_path",
]

DEFAULT_PATH = Path("recordings") / "workbench.db"
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


def resolve_store_location(path: str | os.PathLike[str] | None = None) -> StoreLocation:
    """Argument, then ``WORKBENCH_DB``, then ``workbench.yaml``'s ``store.url`` or
    ``store.path``, then the default file: a path or ``sqlite:///path`` is SQLite, a
    ``postgresql://`` URL PostgreSQL."""
    if path is not None:
        return parse_location(path)
    env = os.environ.get(DB_ENV)
    if env:
        return parse_location(env)
    from workbench.config import load_config

    configured = load_config().store_path()
    return parse_location(configured if configured is not None else DEFAULT_PATH)


def resolve_store_path(path: str | os.PathLike[str] | None = None) -> Path | DatabaseURL:
    """Where the store is (see :func:`resolve_store_location`): a file's path, or a database
    URL that prints with its password masked."""
    return resolve_store_location(path).path


def _auto_migrate(backend: str, given: bool | None) -> bool:
    if given is not None:
        return given
    from workbench.config import load_config

    configured = load_config().store.auto_migrate
    # Never at open in production by default: one process upgrading a shared database under
    # the others is a deliberate step (`workbench store migrate`).
    return configured if configured is not None else backend == "sqlite"


class Store(Queries, UIReads):
    """A workbench store: a SQLite file, or a PostgreSQL database given by URL.

    Thread-safe; one per store per process is enough. ``auto_migrate`` (default: the
    configuration's ``store.auto_migrate``, else on for SQLite, off for PostgreSQL) upgrades an
    older schema on open; off, an older schema is refused, naming ``workbench store migrate``.
    """

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, auto_migrate: bool | None = None
    ) -> None:
        location = resolve_store_location(path)
        #: The file (SQLite) or the URL (PostgreSQL; prints with its password masked).
        self.path: Any = location.path
        #: ``"sqlite"`` or ``"postgresql"``.
        self.backend = location.backend
        migrate = _auto_migrate(location.backend, auto_migrate)
        if isinstance(location.path, DatabaseURL):
            try:
                import psycopg  # noqa: F401
                import psycopg_pool  # noqa: F401
            except ImportError as exc:
                raise MissingExtraError(
                    f"store {location.path} is a PostgreSQL database, which needs the driver: "
                    f"`pip install 'pipeline-workbench[postgres]'`"
                ) from exc
            from workbench.store._postgres import PostgresBackend

            self._backend: Any = PostgresBackend(location.path, auto_migrate=migrate)
        else:
            self._backend = SqliteBackend(location.path, auto_migrate=migrate)
        self._backend.open_checked()
        self._read_lock = threading.Lock()
        self._reader: sqlite3.Connection | None = (
            self._connect() if self.backend == "sqlite" else None
        )
        self._reader_pid = os.getpid()
        #: The SQLAlchemy engine that ``_read`` runs statements on, made on first use.
        self._engine: Any = None
        self._known_blobs = KnownBlobs()
        #: Rows a full disk (or an unreachable server) refused, written with a later batch.
        self._unwritten = Unwritten()
        self._closed = False
        self._writer = Writer(
            self._backend.connect,
            self._write_batch,
            name=f"store {self.path}",
            retry_due=self._retry_due,
        )
        _process.register(self)
        install_sigterm_handler()

    def _after_fork(self) -> None:
        # SQLite connections must not cross a fork, a lock may have been held by a thread that
        # does not exist here, and the blobs known to the parent's writer are the parent's.
        self._read_lock = threading.Lock()
        self._reader = self._connect() if self.backend == "sqlite" else None
        self._reader_pid = os.getpid()
        if self._engine is not None:
            self._engine.dispose(close=False)  # the parent's connections stay the parent's
            self._engine = None
        self._backend.after_fork()
        self._known_blobs = KnownBlobs()
        self._unwritten.clear()  # the parent's rows: its writer writes them, not the child's

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"  # a URL's password shows as ***

    @property
    def url(self) -> str:
        """Where the store is, as a URL (``sqlite:///…`` or ``postgresql://…``, password
        masked): for messages and ``workbench store info``."""
        if self.backend == "sqlite":
            return f"sqlite:///{Path(self.path).resolve()}"
        return str(self.path)

    @property
    def location(self) -> str:
        """Where the store is, whole, for another process to open it: the SQLite file's
        absolute path, or the PostgreSQL URL with its password (an environment variable, a
        handover file). Never a message: print :attr:`path` or :attr:`url`, which mask it."""
        if isinstance(self.path, DatabaseURL):
            return self.path.secret
        return os.path.abspath(self.path)

    # -- opening ---------------------------------------------------------------------------

    def _connect(self, *, wal: bool = True) -> sqlite3.Connection:
        """A new connection to the SQLite file (the SQLite backend's own)."""
        return self._backend.connect(wal=wal)  # type: ignore[no-any-return]

    def _kept_error(self, *, dropped: int = 0) -> StoreError:
        """The error of a write kept for later: a full disk, a server that does not answer."""
        return self._backend.kept_error(  # type: ignore[no-any-return]
            dropped=dropped, max_bytes=self._unwritten.max_bytes
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
        if self._unwritten:
            # Asked to make everything durable now: rows kept from a full disk or an absent
            # server are tried again with this flush, not on the next tick of their timer.
            self._unwritten.retry_at = 0.0
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
                log.warning("%s", self._backend.lost_kept(lost))
            if self._reader is not None:
                self._reader.close()
            if self._engine is not None:
                self._engine.dispose()
            self._backend.close()
            _process.unregister(self)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _write_batch(self, connection: Callable[[], Any], ops: list[Op]) -> None:
        groups = self._built(ops)
        unwritten = self._unwritten
        if unwritten and not self._retry_due():
            # The disk was full a moment ago and still is: keep these rows too, rather than
            # rewrite all the kept ones at every step's end.
            self._forget_blobs(groups)
            raise self._kept_error(dropped=unwritten.keep(groups))
        batch = unwritten.before(groups) if unwritten else groups
        backend = self._backend
        try:
            backend.commit(connection(), batch)
        except (StoreFullError, StoreUnreachableError):  # no connection could be opened
            self._forget_blobs(groups)
            self._retry_later()
            raise self._kept_error(dropped=unwritten.keep(groups)) from None
        except backend.write_errors as exc:
            # Not written: its blobs must not count as stored, or a later row with the same
            # content would point at a blob that is never written (kept rows carry their own).
            self._forget_blobs(groups)
            if backend.unreachable(exc):
                # The whole transaction was rolled back (a full disk, a server gone away):
                # the rows can be written again.
                self._retry_later()
                raise self._kept_error(dropped=unwritten.keep(groups)) from exc
            # Another failure may be caused by a row of the batch: no retry, kept rows included.
            given_up = unwritten.clear()
            also = f"; {given_up} rows kept for a retry were lost with it" if given_up else ""
            raise backend.error("writing to", exc, detail=also) from exc
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
        return self._backend.free_bytes()  # type: ignore[no-any-return]

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
        pid, host, _ = owner_stamp()
        self._backend.interrupt_owner(pid, host)

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
        try:
            removed: tuple[int, int] = self._backend.delete_executions(ids)
        except self._backend.write_errors as exc:
            raise self._backend.error("deleting executions from", exc) from exc
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
        try:
            self._backend.compact()
        except self._backend.write_errors as exc:  # the rows are gone; only the size stays
            log.warning("workbench: could not compact store %s after pruning: %s", self.path, exc)
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
        try:
            self._backend.import_rows(groups, list(execution_ids))
        except self._backend.write_errors as exc:
            raise self._backend.error("importing into", exc) from exc
        self._known_blobs = KnownBlobs()  # orphaned blobs of replaced executions went

    # -- reading ---------------------------------------------------------------------------

    def _query(self, sql: str, params: Sequence[Any] = (), *, rows: Any = sqlite3.Row) -> list[Any]:
        """The rows of ``sql`` on a SQLite store: ``sqlite3.Row`` objects, or plain tuples
        with ``rows=tuple``. Kept for the readers above the store not yet on :meth:`_read`;
        the store's own methods read through ``_read``, on either backend."""
        if self._closed:
            raise StoreError(f"store {self.path} is closed; open it again with Store(path)")
        if self._reader is None:
            raise StoreError(
                f"store {self.path} is a PostgreSQL database; this reader needs a SQLite store "
                f"(it reads through SQL of SQLite's)"
            )
        with self._read_lock:
            self._reader.row_factory = rows if rows is not tuple else None
            try:
                return list(self._reader.execute(sql, params))
            except sqlite3.DatabaseError as exc:
                raise self._backend.error("reading", exc) from exc

    def _read(self, statement: Any, *, mappings: bool = True) -> list[Any]:
        """The rows of a SQLAlchemy Core ``statement`` over :mod:`._tables`, as mappings
        (``row["column"]``; plain tuples with ``mappings=False``), rendered for this store's
        backend."""
        import sqlalchemy as sa

        if self._closed:
            raise StoreError(f"store {self.path} is closed; open it again with Store(path)")
        try:
            with self._engine_for_statements().connect() as conn:
                result = conn.execute(statement)
                return list(result.mappings()) if mappings else list(result)
        except sa.exc.DBAPIError as exc:
            # The driver's own error is the cause (a reader tells a damaged row by it).
            raise self._backend.error("reading", exc.orig) from exc.orig

    @staticmethod
    def _table(name: str) -> Any:
        from workbench.store import _tables

        return _tables.table(name)

    def _insertion_order(self) -> Any:
        """The order rows were written in, for tables without a key to sort on (SQLite's
        rowid, PostgreSQL's physical position, kept by tables only ever appended to)."""
        import sqlalchemy as sa

        return sa.literal_column("rowid" if self.backend == "sqlite" else "ctid")

    def _rows(self, name: str, *where: Any, order: Sequence[Any] = ()) -> list[Any]:
        import sqlalchemy as sa

        table = self._table(name)
        return self._read(sa.select(table).where(*where).order_by(*order))

    def _blobs(self, hashes: Iterable[str | None]) -> dict[str, Any]:
        import sqlalchemy as sa

        wanted = sorted({h for h in hashes if h})
        found: dict[str, Any] = {}
        if not wanted:
            return found
        blobs = self._table("blobs")
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            for digest, codec, data in self._read(
                sa.select(blobs.c.hash, blobs.c.codec, blobs.c.data).where(blobs.c.hash.in_(chunk)),
                mappings=False,
            ):
                found[digest] = decompress(codec, data)
        return found

    def _refresh_liveness(self, rows: list[Any]) -> list[str]:
        dead = [
            row["id"]
            for row in rows
            if row["status"] == "running"
            and not is_alive(row["pid"], row["host"], row["proc_start"])
        ]
        if dead:
            try:
                self._backend.interrupt_ids(dead)
            except self._backend.write_errors as exc:
                raise self._backend.error(
                    f"marking {len(dead)} execution(s) of ended processes interrupted in",
                    exc,
                    fix="try again when other writers are done",
                ) from exc
        return dead

    def get_execution(self, execution_id: str, *, model_calls: bool = True) -> Execution:
        """The execution with its steps, spans, model calls, states, logs and profiles.

        ``model_calls=False`` leaves ``model_calls`` empty, for a reader that gets them another
        way (replay reads :meth:`recorded_responses`): the calls are most of a large recording.
        """
        self.flush()
        executions = self._table("executions")
        rows = self._rows("executions", executions.c.id == execution_id)
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
        executions = self._table("executions")
        c = executions.c
        running = [c.status == "running"]
        try:
            self._refresh_liveness(self._rows("executions", *running))
        except StoreError as exc:
            if not _undecodable_text(exc.__cause__):
                raise
            # A damaged running row (named by the listing below): judge the readable ones.
            self._refresh_liveness(self._readable_rows(running, None, {}))
        where: list[Any] = [
            c[column] == value
            for column, value in (
                ("pipeline_id", pipeline_id),
                ("user_id", user_id),
                ("replay_of", replay_of),
                ("status", status),
            )
            if value is not None
        ]
        if since is not None:
            where.append(c.started_at >= _moment("since", since))
        if until is not None:
            where.append(c.started_at < _moment("until", until))
        import sqlalchemy as sa

        statement = sa.select(executions).where(*where).order_by(c.started_at.desc())
        if limit is not None:
            statement = statement.limit(int(limit))
        damaged: dict[str, str] = {}
        try:
            found = self._read(statement)
        except StoreError as exc:
            if not _undecodable_text(exc.__cause__):
                raise
            found = self._readable_rows(where, limit, damaged)
        listed = []
        # Every listed execution's inputs and outputs in one query, not one query a row.
        blobs = self._blobs(h for row in found for h in (row["inputs_hash"], row["outputs_hash"]))
        for row in found:
            try:
                listed.append(self._execution(row, full=False, interrupted=False, blobs=blobs))
            except (ValueError, zstandard.ZstdError) as exc:  # undecodable JSON or blob
                damaged[row["id"]] = f"{type(exc).__name__}: {exc}"
        return ExecutionList(listed, damaged)

    def _readable_rows(
        self, where: Sequence[Any], limit: int | None, damaged: dict[str, str]
    ) -> list[Any]:
        """The executions matching ``where`` one by one, when some hold text that is not
        UTF-8 (only SQLite stores text it cannot decode): the readable rows, and each
        unreadable one named in ``damaged``."""
        import sqlalchemy as sa

        executions = self._table("executions")
        rowid = sa.literal_column("rowid")
        statement = (
            sa.select(rowid, sa.cast(executions.c.id, sa.LargeBinary).label("raw_id"))
            .where(*where)
            .order_by(executions.c.started_at.desc())
        )
        if limit is not None:
            statement = statement.limit(int(limit))
        readable = []
        for key, raw in self._read(statement, mappings=False):
            try:
                readable.extend(self._read(sa.select(executions).where(rowid == key)))
            except StoreError as exc:
                if not _undecodable_text(exc.__cause__):
                    raise
                raw_id = bytes(raw or b"").decode("utf-8", "replace")
                damaged[raw_id] = f"text that is not UTF-8 ({exc.__cause__})"
        return readable

    def _execution(
        self,
        row: Any,
        *,
        full: bool,
        interrupted: bool,
        model_calls: bool = True,
        blobs: dict[str, Any] | None = None,
    ) -> Execution:
        if blobs is None:
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
            experiment_id=row["experiment_id"],
            **children,
        )

    def _children(self, execution_id: str, interrupted: bool, calls: bool) -> dict[str, Any]:
        inserted = self._insertion_order()

        def of(name: str, *order: str) -> list[Any]:
            table = self._table(name)
            return self._rows(
                name,
                table.c.execution_id == execution_id,
                order=[inserted if o == "inserted" else table.c[o] for o in order],
            )

        step_rows = of("steps", "started_at", "inserted")
        span_rows = of("spans", "start", "span_id")
        call_rows = of("model_calls", "started_at", "id") if calls else []
        state_rows = of("states", "seq", "inserted")
        log_rows = of("logs", "created_at", "inserted")
        profile_rows = of("profiles", "created_at")
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
                calls = self._table("model_calls")
                call_rows = self._rows(
                    "model_calls",
                    calls.c.execution_id == execution_id,
                    order=(calls.c.started_at, calls.c.id),
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
                import sqlalchemy as sa

                calls = self._table("model_calls").alias("c")
                requests = self._table("blobs").alias("r")
                bodies = self._table("blobs").alias("b")
                statement = (
                    sa.select(
                        *(calls.c[name] for name in rows.RESPONSE_COLUMNS),
                        requests.c.hash,
                        bodies.c.codec,
                        bodies.c.data,
                    )
                    # The request's hash only where its blob is there to point at.
                    .outerjoin(requests, requests.c.hash == calls.c.request_hash)
                    .outerjoin(bodies, bodies.c.hash == calls.c.body_hash)
                    .where(calls.c.execution_id == execution_id)
                    .order_by(calls.c.started_at, calls.c.id)
                )
                return [
                    rows.recorded_response(
                        values[:-3],
                        None if values[-1] is None else decompress(*values[-2:]),
                        values[-3],
                    )
                    for values in self._read(statement, mappings=False)
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
        found = self._rows("profiles", self._table("profiles").c.id == profile_id)
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
        """Row counts per table and the size in bytes (the file, or the database): what the
        recordings cost."""
        import sqlalchemy as sa

        self.flush()
        counts = {
            name: int(
                self._read(sa.select(sa.func.count().label("n")).select_from(self._table(name)))[0][
                    "n"
                ]
            )
            for name in ("executions", "steps", "spans", "model_calls", "states", "logs", "blobs")
        }
        counts["bytes"] = self._backend.size_bytes()
        return counts

    # -- experiments (RequestReplay.replay_many) -------------------------------------------

    def _experiment_write(self, statements: list[_experiments.Statement]) -> None:
        """Run ``statements`` in one transaction, committed before it returns: workers of
        other processes read what it wrote at once."""
        import sqlalchemy as sa

        if self._closed:
            raise StoreError(f"store {self.path} is closed; open it again with Store(path)")
        self.flush()  # a run's replay row must be there before the run tags it
        try:
            with self._engine_for_statements().connect() as conn:
                # Both drivers' connections are in autocommit (the writer's and the readers'
                # own settings): the transaction is begun here, and SQLite's takes the write
                # lock at once, as the writer's do, rather than fail upgrading a read lock.
                conn.exec_driver_sql("BEGIN IMMEDIATE" if self.backend == "sqlite" else "BEGIN")
                for statement, rows in statements:
                    if rows:
                        conn.execute(statement, rows)
                conn.commit()
        except sa.exc.DBAPIError as exc:
            raise self._backend.error("writing an experiment to", exc.orig) from exc.orig

    def _engine_for_statements(self) -> Any:
        """The engine ``_read`` uses, made on first use."""
        engine = self._engine
        if engine is None:
            with self._read_lock:
                if self._engine is None:
                    self._engine = self._backend.engine()
                engine = self._engine
        return engine

    def put_experiment(self, experiment: Experiment) -> None:
        """Keep an experiment's record (again, as its status and counts change)."""
        self._experiment_write(_experiments.experiment_statements(self.backend, experiment))

    def put_experiment_runs(
        self, runs: Sequence[ExperimentRun], experiment: Experiment | None = None
    ) -> None:
        """Keep finished runs of an experiment and set ``experiment_id`` on their replays,
        with the experiment's new record when given, in one transaction."""
        self._experiment_write(_experiments.runs_statements(self.backend, list(runs), experiment))

    def get_experiment(self, experiment_id: str) -> Experiment:
        """One experiment's record; :class:`ExperimentNotFoundError` names the way to the ids."""
        table = self._table("experiments")
        found = self._rows("experiments", table.c.id == experiment_id)
        if not found:
            raise ExperimentNotFoundError(
                f"no experiment {experiment_id!r} in store {self.path}; list the recorded ones "
                f"with `workbench experiments list`"
            )
        return _experiments.experiment_from_row(found[0])

    def list_experiments(
        self, *, pipeline_id: str | None = None, limit: int | None = 100
    ) -> list[Experiment]:
        """Experiments, newest first."""
        return [
            _experiments.experiment_from_row(row)
            for row in self._read(_experiments.experiments_select(pipeline_id, limit))
        ]

    def experiment_runs(self, experiment_id: str) -> list[ExperimentRun]:
        """The finished runs of an experiment, in the order they finished."""
        table = self._table("experiment_runs")
        return [
            _experiments.run_from_row(row)
            for row in self._rows(
                "experiment_runs", table.c.experiment_id == experiment_id, order=[table.c.ended_at]
            )
        ]

    def info(self) -> dict[str, Any]:
        """What ``workbench store info`` prints: backend, schema version, counts, size."""
        from workbench.store._schema import SCHEMA_VERSION

        counts = self.stats()
        return {
            "url": self.url,
            "backend": self.backend,
            "schema_version": self._backend.schema_version(),
            "schema_version_supported": SCHEMA_VERSION,
            "bytes": counts.pop("bytes"),
            "counts": counts,
        }


def migrate_store(path: str | os.PathLike[str] | None = None) -> list[str]:
    """``workbench store migrate``: create or upgrade the schema of the store at ``path``
    (resolved as in :func:`resolve_store_location`); what was added."""
    location = resolve_store_location(path)
    if isinstance(location.path, DatabaseURL):
        from workbench.store._postgres import PostgresBackend

        return PostgresBackend(location.path).migrate()
    Store(location.path, auto_migrate=True).close()  # SQLite's upgrades run on open, in place
    return []


# -- the process's shared stores ---------------------------------------------------------------

_defaults: dict[str, Store] = {}
_defaults_lock = threading.Lock()


def open_store(path: str | os.PathLike[str] | None = None) -> Store:
    """The process's shared :class:`Store` for ``path`` (resolved as in ``resolve_store_path``)."""
    resolved = resolve_store_path(path).resolve()
    key = os.fspath(resolved)  # a URL whole: two passwords are two stores
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
