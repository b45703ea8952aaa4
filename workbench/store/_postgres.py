"""The PostgreSQL backend: a store in a database, for many processes on many hosts.

Owns what is PostgreSQL's own: the connection pool (psycopg_pool, shared by the writer and by
SQLAlchemy's reads), the schema created from :mod:`._tables` and upgraded with Alembic, the
cost ledger's trigger (plpgsql, the rule of SQLite's), a batch written as one transaction in
one round trip (psycopg's pipeline mode, a multi-row ``INSERT … ON CONFLICT`` per kind), and
its errors turned into :class:`StoreError` messages that never hold the URL's password.

It does not decide what is queued or when (``_writer``), nor turn rows into records
(``_store``, ``_rows``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from workbench._json import encode
from workbench.exceptions import (
    MigrationNeededError,
    NotAStoreError,
    SchemaVersionError,
    StoreError,
    StoreUnreachableError,
)
from workbench.store._schema import APP, SCHEMA_VERSION
from workbench.store._sql import KINDS, ORDER
from workbench.store._url import DatabaseURL, mask_secrets

if TYPE_CHECKING:
    import psycopg
    import sqlalchemy as sa
    from psycopg_pool import ConnectionPool

_T = TypeVar("_T")

__all__ = ["PostgresBackend", "migrate_postgres"]

log = logging.getLogger("workbench.store")

#: Seconds to wait for a connection before a write is kept for later (the server is down).
_CONNECT_TIMEOUT_S = 3.0
#: Bound parameters per statement (PostgreSQL's protocol allows 65,535).
_MAX_PARAMETERS = 60_000
#: Key of the advisory lock that serialises creating and upgrading the schema.
_SCHEMA_LOCK = 0x776F726B62656E63  # "workbenc"

# The ledger rule of ``_schema._COST_LEDGER``'s SQLite trigger: an answered call that may cost
# money (not plain HTTP, not answered from a recording, not a replay's) appends one row, in the
# transaction that records the call, so every process on every host sees every other's spend.
_LEDGER_TRIGGER = (
    """CREATE OR REPLACE FUNCTION workbench_cost_ledger_on_call() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.status_code < 400 AND NEW.provider IS DISTINCT FROM 'http'
                AND NEW.replayed IS DISTINCT FROM 1 THEN
            -- Until this transaction ends, no other one appends to the ledger: ``seq`` is then
            -- handed out in commit order, so a budget reading "rows past the last seq seen"
            -- never skips a row that commits after a higher one.
            PERFORM pg_advisory_xact_lock(7795888190574636644);
            INSERT INTO cost_ledger (execution_id, started_at, user_id, pipeline_id,
                provider, model, cost_usd, input_tokens, output_tokens)
            SELECT NEW.execution_id, NEW.started_at, e.user_id, e.pipeline_id,
                NEW.provider, NEW.model, NEW.cost_usd, NEW.input_tokens, NEW.output_tokens
            FROM (SELECT 1) AS one LEFT JOIN executions e ON e.id = NEW.execution_id
            WHERE e.replay_of IS NULL;
        END IF;
        RETURN NULL;
    END $$""",
    "DROP TRIGGER IF EXISTS cost_ledger_on_call ON model_calls",
    """CREATE TRIGGER cost_ledger_on_call AFTER INSERT ON model_calls
    FOR EACH ROW EXECUTE FUNCTION workbench_cost_ledger_on_call()""",
    # As SQLite's partial index: per-user budgets without an entry for runs with no user.
    "CREATE INDEX IF NOT EXISTS idx_cost_ledger_user "
    "ON cost_ledger (user_id, started_at, cost_usd) WHERE user_id IS NOT NULL",
)

_EXEC_END = """
    UPDATE executions SET status = %s, success = %s, error = %s, outputs_hash = %s,
        ended_at = %s, duration_s = %s, metadata = %s,
        tokens_in = (SELECT COALESCE(SUM(input_tokens), 0) FROM model_calls
                     WHERE execution_id = executions.id),
        tokens_out = (SELECT COALESCE(SUM(output_tokens), 0) FROM model_calls
                      WHERE execution_id = executions.id),
        cost_usd = (SELECT CASE WHEN bool_or(cost_usd IS NULL AND status_code < 400)
                                THEN NULL
                                ELSE COALESCE(SUM(cost_usd), 0.0) END
                    FROM model_calls WHERE execution_id = executions.id
                      AND provider IS DISTINCT FROM 'http')
    WHERE id = %s"""

_CHILD_TABLES = ("steps", "spans", "model_calls", "states", "logs", "profiles")
_BLOB_REFERENCES = (
    ("executions", "inputs_hash"),
    ("executions", "outputs_hash"),
    ("steps", "parameters_hash"),
    ("steps", "result_hash"),
    ("model_calls", "request_hash"),
    ("model_calls", "body_hash"),
    ("states", "blob_hash"),
)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _Kind:
    """One kind of queued op as PostgreSQL writes it: the statement head, the conflict
    clause from the table's key, and which columns take bytes."""

    def __init__(self, kind: str) -> None:
        from workbench.store import _tables

        table_name, columns, conflict = KINDS[kind]
        table = _tables.table(table_name)
        self.width = len(columns)
        self.head = f"INSERT INTO {table_name} ({', '.join(_quoted(c) for c in columns)}) VALUES "
        key = [c.name for c in table.primary_key.columns] if conflict != "append" else []
        self.key = tuple(columns.index(c) for c in key)
        if conflict == "ignore":
            self.tail = f" ON CONFLICT ({', '.join(map(_quoted, key))}) DO NOTHING"
        elif conflict == "replace":
            rest = [c for c in columns if c not in key]
            self.tail = f" ON CONFLICT ({', '.join(map(_quoted, key))}) DO UPDATE SET " + ", ".join(
                f"{_quoted(c)} = EXCLUDED.{_quoted(c)}" for c in rest
            )
        else:
            self.tail = ""
        self.replaces = conflict == "replace"
        self.binary = tuple(isinstance(table.c[c].type, _binary_type()) for c in columns)
        self.types = tuple(_copy_type(table.c[c].type) for c in columns)
        self._sql: dict[int, str] = {}
        names = ", ".join(_quoted(c) for c in columns)
        # A large batch goes in with COPY (into the table, or for a keyed table into a
        # temporary twin whose rows are then upserted): parsing one statement of tens of
        # thousands of placeholders costs more than the rows.
        if conflict == "append":
            self.copy_sql = f"COPY {table_name} ({names}) FROM STDIN (FORMAT BINARY)"
            self.staging: tuple[str, ...] = ()
        else:
            staging = f"workbench_staging_{table_name}"
            self.copy_sql = f"COPY {staging} ({names}) FROM STDIN (FORMAT BINARY)"
            self.staging = (
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} "
                f"(LIKE {table_name} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
                f"INSERT INTO {table_name} ({names}) SELECT {names} FROM {staging}{self.tail}",
            )

    def sql(self, rows: int) -> str:
        found = self._sql.get(rows)
        if found is None:
            row = "(" + ", ".join(["%s"] * self.width) + ")"
            found = self._sql[rows] = self.head + ", ".join([row] * rows) + self.tail
        return found

    def distinct(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """One row per key (the last for a replace, the first for an ignore): PostgreSQL
        refuses a statement that would upsert the same row twice."""
        if not self.key:
            return rows
        by_key: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        for row in rows:
            key = tuple(row[i] for i in self.key)
            if self.replaces or key not in by_key:
                by_key[key] = row
        return list(by_key.values()) if len(by_key) != len(rows) else rows


def _copy_type(kind: object) -> str:
    import sqlalchemy as sa

    if isinstance(kind, sa.LargeBinary):
        return "bytea"
    if isinstance(kind, sa.Integer):
        return "int8"
    if isinstance(kind, sa.Float):
        return "float8"
    return "text"


def _typed(value: Any, kind: str) -> Any:
    """A value as COPY's binary format takes it for a column of ``kind`` (no server-side
    casts there: an integral float into a bigint column is made an int)."""
    if value is None:
        return None
    if kind == "int8" and not isinstance(value, int):
        return int(value) if isinstance(value, float) else value
    if kind == "float8" and isinstance(value, int):
        return float(value)
    return value


_FOR_COPY = {"text": str, "float8": float, "int8": int}


def _as_is(row: Sequence[Any], types: Sequence[str]) -> bool:
    """Whether COPY takes ``row`` unchanged: each value None or of its column's very type
    (no bool, no bytes into text), and no text with NUL."""
    for value, kind in zip(row, types, strict=True):
        if value is None:
            continue
        expected = _FOR_COPY.get(kind)
        if expected is None or type(value) is not expected:
            return False
        if expected is str and "\x00" in value:
            return False
    return True


#: Rows of one kind in a batch from which COPY is cheaper than a multi-row INSERT.
_COPY_FROM = 500


def _binary_type() -> type:
    import sqlalchemy as sa

    return sa.LargeBinary


def _value(value: Any, binary: bool) -> Any:
    """A queued value as PostgreSQL takes it: bytes only into bytea, text without NUL (which
    PostgreSQL's text cannot hold; U+FFFD marks where one was), booleans as the 0/1 SQLite
    stores, and anything else (a plain dict) as its JSON."""
    if value is None or isinstance(value, float):
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, bytes | bytearray | memoryview):
        if binary:
            return bytes(value)
        return _value(bytes(value).decode("utf-8", "replace"), False)
    return _value(encode(value).decode(), binary)


