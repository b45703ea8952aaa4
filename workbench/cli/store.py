"""``workbench store export|import|text|prune|import-cassette|export-cassette|migrate|info|copy``.

A store's recordings as reviewable files and its upkeep: each command calls one function of
``workbench.store._export`` or ``workbench.testing._cassette_files``, or one :class:`Store`
method. Errors are WorkbenchErrors, turned into one ``error: ...`` line by the CLI's group.
"""

from __future__ import annotations

from pathlib import Path

import click

from workbench.cli._options import (
    CONTEXT,
    db_option,
    echo_json,
    execution_ids,
    json_option,
    open_existing,
)
from workbench.store._store import DB_ENV, DEFAULT_PATH, Store, resolve_store_path

__all__ = ["store_group"]


@click.group("store", context_settings=CONTEXT)
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
@db_option()
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
    with open_existing(db) as store:
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
@db_option()
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

    with open_existing(path, fix="give the path of an existing store file") as store:
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
@json_option("Print JSON instead of lines.")
@db_option()
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
    with open_existing(db) as store:
        pruned = store.prune(
            keep_last=keep_last, older_than=older_than, replays=replays, dry_run=dry_run
        )
    if as_json:
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


# -- vcrpy cassettes in and out ----------------------------------------------------------------


@store_group.command("import-cassette")
@click.argument(
    "cassettes",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    metavar="CASSETTE...",
)
@db_option(
    f"Store file. Default for import: a pytest-recording cassette's module recordings "
    f"(<dir>/recordings/<module>.db), any other into ${DB_ENV}, store.path in "
    f"workbench.yaml, else {DEFAULT_PATH}."
)
def import_cassette_command(cassettes: tuple[Path, ...], db: Path | None) -> None:
    """Turn vcrpy / pytest-recording cassettes into recordings.

    Each cassette becomes one recording: for tests/cassettes/test_x/test_a.yaml, the recording
    of test tests/test_x.py::test_a in tests/recordings/test_x.db, which the pytest plugin
    replays. Run it from the directory pytest runs from (node ids are relative to it).
    """
    from workbench.testing._cassette_files import import_cassette

    store = Store(resolve_store_path(db)) if db is not None else None
    try:
        for path in cassettes:
            done = import_cassette(path, store=store)
            click.echo(f"{path} -> {done.store} as {done.name} ({done.calls} call(s))")
    finally:
        if store is not None:
            store.close()


@store_group.command("export-cassette")
@click.argument("execution_id", metavar="ID", shell_complete=execution_ids)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The cassette file to write (YAML, as vcrpy writes it).",
)
@db_option()
def export_cassette_command(execution_id: str, output: Path, db: Path | None) -> None:
    """Write an execution's model calls as a vcrpy cassette.

    For a test's recording, the calls of the executions it started come too, in the order
    they were made; vcrpy (or pytest-recording) plays the file.
    """
    from workbench.testing._cassette_files import export_cassette

    with open_existing(db) as store:
        count = export_cassette(store, execution_id, output)
    click.echo(f"wrote {count} interaction(s) to {output}", err=True)


@store_group.command("migrate")
@db_option()
def migrate_command(db: Path | None) -> None:
    """Bring a store's schema up to this workbench's.

    PostgreSQL stores are not upgraded when a process opens them (store.auto_migrate is off
    there by default): run this once, from one place, after upgrading workbench. A SQLite
    store is upgraded in place on open; this opens it.
    """
    from workbench.store._store import migrate_store

    done = migrate_store(db)
    where = resolve_store_path(db)
    if done:
        click.echo(f"store {where}: added {', '.join(done)}")
    else:
        click.echo(f"store {where} is up to date")


@store_group.command("info")
@json_option()
@db_option()
def info_command(as_json: bool, db: Path | None) -> None:
    """Print a store's backend, schema version, row counts and size."""
    with open_existing(db) as store:
        info = store.info()
    if as_json:
        echo_json(info)
        return
    click.echo(f"store    {info['url']}")
    click.echo(f"backend  {info['backend']}")
    click.echo(
        f"schema   version {info['schema_version']} "
        f"(this workbench reads up to {info['schema_version_supported']})"
    )
    click.echo(f"size     {info['bytes']:,} bytes")
    for table, count in info["counts"].items():
        click.echo(f"{table:<12} {count:>10,}")


@store_group.command("copy")
@click.argument("source", metavar="SRC")
@click.argument("target", metavar="DST")
@click.option(
    "--execution",
    "execution_ids",
    multiple=True,
    metavar="ID",
    help="Copy this execution (repeatable). Default: every execution matching the filters.",
)
@click.option("--pipeline", "pipeline_id", metavar="P", help="Only executions of pipeline P.")
@click.option(
    "--since", default=None, metavar="WHEN", help="Only executions started since: 2d, ISO date."
)
@json_option("Print the ids copied as JSON.")
def copy_command(
    source: str,
    target: str,
    execution_ids: tuple[str, ...],
    pipeline_id: str | None,
    since: str | None,
    as_json: bool,
) -> None:
    """Copy executions with everything they own from store SRC into store DST.

    SRC and DST are file paths or URLs (sqlite:///path, postgresql://…): a production slice
    from PostgreSQL into a local file to replay on a laptop, or local recordings up to the team
    database. Each execution replaces one of the same id in DST, so copying twice adds
    nothing; blobs are stored once; the calls add nothing to DST's spend.
    """
    from rich.progress import Progress

    from workbench.store._export import copy_store

    with open_existing(source) as src, Store(target) as dst:  # type: ignore[arg-type]
        ids = list(execution_ids) or [
            e.id for e in src.list_executions(pipeline_id=pipeline_id, since=since, limit=None)
        ]
        with Progress(transient=True, disable=as_json) as progress:
            task = progress.add_task("copying", total=len(ids))
            copied = copy_store(src, dst, ids, progress=lambda n: progress.advance(task, n))
    if as_json:
        echo_json({"copied": copied})
        return
    click.echo(f"copied {len(copied)} execution(s) from {src.path} to {dst.path}")
