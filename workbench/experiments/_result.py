"""What an experiment says: :class:`ExperimentResult`, its :class:`ExperimentSummary`, and
:class:`ExperimentComparison` of two experiments.

Owns the figures (counts, the first-divergent-step histogram, cost, tokens and latency
percentiles before and after, calls served from the recording against sent live), the stable
JSON schema, and the notebook and terminal renderings. Everything is computed from the kept
:class:`~workbench.records.ExperimentRun` rows, so showing a 1,000-run experiment again reads
1,000 rows and diffs nothing; :meth:`ExperimentResult.diff` diffs one run on demand.

JSON schema (``"schema": "workbench.experiment/1"``; keys are only ever added)::

    {"schema", "experiment": {id, name, pipeline_id, selection, modifications, on_miss,
                              engine, workers, status, started_at, ended_at, counts},
     "summary": {n, replayed, failed, changed, unchanged, not_run, first_divergent_steps,
                 cost_before, cost_after, cost_unknown, cost_per_run_before,
                 cost_per_run_after, tokens_before, tokens_after, latency_p50_before,
                 latency_p50_after, latency_p95_before, latency_p95_after,
                 calls_recorded, calls_live},
     "runs": [{original_id, replay_id, status, error, changed, first_divergent_step,
               cost_before, cost_after, tokens_before, tokens_after, latency_before,
               latency_after, calls_recorded, calls_live, attempts, ended_at}, ...]}
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING

from workbench._money import usd
from workbench._stats import percentile
from workbench.diff import ExecutionDiff, compare_executions
from workbench.exceptions import ExperimentError
from workbench.records import Experiment, ExperimentRun
from workbench.types import JSON

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult

    from workbench.store import Store

__all__ = ["SCHEMA", "ExperimentComparison", "ExperimentResult", "ExperimentSummary"]

SCHEMA = "workbench.experiment/1"


@dataclass(frozen=True, slots=True)
class ExperimentSummary:
    """An experiment in figures. Costs sum the runs whose cost is known (``cost_unknown``
    counts the replays whose price is not); latencies are the runs' durations in seconds."""

    n: int
    replayed: int
    failed: int
    changed: int
    unchanged: int
    not_run: int
    first_divergent_steps: dict[str, int]
    cost_before: float
    cost_after: float
    cost_unknown: int
    cost_per_run_before: float | None
    cost_per_run_after: float | None
    tokens_before: int
    tokens_after: int
    latency_p50_before: float | None
    latency_p50_after: float | None
    latency_p95_before: float | None
    latency_p95_after: float | None
    calls_recorded: int
    calls_live: int

    def to_json(self) -> dict[str, JSON]:
        return asdict(self)

    def __str__(self) -> str:
        steps = ", ".join(f"{k}: {v}" for k, v in self.first_divergent_steps.items()) or "-"
        return "\n".join(
            [
                f"{self.n} runs: {self.replayed} replayed, {self.failed} failed, "
                f"{self.not_run} not run; outputs changed in {self.changed}, unchanged in "
                f"{self.unchanged}",
                f"first divergent step: {steps}",
                f"cost: {usd(self.cost_before)} -> {usd(self.cost_after)} "
                f"(per run {_money(self.cost_per_run_before)} -> "
                f"{_money(self.cost_per_run_after)})",
                f"tokens: {self.tokens_before} -> {self.tokens_after}",
                f"latency p50: {_seconds(self.latency_p50_before)} -> "
                f"{_seconds(self.latency_p50_after)}, p95: {_seconds(self.latency_p95_before)}"
                f" -> {_seconds(self.latency_p95_after)}",
                f"model calls: {self.calls_recorded} from the recording, {self.calls_live} live",
            ]
        )


def _money(value: float | None) -> str:
    return "-" if value is None else usd(value)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}s"


def _p(values: list[float], q: float) -> float | None:
    return percentile(values, q) if values else None


