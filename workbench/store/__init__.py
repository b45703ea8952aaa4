"""The store subsystem: SQLite recordings, written in the background, read as records."""

from workbench.store._owner import owner_stamp
from workbench.store._process import install_sigterm_handler
from workbench.store._rows import RecordedResponse
from workbench.store._store import DEFAULT_PATH, Store, open_store, resolve_store_path
from workbench.store._writer import MAX_QUEUED

__all__ = [
    "DEFAULT_PATH",
    "MAX_QUEUED",
    "RecordedResponse",
    "Store",
    "install_sigterm_handler",
    "open_store",
    "owner_stamp",
    "resolve_store_path",
]
