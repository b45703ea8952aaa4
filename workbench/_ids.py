"""Identifiers: OpenTelemetry-shaped span and trace ids, and execution ids.

Span ids and record ids (``call_...``, ``prof_...``) are a random per-process prefix plus a
counter: unique across processes (the prefix is redrawn in a forked child), far cheaper than
drawing 8 random bytes each, and increasing within a process, so a batch of model calls inserts
at the end of its execution's range of the ``(execution_id, id)`` key instead of all over it.
Execution and trace ids stay fully random: they are the ids users paste and share.
"""

from __future__ import annotations

import itertools
import os

__all__ = ["execution_id", "new_id", "span_id", "trace_id"]

_prefix = os.urandom(4).hex()
_counter = itertools.count(1)


def _reseed() -> None:
    global _prefix, _counter
    _prefix = os.urandom(4).hex()
    _counter = itertools.count(1)


os.register_at_fork(after_in_child=_reseed)


def span_id() -> str:
    return f"{_prefix}{next(_counter):08x}"


def trace_id() -> str:
    return os.urandom(16).hex()


def execution_id() -> str:
    return f"exec_{os.urandom(8).hex()}"


def new_id(prefix: str) -> str:
    return f"{prefix}_{_prefix}{next(_counter):08x}"