def summarize(experiment: Experiment, runs: Iterable[ExperimentRun]) -> ExperimentSummary:
    """The figures of ``runs`` (the experiment's kept runs)."""
    runs = list(runs)
    replayed = [r for r in runs if r.status == "replayed"]
    compared = [r for r in runs if r.replay_id is not None]
    changed = sum(1 for r in runs if r.changed)
    steps = Counter(r.first_divergent_step for r in runs if r.changed and r.first_divergent_step)
    before = [r.cost_before for r in compared if r.cost_before is not None]
    after = [r.cost_after for r in compared if r.cost_after is not None]
    return ExperimentSummary(
        n=len(experiment.originals),
        replayed=len(replayed),
        failed=len(runs) - len(replayed),
        changed=changed,
        unchanged=len(replayed) - sum(1 for r in replayed if r.changed),
        not_run=len(experiment.originals) - len(runs),
        first_divergent_steps=dict(steps.most_common()),
        cost_before=sum(before),
        cost_after=sum(after),
        cost_unknown=len(compared) - len(after),
        cost_per_run_before=sum(before) / len(before) if before else None,
        cost_per_run_after=sum(after) / len(after) if after else None,
        tokens_before=sum(r.tokens_before for r in compared),
        tokens_after=sum(r.tokens_after for r in compared),
        latency_p50_before=_p([r.latency_before for r in compared if r.latency_before], 0.5),
        latency_p50_after=_p([r.latency_after for r in compared if r.latency_after], 0.5),
        latency_p95_before=_p([r.latency_before for r in compared if r.latency_before], 0.95),
        latency_p95_after=_p([r.latency_after for r in compared if r.latency_after], 0.95),
        calls_recorded=sum(r.calls_recorded for r in runs),
        calls_live=sum(r.calls_live for r in runs),
    )


def _run_json(run: ExperimentRun) -> dict[str, JSON]:
    return {f.name: getattr(run, f.name) for f in fields(run) if f.name != "experiment_id"}


class ExperimentResult:
    """An experiment and its runs, as ``replay_many`` returns it and ``show`` reads it again.

    >>> exp.summary()      # ExperimentSummary: counts, divergent steps, cost, latency
    >>> exp.runs           # ExperimentRun per original, in the selection's order
    >>> exp.changed()      # the runs whose outputs changed, costliest first
    >>> exp.diff(run)      # the ExecutionDiff of one run (original -> replay)
    """

    def __init__(self, experiment: Experiment, runs: Iterable[ExperimentRun], store: Store):
        self.experiment = experiment
        order = {original: i for i, original in enumerate(experiment.originals)}
        self.runs: list[ExperimentRun] = sorted(
            runs, key=lambda r: order.get(r.original_id, len(order))
        )
        self.store = store

    @classmethod
    def load(cls, store: Store, experiment_id: str) -> ExperimentResult:
        """An experiment kept in ``store``, as it was left (nothing is replayed)."""
        return cls(store.get_experiment(experiment_id), store.experiment_runs(experiment_id), store)

    @property
    def id(self) -> str:
        return self.experiment.id

    @property
    def name(self) -> str | None:
        return self.experiment.name

    @property
    def status(self) -> str:
        return self.experiment.status

    def __repr__(self) -> str:
        s = self.summary()
        return (
            f"<ExperimentResult {self.id} {self.status}: {s.n} runs, {s.changed} changed, "
            f"{s.failed} failed>"
        )

    def summary(self) -> ExperimentSummary:
        return summarize(self.experiment, self.runs)

    def changed(self) -> list[ExperimentRun]:
        """The runs whose outputs changed, costliest replay first (unknown cost last)."""
        changed = [r for r in self.runs if r.changed]
        return sorted(
            changed, key=lambda r: (r.cost_after is None, -(r.cost_after or 0.0), r.original_id)
        )

    def failed(self) -> list[ExperimentRun]:
        return [r for r in self.runs if r.status == "failed"]

    def run(self, original_id: str) -> ExperimentRun:
        for run in self.runs:
            if run.original_id == original_id:
                return run
        raise ExperimentError(
            f"execution {original_id} has no run in experiment {self.id}; its runs are of "
            f"{', '.join(r.original_id for r in self.runs[:5]) or '(none yet)'}"
        )

    def diff(self, run: ExperimentRun | str) -> ExecutionDiff:
        """How one run's replay differs from its original (read and compared now)."""
        chosen = self.run(run) if isinstance(run, str) else run
        if chosen.replay_id is None:
            raise ExperimentError(
                f"the run of {chosen.original_id} in experiment {self.id} recorded no replay "
                f"to compare ({chosen.error})"
            )
        return compare_executions(chosen.original_id, chosen.replay_id, store=self.store)

    def to_json(self) -> dict[str, JSON]:
        """The experiment, its summary and its runs, in the schema of the module docstring."""
        record = asdict(self.experiment)
        del record["originals"]
        return {
            "schema": SCHEMA,
            "experiment": record,
            "summary": self.summary().to_json(),
            "runs": [_run_json(run) for run in self.runs],
        }

    def _repr_html_(self) -> str:
        esc = html.escape
        s = self.summary()
        rows = "".join(
            f"<tr><td>{esc(r.original_id)}</td><td>{esc(str(r.replay_id or '-'))}</td>"
            f"<td>{esc(r.status)}</td><td>{'yes' if r.changed else 'no'}</td>"
            f"<td>{esc(r.first_divergent_step or '-')}</td>"
            f"<td>{_money(r.cost_before)} → {_money(r.cost_after)}</td>"
            f"<td>{esc(r.error or '')}</td></tr>"
            for r in (self.changed() + self.failed())[:50]
        )
        summary = "<br>".join(esc(line) for line in str(s).splitlines())
        return (
            f"<div><h4>Experiment {esc(self.id)}"
            f"{' (' + esc(self.name) + ')' if self.name else ''}: {esc(self.status)}</h4>"
            f"<p>modifications: {esc(repr(self.experiment.modifications))}, engine "
            f"{esc(self.experiment.engine)}</p><p>{summary}</p>"
            f"<table><tr><th>original</th><th>replay</th><th>status</th><th>changed</th>"
            f"<th>first divergent step</th><th>cost</th><th>error</th></tr>{rows}</table></div>"
        )

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from workbench.experiments._render import experiment_renderables

        yield from experiment_renderables(self)


