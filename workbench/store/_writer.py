"""The background writer: one thread per store that turns queued rows into batched transactions.

Recording threads only append to a deque (cheap, lock-free under the GIL); this thread drains it,
hashes and compresses payloads, and writes everything queued so far in one ``BEGIN IMMEDIATE``
transaction. ``flush()`` blocks until everything queued before it is committed; the recorder
calls it at step end and execution end, and the store calls it at exit and on SIGTERM, so a
``kill -9`` loses at most the spans and logs of an unfinished step.

It owns batching and durability, not the SQL of any one record: each queued op names a handler
in ``_store.Store``'s write table.
"""

from __future__ import annotations

import collections
import logging
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable
from typing import Any

from workbench.exceptions import StoreError

__all__ = ["MAX_QUEUED", "Writer"]

log = logging.getLogger("workbench.store")

#: Rows queued before the writer wakes without being asked; keeps memory bounded under floods.
_WAKE_AT = 20_000
#: The writer's timer. Durability comes from explicit flushes (step end, execution end, exit,
#: SIGTERM); the timer only bounds how long queued spans and logs wait between them, and a long
#: one keeps the writer from interleaving with a hot loop of spans.
_IDLE_WAIT_S = 1.0
#: Rows queued past which ``put`` waits for the writer, so memory stays bounded.
MAX_QUEUED = 200_000
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
Batch = Callable[[sqlite3.Connection, list[Op]], None]


class Writer:
    """Drains queued ops into ``write_batch`` on a daemon thread."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], write_batch: Batch) -> None:
        self._connect = connect
        self._write_batch = write_batch
        self._queue: collections.deque[Op] = collections.deque()
        self._wake = threading.Event()
        self._error: BaseException | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        self._pid = 0

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
                try:
                    self.flush()  # push back on a producer that outruns the disk
                except StoreError:
                    log.exception("workbench could not write recordings while catching up")

    @property
    def enqueue(self) -> Callable[[Op], None]:
        """``put`` for hot paths: the queue's own (C-level) append, with no wake-up check.

        The writer drains on its timer (or at the next flush), so a hot loop of spans is not
        interleaved with writing. The thread must already run (the execution's row, put first,
        starts it); a fork clears this same deque, so a bound append stays valid. Callers bound
        the queue themselves (see ``ActiveSpan.__exit__``).
        """
        return self._queue.append

    def flush(self, timeout: float | None = 30.0) -> None:
        """Block until every op queued before this call is committed."""
        if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
            if self._queue:
                self._drain_inline()
            return
        # A marker in the queue, set once the batch holding it is committed: exact under any
        # number of threads, with no shared counter to race on.
        marker = threading.Event()
        self._queue.append((_FLUSH, marker))
        self._wake.set()
        if not marker.wait(timeout):
            raise StoreError(
                f"the store writer did not commit within {timeout}s; another process may hold "
                f"a long write lock on the store"
            )
        self._raise_pending()

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
            raise StoreError(f"writing to the store failed: {error}") from error

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
        self._queue.clear()

    def _run(self) -> None:
        conn = self._connect()
        try:
            while True:
                self._wake.wait(_IDLE_WAIT_S)
                self._wake.clear()
                if self._queue:
                    self._write_some(conn)
                elif self._closed:
                    return
        finally:
            conn.close()

    def _take(self) -> list[Op]:
        batch: list[Op] = []
        pop = self._queue.popleft
        try:
            while True:
                batch.append(pop())
        except IndexError:
            return batch

    def _write_some(self, conn: sqlite3.Connection) -> None:
        taken = self._take()
        markers = [op[1] for op in taken if op[0] is _FLUSH]
        batch = [op for op in taken if op[0] is not _FLUSH] if markers else taken
        try:
            if batch:
                self._write_batch(conn, batch)
        except BaseException as exc:  # keep the thread alive; report to the next flush
            log.error("workbench could not write %d recorded rows: %s", len(batch), exc)
            self._error = exc
        for marker in markers:
            marker.set()

    def _drain_inline(self) -> None:
        conn = self._connect()
        try:
            self._write_some(conn)
        finally:
            conn.close()
        self._raise_pending()
