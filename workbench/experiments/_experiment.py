"""Running an experiment: select the originals, record the experiment, fan out, keep the runs.

Owns turning a selection (a filter or a list of ids) into the originals' ids, checking what can
be checked before any replay (the engine, the modifications, the entrypoints), keeping the
:class:`~workbench.records.Experiment` record and its runs in the store as they finish (so
Ctrl-C, or a dead process, leaves a partial experiment that :func:`resume_experiment`
finishes), and the errors of bad input. Where the replays run is ``_engines``'; what one run
does is ``_run``'s; what the result says is ``_result``'s.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from workbench._json import to_jsonable
from workbench.exceptions import ConfigError, ExperimentError, StoreError
from workbench.experiments._engines import Stop, graceful_interrupt, run_tasks
from workbench.experiments._names import ENGINES, FILTER_KEYS
from workbench.experiments._result import ExperimentResult
from workbench.experiments._run import REFUSED, RunTask
from workbench.records import Execution, Experiment, ExperimentRun
from workbench.replay._engine import ON_MISS, check_modifications, load_entrypoint
from workbench.store import Store

__all__ = ["Progress", "ProgressCallback", "resume_experiment", "run_experiment"]

#: How often finished runs are written while an experiment goes on: a partial experiment
#: loses at most this much work, and writing 1,000 runs costs a few transactions, not 1,000.
_WRITE_EVERY_S = 0.5


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a running experiment is: shown by the CLI's progress bar after every run."""

    total: int
    done: int
    failed: int
    changed: int
    started: float  # time.monotonic() at the start

    @property
    def rate(self) -> float:
        """Runs finished per second so far."""
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the rate so far (None before the first run finishes)."""
        rate = self.rate
        return (self.total - self.done) / rate if rate > 0 else None


ProgressCallback = Callable[[Progress], None]


def run_experiment(
    store: Store,
    executions: Mapping[str, Any] | Sequence[str],
    *,
    modifications: Mapping[str, Any] | None = None,
    on_miss: str = "error",
    workers: int | None = None,
    engine: str = "processes",
    address: str | None = None,
    name: str | None = None,
    progress: ProgressCallback | None = None,
) -> ExperimentResult:
    """Replay every selected execution with ``modifications`` and keep what each changed
    (see :meth:`workbench.replay.RequestReplay.replay_many`)."""
    engine, workers = _checked_engine(engine, workers, address)
    if on_miss not in ON_MISS:
        raise ConfigError(
            f"on_miss={on_miss!r} is not a mismatch policy; use one of "
            f"{', '.join(repr(p) for p in ON_MISS)}"
        )
    mods = check_modifications(modifications)
    selection, originals = _selected(store, executions)
    pipelines = sorted({e.pipeline_id for e in originals})
    experiment = Experiment(
        id=f"exp_{os.urandom(8).hex()}",
        name=name,
        pipeline_id=pipelines[0] if len(pipelines) == 1 else None,
        selection=selection,
        originals=[e.id for e in originals],
        modifications=to_jsonable(mods),  # type: ignore[arg-type]
        on_miss=on_miss,
        engine=engine,
        workers=workers,
        status="running",
        started_at=time.time(),
        ended_at=None,
        counts=_counts([]),
    )
    entrypoints = _entrypoints(originals)
    store.put_experiment(experiment)
    return _carry_out(store, experiment, [], entrypoints, address, progress)


def resume_experiment(
    store: Store,
    experiment_id: str,
    *,
    workers: int | None = None,
    engine: str | None = None,
    address: str | None = None,
    progress: ProgressCallback | None = None,
) -> ExperimentResult:
    """Replay the originals of an interrupted experiment that have no finished run yet, with
    its modifications, on its engine (or the one given), and finish it."""
    experiment = store.get_experiment(experiment_id)
    if experiment.status == "completed":
        raise ExperimentError(
            f"experiment {experiment_id} is complete: every selected run was replayed; show it "
            f"with `workbench experiments show {experiment_id}`, or start a new one"
        )
    engine, workers = _checked_engine(
        engine or experiment.engine, workers or experiment.workers, address
    )
    kept = store.experiment_runs(experiment_id)
    entrypoints = _entrypoints(
        store.get_execution(i, model_calls=False) for i in experiment.originals
    )
    experiment = replace(experiment, engine=engine, workers=workers, status="running")
    store.put_experiment(experiment)
    return _carry_out(store, experiment, kept, entrypoints, address, progress)


def _carry_out(
    store: Store,
    experiment: Experiment,
    kept: list[ExperimentRun],
    entrypoints: list[str],
    address: str | None,
    progress: ProgressCallback | None,
) -> ExperimentResult:
    finished = {run.original_id for run in kept}
    # The URL whole (a PostgreSQL store's password included: str() masks it), for workers.
    path = os.fspath(store.path.resolve())
    tasks = [
        RunTask(path, experiment.id, original, experiment.modifications, experiment.on_miss)
        for original in experiment.originals
        if original not in finished
    ]
    runs = list(kept)
    unwritten: list[ExperimentRun] = []
    started = time.monotonic()
    last_write = started

    def write() -> None:
        nonlocal last_write, experiment
        experiment = replace(experiment, counts=_counts(runs))
        store.put_experiment_runs(unwritten, experiment)
        unwritten.clear()
        last_write = time.monotonic()

    def done(run: ExperimentRun) -> None:
        runs.append(run)
        unwritten.append(run)
        if time.monotonic() - last_write >= _WRITE_EVERY_S:
            write()
        if progress is not None:
            counts = _counts(runs)
            progress(
                Progress(
                    len(experiment.originals),
                    len(runs),
                    counts["failed"],
                    counts["changed"],
                    started,
                )
            )

    stop = Stop()
    try:
        with graceful_interrupt() as stop:
            if tasks:
                run_tasks(
                    experiment.engine,
                    tasks,
                    store=store,
                    workers=min(experiment.workers, len(tasks)),
                    entrypoints=entrypoints,
                    address=address,
                    stop=stop,
                    done=done,
                )
    finally:
        # Whatever stopped it (Ctrl-C twice, a bad scheduler, a bug), the finished runs stay.
        interrupted = stop.requested or len(runs) < len(experiment.originals)
        experiment = replace(
            experiment,
            status="interrupted" if interrupted else "completed",
            ended_at=time.time(),
        )
        write()
    if stop.requested:
        raise KeyboardInterrupt(
            f"experiment {experiment.id} stopped after {len(runs)} of "
            f"{len(experiment.originals)} runs; finish it with "
            f"`workbench experiments resume {experiment.id}`"
        )
    if runs and all(run.error is not None and run.error.startswith(REFUSED) for run in runs):
        raise ExperimentError(
            f"no selected run accepts the modifications {experiment.modifications!r}: "
            f"{runs[0].error.removeprefix(REFUSED) if runs[0].error else ''} (experiment "
            f"{experiment.id} is kept with every run failed)"
        )
    return ExperimentResult(experiment, runs, store)


def _counts(runs: Sequence[ExperimentRun]) -> dict[str, int]:
    return {
        "replayed": sum(1 for r in runs if r.status == "replayed"),
        "failed": sum(1 for r in runs if r.status == "failed"),
        "changed": sum(1 for r in runs if r.changed),
    }


def _checked_engine(engine: str, workers: int | None, address: str | None) -> tuple[str, int]:
    if engine not in ENGINES:
        raise ConfigError(
            f"engine={engine!r} is not an experiment engine; use one of "
            f"{', '.join(map(repr, ENGINES))}"
        )
    if address is not None and engine != "dask":
        raise ConfigError(
            f"a scheduler address ({address}) is for engine='dask', not {engine!r}; pass "
            f"engine='dask' (--engine dask) or leave the address out"
        )
    if workers is not None and (isinstance(workers, bool) or workers < 1):
        raise ConfigError(f"workers={workers!r} must be a whole number of at least 1")
    if engine == "inline":
        return engine, 1
    return engine, workers if workers is not None else max(1, os.cpu_count() or 1)


def _selected(
    store: Store, executions: Mapping[str, Any] | Sequence[str]
) -> tuple[dict[str, Any], list[Execution]]:
    """The selection as kept in the record, and the originals it names, newest first."""
    if isinstance(executions, str):
        raise ConfigError(
            f"executions={executions!r} is one id; pass a list of ids ([{executions!r}]) or a "
            f"filter like {{'pipeline_id': 'research_assistant', 'since': '7d'}}"
        )
    if isinstance(executions, Mapping):
        return _by_filter(store, executions)
    ids = list(dict.fromkeys(executions))
    if not ids:
        raise ExperimentError(
            "the selection is an empty list of execution ids; name some, or select by filter "
            "({'pipeline_id': ..., 'since': '7d'})"
        )
    found = [store.get_execution(i, model_calls=False) for i in ids]
    running = [e.id for e in found if e.status == "running"]
    if running:
        raise ExperimentError(
            f"execution(s) {', '.join(running)} are still running; replay them once they end"
        )
    return {"ids": ids}, found


def _by_filter(store: Store, given: Mapping[str, Any]) -> tuple[dict[str, Any], list[Execution]]:
    unknown = sorted(set(given) - set(FILTER_KEYS))
    if unknown:
        raise ConfigError(
            f"selection key(s) {', '.join(map(repr, unknown))} are not filters; use "
            f"{', '.join(FILTER_KEYS)}, or pass a list of execution ids"
        )
    pipeline = given.get("pipeline_id", given.get("pipeline"))
    limit = given.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"selection limit={limit!r} must be a whole number of at least 1")
    include_replays = bool(given.get("include_replays", False))
    try:
        listed = store.list_executions(
            pipeline_id=pipeline,
            status=given.get("status"),
            user_id=given.get("user_id"),
            since=given.get("since"),
            until=given.get("until"),
            # Replays are left out after the query: a limit there would count them.
            limit=limit if include_replays else None,
        )
    except StoreError as exc:
        raise ConfigError(f"the selection {dict(given)!r} cannot be used: {exc}") from exc
    chosen = [
        e for e in listed if e.status != "running" and (include_replays or e.replay_of is None)
    ]
    if limit is not None:
        chosen = chosen[:limit]
    selection = {k: _plain(v) for k, v in sorted(given.items()) if v is not None}
    if not chosen:
        left_out = "" if include_replays else " (replays are left out: include_replays=True)"
        raise ExperimentError(
            f"the selection {selection!r} matches no recorded execution in store {store.path}"
            f"{left_out}; "
            f"widen it (an earlier since, another status) or list what is there with "
            f"`workbench runs list`"
        )
    return selection, chosen


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _entrypoints(originals: Iterable[Execution]) -> list[str]:
    """The originals' entrypoints, each checked to import here (a worker checks again: its
    import path may differ); ``ReplayError`` names the first that does not."""
    first: dict[str, str] = {}
    for execution in originals:
        if execution.entrypoint and execution.entrypoint not in first:
            first[execution.entrypoint] = execution.id
    for path, execution_id in first.items():
        load_entrypoint(path, execution_id)
    return sorted(first)
