"""The ``tracing``, ``logging``, ``alerts``, ``alerting``, ``performance``, ``health_checks`` and
``dashboards`` sections (read by workbench.monitoring)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from workbench.config._section import _Section

# -- tracing, logging, alerts, alerting, performance, health_checks, dashboards -----------------
# The observability sections of the Orchestrator documentation, read by workbench.monitoring.

_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def duration_seconds(text: str) -> float:
    """Seconds in a Prometheus duration (``1h30m``, ``5m``, ``250ms``); ``ValueError`` else."""
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(
            f"{text!r} is not a duration; use Prometheus' form, e.g. '30s', '5m', '1h30m'"
        )
    return sum(int(n) * _DURATION_UNITS[u] for n, u in parts)


def _prometheus_duration(value: str) -> str:
    duration_seconds(value)
    return value


_Duration = Annotated[str, AfterValidator(_prometheus_duration)]


class OtelExportConfig(_Section):
    """Where and how spans are exported (``tracing.config``)."""

    service_name: str = "workbench"
    #: OTLP endpoint; default ``http://localhost:4318/v1/traces`` (HTTP) or ``:4317`` (gRPC).
    endpoint: str | None = None
    #: ``None``: gRPC when the endpoint's port is 4317 (OTLP's gRPC port), else HTTP/protobuf.
    protocol: Literal["http/protobuf", "grpc"] | None = None
    sampling_rate: float = Field(default=1.0, ge=0, le=1)
    headers: dict[str, str] = Field(default_factory=dict)
    #: Seconds one export may take, retries included (the exporter's own thread waits, the
    #: application does not).
    timeout: float = Field(default=10.0, gt=0)
    #: Seconds the process's exit may wait for the last traces to be sent; a collector that is
    #: down or silent costs at most this much at exit, and one warning.
    shutdown_timeout: float = Field(default=1.0, gt=0)
    #: ``jaeger`` receives OTLP natively (ports 4317/4318); ``console`` prints spans to stdout.
    exporters: list[Literal["otlp", "jaeger", "console"]] = ["otlp"]  # noqa: RUF012 (pydantic copies defaults)
    propagators: list[Literal["tracecontext", "baggage"]] = ["tracecontext", "baggage"]  # noqa: RUF012


class TracingConfig(_Section):
    """``tracing``: export recorded spans over OTLP (the store keeps them either way)."""

    enabled: bool = False
    provider: Literal["opentelemetry"] = "opentelemetry"
    config: OtelExportConfig = Field(default_factory=OtelExportConfig)
    #: Export model calls' prompts and answers (``gen_ai.input.messages``/``.output.messages``,
    #: OpenInference's ``input.value``/``output.value``), scrubbed as the store is. Off by
    #: default: a trace backend is often read by more people than the store.
    capture_content: bool = False

    @model_validator(mode="before")
    @classmethod
    def _flat_form(cls, data: Any) -> Any:
        # The documentation also writes the exporter's keys directly under ``tracing``; a
        # section that is given at all means "on" unless it says ``enabled: false``.
        if not isinstance(data, dict) or not data:
            return data
        data = dict(data)
        data.setdefault("enabled", True)
        flat = {k: data.pop(k) for k in list(data) if k in OtelExportConfig.model_fields}
        if flat:
            nested = data.get("config") or {}
            data["config"] = {**flat, **nested} if isinstance(nested, dict) else nested
        return data


class LogFilterConfig(_Section):
    """One ``logging.filters`` entry: ``sensitive_data`` (named fields) or ``pii`` (patterns)."""

    type: Literal["sensitive_data", "pii"]
    fields: list[str] = Field(default_factory=list)
    enabled: bool = True


class LogOutputConfig(_Section):
    """One ``logging.outputs`` entry: ``stdout``, ``stderr`` or a rotating ``file``."""

    type: Literal["stdout", "stderr", "file"]
    path: str | None = None
    #: ``daily``/``hourly``/``midnight``, or a size such as ``10MB`` (rotate when larger).
    rotation: str = "daily"
    #: How many rotated files to keep.
    retention: int = Field(default=7, ge=0)
    format: Literal["json", "text"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _nested_config(cls, data: Any) -> Any:
        # The documentation nests a file's settings under ``config:``.
        if isinstance(data, dict) and isinstance(data.get("config"), dict):
            data = {**{k: v for k, v in data.items() if k != "config"}, **data["config"]}
        return data

    @model_validator(mode="after")
    def _file_needs_path(self) -> LogOutputConfig:
        if self.type == "file" and not self.path:
            raise ValueError("a 'file' output needs a path, e.g. path: logs/workbench.log")
        if not re.match(r"^(daily|hourly|midnight|\d+(\.\d+)?\s*(B|KB|MB|GB))$", self.rotation):
            raise ValueError(
                f"rotation {self.rotation!r} is not daily, hourly, midnight or a size like '10MB'"
            )
        return self


_LEVELS = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class LogLevelsConfig(_Section):
    default: _LEVELS = "INFO"
    modules: dict[str, _LEVELS] = Field(default_factory=dict)


class LoggingConfig(_Section):
    """``logging``: structured JSON records, per-module levels, redaction filters, outputs."""

    level: _LEVELS | None = None
    format: Literal["json", "text"] = "json"
    output: Literal["stdout", "stderr"] | None = None
    outputs: list[LogOutputConfig] = Field(default_factory=list)
    levels: LogLevelsConfig = Field(default_factory=LogLevelsConfig)
    filters: list[LogFilterConfig] = Field(default_factory=list)

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class AlertRuleConfig(_Section):
    """One ``alerts.rules`` entry, in Prometheus' alerting-rule terms."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")
    expr: str = Field(min_length=1)
    for_: _Duration | None = Field(default=None, alias="for")
    severity: str = "warning"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class AlertsConfig(_Section):
    """``alerts``: the rules, exported for Prometheus and evaluated in-process."""

    rules: list[AlertRuleConfig] = Field(default_factory=list)
    group: str = "workbench"
    evaluation_interval: _Duration = "1m"

    @model_validator(mode="before")
    @classmethod
    def _bare_list(cls, data: Any) -> Any:
        return {"rules": data} if isinstance(data, list) else data

    @model_validator(mode="after")
    def _unique_names(self) -> AlertsConfig:
        names = [rule.name for rule in self.rules]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"alert rule names must be unique; repeated: {', '.join(twice)}")
        return self


