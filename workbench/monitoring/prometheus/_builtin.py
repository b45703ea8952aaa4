"""The built-in metrics, kept by the recorder through an observer, and the resource gauges.

Owns the metric families the Orchestrator documentation lists, as this process sees them:

==============================  ==========  ==============================================
exposed series                  type        labels
==============================  ==========  ==============================================
``pipeline_executions_total``   counter     pipeline, status (completed/failed/interrupted)
``pipeline_duration_seconds``   histogram   pipeline
``pipeline_success_rate``       gauge       pipeline — successes / finished, rate window
``pipeline_error_rate``         gauge       pipeline — failures / finished, rate window
``pipeline_active_count``       gauge       pipeline — executions running now
``task_executions_total``       counter     pipeline, task, status (completed/failed)
``task_duration_seconds``       histogram   pipeline, task
``task_retry_count_total``      counter     pipeline, task — retries the steps took
``task_queue_size``             gauge       pipeline — model calls held back by a budget's
                                            ``throttle`` (the one queue workbench keeps)
``task_concurrency``            gauge       pipeline — steps running at once, averaged over
                                            the rate window (busy step-seconds / window)
``model_requests_total``        counter     provider, model, status (ok/error/replayed)
``model_tokens_used_total``     counter     provider, model, type (input/output/cache_read/
                                            cache_write; input includes cached tokens)
``model_cost_dollars_total``    counter     provider, model, pipeline — priced calls only
``model_latency_seconds``       histogram   provider, model
``model_error_rate``            gauge       provider, model — errors / calls, rate window
``memory_usage_bytes``          gauge       scope (process: RSS; system: used)
``memory_usage_percent``        gauge       scope
``cpu_usage_percent``           gauge       scope — since the previous scrape
``disk_io_bytes_total``         counter     scope, direction (read/write)
``network_io_bytes_total``      counter     scope (system), direction (sent/received)
``store_write_lag_seconds``     gauge       — how long recordings have waited for a store
                                            that did not commit within the recorder's
                                            100 ms bound (another process holding its
                                            write lock); 0 when every store keeps up
==============================  ==========  ==============================================

Counters follow Prometheus' convention and prometheus_client's behaviour: the family named in
the documentation (``model_cost_dollars``) is exposed as ``<name>_total``. The "rate window" is
``metrics.rate_window_s`` (five minutes by default). Rates, concurrency and resources are
computed when scraped, by collectors, not on every event; psutil is only called then.

Replayed model calls cost nothing and used no tokens: they count in ``model_requests_total``
with ``status="replayed"`` and nowhere else. Metrics from a store rather than from this
process are ``_store_metrics``'s; a step's custom metrics are ``_custom``'s.
"""

from __future__ import annotations

import bisect
import collections
import functools
import itertools
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from workbench import _hooks
from workbench.exceptions import ConfigError
from workbench.monitoring.prometheus._metrics import Metrics, metrics

if TYPE_CHECKING:
    from workbench.config import WorkbenchConfig

__all__ = [
    "DEFAULT_BUCKETS",
    "BuiltinMetrics",
    "MetricsObserver",
    "ResourceCollector",
    "StoreLagCollector",
    "builtin_metrics",
    "observer",
]

log = logging.getLogger("workbench.monitoring")

#: Seconds: from a fast tool step to a long agent run.
DEFAULT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class BuiltinMetrics:
    """The metric objects the recorder updates (declared once per registry)."""

    def __init__(self, registry: Metrics, buckets: Sequence[float] = DEFAULT_BUCKETS) -> None:
        m = registry
        self.pipeline_executions = m.Counter(
            "pipeline_executions_total", "Pipeline executions finished", ["pipeline", "status"]
        )
        self.pipeline_duration = m.Histogram(
            "pipeline_duration_seconds", "Pipeline execution time", ["pipeline"], buckets
        )
        self.pipeline_active = m.Gauge(
            "pipeline_active_count", "Pipeline executions running now", ["pipeline"]
        )
        self.task_queue = m.Gauge(
            "task_queue_size", "Model calls held back by a budget's throttle", ["pipeline"]
        )
        self.model_requests = m.Counter(
            "model_requests_total", "Model API calls", ["provider", "model", "status"]
        )
        self.model_tokens = m.Counter(
            "model_tokens_used", "Tokens used by model calls", ["provider", "model", "type"]
        )
        self.model_cost = m.Counter(
            "model_cost_dollars",
            "Cost of model calls in US dollars",
            ["provider", "model", "pipeline"],
        )
        self.model_latency = m.Histogram(
            "model_latency_seconds", "Model response time", ["provider", "model"], buckets
        )
        self.windows = RateCollector()
        m.register_collector(self.windows)
        #: ``task_executions_total``, ``task_duration_seconds``, ``task_retry_count``.
        self.steps = StepCounts(buckets, self.windows)
        m.register_collector(self.steps)
        self.windows.before_read = self.steps.fold


