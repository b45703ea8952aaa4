"""Export recorded traces through the OpenTelemetry SDK over OTLP (HTTP/protobuf or gRPC).

Owns the ``tracing`` section's effect: when it is enabled, every execution that finishes is read
back from the store — its root span, its steps' spans, custom spans (``tracer.start_span``,
``workbench.span``) and one client span per model call — and handed, with the ids, times and
parentage the store holds, to an SDK ``TracerProvider`` whose ``ParentBased(TraceIdRatioBased)``
sampler and ``BatchSpanProcessor`` send it to the configured OTLP endpoint. Model-call spans
carry the OpenTelemetry GenAI semantic-convention attributes (``gen_ai.operation.name``,
``gen_ai.request.model``, ``gen_ai.response.id``, ``gen_ai.usage.input_tokens``, ...), which
:mod:`workbench.monitoring.tracing._genai` reads from each call's stored request and response.
Names, attributes, events and error descriptions are scrubbed on the way out as the store's rows
are on the way in (``workbench.redaction``), so a store written before a rule existed leaks
nothing either.

Why from the store, at the execution's end, on a thread of its own: the store already holds the
whole trace (the recorder writes every span once, cheaply), so the caller's path pays one queue
append per execution and nothing per span, and what a backend shows is exactly what
``workbench runs show`` shows. The price is that a trace reaches the backend when its execution
ends, not while it runs.

Why the exit is bounded by hand: the SDK's ``BatchSpanProcessor.force_flush`` ignores its
timeout and exports on the caller's thread, and an OTLP export retries with back-off for its whole
``timeout`` (10 s by default) against a closed port, or waits that long on a collector that takes
the connection and never answers. So at exit the flush and the provider's shutdown run on a daemon
thread that the exiting process waits for at most ``shutdown_timeout`` seconds; what is still in
flight then is given up, with one warning naming the endpoint.

The SDK and exporters are the ``otel`` extra; they are imported only when tracing is enabled.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from workbench._hooks import Observer
from workbench.exceptions import MissingExtraError, StoreError
from workbench.monitoring.tracing._genai import (
    content_attributes,
    execution_context,
    genai_attributes,
    span_name,
)
from workbench.monitoring.tracing._tracing import STATUS_DESCRIPTION
from workbench.redaction import scrub_output, scrub_text, sensitive_names_for

if TYPE_CHECKING:
    from workbench.config import TracingConfig, WorkbenchConfig
    from workbench.records import Execution, Span
    from workbench.store import Store

__all__ = ["TraceExporter", "tracing_observer"]

log = logging.getLogger("workbench.monitoring")

_SCOPE = "workbench"
_HTTP_DEFAULT = "http://localhost:4318/v1/traces"
_GRPC_DEFAULT = "http://localhost:4317"
_GRPC_PORT = 4317


def tracing_observer(config: WorkbenchConfig) -> TraceExporter | None:
    """The built-in observer factory: ``None`` (no cost at all) unless tracing is enabled."""
    if not config.tracing.enabled:
        return None
    return TraceExporter(config.tracing)


def _require_sdk(protocol: str) -> None:
    module = (
        "opentelemetry.exporter.otlp.proto.grpc.trace_exporter"
        if protocol == "grpc"
        else "opentelemetry.exporter.otlp.proto.http.trace_exporter"
    )
    try:
        __import__("opentelemetry.sdk.trace")
        __import__(module)
    except ImportError as exc:
        package = (
            "opentelemetry-exporter-otlp-proto-grpc"
            if protocol == "grpc"
            else "opentelemetry-exporter-otlp-proto-http"
        )
        raise MissingExtraError(
            f"tracing is enabled (protocol {protocol!r}) but {exc.name or package} is not "
            f"installed; install the otel extra: pip install 'pipeline-workbench[otel]' "
            f"(opentelemetry-sdk and {package}), or set tracing.enabled: false"
        ) from exc


def resolve_endpoint(endpoint: str | None, protocol: str | None) -> tuple[str, str]:
    """``(endpoint, protocol)``: the documented defaults, and ``/v1/traces`` for a bare HTTP URL."""
    if protocol is None:
        port = urlsplit(endpoint).port if endpoint else None
        protocol = "grpc" if port == _GRPC_PORT else "http/protobuf"
    if endpoint is None:
        return (_GRPC_DEFAULT if protocol == "grpc" else _HTTP_DEFAULT), protocol
    if protocol != "grpc" and urlsplit(endpoint).path in ("", "/"):
        endpoint = endpoint.rstrip("/") + "/v1/traces"
    return endpoint, protocol


class _RecordedIds:
    """An SDK ``IdGenerator`` that hands out the ids the store already holds.

    The exporter thread sets ``trace_id`` and ``span_id`` right before each ``start_span``, so the
    SDK's span carries the recorded ids; it is the only thread using this provider.
    """

    def __init__(self) -> None:
        self.trace_id = 0
        self.span_id = 0

    def generate_span_id(self) -> int:
        return self.span_id

    def generate_trace_id(self) -> int:
        return self.trace_id

    def is_trace_id_random(self) -> bool:
        return True  # os.urandom: TraceIdRatioBased may rely on it


class TraceExporter(Observer):
    """Exports each finished execution's trace from the store; see the module docstring."""

    def __init__(self, config: TracingConfig) -> None:
        settings = config.config
        self.endpoint, self.protocol = resolve_endpoint(settings.endpoint, settings.protocol)
        _require_sdk(self.protocol)
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SpanExporter,
        )
        from opentelemetry.sdk.trace.id_generator import IdGenerator
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

        ids = _RecordedIds()
        IdGenerator.register(_RecordedIds)
        self._ids = ids
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": settings.service_name}),
            sampler=ParentBased(TraceIdRatioBased(settings.sampling_rate)),
            id_generator=ids,  # type: ignore[arg-type]
            # The SDK's own exit hook would flush without a bound; ``shutdown`` bounds it.
            shutdown_on_exit=False,
        )
        self._shutdown_timeout = settings.shutdown_timeout
        for kind in dict.fromkeys(settings.exporters):
            exporter: SpanExporter
            if kind == "console":
                exporter = ConsoleSpanExporter()
            elif self.protocol == "grpc":
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                    OTLPSpanExporter as GrpcExporter,
                )

                exporter = GrpcExporter(
                    endpoint=self.endpoint,
                    insecure=urlsplit(self.endpoint).scheme != "https",
                    headers=settings.headers or None,
                    timeout=settings.timeout,
                )
            else:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter as HttpExporter,
                )

                exporter = HttpExporter(
                    endpoint=self.endpoint,
                    headers=settings.headers or None,
                    timeout=settings.timeout,
                )
            self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self._tracer = self.provider.get_tracer(_SCOPE)
        #: What leaves the process is scrubbed as the store is, whenever the store was written.
        self._sensitive = sensitive_names_for()
        self._capture_content = config.capture_content
        self._jobs: queue.Queue[tuple[Store, str] | threading.Event | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="workbench-otel", daemon=True)
        self._thread.start()
        atexit.register(self.shutdown)
        self._closed = False

    # -- the observer: one queue append per execution -----------------------------------------

    def execution_finished(self, run: Any) -> None:
        # An execution that debug sampling left unrecorded has nothing in the store to export.
        if not self._closed and getattr(run, "recording", True):
            self._jobs.put((run.store, run.id))

    # -- lifecycle ------------------------------------------------------------------------------

    def force_flush(self, timeout_s: float = 30.0) -> bool:
        """Export every execution finished so far; True when the exporters confirmed it within
        ``timeout_s`` seconds (the wait is bounded even though the SDK's flush is not)."""
        if self._closed:
            return True
        deadline = time.monotonic() + timeout_s
        done = threading.Event()
        self._jobs.put(done)
        if not done.wait(timeout_s):
            return False
        remaining = max(deadline - time.monotonic(), 0.0)
        return _within(lambda: bool(self.provider.force_flush(int(remaining * 1000))), remaining)

    def shutdown(self, timeout_s: float | None = None) -> None:
        """Export what is pending, then stop the thread and the exporters (idempotent).

        Waits at most ``timeout_s`` seconds (default ``tracing.config.shutdown_timeout``): this
        runs at the process's exit, which a collector that is down must not hold up.
        """
        if self._closed:
            return
        budget = self._shutdown_timeout if timeout_s is None else timeout_s
        deadline = time.monotonic() + budget
        flushed = self.force_flush(budget)
        self._closed = True
        self._jobs.put(None)
        self._thread.join(timeout=max(deadline - time.monotonic(), 0.0))
        # Even with the budget spent, shutting the exporter down stops its retries at once (an
        # export blocked on a silent socket is left to die with the process: daemon threads).
        _within(self._stop_provider, max(deadline - time.monotonic(), 0.1))
        atexit.unregister(self.shutdown)
        if not flushed:
            log.warning(
                "workbench: the trace collector at %s did not confirm the last export within "
                "%.1f s (tracing.config.shutdown_timeout); traces of the executions that "
                "finished last may be missing there",
                self.endpoint,
                budget,
            )

    def _stop_provider(self) -> bool:
        self.provider.shutdown()
        return True

    # -- the exporter thread --------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if isinstance(job, threading.Event):
                job.set()
                continue
            try:
                self.export_execution(*job)
            except Exception:  # a damaged row or a closed store must not stop later exports
                log.exception("workbench could not export the trace of execution %s", job[1])

    def export_execution(self, store: Store, execution_id: str) -> None:
        """Read one execution's trace from ``store`` and hand it to the SDK (this thread only)."""
        from opentelemetry.trace import SpanKind, Status, StatusCode

        try:
            store.flush(strict=False)
            found = store.find_execution(execution_id)
            spans = store.spans(execution_id)
            calls = store.model_calls(execution_id)
        except StoreError:
            log.warning(
                "workbench: the store of execution %s is closed; not exported", execution_id
            )
            return
        if found is None:
            return
        execution = _execution_fields(found)
        trace_id = int(found.trace_id, 16)
        # Parents before children: the sampler of a child reads its parent's decision.
        records = _in_tree_order(spans)
        sampled: dict[str, bool] = {}
        for record in records:
            parent_id = record.parent_span_id
            context = _parent_context(trace_id, parent_id, sampled)
            attributes = scrub_output(_attributes(record, execution), self._sensitive)
            kind = SpanKind.INTERNAL
            self._ids.trace_id, self._ids.span_id = trace_id, int(record.span_id, 16)
            span = self._tracer.start_span(
                scrub_text(record.name, self._sensitive),
                context=context,
                kind=kind,
                attributes=attributes,
                start_time=_ns(record.start),
            )
            is_sampled = span.get_span_context().trace_flags.sampled
            sampled[record.span_id] = is_sampled
            if not parent_id:
                sampled["root"] = is_sampled
            if span.is_recording():
                events = [dict(e) for e in record.events if isinstance(e, dict)]
                for event in scrub_output(events, self._sensitive):
                    name = str(event.pop("name", "event"))
                    when = event.pop("time", None)
                    span.add_event(
                        name, _flat(event), timestamp=_ns(when) if when is not None else None
                    )
                if record.status == "error":
                    description = attributes.get(STATUS_DESCRIPTION)
                    span.set_status(Status(StatusCode.ERROR, _str_or_none(description)))
                elif record.kind in ("execution", "step"):
                    span.set_status(Status(StatusCode.OK))
            span.end(end_time=_ns(record.end if record.end is not None else record.start))
        context_attributes = execution_context(execution)
        for call in calls:
            context = _parent_context(trace_id, call.span_id, sampled)
            attributes = {**genai_attributes(call), **context_attributes}
            if self._capture_content:
                attributes.update(content_attributes(call, self._sensitive))
            attributes = scrub_output(attributes, self._sensitive)
            self._ids.trace_id = trace_id
            self._ids.span_id = call_span_id(call.id)
            span = self._tracer.start_span(
                scrub_text(span_name(call), self._sensitive),
                context=context,
                kind=SpanKind.CLIENT,
                attributes=attributes,
                start_time=_ns(call.started_at),
            )
            if span.is_recording() and "error.type" in attributes:
                error = call.error.message if call.error is not None else None
                description = None if error is None else scrub_text(error, self._sensitive)
                span.set_status(Status(StatusCode.ERROR, description))
            span.end(end_time=_ns(call.started_at + (call.latency_s or 0.0)))


