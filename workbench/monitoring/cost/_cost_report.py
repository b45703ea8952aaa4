"""``CostReporter``: what model calls cost per day, and where the daily cost is heading.

Owns the daily report (total, by model, by pipeline, by user) and the trend over the last N
days, read from the store's ``cost_ledger`` (the priced calls, replays left out — see
``workbench.store._schema``). Days are those of ``cost_tracking.timezone`` (UTC unless set),
the same days the budgets count in. Calls whose price is unknown are counted apart
(``unpriced_calls``) and never as $0.

The trend is a least-squares line through the daily costs: ``trend_percentage`` is how much
that line rises (or falls) from the first day to the last, relative to the average daily cost;
within ±5% the direction is ``stable``.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from workbench.exceptions import ConfigError, StoreError

if TYPE_CHECKING:
    from workbench.config import WorkbenchConfig
    from workbench.store import Store

__all__ = ["CostReporter", "CostTrends", "DailyCostReport"]

#: A trend within this many percent either way is ``stable``.
STABLE_PERCENT = 5.0

_NO_USER = "(no user)"
_UNKNOWN = "unknown"


@dataclass(frozen=True)
class DailyCostReport:
    """One day's cost of model calls, in US dollars."""

    date: date
    timezone: str
    total_cost: float
    cost_by_model: dict[str, float]
    cost_by_pipeline: dict[str, float]
    cost_by_user: dict[str, float]  #: runs recorded without ``user_id`` under ``"(no user)"``
    calls: int
    unpriced_calls: int  #: calls whose price is unknown: not in any total
    input_tokens: int
    output_tokens: int

    def to_json(self) -> dict[str, Any]:
        return {
            "date": self.date.isoformat(),
            "timezone": self.timezone,
            "total_cost": self.total_cost,
            "cost_by_model": self.cost_by_model,
            "cost_by_pipeline": self.cost_by_pipeline,
            "cost_by_user": self.cost_by_user,
            "calls": self.calls,
            "unpriced_calls": self.unpriced_calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
        }


@dataclass(frozen=True)
class CostTrends:
    """The daily cost over ``days`` days ending ``end`` (inclusive), and its direction."""

    days: int
    start: date
    end: date
    timezone: str
    daily_costs: dict[date, float]  #: every day of the window, days without calls at 0
    total_cost: float
    avg_daily_cost: float
    trend_direction: str  #: ``increasing``, ``decreasing`` or ``stable``
    trend_percentage: float  #: the fitted line's change over the window / average, in %

    def to_json(self) -> dict[str, Any]:
        return {
            "days": self.days,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "timezone": self.timezone,
            "daily_costs": {day.isoformat(): cost for day, cost in self.daily_costs.items()},
            "total_cost": self.total_cost,
            "avg_daily_cost": self.avg_daily_cost,
            "trend_direction": self.trend_direction,
            "trend_percentage": self.trend_percentage,
        }


def trend(costs: list[float]) -> tuple[str, float]:
    """``(direction, percentage)`` of a least-squares line through ``costs`` (one per day)."""
    n = len(costs)
    mean = sum(costs) / n if n else 0.0
    if n < 2 or mean <= 0:
        return "stable", 0.0
    x_mean = (n - 1) / 2
    slope = sum((i - x_mean) * (c - mean) for i, c in enumerate(costs)) / sum(
        (i - x_mean) ** 2 for i in range(n)
    )
    percentage = slope * (n - 1) / mean * 100
    if abs(percentage) < STABLE_PERCENT:
        return "stable", percentage
    return ("increasing" if percentage > 0 else "decreasing"), percentage


