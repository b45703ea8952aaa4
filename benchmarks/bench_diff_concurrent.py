"""The diff of a faithful replay whose step made its model calls at once, from a thread pool.

What: for k = 2, 4 and 8 threaded calls inside one step, one recording (each answer delayed by a
random 0-5 ms on the server, so the calls finish in a random order), then 50 replays of it
(``--quick``: 10) with the server stopped, each compared with the original by
``compare_executions``. A faithful replay must compare equal every time, however its threads
happened to finish. The row reports how many of the replays made their calls in another order
than the original (so the property was really exercised) and how many compared unequal: ours
pairs a step's calls by request key and occurrence; the peer is the pairing by position in
the order calls were recorded (deepdiff of the documents with no pairing — what
``compare_executions`` did before), counted on the same replays.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import _common
from _common import Row
from _fan_out_pipeline import fan_out
from deepdiff import DeepDiff

import workbench
from workbench import compare_executions
from workbench.debugging import RequestReplay
from workbench.diff._document import build_document
from workbench.diff._engine import DEEPDIFF_OPTIONS
from workbench.testing import ModelServer

__all__ = ["main"]

JITTER_S = 0.005


def _order(execution: workbench.Execution) -> list[str]:
    return [call.request_key for call in execution.model_calls]


def main(quick: bool = False) -> list[Row]:
    replays = 10 if quick else 50
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        store = workbench.Store(Path(folder) / "fan.db")
        for k in (2, 4, 8):
            with ModelServer() as server, workbench.record("fan", inputs={}, store=store) as run:
                fan_out(server.openai_base_url, k, JITTER_S)
            original = store.get_execution(run.id)
            reordered = ours_unequal = positional_unequal = 0
            replayer = RequestReplay(store)
            for _ in range(replays):
                result = replayer.replay_execution(run.id)
                if result.status != "completed" or result.mismatches or result.unused:
                    raise RuntimeError(f"replay {result.execution_id} was not faithful")
                replay = store.get_execution(result.execution_id)
                reordered += _order(replay) != _order(original)
                ours_unequal += bool(compare_executions(original, replay).differences)
                positional = DeepDiff(
                    build_document(original).content["steps"],
                    build_document(replay).content["steps"],
                    **DEEPDIFF_OPTIONS,
                )
                positional_unequal += bool(positional)
            print(
                f"  k={k}: {reordered}/{replays} replays in another order; unequal: ours "
                f"{ours_unequal}, by position {positional_unequal}",
                flush=True,
            )
            rows.append(
                Row(
                    "diff",
                    f"replays of a step with {k} threaded calls differing "
                    f"({reordered} reordered; peer: pairing by position)",
                    f"{ours_unequal}/{replays}",
                    f"{positional_unequal}/{replays}",
                    "-",
                    "0 every time",
                    ours_unequal == 0,
                )
            )
        store.close()
    return rows


if __name__ == "__main__":
    _common.cli(__doc__ or "", main)
