"""Identifiers: OpenTelemetry-shaped span and trace ids, and execution ids.

Span ids and record ids (``call_...``, ``prof_...``) are a random per-process prefix plus a
counter: unique across processes (the prefix is redrawn in a forked child), far cheaper than
drawing 8 random bytes each, and increasing within a process, so a batch of model calls inserts
at the end of its execution's range of the ``(execution_id, id)`` key instead of all over it.
Execution and trace ids stay fully random: they are the ids users paste and share.
"""

from __future__ import annotations

import itertools
import operator
import os
from collections.abc import Iterator

__all__ = ["execution_id", "new_id", "span_id", "span_ids", "trace_id"]

_prefix = os.urandom(4).hex()
_counter = itertools.count(1)


def _span_ids() -> Iterator[str]:
    # The same shape as a record id's tail (prefix, then an 8-digit counter) from C alone:
    # ``hex`` of 2**64 + prefix * 2**32 + n, less its "0x1", is the 16 zero-padded digits.
    # ``next()`` on it runs no Python frame and no format parser: it is most of what a
    # span's id cost, and spans are the recorder's hot path.
    first = (1 << 64) | (int(_prefix, 16) << 32) | 1
    return map(_DIGITS, map(hex, itertools.count(first)))


_DIGITS = operator.itemgetter(slice(3, None))


#: Span ids, one per ``next()``; replaced in a forked child, so read it as ``_ids.span_ids``.
span_ids = _span_ids()


def _reseed() -> None:
    global _prefix, _counter, span_ids
    _prefix = os.urandom(4).hex()
    _counter = itertools.count(1)
    span_ids = _span_ids()


os.register_at_fork(after_in_child=_reseed)


def span_id() -> str:
    return next(span_ids)


def trace_id() -> str:
    return os.urandom(16).hex()


def execution_id() -> str:
    return f"exec_{os.urandom(8).hex()}"


def new_id(prefix: str) -> str:
    return f"{prefix}_{_prefix}{next(_counter):08x}"
