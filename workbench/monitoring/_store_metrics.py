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

import sqlite3
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

from workbench.monitoring._builtin import DEFAULT_BUCKETS, ResourceCollector

if TYPE_CHECKING:
    from workbench.config import WorkbenchConfig

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
        self.buckets = tuple(buckets)
        self.window_s = window_s
        self.cache_s = cache_s
        self._store = Store(path)  # creates or upgrades the schema; judges liveness
        self._conn = sqlite3.connect(
            path, timeout=60, isolation_level=None, check_same_thread=False
        )
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Metric]] | None = None

    def close(self) -> None:
        self._conn.close()
        self._store.close()

    def describe(self) -> Iterator[Metric]:
        return iter(())  # names are those of _builtin; nothing to check them against here

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] >= self.cache_s:
                try:
                    self._cached = (now, self._families())
                except sqlite3.Error as exc:
                    from workbench.store._errors import store_error

                    raise store_error(exc, self.path, "reading metrics from") from exc
            return iter(self._cached[1])

    # -- the queries ---------------------------------------------------------------------------

    def _histogram_sql(self, column: str) -> str:
        counts = ", ".join(f"SUM({column} <= {float(b)!r})" for b in self.buckets)
        return f"COUNT({column}), SUM({column}), {counts}"

    def _histogram(
        self, family: HistogramMetricFamily, labels: list[str], row: Sequence[Any]
    ) -> None:
        count, total, *cumulative = row
        if not count:
            return
        points = [(_le(b), c or 0) for b, c in zip(self.buckets, cumulative, strict=True)]
        family.add_metric(labels, [*points, ("+Inf", count)], total or 0.0)

    def _families(self) -> list[Metric]:
        q = self._conn.execute
        since = time.time() - self.window_s
        families: list[Metric] = []

        executions = CounterMetricFamily(
            "pipeline_executions", "Pipeline executions finished", labels=["pipeline", "status"]
        )
        duration = HistogramMetricFamily(
            "pipeline_duration_seconds", "Pipeline execution time", labels=["pipeline"]
        )
        for pipeline, status, count in q(
            "SELECT pipeline_id, status, COUNT(*) FROM executions WHERE status != 'running' "
            "GROUP BY pipeline_id, status"
        ):
            executions.add_metric([pipeline, status], count)
        for pipeline, *row in q(
            f"SELECT pipeline_id, {self._histogram_sql('duration_s')} FROM executions "
            f"WHERE status != 'running' GROUP BY pipeline_id"
        ):
            self._histogram(duration, [pipeline], row)
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
        for pipeline, finished, ok in q(
            "SELECT pipeline_id, COUNT(*), SUM(COALESCE(success, status = 'completed')) "
            "FROM executions WHERE status IN ('completed', 'failed') AND ended_at >= ? "
            "GROUP BY pipeline_id",
            (since,),
        ):
            success.add_metric([pipeline], ok / finished)
            error.add_metric([pipeline], (finished - ok) / finished)
        active = GaugeMetricFamily(
            "pipeline_active_count", "Pipeline executions running now", labels=["pipeline"]
        )
        running: dict[str, int] = {}
        for execution in self._store.list_executions(status="running", limit=None):
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
        step_join = (
            "FROM steps s JOIN executions e ON e.id = s.execution_id "
            "WHERE s.status IN ('completed', 'failed')"
        )
        retried: dict[tuple[str, str], int] = {}
        for pipeline, task, status, count, step_retries in q(
            f"SELECT e.pipeline_id, s.step_id, s.status, COUNT(*), SUM(s.retries) {step_join} "
            f"GROUP BY e.pipeline_id, s.step_id, s.status"
        ):
            tasks.add_metric([pipeline, task, status], count)
            if step_retries:
                key = (pipeline, task)
                retried[key] = retried.get(key, 0) + step_retries
        for (pipeline, task), count in retried.items():
            retries.add_metric([pipeline, task], count)
        for pipeline, task, *row in q(
            f"SELECT e.pipeline_id, s.step_id, {self._histogram_sql('s.duration_s')} "
            f"{step_join} GROUP BY e.pipeline_id, s.step_id"
        ):
            self._histogram(task_duration, [pipeline, task], row)
        concurrency = GaugeMetricFamily(
            "task_concurrency",
            "Steps running at once, averaged over the rate window",
            labels=["pipeline"],
        )
        for pipeline, busy in q(
            f"SELECT e.pipeline_id, SUM(MIN(s.duration_s, ?)) {step_join} AND s.ended_at >= ? "
            f"GROUP BY e.pipeline_id",
            (self.window_s, since),
        ):
            concurrency.add_metric([pipeline], (busy or 0.0) / self.window_s)
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
        call_join = (
            "FROM model_calls c LEFT JOIN executions e ON e.id = c.execution_id "
            "WHERE c.provider IS NOT 'http'"
        )
        failed = "(c.status_code IS NULL OR c.status_code >= 400 OR c.error IS NOT NULL)"
        state = (
            f"CASE WHEN e.replay_of IS NOT NULL THEN 'replayed' WHEN {failed} THEN 'error' "
            f"ELSE 'ok' END"
        )
        token_sums: dict[tuple[str, str], list[int]] = {}
        for provider, model, pipeline, status, count, *sums in q(
            f"SELECT COALESCE(c.provider, 'unknown'), COALESCE(c.model, 'unknown'), "
            f"e.pipeline_id, {state}, COUNT(*), SUM(c.input_tokens), SUM(c.output_tokens), "
            f"SUM(c.cache_read_tokens), SUM(c.cache_write_tokens), SUM(c.cost_usd) "
            f"{call_join} GROUP BY 1, 2, 3, 4"
        ):
            requests.add_metric([provider, model, status], count)  # summed over pipelines below
            if status == "replayed":
                continue
            totals = token_sums.setdefault((provider, model), [0, 0, 0, 0])
            for i, value in enumerate(sums[:4]):
                totals[i] += value or 0
            if sums[4]:
                cost.add_metric([provider, model, pipeline or "unknown"], sums[4])
        requests.samples = _summed(requests.samples)
        for (provider, model), totals in token_sums.items():
            for kind, value in zip(
                ("input", "output", "cache_read", "cache_write"), totals, strict=True
            ):
                if value:
                    tokens.add_metric([provider, model, kind], value)
        for provider, model, *row in q(
            f"SELECT COALESCE(c.provider, 'unknown'), COALESCE(c.model, 'unknown'), "
            f"{self._histogram_sql('c.latency_s')} {call_join} AND e.replay_of IS NULL "
            f"GROUP BY 1, 2"
        ):
            self._histogram(latency, [provider, model], row)
        for provider, model, count, errors in q(
            f"SELECT COALESCE(c.provider, 'unknown'), COALESCE(c.model, 'unknown'), COUNT(*), "
            f"SUM({failed}) {call_join} AND e.replay_of IS NULL AND c.started_at >= ? "
            f"GROUP BY 1, 2",
            (since,),
        ):
            model_error.add_metric([provider, model], (errors or 0) / count)
        families += [requests, tokens, cost, latency, model_error]
        return families


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