class StepCounts(Collector):
    """``task_executions_total``, ``task_duration_seconds`` and ``task_retry_count``, kept as
    counts and collected as metric families when read.

    A step is the recorder's most frequent event — an unsampled one too, since metrics count
    every step — and four ``prometheus_client`` updates (a counter, a histogram, its sum, the
    concurrency window) cost a step a few microseconds. So an ended step is a tuple appended to
    a queue, and the queue is counted in batches: when the metrics are read (a scrape, a push,
    ``metrics.value()``) or when enough steps wait. A reader sees every step that had ended;
    a step nobody reads about costs its caller a tuple.
    """

    def __init__(self, buckets: Sequence[float], windows: RateCollector) -> None:
        self.buckets = tuple(sorted(float(b) for b in buckets if b != float("inf")))
        self.windows = windows
        #: Seconds of the ended steps not yet counted, by (pipeline, task, status, second of
        #: ``time.monotonic()`` they ended in). The lists are only appended to and cut from the
        #: front (each one C call, atomic under the GIL), so tallies need no lock.
        self.pending: dict[tuple[str, str, str, int], list[float]] = {}
        self._retried: list[tuple[str, str, int]] = []
        self._ticks = itertools.count(1)
        self._lock = threading.Lock()
        self._executions: dict[tuple[str, str, str], int] = {}
        #: (pipeline, task) -> [count per bucket, the +Inf bucket last; sum of seconds]
        self._durations: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
        self._retries: dict[tuple[str, str], int] = {}

    def tally(self, run: Any, step_id: str, status: str, seconds: float, retries: int) -> None:
        """Count one ended step (the signature of ``_hooks.Observer.step_tally``'s result)."""
        key = (run.pipeline_id, step_id, status, int(_monotonic()))
        waiting = self.pending.get(key)
        if waiting is None:
            waiting = self.pending.setdefault(key, [])
        waiting.append(seconds)
        if retries:
            self._retried.append((run.pipeline_id, step_id, retries))
        if not next(self._ticks) % _FOLD_AT:
            self.fold()

    def fold(self) -> None:
        """Count the pending steps: per key a length, a sum and a ``Counter`` of buckets, all
        in C, so a batch costs a few tens of nanoseconds per step."""
        buckets, durations, executions = self.buckets, self._durations, self._executions
        window = self.windows.busy
        width = len(buckets) + 1
        with self._lock:  # one folder at a time keeps the window's slots in order
            now = int(_monotonic())
            busy: dict[tuple[str, int], float] = {}
            for key, waiting in list(self.pending.items()):
                taken = len(waiting)
                if not taken:
                    if key[3] < now - 1:  # no tally can still be on its way to this list
                        del self.pending[key]
                    continue
                spent = waiting[:taken]
                del waiting[:taken]
                pipeline, task, _, second = key
                executions[key[:3]] = executions.get(key[:3], 0) + taken
                histogram = durations.get((pipeline, task))
                if histogram is None:
                    histogram = durations[(pipeline, task)] = ([0] * width, [0.0])
                counts = histogram[0]
                for index, count in collections.Counter(
                    map(bisect.bisect_left, itertools.repeat(buckets), spent)
                ).items():
                    counts[index] += count
                total = math.fsum(spent)
                histogram[1][0] += total
                if max(spent) > window.window_s:  # a step longer than the window fills it
                    total = math.fsum(min(s, window.window_s) for s in spent)
                busy[(pipeline, second)] = busy.get((pipeline, second), 0.0) + total
            taken = len(self._retried)
            for pipeline, task, retries in self._retried[:taken]:
                self._retries[(pipeline, task)] = self._retries.get((pipeline, task), 0) + retries
            del self._retried[:taken]
            for (pipeline, second), total in sorted(busy.items(), key=_second):
                window.add((pipeline,), total, at=float(second))

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        self.fold()
        executions, durations, retries = self._families()
        les = [repr(b) for b in self.buckets]
        with self._lock:
            for (pipeline, task, status), count in self._executions.items():
                executions.add_metric([pipeline, task, status], count)
            for (pipeline, task), (counts, total) in self._durations.items():
                cumulative = list(itertools.accumulate(counts))
                points = [*zip(les, cumulative[:-1], strict=True), ("+Inf", cumulative[-1])]
                durations.add_metric([pipeline, task], points, total[0])
            for (pipeline, task), count in self._retries.items():
                retries.add_metric([pipeline, task], count)
        return iter((executions, durations, retries))

    @staticmethod
    def _families() -> tuple[CounterMetricFamily, HistogramMetricFamily, CounterMetricFamily]:
        return (
            CounterMetricFamily(
                "task_executions", "Steps finished", labels=["pipeline", "task", "status"]
            ),
            HistogramMetricFamily(
                "task_duration_seconds", "Step execution time", labels=["pipeline", "task"]
            ),
            CounterMetricFamily(
                "task_retry_count", "Retries the steps took", labels=["pipeline", "task"]
            ),
        )


