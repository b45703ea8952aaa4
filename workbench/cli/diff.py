"""``workbench diff A B``: compare two executions, step by step.

Owns the command's arguments, its output (rich, or ``--json``) and its exit code, as
``diff(1)``: 0 when the runs are equal in what was compared, 1 when they differ, 2 for trouble.
Errors (no store, an unknown id, an execution compared with itself) are WorkbenchErrors, turned
into one ``error: ...`` line (JSON under ``--json``) and exit code 2 by the CLI's group, as for
every other command. The comparison is :func:`workbench.diff.compare_executions`'s.
"""

from __future__ import annotations

from pathlib import Path

import click

from workbench.cli._options import (
    CONTEXT,
    console,
    db_option,
    echo_json,
    execution_ids,
    json_option,
    open_existing,
)
from workbench.diff._engine import compare_executions
from workbench.diff._model import CATEGORIES, Category
from workbench.store._store import DB_ENV

__all__ = ["diff_command"]


@click.command("diff", context_settings=CONTEXT)
@click.argument("a", metavar="A", shell_complete=execution_ids)
@click.argument("b", metavar="B", shell_complete=execution_ids)
@json_option("Print the diff as JSON (schema 1).")
@click.option(
    "--only",
    type=click.Choice(CATEGORIES),
    default=None,
    help="Only outputs (and step results), prompts (model requests), states, cost (cost and "
    "token deltas) or latency (time deltas).",
)
@click.option(
    "--ignore",
    "ignore",
    multiple=True,
    metavar="PATH",
    help="Leave out differences under PATH, e.g. 'steps.*.result.timestamp' (* is one path "
    "segment, ** any number). Repeatable.",
)
@db_option()
def diff_command(
    a: str,
    b: str,
    as_json: bool,
    only: Category | None,
    ignore: tuple[str, ...],
    db: Path | None,
) -> None:
    """Compare execution B with execution A, step by step.

    Exit code 0 when they are equal in content (or, with --only cost/latency, in those
    numbers), 1 when they differ, 2 when they could not be compared (an error).
    """
    fix = f"point --db or {DB_ENV} at the store holding {a} and {b}"
    with open_existing(db, fix=fix) as store:
        diff = compare_executions(a, b, store=store, ignore=ignore)
    if only is not None:
        diff = diff.only(only)
    if as_json:
        echo_json(diff.to_json())
    else:
        console().print(diff)
    different = bool(diff) or (only in ("cost", "latency") and bool(diff.deltas))
    raise click.exceptions.Exit(1 if different else 0)
