"""How an amount of US dollars reads, in every view: CLI tables, reports, notebooks, budget and
test messages, diffs.

Owns the one formatter (:func:`usd`) and how a replay's cost reads (:func:`spent`). A model
call costs millionths of a dollar, so a fixed number of places either shows ``$0.0000`` for a
call that was not free or a row of zeros for a large sum; three significant digits below a
dollar (``$0.0000021``, ``$0.000104``, ``$0.0312``) and cents from a dollar on (``$1.50``,
``$1,234.57``) read right at every size. ``None`` is a price not known: it reads ``unknown``,
never ``$0``. It imports nothing from workbench, so every layer may use it.
"""

from __future__ import annotations

import math

__all__ = ["REPLAY", "spent", "usd"]

#: How the cost of a replay reads: its calls were answered from a recording, so it spent
#: nothing — as budgets, ``workbench report cost`` and ``/metrics`` count it.
REPLAY = "$0 (replay)"

_DIGITS = 3


def usd(amount: float | None, *, signed: bool = False) -> str:
    """``$0.0000021``, ``$0.000104``, ``$1.50``, ``$1,234.57``; ``$0`` for zero; ``unknown`` for
    ``None``. ``signed`` puts ``+`` before an amount that is not negative (a change)."""
    if amount is None:
        return "unknown"
    sign = "-" if amount < 0 else ("+" if signed else "")
    value = abs(amount)
    if value == 0:
        return f"{sign}$0"
    if value >= 1:
        return f"{sign}${value:,.2f}"
    # Enough places for three significant digits, never scientific notation ($2.1e-06).
    places = _DIGITS - 1 - math.floor(math.log10(value))
    whole, _, fraction = f"{value:.{places}f}".partition(".")
    fraction = fraction.rstrip("0").ljust(2, "0")  # $0.50, not $0.5 nor $0.500
    return f"{sign}${whole}.{fraction}"


def spent(cost: float | None, *, replay: bool) -> str:
    """What a run or a call cost, as every view shows it: :data:`REPLAY` for a replay (or a
    call answered from a recording), else :func:`usd` of ``cost``."""
    return REPLAY if replay else usd(cost)