def _nothing() -> None:
    return None


def _second(item: tuple[tuple[str, int], float]) -> int:
    return item[0][1]


#: Pending steps that make a batch worth counting without a read (bounded memory).
_FOLD_AT = 4096
_monotonic = time.monotonic


class _Window:
    """Counts per key over the last ``window_s`` seconds, in 60 slots (memory stays bounded)."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.slot_s = window_s / 60
        self._slots: dict[tuple[str, ...], collections.deque[list[float]]] = {}
        self._lock = threading.Lock()

    def add(
        self, key: tuple[str, ...], first: float, second: float = 0.0, at: float | None = None
    ) -> None:
        """Count in the slot of ``at`` (a ``time.monotonic()`` reading; now by default)."""
        slot = int((time.monotonic() if at is None else at) / self.slot_s)
        with self._lock:
            slots = self._slots.get(key)
            if slots is None:
                slots = self._slots[key] = collections.deque()
            if slots and slots[-1][0] >= slot:  # a late batch counts in the newest slot
                slots[-1][1] += first
                slots[-1][2] += second
            else:
                slots.append([slot, first, second])
                while slots and slots[0][0] <= slot - 60:
                    slots.popleft()

    def totals(self) -> dict[tuple[str, ...], tuple[float, float]]:
        """``{key: (first, second)}`` summed over the window."""
        oldest = int(time.monotonic() / self.slot_s) - 60
        result: dict[tuple[str, ...], tuple[float, float]] = {}
        with self._lock:
            for key, slots in self._slots.items():
                while slots and slots[0][0] <= oldest:
                    slots.popleft()
                if slots:
                    result[key] = (sum(s[1] for s in slots), sum(s[2] for s in slots))
        return result


class RateCollector(Collector):
    """``pipeline_success_rate``, ``pipeline_error_rate``, ``model_error_rate`` and
    ``task_concurrency``, computed when scraped from counts kept per window slot."""

    def __init__(self, window_s: float = 300.0) -> None:
        #: Called before the windows are read (the steps counted in batches fold in first).
        self.before_read: Callable[[], None] = _nothing
        self.resize(window_s)

    def resize(self, window_s: float) -> None:
        self.executions = _Window(window_s)  # (pipeline,) -> (successes, failures)
        self.calls = _Window(window_s)  # (provider, model) -> (ok, errors)
        self.busy = _Window(window_s)  # (pipeline,) -> (step-seconds, 0)

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        self.before_read()
        success, error, model_error, concurrency = self._families()
        for (pipeline,), (ok, failed) in self.executions.totals().items():
            if ok + failed:
                success.add_metric([pipeline], ok / (ok + failed))
                error.add_metric([pipeline], failed / (ok + failed))
        for (provider, model), (ok, failed) in self.calls.totals().items():
            if ok + failed:
                model_error.add_metric([provider, model], failed / (ok + failed))
        for (pipeline,), (busy, _) in self.busy.totals().items():
            concurrency.add_metric([pipeline], busy / self.busy.window_s)
        return iter((success, error, model_error, concurrency))

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "pipeline_success_rate",
                "Successful executions / finished executions (0-1), over the rate window",
                labels=["pipeline"],
            ),
            GaugeMetricFamily(
                "pipeline_error_rate",
                "Failed executions / finished executions (0-1), over the rate window",
                labels=["pipeline"],
            ),
            GaugeMetricFamily(
                "model_error_rate",
                "Model calls that failed / model calls (0-1), over the rate window",
                labels=["provider", "model"],
            ),
            GaugeMetricFamily(
                "task_concurrency",
                "Steps running at once, averaged over the rate window",
                labels=["pipeline"],
            ),
        )


class ResourceCollector(Collector):
    """Memory, CPU, disk and network, read with psutil when scraped.

    ``scope="process"`` describes this process (what an application serving its own metrics
    wants); ``scope="system"`` the machine (what the ``workbench serve-metrics`` sidecar serves,
    since its own process is not the one doing the work). Network counters exist per machine
    only.
    """

    def __init__(self, scope: Literal["process", "system"] = "process") -> None:
        self.scope = scope
        self._process: Any = None
        self._pid = 0
        self._lock = threading.Lock()

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    def _families(
        self,
    ) -> tuple[
        GaugeMetricFamily,
        GaugeMetricFamily,
        GaugeMetricFamily,
        CounterMetricFamily,
        CounterMetricFamily,
    ]:
        return (
            GaugeMetricFamily("memory_usage_bytes", "Memory in use", labels=["scope"]),
            GaugeMetricFamily("memory_usage_percent", "Memory in use (0-100)", labels=["scope"]),
            GaugeMetricFamily(
                "cpu_usage_percent", "CPU use since the previous scrape", labels=["scope"]
            ),
            CounterMetricFamily(
                "disk_io_bytes",
                "Bytes read from and written to disk",
                labels=["scope", "direction"],
            ),
            CounterMetricFamily(
                "network_io_bytes", "Bytes sent and received", labels=["scope", "direction"]
            ),
        )

    def collect(self) -> Iterator[Metric]:
        import psutil

        memory, memory_percent, cpu, disk, network = self._families()
        scope = [self.scope]
        with self._lock:
            try:
                if self.scope == "process":
                    process: Any = self._own_process(psutil)
                    with process.oneshot():
                        memory.add_metric(scope, process.memory_info().rss)
                        memory_percent.add_metric(scope, process.memory_percent())
                        cpu.add_metric(scope, process.cpu_percent(interval=None))
                        io: Any = _maybe(process.io_counters)
                    if io is not None:
                        disk.add_metric([*scope, "read"], io.read_bytes)
                        disk.add_metric([*scope, "write"], io.write_bytes)
                else:
                    virtual = psutil.virtual_memory()
                    memory.add_metric(scope, virtual.total - virtual.available)
                    memory_percent.add_metric(scope, virtual.percent)
                    cpu.add_metric(scope, psutil.cpu_percent(interval=None))
                    io = _maybe(psutil.disk_io_counters)
                    if io is not None:
                        disk.add_metric([*scope, "read"], io.read_bytes)
                        disk.add_metric([*scope, "write"], io.write_bytes)
                net: Any = _maybe(psutil.net_io_counters)
                if net is not None:
                    network.add_metric(["system", "sent"], net.bytes_sent)
                    network.add_metric(["system", "received"], net.bytes_recv)
            except psutil.Error as exc:  # a scrape must not fail for one unreadable counter
                log.warning("workbench could not read resource usage: %s", exc)
        return iter((memory, memory_percent, cpu, disk, network))

    def _own_process(self, psutil: Any) -> Any:
        if self._process is None or self._pid != os.getpid():  # a forked child is another process
            self._process = psutil.Process()
            self._pid = os.getpid()
            self._process.cpu_percent(interval=None)  # the first reading only sets the origin
        return self._process


class StoreLagCollector(Collector):
    """``store_write_lag_seconds``: this process's largest store write lag, read when scraped."""

    def describe(self) -> Iterator[Metric]:
        return iter((self._family(),))

    def collect(self) -> Iterator[Metric]:
        from workbench.store import write_lag_s

        family = self._family()
        family.add_metric([], write_lag_s())
        return iter((family,))

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "store_write_lag_seconds",
            "Seconds recordings have waited for a store that did not commit within the "
            "recorder's bound (0 when every store keeps up)",
        )


