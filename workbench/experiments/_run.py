"""One run of an experiment, as a worker does it: replay an original, compare, measure.

Owns :class:`RunTask` (what a worker is sent: plain values, so it pickles for a process pool and
for Dask) and :func:`replay_one`, which opens the store itself, replays the original through
:meth:`RequestReplay.replay_execution`, compares the replay with the original through the diff
engine and returns an :class:`~workbench.records.ExperimentRun`. A failing run is a failed
:class:`ExperimentRun`, never an exception: one bad run must not stop the others. Keeping the
runs is the experiment's business (``_experiment``), not the worker's.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from workbench.diff import compare_executions
from workbench.exceptions import ConfigError, ReplayError, WorkbenchError
from workbench.records import Execution, ExperimentRun
from workbench.replay import RequestReplay
from workbench.replay._engine import load_entrypoint
from workbench.store import Store, open_store

__all__ = [
    "REFUSED",
    "RunTask",
    "failed_run",
    "import_entrypoints",
    "replay_one",
    "store_identity",
]

#: How the error of a run whose modifications the replay refused starts (ConfigError): an
#: experiment in which every run says this has a modification no run accepts.
REFUSED = "refused: "


@dataclass(frozen=True, slots=True)
class RunTask:
    """One original to replay in an experiment; ``attempt`` counts from 1."""

    store_path: str
    experiment_id: str
    original_id: str
    modifications: dict[str, Any]
    on_miss: str
    attempt: int = 1


def replay_one(task: RunTask, store: Store | None = None) -> ExperimentRun:
    """Replay ``task``'s original in this process and say what changed (never raises);
    a worker opens the store at ``task.store_path``, the inline engine passes its own."""
    if store is None:
        store = open_store(task.store_path)
    replay_id: str | None = None
    error: str | None = None
    try:
        result = RequestReplay(store).replay_execution(
            task.original_id, modifications=task.modifications, on_miss=task.on_miss
        )
        replay_id = result.execution_id
    except ConfigError as exc:  # this run has no such step, input, ...: nothing was recorded
        error = f"{REFUSED}{exc}"
    except WorkbenchError as exc:
        replay_id = getattr(exc, "execution_id", None)
        error = f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # a failing run never stops the others
        error = f"{type(exc).__name__}: {exc}"
    try:
        return _measured(task, store, replay_id, error)
    except Exception as exc:  # a damaged original or replay: the run failed, the rest go on
        return failed_run(task, f"{type(exc).__name__}: {exc}", replay_id=replay_id)


def _measured(
    task: RunTask, store: Store, replay_id: str | None, error: str | None
) -> ExperimentRun:
    original = store.get_execution(task.original_id)
    if replay_id is None:
        return failed_run(task, error or "no replay was recorded", original=original)
    replay = store.get_execution(replay_id)
    diff = compare_executions(original, replay, store=store)
    changed = original.status != replay.status or bool(diff.only("outputs"))
    recorded = sum(1 for call in replay.model_calls if call.replayed)
    return ExperimentRun(
        experiment_id=task.experiment_id,
        original_id=task.original_id,
        replay_id=replay_id,
        status="replayed" if error is None else "failed",
        error=error,
        changed=changed,
        first_divergent_step=diff.first_divergent_step,
        cost_before=original.cost_usd,
        cost_after=replay.cost_usd,
        tokens_before=original.tokens_in + original.tokens_out,
        tokens_after=replay.tokens_in + replay.tokens_out,
        latency_before=original.duration_s,
        latency_after=replay.duration_s,
        calls_recorded=recorded,
        calls_live=len(replay.model_calls) - recorded,
        attempts=task.attempt,
        ended_at=time.time(),
    )


def failed_run(
    task: RunTask,
    error: str,
    *,
    replay_id: str | None = None,
    original: Execution | None = None,
) -> ExperimentRun:
    """A run that produced no comparable replay (its worker died twice, the replay could not
    start, ...), with the original's figures when they are at hand."""
    return ExperimentRun(
        experiment_id=task.experiment_id,
        original_id=task.original_id,
        replay_id=replay_id,
        status="failed",
        error=error,
        changed=False,
        first_divergent_step=None,
        cost_before=None if original is None else original.cost_usd,
        cost_after=None,
        tokens_before=0 if original is None else original.tokens_in + original.tokens_out,
        tokens_after=0,
        latency_before=None if original is None else original.duration_s,
        latency_after=None,
        calls_recorded=0,
        calls_live=0,
        attempts=task.attempt,
        ended_at=time.time(),
    )


def import_entrypoints(entrypoints: Sequence[str]) -> dict[str, str]:
    """The entrypoints that do not import in this process, with why (empty: all import)."""
    failures = {}
    for path in entrypoints:
        try:
            load_entrypoint(path, "(experiment check)")
        except ReplayError as exc:
            cause = exc.__cause__
            failures[path] = f"{type(cause).__name__}: {cause}" if cause else str(exc)
    return failures


def store_identity(path: str) -> tuple[str, int, int] | None:
    """Which file ``path`` is, from where this process runs: host, device and inode (None
    when there is no such file). Two processes see the same SQLite store only when all three
    agree: SQLite's locks do not hold across machines, even over a shared disk."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return socket.gethostname(), st.st_dev, st.st_ino
