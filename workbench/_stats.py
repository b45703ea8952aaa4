"""The one percentile: latency reports, alerts, health and test summaries all quantile with it.

Owns the definition (linear interpolation between closest ranks, numpy's default), so a p95
printed by ``workbench report``, checked by an SLA alert and asserted by ``max_latency`` is the
same number for the same durations.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["percentile"]


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q`` quantile (0 <= q <= 1, ``0.95`` for p95) by linear interpolation between
    closest ranks; 0.0 for no values."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
