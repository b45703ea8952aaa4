"""``workbench store export|import|text|prune``: a store's recordings as files, and its upkeep.

A click group that ``workbench.cli`` adds. Each command calls one function of
``workbench.store._export`` or one :class:`Store` method; errors are WorkbenchErrors, turned
into one ``error: ...`` line by the CLI's top-level group.
"""

from __future__ import annotations

from pathlib import Path

import click

from workbench.exceptions import StoreError
from workbench.store._store import DEFAULT_PATH, Store, resolve_store_path

__all__ = ["store_group"]

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _db_option(fn: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "--db",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help=f"Store file. Default: $WORKBENCH_DB, else store.path in workbench.yaml, "
        f"else {DEFAULT_PATH}.",
    )(fn)


def _existing(db: Path | None) -> Store:
    path = resolve_store_path(db)
    if not path.exists():
        raise StoreError(f"no store at {path}; point --db or WORKBENCH_DB at an existing store")
    return Store(path)


@click.group("store", context_settings=_CONTEXT)
def store_group() -> None:
    """A store's executions as reviewable JSON files, and keeping the store small.

    `export` writes one canonical JSON file per execution, `import` reads them back, `text`
    prints a whole store for `git diff`, `prune` deletes old executions.
    """


@store_group.command("export")
@click.option(
    "--execution",
    "execution_ids",
    multiple=True,
    metavar="ID",
    help="Export this execution (repeatable). Default: every execution.",
)
@click.option("--pipeline", "pipeline_id", metavar="P", help="Only executions of pipeline P.")
@click.option(
    "--output",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder to write <execution id>.json files into.",
)
@click.option("--stdout", "to_stdout", is_flag=True, help="Print the files one after another.")
@_db_option
def export_command(
    execution_ids: tuple[str, ...],
    pipeline_id: str | None,
    output: Path | None,
    to_stdout: bool,
    db: Path | None,
) -> None:
    """Write one canonical, pretty JSON file per execution.

    Each holds the execution's requests, responses, stream chunks, steps, states, spans and
    logs (secrets already redacted). The same execution always gives the same bytes, so a
    recording's change reads as a diff in a pull request.
    """
    from workbench.store._export import export_executions, export_text

    if (output is None) == (not to_stdout):
        raise click.UsageError("give one of -o DIR or --stdout")
    with _existing(db) as store:
        if output is None:
            text = export_text(store, execution_ids=execution_ids, pipeline_id=pipeline_id)
            click.echo(text, nl=False)
            return
        written = export_executions(
            store, output, execution_ids=execution_ids, pipeline_id=pipeline_id
        )
    click.echo(f"wrote {len(written)} execution(s) to {output}", err=True)


@store_group.command("import")
@click.argument("folder", type=click.Path(path_type=Path), metavar="DIR")
@_db_option
def import_command(folder: Path, db: Path | None) -> None:
    """Read files `workbench store export` wrote into the store.

    DIR is a folder of them, or one file; each replaces an execution of the same id. Their
    calls' cost is not counted again in this store's spend.
    """
    from workbench.store._export import import_executions

    with Store(resolve_store_path(db)) as store:
        ids = import_executions(store, folder)
    click.echo(f"imported {len(ids)} execution(s) into {resolve_store_path(db)}", err=True)


@store_group.command("text")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE")
def text_command(path: Path) -> None:
    """Print store FILE as text, for git diff.

    Every execution as canonical JSON, oldest first: git's textconv for a committed store
    (`git config diff.workbench.textconv "workbench store text"`, and `*.db diff=workbench`
    in .gitattributes).
    """
    from workbench.store._export import store_text

    with _existing(path) as store:
        click.echo(store_text(store), nl=False)


@store_group.command("prune")
@click.option(
    "--keep-last",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Remove executions beyond the N newest of each pipeline.",
)
@click.option(
    "--older-than",
    default=None,
    metavar="AGE",
    help="Remove executions started before then: 30d, 2w, 12h, or an ISO date.",
)
@click.option("--replays", is_flag=True, help="Remove replays (executions with a replay_of).")
@click.option("--dry-run", is_flag=True, help="Print what would be removed; remove nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of lines.")
@_db_option
def prune_command(
    keep_last: int | None,
    older_than: str | None,
    replays: bool,
    dry_run: bool,
    as_json: bool,
    db: Path | None,
) -> None:
    """Delete old executions to keep a store small.

    An execution goes when it matches every option given (--older-than 30d --replays: the
    replays older than 30 days), with its steps, calls, states, logs and the blobs nothing
    else names; running executions stay. The file is compacted afterwards.
    """
    with _existing(db) as store:
        pruned = store.prune(
            keep_last=keep_last, older_than=older_than, replays=replays, dry_run=dry_run
        )
    if as_json:
        from workbench._jsonout import echo_json

        echo_json(
            {
                "dry_run": dry_run,
                "executions": [
                    {
                        "id": e.id,
                        "pipeline_id": e.pipeline_id,
                        "status": e.status,
                        "started_at": e.started_at,
                    }
                    for e in pruned.executions
                ],
                "blobs": pruned.blobs,
                "bytes_before": pruned.bytes_before,
                "bytes_after": pruned.bytes_after,
            }
        )
        return
    verb = "would remove" if dry_run else "removed"
    for execution in pruned.executions:
        click.echo(f"{verb} {execution.id}  {execution.pipeline_id}  {execution.status}")
    size = (
        f"{pruned.bytes_before:,} bytes"
        if dry_run or not pruned.executions
        else f"{pruned.bytes_before:,} -> {pruned.bytes_after:,} bytes"
    )
    blobs = "" if dry_run else f" and {pruned.blobs} blob(s)"
    click.echo(f"{verb} {len(pruned.executions)} execution(s){blobs}; store {size}")