def _maybe(read: Any) -> Any:
    """A psutil reading that some systems (containers, no /proc/<pid>/io) do not offer."""
    try:
        return read()
    except (OSError, NotImplementedError, AttributeError, RuntimeError):
        return None


@functools.cache
def builtin_metrics() -> BuiltinMetrics:
    """The built-in metrics on workbench's registry, declared at the first use."""
    from workbench.config import load_config

    try:
        config = load_config()
        buckets = config.metrics.duration_buckets or DEFAULT_BUCKETS
        window = config.metrics.rate_window_s
        resources = config.metrics.resource_metrics
    except ConfigError:  # a broken workbench.yaml is reported where it is used, not here
        buckets, window, resources = DEFAULT_BUCKETS, 300.0, True
    builtin = BuiltinMetrics(metrics, buckets)
    builtin.windows.resize(window)
    metrics.register_collector(StoreLagCollector())
    if resources:
        metrics.register_collector(ResourceCollector("process"))
    return builtin


def _label(value: str | None) -> str:
    return value if value else "unknown"


@dataclass(frozen=True, slots=True)
class _CallChildren:
    """The labelled metric children one (provider, model) pair's call events update."""

    ok: Any
    error: Any
    latency: Any
    tokens: tuple[Any, ...]  # input, output, cache_read, cache_write


