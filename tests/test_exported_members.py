"""The public surface: what users type is exported, listed, and sorted."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import workbench

PUBLIC_MODULES = [
    "workbench",
    "workbench.exceptions",
    "workbench.records",
    "workbench.recorder",
    "workbench.store",
    "workbench.testing",
    "workbench.testmodel",
    "workbench.config",
    "workbench.diff",
    "workbench.replay",
    "workbench.debugging",
    "workbench.debug",
    "workbench.strategies",
    "workbench.monitoring",
    "workbench.pipelines",
    "workbench.profiling",
    "workbench.experiments",
]


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_is_sorted_and_complete(name: str) -> None:
    """Each public module's __all__ is sorted, and every name in it exists."""
    module = importlib.import_module(name)
    exported = module.__all__
    assert exported == sorted(exported)
    for member in exported:
        assert hasattr(module, member), member


def test_every_public_name_of_the_package_is_exported() -> None:
    """Every public name bound in workbench/__init__.py is in its __all__ (and nothing else)."""
    # Not identifiers: the names pytest's assertion rewriting binds when the package is
    # installed editable (pytest then rewrites it as a plugin's package: '@py_builtins').
    public = {n for n in vars(workbench) if n.isidentifier() and not n.startswith("_")}
    submodules = {
        "exceptions",
        "records",
        "providers",
        "recorder",
        "store",
        "types",
        "config",
        "capture",
        "redaction",
        "testing",
        "testmodel",
        "pricing",
        "cli",
        "diff",
        "replay",
        "debugging",
        "debug",
        "pytest_plugin",  # imported by pytest through the entry point
        "strategies",  # imported by the tests of workbench.strategies
        "pipelines",
        "profiling",
        "monitoring",
        "examples",  # the demo's example pipelines, imported by the demo and the tests
        "ui",  # the web UI, imported by the CLI's `workbench ui` (its server lazily)
        "experiments",  # imported by the CLI (its commands) and by RequestReplay.replay_many
    }
    assert public - submodules - set(workbench.__all__) == set()


def test_every_error_derives_from_workbench_error() -> None:
    """One root each: every error is a WorkbenchError, every warning a WorkbenchWarning."""
    from workbench import exceptions

    for name in exceptions.__all__:
        kind = getattr(exceptions, name)
        root = (
            exceptions.WorkbenchWarning if issubclass(kind, Warning) else exceptions.WorkbenchError
        )
        assert issubclass(kind, root), name


def test_import_workbench_loads_no_heavy_dependency() -> None:
    """`import workbench` imports none of deepdiff, the model SDKs, sqlite-utils, jinja2 or pydantic
    (each public name loads its subsystem on first use)."""
    heavy = ["deepdiff", "openai", "anthropic", "sqlite_utils", "jinja2", "pydantic", "rich",
             "starlette", "uvicorn"]  # fmt: skip
    code = (
        "import sys, workbench\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n"
        "workbench.record, workbench.Execution\n"
        "print('deepdiff' in sys.modules, 'openai' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=_env()
    ).stdout.split("\n")
    assert out[0] == "[]"
    assert out[1] == "False False"  # recording's names do not bring in the diff engine or an SDK


def test_a_name_the_package_lacks_is_an_attribute_error() -> None:
    """A misspelt name is the usual AttributeError naming it, so hasattr() and getattr() work."""
    with pytest.raises(AttributeError, match="'recrod'"):
        workbench.recrod  # noqa: B018
    assert set(workbench.__all__) <= set(dir(workbench))


def _env() -> dict[str, str]:
    """This checkout first on the path, as in the test run itself."""
    root = str(Path(workbench.__file__).resolve().parent.parent)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
