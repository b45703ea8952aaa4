"""``workbench report cost`` and ``workbench serve-metrics``: the metrics and cost commands.

Click commands that ``workbench.cli`` registers (``cli.add_command``); each calls one library
function. A :class:`~workbench.exceptions.WorkbenchError` raised here becomes one ``error: ...``
line through the CLI's group, as for every other command.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import click
import orjson
from rich.console import Console
from rich.table import Table

from workbench._jsonout import echo_json
from workbench._money import usd
from workbench.store import DEFAULT_PATH, resolve_store_path

__all__ = ["report", "serve_metrics_command"]

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
# As in workbench.cli: rich renders for 80 columns when stdout is not a terminal.
_PIPE_WIDTH = 160


def _console() -> Console:
    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(highlight=False, width=_PIPE_WIDTH)
    return console


_DB_HELP = (
    f"Store file. Default: $WORKBENCH_DB, else store.path in workbench.yaml, else {DEFAULT_PATH}."
)


def _date(ctx: click.Context, param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a date; write it as YYYY-MM-DD, e.g. 2024-01-15", ctx, param
        ) from None


@click.group(context_settings=_CONTEXT)
def report() -> None:
    """Reports read from the store: what model calls cost."""


@report.command("cost")
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
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default=None, help=_DB_HELP)
def report_cost(day: date | None, days: int | None, as_json: bool, db: Path | None) -> None:
    """Show one day's cost of model calls by model, pipeline and user, and the trend.

    Replays cost nothing and are left out; calls whose price is unknown are counted apart,
    never as $0. With --json: {"daily": {...}, "trends": {...} (with --days)}.
    """
    from workbench.monitoring._cost_report import CostReporter

    reporter = CostReporter(resolve_store_path(db))
    daily = reporter.get_daily_report(day)
    trends = reporter.get_cost_trends(days, end=daily.date) if days is not None else None
    if as_json:
        value = {"daily": daily.to_json()}
        if trends is not None:
            value["trends"] = trends.to_json()
        echo_json(value)
        return
    console = _console()
    console.print(
        f"[bold]Cost of {daily.date.isoformat()}[/] ({daily.timezone}): "
        f"[bold]{usd(daily.total_cost)}[/] over {daily.calls} model calls, "
        f"{daily.input_tokens:,} input / {daily.output_tokens:,} output tokens"
    )
    if daily.unpriced_calls:
        console.print(
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
            console.print(_cost_table(f"By {title}", title, table, daily.total_cost))
    if trends is not None:
        arrow = {"increasing": "↑", "decreasing": "↓"}.get(trends.trend_direction, "→")
        console.print(
            f"\n[bold]Last {trends.days} days[/] ({trends.start} to {trends.end}): "
            f"{usd(trends.total_cost)} in all, average {usd(trends.avg_daily_cost)} a day, "
            f"trend {arrow} {trends.trend_direction} ({trends.trend_percentage:+.1f}%)"
        )
        daily_table = Table("day", "cost", box=None)
        for when, cost in trends.daily_costs.items():
            daily_table.add_row(when.isoformat(), usd(cost))
        console.print(daily_table)


def _cost_table(title: str, column: str, costs: dict[str, float], total: float) -> Table:
    table = Table(column, "cost", "share", title=title, title_justify="left", box=None)
    for name, cost in costs.items():
        share = f"{cost / total:.0%}" if total else "-"
        table.add_row(name, usd(cost), share)
    return table


@click.command("serve-metrics", context_settings=_CONTEXT)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port to listen on. Default: metrics.port in workbench.yaml, else 9464.",
)
@click.option(
    "--host",
    default=None,
    help="Address to listen on. Default: metrics.host in workbench.yaml, else 127.0.0.1.",
)
@click.option(
    "--cache",
    "cache_s",
    type=click.FloatRange(0),
    default=5.0,
    show_default=True,
    help="Seconds a scrape's answer is reused, so several scrapers share one pass.",
)
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default=None, help=_DB_HELP)
@click.option(
    "--json", "as_json", is_flag=True, help='Print {"url", "store", "pid"} as one JSON line.'
)
def serve_metrics_command(
    port: int | None, host: str | None, cache_s: float, db: Path | None, as_json: bool
) -> None:
    """Serve /metrics for Prometheus, computed from the store, until Ctrl-C.

    A sidecar for every process that records into the store: executions, steps and model
    calls (counts, durations, tokens, cost, error rates) and this machine's memory, CPU, disk
    and network. Also serves the other monitoring endpoints (e.g. /health).
    """
    import workbench.monitoring  # noqa: F401 - registers the modules' routes
    from workbench.config import load_config
    from workbench.monitoring._server import MetricsServer
    from workbench.monitoring._store_metrics import store_registry

    config = load_config()
    path = resolve_store_path(db)
    registry, collector = store_registry(path, config, cache_s=cache_s)
    server = MetricsServer(
        config.metrics.host if host is None else host,
        config.metrics.port if port is None else port,
        registry=registry,
        config=config,
        store_path=path,
    )
    if as_json:  # one line a supervisor or script can read the port from
        click.echo(orjson.dumps({"url": server.url, "store": str(path), "pid": os.getpid()}))
    else:
        click.echo(f"serving {server.url} for store {path} (Ctrl-C to stop)", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        collector.close()
