"""The rows of experiments: their records and their runs', written and read back as records.

Owns the ``experiments`` and ``experiment_runs`` tables (declared in ``_schema``) and the one
column they touch elsewhere, ``executions.experiment_id``. Running an experiment is
``workbench.experiments``' business; this module only keeps what it decides. The statements are
SQLAlchemy Core over ``_tables``, rendered for the store's backend (SQLite or PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from workbench._json import decode, encode
from workbench.records import Experiment, ExperimentRun
from workbench.store import _tables

if TYPE_CHECKING:
    import sqlalchemy as sa

__all__ = [
    "EXPERIMENT_COLUMNS",
    "RUN_COLUMNS",
    "experiment_from_row",
    "experiment_statements",
    "experiments_select",
    "run_from_row",
    "runs_statements",
]

EXPERIMENT_COLUMNS = tuple(f.name for f in fields(Experiment))
RUN_COLUMNS = tuple(f.name for f in fields(ExperimentRun))
_JSON_COLUMNS = frozenset({"selection", "originals", "modifications", "counts"})

#: A statement and the rows it runs for (one execution per row, in one transaction).
Statement = tuple[Any, list[dict[str, Any]]]


def _upsert(dialect: str, name: str) -> Any:
    """An insert of ``name``'s rows that replaces the row of the same key: an experiment's
    record changes as it runs, and a run retried after its worker died is kept once."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    table = _tables.table(name)
    keys = [c.name for c in table.primary_key.columns]
    statement = insert(table)
    return statement.on_conflict_do_update(
        index_elements=keys,
        set_={c.name: statement.excluded[c.name] for c in table.columns if c.name not in keys},
    )


def _experiment_row(experiment: Experiment) -> dict[str, Any]:
    return {
        name: encode(getattr(experiment, name)).decode()
        if name in _JSON_COLUMNS
        else getattr(experiment, name)
        for name in EXPERIMENT_COLUMNS
    }


def _run_row(run: ExperimentRun) -> dict[str, Any]:
    row = {name: getattr(run, name) for name in RUN_COLUMNS}
    row["changed"] = int(run.changed)  # an integer column: PostgreSQL takes no bool for it
    return row


def experiment_statements(dialect: str, experiment: Experiment) -> list[Statement]:
    """Insert or replace the experiment's row (its status and counts change as it runs)."""
    return [(_upsert(dialect, "experiments"), [_experiment_row(experiment)])]


def runs_statements(
    dialect: str, runs: list[ExperimentRun], experiment: Experiment | None = None
) -> list[Statement]:
    """Keep finished runs, tag their replays with the experiment, and (when given) the
    experiment's row with its new counts; the store runs them in one transaction, so a run is
    either kept with its replay tagged and counted, or not at all (and replayed again on
    resume)."""
    import sqlalchemy as sa

    executions = _tables.table("executions")
    tag = (
        sa.update(executions)
        .where(executions.c.id == sa.bindparam("replay"))
        .values(experiment_id=sa.bindparam("tagged_with"))
    )
    statements: list[Statement] = [
        (_upsert(dialect, "experiment_runs"), [_run_row(run) for run in runs]),
        (
            tag,
            [
                {"replay": run.replay_id, "tagged_with": run.experiment_id}
                for run in runs
                if run.replay_id is not None
            ],
        ),
    ]
    if experiment is not None:
        statements.extend(experiment_statements(dialect, experiment))
    return statements


def experiment_from_row(row: Mapping[str, Any]) -> Experiment:
    values = {
        name: decode(row[name].encode()) if name in _JSON_COLUMNS else row[name]
        for name in EXPERIMENT_COLUMNS
    }
    return Experiment(**values)


def run_from_row(row: Mapping[str, Any]) -> ExperimentRun:
    values = {name: row[name] for name in RUN_COLUMNS}
    values["changed"] = bool(values["changed"])
    return ExperimentRun(**values)


def experiments_select(pipeline_id: str | None, limit: int | None) -> sa.Select[Any]:
    """Experiments, newest first (of one pipeline when given)."""
    import sqlalchemy as sa

    table = _tables.table("experiments")
    statement = sa.select(table).order_by(table.c.started_at.desc())
    if pipeline_id is not None:
        statement = statement.where(table.c.pipeline_id == pipeline_id)
    return statement.limit(limit) if limit is not None else statement