class PostgresBackend:
    """A store's PostgreSQL database: ``open_checked`` once, then batches and reads."""

    name = "postgresql"

    def __init__(self, url: DatabaseURL, *, auto_migrate: bool = False) -> None:
        self.url = url
        self.auto_migrate = auto_migrate
        self._pool: ConnectionPool | None = None
        self._pool_pid = 0
        self._pool_lock = threading.Lock()
        self._kinds: dict[str, _Kind] = {}
        #: The connection of the budget check's reads (``fast_read``), held out of the pool
        #: for this process (a prepared statement lives on one connection), and its lock.
        self._fast: psycopg.Connection[Any] | None = None
        self._fast_pid = 0
        self._fast_lock = threading.Lock()

    # -- errors ----------------------------------------------------------------------------

    def _shown(self, exc: BaseException) -> str:
        """A driver error as text, the password masked (libpq may echo the conninfo)."""
        return mask_secrets(str(exc).strip(), self.url.password)

    def unreachable(self, exc: BaseException) -> bool:
        """Whether ``exc`` means the server did not answer (down, restarting): the batch was
        rolled back whole and can be written again once it is back."""
        import psycopg
        from psycopg_pool import PoolTimeout

        return isinstance(exc, PoolTimeout | psycopg.OperationalError | psycopg.InterfaceError)

    def error(
        self, doing: str, exc: BaseException, *, detail: str = "", fix: str = ""
    ) -> StoreError:
        failed = f"{doing} store {self.url} failed: {self._shown(exc)}{detail}"
        return StoreError(f"{failed}; {fix}" if fix else failed)

    @property
    def write_errors(self) -> tuple[type[BaseException], ...]:
        import psycopg

        return (psycopg.Error,)

    def kept_error(
        self, *, opening: bool = False, dropped: int = 0, max_bytes: int = 0
    ) -> StoreUnreachableError:
        return StoreUnreachableError(
            f"the server of store {self.url} does not answer, so recorded rows are kept in "
            f"memory (up to {max_bytes / 2**20:.3g} MB, newer rows are dropped past that) and "
            f"written as soon as it answers again. Check that the server is running and "
            f"reachable",
            dropped=dropped,
        )

    def lost_kept(self, count: int) -> str:
        return (
            f"workbench closed store {self.url} with {count} recorded rows it kept while the "
            f"server did not answer still unwritten; they are lost"
        )

    def free_bytes(self) -> int:
        return 0  # the server's disk is not ours to watch: kept rows are retried on a timer

    def migrate(self) -> list[str]:
        """Create or upgrade the schema whatever ``auto_migrate`` says; what was added."""
        return self.open_checked(migrate=True)

    # -- connections -----------------------------------------------------------------------

    def pool(self) -> ConnectionPool:
        """The process's pool (a forked child makes its own: connections do not cross)."""
        pool = self._pool
        if pool is not None and self._pool_pid == os.getpid():
            return pool
        with self._pool_lock:
            if self._pool is None or self._pool_pid != os.getpid():
                from psycopg_pool import ConnectionPool

                self._pool = ConnectionPool(
                    self.url.conninfo,
                    min_size=1,
                    max_size=8,
                    kwargs={"autocommit": True, "connect_timeout": 5},
                    # No check on checkout (it costs a round trip a batch): a connection the
                    # server dropped fails its batch, which is kept and written again on a
                    # fresh one (the pool discards a broken connection when it comes back).
                    # SQLAlchemy's NullPool closes what it took: that returns it here.
                    close_returns=True,
                    timeout=_CONNECT_TIMEOUT_S,
                    reconnect_timeout=24 * 3600.0,  # keep trying while the server is away
                    name="workbench",
                    open=True,
                    # A down server must not hang opening: the first connection is checked
                    # out (and its error reported) by whoever needs it.
                )
                self._pool_pid = os.getpid()
            return self._pool

    def connect(self) -> _PooledWriter:
        """The writer's handle: connections are taken from the pool per batch."""
        return _PooledWriter()

    def engine(self) -> sa.Engine:
        import sqlalchemy as sa

        def checked_out() -> psycopg.Connection[Any]:
            # Reads are rare next to writes: a checked connection (one round trip) keeps a
            # read after a server restart from failing on a dropped one.
            return self._checked_connection()

        return sa.create_engine(
            "postgresql+psycopg://", poolclass=sa.pool.NullPool, creator=checked_out
        )

    def fast_read(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """The rows of ``sql`` (``%s`` placeholders) as tuples, on a connection of its own
        kept for these reads, the statement prepared on it once: the budget check runs one
        on every model call, where ``_read``'s checkout, check and result building cost
        ~1 ms. Autocommit, so every read sees what any process committed before it; a
        connection the server dropped is replaced once."""
        import psycopg

        with self._fast_lock:
            for attempt in (0, 1):
                conn = self._fast
                if conn is None or self._fast_pid != os.getpid():
                    conn = self._fast = self._checked_connection()
                    self._fast_pid = os.getpid()
                try:
                    return conn.execute(sql, params, prepare=True).fetchall()
                except psycopg.OperationalError:
                    # The server restarted (or dropped us) since the last read: it says so
                    # only on the next statement, which is then run once on a fresh one.
                    self._fast = None
                    conn.close()  # back to the pool (close_returns), which discards it
                    if attempt:
                        raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _checked_connection(self) -> psycopg.Connection[Any]:
        """A pooled connection known to be alive (one round trip): the pool does not check
        on checkout, and after a server restart its idle ones are all dead."""
        pool = self.pool()
        conn = pool.getconn()
        try:
            conn.execute("")
        except Exception:
            conn.close()  # back to the pool (close_returns), which discards a broken one
            conn = pool.getconn()
        return conn

    def after_fork(self) -> None:
        self._pool = None  # the parent's: neither used nor closed here
        self._fast = None  # the parent's connection too
        self._fast_lock = threading.Lock()

    def close(self) -> None:
        if self._pool is not None and self._pool_pid == os.getpid():
            with self._fast_lock:
                if self._fast is not None and self._fast_pid == os.getpid():
                    self._fast.close()  # back to the pool (close_returns)
                self._fast = None
            self._pool.close()
        self._pool = None

    # -- the schema ------------------------------------------------------------------------

    def open_checked(self, *, migrate: bool = False) -> list[str]:
        """Create the tables in an empty database, or check that it is a store this
        workbench reads and is not older (unless ``auto_migrate``, which upgrades it)."""
        import psycopg

        try:
            with psycopg.connect(self.url.conninfo, autocommit=True, connect_timeout=10) as conn:
                tables = {
                    r[0]
                    for r in conn.execute(
                        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                    )
                }
                if "workbench_schema" in tables:
                    self._check_version(conn)
                    missing = _missing(conn)
                    if missing:
                        if not (self.auto_migrate or migrate):
                            raise MigrationNeededError(
                                f"store {self.url} has an older schema (it lacks "
                                f"{', '.join(missing[:5])}); upgrade it with `workbench store "
                                f"migrate --db URL` (store.auto_migrate is off for PostgreSQL, "
                                f"so that no process upgrades a shared database by surprise)"
                            )
                        return migrate_postgres(conn)
                    if (self.auto_migrate or migrate) and _missing_indexes(conn):
                        # Only speed depends on an index: added when upgrading is allowed,
                        # a database without it is read as it is otherwise.
                        return migrate_postgres(conn)
                    return []
                if tables:
                    raise NotAStoreError(
                        f"store {self.url} is a database of another application (tables: "
                        f"{', '.join(sorted(tables)[:5])}); give workbench a database of "
                        f"its own (CREATE DATABASE workbench)"
                    )
                _create(conn)
                return ["the schema"]
        except StoreError:
            raise
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot open store {self.url}: {self._shown(exc)}; check the URL (given as "
                f"an argument, WORKBENCH_DB or store.url in workbench.yaml) and that the "
                f"server is running"
            ) from None

    def _check_version(self, conn: psycopg.Connection[Any]) -> None:
        row = conn.execute("SELECT app, version FROM workbench_schema").fetchone()
        if row is None or row[0] != APP:
            raise NotAStoreError(
                f"store {self.url} has a workbench_schema table but no workbench stamp in it"
            )
        if row[1] > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"store {self.url} was written with store schema version {row[1]}, and this "
                f"workbench reads versions up to {SCHEMA_VERSION}; upgrade with "
                f"`pip install -U pipeline-workbench`"
            )

    # -- writing ---------------------------------------------------------------------------

    def _kind(self, kind: str) -> _Kind:
        found = self._kinds.get(kind)
        if found is None:
            found = self._kinds[kind] = _Kind(kind)
        return found

    def _write(
        self,
        cur: psycopg.Cursor[Any],
        groups: dict[str, list[tuple[Any, ...]]],
        *,
        pipelined: bool = False,
    ) -> None:
        for kind in ORDER:
            rows = groups.get(kind)
            if not rows:
                continue
            if kind == "exec_end":
                cur.executemany(_EXEC_END, [tuple(_value(v, False) for v in r) for r in rows])
                continue
            spec = self._kind(kind)
            rows = spec.distinct(rows)
            binary = spec.binary
            if len(rows) >= _COPY_FROM and not pipelined:
                for statement in spec.staging[:1]:
                    cur.execute(statement)
                types = spec.types
                with cur.copy(spec.copy_sql) as copy:
                    copy.set_types(list(types))
                    write = copy.write_row
                    for row in rows:
                        # Most rows hold only text without NUL, floats and None, which COPY
                        # takes as they are: convert the rest, value by value.
                        if _as_is(row, types):
                            write(row)
                        else:
                            write(
                                [_typed(_value(v, binary[i]), types[i]) for i, v in enumerate(row)]
                            )
                for statement in spec.staging[1:]:
                    cur.execute(statement)
                continue
            step = max(1, _MAX_PARAMETERS // spec.width)
            for start in range(0, len(rows), step):
                chunk = rows[start : start + step]
                cur.execute(
                    spec.sql(len(chunk)),
                    [_value(v, binary[i]) for row in chunk for i, v in enumerate(row)],
                )

    def commit(self, conn: object, groups: dict[str, list[tuple[Any, ...]]]) -> None:
        """Write a batch in one transaction: in one round trip (pipeline mode, a multi-row
        INSERT per kind) when it is a step's worth of rows, with COPY when it is a flood (no
        COPY in pipeline mode, and then throughput matters, not round trips)."""
        large = any(len(rows) >= _COPY_FROM for kind, rows in groups.items() if kind != "exec_end")

        def write(conn: psycopg.Connection[Any]) -> None:
            if large:
                with conn.transaction(), conn.cursor() as cur:
                    self._write(cur, groups)
                return
            with conn.pipeline(), conn.transaction(), conn.cursor() as cur:
                self._write(cur, groups, pipelined=True)

        self.on_connection(write)

    def on_connection(self, work: Callable[[psycopg.Connection[Any]], _T]) -> _T:
        """``work`` on a pooled connection, once more on a fresh one if the first had been
        dropped by the server (a restart since it was last used): the pool does not check
        connections on checkout, which would cost a round trip each time."""
        import psycopg

        for attempt in (0, 1):
            with self.pool().connection() as conn:
                try:
                    return work(conn)
                except psycopg.OperationalError:
                    if attempt or not conn.broken:
                        raise
        raise AssertionError("unreachable")  # pragma: no cover

    def interrupt(self, where: str, params: Sequence[Any]) -> None:
        """Mark running executions matching ``where`` (and their running steps) interrupted."""
        self.on_connection(lambda conn: self._interrupt(conn, where, params))

    def _interrupt(self, conn: psycopg.Connection[Any], where: str, params: Sequence[Any]) -> None:
        with conn.transaction():
            ids = [
                r[0]
                for r in conn.execute(
                    f"SELECT id FROM executions WHERE status = 'running' AND {where} FOR UPDATE",
                    params,
                )
            ]
            if ids:
                conn.execute(
                    "UPDATE executions SET status = 'interrupted', success = NULL, "
                    "ended_at = COALESCE(ended_at, %s) WHERE id = ANY(%s)",
                    (time.time(), ids),
                )
                conn.execute(
                    "UPDATE steps SET status = 'interrupted' WHERE status = 'running' "
                    "AND execution_id = ANY(%s)",
                    (ids,),
                )

    def interrupt_ids(self, ids: Sequence[str]) -> None:
        self.interrupt("id = ANY(%s)", (list(ids),))

    def interrupt_owner(self, pid: int, host: str) -> None:
        self.interrupt("pid = %s AND host = %s", (pid, host))

    def _delete_rows(self, conn: psycopg.Connection[Any], ids: list[str]) -> int:
        for table in _CHILD_TABLES:
            conn.execute(f"DELETE FROM {table} WHERE execution_id = ANY(%s)", (ids,))
        return conn.execute("DELETE FROM executions WHERE id = ANY(%s)", (ids,)).rowcount

    def _delete_orphaned_blobs(self, conn: psycopg.Connection[Any]) -> int:
        named = " UNION ".join(
            f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL"
            for table, column in _BLOB_REFERENCES
        )
        return conn.execute(f"DELETE FROM blobs WHERE hash NOT IN ({named})").rowcount

    def delete_executions(self, ids: Sequence[str]) -> tuple[int, int]:
        with self.pool().connection() as conn, conn.transaction():
            removed = self._delete_rows(conn, list(ids))
            return removed, self._delete_orphaned_blobs(conn)

    def import_rows(self, groups: dict[str, list[tuple[Any, ...]]], ids: Sequence[str]) -> None:
        """As SQLite's ``_sql.import_rows``: whole executions replaced, in one transaction,
        their calls adding nothing to the cost ledger (spent where they were recorded)."""
        with self.pool().connection() as conn, conn.transaction():
            # Only one import at a time: the ledger rows taken out are this one's own.
            conn.execute("LOCK TABLE cost_ledger IN SHARE ROW EXCLUSIVE MODE")
            self._delete_rows(conn, list(ids))
            last = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM cost_ledger").fetchone()
            with conn.cursor() as cur:
                self._write(cur, groups)
            conn.execute("DELETE FROM cost_ledger WHERE seq > %s", (last[0] if last else 0,))
            self._delete_orphaned_blobs(conn)

    def compact(self) -> None:
        with self.pool().connection() as conn:
            conn.execute("VACUUM")

    def size_bytes(self) -> int:
        with self.pool().connection() as conn:
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        return int(row[0]) if row else 0

    def schema_version(self) -> int:
        with self.pool().connection() as conn:
            row = conn.execute("SELECT version FROM workbench_schema").fetchone()
        return int(row[0]) if row else 0


class _PooledWriter:
    """The writer's "connection" on PostgreSQL: nothing held; each batch takes one from the
    pool (a connection the server dropped is replaced there)."""

    def close(self) -> None:
        return None


def _missing(conn: psycopg.Connection[Any]) -> list[str]:
    """What ``_tables.metadata()`` has and the database lacks: tables and columns."""
    from workbench.store import _tables

    have: dict[str, set[str]] = {}
    for table, column in conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema()"
    ):
        have.setdefault(table, set()).add(column)
    missing = []
    for table in _tables.metadata().sorted_tables:
        if table.name not in have:
            missing.append(f"table {table.name}")
            continue
        missing.extend(
            f"column {table.name}.{c.name}" for c in table.columns if c.name not in have[table.name]
        )
    return missing