class MetricsObserver(_hooks.Observer):
    """Keeps the built-in metrics and evaluates the steps' custom metrics, per run's config."""

    def __init__(self) -> None:
        self.m = builtin_metrics()
        #: Ids of the runs counted in ``pipeline_active_count``: only they are counted down.
        self._active: set[str] = set()
        # The labelled children each event updates, looked up once per label values: a
        # ``.labels()`` call validates and locks (~0.7 us), and a call event updates six.
        self._call_children: dict[tuple[str, str], _CallChildren] = {}
        #: The ``replayed`` request counters, likewise: a replay counts one per call.
        self._replayed_children: dict[tuple[str, str], Any] = {}

    @staticmethod
    def _on(run: Any) -> bool:
        config: WorkbenchConfig = run.config
        return config.metrics.enabled and config.monitoring.enabled

    def execution_started(self, run: Any) -> None:
        if self._on(run):
            self.m.pipeline_active.labels(run.pipeline_id).inc()
            self._active.add(run.id)

    def execution_finished(self, run: Any) -> None:
        if run.id not in self._active:
            return
        self._active.discard(run.id)
        m = self.m
        pipeline = run.pipeline_id
        m.pipeline_active.labels(pipeline).dec()
        m.pipeline_executions.labels(pipeline, run.status).inc()
        if run.duration_s is not None:
            m.pipeline_duration.labels(pipeline).observe(run.duration_s)
        if run.status != "interrupted":
            success = run.success if run.success is not None else run.status == "completed"
            m.windows.executions.add((pipeline,), float(success), float(not success))
        if run.config.metrics.push_on_finish:
            try:
                # Short: the run's caller waits for it (a background push could be lost at
                # the exit of the batch job the Pushgateway is for).
                metrics.push(config=run.config, timeout=3.0)
            except ConfigError as exc:  # one line, not a traceback: the run itself is fine
                log.warning("workbench: %s", exc)

    def wants_steps(self, run: Any) -> bool:
        return self._on(run)

    def wants_model_calls(self, run: Any) -> bool:
        return self._on(run)

    def step_tally(self, run: Any) -> Any:
        return self.m.steps.tally

    def step_finished(self, event: _hooks.StepEvent) -> None:
        self.m.steps.tally(event.run, event.step_id, event.status, event.duration_s, event.retries)
        if event.metrics:
            from workbench.monitoring.prometheus._custom import evaluate_step_metrics

            evaluate_step_metrics(event)

    def model_call_finished(self, event: _hooks.ModelCallEvent) -> None:
        if event.provider == "http" or not self._on(event.run):
            return  # plain HTTP calls made inside a run are not model calls
        m = self.m
        provider, model = _label(event.provider), _label(event.model)
        if event.replayed:
            replayed = self._replayed_children.get((provider, model))
            if replayed is None:
                replayed = self._replayed_children[(provider, model)] = m.model_requests.labels(
                    provider, model, "replayed"
                )
            replayed.inc()
            return
        failed = event.error is not None or event.status_code is None or event.status_code >= 400
        children = self._call_children.get((provider, model))
        if children is None:
            children = self._call_children[(provider, model)] = _CallChildren(
                ok=m.model_requests.labels(provider, model, "ok"),
                error=m.model_requests.labels(provider, model, "error"),
                latency=m.model_latency.labels(provider, model),
                tokens=tuple(
                    m.model_tokens.labels(provider, model, kind)
                    for kind in ("input", "output", "cache_read", "cache_write")
                ),
            )
        (children.error if failed else children.ok).inc()
        m.windows.calls.add((provider, model), float(not failed), float(failed))
        children.latency.observe(event.latency_s)
        for counter, tokens in zip(
            children.tokens,
            (
                event.input_tokens,
                event.output_tokens,
                event.cache_read_tokens,
                event.cache_write_tokens,
            ),
            strict=True,
        ):
            if tokens:
                counter.inc(tokens)
        if event.cost_usd:
            m.model_cost.labels(provider, model, event.run.pipeline_id).inc(event.cost_usd)


def observer(config: WorkbenchConfig) -> _hooks.Observer:
    """``_hooks.BUILTIN`` factory. Always installed: each event reads its own run's config,
    so switching metrics off in one workbench.yaml does not switch them off for the process."""
    return MetricsObserver()
