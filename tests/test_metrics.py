"""Metrics: declared on prometheus_client, kept by the recorder, served, pushed, scraped."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import prometheus_client
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

import workbench
from workbench.config import load_config
from workbench.exceptions import ConfigError
from workbench.monitoring import (
    CustomMetric,
    MetricsServer,
    MonitoringConfig,
    metrics,
    monitor,
    serve_metrics,
)
from workbench.monitoring.prometheus._builtin import builtin_metrics
from workbench.monitoring.prometheus._server import Request, Response, routes
from workbench.monitoring.prometheus._store_metrics import store_registry
from workbench.store import Store
from workbench.testing import ModelServer


def _name(prefix: str) -> str:
    """A pipeline or metric name no other test uses: the registry lives for the whole session."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


_clients: list[openai.OpenAI] = []


def _client(server: ModelServer) -> openai.OpenAI:
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)
    _clients.append(client)
    return client


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """Idle keep-alive connections would hold server threads reading: close them each test."""
    yield
    while _clients:
        _clients.pop().close()


def _ask(client: openai.OpenAI, text: str = "hi", **kwargs: Any) -> str:
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}], **kwargs
    )
    return reply.choices[0].message.content or ""


def _value(name: str, **labels: str) -> float:
    return metrics.value(name, labels) or 0.0


# -- declaring --------------------------------------------------------------------------------


def test_declared_metrics_are_prometheus_client_objects_declared_once() -> None:
    """metrics.Counter/Gauge/Histogram/Summary return prometheus_client metrics; the same
    declaration twice gives the same object."""
    name = _name("items")
    counter = metrics.Counter(f"{name}_total", "Items", labels=["item_type", "status"])
    assert isinstance(counter, prometheus_client.Counter)
    assert metrics.Counter(f"{name}_total", "Items", labels=["item_type", "status"]) is counter
    counter.labels(item_type="pdf", status="ok").inc(3)
    assert _value(f"{name}_total", item_type="pdf", status="ok") == 3
    gauge = metrics.Gauge(_name("depth"), "Depth", labels=["queue_name"])
    assert isinstance(gauge, prometheus_client.Gauge)
    histogram = metrics.Histogram(_name("seconds"), "Time", buckets=[0.1, 0.5, 1.0], labels=["t"])
    histogram.labels(t="x").observe(0.3)
    assert isinstance(histogram, prometheus_client.Histogram)
    summary = metrics.Summary(_name("latency"), "Latency", labels=["endpoint", "method"])
    assert isinstance(summary, prometheus_client.Summary)
    text = metrics.exposition().decode()
    assert f'{name}_total{{item_type="pdf",status="ok"}} 3.0' in text


@pytest.mark.parametrize(
    ("declare", "message"),
    [
        (lambda: metrics.Counter("bad name", "x"), "not a Prometheus name"),
        (lambda: metrics.Counter(_name("c"), "x", labels=["bad-label"]), "not a Prometheus label"),
        (lambda: metrics.Counter(_name("c"), "x", labels="status"), "must be a list"),
        (lambda: metrics.Gauge(_name("g"), "x", labels=["a", "a"]), "twice"),
        (lambda: metrics.Histogram(_name("h"), "x", buckets=[1, 0.5]), "increasing order"),
        (lambda: metrics.declare("meter", _name("m")), "counter, gauge, histogram, summary"),
        (
            lambda: (builtin_metrics(), metrics.Gauge("pipeline_active_count", "x")),
            "already declared as a gauge",
        ),
    ],
)
def test_bad_declarations_are_config_errors(declare: Any, message: str) -> None:
    """A bad name, label, bucket list or type, or a clash with a declared metric, is one
    ConfigError that says what is allowed."""
    with pytest.raises(ConfigError, match=message):
        declare()


def test_one_name_cannot_be_two_kinds_of_metric() -> None:
    """Declaring a name again with another type or labels names both declarations."""
    name = _name("clash")
    metrics.Counter(name, "x", labels=["a"])
    with pytest.raises(ConfigError, match=r"already declared as a counter with labels \['a'\]"):
        metrics.Gauge(name, "x", labels=["a"])
    with pytest.raises(ConfigError, match="cannot also be a counter with labels"):
        metrics.Counter(name, "x", labels=["b"])


# -- built-in metrics from the recorder -------------------------------------------------------


