"""Serving the UI: the extra's check, the listening socket, the warning for a public host.

Owns what ``workbench ui`` does around the app: that Starlette and uvicorn are installed (a
:class:`MissingExtraError` naming the extra otherwise), that the store opens before anything
listens (a store that cannot be opened is an error message and an exit, not a server of error
pages), binding the socket itself so a port in use is one clear error, and warning when the
server answers beyond this machine.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import webbrowser
from collections.abc import Callable, Iterator
from importlib.util import find_spec

from workbench.exceptions import ConfigError, MissingExtraError, StoreError
from workbench.store import Store, resolve_store_path
from workbench.ui._guard import is_loopback

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "background_server",
    "public_warning",
    "require_extra",
    "serve",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def require_extra() -> None:
    """Raise :class:`MissingExtraError` naming the ``ui`` extra when its packages are missing."""
    missing = [name for name in ("starlette", "uvicorn") if find_spec(name) is None]
    if missing:
        raise MissingExtraError(
            f"workbench ui needs {' and '.join(missing)}, which the base install leaves out; "
            f"install them with `pip install 'pipeline-workbench[ui]'`"
        )


def public_warning(host: str) -> str | None:
    """What to tell someone serving on ``host``, when it is not this machine's loopback."""
    if is_loopback(host):
        return None
    return (
        f"warning: serving on {host}: anyone who can reach this machine on that address can "
        f"read every recorded run (prompts and responses included) and start replays; the UI "
        f"has no login. Serve on 127.0.0.1 (the default) unless you mean it."
    )


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Inherited by each accepted connection: uvicorn writes a response's head and body apart,
    # and with Nagle on, the body waited for the client's delayed ACK — 44 ms on every request
    # of a kept-alive connection (the browser's), whatever the page.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port (0 picks "
            f"a free one) or --host"
        ) from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(
    db: str | os.PathLike[str] | None = None,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    open_browser: bool = False,
    announce: Callable[[str], None] = print,
) -> None:
    """Serve the UI over the store at ``db`` until interrupted (Ctrl-C)."""
    require_extra()
    import uvicorn

    from workbench.ui._app import create_app

    path = resolve_store_path(db)
    if not path.exists():
        raise StoreError(
            f"no store at {path}; record a run first (try `workbench demo`), or point --db or "
            f"WORKBENCH_DB at an existing store"
        )
    warning = public_warning(host)
    store = Store(path)
    try:
        sock = _listen(host, port)
        try:
            # Loopback answers to loopback names only (no DNS rebinding); --host to any name.
            app = create_app(store) if warning is None else create_app(store, allowed_hosts=None)
            shown = f"[{host}]" if ":" in host else host
            url = f"http://{shown}:{sock.getsockname()[1]}/"
            if warning:
                announce(warning)
            announce(f"workbench ui: serving store {path} at {url} (Ctrl-C stops it)")
            if open_browser:
                threading.Timer(0.5, webbrowser.open, (url,)).start()
            config = uvicorn.Config(app, log_level="warning", lifespan="on")
            uvicorn.Server(config).run(sockets=[sock])
        finally:
            sock.close()
    finally:
        store.close()


@contextlib.contextmanager
def background_server(store: Store, *, host: str = DEFAULT_HOST, port: int = 0) -> Iterator[str]:
    """The UI over ``store`` served by uvicorn in a thread of this process, for as long as the
    block lasts; yields its base URL (``http://127.0.0.1:PORT``). Tests and benchmarks drive a
    real server with it, and a notebook can open the UI beside its own recording."""
    require_extra()
    import uvicorn

    from workbench.ui._app import create_app

    sock = _listen(host, port)
    server = uvicorn.Server(uvicorn.Config(create_app(store), log_level="warning"))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="workbench-ui", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError(f"the UI server on {host}:{port} did not start")
            time.sleep(0.01)
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
