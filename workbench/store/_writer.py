"""The background writer: one thread per store that turns queued rows into batched transactions.

Recording threads only append to a deque (cheap, lock-free under the GIL); this thread drains it,
hashes and compresses payloads, and writes everything queued so far in one ``BEGIN IMMEDIATE``
transaction. ``flush()`` blocks until everything queued before it is committed; the store calls
it at exit and on SIGTERM, so a ``kill -9`` loses at most the spans and logs of an unfinished
step. The recorder calls ``flush_soon()`` at execution start, step end and execution end: it
waits for the commit only briefly, so that the application never waits on the store (another
process holding the write lock, a slow disk). Past that bound the recording lags: the writer
commits as soon as it can, the lag is :attr:`Writer.lag_s` (the ``store_write_lag_seconds``
metric) and, once it passes a second, one warning says so.

A batch that cannot be written is reported at most once a minute, with the count of rows not
written. On a full disk the store keeps the refused rows (bounded, ``_unwritten``) and this
thread tries again with the next batch, or on its timer when nothing new comes, so the rows
recorded meanwhile are written once there is space; other failures lose their batch, and the
next batch tries again, so recording resumes by itself once the cause is gone.

It owns batching, durability and reporting write failures, not the SQL of any one record nor
the wording of SQLite's errors: each queued op names a handler in ``_store.Store``'s write
table, which also translates errors into :class:`StoreError` messages naming the store.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from workbench.exceptions import StoreError, StoreFullError, StoreUnreachableError

__all__ = ["MAX_QUEUED", "SOON_S", "Writer"]

log = logging.getLogger("workbench.store")

#: Rows queued before the writer wakes without being asked; keeps memory bounded under floods.
_WAKE_AT = 20_000
#: The writer's timer. Durability comes from explicit flushes (step end, execution end, exit,
#: SIGTERM); the timer only bounds how long queued spans and logs wait between them, and a long
#: one keeps the writer from interleaving with a hot loop of spans.
_IDLE_WAIT_S = 1.0
#: Rows queued past which ``put`` waits for the writer, so memory stays bounded.
MAX_QUEUED = 200_000
#: How long the recorder's flushes wait for a commit before recording lags instead.
SOON_S = 0.1
#: A lag this long is warned about (shorter ones, a slow checkpoint, only show in the metric).
_WARN_LAG_S = 1.0
#: The same write failure, or a lag, is logged at most once per this many seconds.
_REPORT_EVERY_S = 60.0
_FLUSH = object()
_start_lock = threading.Lock()
_writers: weakref.WeakSet[Writer] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    global _start_lock
    _start_lock = threading.Lock()
    for writer in list(_writers):
        writer._forget_thread()


os.register_at_fork(after_in_child=_after_fork_in_child)

Op = tuple[Any, ...]
#: ``write_batch(connection, ops)``: ``connection()`` opens the writer's connection if needed (a
#: store opened before its disk filled may first open it on a full disk).
Batch = Callable[[Callable[[], sqlite3.Connection], list[Op]], None]


class _Reports:
    """Write failures, each distinct message logged at most once per ``_REPORT_EVERY_S`` with
    the rows not written since it was last logged: a full disk is one warning a minute, not one
    traceback per step."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._lost: dict[str, int] = {}
        #: Rows really gone since the first failure (a full disk's refused rows are kept).
        self._dropped = 0
        self._lock = threading.Lock()

    def failed(self, exc: BaseException, rows: int) -> bool:
        """Count the failure, log it if due; whether rows were lost (not kept for a retry)."""
        message = str(exc) if isinstance(exc, StoreError) else f"{type(exc).__name__}: {exc}"
        # A full disk's or an unreachable server's rows are kept for a retry: only the ones
        # the bound left out are lost.
        kept = isinstance(exc, StoreFullError | StoreUnreachableError)
        dropped = exc.dropped if kept else rows  # type: ignore[union-attr]
        now = time.monotonic()
        with self._lock:
            self._dropped += dropped
            lost = self._lost[message] = self._lost.get(message, 0) + rows
            last = self._last.get(message)
            if last is not None and now - last < _REPORT_EVERY_S:
                return dropped > 0
            self._last[message] = now
            self._lost[message] = 0
        level = logging.WARNING if isinstance(exc, StoreError) else logging.ERROR
        log.log(level, "workbench could not write %d recorded rows: %s", lost, message)
        return dropped > 0

    def succeeded(self, name: str) -> None:
        if not self._last:  # the usual case: nothing failed, nothing to say
            return
        with self._lock:
            lost = self._dropped
            self._dropped = 0
            self._last.clear()
            self._lost.clear()
        log.info(
            "workbench is writing recordings to %s again%s",
            name,
            f" ({lost} more rows were lost meanwhile)" if lost else "",
        )


