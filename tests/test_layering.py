"""The layering of the package: dependencies point down, and no SQL above the store.

The import-linter contract in ``pyproject.toml`` (``[tool.importlinter]``) holds records →
store → recorder/replay/diff/profiling/monitoring → pytest plugin, CLI, views, counting
imports inside functions and under ``TYPE_CHECKING``. The AST walk below holds what a layer
contract cannot say: nothing outside ``workbench/store/`` imports a database driver or
SQLAlchemy, or reaches into a store's private readers.
"""

from __future__ import annotations

import ast
import contextlib
import io
import logging
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "workbench"
STORE = PACKAGE / "store"

#: Modules only the store may import: the backends' drivers and the query layer over them.
DATABASE_MODULES = frozenset({"sqlite3", "sqlalchemy", "psycopg", "psycopg2", "psycopg_pool"})
#: The store's private ways to run SQL; a reader above it calls a public, typed method instead.
PRIVATE_READERS = frozenset({"_query", "_read", "_reader", "_engine", "_connect"})


def _outside_store() -> list[Path]:
    return sorted(
        path for path in PACKAGE.rglob("*.py") if STORE not in path.parents and path != STORE
    )


def _violations(path: Path, root: Path = ROOT) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    where = path.relative_to(root)
    for node in ast.walk(tree):  # every node: imports inside functions and classes too
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            if name.split(".")[0] in DATABASE_MODULES:
                found.append(f"{where}:{node.lineno} imports {name}")
        if (
            isinstance(node, ast.Attribute)
            and node.attr in PRIVATE_READERS
            # An object's own method of that name (a profiler's ``self._read``) is not the
            # store's; any other receiver (``store._query``, ``self.store._read``) is.
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
        ):
            found.append(f"{where}:{node.lineno} uses {ast.unparse(node)}")
    return found


def test_the_layering_contract_is_kept() -> None:
    """lint-imports finds every dependency pointing down: no module imports one of a higher
    layer (records → store → subsystems → plugin, CLI, views), function-level imports included."""
    from importlinter.cli import lint_imports

    out = io.StringIO()
    # lint_imports runs logging.config.dictConfig, which disables every logger that exists
    # (``disable_existing_loggers``): later tests' caplog on ``workbench.alerts`` saw nothing.
    manager = logging.Logger.manager
    enabled = [
        logger
        for logger in manager.loggerDict.values()
        if isinstance(logger, logging.Logger) and not logger.disabled
    ]
    sys.path.insert(0, str(ROOT))  # this checkout's workbench, whatever is installed
    try:
        with contextlib.redirect_stdout(out):
            code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True)
    finally:
        sys.path.remove(str(ROOT))
        for logger in enabled:
            logger.disabled = False
    assert code == 0, out.getvalue()
    assert "1 kept, 0 broken" in out.getvalue()


def test_no_module_above_the_store_knows_sql() -> None:
    """No module outside workbench/store/ imports sqlite3, SQLAlchemy or psycopg, or uses a
    store's private readers (``._query``, ``._read`` …), in functions included."""
    found = [line for path in _outside_store() for line in _violations(path)]
    assert found == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def f():\n    import sqlite3\n", "imports sqlite3"),
        ("from sqlalchemy import select\n", "imports sqlalchemy"),
        ("def f(store):\n    return store._query('SELECT 1')\n", "uses store._query"),
        ("class A:\n    def f(self):\n        return self.store._read(1)\n", "self.store._read"),
    ],
)
def test_the_walk_sees_what_it_forbids(tmp_path: Path, source: str, expected: str) -> None:
    """The AST walk reports a driver import inside a function and a private reader reached
    through another object: the check above cannot pass by seeing nothing."""
    module = tmp_path / "module.py"
    module.write_text(source)
    (line,) = _violations(module, tmp_path)
    assert expected in line


def test_an_objects_own_read_method_is_not_the_stores(tmp_path: Path) -> None:
    """``self._read(...)`` on an object's own method is allowed: only another object's
    private reader is the store's."""
    module = tmp_path / "module.py"
    module.write_text(
        "class P:\n    def _read(self): ...\n    def f(self):\n        self._read()\n"
    )
    assert _violations(module, tmp_path) == []
