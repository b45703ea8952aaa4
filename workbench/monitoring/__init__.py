"""Monitoring: Prometheus metrics, cost budgets and reports, traces, logs, alerts and health.

>>> from workbench.monitoring import metrics, monitor, CostReporter, MonitoringConfig
>>> processed = metrics.Counter("processed_items_total", "Items processed", labels=["status"])
>>> with tracer.start_span("rerank", attributes={"k": 5}) as span: ...

The built-in metrics are kept by the recorder without any code (see ``_builtin``); budgets in
``cost_tracking`` act before each model call (``_budget``); ``serve_metrics()`` serves this
process's metrics and ``workbench serve-metrics`` a store's. Modules that add HTTP endpoints
register them in ``_server.routes`` when imported here (``_health``: ``/health``).
Traces are recorded in the store and exported over OTLP when ``tracing`` is on (``_otel``);
``configure_logging`` installs JSON logs (``_logs``); alert rules are exported for Prometheus
and evaluated in-process (``_alerts``, ``_receivers``); ``PerformanceMonitor``,
``PipelineHealth`` and ``ResourceMonitor`` read the store and the machine.
"""

from workbench.monitoring._alerts import Alert, AlertManager, export_rules
from workbench.monitoring._budget import BudgetAlert, on_budget_alert
from workbench.monitoring._config import MonitoringConfig
from workbench.monitoring._cost_report import CostReporter, CostTrends, DailyCostReport
from workbench.monitoring._custom import CustomMetric, monitor
from workbench.monitoring._health import (
    HealthChecker,
    HealthReport,
    PipelineHealth,
    PipelineStatus,
)
from workbench.monitoring._logs import (
    JsonFormatter,
    PiiFilter,
    SensitiveDataFilter,
    configure_logging,
)
from workbench.monitoring._metrics import metrics
from workbench.monitoring._performance import Bottleneck, LatencyReport, PerformanceMonitor
from workbench.monitoring._resources import ResourceMonitor, ResourceUsage, UsageHistory
from workbench.monitoring._server import MetricsServer, serve_metrics
from workbench.monitoring._tracing import StatusCode, tracer

__all__ = [
    "Alert",
    "AlertManager",
    "Bottleneck",
    "BudgetAlert",
    "CostReporter",
    "CostTrends",
    "CustomMetric",
    "DailyCostReport",
    "HealthChecker",
    "HealthReport",
    "JsonFormatter",
    "LatencyReport",
    "MetricsServer",
    "MonitoringConfig",
    "PerformanceMonitor",
    "PiiFilter",
    "PipelineHealth",
    "PipelineStatus",
    "ResourceMonitor",
    "ResourceUsage",
    "SensitiveDataFilter",
    "StatusCode",
    "UsageHistory",
    "configure_logging",
    "export_rules",
    "metrics",
    "monitor",
    "on_budget_alert",
    "serve_metrics",
    "tracer",
]
