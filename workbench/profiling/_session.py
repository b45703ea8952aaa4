"""Profiling switched on from Python for one block: ``workbench.profiling.profile_executions``.

Owns the block-scoped form of the settings (what the pytest marker and ``workbench profile
run`` use): every execution started inside the block is profiled with them instead of
workbench.yaml's, and the block collects the profiles it caused.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from pydantic import ValidationError

from workbench._conditions import KINDS, Observation, ProfileKind
from workbench.config import ProfilingConfig, ProfilingTriggerConfig
from workbench.exceptions import ConfigError
from workbench.profiling._watchdog import (
    ProfileListener,
    add_listener,
    pop_settings,
    push_settings,
    remove_listener,
)
from workbench.records import Profile

__all__ = ["profile_executions"]

#: Always true: profile from the execution's first line.
FROM_THE_START = "execution_time >= 0"


class profile_executions(ProfileListener):
    """Profile every execution started inside the block; ``.profiles`` lists what they left.

    >>> with workbench.profiling.profile_executions("cpu", "memory") as session:
    ...     research("llamas")
    >>> session.profiles[0].summary.top_functions[0].name

    ``kinds`` are ``cpu``, ``memory`` and ``async_io`` (memory and async_io not together);
    ``trigger`` is a condition (text or callable, default: from the start) and ``duration`` the
    seconds to profile for (default: until the execution ends). ``settings`` replaces all of
    them with a whole ``ProfilingConfig``.
    """

    def __init__(
        self,
        *kinds: ProfileKind,
        trigger: str | Callable[[Observation], bool] = FROM_THE_START,
        duration: float | None = None,
        heap_dump: bool = False,
        check_interval: float = 0.05,
        output_dir: str | Path = "profiles",
        settings: ProfilingConfig | None = None,
    ) -> None:
        if settings is None:
            chosen: Sequence[ProfileKind] = kinds or ("cpu",)
            try:
                settings = ProfilingConfig(
                    enabled=True,
                    types=[k for k in KINDS if k in chosen] or list(chosen),
                    triggers=[
                        ProfilingTriggerConfig(
                            condition=trigger,
                            profile_type=list(chosen),
                            profile_duration=duration,
                            heap_dump=heap_dump,
                        )
                    ],
                    check_interval=check_interval,
                    output_dir=str(output_dir),
                )
            except ValidationError as exc:
                raise ConfigError(f"profile_executions: {_first_problem(exc)}") from None
        self.settings = settings
        #: Profiles recorded by executions of this block, in the order they were recorded.
        self.profiles: list[Profile] = []
        #: ``(execution_id, kind)`` of each profiler started.
        self.started: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def __enter__(self) -> profile_executions:
        add_listener(self)
        push_settings(self.settings)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        pop_settings(self.settings)
        remove_listener(self)

    def profile_started(self, execution_id: str, kind: str, trigger: str) -> None:
        with self._lock:
            self.started.append((execution_id, kind))

    def profile_recorded(self, profile: Profile, store_path: str) -> None:
        with self._lock:
            self.profiles.append(profile)

    def __repr__(self) -> str:
        kinds: Any = sorted({k for t in self.settings.triggers for k in _kinds(t)})
        return f"<profile_executions {kinds} profiles={len(self.profiles)}>"


def _first_problem(exc: ValidationError) -> str:
    """pydantic's first complaint, as one sentence naming the argument."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "arguments"
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{where}: {message} (got {first.get('input')!r})"


def _kinds(trigger: Any) -> list[str]:
    kinds = trigger.profile_type
    return [kinds] if isinstance(kinds, str) else list(kinds or [])
