"""The built-in metric families computed from a store, for the ``workbench serve-metrics`` sidecar.

A Prometheus registry lives in one process; pipelines run in many. The sidecar reads what
they all recorded in the store and exposes it under the names ``_builtin`` uses in-process
(see its table), so dashboards and alert rules work with either source:

* counters are totals over the whole store (monotonic: recorded rows are never deleted);
* histograms count every finished execution, step and model call into the same buckets;
* rates and concurrency cover ``metrics.rate_window_s`` before the scrape;
* ``pipeline_active_count`` counts executions running now, after the store's liveness check
  (a killed process's execution is not active);
* ``task_queue_size`` is not derivable from a store, and is only exposed in-process.

Each scrape runs a few aggregate queries (one pass over executions, steps and model calls);
results are reused for ``cache_s`` seconds so that several scrapers share one pass. Plenty for
stores of a few million rows; beyond that, scrape the processes themselves.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from workbench.monitoring.prometheus._builtin import DEFAULT_BUCKETS, ResourceCollector

if TYPE_CHECKING:
    from workbench.config import WorkbenchConfig
    from workbench.store import Histogram

__all__ = ["StoreCollector", "store_registry"]


class StoreCollector(Collector):
    """The built-in metric families, aggregated from one store at scrape time."""

    def __init__(
        self,
        path: Path,
        *,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        window_s: float = 300.0,
        cache_s: float = 5.0,
    ) -> None:
        from workbench.store import Store

        self.path = path
        self.buckets = tuple(float(b) for b in buckets)
        self.window_s = window_s
        self.cache_s = cache_s
        self._store = Store(path)  # creates or upgrades the schema; judges liveness
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Metric]] | None = None

    def close(self) -> None:
        self._store.close()

    def describe(self) -> Iterator[Metric]:
        return iter(())  # names are those of _builtin; nothing to check them against here

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] >= self.cache_s:
                self._cached = (now, self._families())
            return iter(self._cached[1])

    # -- the queries ---------------------------------------------------------------------------

    def _histogram(
        self, family: HistogramMetricFamily, labels: list[str], histogram: Histogram | None
    ) -> None:
        if histogram is None or not histogram.count:
            return
        points = [(_le(b), c) for b, c in zip(histogram.bounds, histogram.cumulative, strict=True)]
        family.add_metric(labels, [*points, ("+Inf", histogram.count)], histogram.total)

    def _families(self) -> list[Metric]:
        store = self._store
        since = time.time() - self.window_s
        finished = ("completed", "failed", "interrupted")
        families: list[Metric] = []

        executions = CounterMetricFamily(
            "pipeline_executions", "Pipeline executions finished", labels=["pipeline", "status"]
        )
        duration = HistogramMetricFamily(
            "pipeline_duration_seconds", "Pipeline execution time", labels=["pipeline"]
        )
        for group in store.execution_aggregates(by=("pipeline_id", "status"), statuses=finished):
            executions.add_metric([_name(group.pipeline_id), str(group.status)], group.executions)
        for group in store.execution_aggregates(
            by=("pipeline_id",), statuses=finished, duration_buckets=self.buckets
        ):
            self._histogram(duration, [_name(group.pipeline_id)], group.duration)
        success = GaugeMetricFamily(
            "pipeline_success_rate",
            "Successful executions / finished executions (0-1), over the rate window",
            labels=["pipeline"],
        )
        error = GaugeMetricFamily(
            "pipeline_error_rate",
            "Failed executions / finished executions (0-1), over the rate window",
            labels=["pipeline"],
        )
        for group in store.execution_aggregates(
            by=("pipeline_id",), statuses=("completed", "failed"), ended_since=since
        ):
            ok, count = group.judged_successful, group.executions
            success.add_metric([_name(group.pipeline_id)], ok / count)
            error.add_metric([_name(group.pipeline_id)], (count - ok) / count)
        active = GaugeMetricFamily(
            "pipeline_active_count", "Pipeline executions running now", labels=["pipeline"]
        )
        running: dict[str, int] = {}
        for execution in store.list_executions(status="running", limit=None):
            running[execution.pipeline_id] = running.get(execution.pipeline_id, 0) + 1
        for pipeline, count in running.items():
            active.add_metric([pipeline], count)
        families += [executions, duration, success, error, active]

        tasks = CounterMetricFamily(
            "task_executions", "Steps finished", labels=["pipeline", "task", "status"]
        )
        task_duration = HistogramMetricFamily(
            "task_duration_seconds", "Step execution time", labels=["pipeline", "task"]
        )
        retries = CounterMetricFamily(
            "task_retry_count", "Retries the steps took", labels=["pipeline", "task"]
        )
        ended = ("completed", "failed")
        retried: dict[tuple[str, str], int] = {}
        for step in store.step_aggregates(by=("pipeline_id", "step_id", "status"), statuses=ended):
            pipeline, task = _name(step.pipeline_id), str(step.step_id)
            tasks.add_metric([pipeline, task, str(step.status)], step.steps)
            if step.retries:
                key = (pipeline, task)
                retried[key] = retried.get(key, 0) + step.retries
        for (pipeline, task), count in retried.items():
            retries.add_metric([pipeline, task], count)
        for step in store.step_aggregates(
            by=("pipeline_id", "step_id"), statuses=ended, duration_buckets=self.buckets
        ):
            self._histogram(
                task_duration, [_name(step.pipeline_id), str(step.step_id)], step.duration
            )
        concurrency = GaugeMetricFamily(
            "task_concurrency",
            "Steps running at once, averaged over the rate window",
            labels=["pipeline"],
        )
        for step in store.step_aggregates(
            by=("pipeline_id",), statuses=ended, ended_since=since, busy_cap_s=self.window_s
        ):
            concurrency.add_metric([_name(step.pipeline_id)], step.busy_s / self.window_s)
        families += [tasks, task_duration, retries, concurrency]

        requests = CounterMetricFamily(
            "model_requests", "Model API calls", labels=["provider", "model", "status"]
        )
        tokens = CounterMetricFamily(
            "model_tokens_used", "Tokens used by model calls", labels=["provider", "model", "type"]
        )
        cost = CounterMetricFamily(
            "model_cost_dollars",
            "Cost of model calls in US dollars",
            labels=["provider", "model", "pipeline"],
        )
        latency = HistogramMetricFamily(
            "model_latency_seconds", "Model response time", labels=["provider", "model"]
        )
        model_error = GaugeMetricFamily(
            "model_error_rate",
            "Model calls that failed / model calls (0-1), over the rate window",
            labels=["provider", "model"],
        )
        token_sums: dict[tuple[str, str], list[int]] = {}
        for group in store.model_call_aggregates(
            by=("provider", "model", "pipeline_id", "in_replay"), http=False
        ):
            provider, model = _name(group.provider), _name(group.model)
            if group.in_replay:
                requests.add_metric([provider, model, "replayed"], group.calls)
                continue
            failed = group.errors + group.unanswered  # no answer counts as a failure here
            for status, count in (("error", failed), ("ok", group.calls - failed)):
                if count:  # summed over pipelines below
                    requests.add_metric([provider, model, status], count)
            totals = token_sums.setdefault((provider, model), [0, 0, 0, 0])
            for i, value in enumerate(
                (
                    group.input_tokens,
                    group.output_tokens,
                    group.cache_read_tokens,
                    group.cache_write_tokens,
                )
            ):
                totals[i] += value
            if group.cost_usd:
                cost.add_metric([provider, model, _name(group.pipeline_id)], group.cost_usd)
        requests.samples = _summed(requests.samples)
        for (provider, model), totals in token_sums.items():
            for kind, value in zip(
                ("input", "output", "cache_read", "cache_write"), totals, strict=True
            ):
                if value:
                    tokens.add_metric([provider, model, kind], value)
        for group in store.model_call_aggregates(
            by=("provider", "model"), http=False, in_replays=False, latency_buckets=self.buckets
        ):
            self._histogram(latency, [_name(group.provider), _name(group.model)], group.latency)
        for group in store.model_call_aggregates(
            by=("provider", "model"), http=False, in_replays=False, since=since
        ):
            failed = group.errors + group.unanswered
            labels = [_name(group.provider), _name(group.model)]
            model_error.add_metric(labels, failed / group.calls)
        families += [requests, tokens, cost, latency, model_error]
        return families


def _name(value: str | None) -> str:
    """A label value: what the store holds, ``unknown`` where it holds nothing."""
    return "unknown" if value is None else value


def _le(bound: float) -> str:
    return repr(float(bound))


def _summed(samples: list[Any]) -> list[Any]:
    """Samples with equal name and labels added up (rows grouped by one more column)."""
    merged: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}
    for sample in samples:
        key = (sample.name, tuple(sorted(sample.labels.items())))
        known = merged.get(key)
        merged[key] = sample if known is None else known._replace(value=known.value + sample.value)
    return list(merged.values())


def store_registry(
    path: Path, config: WorkbenchConfig, *, cache_s: float = 5.0
) -> tuple[CollectorRegistry, StoreCollector]:
    """A registry with a store's metrics and this machine's resources (``scope="system"``)."""
    registry = CollectorRegistry(auto_describe=False)
    collector = StoreCollector(
        path,
        buckets=config.metrics.duration_buckets or DEFAULT_BUCKETS,
        window_s=config.metrics.rate_window_s,
        cache_s=cache_s,
    )
    registry.register(collector)
    if config.metrics.resource_metrics:
        registry.register(ResourceCollector("system"))
    return registry, collector