def test_builtin_metrics_follow_a_recorded_run(store: Store, model_server: ModelServer) -> None:
    """Executions, steps (with retries), model requests, tokens, cost and latency are counted
    from a real run, with the values the store recorded."""
    pipeline = _name("builtin")
    client = _client(model_server)
    attempts = []

    @workbench.step("flaky", retries=2)
    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 2:
            raise RuntimeError("first attempt fails")
        return _ask(client)

    with workbench.record(pipeline, inputs={}, store=store) as run:
        assert _value("pipeline_active_count", pipeline=pipeline) == 1
        flaky()
    store.flush()
    call = run.execution().model_calls[0]
    assert call.cost_usd and call.input_tokens and call.output_tokens
    assert _value("pipeline_executions_total", pipeline=pipeline, status="completed") == 1
    assert _value("pipeline_active_count", pipeline=pipeline) == 0
    assert _value("pipeline_duration_seconds_count", pipeline=pipeline) == 1
    assert _value("task_executions_total", pipeline=pipeline, task="flaky", status="completed") == 1
    assert _value("task_retry_count_total", pipeline=pipeline, task="flaky") == 1
    assert _value("task_duration_seconds_count", pipeline=pipeline, task="flaky") == 1
    labels = {"provider": "openai", "model": "gpt-4o-mini"}
    cost = _value("model_cost_dollars_total", **labels, pipeline=pipeline)
    assert cost == pytest.approx(call.cost_usd)
    assert _value("model_tokens_used_total", **labels, type="input") >= call.input_tokens
    assert _value("model_latency_seconds_count", **labels) >= 1
    assert _value("pipeline_success_rate", pipeline=pipeline) == 1.0
    assert _value("pipeline_error_rate", pipeline=pipeline) == 0.0
    assert _value("task_concurrency", pipeline=pipeline) > 0


def test_failures_count_in_error_rates(store: Store, model_server: ModelServer) -> None:
    """A failed model call counts as an error request, a failed run in pipeline_error_rate."""
    pipeline = _name("failing")
    client = _client(model_server)
    labels = {"provider": "openai", "model": "gpt-4o-mini"}
    errors_before = _value("model_requests_total", **labels, status="error")
    with workbench.record(pipeline, inputs={}, store=store):
        _ask(client)
    with pytest.raises(openai.InternalServerError):
        with workbench.record(pipeline, inputs={}, store=store):
            _ask(client, extra_headers={ModelServer.FAULT_HEADER: "500"})
    store.flush()
    assert _value("model_requests_total", **labels, status="error") == errors_before + 1
    assert _value("model_error_rate", **labels) > 0
    assert _value("pipeline_executions_total", pipeline=pipeline, status="failed") == 1
    assert _value("pipeline_error_rate", pipeline=pipeline) == 0.5
    assert _value("pipeline_success_rate", pipeline=pipeline) == 0.5


def test_unsampled_steps_are_counted_exactly_across_batches_and_threads(
    tmp_path: Path, store: Store
) -> None:
    """Steps of an unsampled run, from four threads and past the batch size (they are counted
    in batches), are all in the counter and the histogram, each in its bucket, failures too;
    the exposition shows the histogram as prometheus_client would."""
    (tmp_path / "workbench.yaml").write_text("debug: {enabled: true, sampling: {rate: 0}}\n")
    pipeline = _name("unsampled")

    @workbench.step("tick")
    def tick(i: int) -> int:
        if i < 0:
            time.sleep(0.6)  # past 0.5 s: a loaded machine does not delay a trivial step that long
        elif i % 1000 == 999:
            raise ValueError(i)
        return i

    def many(offset: int) -> None:
        for i in range(offset, offset + 3_000):
            with contextlib.suppress(ValueError):
                tick(i)

    with workbench.record(pipeline, inputs={}, store=store) as run:
        assert not run.recording
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(workbench.carry_context(many), range(0, 12_000, 3_000)))
        tick(-1)  # one slower step, in a bucket of its own
    labels = {"pipeline": pipeline, "task": "tick"}
    assert _value("task_executions_total", **labels, status="completed") == 11_989
    assert _value("task_executions_total", **labels, status="failed") == 12
    assert _value("task_duration_seconds_count", **labels) == 12_001
    assert _value("task_duration_seconds_bucket", **labels, le="+Inf") == 12_001
    assert _value("task_duration_seconds_bucket", **labels, le="0.5") == 12_000
    assert _value("task_duration_seconds_sum", **labels) > 0
    scraped = {
        (sample.name, sample.labels.get("le")): sample.value
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for sample in family.samples
        if sample.labels.get("pipeline") == pipeline and family.name == "task_duration_seconds"
    }
    assert scraped[("task_duration_seconds_bucket", "0.5")] == 12_000
    assert scraped[("task_duration_seconds_count", None)] == 12_001
    assert _value("task_concurrency", pipeline=pipeline) > 0


