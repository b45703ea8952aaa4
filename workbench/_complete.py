"""Shell completion of execution ids from the store, for the CLI's ``ID`` arguments.

Enable it as Click documents: ``eval "$(_WORKBENCH_COMPLETE=bash_source workbench)"`` in
``~/.bashrc`` (``zsh_source`` in ``~/.zshrc``, ``fish_source`` for fish). Completion reads the
store the command would read (``--db`` if typed, else ``WORKBENCH_DB``, ``workbench.yaml``, the
default) and offers its newest executions; it never creates a store and never fails aloud.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from click.shell_completion import CompletionItem

__all__ = ["execution_ids"]

#: How many of the newest executions completion looks through.
_NEWEST = 200


def execution_ids(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Execution ids starting with ``incomplete``, newest first, each with its pipeline."""
    from workbench.exceptions import WorkbenchError
    from workbench.store import Store, resolve_store_path

    db = ctx.params.get("db")
    try:
        path = resolve_store_path(Path(db) if db else None)
        if not path.is_file():
            return []
        with Store(path) as store:
            listed = store.list_executions(limit=_NEWEST)
    except (WorkbenchError, OSError):
        return []  # a shell's tab key must not print a traceback
    return [
        CompletionItem(e.id, help=f"{e.pipeline_id} · {e.status}")
        for e in listed
        if e.id.startswith(incomplete)
    ]
