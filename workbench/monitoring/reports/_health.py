"""Health: of one pipeline (``PipelineHealth``) and of the system (``/health`` endpoints).

Owns two judgements. :class:`PipelineHealth` reads a pipeline's recent executions from the
store and calls it ``healthy``, ``degraded`` or ``unhealthy`` (``unknown`` when nothing has been
recorded), with its success rate, average latency and recent error types, and turns a status
into recommendations. :class:`HealthChecker` runs the ``health_checks`` section's checks —
database, disk space, memory, model availability, price cache — for the ``/health`` and
``/health/detailed`` routes, registered in the metrics server's route table
(``workbench.monitoring.prometheus._server.routes``) when this module is imported.
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import psutil

from workbench.config import (
    HealthCheckConfig,
    HealthChecksConfig,
    WorkbenchConfig,
    load_config,
)
from workbench.exceptions import ConfigError
from workbench.monitoring.prometheus._server import Request, Response, routes

if TYPE_CHECKING:
    from workbench.store import Store

__all__ = [
    "CheckResult",
    "HealthChecker",
    "HealthReport",
    "PipelineHealth",
    "PipelineStatus",
    "register_routes",
    "serve_health",
]

_GB = 1024**3


@dataclass(frozen=True, slots=True)
class PipelineStatus:
    """A pipeline's health over its last ``executions`` finished runs."""

    pipeline_id: str
    state: str  # healthy, degraded, unhealthy, unknown
    success_rate: float
    avg_latency: float
    p95_latency: float
    executions: int
    failures: int
    recent_errors: dict[str, int]
    last_execution_at: float | None
    reasons: tuple[str, ...] = ()


