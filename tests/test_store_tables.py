"""The SQLAlchemy view of the store's tables matches the tables a store really has."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlalchemy as sa

from workbench.store import Store
from workbench.store._tables import metadata, table


def test_every_table_matches_a_new_sqlite_store(tmp_path: Path) -> None:
    """Each table's columns and primary key, in order, are those SQLite created: queries
    written against ``_tables`` address the real columns."""
    path = tmp_path / "s.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    try:
        for name, expected in metadata().tables.items():
            info = conn.execute(f"PRAGMA table_info({name})").fetchall()
            assert [row[1] for row in info] == [c.name for c in expected.columns], name
            key = [row[1] for row in sorted(info, key=lambda r: r[5]) if row[5]]
            assert key == [c.name for c in expected.primary_key.columns], name
    finally:
        conn.close()


def test_read_runs_a_core_statement_on_the_store(tmp_path: Path) -> None:
    """``Store._read`` renders a Core statement for SQLite and returns mappings by column."""
    with Store(tmp_path / "s.db") as store:
        schema = table("workbench_schema")
        rows = store._read(sa.select(schema.c.app, schema.c.version))
    assert [dict(row) for row in rows] == [{"app": "workbench", "version": 1}]
