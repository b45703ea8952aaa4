"""The names an experiment accepts: its engines and the keys of a selection by filter.

Apart from the modules that use them so that the CLI can offer them as choices without
importing the replay machinery (and vcrpy, and the SDKs) at start-up.
"""

from __future__ import annotations

__all__ = ["ENGINES", "FILTER_KEYS"]

ENGINES = ("inline", "processes", "dask")
#: What a selection by filter may hold (``pipeline`` is the CLI's spelling of ``pipeline_id``).
FILTER_KEYS = (
    "include_replays",
    "limit",
    "pipeline",
    "pipeline_id",
    "since",
    "status",
    "until",
    "user_id",
)
