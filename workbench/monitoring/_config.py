"""``MonitoringConfig``: the monitoring sections of workbench.yaml as one typed object.

Owns the view, not the parsing: ``workbench.config`` reads ``workbench.yaml`` once into typed
sections (``monitoring``, ``metrics``, ``tracing``, ``logging``, ``cost_tracking``, ``alerts``,
``alerting``, ``performance``, ``health_checks``, ``dashboards``); this class gathers them, and
takes the documentation's Python keywords (``metrics_enabled``, ``tracing_enabled``,
``logging_level``, ``cost_tracking_enabled``) as overrides of the file.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel

from workbench.config import WorkbenchConfig, load_config
from workbench.exceptions import ConfigError

__all__ = ["MonitoringConfig"]

_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class MonitoringConfig:
    """The monitoring sections, typed; ``config`` is the whole :class:`WorkbenchConfig`.

    >>> MonitoringConfig()                                  # workbench.yaml, or the defaults
    >>> MonitoringConfig(metrics_enabled=True, tracing_enabled=True,
    ...                  logging_level="INFO", cost_tracking_enabled=True)
    >>> MonitoringConfig(path="ops/workbench.yaml").cost_tracking.budgets.daily_limit

    Pass ``.config`` wherever an API takes ``config=`` (``serve_metrics``, ``CostReporter``,
    ``metrics.push``).
    """

    def __init__(
        self,
        *,
        metrics_enabled: bool | None = None,
        tracing_enabled: bool | None = None,
        logging_level: str | None = None,
        cost_tracking_enabled: bool | None = None,
        path: str | os.PathLike[str] | None = None,
        config: WorkbenchConfig | None = None,
    ) -> None:
        base = config if config is not None else load_config(path)
        updates: dict[str, Any] = {}
        for section, key, value in (
            ("metrics", "enabled", metrics_enabled),
            ("tracing", "enabled", tracing_enabled),
            ("logging", "level", _level(logging_level)),
            ("cost_tracking", "enabled", cost_tracking_enabled),
        ):
            if value is not None:
                updates[section] = _with(getattr(base, section), key, value)
        self.config: WorkbenchConfig = base.model_copy(update=updates) if updates else base

    def __repr__(self) -> str:
        return (
            f"MonitoringConfig(metrics_enabled={self.metrics_enabled}, "
            f"tracing_enabled={self.tracing_enabled}, logging_level={self.logging_level!r}, "
            f"cost_tracking_enabled={self.cost_tracking_enabled})"
        )

    @property
    def metrics_enabled(self) -> bool:
        return bool(self.config.monitoring.enabled and self.config.metrics.enabled)

    @property
    def tracing_enabled(self) -> bool:
        return bool(_get(self.config.tracing, "enabled", False))

    @property
    def logging_level(self) -> str | None:
        level = _get(self.config.logging, "level", None)
        return None if level is None else str(level)

    @property
    def cost_tracking_enabled(self) -> bool:
        return self.config.cost_tracking.enabled

    def __getattr__(self, name: str) -> Any:
        # Every section of the file by its own name: .metrics, .cost_tracking, .tracing, ...
        if name != "config" and name in WorkbenchConfig.model_fields:
            return getattr(self.config, name)
        raise AttributeError(name)


def _level(value: str | None) -> str | None:
    if value is None:
        return None
    level = str(value).upper()
    if level not in _LEVELS:
        raise ConfigError(f"logging_level {value!r} is not one of {', '.join(_LEVELS)}")
    return level


def _get(section: BaseModel, key: str, default: Any) -> Any:
    return getattr(section, key, default)


def _with(section: BaseModel, key: str, value: Any) -> Any:
    return section.model_copy(update={key: value})
