"""Inside a command that ``workbench profile -- CMD`` profiles whole: name its executions.

Owns the one observer that tells the profiling parent which executions ran under its profile,
so that it can link the profile to each of them. ``CMD``'s profile is taken from outside the
program (py-spy) or from its first line (the bootstrap's memray or yappi), so no execution
starts it; this observer only appends each recorded execution's id and store to the file in
``WORKBENCH_PROFILED_COMMAND``. The profiling observer's factory installs it when that variable
is set (:func:`install_from_environment`); it owns nothing about profiles or the store.
"""

from __future__ import annotations

import os
import time
from typing import Any

import orjson

from workbench import _hooks

__all__ = ["ENV_COMMAND", "ExecutionAnnouncer", "install_from_environment"]

#: The report file of ``workbench profile -- CMD``: set for CMD and every process it starts.
ENV_COMMAND = "WORKBENCH_PROFILED_COMMAND"


class ExecutionAnnouncer(_hooks.Observer):
    """Appends ``{"event": "execution", ...}`` to the report file as each execution starts."""

    def __init__(self, report: str) -> None:
        self.report = report

    def execution_started(self, run: Any) -> None:
        if not run.recording:
            return  # not in the store (debug mode did not sample it): nothing to link
        line = {
            "event": "execution",
            "pid": os.getpid(),
            "at": time.time(),
            "execution_id": run.id,
            "store": run.store.location,  # the parent may run elsewhere; a URL whole
        }
        try:
            with open(self.report, "ab") as file:
                file.write(orjson.dumps(line) + b"\n")
        except OSError:
            pass  # `workbench profile` has ended (or its folder is gone): nobody to tell


_installed: list[ExecutionAnnouncer] = []


def install_from_environment() -> None:
    """Install the announcer once when this process runs under ``workbench profile``."""
    report = os.environ.get(ENV_COMMAND)
    if report and not _installed:
        _installed.append(ExecutionAnnouncer(report))
        _hooks.add_observer(_installed[0])
