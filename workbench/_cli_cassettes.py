"""``workbench store import-cassette|export-cassette``: vcrpy cassettes in and out.

Two click commands that ``workbench.cli`` adds to the ``store`` group; each calls one function
of ``workbench.testing._cassette_files``. Errors are WorkbenchErrors, turned into one
``error: ...`` line by the CLI's top-level group.
"""

from __future__ import annotations

from pathlib import Path

import click

from workbench.store import DEFAULT_PATH, Store, resolve_store_path

__all__ = ["export_cassette_command", "import_cassette_command"]

_DB_HELP = (
    f"Store file. Default for import: a pytest-recording cassette's module recordings "
    f"(<dir>/recordings/<module>.db), any other into $WORKBENCH_DB, store.path in "
    f"workbench.yaml, else {DEFAULT_PATH}."
)


@click.command("import-cassette")
@click.argument(
    "cassettes",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    metavar="CASSETTE...",
)
@click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default=None, help=_DB_HELP)
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


@click.command("export-cassette")
@click.argument("execution_id", metavar="ID")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The cassette file to write (YAML, as vcrpy writes it).",
)
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"Store file. Default: $WORKBENCH_DB, else store.path in workbench.yaml, else "
    f"{DEFAULT_PATH}.",
)
def export_cassette_command(execution_id: str, output: Path, db: Path | None) -> None:
    """Write an execution's model calls as a vcrpy cassette.

    For a test's recording, the calls of the executions it started come too, in the order
    they were made; vcrpy (or pytest-recording) plays the file.
    """
    from workbench.testing._cassette_files import export_cassette

    path = resolve_store_path(db)
    if not path.exists():
        raise click.ClickException(f"no store at {path}; point --db at an existing store")
    with Store(path) as store:
        count = export_cassette(store, execution_id, output)
    click.echo(f"wrote {count} interaction(s) to {output}", err=True)
