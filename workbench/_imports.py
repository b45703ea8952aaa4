"""The one import by path: a module by name, and the object at ``package.module:qualname``.

Owns how workbench finds user code it is told about by name — a YAML pipeline's ``imports:``
and ``python`` action, a recorded execution's entrypoint for a replay, the built-in observer
factories: ``importlib`` first, then, when the top-level package itself is missing, the
working directory and the given folders, as ``python`` started there would find it. It raises
Python's own errors (``ImportError``, ``AttributeError``, ``ValueError``); each caller turns
them into its own :class:`~workbench.exceptions.WorkbenchError` with its own fix.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["attribute_at", "import_function", "import_module", "split_import_path"]


def import_module(name: str, search: Iterable[Path] = ()) -> ModuleType:
    """Import ``name``; if its top-level package is not importable, look for it in the working
    directory and then in ``search`` (a pipeline file's folder and its parents), as ``python``
    run from there would. The folder found stays on ``sys.path``. Raises ``ImportError``."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        top = name.partition(".")[0]
        if exc.name is None or exc.name.partition(".")[0] != top:
            raise  # the module exists and failed to import something else: a real error
        for folder in (Path.cwd(), *search):
            if not ((folder / top).is_dir() or (folder / f"{top}.py").is_file()):
                continue
            entry = str(folder)
            if entry in sys.path:
                continue
            sys.path.insert(0, entry)
            importlib.invalidate_caches()
            try:
                return importlib.import_module(name)
            except ModuleNotFoundError as again:
                if again.name is None or again.name.partition(".")[0] != top:
                    raise
                sys.path.remove(entry)
        raise


def split_import_path(path: str) -> tuple[str, str]:
    """``("package.module", "qualname")`` of ``"package.module:qualname"`` (``ValueError`` for
    anything else)."""
    module_name, sep, qualname = path.partition(":")
    if not sep or not module_name or not qualname:
        raise ValueError(f"{path!r} is not an import path; write it as 'package.module:function'")
    return module_name, qualname


def attribute_at(module: ModuleType, qualname: str) -> Any:
    """The object ``qualname`` (``Class.method`` too) names in ``module``: ``AttributeError``
    when a part is missing, ``ValueError`` for a function defined inside another function."""
    target: Any = module
    for part in qualname.split("."):
        if part == "<locals>":
            raise ValueError(
                f"{module.__name__}:{qualname} is defined inside another function, which "
                f"cannot be imported; use a module-level function"
            )
        target = getattr(target, part)
    return target


def import_function(path: str, search: Iterable[Path] = ()) -> Callable[..., Any]:
    """The callable at ``module:qualname`` (``ValueError`` for a malformed path or an object
    that is not callable, ``ImportError`` or ``AttributeError`` when it is not there)."""
    module_name, qualname = split_import_path(path)
    target = attribute_at(import_module(module_name, search), qualname)
    if not callable(target):
        raise ValueError(f"{path} is a {type(target).__name__}, not a function")
    return target  # type: ignore[no-any-return]
