"""The ``workbench`` command line: a thin click layer over the library, one module per group.

Each module beside this one owns one command group (or top-level command), its options and
its output, and calls the library to do the work; ``_options`` owns what they share: the
``--db`` and ``--json`` options, the error boundary (every :class:`WorkbenchError` becomes one
red ``error: ...`` line and exit code 2, JSON under ``--json``), the JSON printer and the shell
completion of execution ids. This module builds the root group from them.

Commands, and the module beside this one that owns each::

    workbench runs list [--pipeline P] [--status S] [--user U] [--since WHEN] [--json]  runs
    workbench runs show ID [--json]                                                     runs
    workbench replay ID [--modify KEY=VALUE ...] [--input NAME=VALUE ...] [--from-step S]
                        [--on-miss error|live|test-model] [--json]                    replay
    workbench diff A B [--json] [--only CATEGORY] [--ignore PATH]                         diff
    workbench run FILE [--input NAME=VALUE ...] [--test-model] [--json]              pipelines
    workbench validate FILE [--json]                                                 pipelines
    workbench report cost [--date YYYY-MM-DD] [--days N] [--json]                       report
    workbench serve-metrics [--port P] [--host H] [--json]                       serve_metrics
    workbench alerts export [--output FILE] [--json]                                    alerts
    workbench alerts check [--notify] [--json]                                          alerts
    workbench profile [OPTIONS] -- CMD | profile run ID | profile show PROFILE_ID      profile
    workbench store export|import|text|prune|import-cassette|export-cassette           store
    workbench demo [--json]                                                               demo
    workbench ui [--db FILE] [--port 8765] [--host 127.0.0.1] [--open]                   ui
    workbench replay --pipeline P [--since WHEN] [--status S] [--limit N] [--modify ...]
        [--on-miss ...] [--workers N] [--engine E] [--dask-address A] [--name N] [--json]
                                                                                   experiments
    workbench experiments list|show ID|resume ID|compare A B [--json]             experiments

Every command that takes a store takes ``--db FILE``; the console script is
``workbench.cli:main``, and ``python -m workbench.cli`` runs the same.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

import workbench
from workbench._when import parse_when
from workbench.cli._options import CONTEXT, CommandGroup
from workbench.cli.alerts import alerts_group
from workbench.cli.demo import demo_command
from workbench.cli.diff import diff_command
from workbench.cli.experiments import add_pipeline_form, experiments_group
from workbench.cli.pipelines import run_command, validate_command
from workbench.cli.profile import profile_command
from workbench.cli.replay import replay_command, replay_modifications
from workbench.cli.report import report_group
from workbench.cli.runs import runs_group
from workbench.cli.serve_metrics import serve_metrics_command
from workbench.cli.store import store_group
from workbench.cli.ui import ui_command

__all__ = ["cli", "main", "parse_when", "replay_modifications"]


@click.group(cls=CommandGroup, context_settings=CONTEXT)
@click.version_option(workbench.__version__, prog_name="workbench")
def cli() -> None:
    """Record, inspect and replay runs of LLM pipelines.

    Start with `workbench demo`, which records an example pipeline against a local model
    server (no API key, no network), then look at it with `workbench runs list` and
    `workbench runs show ID`.
    """


cli.add_command(runs_group)
cli.add_command(replay_command)
cli.add_command(demo_command)
cli.add_command(diff_command)
cli.add_command(run_command)
cli.add_command(validate_command)
cli.add_command(report_group)
cli.add_command(serve_metrics_command)
cli.add_command(alerts_group)
cli.add_command(profile_command)
cli.add_command(store_group)
cli.add_command(ui_command)
add_pipeline_form(replay_command)
cli.add_command(experiments_group)


def main(argv: Sequence[str] | None = None) -> None:
    """The ``workbench`` console script."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="workbench")
