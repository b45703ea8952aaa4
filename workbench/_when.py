"""Moments as people type them: ``30m``, ``2d`` or ``1w`` ago, or an ISO date or datetime.

One parser for the CLI's ``--since``/``--until`` and the store's ``list_executions(since=...)``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

__all__ = ["parse_when"]

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_when(text: str, *, now: datetime | None = None) -> datetime:
    """A moment from ``30m``/``1h``/``2d``/``1w`` ago, or an ISO date or datetime.

    ISO values without a time zone are local time, as the CLI prints times. Raises
    ``ValueError`` with the allowed forms.
    """
    cleaned = text.strip().lower()
    match = _RELATIVE.match(cleaned)
    if match:
        moment = now or datetime.now(UTC)
        return moment - timedelta(seconds=float(match[1]) * _UNIT_S[match[2]])
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: use a relative form like 30m, 1h, 2d or 1w, or an ISO "
            f"date or datetime like 2024-05-01 or 2024-05-01T13:30"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.astimezone()