class ReceiverConfig(_Section):
    """One ``alerting.receivers`` entry; its ``type`` follows from its keys when not given."""

    type: Literal["webhook", "slack", "email", "pagerduty", "log"] | None = None
    webhook: str | None = None  # Slack-compatible incoming-webhook URL
    url: str | None = None  # webhook URL (generic), or the PagerDuty events API
    channel: str | None = None
    to: list[str] = Field(default_factory=list)
    sender: str | None = Field(default=None, alias="from")
    smtp_host: str | None = None
    smtp_port: int | None = None
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    routing_key: str | None = None
    level: _LEVELS = "WARNING"
    timeout: float = Field(default=10.0, gt=0)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def kind(self) -> str:
        if self.type is not None:
            return "webhook" if self.type == "slack" else self.type
        if self.webhook or (self.url and not self.routing_key):
            return "webhook"
        if self.to:
            return "email"
        if self.routing_key:
            return "pagerduty"
        return "log"


class RouteConfig(_Section):
    match: dict[str, str] = Field(default_factory=dict)
    receivers: list[str] = Field(min_length=1)
    #: Keep matching later routes after this one (Alertmanager's ``continue``).
    continue_: bool = Field(default=True, alias="continue")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SmtpConfig(_Section):
    host: str = "localhost"
    port: int = 25
    sender: str = Field(default="workbench@localhost", alias="from")
    username: str | None = None
    password: str | None = None
    starttls: bool = False

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class AlertingConfig(_Section):
    """``alerting``: which receivers hear about which alerts."""

    routes: list[RouteConfig] = Field(default_factory=list)
    receivers: dict[str, ReceiverConfig] = Field(default_factory=dict)
    smtp: SmtpConfig = Field(default_factory=SmtpConfig)
    #: Accepted for the documentation's shape: Prometheus sends exported rules' alerts there.
    alertmanager: dict[str, Any] = Field(default_factory=dict)
    notification_channels: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_receivers(self) -> AlertingConfig:
        for i, route in enumerate(self.routes):
            for name in route.receivers:
                if name not in self.receivers:
                    raise ValueError(
                        f"routes[{i}] names receiver {name!r}, which alerting.receivers does "
                        f"not define (defined: {', '.join(sorted(self.receivers)) or 'none'})"
                    )
        return self


_PERCENTILE_KEY = re.compile(r"^p\d{1,2}(\.\d+)?$")


def _sla(value: dict[str, float]) -> dict[str, float]:
    for key, seconds in value.items():
        if not _PERCENTILE_KEY.match(key) or seconds <= 0:
            raise ValueError(
                f"SLA threshold {key}: {seconds!r} must be a percentile key (p50, p95, p99.9) "
                f"with a positive number of seconds"
            )
    return value


