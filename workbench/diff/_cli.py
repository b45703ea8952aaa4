"""``workbench diff A B``: the command, as a click command that ``workbench.cli`` registers.

Owns the command's arguments, its output (rich, or ``--json``) and its exit code, as
``diff(1)``: 0 when the runs are equal in what was compared, 1 when they differ, 2 for trouble.
Errors (no store, an unknown id, an execution compared with itself) are WorkbenchErrors, turned
into one ``error: ...`` line (JSON under ``--json``) and exit code 2 by the CLI's group, as for
every other command.
"""

from __future__ import annotations

import os
from pathlib import Path

import click
from rich.console import Console

from workbench._complete import execution_ids
from workbench._jsonout import echo_json
from workbench.diff._engine import compare_executions
from workbench.diff._model import CATEGORIES, Category
from workbench.exceptions import StoreError
from workbench.store import DEFAULT_PATH, Store, resolve_store_path

__all__ = ["diff_command"]

# As in workbench.cli: rich renders for 80 columns when stdout is not a terminal.
_PIPE_WIDTH = 160


def _console() -> Console:
    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(highlight=False, width=_PIPE_WIDTH)
    return console


@click.command("diff", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("a", metavar="A", shell_complete=execution_ids)
@click.argument("b", metavar="B", shell_complete=execution_ids)
@click.option("--json", "as_json", is_flag=True, help="Print the diff as JSON (schema 1).")
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
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"Store file. Default: $WORKBENCH_DB, else store.path in workbench.yaml, "
    f"else {DEFAULT_PATH}.",
)
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
    path = resolve_store_path(db)
    if not path.exists():
        raise StoreError(
            f"no store at {path}; point --db or WORKBENCH_DB at the store holding {a} and {b}"
        )
    with Store(path) as store:
        diff = compare_executions(a, b, store=store, ignore=ignore)
    if only is not None:
        diff = diff.only(only)
    if as_json:
        echo_json(diff.to_json())
    else:
        _console().print(diff)
    different = bool(diff) or (only in ("cost", "latency") and bool(diff.deltas))
    raise click.exceptions.Exit(1 if different else 0)
