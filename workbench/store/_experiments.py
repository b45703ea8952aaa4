"""The SQL of experiments: their rows and their runs' rows, written and read back as records.

Owns the ``experiments`` and ``experiment_runs`` tables (declared in ``_schema``) and the one
column they touch elsewhere, ``executions.experiment_id``. Running an experiment is
``workbench.experiments``' business; this module only keeps what it decides.
"""

from __future__ import annotations

import sqlite3
from dataclasses import astuple, fields
from typing import Any

from workbench._json import decode, encode
from workbench.records import Experiment, ExperimentRun
from workbench.store._schema import rollback

__all__ = [
    "EXPERIMENT_COLUMNS",
    "RUN_COLUMNS",
    "experiment_from_row",
    "run_from_row",
    "write_experiment",
    "write_runs",
]

EXPERIMENT_COLUMNS = tuple(f.name for f in fields(Experiment))
RUN_COLUMNS = tuple(f.name for f in fields(ExperimentRun))
_JSON_COLUMNS = frozenset({"selection", "originals", "modifications", "counts"})


def _insert(table: str, columns: tuple[str, ...]) -> str:
    names = ", ".join(f'"{c}"' for c in columns)
    marks = ", ".join("?" for _ in columns)
    return f"INSERT OR REPLACE INTO {table} ({names}) VALUES ({marks})"


_EXPERIMENT_SQL = _insert("experiments", EXPERIMENT_COLUMNS)
_RUN_SQL = _insert("experiment_runs", RUN_COLUMNS)


def _experiment_row(experiment: Experiment) -> tuple[Any, ...]:
    return tuple(
        encode(getattr(experiment, name)).decode()
        if name in _JSON_COLUMNS
        else getattr(experiment, name)
        for name in EXPERIMENT_COLUMNS
    )


def write_experiment(conn: sqlite3.Connection, experiment: Experiment) -> None:
    """Insert or replace the experiment's row (its status and counts change as it runs)."""
    conn.execute(_EXPERIMENT_SQL, _experiment_row(experiment))


def write_runs(
    conn: sqlite3.Connection,
    runs: list[ExperimentRun],
    experiment: Experiment | None = None,
) -> None:
    """Keep finished runs, tag their replays with the experiment, and (when given) the
    experiment's row with its new counts, in one transaction: a run is either kept with its
    replay tagged and counted, or not at all (and replayed again on resume)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(_RUN_SQL, [astuple(run) for run in runs])
        conn.executemany(
            "UPDATE executions SET experiment_id = ? WHERE id = ?",
            [(run.experiment_id, run.replay_id) for run in runs if run.replay_id is not None],
        )
        if experiment is not None:
            write_experiment(conn, experiment)
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise


def experiment_from_row(row: sqlite3.Row) -> Experiment:
    values = {
        name: decode(row[name].encode()) if name in _JSON_COLUMNS else row[name]
        for name in EXPERIMENT_COLUMNS
    }
    return Experiment(**values)


def run_from_row(row: sqlite3.Row) -> ExperimentRun:
    values = {name: row[name] for name in RUN_COLUMNS}
    values["changed"] = bool(values["changed"])
    return ExperimentRun(**values)
