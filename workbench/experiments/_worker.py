"""An experiment's worker process (``engine="processes"``): ``python -m`` this module.

It reads tasks from one pipe and writes results to another (file descriptors given as
arguments), one at a time, until the parent sends ``None`` or goes away: an ``("import",
entrypoints)`` check first, then ``("run", RunTask)`` messages answered with the run. It runs
in a session of its own, so Ctrl-C reaches the parent alone; the running replay finishes.
"""

from __future__ import annotations

import sys
from multiprocessing.connection import Connection

from workbench.experiments._run import import_entrypoints, replay_one

__all__ = ["main"]


def main(argv: list[str]) -> None:
    tasks = Connection(int(argv[0]), writable=False)
    results = Connection(int(argv[1]), readable=False)
    try:
        while True:
            message = tasks.recv()
            if message is None:
                return
            kind, payload = message
            if kind == "import":
                results.send(("imported", import_entrypoints(payload)))
            else:
                results.send(("done", replay_one(payload)))
    except (EOFError, OSError):  # the parent went away
        return
    finally:
        tasks.close()
        results.close()


if __name__ == "__main__":
    main(sys.argv[1:])
