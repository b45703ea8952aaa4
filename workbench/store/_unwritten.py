"""Rows a full disk refused, kept in memory (bounded) until a later transaction writes them.

A batch SQLite cannot commit because the disk is full is rolled back whole, so its rows can be
written again, unchanged, later. The store keeps them here, already built (deferred builders
are not run twice), and writes them before the next batch's rows in one transaction. That is
what one transaction over both batches would have written: a transaction writes its kinds in a
fixed order (``_sql._ORDER``: blobs, executions, ..., execution ends) and each kind's rows in
the order they were queued, so the older rows still come first.

Bounded by an estimate of their size: once ``MAX_BYTES`` are kept, the rows of each newer
batch the disk refuses are dropped (and counted), the older ones kept, so the rows that make an
execution exist survive a long outage while its later steps may not. Each try rewrites
everything kept, so the store tries again after ``RETRY_S``, or as soon as the disk has gained
room for the kept rows, and keeps the batches that come in between without trying them.

It owns no I/O and no logging: the store decides when to try, the writer reports.
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["MAX_BYTES", "RETRY_S", "Groups", "Unwritten"]

#: The most kept, in estimated bytes (text and blob lengths, plus a row's overhead).
MAX_BYTES = 32 << 20
#: Seconds between two tries to write the kept rows while the disk stays full.
RETRY_S = 1.0
_ROW_OVERHEAD = 64

Groups = dict[str, list[tuple[Any, ...]]]


def _size(rows: list[tuple[Any, ...]]) -> int:
    return sum(
        _ROW_OVERHEAD + sum(len(v) for v in row if isinstance(v, str | bytes)) for row in rows
    )


class Unwritten:
    """The kept rows, by kind in write order, with their count and estimated size."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.groups: Groups = {}
        self.rows = 0
        self.bytes = 0
        #: ``time.monotonic()`` before which the disk is not tried again (unless it gains room).
        self.retry_at = 0.0
        #: Free bytes on the disk when it last refused a write.
        self.free_at_failure = 0

    def __bool__(self) -> bool:
        return self.rows > 0

    def due(self) -> bool:
        """Whether rows are kept and it is time to try writing them again."""
        return self.rows > 0 and time.monotonic() >= self.retry_at

    def keep(self, groups: Groups) -> int:
        """Keep ``groups`` after the rows kept so far; returns how many rows the bound dropped
        (all of this batch's, or none)."""
        count = sum(len(rows) for rows in groups.values())
        size = sum(_size(rows) for rows in groups.values())
        if self.bytes + size > self.max_bytes:
            return count
        for kind, rows in groups.items():
            self.groups.setdefault(kind, []).extend(rows)
        self.rows += count
        self.bytes += size
        return 0

    def before(self, groups: Groups) -> Groups:
        """The kept rows followed by ``groups``, as one batch (the kept ones stay kept until
        :meth:`clear`: a try that fails loses nothing)."""
        merged = {kind: list(rows) for kind, rows in self.groups.items()}
        for kind, rows in groups.items():
            merged.setdefault(kind, []).extend(rows)
        return merged

    def clear(self) -> int:
        """Forget the kept rows (written, or given up on); returns how many there were."""
        count = self.rows
        self.groups = {}
        self.rows = self.bytes = 0
        self.retry_at = 0.0
        return count
