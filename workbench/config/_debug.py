"""The ``debug`` and ``pytest`` sections (read by workbench.debug and the pytest plugin)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
    field_validator,
)

from workbench.config._section import _Section

# -- debug, pytest (workbench.debug: sampled debug mode; workbench.pytest_plugin) -------------

#: What a sampled execution keeps in debug mode, each switched on by naming it in ``features``.
DEBUG_FEATURES: tuple[str, ...] = (
    "trace_all_requests",  # every workbench.span and log record (the fine-grained trace)
    "log_model_prompts",  # model calls' requests and responses (prompts and answers)
    "save_intermediate_results",  # workbench.state values, step parameters and results
    "extended_error_details",  # tracebacks with each frame's local variables
)


def _fraction(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(
            f"the sampling rate must be a number from 0 to 1 (0.1 records one execution in "
            f"ten, 1 records all), got {value!r}"
        )
    return float(value)


class DebugSamplingConfig(_Section):
    """``debug.sampling``: which executions debug mode records (decided once, at the start)."""

    #: The fraction of executions recorded, decided from a hash of the execution id.
    rate: float = 1.0
    #: Executions of these users (``record(..., user_id=...)``) are always recorded.
    users: list[str] = Field(default_factory=list)
    #: Executions of these pipelines are always recorded.
    pipelines: list[str] = Field(default_factory=list)

    @field_validator("rate", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        return _fraction(value)


class DebugConfig(_Section):
    """``debug``: record a sample of executions, keeping what ``features`` names.

    Off (the default), every execution is recorded as without this section. On, an execution
    is recorded only when sampled; the others still count in metrics and cost.
    """

    enabled: bool = False
    features: list[str] = Field(default_factory=lambda: list(DEBUG_FEATURES))
    sampling: DebugSamplingConfig = Field(default_factory=DebugSamplingConfig)

    @field_validator("features")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        for name in value:
            if name not in DEBUG_FEATURES:
                raise ValueError(
                    f"unknown debug feature {name!r}; the allowed features are "
                    f"{', '.join(DEBUG_FEATURES)}"
                )
        return value


#: The pytest plugin's record modes, as in pytest-recording (``new`` is its ``new_episodes``).
RECORD_MODES: tuple[str, ...] = ("none", "once", "new", "all", "rewrite")


class LatencyBudgetConfig(_Section):
    """Latency limits in seconds: model-call percentiles, and the test body's total time."""

    p50: float | None = Field(default=None, gt=0)
    p95: float | None = Field(default=None, gt=0)
    p99: float | None = Field(default=None, gt=0)
    total: float | None = Field(default=None, gt=0)


class PytestConfig(_Section):
    """``pytest``: the pytest plugin's defaults; the ``workbench_config`` fixture, command-line
    options and markers override them, in that order."""

    #: ``none``, ``once``, ``new``, ``all`` or ``rewrite``; unset: ``none`` when ``CI`` is set,
    #: else ``once``.
    record_mode: Literal["none", "once", "new", "all", "rewrite"] | None = None
    #: Fail any connection that would leave the machine (loopback is always allowed).
    block_network: bool = False
    allowed_hosts: list[str] = Field(default_factory=list)
    #: One store for every test's recording; unset: ``recordings/<module>.db`` beside each
    #: test module.
    store: str | None = None
    max_cost: float | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, ge=0)
    max_latency: LatencyBudgetConfig | None = None


# -- end of debug, pytest ----------------------------------------------------------------------
