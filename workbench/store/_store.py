"""The SQLite store: one file, WAL, blobs content-addressed and compressed.

Owns opening (path resolution, schema check), the write table the background writer drains, and
the query API that turns rows back into records. It knows nothing of contextvars, HTTP or
pricing: the recorder hands it finished rows, or callables that build them off the caller's path.
"""

from __future__ import annotations

import atexit
import collections.abc
import contextlib
import logging
import os
import signal
import socket
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

from workbench._http import body_json, decode_content
from workbench._json import decode, encode
from workbench.exceptions import ExecutionNotFoundError, NotAStoreError, StoreError
from workbench.providers import analyse
from workbench.records import (
    ErrorInfo,
    Execution,
    LogRecord,
    ModelCall,
    Profile,
    Span,
    State,
    Step,
    StreamChunk,
)
from workbench.store._codec import blob_hash, compress, decompress
from workbench.store._schema import ensure_schema
from workbench.store._writer import Op, Writer

__all__ = [
    "DEFAULT_PATH",
    "Store",
    "default_store",
    "open_store",
    "resolve_store_path",
]

DEFAULT_PATH = Path("recordings") / "workbench.db"
DB_ENV = "WORKBENCH_DB"
HOST = socket.gethostname()
log = logging.getLogger("workbench.store")

_EXEC_COLUMNS = (
    "id",
    "pipeline_id",
    "pipeline_version",
    "entrypoint",
    "inputs_hash",
    "outputs_hash",
    "status",
    "success",
    "error",
    "user_id",
    "environment",
    "sampled",
    "debug",
    "started_at",
    "ended_at",
    "duration_s",
    "cost_usd",
    "tokens_in",
    "tokens_out",
    "replay_of",
    "modifications",
    "code_version",
    "metadata",
    "trace_id",
    "pid",
    "host",
    "proc_start",
)
_SPAN_COLUMNS = (
    "span_id",
    "trace_id",
    "parent_span_id",
    "execution_id",
    "name",
    "kind",
    "attributes",
    "events",
    "status",
    "start",
    "end",
)
_STEP_COLUMNS = (
    "execution_id",
    "step_id",
    "occurrence",
    "span_id",
    "parent_step_id",
    "action",
    "parameters_hash",
    "result_hash",
    "error",
    "status",
    "retries",
    "started_at",
    "ended_at",
    "duration_s",
)
_CALL_COLUMNS = (
    "id",
    "execution_id",
    "span_id",
    "step_id",
    "step_occurrence",
    "provider",
    "model",
    "operation",
    "request_hash",
    "status_code",
    "response_headers",
    "streamed",
    "body_hash",
    "chunks",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "tokens_estimated",
    "cost_usd",
    "ttft_s",
    "latency_s",
    "finish_reason",
    "text",
    "request_key",
    "occurrence",
    "started_at",
    "error",
    "stream_error",
)
_STATE_COLUMNS = ("execution_id", "step_id", "name", "seq", "blob_hash", "recorded_at")
_LOG_COLUMNS = (
    "execution_id",
    "trace_id",
    "span_id",
    "step_id",
    "level",
    "logger",
    "message",
    "fields",
    "created_at",
)
_PROFILE_COLUMNS = ("id", "execution_id", "kind", "trigger", "path", "summary", "created_at")


def _insert(table: str, columns: Sequence[str], verb: str = "INSERT OR REPLACE") -> str:
    names = ", ".join(f'"{c}"' for c in columns)
    return f"{verb} INTO {table} ({names}) VALUES "


