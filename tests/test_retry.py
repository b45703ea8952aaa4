"""The one retry policy: what is retried, how many times, the waits, and what is raised."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from workbench._retry import RetryPolicy
from workbench.store._sql import commit_retrying


def failing(
    times: int, error: type[BaseException] = ConnectionError
) -> tuple[list[int], Callable[[], str]]:
    """A function failing its first ``times`` calls, and the list of its calls."""
    calls: list[int] = []

    def fn() -> str:
        calls.append(len(calls) + 1)
        if len(calls) <= times:
            raise error(f"call {len(calls)}")
        return f"ok after {len(calls)}"

    return calls, fn


def test_a_retried_failure_is_called_again_with_doubling_waits() -> None:
    """Two failures with retries=3 end in success on the third call; the callback sees each
    failure, the retry's number and the wait (backoff, then twice it)."""
    calls, fn = failing(2)
    seen: list[tuple[str, int, float]] = []
    policy = RetryPolicy(retries=3, retry_if=lambda e: True, backoff_s=0.01)
    result = policy.call(fn, lambda exc, retry, wait: seen.append((str(exc), retry, wait)))
    assert result == "ok after 3" and calls == [1, 2, 3]
    assert seen == [("call 1", 1, 0.01), ("call 2", 2, 0.02)]


def test_the_last_failure_is_raised_after_the_limit() -> None:
    """With retries=2 a function that always fails is called three times and its own last
    error is raised."""
    calls, fn = failing(10)
    with pytest.raises(ConnectionError, match="call 3"):
        RetryPolicy(retries=2, retry_if=lambda e: True).call(fn)
    assert calls == [1, 2, 3]


def test_a_failure_the_policy_refuses_is_raised_at_once() -> None:
    """A failure ``retry_if`` does not accept is raised on its first occurrence, also when
    it comes on a retry."""
    calls, fn = failing(1, KeyError)
    policy = RetryPolicy(retries=5, retry_if=lambda e: isinstance(e, ConnectionError))
    with pytest.raises(KeyError):
        policy.call(fn)
    assert calls == [1]
    errors = iter([ConnectionError("retried"), ValueError("refused")])

    def second_refused() -> None:
        raise next(errors)

    with pytest.raises(ValueError, match="refused"):
        policy.call(second_refused)


def test_no_retries_calls_once() -> None:
    """The default policy retries nothing."""
    calls, fn = failing(1)
    with pytest.raises(ConnectionError):
        RetryPolicy().call(fn)
    assert calls == [1]


def test_a_coroutine_is_retried_the_same_way() -> None:
    """``acall`` awaits each attempt and retries as ``call`` does."""
    attempts: list[int] = []

    async def fn() -> int:
        attempts.append(1)
        if len(attempts) < 3:
            raise TimeoutError("slow")
        return len(attempts)

    seen: list[int] = []
    policy = RetryPolicy(retries=2, retry_if=lambda e: True)
    assert asyncio.run(policy.acall(fn, lambda exc, retry, wait: seen.append(retry))) == 3
    assert seen == [1, 2]


def test_a_cancelled_attempt_is_not_retried() -> None:
    """A cancelled task stays cancelled: CancelledError is no Exception to retry."""

    async def fn() -> None:
        raise asyncio.CancelledError

    policy = RetryPolicy(retries=3, retry_if=lambda e: isinstance(e, Exception))
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(policy.acall(fn))


def test_importing_workbench_or_succeeding_does_not_import_tenacity() -> None:
    """tenacity is imported only once a call has failed with a retried failure."""
    code = (
        "import sys, workbench\n"
        "from workbench._retry import RetryPolicy\n"
        "RetryPolicy(retries=2, retry_if=lambda e: True).call(lambda: 1)\n"
        "assert 'tenacity' not in sys.modules, 'imported early'\n"
        "calls = []\n"
        "def fn():\n"
        "    calls.append(1)\n"
        "    if len(calls) == 1: raise OSError\n"
        "RetryPolicy(retries=1, retry_if=lambda e: True).call(fn)\n"
        "assert 'tenacity' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _hold_write_lock(path: Path, seconds: float, locked: threading.Event) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        locked.set()
        time.sleep(seconds)
        conn.execute("COMMIT")
    finally:
        conn.close()


def _contended_commit(
    path: Path, held_s: float, caplog: pytest.LogCaptureFixture
) -> tuple[BaseException | None, list[str]]:
    """commit_retrying on a connection that does not wait itself, while another holds the lock."""
    sqlite3.connect(path).close()
    locked = threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(path, held_s, locked))
    holder.start()
    locked.wait()
    conn = sqlite3.connect(path, isolation_level=None, timeout=0)
    error: BaseException | None = None
    try:
        with caplog.at_level(logging.WARNING, logger="workbench.store"):
            commit_retrying(conn, {})
    except sqlite3.OperationalError as exc:
        error = exc
    finally:
        conn.close()
        holder.join()
    return error, [r.getMessage() for r in caplog.records]


def test_the_store_retries_a_locked_commit_with_a_warning_each_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A commit refused because another connection holds the lock for 0.8 s is tried again
    after 0.5 s and 1 s, each retry warned about, and then succeeds."""
    error, warned = _contended_commit(tmp_path / "s.db", 0.8, caplog)
    assert error is None
    assert warned == ["workbench store is locked by another process; retrying the write"] * 2


def test_the_store_gives_up_after_three_locked_attempts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A lock held past the three attempts (1.5 s of waits) raises sqlite3's own error."""
    error, warned = _contended_commit(tmp_path / "s.db", 2.5, caplog)
    assert isinstance(error, sqlite3.OperationalError) and "locked" in str(error)
    assert len(warned) == 2
