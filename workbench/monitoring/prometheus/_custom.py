"""Custom metrics: a step's ``metrics=[...]`` evaluated from its result, and ``@monitor``.

A declaration is what the documentation's YAML writes under a step's
``monitoring.custom_metrics`` — a mapping, or a :class:`CustomMetric` from Python::

    @workbench.step("process_data", metrics=[
        {"name": "data_rows_processed", "type": "counter", "value": "{{ results.row_count }}",
         "labels": {"data_type": "{{ inputs.data_type }}"}},
        {"name": "transformation_time", "type": "histogram",
         "value": "{{ execution.duration }}", "buckets": [0.1, 0.5, 1, 5, 10]},
    ])

``value`` and label values are Jinja2 expressions, evaluated in Jinja2's sandbox (no ``eval``,
no attribute access to Python internals) with: ``results`` (also ``result``: the step's
return value), ``inputs`` (the execution's inputs), ``execution`` (``duration`` — the step's
seconds —, ``id``, ``pipeline_id``, ``user_id``) and ``step`` (``id``, ``occurrence``,
``action``, ``retries``, ``duration``). A plain number is a constant; a value left out is the
result itself. Counters add the value, gauges are set to it, histograms and summaries observe
it. Only completed steps are evaluated (a failed step has no result). :meth:`CustomMetric.parse`
is the one parser of declarations, for Python and YAML pipelines alike; a YAML pipeline renders
the templates itself (they may read other steps) and hands over an :class:`EvaluatedMetric`.

A declaration that cannot be evaluated never fails the step: it is logged once per step and
metric, as a warning that names the step, the metric, the problem and the fix.
:func:`CustomMetric.parse` checks a declaration up front and raises
:class:`~workbench.exceptions.ConfigError` instead.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from workbench import _hooks
from workbench.exceptions import ConfigError
from workbench.monitoring.prometheus._metrics import METRIC_TYPES, MetricType, metrics

__all__ = ["CustomMetric", "EvaluatedMetric", "evaluate_step_metrics", "monitor"]

log = logging.getLogger("workbench.monitoring")

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

_KEYS = ("name", "type", "value", "labels", "buckets", "description")


@dataclass(frozen=True)
class CustomMetric:
    """One custom metric of a step: ``value`` and ``labels`` are Jinja2 expressions or
    constants (see the module's documentation for what they can name)."""

    name: str
    type: MetricType = "gauge"
    value: str | float | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    buckets: Sequence[float] | None = None
    description: str | None = None

    @classmethod
    def parse(cls, declaration: Mapping[str, Any] | CustomMetric) -> CustomMetric:
        """A declaration checked: keys, type, labels, buckets and expression syntax."""
        if isinstance(declaration, CustomMetric):
            metric = declaration
        else:
            if not isinstance(declaration, Mapping):
                raise ConfigError(
                    f"a custom metric is a mapping with keys {', '.join(_KEYS)}, not "
                    f"{type(declaration).__name__} {declaration!r}"
                )
            unknown = sorted(set(declaration) - set(_KEYS))
            if unknown:
                raise ConfigError(
                    f"custom metric {declaration.get('name')!r} has unknown keys {unknown}; "
                    f"allowed: {', '.join(_KEYS)}"
                )
            name = declaration.get("name")
            if not isinstance(name, str) or not name:
                raise ConfigError(
                    f"custom metric {dict(declaration)!r} has no name; add name: my_metric"
                )
            labels = declaration.get("labels") or {}
            if not isinstance(labels, Mapping):
                raise ConfigError(
                    f"custom metric {declaration['name']!r}: labels must map label names to "
                    f"values, e.g. {{data_type: '{{{{ inputs.data_type }}}}'}}, not {labels!r}"
                )
            metric = cls(
                name=declaration["name"],
                type=declaration.get("type", "gauge"),
                value=declaration.get("value"),
                labels={str(k): str(v) for k, v in labels.items()},
                buckets=declaration.get("buckets"),
                description=declaration.get("description"),
            )
        if metric.type not in METRIC_TYPES:
            raise ConfigError(
                f"custom metric {metric.name!r} has type {metric.type!r}; use one of "
                f"{', '.join(METRIC_TYPES)}"
            )
        if metric.buckets is not None:
            if metric.type != "histogram":
                raise ConfigError(
                    f"custom metric {metric.name!r}: buckets apply to histograms, and this is "
                    f"a {metric.type}; remove buckets or make it type: histogram"
                )
            buckets = metric.buckets
            if (
                isinstance(buckets, str | bytes)
                or not isinstance(buckets, Sequence)
                or not all(isinstance(b, int | float) and not isinstance(b, bool) for b in buckets)
                or list(buckets) != sorted(buckets)
            ):
                raise ConfigError(
                    f"custom metric {metric.name!r}: buckets must be an increasing list of "
                    f"numbers, like [0.1, 1, 10], not {buckets!r}"
                )
        _compiled(metric)  # syntax errors now, not at the first step
        return metric


@dataclass(frozen=True)
class EvaluatedMetric:
    """A custom metric whose value and label values were already evaluated by its declarer.

    YAML pipelines render a metric's templates themselves, with the pipeline's own context
    (``steps`` and the rest) and template filters; the step then carries one of these, recorded
    as given: its value and labels are data, never read as expressions again.
    """

    metric: CustomMetric
    value: Any
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Compiled:
    metric: CustomMetric
    value: Callable[[dict[str, Any]], Any]
    labels: tuple[tuple[str, Callable[[dict[str, Any]], str]], ...]


@functools.cache
def _environment() -> Any:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


def _expression(metric: CustomMetric, text: str, what: str) -> Callable[[dict[str, Any]], Any]:
    from jinja2 import TemplateSyntaxError

    env = _environment()
    stripped = text.strip()
    inner = stripped[2:-2] if stripped.startswith("{{") and stripped.endswith("}}") else None
    try:
        if inner is not None and "{{" not in inner and "}}" not in inner:
            expression = env.compile_expression(inner, undefined_to_none=False)
            return lambda context: expression(**context)
        if "{{" in stripped or "{%" in stripped:
            template = env.from_string(stripped)
            return lambda context: template.render(**context)
        expression = env.compile_expression(stripped, undefined_to_none=False)
        return lambda context: expression(**context)
    except TemplateSyntaxError as exc:
        raise ConfigError(
            f"custom metric {metric.name!r}: {what} {text!r} is not a valid expression "
            f"({exc.message}); write e.g. '{{{{ results.row_count }}}}'"
        ) from None


_cache: dict[int, tuple[Any, _Compiled]] = {}
_cache_lock = threading.Lock()


def _compiled(metric: CustomMetric) -> _Compiled:
    value: Callable[[dict[str, Any]], Any]
    if metric.value is None:
        value = _result
    elif isinstance(metric.value, (int, float)):
        value = _constant(float(metric.value))
    elif isinstance(metric.value, str):
        value = _expression(metric, metric.value, "value")
    else:
        raise ConfigError(
            f"custom metric {metric.name!r}: value must be a number or an expression like "
            f"'{{{{ results.row_count }}}}', not {type(metric.value).__name__}"
        )
    labels: list[tuple[str, Callable[[dict[str, Any]], str]]] = []
    for label, text in metric.labels.items():
        if "{{" in text or "{%" in text:
            labels.append((label, _as_text(_expression(metric, text, f"label {label!r}"))))
        else:
            labels.append((label, _constant(text)))
    return _Compiled(metric, value, tuple(labels))


def _result(context: dict[str, Any]) -> Any:
    return context["results"]


def _constant(value: T) -> Callable[[dict[str, Any]], T]:
    return lambda context: value


def _as_text(fn: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], str]:
    return lambda context: str(fn(context))


