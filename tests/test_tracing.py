"""Custom spans are recorded in the store and, with tracing on, exported over real OTLP.

The OTLP endpoints are servers this test starts on 127.0.0.1: an ``http.server`` that decodes
``ExportTraceServiceRequest`` protobufs, a gRPC ``TraceService`` from opentelemetry-proto, and a
real ``phoenix serve`` (arize-phoenix, from a venv of its own: its dependencies are not ours)
when ``WORKBENCH_PHOENIX`` names its ``phoenix`` executable or one is on the PATH.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

import workbench
from workbench import _hooks
from workbench.config import TracingConfig, WorkbenchConfig
from workbench.exceptions import ConfigError, MissingExtraError
from workbench.monitoring.tracing._otel import TraceExporter, resolve_endpoint, tracing_observer
from workbench.monitoring.tracing._tracing import StatusCode, tracer
from workbench.store import Store
from workbench.testing import ModelServer

ROOT = Path(__file__).resolve().parents[1]


class OtlpHttpReceiver:
    """An OTLP/HTTP trace endpoint: keeps every span it is sent, decoded from protobuf."""

    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = trace_service_pb2.ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver.requests.append(request)
                answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def spans_of(requests: list[trace_service_pb2.ExportTraceServiceRequest]) -> list[Any]:
    return [
        (resource_spans.resource, span)
        for request in requests
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    ]


def value(any_value: AnyValue) -> Any:
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [value(v) for v in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


def attrs(span: Any) -> dict[str, Any]:
    return {kv.key: value(kv.value) for kv in span.attributes}


@pytest.fixture
def receiver() -> Iterator[OtlpHttpReceiver]:
    server = OtlpHttpReceiver()
    yield server
    server.close()


def exporter_for(**settings: Any) -> TraceExporter:
    config = WorkbenchConfig.model_validate({"tracing": {"enabled": True, "config": settings}})
    return TraceExporter(config.tracing)


@pytest.fixture
def exporting(receiver: OtlpHttpReceiver) -> Iterator[TraceExporter]:
    exporter = exporter_for(endpoint=receiver.url, service_name="research-svc")
    _hooks.add_observer(exporter)
    yield exporter
    _hooks.remove_observer(exporter)
    exporter.shutdown()


_clients: list[openai.OpenAI] = []


def _client(server: ModelServer) -> openai.OpenAI:
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)
    _clients.append(client)
    return client


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """Each test's clients closed when it ends: an unclosed one's socket, kept in a reference
    cycle, warned wherever the collector next ran (at the session's end: a failed run)."""
    yield
    while _clients:
        _clients.pop().close()


def test_custom_spans_nest_and_keep_attributes_status_and_exception(store: Store) -> None:
    """tracer.start_span records a span under the current step, with attributes, an error
    status and description, and one exception event (not two) when the caller records it."""

    @workbench.step("transform")
    def transform() -> None:
        with tracer.start_span("custom_operation", attributes={"operation.type": "x"}) as span:
            span.set_attribute("data.size", 3)
            with workbench.step("inner"):
                pass
            span.set_status(StatusCode.OK)
        with pytest.raises(ValueError), tracer.start_span("failing") as failing:
            try:
                raise ValueError("bad row")
            except ValueError as exc:
                failing.record_exception(exc)
                failing.set_status(StatusCode.ERROR, str(exc))
                raise

    with workbench.record("traced", inputs={}, store=store) as run:
        transform()
    execution = run.execution()
    by_name = {span.name: span for span in execution.spans}
    step_span = by_name["transform"]
    custom = by_name["custom_operation"]
    assert custom.parent_span_id == step_span.span_id
    assert by_name["inner"].parent_span_id == custom.span_id
    assert custom.attributes == {"operation.type": "x", "data.size": 3}
    assert custom.status == "ok"
    failing_span = by_name["failing"]
    assert failing_span.status == "error"
    assert failing_span.attributes["otel.status_description"] == "bad row"
    assert [e["name"] for e in failing_span.events] == ["exception"]
    assert failing_span.events[0]["exception.type"] == "ValueError"
    assert "Traceback" in failing_span.events[0]["exception.stacktrace"]


def test_span_outside_an_execution_is_a_no_op() -> None:
    """Outside an execution, a span accepts every call, records nothing and does not raise."""
    with tracer.start_span("lonely", attributes={"a": 1}) as span:
        span.set_attribute("b", 2)
        span.add_event("tick")
        span.set_status(StatusCode.ERROR, "nope")
        assert not span.is_recording()


def test_unknown_status_is_a_clear_error(store: Store) -> None:
    """A status that is not a status code names the allowed ones."""
    with workbench.record("traced", inputs={}, store=store):
        with tracer.start_span("s") as span, pytest.raises(ConfigError, match=r"StatusCode\.OK"):
            span.set_status("sideways")


def test_trace_is_exported_over_otlp_http_with_genai_attributes(
    exporting: TraceExporter, receiver: OtlpHttpReceiver, store: Store, model_server: ModelServer
) -> None:
    """One execution arrives at the OTLP/HTTP endpoint as one trace with the recorded ids:
    root → step → custom span → model-call span, the call carrying GenAI attributes."""
    client = _client(model_server)

    @workbench.step("ask")
    def ask() -> str:
        with tracer.start_span("prepare", attributes={"prompt.chars": 2}):
            reply = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
        return reply.choices[0].message.content or ""

    with workbench.record("research_assistant", inputs={}, user_id="u1", store=store) as run:
        ask()
    assert exporting.force_flush()
    spans = spans_of(receiver.requests)
    assert {span.name for _, span in spans} == {
        "research_assistant",
        "ask",
        "prepare",
        "chat gpt-4o-mini",
    }
    resource = spans[0][0]
    assert {kv.key: value(kv.value) for kv in resource.attributes}["service.name"] == (
        "research-svc"
    )
    by_name = {span.name: span for _, span in spans}
    assert {span.trace_id.hex() for _, span in spans} == {run.trace_id}
    root, step, custom, call = (
        by_name[n] for n in ("research_assistant", "ask", "prepare", "chat gpt-4o-mini")
    )
    assert root.span_id.hex() == run.root_span_id and root.parent_span_id == b""
    assert step.parent_span_id == root.span_id
    assert custom.parent_span_id == step.span_id
    assert call.parent_span_id == custom.span_id
    assert call.kind == call.SPAN_KIND_CLIENT
    recorded = run.execution().model_calls[0]
    call_attrs = attrs(call)
    assert call_attrs["gen_ai.operation.name"] == "chat"
    assert call_attrs["gen_ai.provider.name"] == "openai"
    assert call_attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert call_attrs["gen_ai.usage.input_tokens"] == recorded.input_tokens
    assert call_attrs["gen_ai.usage.output_tokens"] == recorded.output_tokens
    assert call_attrs["gen_ai.response.finish_reasons"] == [recorded.finish_reason]
    assert call.end_time_unix_nano > call.start_time_unix_nano
    root_attrs = attrs(root)
    assert root_attrs["pipeline.id"] == "research_assistant"
    assert root_attrs["user.id"] == "u1"
    assert root_attrs["workbench.execution_id"] == run.id
    assert attrs(custom)["prompt.chars"] == 2


def test_failed_execution_exports_error_status(
    exporting: TraceExporter, receiver: OtlpHttpReceiver, store: Store
) -> None:
    """A failing step and execution reach the backend with ERROR status."""
    with pytest.raises(RuntimeError):
        with workbench.record("broken", inputs={}, store=store), workbench.step("explode"):
            raise RuntimeError("boom")
    assert exporting.force_flush()
    by_name = {span.name: span for _, span in spans_of(receiver.requests)}
    assert by_name["explode"].status.code == by_name["explode"].status.STATUS_CODE_ERROR
    assert by_name["broken"].status.code == by_name["broken"].status.STATUS_CODE_ERROR


def test_sampling_rate_zero_exports_nothing_but_keeps_the_store(
    receiver: OtlpHttpReceiver, store: Store
) -> None:
    """With sampling_rate 0 the trace is not exported; the store still holds every span."""
    exporter = exporter_for(endpoint=receiver.url, sampling_rate=0.0)
    _hooks.add_observer(exporter)
    try:
        with workbench.record("quiet", inputs={}, store=store) as run:
            with workbench.step("s"):
                pass
        assert exporter.force_flush()
    finally:
        _hooks.remove_observer(exporter)
        exporter.shutdown()
    assert spans_of(receiver.requests) == []
    assert {span.name for span in run.execution().spans} == {"quiet", "s"}


class _GrpcTraces(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []

    def Export(self, request: Any, context: Any) -> Any:
        self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()


def test_trace_is_exported_over_otlp_grpc(store: Store) -> None:
    """protocol: grpc sends the same trace to a gRPC TraceService."""
    import grpc

    service = _GrpcTraces()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    exporter = exporter_for(endpoint=f"http://127.0.0.1:{port}", protocol="grpc")
    _hooks.add_observer(exporter)
    try:
        with workbench.record("over_grpc", inputs={}, store=store) as run:
            with workbench.step("s"):
                pass
        assert exporter.force_flush()
    finally:
        _hooks.remove_observer(exporter)
        exporter.shutdown()
        server.stop(None)
    spans = spans_of(service.requests)
    assert {span.name for _, span in spans} == {"over_grpc", "s"}
    assert {span.trace_id.hex() for _, span in spans} == {run.trace_id}


def test_factory_is_off_by_default_and_names_the_extra_when_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tracing off: no observer at all; on without the exporter: an error naming the extra."""
    assert tracing_observer(WorkbenchConfig()) is None
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    config = WorkbenchConfig.model_validate({"tracing": {"endpoint": "http://127.0.0.1:1"}})
    with pytest.raises(MissingExtraError, match=r"pipeline-workbench\[otel\]"):
        tracing_observer(config)


def test_endpoint_and_protocol_defaults() -> None:
    """Port 4317 means gRPC; a bare HTTP URL gets /v1/traces; no endpoint: the local defaults."""
    assert resolve_endpoint("http://collector:4317", None) == ("http://collector:4317", "grpc")
    assert resolve_endpoint("http://collector:4318", None) == (
        "http://collector:4318/v1/traces",
        "http/protobuf",
    )
    assert resolve_endpoint(None, None) == ("http://localhost:4318/v1/traces", "http/protobuf")
    assert resolve_endpoint(None, "grpc") == ("http://localhost:4317", "grpc")


def test_documented_tracing_section_parses() -> None:
    """The documentation's tracing section (nested and flat forms) reads into typed settings."""
    nested = TracingConfig.model_validate(
        {
            "enabled": True,
            "provider": "opentelemetry",
            "config": {
                "service_name": "orchestrator-pipelines",
                "endpoint": "http://localhost:4317",
                "sampling_rate": 0.1,
                "exporters": ["jaeger"],
                "propagators": ["tracecontext", "baggage"],
            },
        }
    )
    assert nested.config.sampling_rate == 0.1
    flat = TracingConfig.model_validate({"provider": "opentelemetry", "endpoint": "http://c:4317"})
    assert flat.enabled and flat.config.endpoint == "http://c:4317"


_RECORD_ONE = """
import logging, sys
import workbench
logging.basicConfig(format="%(name)s %(levelname)s %(message)s")
with workbench.record("short", inputs={}, store=sys.argv[1]):
    with workbench.step("s"):
        pass
print("recorded", flush=True)
"""


def _exit_time(tmp_path: Path, name: str, tracing: dict[str, Any]) -> tuple[float, str]:
    """Seconds a script that records one execution takes to exit once its work is done (from
    its last line to its end: imports and start-up, noisy on a loaded machine, left out), and
    its stderr."""
    script = tmp_path / "record_one.py"
    script.write_text(_RECORD_ONE)
    config = tmp_path / f"{name}.yaml"
    config.write_text(yaml.safe_dump({"tracing": tracing}))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WORKBENCH_CONFIG": str(config)}
    process = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / f"{name}.db")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    done_at = time.perf_counter()
    _, stderr = process.communicate(timeout=60)
    exit_s = time.perf_counter() - done_at
    assert line.strip() == "recorded" and process.returncode == 0, stderr
    return exit_s, stderr


def test_an_unreachable_or_silent_collector_delays_exit_by_a_bounded_time(
    tmp_path: Path,
) -> None:
    """A collector on a closed port, or one that takes the connection and never answers, adds
    at most 2.5 s to a short script's exit (the bounded shutdown; it was 8-10 s), and
    workbench says once, naming the endpoint, that the last traces may not have reached it."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()  # nothing listens there now: connection refused
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # the kernel completes the handshake; nobody ever reads or answers
    try:
        baseline, _ = _exit_time(tmp_path, "off", {"enabled": False})
        silent_port = silent.getsockname()[1]
        for name, endpoint, protocol in (
            ("closed", f"http://127.0.0.1:{closed_port}/v1/traces", "http/protobuf"),
            ("silent", f"http://127.0.0.1:{silent_port}/v1/traces", "http/protobuf"),
            ("silent-grpc", f"http://127.0.0.1:{silent_port}", "grpc"),
        ):
            settings = {"enabled": True, "endpoint": endpoint, "protocol": protocol}
            elapsed, stderr = _exit_time(tmp_path, name, settings)
            assert elapsed - baseline <= 2.5, (name, elapsed, baseline, stderr)
            ours = [
                line
                for line in stderr.splitlines()
                if line.startswith("workbench") and " WARNING " in line
            ]
            assert len(ours) == 1, stderr
            assert endpoint in ours[0]
    finally:
        silent.close()


def _call_spans(receiver: OtlpHttpReceiver) -> list[Any]:
    return [span for _, span in spans_of(receiver.requests) if span.kind == span.SPAN_KIND_CLIENT]


def test_model_call_spans_follow_the_genai_conventions_for_every_operation(
    exporting: TraceExporter, receiver: OtlpHttpReceiver, store: Store, model_server: ModelServer
) -> None:
    """Chat, Responses, legacy completions and embeddings each export a defined
    gen_ai.operation.name (Responses is ``chat`` with openai.api.type ``responses``), the
    request's model and parameters, the response's model and id, finish reasons and usage;
    the run's session_id is session.id and gen_ai.conversation.id on the root and each call."""
    client = _client(model_server)
    with workbench.record(
        "assistant", inputs={}, user_id="u1", session_id="thread-7", store=store
    ) as run:
        chat = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            temperature=0.2,
            top_p=0.9,
            max_tokens=50,
            stop=["END"],
            seed=3,
        )
        responses = client.responses.create(
            model="gpt-4o-mini", input="hello", max_output_tokens=40, temperature=0.5
        )
        client.completions.create(model="gpt-3.5-turbo-instruct", prompt="say", max_tokens=5)
        client.embeddings.create(model="text-embedding-3-small", input="vector me")
    assert exporting.force_flush()
    assert store.get_execution(run.id).session_id == "thread-7"
    by_api = {}
    for span in _call_spans(receiver):
        a = attrs(span)
        by_api[a.get("openai.api.type", a["gen_ai.operation.name"])] = (span, a)
        assert a["session.id"] == a["gen_ai.conversation.id"] == "thread-7"
        assert a["user.id"] == "u1"
    assert set(by_api) == {"chat_completions", "responses", "text_completion", "embeddings"}
    span, chat_attrs = by_api["chat_completions"]
    assert span.name == "chat gpt-4o-mini"
    assert chat_attrs["gen_ai.operation.name"] == "chat"
    assert chat_attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert chat_attrs["gen_ai.response.model"] == chat.model
    assert chat_attrs["gen_ai.response.id"] == chat.id
    assert chat_attrs["gen_ai.request.temperature"] == 0.2
    assert chat_attrs["gen_ai.request.top_p"] == 0.9
    assert chat_attrs["gen_ai.request.max_tokens"] == 50
    assert chat_attrs["gen_ai.request.stop_sequences"] == ["END"]
    assert chat_attrs["gen_ai.request.seed"] == 3
    assert chat_attrs["gen_ai.response.finish_reasons"] == [chat.choices[0].finish_reason]
    assert chat_attrs["gen_ai.usage.input_tokens"] == chat.usage.prompt_tokens  # type: ignore[union-attr]
    span, responses_attrs = by_api["responses"]
    assert span.name == "chat gpt-4o-mini"
    assert responses_attrs["gen_ai.operation.name"] == "chat"
    assert responses_attrs["gen_ai.response.id"] == responses.id
    assert responses_attrs["gen_ai.request.max_tokens"] == 40
    assert responses_attrs["gen_ai.request.temperature"] == 0.5
    assert responses_attrs["gen_ai.usage.output_tokens"] == responses.usage.output_tokens  # type: ignore[union-attr]
    span, completion_attrs = by_api["text_completion"]
    assert span.name == "text_completion gpt-3.5-turbo-instruct"
    assert completion_attrs["gen_ai.request.max_tokens"] == 5
    assert "openai.api.type" not in completion_attrs
    span, embedding_attrs = by_api["embeddings"]
    assert span.name == "embeddings text-embedding-3-small"
    assert embedding_attrs["gen_ai.request.model"] == "text-embedding-3-small"
    assert embedding_attrs["gen_ai.usage.input_tokens"] > 0
    root = next(s for _, s in spans_of(receiver.requests) if s.name == "assistant")
    assert attrs(root)["session.id"] == attrs(root)["gen_ai.conversation.id"] == "thread-7"
    assert attrs(root)["openinference.span.kind"] == "CHAIN"


