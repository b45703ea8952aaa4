"""The ``monitoring``, ``metrics`` and ``cost_tracking`` sections (read by workbench.monitoring:
metrics, budgets, cost reports)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
)

from workbench.config._foundation import ProviderPricesConfig
from workbench.config._section import _Section

# -- monitoring, metrics, cost_tracking (workbench.monitoring: metrics, budgets, cost) ----------


class BudgetsConfig(_Section):
    """``cost_tracking.budgets``: spend limits in US dollars; ``None`` is no limit.

    Days and months are those of ``cost_tracking.timezone``; ``per_user_limit`` is per user
    (``workbench.record(..., user_id=...)``) per day.
    """

    daily_limit: float | None = Field(default=None, gt=0)
    monthly_limit: float | None = Field(default=None, gt=0)
    per_user_limit: float | None = Field(default=None, gt=0)


class BudgetAlertConfig(_Section):
    """One ``cost_tracking.alerts`` entry: at ``threshold`` (a fraction of a budget), act.

    ``warn`` logs a warning and emits a budget alert; ``throttle`` delays each new model call
    by ``delay_s``, multiplied by ``backoff_multiplier`` for each further throttled call, up to
    ``max_delay_s``; ``stop`` refuses new model calls with ``BudgetExceededError``.
    """

    threshold: float = Field(gt=0)
    action: Literal["warn", "throttle", "stop"]
    delay_s: float = Field(default=1.0, ge=0)
    backoff_multiplier: float = Field(default=2.0, ge=1)
    max_delay_s: float = Field(default=30.0, ge=0)


def _time_zone(name: str) -> str:
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{name!r} is not a time zone; use an IANA name such as 'UTC' or 'Europe/Paris'"
        ) from None
    return name


class CostTrackingConfig(_Section):
    """``cost_tracking``: price overrides per provider and model, budgets and their alerts.

    With budgets set and no ``alerts``, a budget stops new model calls when it is spent
    (``[{threshold: 1.0, action: stop}]``).
    """

    enabled: bool = True
    providers: dict[str, ProviderPricesConfig] = Field(default_factory=dict)
    budgets: BudgetsConfig = Field(default_factory=BudgetsConfig)
    alerts: list[BudgetAlertConfig] = Field(default_factory=list)
    #: The time zone whose days and months the budgets and cost reports count in.
    timezone: Annotated[str, AfterValidator(_time_zone)] = "UTC"


class MetricsProviderConfig(_Section):
    """One ``providers`` entry of ``monitoring`` or ``metrics``: where metrics (or traces) go."""

    type: Literal["prometheus", "opentelemetry"]
    endpoint: str | None = None
    #: A Prometheus Pushgateway URL; ``metrics.push()`` and ``push_on_finish`` push there.
    pushgateway: str | None = None


class MetricsConfig(_Section):
    """``metrics``: the Prometheus metrics workbench keeps, serves and pushes."""

    #: Keep the built-in metrics and the steps' custom metrics (off: neither is updated).
    enabled: bool = True
    providers: list[MetricsProviderConfig] = Field(default_factory=list)
    #: Prometheus' own settings in the documentation's file; workbench does not use them.
    retention: str | None = None
    scrape_interval: str | None = None
    #: Where ``workbench serve-metrics`` and ``serve_metrics()`` listen.
    host: str = "127.0.0.1"
    port: int = Field(default=9464, ge=0, le=65535)
    #: The Pushgateway job name, and whether each finished execution pushes this process's metrics.
    job: str = Field(default="workbench", min_length=1)
    push_on_finish: bool = False
    #: Memory, CPU, disk and network gauges, sampled (psutil) when metrics are scraped.
    resource_metrics: bool = True
    #: Seconds over which ``pipeline_success_rate``/``pipeline_error_rate``/``model_error_rate``
    #: are computed.
    rate_window_s: float = Field(default=300.0, gt=0)
    #: Histogram buckets (seconds) of the pipeline, task and model duration metrics.
    duration_buckets: list[float] | None = None

    def pushgateway(self, monitoring: MonitoringSectionConfig | None = None) -> str | None:
        """The first Pushgateway URL of ``metrics.providers``, else of ``monitoring.providers``."""
        providers = [*self.providers, *(monitoring.providers if monitoring else [])]
        return next((p.pushgateway for p in providers if p.pushgateway), None)


class MonitoringSectionConfig(_Section):
    """``monitoring``: the switch for metrics and where they go.

    The documentation also nests whole sections under ``monitoring`` (``monitoring.metrics``,
    ``monitoring.tracing``, ...); they are read as the top-level sections of the same name.
    """

    enabled: bool = True
    providers: list[MetricsProviderConfig] = Field(default_factory=list)


#: Sections that may be written under ``monitoring:`` as in the documentation's full example.
_NESTABLE_IN_MONITORING = (
    "metrics",
    "tracing",
    "logging",
    "alerts",
    "alerting",
    "performance",
    "health_checks",
    "dashboards",
    "cost_tracking",
)


def _lift_monitoring_sections(data: Any) -> Any:
    """Move ``monitoring.<section>`` to the top level, refusing a section given twice."""
    if not isinstance(data, dict) or not isinstance(data.get("monitoring"), dict):
        return data
    monitoring = dict(data["monitoring"])
    data = dict(data)
    for name in _NESTABLE_IN_MONITORING:
        if name in monitoring:
            if name in data:
                raise ValueError(
                    f"section {name!r} is given twice, at the top level and under "
                    f"'monitoring'; keep one of them"
                )
            data[name] = monitoring.pop(name)
    data["monitoring"] = monitoring
    return data


# -- end of monitoring, metrics, cost_tracking --------------------------------------------------
