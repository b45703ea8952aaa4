"""Replay: run a recorded execution's code again, with its model calls answered from the store.

:class:`RequestReplay` re-imports the recorded entrypoint, calls it with the recorded arguments
inside a new execution (``replay_of`` set), and answers every model call the capture layer sees
from the recording — looked up by request key and occurrence, streams with their original
chunks — so a default replay touches no network. Modifications change the inputs, a step's
output, the log level, the timing or the model behind the calls. The documented import is
``from workbench.debugging import RequestReplay``.
"""

from __future__ import annotations

from workbench.replay._engine import RequestReplay
from workbench.replay._result import Mismatch, ReplayResult

__all__ = ["Mismatch", "ReplayResult", "RequestReplay"]