class CostReporter:
    """Cost reports from a store (the default store unless given one or a path).

    >>> reporter = CostReporter()
    >>> reporter.get_daily_report(date="2024-01-15").cost_by_model
    >>> reporter.get_cost_trends(days=30).trend_direction
    """

    def __init__(
        self,
        store: Store | str | os.PathLike[str] | None = None,
        *,
        timezone: str | None = None,
        config: WorkbenchConfig | None = None,
    ) -> None:
        from workbench.store import Store, open_store, resolve_store_path

        if config is None:
            from workbench.config import load_config

            config = load_config()
        name = timezone or config.cost_tracking.timezone
        try:
            self.tz = ZoneInfo(name)
        except (ValueError, KeyError):
            raise ConfigError(
                f"timezone {name!r} is not a time zone; use an IANA name such as 'UTC' or "
                f"'Europe/Paris'"
            ) from None
        if isinstance(store, Store):
            self._store = store
        else:
            path = resolve_store_path(store)
            if not path.exists():  # a Path, or a URL (a database is the server's to find)
                raise StoreError(
                    f"no store at {path}; record a run first, or pass the store's path "
                    f"(CostReporter(store=...), --db, WORKBENCH_DB or store.path)"
                )
            self._store = open_store(path)  # an older store gains the cost ledger on opening
        #: The store read: its file, or its URL (a password masked).
        self.path: Any = self._store.path

    def _ledger(self) -> Store:
        self._store.flush()  # this process's calls too, not only those already written
        return self._store

    def _day(self, value: date | str | None) -> date:
        if value is None:
            return datetime.now(self.tz).date()
        if isinstance(value, datetime):
            return value.astimezone(self.tz).date()
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"date {value!r} is not a date; write it as YYYY-MM-DD, e.g. 2024-01-15"
            ) from None

    def _bounds(self, day: date) -> tuple[float, float]:
        start = datetime(day.year, day.month, day.day, tzinfo=self.tz)
        return start.timestamp(), (start + timedelta(days=1)).timestamp()

    def get_daily_report(self, date: date | str | None = None) -> DailyCostReport:
        """The cost of ``date`` (a ``datetime.date`` or ``"YYYY-MM-DD"``; today by default)."""
        day = self._day(date)
        start, end = self._bounds(day)
        by_model: dict[str, float] = {}
        by_pipeline: dict[str, float] = {}
        by_user: dict[str, float] = {}
        calls = unpriced = tokens_in = tokens_out = 0
        total = 0.0
        for group in self._ledger().cost_groups(since=start, until=end):
            calls += group.calls
            unpriced += group.unpriced_calls
            tokens_in += group.input_tokens
            tokens_out += group.output_tokens
            for table, key in (
                (by_model, group.model or _UNKNOWN),
                (by_pipeline, group.pipeline_id or _UNKNOWN),
                (by_user, group.user_id or _NO_USER),
            ):
                table[key] = table.get(key, 0.0) + group.cost_usd
            total += group.cost_usd
        return DailyCostReport(
            date=day,
            timezone=self.tz.key,
            total_cost=total,
            cost_by_model=_by_cost(by_model),
            cost_by_pipeline=_by_cost(by_pipeline),
            cost_by_user=_by_cost(by_user),
            calls=calls,
            unpriced_calls=unpriced,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
        )

    def get_cost_trends(self, days: int = 30, *, end: date | str | None = None) -> CostTrends:
        """The daily cost of the ``days`` days up to ``end`` (today by default, counted as a
        day so far) with its average, direction and percentage."""
        if not isinstance(days, int) or isinstance(days, bool) or days < 1:
            raise ConfigError(f"days must be a whole number of days >= 1, got {days!r}")
        last = self._day(end)
        first = last - timedelta(days=days - 1)
        edges = [self._bounds(first + timedelta(days=i))[0] for i in range(days)]
        edges.append(self._bounds(last)[1])
        costs = self._ledger().ledger_sums(edges)
        total = sum(costs)
        direction, percentage = trend(costs)
        return CostTrends(
            days=days,
            start=first,
            end=last,
            timezone=self.tz.key,
            daily_costs={first + timedelta(days=i): cost for i, cost in enumerate(costs)},
            total_cost=total,
            avg_daily_cost=total / days,
            trend_direction=direction,
            trend_percentage=percentage,
        )

    async def aget_daily_report(self, date: date | str | None = None) -> DailyCostReport:
        """:meth:`get_daily_report` off the event loop (``await reporter.aget_daily_report()``)."""
        return await asyncio.to_thread(self.get_daily_report, date)

    async def aget_cost_trends(
        self, days: int = 30, *, end: date | str | None = None
    ) -> CostTrends:
        """:meth:`get_cost_trends` off the event loop."""
        return await asyncio.to_thread(self.get_cost_trends, days, end=end)


def _by_cost(table: dict[str, float]) -> dict[str, float]:
    return dict(sorted(table.items(), key=lambda item: (-item[1], item[0])))
