"""Blocking connections that would leave the machine, for test suites.

Owns :class:`NetworkGuard`: while active, ``socket.socket.connect`` (and ``connect_ex``) refuse
any address that is not loopback, a Unix socket, or an allowed host, with
:class:`~workbench.exceptions.NetworkBlockedError`, and remember each refusal so the test can be
failed with a clear message even if the code under test swallowed the error. Every client
library connects through these two methods (``socket.create_connection``, asyncio's
``sock_connect``), so one patch covers httpx, requests, aiohttp and the SDKs.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
from collections.abc import Iterable
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from workbench.exceptions import NetworkBlockedError

__all__ = ["NetworkGuard", "is_local_url"]

_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
_lock = threading.Lock()
_original_connect = socket.socket.connect
_original_connect_ex = socket.socket.connect_ex
_active: list[NetworkGuard] = []


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def is_local_url(url: str, allowed_hosts: Iterable[str] = ()) -> bool:
    """The URL's host is this machine (loopback) or one of ``allowed_hosts``."""
    host = (urlsplit(url).hostname or "").lower()
    return _is_loopback(host) or host in {h.lower() for h in allowed_hosts}


class NetworkGuard:
    """``with NetworkGuard(allowed_hosts=[...]):`` refuses connections off this machine.

    ``allowed_hosts`` are host names or IP addresses; names are also allowed by the addresses
    they resolve to when the guard starts. ``blocked`` lists the refused ``host:port``.
    """

    def __init__(self, allowed_hosts: Iterable[str] = ()) -> None:
        self.allowed_hosts = tuple(allowed_hosts)
        self.blocked: list[str] = []
        self._allowed: set[str] = set()

    def __enter__(self) -> NetworkGuard:
        allowed = {host.lower() for host in self.allowed_hosts}
        for host in self.allowed_hosts:
            with contextlib.suppress(OSError):  # a name that does not resolve: by name only
                allowed.update(str(info[4][0]) for info in socket.getaddrinfo(host, None))
        self._allowed = allowed
        with _lock:
            if not _active:
                socket.socket.connect = _guarded_connect  # type: ignore[method-assign,assignment]
                socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign,assignment]
            _active.append(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with _lock:
            if self in _active:
                _active.remove(self)
            if not _active:
                socket.socket.connect = _original_connect  # type: ignore[method-assign]
                socket.socket.connect_ex = _original_connect_ex  # type: ignore[method-assign]

    def allows(self, address: Any) -> bool:
        if not isinstance(address, tuple):  # AF_UNIX paths and the like stay on the machine
            return True
        host = str(address[0]).lower()
        return _is_loopback(host) or host in self._allowed

    def refuse(self, address: Any) -> NetworkBlockedError:
        where = f"{address[0]}:{address[1]}" if len(address) > 1 else str(address[0])
        self.blocked.append(where)
        return NetworkBlockedError(
            f"workbench blocked a connection to {where}: this test may not leave the machine "
            f"(--workbench-block-network, or block_network in the workbench settings). Answer "
            f"the call from a recording (--workbench-record-mode=once records it first), or "
            f"allow the host with --workbench-allowed-hosts={address[0]}"
        )


def _check(sock: socket.socket, address: Any) -> None:
    for guard in list(_active):
        if not guard.allows(address):
            # Callers close a socket whose connect raised an OSError; this error is not one
            # (so that clients do not retry it), so the socket is closed here.
            sock.close()
            raise guard.refuse(address)


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _check(self, address)
    _original_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _check(self, address)
    return _original_connect_ex(self, address)
