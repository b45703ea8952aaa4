"""The debugging API under the names of the Orchestrator monitoring documentation.

``from workbench.debugging import RequestReplay`` is the documented import; the code lives in
``workbench.replay``.
"""

from __future__ import annotations

from workbench.replay import Mismatch, ReplayResult, RequestReplay

__all__ = ["Mismatch", "ReplayResult", "RequestReplay"]
