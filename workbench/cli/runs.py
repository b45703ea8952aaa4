"""``workbench runs list|show``: the recorded executions, listed and shown one by one.

Owns the commands' options and output; what the records hold is the store's business, how
they look is ``workbench._render``'s.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from workbench import _render
from workbench._when import parse_when
from workbench.cli._options import (
    CONTEXT,
    CommandGroup,
    console,
    db_option,
    echo_json,
    execution_ids,
    json_option,
    open_existing,
)

__all__ = ["runs_group"]

_STATUSES = ("running", "completed", "failed", "interrupted")


def _when_option(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    # A callback rather than a ParamType subclass: ParamType is generic only from click 8.2 on.
    if value is None:
        return None
    try:
        return parse_when(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


@click.group("runs", cls=CommandGroup, context_settings=CONTEXT)
def runs_group() -> None:
    """List recorded executions and show one in detail."""


@runs_group.command("list")
@click.option("--pipeline", "pipeline_id", metavar="P", help="Only executions of pipeline P.")
@click.option("--status", type=click.Choice(_STATUSES), help="Only executions with this status.")
@click.option("--user", "user_id", metavar="U", help="Only executions recorded for user U.")
@click.option(
    "--since",
    metavar="WHEN",
    callback=_when_option,
    help="Only executions started at or after WHEN: 30m, 1h, 2d, 1w ago, or an ISO date or "
    "datetime (local time unless it has an offset).",
)
@click.option(
    "--until",
    metavar="WHEN",
    callback=_when_option,
    help="Only executions started before WHEN (same forms as --since).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    metavar="N",
    default=50,
    show_default=True,
    help="Show at most this many, newest first.",
)
@json_option()
@db_option()
def list_runs(
    pipeline_id: str | None,
    status: str | None,
    user_id: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    as_json: bool,
    db: Path | None,
) -> None:
    """List recorded executions, newest first.

    Costs read "unknown" when a model's price is not known (it is never shown as $0), and
    "$0 (replay)" for a replay, which spent nothing (as `workbench report cost` counts). With
    --json, each execution is an object with the fields of workbench.Execution, without its
    steps, calls, states and logs (use `runs show ID --json` for those). Executions whose
    record is damaged are left out and named in a warning on stderr.
    """
    with open_existing(db) as store:
        executions = store.list_executions(
            pipeline_id=pipeline_id,
            status=status,
            user_id=user_id,
            since=since,
            until=until,
            limit=limit,
        )
    if executions.damaged:
        damaged = ", ".join(sorted(executions.damaged))
        click.secho(
            f"warning: {len(executions.damaged)} execution(s) with a damaged record left out: "
            f"{damaged}; `workbench runs show ID` says what is wrong; restore {store.path} "
            f"from a backup, or record those runs again",
            fg="yellow",
            err=True,
        )
    if as_json:
        echo_json(_render.listing_json(executions))
        return
    out = console()
    if not executions:
        out.print(f"No executions in {store.path} match.", style="dim")
        return
    out.print(_render.executions_table(executions))


@runs_group.command("show")
@click.argument("execution_id", metavar="ID", shell_complete=execution_ids)
@json_option()
@db_option()
def show_run(execution_id: str, as_json: bool, db: Path | None) -> None:
    """Show one execution: header, steps, model calls, states, errors and logs.

    With --json, print the whole execution (every field of workbench.Execution and its
    children). The bytes of streamed chunks are UTF-8 text, or {"__bytes__": base64} for a
    chunk that is not valid UTF-8 on its own.
    """
    with open_existing(db) as store:
        execution = store.get_execution(execution_id)
    if as_json:
        echo_json(_render.execution_json(execution))
        return
    console().print(_render.execution_view(execution))