def _within(work: Callable[[], bool], timeout_s: float) -> bool:
    """``work()``'s answer if it returns within ``timeout_s`` seconds, else False (it carries on,
    on a daemon thread, until it returns or the process ends)."""
    answer: list[bool] = []
    thread = threading.Thread(
        target=lambda: answer.append(work()), name="workbench-otel-flush", daemon=True
    )
    thread.start()
    thread.join(timeout_s)
    return bool(answer and answer[0])


def call_span_id(call_id: str) -> int:
    """The exported span id of a model call: a hash of its record id, the same on every
    export. Not the id's tail: record ids and span ids share the process's prefix and count
    from 1 each, so a fresh process's first call and first span had the same id, and a backend
    that keys spans by id kept only one of them."""
    digest = hashlib.blake2b(call_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") or 1  # 0 is OpenTelemetry's invalid span id


def _parent_context(trace_id: int, parent_id: str | None, sampled: dict[str, bool]) -> Any:
    """The OTel context of a stored span's parent, carrying the parent's sampling decision;
    ``None`` for a root. A parent not in the store (still open when the run was killed)
    passes on the trace's decision."""
    if not parent_id:
        return None
    from opentelemetry import trace  # the otel extra: imported only once tracing is on
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    parent_sampled = sampled.get(parent_id, sampled.get("root", False))
    parent = SpanContext(
        trace_id,
        int(parent_id, 16),
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED if parent_sampled else 0),
    )
    return trace.set_span_in_context(NonRecordingSpan(parent))