def test_content_capture_exports_prompts_and_answers_only_when_asked(
    receiver: OtlpHttpReceiver, store: Store, model_server: ModelServer
) -> None:
    """tracing.capture_content: true puts the prompt and answer on the model-call span as the
    GenAI conventions' gen_ai.input/output.messages and OpenInference's input.value,
    output.value and llm.*_messages (with openinference.span.kind LLM); by default the span
    has its kind but no content."""
    client = _client(model_server)

    def exported(capture: bool) -> dict[str, Any]:
        config = WorkbenchConfig.model_validate(
            {
                "tracing": {
                    "enabled": True,
                    "capture_content": capture,
                    "config": {"endpoint": receiver.url},
                }
            }
        )
        exporter = TraceExporter(config.tracing)
        _hooks.add_observer(exporter)
        receiver.requests.clear()
        try:
            with workbench.record("content", inputs={}, store=store):
                reply = client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[
                        {"role": "system", "content": "be brief"},
                        {"role": "user", "content": "name a llama"},
                    ],
                )
            assert exporter.force_flush()
        finally:
            _hooks.remove_observer(exporter)
            exporter.shutdown()
        (span,) = _call_spans(receiver)
        return {"answer": reply.choices[0].message.content, **attrs(span)}

    plain = exported(False)
    assert plain["openinference.span.kind"] == "LLM"
    assert not {k for k in plain if k.startswith(("input.", "output.", "llm.input_messages"))}
    assert "gen_ai.input.messages" not in plain and "gen_ai.output.messages" not in plain
    captured = exported(True)
    answer = captured["answer"]
    assert captured["openinference.span.kind"] == "LLM"
    assert json.loads(captured["gen_ai.input.messages"]) == [
        {"role": "system", "parts": [{"type": "text", "content": "be brief"}]},
        {"role": "user", "parts": [{"type": "text", "content": "name a llama"}]},
    ]
    assert json.loads(captured["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": answer}],
            "finish_reason": "stop",
        }
    ]
    assert json.loads(captured["input.value"])["messages"][1]["content"] == "name a llama"
    assert captured["input.mime_type"] == "application/json"
    assert captured["output.value"] == answer
    assert captured["llm.input_messages.1.message.role"] == "user"
    assert captured["llm.input_messages.1.message.content"] == "name a llama"
    assert captured["llm.output_messages.0.message.content"] == answer