def _missing_indexes(conn: psycopg.Connection[Any]) -> list[str]:
    """The indexes of ``_tables.metadata()`` the database lacks (added by later versions)."""
    from workbench.store import _tables

    have = {
        r[0]
        for r in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
        )
    }
    return [
        index.name
        for table in _tables.metadata().sorted_tables
        for index in table.indexes
        if index.name not in have
    ]


def _create(conn: psycopg.Connection[Any]) -> None:
    """The tables, indexes, ledger trigger and stamp, in one transaction under a lock (two
    processes opening the same new database: the second finds the first one's)."""
    import sqlalchemy as sa

    from workbench.store import _tables

    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        if conn.execute("SELECT to_regclass('workbench_schema')").fetchone()[0] is not None:  # type: ignore[index]
            return
        from sqlalchemy.dialects.postgresql import psycopg as pg_dialect

        dialect = pg_dialect.dialect()
        meta = _tables.metadata()
        for table in meta.sorted_tables:
            conn.execute(str(sa.schema.CreateTable(table).compile(dialect=dialect)))
            for index in table.indexes:
                conn.execute(str(sa.schema.CreateIndex(index).compile(dialect=dialect)))
        for statement in _LEDGER_TRIGGER:
            conn.execute(statement)
        conn.execute(
            "INSERT INTO workbench_schema (app, version, created_at) VALUES (%s, %s, %s)",
            (APP, SCHEMA_VERSION, time.time()),
        )