@dataclass(frozen=True, slots=True)
class ExperimentComparison:
    """Two experiments side by side: their summaries, and each original both replayed."""

    a: ExperimentResult
    b: ExperimentResult
    #: original id -> (its run in a, its run in b), for the originals both ran
    pairs: dict[str, tuple[ExperimentRun, ExperimentRun]]

    @classmethod
    def of(cls, a: ExperimentResult, b: ExperimentResult) -> ExperimentComparison:
        in_b = {r.original_id: r for r in b.runs}
        pairs = {r.original_id: (r, in_b[r.original_id]) for r in a.runs if r.original_id in in_b}
        return cls(a, b, pairs)

    def disagreements(self) -> list[str]:
        """The originals whose outputs one change altered and the other did not."""
        return [k for k, (ra, rb) in self.pairs.items() if ra.changed != rb.changed]

    def to_json(self) -> dict[str, JSON]:
        return {
            "schema": "workbench.experiment-comparison/1",
            "a": {"id": self.a.id, "name": self.a.name, "summary": self.a.summary().to_json()},
            "b": {"id": self.b.id, "name": self.b.name, "summary": self.b.summary().to_json()},
            "common": len(self.pairs),
            "disagreements": self.disagreements(),
        }

    def _repr_html_(self) -> str:
        esc = html.escape
        sa, sb = self.a.summary().to_json(), self.b.summary().to_json()
        rows = "".join(
            f"<tr><td>{esc(k)}</td><td>{esc(str(sa[k]))}</td><td>{esc(str(sb[k]))}</td></tr>"
            for k in sa
        )
        return (
            f"<div><h4>{esc(self.a.id)} vs {esc(self.b.id)}</h4><table><tr><th></th>"
            f"<th>{esc(self.a.name or self.a.id)}</th><th>{esc(self.b.name or self.b.id)}</th>"
            f"</tr>{rows}</table><p>{len(self.disagreements())} of {len(self.pairs)} common "
            f"runs disagree</p></div>"
        )

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from workbench.experiments._render import comparison_renderables

        yield from comparison_renderables(self)
