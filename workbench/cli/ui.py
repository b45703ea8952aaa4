"""``workbench ui``: serve the local web UI over the store.

Owns the command's options and its start-up line; the server is ``workbench.ui._serve``'s
(imported when the command runs, so the CLI never loads Starlette otherwise). A missing extra,
a store that cannot be opened or a port in use is a
:class:`~workbench.exceptions.WorkbenchError`: one ``error: ...`` line and exit code 2.
"""

from __future__ import annotations

from pathlib import Path

import click

from workbench.cli._options import CONTEXT, db_option

__all__ = ["ui_command"]


@click.command("ui", context_settings=CONTEXT)
@db_option()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Port to listen on (0 picks a free one).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Another than loopback serves every recorded run to anyone who "
    "can reach it (a warning says so).",
)
@click.option("--open", "open_browser", is_flag=True, help="Open the UI in a web browser.")
def ui_command(db: Path | None, port: int, host: str, open_browser: bool) -> None:
    """Serve a local web UI over the store: runs, traces, diffs, costs and profiles.

    Pages for the run list (filters, sort, live refresh), a run's trace waterfall with its
    steps and model calls, replays started from the page, the diff of two runs, daily costs
    and budgets, and profiles. Needs the ui extra: pip install 'pipeline-workbench[ui]'.
    """
    from workbench.ui._serve import serve

    def announce(line: str) -> None:
        warning = line.startswith("warning")
        click.secho(line, fg="yellow" if warning else None, err=warning)

    serve(db, host=host, port=port, open_browser=open_browser, announce=announce)