class PipelineHealth:
    """``check_pipeline(pipeline_id)`` and ``get_recommendations(status)``, from the store."""

    def __init__(
        self,
        store: Store | None = None,
        config: HealthChecksConfig | WorkbenchConfig | None = None,
    ) -> None:
        if store is None:
            from workbench.store import open_store

            store = open_store()
        self.store = store
        if config is None:
            config = load_config()
        self.config = (
            config.health_checks if isinstance(config, WorkbenchConfig) else config
        ).pipeline

    def check_pipeline(self, pipeline_id: str) -> PipelineStatus:
        """Judge ``pipeline_id`` by its last ``health_checks.pipeline.window`` finished runs."""
        self.store.list_executions(status="running", limit=1)  # marks dead runs interrupted
        rows = self.store.execution_outcomes(pipeline_id, limit=self.config.window)
        if not rows:
            return PipelineStatus(pipeline_id, "unknown", 0.0, 0.0, 0.0, 0, 0, {}, None)
        durations = [r.duration_s for r in rows if r.duration_s is not None]
        successes = sum(1 for r in rows if r.success)
        errors: Counter[str] = Counter()
        for r in rows:
            if r.error_type is not None:
                errors[r.error_type] += 1
        for call in self.store.model_call_failures([r.id for r in rows]):
            if call.status_code is not None and call.status_code >= 400:
                errors[f"HTTP {call.status_code} from {call.provider}"] += 1
            else:
                errors[f"{call.error_type} calling {call.provider}"] += 1
        from workbench._stats import percentile

        success_rate = successes / len(rows)
        avg = sum(durations) / len(durations) if durations else 0.0
        reasons: list[str] = []
        config = self.config
        if success_rate < config.degraded_success_rate:
            state = "unhealthy"
            reasons.append(
                f"success rate {success_rate:.0%} is below {config.degraded_success_rate:.0%}"
            )
        elif success_rate < config.healthy_success_rate:
            state = "degraded"
            reasons.append(
                f"success rate {success_rate:.0%} is below {config.healthy_success_rate:.0%}"
            )
        else:
            state = "healthy"
        if config.max_avg_latency_s is not None and avg > config.max_avg_latency_s:
            reasons.append(f"average latency {avg:.2f}s exceeds {config.max_avg_latency_s:g}s")
            if state == "healthy":
                state = "degraded"
        return PipelineStatus(
            pipeline_id=pipeline_id,
            state=state,
            success_rate=success_rate,
            avg_latency=avg,
            p95_latency=percentile(durations, 0.95),
            executions=len(rows),
            failures=len(rows) - successes,
            recent_errors=dict(errors.most_common()),
            last_execution_at=rows[0].started_at,
            reasons=tuple(reasons),
        )

    async def acheck_pipeline(self, pipeline_id: str) -> PipelineStatus:
        """:meth:`check_pipeline` for async code: the store is read off the event loop."""
        import asyncio

        return await asyncio.to_thread(self.check_pipeline, pipeline_id)

    def get_recommendations(self, status: PipelineStatus) -> list[str]:
        """What to look at or change, most useful first; empty for a healthy pipeline."""
        pipeline = status.pipeline_id
        if status.state == "unknown":
            return [
                f"no finished executions of {pipeline!r} are in the store; record some runs "
                f"(workbench.record or @workbench.pipeline) and check again"
            ]
        found: list[str] = []
        text = " ".join(status.recent_errors).lower()
        if "429" in text or "ratelimit" in text:
            found.append(
                "model calls hit rate limits (HTTP 429): retry with backoff "
                "(@workbench.step(retries=3, backoff_s=1)), lower the concurrency, or raise the "
                "provider's limit; a cost_tracking 'throttle' action also spaces calls out"
            )
        if any(f"http 5{d}" in text for d in "0123456789") or "internalserver" in text:
            found.append(
                "the model provider answered with server errors (HTTP 5xx): retry them, and "
                "consider a fallback model or provider for this pipeline"
            )
        if "timeout" in text:
            found.append(
                "calls timed out: raise the client's timeout, stream long responses, or split "
                "the slow step (see PerformanceMonitor().detect_bottlenecks())"
            )
        if status.failures and status.state != "healthy":
            found.append(
                f"{status.failures} of the last {status.executions} executions failed: list "
                f"them with `workbench runs list --pipeline {pipeline} --status failed` and "
                f"replay one with `workbench replay ID` to reproduce it offline"
            )
        if any("latency" in reason for reason in status.reasons):
            found.append(
                f"average latency is {status.avg_latency:.2f}s (p95 {status.p95_latency:.2f}s): "
                f"PerformanceMonitor().latency_report(pipeline_id={pipeline!r}) shows which "
                f"tasks take the time"
            )
        return found


