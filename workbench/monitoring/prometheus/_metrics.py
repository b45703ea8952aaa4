"""``from workbench.monitoring import metrics``: Prometheus metrics on workbench's own registry.

Owns declaring metrics (``metrics.Counter/Gauge/Histogram/Summary``), the one
``CollectorRegistry`` they live in, its exposition, and pushing it to a Pushgateway. A declared
metric *is* the ``prometheus_client`` object — ``.labels(...).inc()`` costs exactly what
prometheus_client costs, with nothing of ours on that path. Declaring is idempotent: the same
name, type and labels give back the same metric (a step's custom metrics are declared each time
they are evaluated), and a clash is a :class:`~workbench.exceptions.ConfigError`.

What the recorder keeps in these metrics is ``_builtin``'s business, serving them over HTTP is
``_server``'s, and metrics from a step's result are ``_custom``'s.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import prometheus_client
from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector

from workbench.exceptions import ConfigError

if TYPE_CHECKING:
    from workbench.config import WorkbenchConfig

__all__ = ["METRIC_TYPES", "REGISTRY", "MetricType", "Metrics", "metrics"]

MetricType = Literal["counter", "gauge", "histogram", "summary"]
METRIC_TYPES: tuple[MetricType, ...] = ("counter", "gauge", "histogram", "summary")

#: Every metric workbench declares, and the collectors of the built-in metrics that are read when
#: scraped; a registry of its own, so that an application's default registry is left alone.
REGISTRY = CollectorRegistry(auto_describe=True)

# The names Prometheus 2.x parses (newer prometheus_client also allows UTF-8 names, which the
# Prometheus servers most people run would refuse at scrape time).
_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

M = TypeVar("M", bound=prometheus_client.metrics.MetricWrapperBase)


class Metrics:
    """Declare metrics on workbench's registry, read them, serve them, push them.

    >>> processed = metrics.Counter("processed_items_total", "Items processed",
    ...                             labels=["item_type", "status"])
    >>> processed.labels(item_type="pdf", status="ok").inc()
    """

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        self._declared: dict[str, tuple[str, tuple[str, ...], Any, Any]] = {}
        self._lock = threading.Lock()

    # -- declaring ---------------------------------------------------------------------------

    def Counter(  # named as in the documentation and prometheus_client
        self, name: str, documentation: str, labels: Sequence[str] = ()
    ) -> prometheus_client.Counter:
        """A counter, exposed as ``<name>_total`` (a ``_total`` ending in ``name`` is kept once)."""
        return self._declare(prometheus_client.Counter, "counter", name, documentation, labels)

    def Gauge(
        self, name: str, documentation: str, labels: Sequence[str] = ()
    ) -> prometheus_client.Gauge:
        """A value that goes up and down."""
        return self._declare(prometheus_client.Gauge, "gauge", name, documentation, labels)

    def Histogram(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] | None = None,
    ) -> prometheus_client.Histogram:
        """Observations counted in ``buckets`` (upper bounds; prometheus_client's by default)."""
        return self._declare(
            prometheus_client.Histogram, "histogram", name, documentation, labels, buckets
        )

    def Summary(
        self, name: str, documentation: str, labels: Sequence[str] = ()
    ) -> prometheus_client.Summary:
        """Count and sum of observations (prometheus_client's Summary keeps no quantiles)."""
        return self._declare(prometheus_client.Summary, "summary", name, documentation, labels)

    def declare(
        self,
        metric_type: str,
        name: str,
        documentation: str | None = None,
        labels: Sequence[str] = (),
        buckets: Sequence[float] | None = None,
    ) -> Any:
        """Declare a metric by type name (``counter``, ``gauge``, ``histogram``, ``summary``)."""
        doc = documentation or f"{name} (declared by workbench)"
        if metric_type == "counter":
            return self.Counter(name, doc, labels)
        if metric_type == "gauge":
            return self.Gauge(name, doc, labels)
        if metric_type == "histogram":
            return self.Histogram(name, doc, labels, buckets)
        if metric_type == "summary":
            return self.Summary(name, doc, labels)
        raise ConfigError(
            f"metric {name!r} has type {metric_type!r}; use one of {', '.join(METRIC_TYPES)}"
        )

    def _declare(
        self,
        kind: Callable[..., M],
        type_name: str,
        name: str,
        documentation: str,
        labels: Sequence[str],
        buckets: Sequence[float] | None = None,
    ) -> M:
        labelnames = _checked(name, labels)
        key = name[: -len("_total")] if type_name == "counter" and name.endswith("_total") else name
        wanted_buckets = tuple(buckets) if buckets is not None else None
        with self._lock:
            known = self._declared.get(key)
            if known is not None:
                known_type, known_labels, known_buckets, metric = known
                if (known_type, known_labels) == (type_name, labelnames) and (
                    wanted_buckets is None or wanted_buckets == known_buckets
                ):
                    return metric  # type: ignore[no-any-return]
                raise ConfigError(
                    f"metric {name!r} is already declared as a {known_type} with labels "
                    f"{list(known_labels)}"
                    + (f" and buckets {list(known_buckets)}" if known_buckets else "")
                    + f"; it cannot also be a {type_name} with labels {list(labelnames)}"
                    + (f" and buckets {list(wanted_buckets)}" if wanted_buckets else "")
                    + "; declare it once with one type and label set, or use another name"
                )
            kwargs: dict[str, Any] = {"labelnames": labelnames, "registry": self.registry}
            if wanted_buckets is not None:
                kwargs["buckets"] = _checked_buckets(name, wanted_buckets)
            try:
                metric = kind(name, documentation, **kwargs)
            except ValueError as exc:  # a name taken by one of workbench's collectors
                raise ConfigError(
                    f"metric {name!r} cannot be declared: {exc}; choose another name"
                ) from exc
            self._declared[key] = (type_name, labelnames, wanted_buckets, metric)
            return metric

    def get(self, name: str) -> Any:
        """The metric declared as ``name`` (``None`` if none is)."""
        with self._lock:
            known = self._declared.get(name) or self._declared.get(name.removesuffix("_total"))
        return None if known is None else known[3]

    def register_collector(self, collector: Collector) -> None:
        """Add a collector read at each scrape (workbench's own: resources, store, rates)."""
        self.registry.register(collector)

    def unregister_collector(self, collector: Collector) -> None:
        self.registry.unregister(collector)

    # -- reading and exporting -----------------------------------------------------------------

    def value(self, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        """The current value of one sample (``None`` if it does not exist): for tests and REPLs."""
        return self.registry.get_sample_value(name, dict(labels or {}))

    def exposition(self) -> bytes:
        """Every metric in Prometheus' text format, as ``/metrics`` serves it."""
        return prometheus_client.generate_latest(self.registry)

    def push(
        self,
        gateway: str | None = None,
        *,
        job: str | None = None,
        grouping_key: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        config: WorkbenchConfig | None = None,
    ) -> None:
        """Push every metric of this process to a Prometheus Pushgateway.

        ``gateway`` defaults to the ``pushgateway`` of ``metrics.providers`` (or
        ``monitoring.providers``) in workbench.yaml, ``job`` to ``metrics.job``. The push
        replaces what this job and grouping key pushed before.
        """
        if config is None:
            from workbench.config import load_config

            config = load_config()
        url = gateway or config.metrics.pushgateway(config.monitoring)
        if not url:
            raise ConfigError(
                "no Pushgateway to push to: pass metrics.push('http://host:9091') or set "
                "metrics.providers: [{type: prometheus, pushgateway: 'http://host:9091'}] in "
                "workbench.yaml"
            )
        try:
            prometheus_client.push_to_gateway(
                url,
                job=job or config.metrics.job,
                registry=self.registry,
                grouping_key=dict(grouping_key or {}),
                timeout=timeout,
            )
        except OSError as exc:
            raise ConfigError(
                f"pushing metrics to the Pushgateway at {url} failed ({exc}); check that it "
                f"runs there, or fix metrics.providers[].pushgateway in workbench.yaml"
            ) from exc


def _checked(name: str, labels: Iterable[str]) -> tuple[str, ...]:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"metric name {name!r} is not a Prometheus name; use letters, digits, '_' and ':' "
            f"(not starting with a digit), e.g. 'processed_items_total'"
        )
    if isinstance(labels, str):
        raise ConfigError(
            f"metric {name!r}: labels must be a list of names, got the string {labels!r}; "
            f"write labels=[{labels!r}]"
        )
    names = tuple(labels)
    for label in names:
        if not isinstance(label, str) or not _LABEL.match(label) or label.startswith("__"):
            raise ConfigError(
                f"metric {name!r}: label {label!r} is not a Prometheus label name; use "
                f"letters, digits and '_' (not starting with a digit or '__')"
            )
    if len(set(names)) != len(names):
        raise ConfigError(f"metric {name!r}: labels {list(names)} name one label twice")
    return names


def _checked_buckets(name: str, buckets: tuple[float, ...]) -> tuple[float, ...]:
    try:
        values = tuple(float(b) for b in buckets)
    except (TypeError, ValueError):
        raise ConfigError(
            f"metric {name!r}: buckets {list(buckets)} must be numbers, e.g. [0.1, 0.5, 1, 5]"
        ) from None
    if not values or list(values) != sorted(set(values)):
        raise ConfigError(
            f"metric {name!r}: buckets {list(buckets)} must be a non-empty list of distinct "
            f"numbers in increasing order, e.g. [0.1, 0.5, 1, 5]"
        )
    return values


#: The metrics of this process: ``from workbench.monitoring import metrics``.
metrics = Metrics()
