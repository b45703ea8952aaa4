"""Pipeline health from the store, recommendations, and the /health checks."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import time

import httpx
import openai
import pytest

import workbench
from workbench.config import WorkbenchConfig
from workbench.exceptions import ConfigError
from workbench.monitoring.prometheus._server import MetricsServer
from workbench.monitoring.reports._health import HealthChecker, PipelineHealth
from workbench.store import Store
from workbench.testing import ModelServer


def _client(server: ModelServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)


def _ask(client: openai.OpenAI, fault: str | None = None) -> None:
    headers = {ModelServer.FAULT_HEADER: fault} if fault else None
    client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers=headers,
    )


def _runs(store: Store, client: openai.OpenAI, *, ok: int, rate_limited: int) -> None:
    for _ in range(ok):
        with workbench.record("research_assistant", inputs={}, store=store):
            _ask(client)
    for _ in range(rate_limited):
        with (
            pytest.raises(openai.RateLimitError),
            workbench.record("research_assistant", inputs={}, store=store),
        ):
            _ask(client, "429")


def test_healthy_pipeline(any_store: Store, model_server: ModelServer) -> None:
    """All runs succeeded: healthy, 100% success, a real average latency, no errors (on
    both backends)."""
    store = any_store
    _runs(store, _client(model_server), ok=3, rate_limited=0)
    health = PipelineHealth(store, WorkbenchConfig())
    status = health.check_pipeline("research_assistant")
    assert (status.state, status.success_rate, status.executions) == ("healthy", 1.0, 3)
    assert status.avg_latency > 0 and status.recent_errors == {}
    assert health.get_recommendations(status) == []


def test_rate_limited_pipeline_is_unhealthy_with_advice(
    store: Store, model_server: ModelServer
) -> None:
    """Half the runs hit HTTP 429: unhealthy, the error types are counted, and the advice
    names retries with backoff and how to find the failed runs."""
    _runs(store, _client(model_server), ok=2, rate_limited=2)
    health = PipelineHealth(store, WorkbenchConfig())
    status = health.check_pipeline("research_assistant")
    assert status.state == "unhealthy" and status.success_rate == 0.5
    assert status.recent_errors == {"openai.RateLimitError": 2, "HTTP 429 from openai": 2}
    advice = " ".join(health.get_recommendations(status))
    assert "rate limits" in advice and "backoff" in advice
    assert "workbench runs list --pipeline research_assistant --status failed" in advice


def test_degraded_by_thresholds_and_latency(store: Store) -> None:
    """Success between the two thresholds, or latency above the limit, is degraded."""
    for fail in (True, False, False, False, False):
        if fail:
            with pytest.raises(ValueError), workbench.record("p", inputs={}, store=store):
                raise ValueError("bad")
        else:
            with workbench.record("p", inputs={}, store=store):
                pass
    config = WorkbenchConfig.model_validate(
        {"health_checks": {"pipeline": {"healthy_success_rate": 0.9}}}
    )
    status = PipelineHealth(store, config).check_pipeline("p")
    assert (status.state, status.recent_errors) == ("degraded", {"ValueError": 1})
    slow = WorkbenchConfig.model_validate(
        {"health_checks": {"pipeline": {"healthy_success_rate": 0.5, "max_avg_latency_s": 1e-9}}}
    )
    health = PipelineHealth(store, slow)
    status = health.check_pipeline("p")
    assert status.state == "degraded" and "latency" in status.reasons[0]
    assert any("latency_report" in r for r in health.get_recommendations(status))


def test_unknown_pipeline_and_await_form(store: Store) -> None:
    """A pipeline with no runs is 'unknown'; the async form answers the same."""
    health = PipelineHealth(store, WorkbenchConfig())

    async def documented() -> str:
        status = await health.acheck_pipeline("never_ran")
        return status.state

    assert asyncio.run(documented()) == "unknown"
    status = health.check_pipeline("never_ran")
    assert "record some runs" in health.get_recommendations(status)[0]


def _health_config(model_server: ModelServer, **memory: object) -> WorkbenchConfig:
    return WorkbenchConfig.model_validate(
        {
            "health_checks": {
                "endpoints": [
                    {"path": "/health", "checks": ["database", "storage", "memory", "cache"]},
                    {
                        "path": "/health/detailed",
                        "checks": [
                            {"name": "database", "timeout": 5, "query": "SELECT 1"},
                            {
                                "name": "model_availability",
                                "providers": ["openai", "anthropic"],
                                "urls": {
                                    "openai": model_server.openai_base_url + "/models",
                                    "anthropic": model_server.url + "/v1/models",
                                },
                                "timeout": 10,
                            },
                            {"name": "disk_space", "min_free_gb": 0.001},
                            {"name": "memory", **memory},
                        ],
                    },
                ]
            }
        }
    )


def test_health_endpoints_answer_healthy(any_store: Store, model_server: ModelServer) -> None:
    """The metrics server answers /health and /health/detailed by running their checks:
    database, disk, memory, model availability and the price cache (on both backends; on
    PostgreSQL the disk is the server's, said unmeasured, no password shown)."""
    store = any_store
    config = _health_config(model_server, max_usage_percent=100)
    with MetricsServer(port=0, config=config, store_path=store.location) as server:
        base = server.url.removesuffix("/metrics")
        basic = httpx.get(base + "/health")
        detailed = httpx.get(base + "/health/detailed")
        missing = httpx.get(base + "/health/nothing")
    assert basic.status_code == 200 and basic.headers["content-type"] == "application/json"
    assert basic.json()["status"] == "healthy"
    assert set(basic.json()["checks"]) == {"database", "storage", "memory", "cache"}
    assert detailed.status_code == 200, detailed.text
    checks = detailed.json()["checks"]
    assert checks["model_availability"]["status"] == "ok"
    assert set(checks["model_availability"]["providers"]) == {"openai", "anthropic"}
    if store.backend == "sqlite":
        assert checks["disk_space"]["free_gb"] > 0
    else:
        assert checks["disk_space"]["status"] == "ok"
        assert checks["disk_space"]["measured"] is False
        assert "not measured" in checks["disk_space"]["detail"]
        assert store.path.password not in detailed.text
    assert missing.status_code == 404


def test_failing_check_makes_the_endpoint_unhealthy(
    store: Store, model_server: ModelServer
) -> None:
    """A memory limit below current use and an unreachable provider answer 503 with reasons."""
    config = _health_config(model_server, max_usage_percent=0.001)
    checker = HealthChecker(config, store=store)
    report = checker.run("/health/detailed")
    assert report.status == "unhealthy"
    memory = next(c for c in report.checks if c.name == "memory")
    assert not memory.ok and "above the maximum" in memory.detail
    with MetricsServer(port=0, config=config, store_path=store.path) as server:
        answer = httpx.get(server.url.removesuffix("/metrics") + "/health/detailed")
    assert answer.status_code == 503
    assert answer.json()["checks"]["memory"]["status"] == "fail"
    closed = WorkbenchConfig.model_validate(
        {
            "health_checks": {
                "endpoints": [
                    {
                        "path": "/health",
                        "checks": [
                            {
                                "name": "model_availability",
                                "providers": ["openai"],
                                "urls": {"openai": "http://127.0.0.1:9/v1/models"},
                                "timeout": 2,
                            }
                        ],
                    }
                ]
            }
        }
    )
    (check,) = HealthChecker(closed, store=store).run("/health").checks
    assert not check.ok and "openai unreachable" in check.detail


def test_unknown_endpoint_and_check_names_are_clear_errors(store: Store) -> None:
    """An endpoint not configured, or a check name not known, names what is allowed."""
    with pytest.raises(ConfigError, match="/health/detailed"):
        HealthChecker(WorkbenchConfig(), store=store).run("/healthz")
    with pytest.raises(ValueError, match="database"):
        WorkbenchConfig.model_validate(
            {"health_checks": {"endpoints": [{"path": "/health", "checks": ["redis"]}]}}
        )


def test_detailed_health_asks_each_provider_once_per_interval_and_names_no_path(
    store: Store,
) -> None:
    """Twenty concurrent unauthenticated GETs of /health/detailed reach the provider once (its
    answer is reused for ``cache_seconds``), a new interval asks again, and no response spells
    out the store's path or folder."""
    with ModelServer() as provider:
        checks = [
            "database",
            {"name": "disk_space", "min_free_gb": 0.001},
            {
                "name": "model_availability",
                "providers": ["openai"],
                "urls": {"openai": provider.openai_base_url + "/models"},
                # Long enough that twenty GETs fit in one interval on a loaded machine.
                "cache_seconds": 4.0,
            },
        ]
        config = WorkbenchConfig.model_validate(
            {"health_checks": {"endpoints": [{"path": "/health/detailed", "checks": checks}]}}
        )
        with MetricsServer(port=0, config=config, store_path=store.path) as server:
            url = server.url.removesuffix("/metrics") + "/health/detailed"
            with concurrent.futures.ThreadPoolExecutor(10) as pool:  # at once, as pollers do
                bodies = list(pool.map(lambda _: httpx.get(url).text, range(20)))
            asked_in_first_interval = provider.request_count
            time.sleep(4.1)
            bodies.append(httpx.get(url).text)
            asked_after_it = provider.request_count
    assert asked_in_first_interval == 1
    assert asked_after_it == 2
    assert all(json.loads(b)["checks"]["model_availability"]["status"] == "ok" for b in bodies)
    for body in bodies:
        assert str(store.path) not in body and str(store.path.parent) not in body, body
