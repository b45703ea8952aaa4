"""Which process owns a running execution, and whether that process is still alive.

An execution row carries its process's pid, host and kernel start time; a ``running`` execution
whose process is gone (killed, crashed) reads ``interrupted``. The start time tells a live
process from a reused pid, and is recomputed after a fork.
"""

from __future__ import annotations

import os
import socket

__all__ = ["HOST", "is_alive", "owner_stamp"]

HOST = socket.gethostname()


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


def is_alive(pid: int | None, host: str | None, started: str | None) -> bool:
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