# -- system health ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    duration_s: float
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The checks of one endpoint; ``healthy`` only when every check passed."""

    path: str
    checks: tuple[CheckResult, ...]

    @property
    def status(self) -> str:
        return "healthy" if all(c.ok for c in self.checks) else "unhealthy"

    def to_json(self, *, detailed: bool = True) -> dict[str, Any]:
        checks: dict[str, Any] = {}
        for check in self.checks:
            entry: dict[str, Any] = {"status": "ok" if check.ok else "fail"}
            if detailed or not check.ok:
                entry["detail"] = check.detail
            if detailed:
                entry["duration_ms"] = round(check.duration_s * 1000, 2)
                entry.update(check.data)
            checks[check.name] = entry
        return {"status": self.status, "timestamp": time.time(), "checks": checks}


_ALIASES = {"storage": "disk_space", "models": "model_availability"}
_DEFAULT_URLS = {
    "openai": ("OPENAI_BASE_URL", "https://api.openai.com/v1", "/models"),
    "anthropic": ("ANTHROPIC_BASE_URL", "https://api.anthropic.com", "/v1/models"),
}


class HealthChecker:
    """Runs the checks configured for an endpoint path (``/health``, ``/health/detailed``)."""

    def __init__(
        self,
        config: HealthChecksConfig | WorkbenchConfig | None = None,
        *,
        store: Store | None = None,
        hide_paths: bool = False,
    ) -> None:
        if config is None:
            config = load_config()
        self.workbench_config = config if isinstance(config, WorkbenchConfig) else None
        self.config = config.health_checks if isinstance(config, WorkbenchConfig) else config
        self._store = store
        #: Served over HTTP, where anyone who reaches the port reads it: no file system paths.
        self.hide_paths = hide_paths

    @property
    def paths(self) -> list[str]:
        return [endpoint.path for endpoint in self.config.endpoints]

    def run(self, path: str = "/health") -> HealthReport:
        for endpoint in self.config.endpoints:
            if endpoint.path == path:
                return HealthReport(path, tuple(self._run_one(c) for c in endpoint.checks))
        raise ConfigError(
            f"no health endpoint {path!r} in health_checks.endpoints; configured: "
            f"{', '.join(self.paths) or 'none'}"
        )

    def _run_one(self, check: HealthCheckConfig) -> CheckResult:
        name = _ALIASES.get(check.name, check.name)
        method: Callable[[HealthCheckConfig], tuple[bool, str, dict[str, Any]]] = getattr(
            self, f"_check_{name}"
        )
        started = time.perf_counter()
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        try:
            ok, detail, data = pool.submit(method, check).result(timeout=check.timeout)
        except concurrent.futures.TimeoutError:
            ok, detail, data = False, f"no answer within {check.timeout:g}s", {}
        except Exception as exc:
            ok, detail, data = False, f"{type(exc).__name__}: {exc}", {}
        finally:
            pool.shutdown(wait=False)
        if self.hide_paths and self._store is not None:
            detail = _without_paths(detail, self._store.path)
        return CheckResult(check.name, ok, detail, time.perf_counter() - started, data)

    def _store_now(self) -> Store:
        if self._store is None:
            from workbench.store import open_store

            self._store = open_store()
        return self._store

    def _check_database(self, check: HealthCheckConfig) -> tuple[bool, str, dict[str, Any]]:
        store = self._store_now()
        rows = store.run_user_sql(check.query)
        return True, f"{store.path}: {check.query!r} answered {len(rows)} row(s)", {}

    def _check_disk_space(self, check: HealthCheckConfig) -> tuple[bool, str, dict[str, Any]]:
        store = self._store_now()
        if store.backend != "sqlite":
            # The database's disk is the server's, which a client cannot measure (PostgreSQL
            # reports sizes, not free space): say so rather than measure this machine's.
            detail = (
                f"not measured: store {store.path} is a PostgreSQL database, whose disk is "
                f"the server's; watch free space on the database host"
            )
            return True, detail, {"free_gb": None, "measured": False}
        folder = store.path.parent
        free_gb = shutil.disk_usage(folder).free / _GB
        ok = free_gb >= check.min_free_gb
        verdict = "" if ok else f", below the minimum of {check.min_free_gb:g} GB"
        return ok, f"{free_gb:.1f} GB free in {folder}{verdict}", {"free_gb": round(free_gb, 2)}

    def _check_memory(self, check: HealthCheckConfig) -> tuple[bool, str, dict[str, Any]]:
        used = float(psutil.virtual_memory().percent)
        ok = used <= check.max_usage_percent
        verdict = "" if ok else f", above the maximum of {check.max_usage_percent:g}%"
        return ok, f"memory {used:.0f}% used{verdict}", {"usage_percent": used}

    def _check_model_availability(
        self, check: HealthCheckConfig
    ) -> tuple[bool, str, dict[str, Any]]:
        answers: dict[str, Any] = {}
        failed: list[str] = []
        for provider in check.providers:
            answer = _availability(_provider_url(provider, check.urls), check)
            answers[provider] = answer
            if isinstance(answer, str):
                failed.append(f"{provider} unreachable ({answer})")
                answers[provider] = "unreachable"
            elif answer >= 500:  # below 500 (401 without a key included), the API is up
                failed.append(f"{provider} answered HTTP {answer}")
        detail = "; ".join(failed) if failed else f"reachable: {', '.join(check.providers)}"
        return not failed, detail, {"providers": answers}

    def _check_cache(self, check: HealthCheckConfig) -> tuple[bool, str, dict[str, Any]]:
        from workbench.capture import price_book

        book = price_book(self.workbench_config or load_config())
        cost = book.cost_usd("openai", "gpt-4o-mini", input_tokens=1000, output_tokens=1000)
        if cost is None:
            return False, "the price table does not price openai/gpt-4o-mini", {}
        return True, "price table loaded", {}


# Each provider URL's last answer (HTTP status, or the name of the error) and when it came,
# shared by every checker of the process: the metrics server builds one per request.
_answers: dict[str, tuple[float, int | str]] = {}
_asking: dict[str, threading.Lock] = {}
_answers_lock = threading.Lock()


def _availability(url: str, check: HealthCheckConfig) -> int | str:
    """The status ``url`` answered, or the error's name, asked at most once per
    ``cache_seconds`` however many requests check it at once."""
    with _answers_lock:
        asking = _asking.setdefault(url, threading.Lock())
    with asking:  # one asks; the others wait for its answer rather than ask too
        known = _answers.get(url)
        if known is not None and time.monotonic() - known[0] < check.cache_seconds:
            return known[1]
        answer: int | str
        try:
            answer = httpx.get(url, timeout=check.timeout).status_code
        except httpx.HTTPError as exc:
            answer = type(exc).__name__
        _answers[url] = (time.monotonic(), answer)
        return answer


def _without_paths(detail: str, store_path: Any) -> str:
    """``detail`` with the store's path and folder (a file's) or URL named, not spelled out."""
    detail = detail.replace(str(store_path), "the store")
    if isinstance(store_path, Path):
        detail = detail.replace(str(store_path.parent), "the store's folder")
    return detail


def _provider_url(provider: str, urls: dict[str, str]) -> str:
    if provider in urls:
        return urls[provider]
    known = _DEFAULT_URLS.get(provider)
    if known is None:
        raise ConfigError(
            f"model_availability has no URL for provider {provider!r}; add it under the "
            f"check's urls (e.g. urls: {{{provider}: https://host/v1/models}})"
        )
    variable, default, path = known
    base = os.environ.get(variable) or default
    base = base.rstrip("/")
    if provider == "anthropic" and base.endswith("/v1"):
        base = base[: -len("/v1")]
    return base + path


def serve_health(request: Request) -> Response:
    """The metrics server's route for every health endpoint: 200 when healthy, else 503.

    The endpoint's checks come from the server's configuration; the store is the one the
    server reports on (``workbench serve-metrics --db``), else the default.
    """
    from workbench.store import open_store

    checker = HealthChecker(request.config, store=open_store(request.store_path), hide_paths=True)
    path = request.path.rstrip("/") or "/"
    if path not in checker.paths:
        return Response(
            404,
            f"{path} is not in health_checks.endpoints ({', '.join(checker.paths)})\n".encode(),
        )
    report = checker.run(path)
    status = 200 if report.status == "healthy" else 503
    return Response.json(report.to_json(detailed=path != "/health"), status=status)


def register_routes(config: HealthChecksConfig | WorkbenchConfig | None = None) -> list[str]:
    """Serve the documented ``/health`` and ``/health/detailed``, and every endpoint path
    ``config`` adds, from the metrics server; returns the paths registered."""
    paths = ["/health", "/health/detailed"]
    if config is not None:
        section = config.health_checks if isinstance(config, WorkbenchConfig) else config
        paths += [e.path for e in section.endpoints if e.path not in paths]
    for path in paths:
        routes.setdefault(path, serve_health)
    return paths


register_routes()
