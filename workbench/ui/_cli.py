"""``workbench ui``: the click command that serves the web UI (registered by ``workbench.cli``).

A thin layer over :func:`workbench.ui._serve.serve`; a missing extra, a store that cannot be
opened or a port in use is a :class:`~workbench.exceptions.WorkbenchError`, which the CLI's
group turns into one ``error: ...`` line and a non-zero exit.
"""

from __future__ import annotations

from pathlib import Path

import click

from workbench.store import DEFAULT_PATH

__all__ = ["ui_command"]

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.command("ui", context_settings=_CONTEXT)
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"Store file. Default: $WORKBENCH_DB, else store.path in workbench.yaml, "
    f"else {DEFAULT_PATH}.",
)
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
