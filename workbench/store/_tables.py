"""The store's tables as SQLAlchemy Core objects, built from the one definition in ``_schema``.

Readers above the row level write their queries once against these tables, and SQLAlchemy
renders them for the backend in use (SQLite or PostgreSQL), so no module outside the store knows
a SQL dialect. Built on first use: SQLAlchemy stays out of ``import workbench`` and out of a
recording that never reads.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from workbench.store._schema import _INDEXES, _TABLES, _WITHOUT_ROWID

if TYPE_CHECKING:
    import sqlalchemy as sa

__all__ = ["metadata", "table"]


@functools.cache
def metadata() -> sa.MetaData:
    """Every table of the store: the recorded tables, the cost ledger and the schema stamp."""
    import sqlalchemy as sa

    types: dict[type, type[sa.types.TypeEngine[object]]] = {
        str: sa.Text,
        int: sa.BigInteger,
        float: sa.Double,
        bytes: sa.LargeBinary,
    }
    meta = sa.MetaData()
    for name, (columns, key) in _TABLES.items():
        keys = (key,) if isinstance(key, str) else (key or ())
        sa.Table(
            name,
            meta,
            *(
                sa.Column(column, types[kind], nullable=column not in keys)
                for column, kind in columns.items()
            ),
            # In the key's order (a table is clustered on it: spans by execution first).
            *([sa.PrimaryKeyConstraint(*keys)] if keys else []),
            sqlite_with_rowid=name not in _WITHOUT_ROWID,
        )
    for name, index_columns in _INDEXES:
        sa.Index(
            f"idx_{name}_{'_'.join(index_columns)}",
            *(meta.tables[name].c[c] for c in index_columns),
        )
    ledger = sa.Table(
        "cost_ledger",
        meta,
        sa.Column("seq", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("execution_id", sa.Text),
        sa.Column("started_at", sa.Double),
        sa.Column("user_id", sa.Text),
        sa.Column("pipeline_id", sa.Text),
        sa.Column("provider", sa.Text),
        sa.Column("model", sa.Text),
        sa.Column("cost_usd", sa.Double),
        sa.Column("input_tokens", sa.BigInteger),
        sa.Column("output_tokens", sa.BigInteger),
    )
    sa.Index("idx_cost_ledger_time", ledger.c.started_at, ledger.c.cost_usd)
    # Covering the cost report (``Queries.cost_groups``), as SQLite's (``_schema``).
    report = ("started_at", "model", "pipeline_id", "user_id", "cost_usd", "input_tokens")
    sa.Index("idx_cost_ledger_report", *(ledger.c[n] for n in (*report, "output_tokens")))
    sa.Table(
        "workbench_schema",
        meta,
        sa.Column("app", sa.Text),
        sa.Column("version", sa.BigInteger),
        sa.Column("created_at", sa.Double),
    )
    return meta


def table(name: str) -> sa.Table:
    """The table called ``name`` (``executions``, ``model_calls``, ``cost_ledger`` …)."""
    return metadata().tables[name]
