"""Replay: run a recorded execution's code again, with its model calls answered from the store.

:class:`RequestReplay` re-imports the recorded entrypoint, calls it with the recorded arguments
inside a new execution (``replay_of`` set), and answers every model call the capture layer sees
from the recording — looked up by request key and occurrence, streams with their original
chunks — so a default replay touches no network. Modifications change the inputs, a step's
output, the log level, the timing or the model behind the calls. The documented import is
``from workbench.debugging import RequestReplay``.

:class:`WorkbenchCassette` / :func:`vcr_cassette` put a recording under vcrpy's stubs instead
(``modifications={"stubs": "vcrpy"}``, or around any code), with workbench's indexed lookup.
"""

from __future__ import annotations

from workbench.replay._engine import RequestReplay
from workbench.replay._result import Mismatch, ReplayResult
from workbench.replay._vcr import WorkbenchCassette, vcr_cassette

__all__ = ["Mismatch", "ReplayResult", "RequestReplay", "WorkbenchCassette", "vcr_cassette"]
