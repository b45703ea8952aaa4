"""``fresh_store()``: a store in a new temporary folder, removed afterwards."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from workbench.store import Store

__all__ = ["fresh_store"]


@contextmanager
def fresh_store(*, keep: bool = False) -> Iterator[Store]:
    """A new, empty store in a temporary folder; the folder is removed unless ``keep=True``."""
    folder = Path(tempfile.mkdtemp(prefix="workbench-"))
    store = Store(folder / "workbench.db")
    try:
        yield store
    finally:
        store.close()
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