def _for_declaration(declaration: Any) -> _Compiled:
    # Declarations live as long as their step decorator: cached by identity, kept alive by the
    # cache so that an id is never reused for another declaration.
    key = id(declaration)
    cached = _cache.get(key)
    if cached is not None and cached[0] is declaration:
        return cached[1]
    compiled = _compiled(CustomMetric.parse(declaration))
    with _cache_lock:
        _cache[key] = (declaration, compiled)
    return compiled


#: ``(step, metric, kind of problem)`` already warned about: once each, however many runs.
_warned: set[tuple[str, str, str]] = set()


def evaluate_step_metrics(event: _hooks.StepEvent) -> None:
    """Update each custom metric the step declares, from its result (completed steps only)."""
    if event.status != "completed":
        return
    run = event.run
    context: dict[str, Any] | None = None
    for declaration in event.metrics:
        name = _declared_name(declaration)
        try:
            if isinstance(declaration, EvaluatedMetric):
                metric = declaration.metric
                _record(metric, declaration.value, dict(declaration.labels))
                continue
            compiled = _for_declaration(declaration)
            if context is None:
                context = _context(event, run)
            _record(
                compiled.metric,
                compiled.value(context),
                {label: fn(context) for label, fn in compiled.labels},
            )
        except ConfigError as exc:
            _warn_once(event.step_id, name, "ConfigError", str(exc))
        except Exception as exc:  # a template error, a missing key, a value of the wrong type
            _warn_once(
                event.step_id,
                name,
                type(exc).__name__,
                f"custom metric {name!r} was not recorded: {type(exc).__name__}: {exc}; fix "
                f"its value or labels in the step's metrics declaration",
            )


def _declared_name(declaration: Any) -> str:
    if isinstance(declaration, EvaluatedMetric):
        return declaration.metric.name
    if isinstance(declaration, CustomMetric):
        return declaration.name
    if isinstance(declaration, Mapping):
        return str(declaration.get("name"))
    return repr(declaration)


