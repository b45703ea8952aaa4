"""Monitoring: Prometheus metrics, cost budgets and reports, traces, logs, alerts and health.

>>> from workbench.monitoring import metrics, monitor, CostReporter, MonitoringConfig
>>> processed = metrics.Counter("processed_items_total", "Items processed", labels=["status"])
>>> with tracer.start_span("rerank", attributes={"k": 5}) as span: ...

The code is split by concept, one subpackage each (their modules are private; import the
names below from ``workbench.monitoring``):

- ``prometheus``: the metrics registry (``_metrics``), the built-in metrics the recorder keeps
  without any code (``_builtin``), a step's custom metrics (``_custom``), the HTTP server
  (``_server``: ``serve_metrics()`` serves this process's metrics) and the store's metrics for
  ``workbench serve-metrics`` (``_store_metrics``). The package is not called ``metrics``:
  ``workbench.monitoring.metrics`` is the registry object, and a subpackage of that name would
  shadow it.
- ``cost``: budgets in ``cost_tracking``, acting before each model call (``_budget``), and cost
  reports (``_cost_report``).
- ``alerts``: alert rules exported for Prometheus and evaluated in-process (``_alerts``) and
  their receivers (``_receivers``).
- ``tracing``: the ``tracer`` (``_tracing``), OTLP export of recorded traces when ``tracing`` is
  on (``_otel``) with its GenAI attributes (``_genai``), and JSON logs (``_logs``).
- ``reports``: ``PipelineHealth`` (``_health``), ``PerformanceMonitor`` (``_performance``) and
  ``ResourceMonitor`` (``_resources``) read the store and the machine.

Modules that add HTTP endpoints register them in ``prometheus._server.routes`` when imported
here (``reports._health``: ``/health``), which is why every module is imported eagerly.
"""

from workbench.monitoring._config import MonitoringConfig
from workbench.monitoring.alerts._alerts import Alert, AlertManager, export_rules
from workbench.monitoring.cost._budget import BudgetAlert, on_budget_alert
from workbench.monitoring.cost._cost_report import CostReporter, CostTrends, DailyCostReport
from workbench.monitoring.prometheus._custom import CustomMetric, monitor
from workbench.monitoring.prometheus._metrics import metrics
from workbench.monitoring.prometheus._server import MetricsServer, serve_metrics
from workbench.monitoring.reports._health import (
    HealthChecker,
    HealthReport,
    PipelineHealth,
    PipelineStatus,
)
from workbench.monitoring.reports._performance import Bottleneck, LatencyReport, PerformanceMonitor
from workbench.monitoring.reports._resources import ResourceMonitor, ResourceUsage, UsageHistory
from workbench.monitoring.tracing._logs import (
    JsonFormatter,
    PiiFilter,
    SensitiveDataFilter,
    configure_logging,
)
from workbench.monitoring.tracing._tracing import StatusCode, tracer

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