def test_content_capture_reads_responses_and_anthropic_messages(
    receiver: OtlpHttpReceiver, store: Store, model_server: ModelServer
) -> None:
    """The Responses API's instructions/input/output and Anthropic's system/content blocks
    become the same role-and-parts messages."""
    import anthropic

    config = WorkbenchConfig.model_validate(
        {"tracing": {"capture_content": True, "config": {"endpoint": receiver.url}}}
    )
    exporter = TraceExporter(config.tracing)
    _hooks.add_observer(exporter)
    try:
        with workbench.record("content", inputs={}, store=store):
            response = _client(model_server).responses.create(
                model="gpt-4o-mini", instructions="be brief", input="name a llama"
            )
            message = anthropic.Anthropic(
                base_url=model_server.anthropic_base_url, api_key="sk-ant-test", max_retries=0
            ).messages.create(
                model="claude-3-5-haiku-latest",
                max_tokens=50,
                system="be kind",
                messages=[{"role": "user", "content": [{"type": "text", "text": "hello"}]}],
            )
        assert exporter.force_flush()
    finally:
        _hooks.remove_observer(exporter)
        exporter.shutdown()
    by_provider = {attrs(s)["gen_ai.provider.name"]: attrs(s) for s in _call_spans(receiver)}
    openai_attrs, anthropic_attrs = by_provider["openai"], by_provider["anthropic"]
    assert json.loads(openai_attrs["gen_ai.system_instructions"]) == [
        {"type": "text", "content": "be brief"}
    ]
    assert json.loads(openai_attrs["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "name a llama"}]}
    ]
    assert openai_attrs["output.value"] == response.output_text
    assert json.loads(anthropic_attrs["gen_ai.system_instructions"]) == [
        {"type": "text", "content": "be kind"}
    ]
    assert json.loads(anthropic_attrs["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "hello"}]}
    ]
    text = "".join(b.text for b in message.content if b.type == "text")
    assert anthropic_attrs["output.value"] == text
    assert anthropic_attrs["llm.input_messages.0.message.role"] == "system"


def test_cost_and_tokens_go_out_under_the_names_langfuse_and_phoenix_read(
    exporting: TraceExporter, receiver: OtlpHttpReceiver, store: Store, model_server: ModelServer
) -> None:
    """A priced call's span carries its cost as gen_ai.usage.cost (Langfuse) and
    llm.cost.total (OpenInference), and its tokens as llm.token_count.prompt/completion/total."""
    with workbench.record("priced", inputs={}, store=store) as run:
        _client(model_server).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    assert exporting.force_flush()
    recorded = run.execution().model_calls[0]
    assert recorded.cost_usd is not None and recorded.cost_usd > 0
    assert recorded.input_tokens is not None and recorded.output_tokens is not None
    (span,) = _call_spans(receiver)
    a = attrs(span)
    assert a["gen_ai.usage.cost"] == a["llm.cost.total"] == recorded.cost_usd
    assert a["llm.token_count.prompt"] == recorded.input_tokens
    assert a["llm.token_count.completion"] == recorded.output_tokens
    assert a["llm.token_count.total"] == recorded.input_tokens + recorded.output_tokens


def test_model_call_span_ids_never_collide_with_recorded_span_ids(
    exporting: TraceExporter, receiver: OtlpHttpReceiver, store: Store, model_server: ModelServer
) -> None:
    """Every exported span of a trace has its own id, also when the process's span and record
    counters stand at the same number (a fresh process: its first span and its first call),
    where a backend that keys spans by id (Phoenix) kept one and dropped the other."""
    from workbench import _ids

    _ids._reseed()  # what a fresh (or forked) process starts from
    with workbench.record("fresh", inputs={}, store=store):
        _client(model_server).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    assert exporting.force_flush()
    ids = [span.span_id for _, span in spans_of(receiver.requests)]
    assert len(ids) == 2 and len(set(ids)) == 2


@workbench.pipeline
def ask_once(question: str, *, base_url: str) -> str:
    """A one-call pipeline (module level, so that replay can import it)."""
    with openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0) as client:
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": question}]
        )
    return reply.choices[0].message.content or ""


