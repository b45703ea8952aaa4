"""``workbench.yaml``: read once into typed objects, with errors that name file, key and value.

This package owns finding and parsing the configuration file (the working directory's
``workbench.yaml``, or the path in ``WORKBENCH_CONFIG``) into one :class:`WorkbenchConfig`, a
typed section per concern, each section's models in a module of its own: ``_foundation``
(``store``, ``capture``, prices), ``_monitoring`` (``monitoring``, ``metrics``,
``cost_tracking``), ``_observability`` (``tracing``, ``logging``, ``alerts``, ``alerting``,
``performance``, ``health_checks``, ``dashboards``), ``_profiling`` and ``_debug`` (``debug``,
``pytest``). Features read their section from here rather than reading YAML themselves.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from workbench.config._debug import (
    DebugConfig,
    DebugSamplingConfig,
    LatencyBudgetConfig,
    PytestConfig,
)
from workbench.config._foundation import (
    CaptureConfig,
    ModelPriceConfig,
    ProviderPricesConfig,
    ProviderRouteConfig,
    StoreConfig,
    provider_routes,
)
from workbench.config._monitoring import (
    BudgetAlertConfig,
    BudgetsConfig,
    CostTrackingConfig,
    MetricsConfig,
    MetricsProviderConfig,
    MonitoringSectionConfig,
    _lift_monitoring_sections,
)
from workbench.config._observability import (
    AlertingConfig,
    AlertRuleConfig,
    AlertsConfig,
    AutoScalingConfig,
    BottleneckDetectionConfig,
    DashboardsConfig,
    DetectorConfig,
    GrafanaConfig,
    GrafanaDatasourceConfig,
    HealthCheckConfig,
    HealthChecksConfig,
    HealthEndpointConfig,
    LatencyTrackingConfig,
    LogFilterConfig,
    LoggingConfig,
    LogLevelsConfig,
    LogOutputConfig,
    OtelExportConfig,
    PerformanceConfig,
    PipelineHealthConfig,
    ReceiverConfig,
    RouteConfig,
    SlaThresholdsConfig,
    SmtpConfig,
    TracingConfig,
)
from workbench.config._profiling import (
    ProfileType,
    ProfilingConfig,
    ProfilingTriggerConfig,
)
from workbench.exceptions import ConfigError

__all__ = [
    "AlertRuleConfig",
    "AlertingConfig",
    "AlertsConfig",
    "AutoScalingConfig",
    "BottleneckDetectionConfig",
    "BudgetAlertConfig",
    "BudgetsConfig",
    "CaptureConfig",
    "CostTrackingConfig",
    "DashboardsConfig",
    "DebugConfig",
    "DebugSamplingConfig",
    "DetectorConfig",
    "GrafanaConfig",
    "GrafanaDatasourceConfig",
    "HealthCheckConfig",
    "HealthChecksConfig",
    "HealthEndpointConfig",
    "LatencyBudgetConfig",
    "LatencyTrackingConfig",
    "LogFilterConfig",
    "LogLevelsConfig",
    "LogOutputConfig",
    "LoggingConfig",
    "MetricsConfig",
    "MetricsProviderConfig",
    "ModelPriceConfig",
    "MonitoringSectionConfig",
    "OtelExportConfig",
    "PerformanceConfig",
    "PipelineHealthConfig",
    "ProfileType",
    "ProfilingConfig",
    "ProfilingTriggerConfig",
    "ProviderPricesConfig",
    "ProviderRouteConfig",
    "PytestConfig",
    "ReceiverConfig",
    "RouteConfig",
    "SlaThresholdsConfig",
    "SmtpConfig",
    "StoreConfig",
    "TracingConfig",
    "WorkbenchConfig",
    "load_config",
]

CONFIG_FILE = "workbench.yaml"
CONFIG_ENV = "WORKBENCH_CONFIG"


class WorkbenchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str | None = Field(default=None, exclude=True)
    store: StoreConfig = Field(default_factory=StoreConfig)
    capture: CaptureConfig = Field(default_factory=CaptureConfig)
    cost_tracking: CostTrackingConfig = Field(default_factory=CostTrackingConfig)
    #: Base URLs of self-hosted or proxied model servers, and whose API each serves.
    providers: list[ProviderRouteConfig] = Field(default_factory=list)
    # Sections owned by later features; accepted now so one file serves the whole workbench.
    monitoring: MonitoringSectionConfig = Field(default_factory=MonitoringSectionConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    tracing: TracingConfig = Field(default_factory=TracingConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    alerting: AlertingConfig = Field(default_factory=AlertingConfig)
    performance: PerformanceConfig = Field(default_factory=PerformanceConfig)
    health_checks: HealthChecksConfig = Field(default_factory=HealthChecksConfig)
    debug: DebugConfig = Field(default_factory=lambda: DebugConfig())
    profiling: ProfilingConfig = Field(default_factory=ProfilingConfig)
    dashboards: DashboardsConfig = Field(default_factory=DashboardsConfig)
    pytest: PytestConfig = Field(default_factory=lambda: PytestConfig())

    @field_validator("providers", mode="before")
    @classmethod
    def _providers_as_list(cls, value: Any) -> Any:
        return provider_routes(value)

    @model_validator(mode="before")
    @classmethod
    def _nested_in_monitoring(cls, data: Any) -> Any:
        return _lift_monitoring_sections(data)

    def store_path(self) -> Path | str | None:
        """The configured store: ``store.url`` as given, or ``store.path`` resolved against
        the configuration file's folder."""
        if self.store.url is not None:
            if not self.store.url.startswith("sqlite:"):
                return self.store.url
            path = Path(self.store.url.removeprefix("sqlite:///")).expanduser()
            if not path.is_absolute() and self.source is not None:
                path = Path(self.source).parent / path
            return path
        if self.store.path is None:
            return None
        path = Path(self.store.path).expanduser()
        if not path.is_absolute() and self.source is not None:
            path = Path(self.source).parent / path
        return path


