"""Process-wide duties of every open store: flush at exit and on SIGTERM, renew after fork.

At interpreter exit and on SIGTERM each open store is flushed and this process's running
executions are marked ``interrupted``; in a forked child each store renews what must not cross
a fork; the metrics read the stores' write lag here. Stores register themselves when they open.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import threading
import weakref
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.store._store import Store

__all__ = ["install_sigterm_handler", "register", "write_lag_s"]

_open_stores: weakref.WeakSet[Store] = weakref.WeakSet()


def register(store: Store) -> None:
    _open_stores.add(store)


def unregister(store: Store) -> None:
    _open_stores.discard(store)


def write_lag_s() -> float:
    """The largest write lag of this process's open stores (see ``Store.write_lag_s``)."""
    return max((store.write_lag_s for store in list(_open_stores)), default=0.0)


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
