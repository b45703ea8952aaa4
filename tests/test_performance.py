"""Latency percentiles with SLA thresholds, and the bottleneck detectors, from a real store."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

import workbench
from workbench.config import PerformanceConfig, WorkbenchConfig
from workbench.monitoring.reports._performance import PerformanceMonitor, percentile
from workbench.monitoring.reports._resources import ResourceMonitor, ResourceUsage
from workbench.store import Store


def _run(store: Store, pipeline: str, **sleeps: float) -> None:
    with workbench.record(pipeline, inputs={}, store=store):
        for task, seconds in sleeps.items():
            with workbench.step(task):
                time.sleep(seconds)


def _config(data: dict[str, object]) -> PerformanceConfig:
    return WorkbenchConfig.model_validate({"performance": data}).performance


def test_percentiles_and_sla_per_pipeline_and_task(any_store: Store) -> None:
    """Percentiles of execution and step durations are reported, and an SLA a task misses
    (per task) or a pipeline misses (per pipeline id) is a violation; met ones are not (on
    both backends)."""
    store = any_store
    for _ in range(3):
        _run(store, "research_assistant", web_search=0.001, ai_analysis=0.03)
    _run(store, "other", web_search=0.001)
    config = _config(
        {
            "latency_tracking": {
                "percentiles": [0.5, 0.95],
                "sla_thresholds": {
                    "pipeline": {"p50": 10, "p95": 30},
                    "pipelines": {"research_assistant": {"p95": 0.01}},
                    "task": {"web_search": {"p50": 2, "p95": 5}, "ai_analysis": {"p99": 0.02}},
                },
            }
        }
    )
    report = PerformanceMonitor(store, config).latency_report()
    research = report.pipelines["research_assistant"]
    assert research.count == 3 and set(research.percentiles) == {"p50", "p95"}
    assert research.percentiles["p50"] <= research.percentiles["p95"] <= research.max_s
    assert research.sla == {"p50": 10, "p95": 0.01}
    analysis = report.tasks["ai_analysis"]
    assert "p99" in analysis.percentiles  # an SLA percentile is computed even if not listed
    violated = {(v.scope, v.name, v.percentile) for v in report.violations}
    assert violated == {("pipeline", "research_assistant", "p95"), ("task", "ai_analysis", "p99")}
    assert report.tasks["web_search"].count == 4
    only = PerformanceMonitor(store, config).latency_report(pipeline_id="other")
    assert set(only.pipelines) == {"other"} and only.tasks["web_search"].count == 1


def test_slow_task_detector_flags_runs_slower_than_the_average(store: Store) -> None:
    """A step ×N slower than the average of the task's other runs is a slow_tasks finding."""
    for _ in range(4):
        _run(store, "p", fetch=0.002)
    _run(store, "p", fetch=0.06)
    config = _config(
        {"bottleneck_detection": {"detectors": [{"type": "slow_tasks", "threshold": 2.0}]}}
    )
    found = PerformanceMonitor(store, config).detect_bottlenecks()
    assert len(found) == 1
    (slow,) = found
    assert slow.kind == "slow_tasks" and slow.subject == "fetch"
    assert slow.value > 2.0 and "occurrence 0" in slow.detail
    assert slow.execution_id is not None


def test_queue_backup_and_resource_contention(store: Store) -> None:
    """Open steps above the queue threshold and CPU/memory above theirs are reported."""
    config = _config(
        {
            "bottleneck_detection": {
                "detectors": [
                    {"type": "queue_backup", "threshold": 1},
                    {"type": "resource_contention", "cpu_threshold": 80, "memory_threshold": 85},
                ]
            }
        }
    )
    busy = ResourceUsage(time.time(), 95.0, 50.0, 100.0, 1000.0, 90.0, 2, 0, 0, 0, 0)
    monitor = PerformanceMonitor(store, config)
    with workbench.record("p", inputs={}, store=store):
        with workbench.step("a"), workbench.step("b"):
            found = monitor.detect_bottlenecks(usage=busy)
    assert {(b.kind, b.subject) for b in found} == {
        ("queue_backup", "queue"),
        ("resource_contention", "cpu"),
        ("resource_contention", "memory"),
    }
    calm = ResourceUsage(time.time(), 10.0, 1.0, 100.0, 1000.0, 20.0, 0, 0, 0, 0, 0)
    assert monitor.detect_bottlenecks(usage=calm) == []  # the steps have finished


def test_resource_monitor_current_usage_and_history() -> None:
    """Current usage has sane numbers; history keeps the samples with peaks and averages."""
    monitor = ResourceMonitor(interval_s=0.01)
    first = monitor.get_current_usage()
    assert 0 <= first.cpu_percent <= 100 and 0 < first.memory_percent <= 100
    assert 0 < first.memory_mb <= first.memory_limit_mb
    with monitor:
        deadline = time.time() + 5
        while len(monitor.get_usage_history(hours=1).samples) < 4 and time.time() < deadline:
            time.sleep(0.01)
    history = monitor.get_usage_history(hours=1)
    assert len(history.samples) >= 4
    assert history.max_memory_mb >= history.avg_memory_mb > 0
    assert history.max_cpu_percent >= history.avg_cpu_percent >= 0
    assert monitor.get_usage_history(hours=0).samples == ()


def test_resource_monitor_counts_active_tasks(store: Store) -> None:
    """active_tasks counts this process's steps that are running."""
    monitor = ResourceMonitor(store=store)
    with workbench.record("p", inputs={}, store=store), workbench.step("outer"):
        with workbench.step("inner"):
            assert monitor.get_current_usage().active_tasks == 2
    assert monitor.get_current_usage().active_tasks == 0


@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=50), st.floats(0, 1))
def test_percentile_is_within_range_and_monotonic(values: list[float], q: float) -> None:
    """A percentile lies between min and max, and never decreases as q grows."""
    value = percentile(values, q)
    assert min(values) <= value <= max(values)
    assert percentile(values, q / 2) <= value + 1e-9


def test_percentile_matches_linear_interpolation() -> None:
    """p50 of an even count interpolates between the two middle values."""
    assert percentile([1, 2, 3, 4], 0.5) == pytest.approx(2.5)
    assert percentile([5.0], 0.99) == 5.0
    assert percentile([], 0.5) == 0.0


def test_bad_sla_keys_are_refused() -> None:
    """An SLA key that is not a percentile is a clear configuration error."""
    with pytest.raises(ValueError, match="percentile key"):
        _config({"latency_tracking": {"sla_thresholds": {"task": {"x": {"median": 2}}}}})
