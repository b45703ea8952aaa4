"""``workbench ui``: a local web UI over a store — runs, traces, diffs, costs and profiles.

>>> from workbench.ui import create_app     # needs the extra: pip install 'pipeline-workbench[ui]'
>>> app = create_app("recordings/workbench.db")   # an ASGI app; serve it with uvicorn

The server (:mod:`._app`) is Starlette on uvicorn, imported only when the UI is asked for, so
``import workbench`` and the other commands never load them. Pages are drawn by the package's
own ``static/`` script from the ``/api/`` JSON (:mod:`._views`, described in ``docs/ui.md``);
nothing is fetched from another host.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.ui._app import create_app

__all__ = ["create_app", "serve"]


def __getattr__(name: str) -> Any:
    # Starlette is the ui extra's: imported when the app is asked for, not with the package.
    if name == "create_app":
        from workbench.ui._serve import require_extra

        require_extra()
        from workbench.ui._app import create_app

        return create_app
    if name == "serve":
        from workbench.ui._serve import serve

        return serve
    raise AttributeError(f"module 'workbench.ui' has no attribute {name!r}")