def test_a_replayed_call_exports_no_spend_and_keeps_the_session(
    exporting: TraceExporter, receiver: OtlpHttpReceiver, store: Store, model_server: ModelServer
) -> None:
    """A call answered from the recording cost nothing: its span says gen_ai.usage.cost 0
    (a backend would otherwise count it, or price its tokens itself), while the original's
    carries the spend; the replay keeps the original's session."""
    from workbench.debugging import RequestReplay

    with workbench.record("asked", inputs={}, session_id="s-9", store=store) as run:
        ask_once("hi", base_url=model_server.openai_base_url)
    result = RequestReplay(store).replay_execution(run.id)
    assert exporting.force_flush()
    by_execution = {attrs(s)["workbench.call_id"]: attrs(s) for s in _call_spans(receiver)}
    (original,) = run.execution().model_calls
    (replayed,) = store.get_execution(result.execution_id).model_calls
    assert replayed.replayed and replayed.cost_usd == original.cost_usd
    assert by_execution[original.id]["gen_ai.usage.cost"] == original.cost_usd
    assert by_execution[original.id]["llm.cost.total"] == original.cost_usd
    replay_attrs = by_execution[replayed.id]
    assert replay_attrs["gen_ai.usage.cost"] == replay_attrs["llm.cost.total"] == 0.0
    assert replay_attrs["workbench.replayed"] is True
    assert replay_attrs["session.id"] == "s-9"