def migrate_postgres(conn: psycopg.Connection[Any]) -> list[str]:
    """Bring the database up to ``_tables.metadata()``: the tables, columns and indexes it
    lacks are added (DDL rendered by Alembic's operations), in one transaction under the
    schema lock, and the ledger trigger is (re)created; what was added.

    New tables and columns come from ``_schema._TABLES`` by themselves: there is no list of
    revisions to keep in step with it.
    """
    import io

    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    from workbench.store import _tables

    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        have: dict[str, set[str]] = {}
        for table_name, column_name in conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema()"
        ):
            have.setdefault(table_name, set()).add(column_name)
        indexes = {
            r[0]
            for r in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
            )
        }
        buffer = io.StringIO()
        context = MigrationContext.configure(
            dialect_name="postgresql", opts={"as_sql": True, "output_buffer": buffer}
        )
        ops = Operations(context)
        done: list[str] = []
        for table in _tables.metadata().sorted_tables:
            if table.name not in have:
                ops.create_table(table.name, *[c._copy() for c in table.columns])
                done.append(f"table {table.name}")
            else:
                for column in table.columns:
                    if column.name not in have[table.name]:
                        added = column._copy()
                        added.nullable = True  # the rows already there have no value for it
                        ops.add_column(table.name, added)
                        done.append(f"column {table.name}.{column.name}")
            for index in table.indexes:
                if index.name not in indexes:
                    ops.create_index(index.name, table.name, [c.name for c in index.columns])
                    done.append(f"index {index.name}")
        for statement in buffer.getvalue().split(";\n"):
            if statement.strip():
                conn.execute(statement)
        for statement in _LEDGER_TRIGGER:
            conn.execute(statement)
    return done