def _in_tree_order(records: list[Span]) -> list[Span]:
    """Spans ordered so that each comes after its parent (a child can end, and so be stored,
    before its parent; the sort by start time already holds for all but ties)."""
    by_id = {r.span_id: r for r in records}
    placed: set[str] = set()
    ordered: list[Span] = []

    def place(record: Span, depth: int = 0) -> None:
        if record.span_id in placed:
            return
        parent = by_id.get(record.parent_span_id or "")
        if parent is not None and depth < 1000:
            place(parent, depth + 1)
        placed.add(record.span_id)
        ordered.append(record)

    for record in records:
        place(record)
    return ordered


def _execution_fields(execution: Execution) -> dict[str, Any]:
    """The execution's fields its spans carry, as the attribute builders read them."""
    return {
        name: getattr(execution, name)
        for name in (
            "id", "pipeline_id", "pipeline_version", "environment", "status", "cost_usd",
            "tokens_in", "tokens_out", "replay_of", "user_id", "session_id",
        )
    }  # fmt: skip


def _attributes(record: Span, execution: dict[str, Any]) -> dict[str, Any]:
    attributes = _flat(record.attributes if isinstance(record.attributes, dict) else {})
    attributes["workbench.execution_id"] = execution["id"]
    if record.kind == "execution":
        attributes.update(
            {
                key: value
                for key, value in (
                    ("pipeline.id", execution["pipeline_id"]),
                    ("pipeline.version", execution["pipeline_version"]),
                    ("deployment.environment.name", execution["environment"]),
                    ("workbench.status", execution["status"]),
                    ("workbench.cost_usd", execution["cost_usd"]),
                    ("gen_ai.usage.input_tokens", execution["tokens_in"]),
                    ("gen_ai.usage.output_tokens", execution["tokens_out"]),
                    ("workbench.replay_of", execution["replay_of"]),
                )
                if value is not None
            }
        )
        attributes.update(execution_context(execution))
        # OpenInference's kind for a pipeline run and its steps: Phoenix lists them as chains
        # around the LLM spans rather than as spans of unknown kind.
        attributes.setdefault("openinference.span.kind", "CHAIN")
    elif record.kind == "step":
        attributes["task.id"] = record.name
        attributes.setdefault("openinference.span.kind", "CHAIN")
    return attributes


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


_PRIMITIVE = (str, bool, int, float)


def _flat(attributes: dict[str, Any]) -> dict[str, Any]:
    """Attribute values OpenTelemetry accepts: primitives and homogeneous lists of them;
    anything else as its JSON text (nested values are legal in the store, not in OTLP)."""
    flat: dict[str, Any] = {}
    for key, value in attributes.items():
        if value is None:
            continue
        if isinstance(value, _PRIMITIVE):
            flat[key] = value
        elif (
            isinstance(value, list | tuple)
            and value
            and all(isinstance(v, _PRIMITIVE) for v in value)
            and len({type(v) for v in value}) == 1
        ):
            flat[key] = list(value)
        else:
            from workbench._json import encode

            flat[key] = encode(value).decode()
    return flat
