"""Experiments in the terminal (rich): the summary table, the changed and failed runs, the
list of experiments, and two experiments side by side. What the figures are is ``_result``'s."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

from workbench._money import usd
from workbench.records import Experiment

if TYPE_CHECKING:
    from workbench.experiments._result import ExperimentComparison, ExperimentResult

__all__ = ["comparison_renderables", "experiment_renderables", "experiments_table"]

#: The most changed or failed runs listed under a summary (the JSON has them all).
_LISTED = 20


def _money(value: float | None) -> str:
    return "-" if value is None else usd(value)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}s"


def _when(moment: float | None) -> str:
    return "-" if moment is None else datetime.fromtimestamp(moment).strftime("%Y-%m-%d %H:%M:%S")


def _summary_rows(result: ExperimentResult) -> list[tuple[str, str, str]]:
    s = result.summary()
    steps = ", ".join(f"{k} ({v})" for k, v in s.first_divergent_steps.items()) or "-"
    return [
        ("runs", str(s.n), f"{s.replayed} replayed, {s.failed} failed, {s.not_run} not run"),
        ("outputs", f"{s.changed} changed", f"{s.unchanged} unchanged"),
        ("first divergent step", steps, ""),
        (
            "cost",
            f"{usd(s.cost_before)} → {usd(s.cost_after)}",
            f"per run {_money(s.cost_per_run_before)} → {_money(s.cost_per_run_after)}",
        ),
        ("tokens", f"{s.tokens_before} → {s.tokens_after}", ""),
        ("latency p50", f"{_seconds(s.latency_p50_before)} → {_seconds(s.latency_p50_after)}", ""),
        ("latency p95", f"{_seconds(s.latency_p95_before)} → {_seconds(s.latency_p95_after)}", ""),
        ("model calls", f"{s.calls_recorded} from the recording", f"{s.calls_live} live"),
    ]


def experiment_renderables(result: ExperimentResult) -> Iterator[Any]:
    """The summary table, then the changed runs (costliest first) and the failed ones."""
    e = result.experiment
    title = f"Experiment {e.id}" + (f" ({e.name})" if e.name else "") + f": {e.status}"
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_column(style="dim")
    for row in _summary_rows(result):
        table.add_row(*row)
    table.add_row("modifications", Text(repr(e.modifications)), f"on_miss {e.on_miss}")
    table.add_row("engine", f"{e.engine} × {e.workers}", _when(e.started_at))
    yield table
    changed = result.changed()
    if changed:
        runs = Table(title=f"Changed runs ({len(changed)})", title_justify="left")
        for column in ("original", "replay", "first divergent step", "cost"):
            runs.add_column(column)
        for run in changed[:_LISTED]:
            runs.add_row(
                run.original_id,
                run.replay_id or "-",
                run.first_divergent_step or "-",
                f"{_money(run.cost_before)} → {_money(run.cost_after)}",
            )
        yield runs
    failed = result.failed()
    if failed:
        runs = Table(title=f"Failed runs ({len(failed)})", title_justify="left")
        runs.add_column("original")
        runs.add_column("error", overflow="fold")
        for run in failed[:_LISTED]:
            runs.add_row(run.original_id, Text(run.error or ""))
        yield runs
    if e.status != "completed":
        yield Text(f"Finish it with `workbench experiments resume {e.id}`.", style="yellow")


def experiments_table(experiments: Sequence[Experiment]) -> Table:
    table = Table()
    for column in ("id", "name", "pipeline", "status", "runs", "changed", "failed", "started"):
        table.add_column(column)
    for e in experiments:
        table.add_row(
            e.id,
            e.name or "-",
            e.pipeline_id or "-",
            e.status,
            f"{e.counts.get('replayed', 0) + e.counts.get('failed', 0)}/{len(e.originals)}",
            str(e.counts.get("changed", 0)),
            str(e.counts.get("failed", 0)),
            _when(e.started_at),
        )
    return table


def comparison_renderables(comparison: ExperimentComparison) -> Iterator[Any]:
    a, b = comparison.a, comparison.b
    table = Table(title=f"{a.id} vs {b.id}", title_justify="left")
    table.add_column("")
    table.add_column(a.name or a.id)
    table.add_column(b.name or b.id)
    for (label, va, _), (_, vb, _) in zip(_summary_rows(a), _summary_rows(b), strict=True):
        table.add_row(label, va, vb)
    yield table
    yield Text(
        f"{len(comparison.disagreements())} of {len(comparison.pairs)} runs both replayed "
        f"changed under one and not the other"
    )