# -- a real Phoenix ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``phoenix serve`` on 127.0.0.1 with a working folder of its own; yields its base URL."""
    executable = os.environ.get("WORKBENCH_PHOENIX") or shutil.which("phoenix")
    if not executable:
        pytest.skip(
            "Phoenix is not installed: set WORKBENCH_PHOENIX to the `phoenix` executable of a "
            "venv with arize-phoenix (python -m venv /tmp/phoenix-venv && /tmp/phoenix-venv/bin/"
            "pip install arize-phoenix; .ci/run does this)"
        )
    folder = tmp_path_factory.mktemp("phoenix")
    port = _free_port()
    env = {
        **os.environ,
        "PHOENIX_WORKING_DIR": str(folder),
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(_free_port()),
        "PHOENIX_TELEMETRY_ENABLED": "false",
        # Its built-in assistant (which can run shell commands) has no business in a test.
        "PHOENIX_DISABLE_AGENT_ASSISTANT": "true",
    }
    log = (folder / "phoenix.log").open("wb")
    process = subprocess.Popen(
        [executable, "serve"], cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # a first start creates its database
        while True:
            if process.poll() is not None:
                raise AssertionError(
                    f"phoenix serve exited ({process.returncode}): "
                    f"{(folder / 'phoenix.log').read_text(errors='replace')[-2000:]}"
                )
            try:
                if httpx.get(f"{url}/v1/projects", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"phoenix serve did not answer at {url} within 120s")
            time.sleep(0.25)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _phoenix_spans(url: str, trace_id: str, count: int) -> list[dict[str, Any]]:
    """The trace's spans as Phoenix's REST API returns them, once it has ingested ``count``."""
    deadline = time.monotonic() + 30
    while True:
        reply = httpx.get(f"{url}/v1/projects/default/spans", params={"limit": 100}, timeout=10)
        reply.raise_for_status()
        spans = [s for s in reply.json()["data"] if s["context"]["trace_id"] == trace_id]
        if len(spans) >= count:
            return spans
        if time.monotonic() > deadline:
            raise AssertionError(f"Phoenix holds {len(spans)} of the trace's {count} spans")
        time.sleep(0.25)


def test_a_real_phoenix_shows_the_model_call_with_tokens_cost_and_content(
    phoenix: str, store: Store, model_server: ModelServer
) -> None:
    """A recorded run exported over OTLP/HTTP to `phoenix serve` reads back from Phoenix's
    REST API as one trace whose model call is an LLM span with its tokens, cost, prompt and
    answer, and the run's session id."""
    config = WorkbenchConfig.model_validate(
        {"tracing": {"capture_content": True, "config": {"endpoint": phoenix}}}
    )
    exporter = TraceExporter(config.tracing)
    _hooks.add_observer(exporter)
    try:
        with workbench.record("phoenix_run", inputs={}, session_id="chat-42", store=store) as run:
            with workbench.step("ask"):
                reply = _client(model_server).chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "name a llama"}]
                )
        assert exporter.force_flush()
    finally:
        _hooks.remove_observer(exporter)
        exporter.shutdown()
    recorded = run.execution().model_calls[0]
    spans = _phoenix_spans(phoenix, run.trace_id, 3)
    by_name = {span["name"]: span for span in spans}
    assert set(by_name) == {"phoenix_run", "ask", "chat gpt-4o-mini"}
    llm = by_name["chat gpt-4o-mini"]
    assert llm["span_kind"] == "LLM"
    assert llm["parent_id"] == by_name["ask"]["context"]["span_id"]
    assert by_name["ask"]["span_kind"] == by_name["phoenix_run"]["span_kind"] == "CHAIN"
    a = llm["attributes"]
    assert a["llm.token_count.prompt"] == recorded.input_tokens
    assert a["llm.token_count.completion"] == recorded.output_tokens
    assert a["llm.token_count.total"] == recorded.input_tokens + recorded.output_tokens  # type: ignore[operator]
    assert recorded.cost_usd is not None
    assert a["llm.cost.total"] == pytest.approx(recorded.cost_usd)
    assert a["gen_ai.usage.cost"] == pytest.approx(recorded.cost_usd)
    assert json.loads(a["input.value"])["messages"] == [{"role": "user", "content": "name a llama"}]
    assert a["output.value"] == reply.choices[0].message.content
    assert a["llm.input_messages.0.message.content"] == "name a llama"
    assert a["llm.model_name"] == "gpt-4o-mini"
    assert a["session.id"] == "chat-42"
