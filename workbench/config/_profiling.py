"""The ``profiling`` section (read by workbench.profiling)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    model_validator,
)

from workbench._conditions import parse_condition
from workbench.config._section import _Section
from workbench.exceptions import ConfigError

# -- profiling ---------------------------------------------------------------------------------
# The Orchestrator ``profiling`` section, read by workbench.profiling; the grammar of trigger
# conditions is workbench._conditions, below both.

ProfileType = Literal["cpu", "memory", "async_io"]
_PROFILE_TYPES: tuple[ProfileType, ...] = ("cpu", "memory", "async_io")


def _checked_condition(value: Any) -> Any:
    if callable(value):
        return value  # Callable[[Observation], bool], given from Python
    try:
        parse_condition(value)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    return value


class ProfilingTriggerConfig(_Section):
    """One ``profiling.triggers`` entry: when ``condition`` holds, profile the execution."""

    #: ``"execution_time > 60"``, ``"memory_usage > 1GB"``, ... or a Python callable.
    condition: Annotated[str | Callable[[Any], bool], AfterValidator(_checked_condition)]
    #: Seconds to profile once triggered; ``None``: until the execution ends.
    profile_duration: float | None = Field(default=30.0, gt=0)
    #: Which profilers to start (one or a list); default: the first of ``types``.
    profile_type: ProfileType | list[ProfileType] | None = None
    #: Memory profiles: keep the high-water-mark stacks and memray's flame graph HTML.
    heap_dump: bool = False


class ProfilingConfig(_Section):
    """``profiling``: profilers that start themselves when an execution goes wrong."""

    enabled: bool = True
    types: list[ProfileType] = Field(default_factory=lambda: list(_PROFILE_TYPES))
    triggers: list[ProfilingTriggerConfig] = Field(default_factory=list)
    #: Seconds between two checks of the triggers by the watchdog thread.
    check_interval: float = Field(default=0.05, gt=0, le=60)
    #: Where artifacts go; relative to the configuration file's folder (else the working one).
    output_dir: str = "profiles"
    #: ``auto``: py-spy, else (missing, ptrace refused) the in-process sampler, said so.
    cpu_sampler: Literal["auto", "py-spy", "in-process"] = "auto"
    #: CPU samples per second.
    sampling_rate: int = Field(default=100, ge=1, le=1000)
    #: The py-spy executable; default: beside the Python interpreter, else on PATH.
    py_spy_path: str | None = None
    #: How many functions (and, with heap_dump, stacks) a summary keeps.
    top: int = Field(default=20, ge=1, le=1000)

    @model_validator(mode="after")
    def _triggers_fit_types(self) -> ProfilingConfig:
        for index, trigger in enumerate(self.triggers):
            kinds = trigger.profile_type
            kinds = [kinds] if isinstance(kinds, str) else list(kinds or self.types[:1])
            where = f"triggers[{index}]"
            if not kinds:
                raise ValueError(f"{where}: types is empty; list the profilers in types")
            for kind in kinds:
                if kind not in self.types:
                    raise ValueError(
                        f"{where}: profile_type {kind!r} is not in types {self.types}; add "
                        f"it to types or choose one of them"
                    )
            if "memory" in kinds and "async_io" in kinds:
                raise ValueError(
                    f"{where}: memory and async_io cannot run together (memray and yappi "
                    f"share one interpreter hook); use two triggers"
                )
            if trigger.heap_dump and "memory" not in kinds:
                raise ValueError(
                    f"{where}: heap_dump applies to memory profiles; add profile_type: memory"
                )
        return self

    def output_path(self, source: str | None) -> Path:
        """``output_dir`` resolved against the configuration file's folder (or the cwd)."""
        path = Path(self.output_dir).expanduser()
        if not path.is_absolute():
            path = (Path(source).parent if source is not None else Path.cwd()) / path
        return path.absolute()