def test_metrics_switched_off_in_workbench_yaml_are_not_kept(tmp_path: Path, store: Store) -> None:
    """metrics.enabled: false in workbench.yaml keeps the recorder's hands off the metrics."""
    (tmp_path / "workbench.yaml").write_text("metrics: {enabled: false}\n")
    pipeline = _name("off")
    with workbench.record(pipeline, inputs={}, store=store):
        with workbench.step("s"):
            pass
    assert _value("pipeline_executions_total", pipeline=pipeline, status="completed") == 0
    assert _value("task_executions_total", pipeline=pipeline, task="s", status="completed") == 0


def test_resource_metrics_are_read_when_scraped() -> None:
    """Memory, CPU, disk and network come from psutil at exposition time."""
    text = metrics.exposition().decode()
    rss = metrics.value("memory_usage_bytes", {"scope": "process"})
    assert rss is not None and rss > 10_000_000
    assert 'cpu_usage_percent{scope="process"}' in text
    assert "network_io_bytes_total" in text


# -- custom metrics ----------------------------------------------------------------------------


def test_step_custom_metrics_are_evaluated_from_the_result(store: Store) -> None:
    """The documentation's custom_metrics: counter, gauge and histogram from the step's result,
    labels from the execution's inputs, the histogram from the step's duration."""
    rows, accuracy, seconds = _name("rows"), _name("accuracy"), _name("seconds")

    @workbench.step(
        "process_data",
        metrics=[
            {
                "name": rows,
                "type": "counter",
                "value": "{{ results.row_count }}",
                "labels": {"data_type": "{{ inputs.data_type }}"},
            },
            {"name": accuracy, "type": "gauge", "value": "{{ results.accuracy_score }}"},
            CustomMetric(
                seconds, "histogram", value="{{ execution.duration }}", buckets=[0.1, 0.5, 1, 5]
            ),
        ],
    )
    def process(n: int) -> dict[str, Any]:
        return {"row_count": n, "accuracy_score": 0.5 + n / 100}

    with workbench.record(_name("custom"), inputs={"data_type": "csv"}, store=store):
        process(10)
        process(30)
    assert _value(f"{rows}_total", data_type="csv") == 40
    assert _value(accuracy) == 0.8
    assert _value(f"{seconds}_count") == 2
    assert _value(f"{seconds}_bucket", le="5.0") == 2


