"""Pausing the cyclic garbage collector around work that allocates a large graph at once.

Decoding a recording of thousands of calls, or comparing two runs of thousands of steps,
allocates hundreds of thousands of containers in a burst; the collector would walk the growing
graph again and again while it is built (measured: 0.08 vs 0.04 ms per decoded call, and a
fifth of a 10,000-step diff). Nothing in that work makes reference cycles that must be freed
before it ends, so the collector waits until it is done.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["paused"]


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """The block runs with the cyclic collector off (as it was before, afterwards)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()
