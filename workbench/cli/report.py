"""``workbench report cost``: what model calls cost, read from the store.

Owns the command's options and its tables; the figures are
:class:`workbench.monitoring.CostReporter`'s.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click
from rich.table import Table

from workbench._money import usd
from workbench.cli._options import CONTEXT, console, db_option, echo_json, json_option
from workbench.store import resolve_store_path

__all__ = ["report_group"]


def _date(ctx: click.Context, param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a date; write it as YYYY-MM-DD, e.g. 2024-01-15", ctx, param
        ) from None


@click.group("report", context_settings=CONTEXT)
def report_group() -> None:
    """Reports read from the store: what model calls cost."""


@report_group.command("cost")
@click.option(
    "--date",
    "day",
    metavar="YYYY-MM-DD",
    callback=_date,
    help="The day to report (in cost_tracking.timezone, UTC by default). Default: today.",
)
@click.option(
    "--days",
    type=click.IntRange(1, 3660),
    metavar="N",
    default=None,
    help="Also show the daily cost of the N days ending --date, with its average and trend.",
)
@json_option()
@db_option()
def report_cost(day: date | None, days: int | None, as_json: bool, db: Path | None) -> None:
    """Show one day's cost of model calls by model, pipeline and user, and the trend.

    Replays cost nothing and are left out; calls whose price is unknown are counted apart,
    never as $0. With --json: {"daily": {...}, "trends": {...} (with --days)}.
    """
    from workbench.monitoring.cost._cost_report import CostReporter

    reporter = CostReporter(resolve_store_path(db))
    daily = reporter.get_daily_report(day)
    trends = reporter.get_cost_trends(days, end=daily.date) if days is not None else None
    if as_json:
        value = {"daily": daily.to_json()}
        if trends is not None:
            value["trends"] = trends.to_json()
        echo_json(value)
        return
    out = console()
    out.print(
        f"[bold]Cost of {daily.date.isoformat()}[/] ({daily.timezone}): "
        f"[bold]{usd(daily.total_cost)}[/] over {daily.calls} model calls, "
        f"{daily.input_tokens:,} input / {daily.output_tokens:,} output tokens"
    )
    if daily.unpriced_calls:
        out.print(
            f"{daily.unpriced_calls} calls have no known price and are not in the totals "
            f"(set cost_tracking.providers.<provider>.models.<model> prices)",
            style="yellow",
        )
    for title, table in (
        ("model", daily.cost_by_model),
        ("pipeline", daily.cost_by_pipeline),
        ("user", daily.cost_by_user),
    ):
        if table:
            out.print(_cost_table(f"By {title}", title, table, daily.total_cost))
    if trends is not None:
        arrow = {"increasing": "↑", "decreasing": "↓"}.get(trends.trend_direction, "→")
        out.print(
            f"\n[bold]Last {trends.days} days[/] ({trends.start} to {trends.end}): "
            f"{usd(trends.total_cost)} in all, average {usd(trends.avg_daily_cost)} a day, "
            f"trend {arrow} {trends.trend_direction} ({trends.trend_percentage:+.1f}%)"
        )
        daily_table = Table("day", "cost", box=None)
        for when, cost in trends.daily_costs.items():
            daily_table.add_row(when.isoformat(), usd(cost))
        out.print(daily_table)


def _cost_table(title: str, column: str, costs: dict[str, float], total: float) -> Table:
    table = Table(column, "cost", "share", title=title, title_justify="left", box=None)
    for name, cost in costs.items():
        share = f"{cost / total:.0%}" if total else "-"
        table.add_row(name, usd(cost), share)
    return table