class Writer:
    """Drains queued ops into ``write_batch`` on a daemon thread."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        write_batch: Batch,
        *,
        name: str = "the store",
        retry_due: Callable[[], bool] = lambda: False,
    ) -> None:
        self._connect = connect
        self._write_batch = write_batch
        self._name = name
        #: Whether ``write_batch`` keeps rows a failure refused, to try again now with no batch.
        self._retry_due = retry_due
        #: Whether a failure since the last successful write lost rows (rather than kept them).
        self._lost_rows = False
        self._queue: collections.deque[Op] = collections.deque()
        self._wake = threading.Event()
        self._error: BaseException | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._reports = _Reports()
        #: The marker of the first ``flush_soon`` that timed out, while it is not committed.
        self._lag_marker: threading.Event | None = None
        self._lag_since = 0.0
        self._lag_warned: threading.Event | None = None  # the lag marker warned about
        self._lag_warned_at = -_REPORT_EVERY_S

    def put(self, op: Op) -> None:
        if self._thread is None:
            self._ensure_thread()
        queue = self._queue
        queue.append(op)
        # Setting an Event takes a lock: only do it when the writer is not already woken.
        queued = len(queue)
        if queued >= _WAKE_AT:
            if not self._wake.is_set():
                self._wake.set()
            if queued >= MAX_QUEUED and threading.current_thread() is not self._thread:
                # Push back on a producer that outruns the disk; a write failure is the
                # writer thread's to report (once a minute), not this producer's.
                with contextlib.suppress(StoreError):
                    self.flush()

    @property
    def enqueue(self) -> Callable[[Op], None]:
        """``put`` for hot paths: the queue's own (C-level) append, with no wake-up check.

        The writer drains on its timer (or at the next flush), so a hot loop of spans is not
        interleaved with writing. The thread must already run (the execution's row, put first,
        starts it); a fork clears this same deque, so a bound append stays valid. Callers bound
        the queue themselves (see ``ActiveSpan.__exit__``).
        """
        return self._queue.append

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Block until every op queued before this call is committed, or ``timeout`` passes
        (then ``False``). Raises the :class:`StoreError` of a batch that could not be written."""
        marker = self._mark()
        if marker is None:
            return True
        if not marker.wait(timeout):
            return False
        self._raise_pending()
        return True

    def flush_soon(self, wait_s: float = SOON_S) -> bool:
        """The recorder's flush: wait at most ``wait_s`` for the commit, then carry on.

        ``False`` when the commit did not come in time: the writer commits as soon as the store
        lets it, and until then :attr:`lag_s` grows and later calls do not wait at all (one
        slow store must not slow every step). Write failures are not raised: the writer has
        logged them.
        """
        lagging = self._lag_marker
        if lagging is not None and not lagging.is_set():
            self._warn_of_lag(lagging)
            return False
        requested = time.monotonic()
        try:
            marker = self._mark()
        except StoreError:  # written inline (no writer thread here), and failed: reported
            return False
        if marker is None or marker.wait(wait_s):
            self._error = None  # reported by the writer thread already
            self._lost_rows = False
            return True
        if self._lag_marker is None or self._lag_marker.is_set():
            self._lag_since = requested
            self._lag_marker = marker
        return False

    def _warn_of_lag(self, lagging: threading.Event) -> None:
        """One warning per lag of ``_WARN_LAG_S`` or more, at most one a minute."""
        now = time.monotonic()
        if (
            self._lag_warned is lagging
            or now - self._lag_since < _WARN_LAG_S
            or now - self._lag_warned_at < _REPORT_EVERY_S
        ):
            return
        self._lag_warned = lagging
        self._lag_warned_at = now
        log.warning(
            "workbench has waited %.1fs for %s to commit, and the application carries on "
            "without waiting: another process may hold its write lock, or its disk is slow. "
            "The recording is written as soon as the store lets it (until then a kill -9 "
            "loses it); the lag is the store_write_lag_seconds metric",
            now - self._lag_since,
            self._name,
        )

    @property
    def lag_s(self) -> float:
        """Seconds the oldest recording a ``flush_soon`` gave up on has waited; 0 when none."""
        lagging = self._lag_marker
        if lagging is None or lagging.is_set():
            return 0.0
        return max(0.0, time.monotonic() - self._lag_since)

    def _mark(self) -> threading.Event | None:
        """Queue a marker the writer sets once everything queued before it is committed;
        ``None`` when there is no writer thread here and the queue was written inline."""
        if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
            if self._queue:
                self._drain_inline()
            return None
        # A marker in the queue, set once the batch holding it is committed: exact under any
        # number of threads, with no shared counter to race on.
        marker = threading.Event()
        self._queue.append((_FLUSH, marker))
        self._wake.set()
        return marker

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._closed = True
            self._wake.set()
            if self._thread is not None and self._thread is not threading.current_thread():
                self._thread.join(timeout=5)

    def _raise_pending(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            self._lost_rows = False
            if isinstance(error, StoreError):
                raise error
            raise StoreError(f"writing to {self._name} failed: {error}") from error

    # -- the thread ------------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        with _start_lock:
            if self._thread is not None:
                return
            self._pid = os.getpid()
            self._closed = False
            thread = threading.Thread(target=self._run, name="workbench-writer", daemon=True)
            thread.start()
            self._thread = thread
            _writers.add(self)

    def _forget_thread(self) -> None:
        """In a forked child the parent's writer thread does not exist: start anew on next put.

        Rows the parent had queued but not written are the parent's to write, not the child's.
        """
        self._thread = None
        self._conn = None  # the parent's connection: not to be used, nor closed, here
        self._lag_marker = None
        self._queue.clear()

    def _run(self) -> None:
        try:
            while True:
                self._wake.wait(_IDLE_WAIT_S)
                self._wake.clear()
                if self._queue or (not self._closed and self._retry_due()):
                    self._write_some()
                elif self._closed:
                    return
        finally:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _take(self) -> list[Op]:
        batch: list[Op] = []
        pop = self._queue.popleft
        try:
            while True:
                batch.append(pop())
        except IndexError:
            return batch

    def _write_some(self, conn: sqlite3.Connection | None = None) -> None:
        """Write what is queued, on ``conn`` or on the thread's own connection."""
        taken = self._take()
        markers = [op[1] for op in taken if op[0] is _FLUSH]
        batch = [op for op in taken if op[0] is not _FLUSH] if markers else taken
        if batch or self._retry_due():
            try:
                self._write_batch(self._own_connection if conn is None else lambda: conn, batch)
            except BaseException as exc:  # keep the thread alive; report to the next flush
                self._lost_rows = self._reports.failed(exc, len(batch)) or self._lost_rows
                self._error = exc
            else:
                self._reports.succeeded(self._name)
                if not self._lost_rows:  # rows a full disk refused are written now, too
                    self._error = None
        for marker in markers:
            marker.set()
        lagging = self._lag_marker
        if lagging is not None and lagging.is_set():
            self._lag_marker = None
            if self._lag_warned is lagging:  # the warning's sequel; short lags pass unsaid
                log.info(
                    "workbench caught up with %s after %.1fs",
                    self._name,
                    time.monotonic() - self._lag_since,
                )

    def _own_connection(self) -> sqlite3.Connection:
        """The thread's connection, opened here the first time (so that a store opened on a
        full disk starts writing once there is space)."""
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def _drain_inline(self) -> None:
        try:
            conn = self._connect()
        except StoreError as exc:
            self._reports.failed(exc, len(self._take()))
            raise
        try:
            self._write_some(conn)
        finally:
            conn.close()
        self._raise_pending()
