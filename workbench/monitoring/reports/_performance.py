"""Latency percentiles with SLA thresholds, and bottleneck detectors, read from the store.

Owns the ``performance`` section: :meth:`PerformanceMonitor.latency_report` computes the
configured percentiles of execution durations per pipeline and of step durations per task and
checks them against ``sla_thresholds``; :meth:`PerformanceMonitor.detect_bottlenecks` runs the
``slow_tasks``, ``queue_backup`` and ``resource_contention`` detectors. Everything is read from
the store, so the answers cover every process that records into it; the machine's load comes
from :class:`workbench.monitoring.ResourceMonitor`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from workbench._stats import percentile
from workbench.config import PerformanceConfig, WorkbenchConfig, load_config
from workbench.monitoring.reports._resources import ResourceMonitor, ResourceUsage

if TYPE_CHECKING:
    from workbench.store import Store

__all__ = [
    "Bottleneck",
    "LatencyReport",
    "LatencyStats",
    "PerformanceMonitor",
    "SlaViolation",
    "percentile",
]

_MAX_SLOW = 100  # slow task occurrences reported, slowest first


def _key(q: float) -> str:
    """``0.95`` → ``"p95"``, ``0.999`` → ``"p99.9"``."""
    return f"p{q * 100:.10g}"


@dataclass(frozen=True, slots=True)
class SlaViolation:
    """A percentile above its threshold: ``scope`` is ``pipeline`` or ``task``."""

    scope: str
    name: str
    percentile: str
    threshold_s: float
    actual_s: float


@dataclass(frozen=True, slots=True)
class LatencyStats:
    """Durations of one pipeline's executions or one task's steps."""

    scope: str
    name: str
    count: int
    mean_s: float
    max_s: float
    percentiles: dict[str, float]
    sla: dict[str, float]
    violations: tuple[SlaViolation, ...]


@dataclass(frozen=True, slots=True)
class LatencyReport:
    pipelines: dict[str, LatencyStats]
    tasks: dict[str, LatencyStats]

    @property
    def violations(self) -> list[SlaViolation]:
        return [
            v
            for stats in (*self.pipelines.values(), *self.tasks.values())
            for v in stats.violations
        ]


@dataclass(frozen=True, slots=True)
class Bottleneck:
    """One finding. ``kind`` is the detector; ``subject`` what it is about (a task, ``cpu``,
    ``memory``, ``queue``); ``value`` against ``threshold``; ``detail`` says it in words."""

    kind: str
    subject: str
    value: float
    threshold: float
    detail: str
    execution_id: str | None = None


def _since(value: datetime | float | None) -> float | None:
    if value is None:
        return None
    return value.timestamp() if isinstance(value, datetime) else float(value)


class PerformanceMonitor:
    """Latency percentiles and bottlenecks of the executions in a store.

    ``PerformanceMonitor()`` reads the default store with ``workbench.yaml``'s ``performance``
    section; pass ``store=`` and ``config=`` to choose.
    """

    def __init__(
        self,
        store: Store | None = None,
        config: PerformanceConfig | WorkbenchConfig | None = None,
        *,
        resources: ResourceMonitor | None = None,
    ) -> None:
        if store is None:
            from workbench.store import open_store

            store = open_store()
        self.store = store
        if config is None:
            config = load_config()
        self.config = config.performance if isinstance(config, WorkbenchConfig) else config
        self._resources = resources

    def _flushed(self) -> Store:
        self.store.flush(strict=False)
        return self.store

    # -- latency ----------------------------------------------------------------------------

    def latency_report(
        self, *, pipeline_id: str | None = None, since: datetime | float | None = None
    ) -> LatencyReport:
        """Percentiles of finished executions per pipeline and of finished steps per task."""
        tracking = self.config.latency_tracking
        start = _since(since)
        store = self._flushed()
        by_pipeline: dict[str, list[float]] = {}
        for execution in store.execution_timings(since=start, pipeline_id=pipeline_id):
            by_pipeline.setdefault(execution.pipeline_id, []).append(execution.duration_s)
        by_task: dict[str, list[float]] = {}
        for step in store.step_timings(
            pipeline_id=pipeline_id, executions_since=start, finished_executions=True
        ):
            by_task.setdefault(step.step_id, []).append(step.duration_s)
        sla = tracking.sla_thresholds
        pipelines = {
            name: self._stats(
                "pipeline", name, values, {**sla.pipeline, **sla.pipelines.get(name, {})}
            )
            for name, values in sorted(by_pipeline.items())
        }
        tasks = {
            name: self._stats("task", name, values, sla.task.get(name, {}))
            for name, values in sorted(by_task.items())
        }
        return LatencyReport(pipelines, tasks)

    def _stats(
        self, scope: str, name: str, values: list[float], thresholds: dict[str, float]
    ) -> LatencyStats:
        wanted = {_key(q): q for q in self.config.latency_tracking.percentiles}
        for key in thresholds:  # an SLA on a percentile not listed is still computed
            wanted.setdefault(key, float(key[1:]) / 100)
        percentiles = {
            key: percentile(values, q) for key, q in sorted(wanted.items(), key=lambda kv: kv[1])
        }
        violations = tuple(
            SlaViolation(scope, name, key, limit, percentiles[key])
            for key, limit in thresholds.items()
            if percentiles[key] > limit
        )
        return LatencyStats(
            scope=scope,
            name=name,
            count=len(values),
            mean_s=sum(values) / len(values),
            max_s=max(values),
            percentiles=percentiles,
            sla=dict(thresholds),
            violations=violations,
        )

    # -- bottlenecks --------------------------------------------------------------------------

    def detect_bottlenecks(
        self,
        *,
        since: datetime | float | None = None,
        now: float | None = None,
        queue_size: int | None = None,
        usage: ResourceUsage | None = None,
    ) -> list[Bottleneck]:
        """Run the configured detectors.

        ``slow_tasks`` looks at the steps that started in the last ``analysis_interval``
        seconds (or ``since``) and reports each that took more than ``threshold`` times the
        average of the task's *other* recorded runs. ``queue_backup`` compares ``queue_size``
        (default: steps started and not yet finished in running executions) with its threshold.
        ``resource_contention`` compares the machine's CPU and memory use (``usage``, default:
        sampled now) with ``cpu_threshold`` and ``memory_threshold``.
        """
        import time

        detection = self.config.bottleneck_detection
        if not detection.enabled:
            return []
        now = time.time() if now is None else now
        start = _since(since)
        if start is None:
            start = now - detection.analysis_interval
        found: list[Bottleneck] = []
        for detector in detection.detectors:
            if detector.type == "slow_tasks":
                found += self._slow_tasks(start, detector.threshold or 2.0)
            elif detector.type == "queue_backup":
                found += self._queue_backup(queue_size, detector.threshold or 100)
            else:
                if usage is None:
                    monitor = self._resources or ResourceMonitor()
                    usage = monitor.get_current_usage()
                found += _contention(usage, detector.cpu_threshold, detector.memory_threshold)
        return found

    def _slow_tasks(self, start: float, factor: float) -> list[Bottleneck]:
        store = self._flushed()
        totals = {
            group.step_id: (group.duration.total, group.duration.count)
            for group in store.step_aggregates(by=("step_id",))
        }
        found: list[Bottleneck] = []
        for step in store.step_timings(since=start):
            total, count = totals[step.step_id]
            if count < 2:
                continue
            duration = step.duration_s
            others = (total - duration) / (count - 1)
            if others > 0 and duration > factor * others:
                ratio = duration / others
                found.append(
                    Bottleneck(
                        kind="slow_tasks",
                        subject=step.step_id,
                        value=ratio,
                        threshold=factor,
                        detail=(
                            f"task {step.step_id!r} (occurrence {step.occurrence}) took "
                            f"{duration:.3g}s, {ratio:.1f}x its average of {others:.3g}s"
                        ),
                        execution_id=step.execution_id,
                    )
                )
        found.sort(key=lambda b: b.value, reverse=True)
        return found[:_MAX_SLOW]

    def _queue_backup(self, queue_size: int | None, threshold: float) -> list[Bottleneck]:
        if queue_size is None:
            # Steps that started and have not finished, in executions still running: work the
            # pipelines have taken on and not yet got through.
            self.store.list_executions(status="running", limit=1)  # marks dead runs interrupted
            queue_size = self._flushed().running_steps()
        if queue_size <= threshold:
            return []
        return [
            Bottleneck(
                kind="queue_backup",
                subject="queue",
                value=float(queue_size),
                threshold=threshold,
                detail=f"{queue_size} tasks waiting or running, above the threshold of "
                f"{threshold:g}",
            )
        ]


def _contention(usage: ResourceUsage, cpu: float, memory: float) -> list[Bottleneck]:
    found = []
    if usage.cpu_percent > cpu:
        found.append(
            Bottleneck(
                "resource_contention",
                "cpu",
                usage.cpu_percent,
                cpu,
                f"CPU at {usage.cpu_percent:.0f}%, above {cpu:g}%",
            )
        )
    if usage.memory_percent > memory:
        found.append(
            Bottleneck(
                "resource_contention",
                "memory",
                usage.memory_percent,
                memory,
                f"memory at {usage.memory_percent:.0f}%, above {memory:g}%",
            )
        )
    return found
