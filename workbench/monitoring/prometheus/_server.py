"""The HTTP server of ``/metrics``, and the route table other endpoints register in.

Owns one small threaded HTTP server (``http.server``; GET and HEAD only) that serves:

* ``/metrics`` — the server's Prometheus registry, in the text format or OpenMetrics as the
  scraper's ``Accept`` header asks;
* every path in :data:`routes`, a ``dict[str, Route]`` that any module may add to when it is
  imported. A :data:`Route` is ``Callable[[Request], Response]``: it gets the request's path,
  query, headers and the configuration and store the server reports on, and returns a
  :class:`Response` (``Response.json(value, status=...)`` for JSON). A route that raises
  answers 500 and is logged; an unknown path answers 404 listing the paths served.

``workbench.monitoring`` imports every module that registers a route, so ``workbench
serve-metrics`` and :func:`serve_metrics` serve all of them. Two ways to run it:

* in the application's process — :func:`serve_metrics` (a daemon thread) exposes this
  process's live metrics (``_builtin``): scrape each worker;
* as a sidecar next to the store — ``workbench serve-metrics`` exposes the same metric families
  computed from the store (``_store_metrics``), so one scrape covers every process that records
  there. Scrape one or the other: both would count the same executions twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import orjson
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from workbench.exceptions import ConfigError

if TYPE_CHECKING:
    from workbench.config import WorkbenchConfig

__all__ = ["MetricsServer", "Request", "Response", "Route", "routes", "serve_metrics"]

log = logging.getLogger("workbench.monitoring")


@dataclass(frozen=True)
class Request:
    """What a route is asked: the path and query, the headers, and what the server reports on."""

    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    config: WorkbenchConfig
    #: The store this server reports on: the sidecar's ``--db``, else ``None`` (the default).
    store_path: Path | None = None


@dataclass(frozen=True)
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, value: Any, status: int = 200) -> Response:
        body = orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
        return cls(status, body, "application/json")


Route = Callable[[Request], Response]

#: Paths served besides ``/metrics``: ``routes["/health"] = handler`` at import time.
routes: dict[str, Route] = {}


class MetricsServer:
    """``/metrics`` and :data:`routes` over HTTP on a daemon thread; ``port=0`` picks a port.

    >>> with MetricsServer(port=0) as server:
    ...     print(server.url)            # http://127.0.0.1:<port>/metrics
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 9464,
        *,
        registry: CollectorRegistry | None = None,
        config: WorkbenchConfig | None = None,
        store_path: Path | None = None,
    ) -> None:
        if registry is None:
            from workbench.monitoring.prometheus._builtin import builtin_metrics
            from workbench.monitoring.prometheus._metrics import REGISTRY

            builtin_metrics()  # the built-in families are there from the first scrape
            registry = REGISTRY
        if config is None:
            from workbench.config import load_config

            config = load_config()
        self.registry = registry
        self.config = config
        self.store_path = store_path
        handler = type("_Handler", (_Handler,), {"owner": self})
        try:
            self._httpd = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise ConfigError(
                f"cannot serve metrics on {host}:{port} ({exc.strerror}); choose another port "
                f"(--port, or metrics.port in workbench.yaml)"
            ) from exc
        self._httpd.daemon_threads = True
        self.host = host
        self.port: int = self._httpd.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def start(self) -> MetricsServer:
        """Serve on a daemon thread; returns at once."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="workbench-metrics", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve on this thread until :meth:`close` (or Ctrl-C)."""
        self._httpd.serve_forever()

    def close(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> MetricsServer:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def answer(self, path: str, query: str, headers: Mapping[str, str]) -> Response:
        if path == "/metrics":
            encoder, content_type = choose_encoder(headers.get("accept", ""))
            return Response(200, encoder(self.registry), content_type)
        route = routes.get(path) or routes.get(path.rstrip("/") or "/")
        if route is None:
            served = ", ".join(sorted(["/metrics", *routes]))
            return Response(404, f"no such path {path}; served here: {served}\n".encode())
        request = Request(path, parse_qs(query), headers, self.config, self.store_path)
        try:
            return route(request)
        except Exception as exc:
            log.exception("workbench route %s failed", path)
            return Response(500, f"{path} failed: {type(exc).__name__}: {exc}\n".encode())


class _Handler(BaseHTTPRequestHandler):
    owner: MetricsServer
    server_version = "workbench-metrics"

    def do_GET(self) -> None:
        self._respond(body=True)

    def do_HEAD(self) -> None:
        self._respond(body=False)

    def _respond(self, *, body: bool) -> None:
        parts = urlsplit(self.path)
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            response = self.owner.answer(parts.path, parts.query, headers)
        except Exception as exc:  # a collector failing: the scrape says so, the server lives
            log.exception("workbench could not answer %s", parts.path)
            response = Response(500, f"{type(exc).__name__}: {exc}\n".encode())
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if body:
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("metrics server: " + format, *args)


def serve_metrics(
    port: int | None = None, host: str | None = None, *, config: WorkbenchConfig | None = None
) -> MetricsServer:
    """Serve this process's metrics on a daemon thread (``metrics.host``/``metrics.port`` of
    workbench.yaml by default); returns the running server (``.url``, ``.close()``)."""
    if config is None:
        from workbench.config import load_config

        config = load_config()
    port = config.metrics.port if port is None else port
    host = config.metrics.host if host is None else host
    return MetricsServer(host, port, config=config).start()