def test_a_broken_custom_metric_warns_once_and_never_fails_the_step(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A missing field, a non-number and a sandbox escape are logged once per step and metric;
    the step and the run complete."""
    declarations = [
        {"name": _name("missing"), "value": "{{ results.nope }}"},
        {"name": _name("text"), "value": "{{ results.word }}"},
        {"name": _name("escape"), "value": "{{ results.__class__.__mro__ }}"},
    ]

    @workbench.step("tolerant", metrics=declarations)
    def tolerant() -> dict[str, str]:
        return {"word": "abc"}

    with caplog.at_level(logging.WARNING, logger="workbench.monitoring"):
        with workbench.record(_name("broken"), inputs={}, store=store) as run:
            tolerant()
            tolerant()
    assert run.execution().status == "completed"
    messages = [r.getMessage() for r in caplog.records if r.name == "workbench.monitoring"]
    assert len(messages) == 3
    assert any("nope" in m for m in messages)
    assert any("'abc'" in m and "not a number" in m for m in messages)
    assert any("__class__" in m or "unsafe" in m.lower() for m in messages)


@pytest.mark.parametrize(
    ("declaration", "message"),
    [
        ({"type": "counter"}, "has no name"),
        ({"name": "x", "kind": "counter"}, "unknown keys"),
        ({"name": "x", "type": "meter"}, "use one of counter"),
        ({"name": "x", "type": "gauge", "buckets": [1]}, "buckets apply to histograms"),
        ({"name": "x", "type": "histogram", "buckets": [5, 1]}, "increasing list of numbers"),
        ({"name": "", "type": "gauge"}, "has no name"),
        ({"name": "x", "value": "{{ results. }}"}, "not a valid expression"),
        ({"name": "x", "labels": ["a"]}, "labels must map"),
    ],
)
def test_custom_metric_declarations_are_checked(declaration: Any, message: str) -> None:
    """CustomMetric.parse refuses what cannot be evaluated, naming the metric and the fix."""
    with pytest.raises(ConfigError, match=message):
        CustomMetric.parse(declaration)


@settings(max_examples=25, deadline=None)
@given(values=st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=8))
def test_a_custom_counter_adds_up_every_completed_step(values: list[int]) -> None:
    """Property: a counter declared on a step ends at the sum of the values its runs gave."""
    name = _name("summed")

    @workbench.step("count", metrics=[{"name": name, "type": "counter", "value": "{{ results }}"}])
    def count(v: int) -> int:
        return v

    with workbench.testing.fresh_store() as fresh:
        with workbench.record(_name("prop"), inputs={}, store=fresh):
            for v in values:
                count(v)
    assert _value(f"{name}_total") == sum(values)


def test_monitor_measures_sync_and_async_functions() -> None:
    """@monitor: a histogram of durations with an ok/error status, a counter of calls, a gauge
    of calls in progress; sync and async alike."""
    timed, counted, running = _name("op_seconds"), _name("op_calls"), _name("op_running")

    @monitor(metric_name=timed, metric_type="histogram")
    def operation(fail: bool = False) -> int:
        if fail:
            raise ValueError("no")
        return 1

    @monitor(metric_name=counted, metric_type="counter", labels={"team": "data"})
    async def async_operation() -> int:
        await asyncio.sleep(0)
        return 2

    seen_running = []

    @monitor(metric_name=running, metric_type="gauge")
    def long_operation() -> None:
        seen_running.append(_value(running))

    assert operation() == 1
    with pytest.raises(ValueError):
        operation(fail=True)
    assert asyncio.run(async_operation()) == 2
    long_operation()
    assert _value(f"{timed}_count", status="ok") == 1
    assert _value(f"{timed}_count", status="error") == 1
    assert _value(f"{counted}_total", team="data", status="ok") == 1
    assert seen_running == [1.0] and _value(running) == 0
    assert operation.__name__ == "operation"


def test_monitor_refuses_generators_and_unknown_types() -> None:
    """@monitor on a generator function, or with an unknown metric_type, is a ConfigError."""
    with pytest.raises(ConfigError, match="generator function"):

        @monitor(metric_name=_name("gen"))
        def items() -> Iterator[int]:
            yield 1

    with pytest.raises(ConfigError, match="metric_type 'meter'"):
        monitor(metric_name=_name("x"), metric_type="meter")  # type: ignore[arg-type]


# -- configuration -----------------------------------------------------------------------------


def test_sections_nested_under_monitoring_are_read_as_top_level(tmp_path: Path) -> None:
    """The documentation's full example nests metrics, tracing, ... under monitoring."""
    (tmp_path / "workbench.yaml").write_text(
        "monitoring:\n  enabled: true\n  metrics:\n    providers:\n"
        "      - {type: prometheus, endpoint: 'http://prometheus:9090', "
        "pushgateway: 'http://pushgateway:9091'}\n"
        "    retention: 15d\n    scrape_interval: 15s\n"
    )
    config = load_config()
    assert config.metrics.pushgateway(config.monitoring) == "http://pushgateway:9091"
    assert config.metrics.retention == "15d"


def test_a_section_given_twice_is_refused(tmp_path: Path) -> None:
    """metrics at the top level and under monitoring at once is a ConfigError naming both."""
    (tmp_path / "workbench.yaml").write_text("metrics: {port: 1}\nmonitoring: {metrics: {}}\n")
    with pytest.raises(ConfigError, match="'metrics' is given twice"):
        load_config()


def test_monitoring_config_takes_the_documented_keywords(tmp_path: Path) -> None:
    """MonitoringConfig(metrics_enabled=..., logging_level=..., ...) overrides the file."""
    (tmp_path / "workbench.yaml").write_text("cost_tracking: {budgets: {daily_limit: 5}}\n")
    config = MonitoringConfig(metrics_enabled=False, logging_level="debug")
    assert not config.metrics_enabled and config.logging_level == "DEBUG"
    assert config.cost_tracking.budgets.daily_limit == 5
    assert config.config.metrics.enabled is False
    with pytest.raises(ConfigError, match="logging_level 'LOUD'"):
        MonitoringConfig(logging_level="LOUD")


# -- serving -----------------------------------------------------------------------------------


def test_metrics_server_serves_metrics_routes_and_404s() -> None:
    """/metrics in the text format or OpenMetrics, a registered route, and a 404 that lists
    what is served."""
    name = _name("served")
    metrics.Counter(name, "Served").inc()

    def hello(request: Request) -> Response:
        return Response.json({"query": dict(request.query)})

    routes["/test-hello"] = hello
    try:
        with serve_metrics(port=0) as server:
            base = f"http://127.0.0.1:{server.port}"
            text = httpx.get(f"{base}/metrics").text
            assert f"{name}_total 1.0" in text and "pipeline_executions_total" in text
            open_metrics = httpx.get(
                f"{base}/metrics", headers={"Accept": "application/openmetrics-text"}
            )
            assert open_metrics.headers["content-type"].startswith("application/openmetrics-text")
            assert open_metrics.text.rstrip().endswith("# EOF")
            assert httpx.get(f"{base}/test-hello?a=1").json() == {"query": {"a": ["1"]}}
            missing = httpx.get(f"{base}/nope")
            assert missing.status_code == 404 and "/metrics" in missing.text
    finally:
        del routes["/test-hello"]


def test_a_busy_port_is_a_config_error() -> None:
    """Serving on a port already taken names the port and the fix."""
    with MetricsServer(port=0) as first, pytest.raises(ConfigError, match="choose another port"):
        MetricsServer(port=first.port)


def test_the_store_registry_reports_every_process_runs(
    any_store: Store, model_server: ModelServer
) -> None:
    """The sidecar's metrics come from the store: executions, steps, calls and cost recorded by
    this process read back under the built-in names (on both backends)."""
    store = any_store
    pipeline = _name("stored")
    client = _client(model_server)
    for _ in range(2):
        with workbench.record(pipeline, inputs={}, store=store) as run:
            with workbench.step("ask"):
                _ask(client)
    store.flush()
    cost = sum(c.cost_usd or 0 for c in run.execution().model_calls) * 2
    registry, collector = store_registry(store.location, load_config(), cache_s=0)
    try:
        value = registry.get_sample_value
        assert (
            value("pipeline_executions_total", {"pipeline": pipeline, "status": "completed"}) == 2
        )
        assert (
            value(
                "task_executions_total",
                {"pipeline": pipeline, "task": "ask", "status": "completed"},
            )
            == 2
        )
        assert value("pipeline_duration_seconds_count", {"pipeline": pipeline}) == 2
        assert value(
            "model_cost_dollars_total",
            {"provider": "openai", "model": "gpt-4o-mini", "pipeline": pipeline},
        ) == pytest.approx(cost)
        assert value("pipeline_success_rate", {"pipeline": pipeline}) == 1.0
        assert value("memory_usage_bytes", {"scope": "system"}) > 0
    finally:
        collector.close()


# -- a real Prometheus -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _wait_http(url: str, deadline_s: float = 30.0) -> None:
    end = time.monotonic() + deadline_s
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > end:
            raise AssertionError(f"{url} did not answer within {deadline_s}s")
        time.sleep(0.1)


@dataclass
class Stack:
    prometheus: str
    pushgateway: str
    sidecar_store: Path

    def query(self, promql: str, deadline_s: float = 30.0, at_least: float | None = None) -> float:
        """The value of ``promql`` once Prometheus has scraped a sample for it (one of at least
        ``at_least``: a scrape can fall between two of the test's executions)."""
        end = time.monotonic() + deadline_s
        while True:
            reply = httpx.get(f"{self.prometheus}/api/v1/query", params={"query": promql}).json()
            assert reply["status"] == "success", reply
            if reply["data"]["result"]:
                value = float(reply["data"]["result"][0]["value"][1])
                if at_least is None or value >= at_least or time.monotonic() > end:
                    return value
            if time.monotonic() > end:
                raise AssertionError(f"Prometheus has no sample for {promql} after {deadline_s}s")
            time.sleep(0.2)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Prometheus (Debian package) scraping, on 127.0.0.1: this process's metrics server, a
    `workbench serve-metrics` sidecar on a store, and a Pushgateway."""
    binaries = {name: shutil.which(name) for name in ("prometheus", "prometheus-pushgateway")}
    missing = [name for name, path in binaries.items() if path is None]
    if missing:
        pytest.skip(
            f"{', '.join(missing)} not installed (apt-get install prometheus "
            f"prometheus-pushgateway)"
        )
    folder = tmp_path_factory.mktemp("prometheus")
    ports = {name: _free_port() for name in ("prometheus", "pushgateway", "sidecar")}
    processes: list[subprocess.Popen[bytes]] = []
    server = MetricsServer(port=0).start()
    sidecar_store = folder / "sidecar.db"
    Store(sidecar_store).close()
    env = {k: v for k, v in os.environ.items() if k not in ("WORKBENCH_CONFIG", "WORKBENCH_DB")}
    try:
        processes.append(
            subprocess.Popen(
                [
                    str(binaries["prometheus-pushgateway"]),
                    f"--web.listen-address=127.0.0.1:{ports['pushgateway']}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "workbench.cli",
                    "serve-metrics",
                    "--port",
                    str(ports["sidecar"]),
                    "--cache",
                    "0",
                    "--db",
                    str(sidecar_store),
                ],
                cwd=folder,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        config = folder / "prometheus.yml"
        targets = {
            "inprocess": server.port,
            "sidecar": ports["sidecar"],
            "pushgateway": ports["pushgateway"],
        }
        jobs = "".join(
            f"  - job_name: {job}\n    honor_labels: true\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
            for job, port in targets.items()
        )
        config.write_text(
            f"global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n{jobs}"
        )
        processes.append(
            subprocess.Popen(
                [
                    str(binaries["prometheus"]),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={folder / 'data'}",
                    f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
                    "--log.level=warn",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        prometheus = f"http://127.0.0.1:{ports['prometheus']}"
        pushgateway = f"http://127.0.0.1:{ports['pushgateway']}"
        _wait_http(f"{prometheus}/-/ready")
        _wait_http(f"{pushgateway}/-/ready")
        _wait_http(f"http://127.0.0.1:{ports['sidecar']}/metrics")
        yield Stack(prometheus, pushgateway, sidecar_store)
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        server.close()


def test_prometheus_scrapes_this_process(
    stack: Stack, store: Store, model_server: ModelServer
) -> None:
    """A real Prometheus scraping serve_metrics() sees the run's execution and its cost."""
    pipeline = _name("scraped")
    with workbench.record(pipeline, inputs={}, store=store) as run:
        _ask(_client(model_server))
    store.flush()
    cost = run.execution().model_calls[0].cost_usd
    selector = f'{{job="inprocess",pipeline="{pipeline}"}}'
    assert stack.query(f"pipeline_executions_total{selector}") == 1
    assert stack.query(f"sum(model_cost_dollars_total{selector})") == pytest.approx(cost)


def test_prometheus_scrapes_the_serve_metrics_sidecar(
    stack: Stack, model_server: ModelServer
) -> None:
    """`workbench serve-metrics --db` exposes what every process recorded in the store."""
    pipeline = _name("sidecar")
    with Store(stack.sidecar_store) as store:
        for _ in range(2):
            with workbench.record(pipeline, inputs={}, store=store):
                _ask(_client(model_server))
    selector = f'{{job="sidecar",pipeline="{pipeline}"}}'
    assert stack.query(f"pipeline_executions_total{selector}", at_least=2) == 2
    assert stack.query(f"sum(model_cost_dollars_total{selector})") > 0
    assert stack.query('memory_usage_bytes{job="sidecar",scope="system"}') > 0


def test_pushgateway_receives_metrics_prometheus_then_scrapes(
    stack: Stack, tmp_path: Path, store: Store
) -> None:
    """metrics.push_on_finish pushes at each run's end; Prometheus reads it from the
    Pushgateway under the pushing job's name."""
    job = _name("batch")
    (tmp_path / "workbench.yaml").write_text(
        f"metrics:\n  job: {job}\n  push_on_finish: true\n  providers:\n"
        f"    - {{type: prometheus, pushgateway: '{stack.pushgateway}'}}\n"
    )
    pipeline = _name("pushed")
    with workbench.record(pipeline, inputs={}, store=store):
        pass
    assert f'pipeline="{pipeline}"' in httpx.get(f"{stack.pushgateway}/metrics").text
    assert stack.query(f'pipeline_executions_total{{job="{job}",pipeline="{pipeline}"}}') == 1


def test_push_without_a_gateway_says_how_to_configure_one() -> None:
    """metrics.push() with no Pushgateway configured is a ConfigError with the YAML to add."""
    with pytest.raises(ConfigError, match="pushgateway"):
        metrics.push()
