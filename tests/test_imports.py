"""The one import by path: modules by name (working directory and given folders too) and the
object at ``module:qualname``, with Python's own errors for each way it can fail."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench._imports import attribute_at, import_function, import_module, split_import_path


@pytest.fixture
def name(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A module name no other test uses; sys.path and sys.modules are restored afterwards."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    module = f"wb_user_{uuid.uuid4().hex[:10]}"
    yield module
    for loaded in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        del sys.modules[loaded]


def test_a_module_in_a_given_folder_is_found_and_its_folder_kept(name: str, tmp_path: Path) -> None:
    """A module in none of sys.path's folders is imported from the folder given (a pipeline
    file's folder), which then stays on sys.path for its own imports."""
    (tmp_path / f"{name}.py").write_text("def hello():\n    return 'hi'\n")
    module = import_module(name, [tmp_path])
    assert module.hello() == "hi" and str(tmp_path) in sys.path


def test_a_module_in_the_working_directory_is_found(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The working directory is searched first, as ``python -m`` run there would."""
    package = tmp_path / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "jobs.py").write_text("class Job:\n    def run(self):\n        return 1\n")
    monkeypatch.chdir(tmp_path)
    run = import_function(f"{name}.jobs:Job.run")
    assert run(object()) == 1


def test_a_module_that_fails_inside_raises_its_own_error(name: str, tmp_path: Path) -> None:
    """A module that exists but imports something missing raises that error, untouched by the
    folder search (the module is not what is missing)."""
    (tmp_path / f"{name}.py").write_text("import wb_missing_dependency_zz\n")
    sys.path.insert(0, str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="wb_missing_dependency_zz"):
        import_module(name, [tmp_path])


def test_a_missing_module_leaves_sys_path_as_it_was(name: str, tmp_path: Path) -> None:
    """When no folder has the module, ModuleNotFoundError is raised and sys.path unchanged."""
    before = list(sys.path)
    with pytest.raises(ModuleNotFoundError):
        import_module(name, [tmp_path])
    assert sys.path == before


@pytest.mark.parametrize("path", ["no_colon", ":f", "module:", ""])
def test_a_malformed_path_is_a_value_error(path: str) -> None:
    """Anything but ``module:qualname`` is refused with the form to write."""
    with pytest.raises(ValueError, match=r"package\.module:function"):
        split_import_path(path)


def test_what_cannot_be_imported_is_named() -> None:
    """A missing attribute is an AttributeError, a function inside a function a ValueError
    saying why, an object that is not callable a ValueError naming its type."""
    with pytest.raises(AttributeError):
        import_function("json:no_such_function")
    with pytest.raises(ValueError, match="inside another function"):
        attribute_at(sys.modules[__name__], "test_what_cannot_be_imported_is_named.<locals>.f")
    with pytest.raises(ValueError, match="is a str, not a function"):
        import_function("json:__name__")


def test_every_importer_uses_it() -> None:
    """The YAML pipelines, the replay engine and the observer hooks share this function."""
    from workbench import _hooks
    from workbench.pipelines import _actions, _load
    from workbench.replay import _engine

    assert _load.import_module is _engine.import_module is import_module
    assert _load.import_function is _actions.import_function is _hooks.import_function
    assert _engine.attribute_at is attribute_at
