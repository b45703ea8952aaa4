"""``workbench serve-metrics``: serve /metrics (and /health) for Prometheus from the store.

Owns the command's options and its start-up line; the server is
``workbench.monitoring.prometheus._server``'s, the figures
``workbench.monitoring.prometheus._store_metrics``'.
"""

from __future__ import annotations

import os
from pathlib import Path

import click
import orjson

from workbench.cli._options import CONTEXT, db_option, json_option
from workbench.store import resolve_store_path

__all__ = ["serve_metrics_command"]


@click.command("serve-metrics", context_settings=CONTEXT)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port to listen on. Default: metrics.port in workbench.yaml, else 9464.",
)
@click.option(
    "--host",
    default=None,
    help="Address to listen on. Default: metrics.host in workbench.yaml, else 127.0.0.1.",
)
@click.option(
    "--cache",
    "cache_s",
    type=click.FloatRange(0),
    default=5.0,
    show_default=True,
    help="Seconds a scrape's answer is reused, so several scrapers share one pass.",
)
@db_option()
@json_option('Print {"url", "store", "pid"} as one JSON line.')
def serve_metrics_command(
    port: int | None, host: str | None, cache_s: float, db: Path | None, as_json: bool
) -> None:
    """Serve /metrics for Prometheus, computed from the store, until Ctrl-C.

    A sidecar for every process that records into the store: executions, steps and model
    calls (counts, durations, tokens, cost, error rates) and this machine's memory, CPU, disk
    and network. Also serves the other monitoring endpoints (e.g. /health).
    """
    import workbench.monitoring  # noqa: F401 - registers the modules' routes
    from workbench.config import load_config
    from workbench.monitoring.prometheus._server import MetricsServer
    from workbench.monitoring.prometheus._store_metrics import store_registry

    config = load_config()
    path = resolve_store_path(db)
    registry, collector = store_registry(path, config, cache_s=cache_s)
    server = MetricsServer(
        config.metrics.host if host is None else host,
        config.metrics.port if port is None else port,
        registry=registry,
        config=config,
        store_path=path,
    )
    if as_json:  # one line a supervisor or script can read the port from
        click.echo(orjson.dumps({"url": server.url, "store": str(path), "pid": os.getpid()}))
    else:
        click.echo(f"serving {server.url} for store {path} (Ctrl-C to stop)", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        collector.close()
