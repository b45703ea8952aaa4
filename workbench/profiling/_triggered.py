"""CMD run with each execution it records profiled once a trigger holds in it.

The engine of ``workbench profile --trigger COND -- CMD``. Owns starting CMD with the
``profiling`` section in ``WORKBENCH_PROFILING`` (CMD's own watchdog does the profiling, see
``_watchdog``) and the store in ``WORKBENCH_DB`` when one is given, and reading the progress
CMD's processes append to the file in ``WORKBENCH_PROFILE_EVENTS``. Showing that progress is
the CLI's business; profiling CMD as a whole is ``_command.ProfiledCommand``'s.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

from workbench.config import ProfilingConfig
from workbench.exceptions import ProfilerError
from workbench.profiling._watchdog import ENV_CONFIG, ENV_EVENTS
from workbench.store._store import DB_ENV

__all__ = ["TriggeredCommand"]


class TriggeredCommand:
    """CMD run under ``settings``; each of its executions is profiled where a trigger holds.

    >>> with TriggeredCommand(["python", "x.py"], settings=settings) as run:
    ...     while (code := run.wait(0.1)) is None:
    ...         for event in run.events():  # {"event": "started"|..., "kind", "execution_id", ...}
    ...             print(event)
    ...     last = run.events()             # what CMD wrote just before it exited

    An event is ``started`` when a profile begins, else it ends one: with ``profile_id`` and
    ``store`` (where the profile is recorded), or with ``error``.
    """

    def __init__(
        self, command: Sequence[str], *, settings: ProfilingConfig, db: Path | None = None
    ) -> None:
        self.command = list(command)
        self.settings = settings
        self.db = db
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._events: Path | None = None
        self._offset = 0
        self._child: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> TriggeredCommand:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Start CMD; a command that cannot be run is a ProfilerError naming it."""
        self._folder = tempfile.TemporaryDirectory(prefix="workbench-profile-")
        self._events = Path(self._folder.name) / "events.jsonl"
        self._events.touch()
        env = {
            **os.environ,
            ENV_CONFIG: self.settings.model_dump_json(),
            ENV_EVENTS: str(self._events),
        }
        if self.db is not None:
            env[DB_ENV] = str(self.db.expanduser().absolute())
        try:
            self._child = subprocess.Popen(self.command, env=env)
        except OSError as exc:
            self.close()
            raise ProfilerError(
                f"cannot run {' '.join(self.command)!r}: {exc.strerror}; check the command after --"
            ) from exc

    def wait(self, timeout: float) -> int | None:
        """CMD's exit code once it has exited, else ``None`` after ``timeout`` seconds.

        A Ctrl-C while waiting reaches the caller; CMD got it too, so wait again for it to
        write its rows.
        """
        if self._child is None:
            raise RuntimeError("TriggeredCommand.wait() before start()")
        try:
            return self._child.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def events(self) -> list[dict[str, Any]]:
        """The events CMD's processes appended since the last call (whole lines only)."""
        if self._events is None:
            return []
        with self._events.open("rb") as file:
            file.seek(self._offset)
            data = file.read()
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        return [orjson.loads(line) for line in complete.splitlines()]

    def close(self) -> None:
        """Remove the progress file's folder (CMD is left to run to its end, as started)."""
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None
            self._events = None