class SlaThresholdsConfig(_Section):
    #: Thresholds for every pipeline (``p95: 30``); ``pipelines`` overrides them per pipeline.
    pipeline: dict[str, float] = Field(default_factory=dict)
    pipelines: dict[str, dict[str, float]] = Field(default_factory=dict)
    task: dict[str, dict[str, float]] = Field(default_factory=dict)

    @field_validator("pipeline")
    @classmethod
    def _all(cls, value: dict[str, float]) -> dict[str, float]:
        return _sla(value)

    @field_validator("pipelines", "task")
    @classmethod
    def _each(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for thresholds in value.values():
            _sla(thresholds)
        return value


class LatencyTrackingConfig(_Section):
    enabled: bool = True
    percentiles: list[float] = Field(default_factory=lambda: [0.5, 0.75, 0.9, 0.95, 0.99])
    sla_thresholds: SlaThresholdsConfig = Field(default_factory=SlaThresholdsConfig)

    @field_validator("percentiles")
    @classmethod
    def _fractions(cls, value: list[float]) -> list[float]:
        for q in value:
            if not 0 < q < 1:
                raise ValueError(f"percentile {q!r} must be a fraction between 0 and 1, e.g. 0.95")
        return value


class DetectorConfig(_Section):
    type: Literal["slow_tasks", "queue_backup", "resource_contention"]
    threshold: float | None = Field(default=None, gt=0)
    cpu_threshold: float = Field(default=80.0, gt=0, le=100)
    memory_threshold: float = Field(default=85.0, gt=0, le=100)


class AutoScalingConfig(_Section):
    """Accepted for the documentation's shape; the bottleneck report suggests a worker count."""

    enabled: bool = False
    min_workers: int = Field(default=1, ge=1)
    max_workers: int = Field(default=1, ge=1)
    scale_up_threshold: float = Field(default=0.8, gt=0, le=1)
    scale_down_threshold: float = Field(default=0.3, ge=0, le=1)


class BottleneckDetectionConfig(_Section):
    enabled: bool = True
    analysis_interval: float = Field(default=300.0, gt=0)
    detectors: list[DetectorConfig] = Field(
        default_factory=lambda: [
            DetectorConfig(type="slow_tasks", threshold=2.0),
            DetectorConfig(type="queue_backup", threshold=100),
            DetectorConfig(type="resource_contention"),
        ]
    )
    auto_scaling: AutoScalingConfig = Field(default_factory=AutoScalingConfig)


class PerformanceConfig(_Section):
    """``performance``: latency percentiles with SLAs, and bottleneck detectors."""

    latency_tracking: LatencyTrackingConfig = Field(default_factory=LatencyTrackingConfig)
    bottleneck_detection: BottleneckDetectionConfig = Field(
        default_factory=BottleneckDetectionConfig
    )


_CHECKS = Literal[
    "database", "disk_space", "storage", "memory", "model_availability", "models", "cache"
]


class HealthCheckConfig(_Section):
    """One check: ``database``, ``disk_space`` (``storage``), ``memory``,
    ``model_availability`` (``models``) or ``cache`` (the price table)."""

    name: _CHECKS
    timeout: float = Field(default=5.0, gt=0)
    #: The ``database`` check's statement: the user's own SQL, run as written by
    #: ``Store.run_user_sql`` in the dialect of the store's backend (SQLite's for a file).
    query: str = "SELECT 1"
    providers: list[str] = Field(default_factory=lambda: ["openai", "anthropic"])
    #: Base URL per provider; default: ``OPENAI_BASE_URL``/``ANTHROPIC_BASE_URL`` or the public API.
    urls: dict[str, str] = Field(default_factory=dict)
    #: How long a provider's answer is reused by ``model_availability``: a health endpoint
    #: is polled by load balancers and anyone who can reach it, the providers must not be.
    cache_seconds: float = Field(default=60.0, ge=0)
    min_free_gb: float = Field(default=1.0, ge=0)
    max_usage_percent: float = Field(default=90.0, gt=0, le=100)


class HealthEndpointConfig(_Section):
    path: str = Field(pattern=r"^/")
    checks: list[HealthCheckConfig] = Field(default_factory=list)

    @field_validator("checks", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": item} if isinstance(item, str) else item for item in value]
        return value


def _default_endpoints() -> list[HealthEndpointConfig]:
    basic = ["database", "disk_space", "memory"]
    detailed = [*basic, "model_availability"]
    return [
        HealthEndpointConfig.model_validate({"path": "/health", "checks": basic}),
        HealthEndpointConfig.model_validate({"path": "/health/detailed", "checks": detailed}),
    ]


class PipelineHealthConfig(_Section):
    """How ``PipelineHealth`` judges a pipeline from its recent executions."""

    window: int = Field(default=100, ge=1)  # the last N finished executions
    healthy_success_rate: float = Field(default=0.95, ge=0, le=1)
    degraded_success_rate: float = Field(default=0.8, ge=0, le=1)
    max_avg_latency_s: float | None = Field(default=None, gt=0)


class HealthChecksConfig(_Section):
    """``health_checks``: the ``/health`` endpoints and pipeline health thresholds."""

    endpoints: list[HealthEndpointConfig] = Field(default_factory=_default_endpoints)
    pipeline: PipelineHealthConfig = Field(default_factory=PipelineHealthConfig)


class GrafanaDatasourceConfig(_Section):
    name: str
    type: str
    url: str


class GrafanaConfig(_Section):
    url: str = "http://localhost:3000"
    org_id: int = 1
    datasources: list[GrafanaDatasourceConfig] = Field(default_factory=list)
    dashboards: list[
        Literal[
            "pipeline-overview",
            "model-performance",
            "cost-analysis",
            "error-tracking",
            "resource-utilization",
        ]
    ] = Field(default_factory=list)


class DashboardsConfig(_Section):
    """``dashboards``: the Grafana the shipped dashboards (``dashboards/``) are meant for."""

    grafana: GrafanaConfig = Field(default_factory=GrafanaConfig)


# -- end of the observability sections ----------------------------------------------------------
