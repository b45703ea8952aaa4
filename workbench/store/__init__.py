"""The store subsystem: SQLite recordings, written in the background, read as records."""

from workbench.store._store import (
    DEFAULT_PATH,
    Store,
    default_store,
    install_sigterm_handler,
    open_store,
    resolve_store_path,
)

__all__ = [
    "DEFAULT_PATH",
    "Store",
    "default_store",
    "install_sigterm_handler",
    "open_store",
    "resolve_store_path",
]