# Kinds of queued op, in the order a batch writes them (blobs before the rows naming them,
# execution rows before their end).
_SQL: dict[str, str] = {
    "blob": _insert("blobs", ("hash", "codec", "size", "data"), "INSERT OR IGNORE"),
    "exec": _insert("executions", _EXEC_COLUMNS),
    "step": _insert("steps", _STEP_COLUMNS),
    "span": _insert("spans", _SPAN_COLUMNS),
    "call": _insert("model_calls", _CALL_COLUMNS),
    "state": _insert("states", _STATE_COLUMNS, "INSERT"),
    "log": _insert("logs", _LOG_COLUMNS, "INSERT"),
    "profile": _insert("profiles", _PROFILE_COLUMNS),
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
_ORDER = tuple(_SQL)

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


def _proc_start(pid: int) -> str | None:
    """The kernel's start time of ``pid``: tells a live process from a reused pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return stat.rsplit(b")", 1)[1].split()[19].decode()


_stamp: tuple[int, str | None] = (os.getpid(), _proc_start(os.getpid()))


def owner_stamp() -> tuple[int, str, str | None]:
    """(pid, host, process start time) of this process, written on the executions it runs.

    Recomputed after a fork, so a child's executions are not judged by its parent's start.
    """
    global _stamp
    pid = os.getpid()
    if _stamp[0] != pid:
        _stamp = (pid, _proc_start(pid))
    return pid, HOST, _stamp[1]


def _is_alive(pid: int | None, host: str | None, started: str | None) -> bool:
    if pid is None or host != HOST:
        return True  # another machine's process: we cannot tell, so do not judge it
    if pid == os.getpid():
        return started is None or started == owner_stamp()[2]
    now = _proc_start(pid)
    if now is not None:
        return started is None or now == started
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not os.path.isdir("/proc")  # /proc exists but had no entry: the process is gone


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


class Store:
    """A workbench store in one SQLite file. Thread-safe; one per file per process is enough."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = resolve_store_path(path)
        self._open_checked()
        self._read_lock = threading.Lock()
        self._reader = self._connect()
        self._reader_pid = os.getpid()
        self._known_blobs: set[str] = set()
        self._writer = Writer(self._connect, self._write_batch)
        self._closed = False
        _open_stores.add(self)
        install_sigterm_handler()

    def _after_fork(self) -> None:
        # SQLite connections must not cross a fork, a lock may have been held by a thread that
        # does not exist here, and the blobs known to the parent's writer are the parent's.
        self._read_lock = threading.Lock()
        self._reader = self._connect()
        self._reader_pid = os.getpid()
        self._known_blobs = set()

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
        finally:
            conn.close()

    def _connect(self, *, wal: bool = True) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, timeout=60, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StoreError(
                f"cannot open store {self.path}: {exc}; choose a writable path "
                f"(argument, {DB_ENV}, or store.path in workbench.yaml)"
            ) from exc
        try:
            if wal:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            else:
                conn.execute("SELECT name FROM sqlite_master LIMIT 1").fetchall()
        except sqlite3.DatabaseError as exc:
            conn.close()
            if isinstance(exc, sqlite3.OperationalError) and "readonly" in str(exc):
                raise StoreError(f"store {self.path} is read-only: {exc}") from exc
            raise NotAStoreError(
                f"{self.path} is not a workbench store (SQLite says: {exc}); pass another "
                f"path, or move the file away and workbench will create a new store there"
            ) from exc
        return conn

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

    def blob(self, value: Any) -> str:
        """Store ``value`` (rendered to JSON) once; returns its content hash."""
        return self.blob_bytes(encode(value))

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

        ``strict=False`` (the recorder's own flushes) logs a write failure instead of raising
        it, so that a full disk degrades recording rather than the application being recorded.
        """
        try:
            self._writer.flush(timeout)
        except StoreError:
            if strict:
                raise
            log.exception("workbench could not flush recordings to %s", self.path)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        self._reader.close()
        _open_stores.discard(self)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _write_batch(self, conn: sqlite3.Connection, ops: list[Op]) -> None:
        groups: dict[str, list[tuple[Any, ...]]] = {}
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
        try:
            _commit_retrying(conn, groups)
        except sqlite3.Error:
            # The batch is lost: its blobs must not count as stored, or every later row with
            # the same content would point at a blob that was never written.
            for digest, *_ in groups.get("blob", ()):
                self._known_blobs.discard(digest)
            raise

    def mark_interrupted(self) -> None:
        """Flush, then mark this process's still-running executions and steps ``interrupted``.

        Uses a connection of its own, not the reader and its lock: it runs from a signal
        handler, which may have interrupted this very thread inside a read.
        """
        self.flush(strict=False)
        conn = self._connect()
        try:
            pid, host, _ = owner_stamp()
            _interrupt(conn, "pid = ? AND host = ?", (pid, host))
        finally:
            conn.close()

    # -- reading ---------------------------------------------------------------------------

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        if self._closed:
            raise StoreError(f"store {self.path} is closed; open it again with Store(path)")
        with self._read_lock:
            self._reader.row_factory = sqlite3.Row
            try:
                return list(self._reader.execute(sql, params))
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"reading store {self.path} failed: {exc}") from exc

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
            and not _is_alive(row["pid"], row["host"], row["proc_start"])
        ]
        if dead:
            marks = ", ".join("?" for _ in dead)
            try:
                with self._read_lock:
                    _interrupt(self._reader, f"id IN ({marks})", dead)
            except sqlite3.Error as exc:
                raise StoreError(
                    f"store {self.path}: could not mark {len(dead)} execution(s) of ended "
                    f"processes interrupted ({exc}); try again when other writers are done"
                ) from exc
        return dead

    def get_execution(self, execution_id: str) -> Execution:
        """The execution with its steps, spans, model calls, states, logs and profiles."""
        self.flush()
        rows = self._query("SELECT * FROM executions WHERE id = ?", (execution_id,))
        if not rows:
            raise ExecutionNotFoundError(
                f"no execution {execution_id!r} in store {self.path}; list the recorded ones "
                f"with `workbench runs list`"
            )
        dead = self._refresh_liveness(rows)
        return self._execution(rows[0], full=True, interrupted=bool(dead))

    def list_executions(
        self,
        *,
        pipeline_id: str | None = None,
        status: str | None = None,
        user_id: str | None = None,
        since: datetime | float | None = None,
        until: datetime | float | None = None,
        replay_of: str | None = None,
        limit: int | None = 100,
    ) -> list[Execution]:
        """Executions, newest first, without their children (use ``get_execution`` for those)."""
        allowed = ("running", "completed", "failed", "interrupted")
        if status is not None and status not in allowed:
            raise StoreError(f"status {status!r} is not one of {', '.join(allowed)}")
        self.flush()
        self._refresh_liveness(
            self._query(
                "SELECT id, status, pid, host, proc_start FROM executions WHERE status = 'running'"
            )
        )
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
            params.append(since.timestamp() if isinstance(since, datetime) else since)
        if until is not None:
            where.append("started_at < ?")
            params.append(until.timestamp() if isinstance(until, datetime) else until)
        sql = "SELECT * FROM executions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [
            self._execution(row, full=False, interrupted=False) for row in self._query(sql, params)
        ]

    def _execution(self, row: sqlite3.Row, *, full: bool, interrupted: bool) -> Execution:
        blobs = self._blobs([row["inputs_hash"], row["outputs_hash"]])
        execution_id = row["id"]
        children: dict[str, Any] = {}
        if full:
            children = self._children(execution_id, interrupted)
        return Execution(
            id=execution_id,
            pipeline_id=row["pipeline_id"],
            pipeline_version=row["pipeline_version"],
            entrypoint=row["entrypoint"],
            inputs=_decoded(blobs, row["inputs_hash"]),
            outputs=_decoded(blobs, row["outputs_hash"]),
            status="interrupted" if interrupted else row["status"],
            success=None if row["success"] is None or interrupted else bool(row["success"]),
            error=ErrorInfo.from_json(_json(row["error"])),
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
            modifications=_json(row["modifications"]) or {},
            code_version=row["code_version"],
            metadata=_json(row["metadata"]) or {},
            trace_id=row["trace_id"],
            **children,
        )

    def _children(self, execution_id: str, interrupted: bool) -> dict[str, Any]:
        by_exec = (execution_id,)
        step_rows = self._query(
            "SELECT * FROM steps WHERE execution_id = ? ORDER BY started_at, rowid", by_exec
        )
        span_rows = self._query(
            "SELECT * FROM spans WHERE execution_id = ? ORDER BY start, span_id", by_exec
        )
        call_rows = self._query(
            "SELECT * FROM model_calls WHERE execution_id = ? ORDER BY started_at, id", by_exec
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
            "steps": [_step(r, blobs, interrupted) for r in step_rows],
            "spans": [_span(r) for r in span_rows],
            "model_calls": [_model_call(r, blobs) for r in call_rows],
            "states": [
                State(
                    r["execution_id"],
                    r["step_id"],
                    r["name"],
                    r["seq"],
                    r["blob_hash"],
                    _decoded(blobs, r["blob_hash"]),
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
                    _json(r["fields"]) or {},
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
                    _json(r["summary"]) or {},
                    r["created_at"],
                )
                for r in profile_rows
            ],
        }

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


def _commit_retrying(conn: sqlite3.Connection, groups: dict[str, list[tuple[Any, ...]]]) -> None:
    """Commit, retrying when other processes keep the store locked past the busy timeout."""
    for attempt in range(3):
        try:
            _commit_binding_safely(conn, groups)
            return
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or attempt == 2:
                raise
            log.warning("workbench store is locked by another process; retrying the write")
            time.sleep(0.5 * (attempt + 1))


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
        for kind in _ORDER:
            rows = groups.get(kind)
            if not rows:
                continue
            if kind == "exec_end":
                conn.executemany(_SQL[kind], rows)
            else:
                _insert_rows(conn, kind, rows)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _bindable(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bytes)):
        return value
    return encode(value).decode()


def _interrupt(conn: sqlite3.Connection, where: str, params: Sequence[Any]) -> None:
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
        conn.execute("ROLLBACK")
        raise


def _json(text: str | None) -> Any:
    return None if text is None else decode(text.encode() if isinstance(text, str) else text)


def _decoded(blobs: dict[str, Any], digest: str | None) -> Any:
    if not digest or digest not in blobs:
        return None
    return decode(blobs[digest])


def _step(r: sqlite3.Row, blobs: dict[str, Any], interrupted: bool) -> Step:
    status = r["status"]
    if interrupted and status == "running":
        status = "interrupted"
    return Step(
        execution_id=r["execution_id"],
        step_id=r["step_id"],
        occurrence=r["occurrence"],
        span_id=r["span_id"],
        parent_step_id=r["parent_step_id"],
        action=r["action"],
        parameters=_decoded(blobs, r["parameters_hash"]),
        result=_decoded(blobs, r["result_hash"]),
        error=ErrorInfo.from_json(_json(r["error"])),
        status=status,
        retries=r["retries"] or 0,
        started_at=r["started_at"],
        ended_at=r["ended_at"],
        duration_s=r["duration_s"],
    )


def _span(r: sqlite3.Row) -> Span:
    return Span(
        trace_id=r["trace_id"],
        span_id=r["span_id"],
        parent_span_id=r["parent_span_id"],
        execution_id=r["execution_id"],
        name=r["name"],
        kind=r["kind"],
        attributes=_json(r["attributes"]) or {},
        events=_json(r["events"]) or [],
        status=r["status"],
        start=r["start"],
        end=r["end"],
    )


def _model_call(r: sqlite3.Row, blobs: dict[str, Any]) -> ModelCall:
    body = blobs.get(r["body_hash"] or "", b"")
    chunks: list[StreamChunk] = []
    position = 0
    micros = 0
    for delta_us, length in _json(r["chunks"]) or []:
        micros += delta_us
        chunks.append(StreamChunk(micros / 1_000_000, body[position : position + length]))
        position += length
    headers = _json(r["response_headers"]) or {}
    request = _decoded(blobs, r["request_hash"])
    # The response is stored once, as received; its parsed (for a stream: assembled) form is
    # derived from it here rather than stored a second time.
    response = None
    if body and r["status_code"] is not None:
        if r["streamed"]:
            request_body = request.get("body") if isinstance(request, dict) else None
            response = analyse(
                r["provider"],
                r["operation"],
                request_body,
                r["status_code"],
                headers.get("content-type"),
                decode_content(body, headers),
            ).response
        else:
            response = body_json(body, headers)
    return ModelCall(
        id=r["id"],
        execution_id=r["execution_id"],
        span_id=r["span_id"],
        step_id=r["step_id"],
        step_occurrence=r["step_occurrence"],
        provider=r["provider"],
        model=r["model"],
        operation=r["operation"],
        request=request,
        status_code=r["status_code"],
        response=response,
        response_headers=headers,
        streamed=bool(r["streamed"]),
        chunks=chunks,
        input_tokens=r["input_tokens"],
        output_tokens=r["output_tokens"],
        cache_read_tokens=r["cache_read_tokens"],
        cache_write_tokens=r["cache_write_tokens"],
        tokens_estimated=bool(r["tokens_estimated"]),
        cost_usd=r["cost_usd"],
        ttft_s=r["ttft_s"],
        latency_s=r["latency_s"],
        finish_reason=r["finish_reason"],
        text=r["text"],
        request_key=r["request_key"],
        occurrence=r["occurrence"],
        started_at=r["started_at"],
        error=ErrorInfo.from_json(_json(r["error"])),
        stream_error=r["stream_error"],
    )


# -- process-wide: the default store, and flushing at exit and on SIGTERM ---------------------

_open_stores: weakref.WeakSet[Store] = weakref.WeakSet()
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


def default_store() -> Store:
    return open_store(None)


def _interrupt_all() -> None:
    for store in list(_open_stores):
        with contextlib.suppress(Exception):
            store.mark_interrupted()


atexit.register(_interrupt_all)


def _after_fork_in_child() -> None:
    for store in list(_open_stores):
        store._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)

_previous_sigterm: Any = None
_sigterm_installed = False


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _interrupt_all()
    previous = _previous_sigterm
    if callable(previous):
        previous(signum, frame)
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def install_sigterm_handler() -> None:
    """Flush recordings on SIGTERM, then do what was set before (the default: exit)."""
    global _previous_sigterm, _sigterm_installed
    if _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return
    _sigterm_installed = True
    _previous_sigterm = signal.getsignal(signal.SIGTERM)
    if _previous_sigterm is signal.SIG_IGN:
        return
    signal.signal(signal.SIGTERM, _on_sigterm)