_cache: dict[tuple[str, int, int], WorkbenchConfig] = {}
_DEFAULT = WorkbenchConfig()
_lock = threading.Lock()


def _config_file() -> tuple[str, os.stat_result] | None:
    """The configuration file in force and its status, with as few system calls as can be:
    every execution asks, so a missing file must cost one failed ``stat``."""
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        try:
            status = os.stat(explicit)
        except OSError:
            status = None
        if status is None or not stat.S_ISREG(status.st_mode):
            raise ConfigError(
                f"{CONFIG_ENV}={explicit!r} names no file; point it at a workbench.yaml or unset it"
            )
        return os.path.abspath(explicit), status
    path = os.path.join(os.getcwd(), CONFIG_FILE)
    try:
        status = os.stat(path)
    except OSError:
        return None
    return (path, status) if stat.S_ISREG(status.st_mode) else None


def load_config(path: str | os.PathLike[str] | None = None) -> WorkbenchConfig:
    """Read ``workbench.yaml`` (cached per file and modification time); defaults if none."""
    if path is None:
        found = _config_file()
        if found is None:
            return _DEFAULT
        name, status = found
    else:
        name = os.path.abspath(path)
        try:
            status = os.stat(name)
        except OSError as exc:
            raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from exc
    key = (name, status.st_mtime_ns, status.st_size)
    with _lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    config = _parse(Path(name))
    with _lock:
        _cache[key] = config
    return config


def _parse(file: Path) -> WorkbenchConfig:
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {file}: {exc.strerror}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{file}: not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); save it as "
            f"UTF-8 (most editors offer it under 'Save with encoding')"
        ) from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f", line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"{file}{line}: not valid YAML ({exc}); fix the syntax") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{file}: the top level must be a mapping of sections (store, capture, "
            f"cost_tracking, ...), not {type(raw).__name__}"
        )
    try:
        return WorkbenchConfig.model_validate({**raw, "source": str(file)})
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        value = first.get("input")
        allowed = first["msg"]
        if first["type"] == "extra_forbidden":
            allowed = f"allowed keys here: {', '.join(sorted(_fields_at(first['loc'][:-1])))}"
        raise ConfigError(f"{file}: key {key!r} has value {value!r}: {allowed}") from exc


def _fields_at(loc: tuple[int | str, ...]) -> list[str]:
    """The keys a model accepts at ``loc`` (for an "unknown key" message)."""
    model: Any = WorkbenchConfig
    for part in loc:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None or not isinstance(field.annotation, type):
            return []
        model = field.annotation
    return [name for name in getattr(model, "model_fields", {}) if name != "source"]