def _context(event: _hooks.StepEvent, run: Any) -> dict[str, Any]:
    return {
        "results": event.result,
        "result": event.result,
        "inputs": run.inputs,
        "execution": {
            "duration": event.duration_s,
            "id": run.id,
            "pipeline_id": run.pipeline_id,
            "user_id": run.user_id,
        },
        "step": {
            "id": event.step_id,
            "occurrence": event.occurrence,
            "action": event.action,
            "retries": event.retries,
            "duration": event.duration_s,
        },
    }


def _record(metric: CustomMetric, raw: Any, labels: dict[str, str]) -> None:
    try:
        number = float(raw)
    except (TypeError, ValueError):
        raise ConfigError(
            f"custom metric {metric.name!r}: value {metric.value!r} gave {raw!r} "
            f"({type(raw).__name__}), not a number; point it at a number in the result"
        ) from None
    target = metrics.declare(
        metric.type,
        metric.name,
        metric.description,
        list(labels),
        metric.buckets,
    )
    if labels:
        target = target.labels(*labels.values())
    if metric.type == "counter":
        if number < 0:
            raise ConfigError(
                f"custom metric {metric.name!r} is a counter and its value was {number}; a "
                f"counter only goes up: make it a gauge, or count something non-negative"
            )
        target.inc(number)
    elif metric.type == "gauge":
        target.set(number)
    else:
        target.observe(number)


def _warn_once(step_id: str, name: str, kind: str, message: str) -> None:
    key = (step_id, name, kind)
    if key not in _warned:
        _warned.add(key)
        log.warning("workbench step %r: %s", step_id, message)


# -- @monitor -------------------------------------------------------------------------------


def monitor(
    metric_name: str,
    metric_type: MetricType = "histogram",
    *,
    labels: Mapping[str, str] | None = None,
    description: str | None = None,
    buckets: Sequence[float] | None = None,
) -> Callable[[F], F]:
    """Measure every call of a function (sync or ``async``) in one metric.

    ``histogram``/``summary``: its duration in seconds; ``counter``: the calls; ``gauge``: the
    calls in progress. Counters, histograms and summaries carry a ``status`` label (``ok`` or
    ``error``) after ``labels``, which are constant label values.
    """
    if metric_type not in METRIC_TYPES:
        raise ConfigError(
            f"@monitor({metric_name!r}): metric_type {metric_type!r} is not one of "
            f"{', '.join(METRIC_TYPES)}"
        )
    fixed = dict(labels or {})
    with_status = metric_type != "gauge"
    names = [*fixed, "status"] if with_status else list(fixed)
    doc = (
        description
        or {
            "histogram": f"Duration in seconds of {metric_name}",
            "summary": f"Duration in seconds of {metric_name}",
            "counter": f"Calls of {metric_name}",
            "gauge": f"Calls of {metric_name} in progress",
        }[metric_type]
    )
    metric = metrics.declare(metric_type, metric_name, doc, names, buckets)

    def decorate(fn: F) -> F:
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise ConfigError(
                f"@monitor({metric_name!r}) cannot measure the generator function "
                f"{fn.__qualname__} (it returns before its items are made); measure the code "
                f"that iterates it"
            )
        values = list(fixed.values())
        if not with_status:
            gauge = metric.labels(*values) if values else metric
            return cast(F, _in_progress(fn, gauge))
        ok = metric.labels(*values, "ok")
        error = metric.labels(*values, "error")
        if metric_type == "counter":
            return cast(F, _counted(fn, ok.inc, error.inc))
        return cast(F, _timed(fn, ok.observe, error.observe))

    return decorate


def _timed(
    fn: Callable[..., Any], ok: Callable[[float], None], error: Callable[[float], None]
) -> Any:
    clock = time.perf_counter
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def timed_async(*args: Any, **kwargs: Any) -> Any:
            start = clock()
            try:
                result = await fn(*args, **kwargs)
            except BaseException:
                error(clock() - start)
                raise
            ok(clock() - start)
            return result

        return timed_async

    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = clock()
        try:
            result = fn(*args, **kwargs)
        except BaseException:
            error(clock() - start)
            raise
        ok(clock() - start)
        return result

    return timed


def _counted(fn: Callable[..., Any], ok: Callable[[], None], error: Callable[[], None]) -> Any:
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def counted_async(*args: Any, **kwargs: Any) -> Any:
            try:
                result = await fn(*args, **kwargs)
            except BaseException:
                error()
                raise
            ok()
            return result

        return counted_async

    @functools.wraps(fn)
    def counted(*args: Any, **kwargs: Any) -> Any:
        try:
            result = fn(*args, **kwargs)
        except BaseException:
            error()
            raise
        ok()
        return result

    return counted


def _in_progress(fn: Callable[..., Any], gauge: Any) -> Any:
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def tracked_async(*args: Any, **kwargs: Any) -> Any:
            gauge.inc()
            try:
                return await fn(*args, **kwargs)
            finally:
                gauge.dec()

        return tracked_async

    @functools.wraps(fn)
    def tracked(*args: Any, **kwargs: Any) -> Any:
        gauge.inc()
        try:
            return fn(*args, **kwargs)
        finally:
            gauge.dec()

    return tracked
