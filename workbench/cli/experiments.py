"""The experiments' commands: ``workbench replay --pipeline P ...`` and ``workbench
experiments list|show|resume|compare``.

A thin layer over :mod:`workbench.experiments`: parsing, the progress bar (rich on a terminal,
plain lines otherwise, on stderr so ``--json`` output stays clean), the summary table, and the
exit status: 0 when no run's output changed, 1 when some did (or a run failed), as a CI gate
for "does my prompt change alter any recorded answer?"; trouble is 2, Ctrl-C 130.

``workbench replay ID`` stays what it was: :func:`add_pipeline_form` gives the existing
command its options for the other form without touching its own.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

from workbench.cli._options import (
    CONTEXT,
    CommandGroup,
    console,
    db_option,
    echo_json,
    json_option,
    open_existing,
)
from workbench.experiments._names import ENGINES

if TYPE_CHECKING:  # the replay machinery is imported when a command runs, not at start-up
    from workbench.experiments._experiment import Progress
    from workbench.experiments._result import ExperimentResult

__all__ = ["add_pipeline_form", "experiments_group"]

_STATUSES = ("completed", "failed", "interrupted")
#: Plain progress lines are written at most this often (and after the last run).
_PLAIN_EVERY_S = 1.0


def _eta(progress: Progress) -> str:
    eta = progress.eta_s
    return "-" if eta is None else f"{eta:.0f}s"


@contextmanager
def progress_view(total: int | None = None) -> Iterator[Callable[[Progress], None]]:
    """A callback for :class:`Progress` updates: a rich bar (done, failed, changed, rate, ETA)
    when stderr is a terminal, else a plain line at most once a second and after the last."""
    terminal = Console(stderr=True, highlight=False)
    if not terminal.is_terminal:
        last = [0.0]

        def plain(p: Progress) -> None:
            now = time.monotonic()
            if p.done < p.total and now - last[0] < _PLAIN_EVERY_S:
                return
            last[0] = now
            click.echo(
                f"replayed {p.done}/{p.total}: {p.failed} failed, {p.changed} changed, "
                f"{p.rate:.2f} runs/s, ETA {_eta(p)}",
                err=True,
            )

        yield plain
        return
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    bar = Bar(
        TextColumn("replaying"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=terminal,
        transient=False,
    )
    task = bar.add_task("replay", total=total, detail="")
    with bar:

        def rich_update(p: Progress) -> None:
            bar.update(
                task,
                completed=p.done,
                total=p.total,
                detail=f"failed {p.failed}, changed {p.changed}, {p.rate:.2f}/s, ETA {_eta(p)}",
            )

        yield rich_update


def _finish(result: ExperimentResult, as_json: bool) -> None:
    """Print the experiment, and exit 1 when an output changed or a run failed."""
    if as_json:
        echo_json(result.to_json())
    else:
        console().print(result)
    summary = result.summary()
    if summary.changed or summary.failed:
        raise click.exceptions.Exit(1)


def _interrupted(exc: KeyboardInterrupt) -> click.exceptions.Exit:
    click.secho(f"interrupted: {exc}" if str(exc) else "interrupted", fg="yellow", err=True)
    return click.exceptions.Exit(130)


_PIPELINE_OPTIONS = [
    click.Option(
        ["--pipeline", "pipeline_id"],
        metavar="P",
        help="Replay many recorded runs of pipeline P (an experiment) instead of one ID: exit "
        "0 when no output changed, 1 when some did.",
    ),
    click.Option(
        ["--since"],
        metavar="WHEN",
        help="With --pipeline: runs started at or after WHEN (30m, 2d, 1w ago, an ISO date).",
    ),
    click.Option(
        ["--status"],
        type=click.Choice(_STATUSES),
        help="With --pipeline: only runs with this status.",
    ),
    click.Option(
        ["--limit"],
        type=click.IntRange(min=1),
        metavar="N",
        help="With --pipeline: at most N runs, newest first.",
    ),
    click.Option(
        ["--include-replays"],
        is_flag=True,
        help="With --pipeline: select replays too (original runs only by default).",
    ),
    click.Option(
        ["--workers"],
        type=click.IntRange(min=1),
        metavar="N",
        help="With --pipeline: replays at once (processes, or LocalCluster workers). Default: "
        "the number of CPUs.",
    ),
    click.Option(
        ["--engine"],
        type=click.Choice(ENGINES),
        default="processes",
        show_default=True,
        help="With --pipeline: where the replays run.",
    ),
    click.Option(
        ["--dask-address"],
        metavar="ADDRESS",
        help="With --engine dask: an existing scheduler (tcp://host:8786); default: a "
        "LocalCluster of --workers processes.",
    ),
    click.Option(["--name"], metavar="NAME", help="With --pipeline: the experiment's name."),
]


def add_pipeline_form(command: click.Command) -> None:
    """Give ``workbench replay ID`` its experiment form, ``workbench replay --pipeline P``,
    in place: ID becomes optional, the options above are added, and the command's callback
    runs as before unless --pipeline is given."""
    for param in command.params:
        if param.name == "execution_id":
            param.required = False
            param.metavar = "[ID]"
    command.params.extend(_PIPELINE_OPTIONS)
    single = command.callback
    assert single is not None
    names = [option.name for option in _PIPELINE_OPTIONS]
    command.help = inspect.cleandoc(command.help or "") + (
        "\n\nWith --pipeline P instead of ID, replay many recorded runs of P (selected with "
        "--since, --status, --limit) with the same changes, as one experiment kept in the "
        "store (`workbench experiments show ID`): a progress bar, a summary table, and exit "
        "status 0 when no output changed, 1 when some did or a run failed."
    )

    def callback(**kwargs: Any) -> Any:
        options = {name: kwargs.pop(name) for name in names}
        if options["pipeline_id"] is None:
            if kwargs.get("execution_id") is None:
                raise click.UsageError("give an execution ID, or --pipeline P for many runs")
            return single(**kwargs)
        if kwargs.get("execution_id") is not None:
            raise click.UsageError(
                f"give an execution ID or --pipeline {options['pipeline_id']}, not both"
            )
        return _replay_pipeline(options, kwargs)

    command.callback = callback


def _replay_pipeline(options: dict[str, Any], single: dict[str, Any]) -> None:
    from workbench.cli.replay import replay_modifications  # as `workbench replay ID` parses
    from workbench.experiments._experiment import run_experiment

    modifications = replay_modifications(single["modify"], single["inputs"])
    if single.get("from_step") is not None:
        modifications["from_step"] = single["from_step"]
    selection = {
        "pipeline_id": options["pipeline_id"],
        "since": options["since"],
        "status": options["status"],
        "limit": options["limit"],
        "include_replays": options["include_replays"] or None,
    }
    with open_existing(single["db"]) as store, progress_view() as progress:
        try:
            result = run_experiment(
                store,
                {k: v for k, v in selection.items() if v is not None},
                modifications=modifications,
                on_miss=single["on_miss"],
                workers=options["workers"],
                engine=options["engine"],
                address=options["dask_address"],
                name=options["name"],
                progress=progress,
            )
        except KeyboardInterrupt as exc:
            raise _interrupted(exc) from None
    _finish(result, single["as_json"])


@click.group("experiments", cls=CommandGroup, context_settings=CONTEXT)
def experiments_group() -> None:
    """List, show, compare and resume experiments (`workbench replay --pipeline P`)."""


@experiments_group.command("list")
@click.option("--pipeline", "pipeline_id", metavar="P", help="Only experiments on pipeline P.")
@click.option(
    "--limit", type=click.IntRange(min=1), default=50, show_default=True, help="At most N."
)
@json_option()
@db_option()
def list_experiments(pipeline_id: str | None, limit: int, as_json: bool, db: Path | None) -> None:
    """List the experiments kept in the store, newest first."""
    from workbench.experiments._render import experiments_table

    with open_existing(db) as store:
        experiments = store.list_experiments(pipeline_id=pipeline_id, limit=limit)
    if as_json:
        from dataclasses import asdict

        echo_json([{k: v for k, v in asdict(e).items() if k != "originals"} for e in experiments])
        return
    printer = console()
    if not experiments:
        printer.print(f"No experiments in {store.path}.", style="dim")
        return
    printer.print(experiments_table(experiments))


@experiments_group.command("show")
@click.argument("experiment_id", metavar="ID")
@json_option()
@db_option()
def show_experiment(experiment_id: str, as_json: bool, db: Path | None) -> None:
    """Show an experiment again, without replaying anything.

    Its summary table, then its changed and failed runs. Exits 1, as `workbench replay
    --pipeline` did, when an output changed or a run failed.
    """
    from workbench.experiments._result import ExperimentResult

    with open_existing(db) as store:
        result = ExperimentResult.load(store, experiment_id)
        _finish(result, as_json)


@experiments_group.command("resume")
@click.argument("experiment_id", metavar="ID")
@click.option("--workers", type=click.IntRange(min=1), metavar="N", help="Replays at once.")
@click.option("--engine", type=click.Choice(ENGINES), help="Default: the experiment's own.")
@click.option("--dask-address", metavar="ADDRESS", help="With --engine dask: a scheduler.")
@json_option()
@db_option()
def resume(
    experiment_id: str,
    workers: int | None,
    engine: str | None,
    dask_address: str | None,
    as_json: bool,
    db: Path | None,
) -> None:
    """Finish an interrupted experiment: replay the runs it has not finished."""
    from workbench.experiments._experiment import resume_experiment

    with open_existing(db) as store, progress_view() as progress:
        try:
            result = resume_experiment(
                store,
                experiment_id,
                workers=workers,
                engine=engine,
                address=dask_address,
                progress=progress,
            )
        except KeyboardInterrupt as exc:
            raise _interrupted(exc) from None
    _finish(result, as_json)


@experiments_group.command("compare")
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@json_option()
@db_option()
def compare(a: str, b: str, as_json: bool, db: Path | None) -> None:
    """Two experiments side by side: their summaries, and the runs they disagree on."""
    from workbench.experiments._result import ExperimentComparison, ExperimentResult

    with open_existing(db) as store:
        comparison = ExperimentComparison.of(
            ExperimentResult.load(store, a), ExperimentResult.load(store, b)
        )
    if as_json:
        echo_json(comparison.to_json())
        return
    console().print(comparison)
