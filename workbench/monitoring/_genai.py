"""What a recorded model call's exported span says, in the names its readers look for.

Owns the attributes of one model-call span: the OpenTelemetry GenAI semantic conventions
(``gen_ai.*``, with ``openai.*`` for OpenAI's APIs), read from the call's stored request and
response. It does not send anything (``_otel`` does) and does not scrub: the exporter scrubs
every attribute this module returns, as it scrubs every other span's.

Why from the stored request and response, not the ``model_calls`` columns alone: the columns
keep what workbench itself uses (the response's model, one finish reason, tokens); the
conventions also want what was *asked* (the request's model, temperature, max tokens, ...) and
the response's id, which only the bodies hold.
"""

from __future__ import annotations

from typing import Any

from workbench.records import ModelCall

__all__ = ["OPERATION_NAMES", "execution_context", "genai_attributes", "span_name"]

#: ``gen_ai.operation.name`` of each operation workbench records; the Responses API is a chat
#: whose API is named in ``openai.api.type`` (the conventions define no ``responses`` operation).
OPERATION_NAMES = {
    "chat": "chat",
    "text_completion": "text_completion",
    "embeddings": "embeddings",
    "responses": "chat",
}

#: ``openai.api.type`` by the request's path: which OpenAI API a ``chat`` went through.
_OPENAI_APIS = (("/chat/completions", "chat_completions"), ("/responses", "responses"))

#: Request members and the ``gen_ai.request.*`` (or ``openai.request.*``) attribute each is.
#: Several providers' names for one setting map to one attribute; the first present wins.
_REQUEST_PARAMETERS = (
    ("temperature", "gen_ai.request.temperature"),
    ("top_p", "gen_ai.request.top_p"),
    ("top_k", "gen_ai.request.top_k"),
    ("max_tokens", "gen_ai.request.max_tokens"),
    ("max_completion_tokens", "gen_ai.request.max_tokens"),
    ("max_output_tokens", "gen_ai.request.max_tokens"),
    ("frequency_penalty", "gen_ai.request.frequency_penalty"),
    ("presence_penalty", "gen_ai.request.presence_penalty"),
    ("seed", "gen_ai.request.seed"),
    ("stream", "gen_ai.request.stream"),
    ("dimensions", "gen_ai.embeddings.dimension.count"),
    ("service_tier", "openai.request.service_tier"),
)


def request_body(call: ModelCall) -> dict[str, Any]:
    """The call's JSON request body as stored (secrets already redacted), or ``{}``."""
    request = call.request
    body = request.get("body") if isinstance(request, dict) else None
    return body if isinstance(body, dict) else {}


def _response(call: ModelCall) -> dict[str, Any]:
    response = call.response
    return response if isinstance(response, dict) and call.status_code is not None else {}


def span_name(call: ModelCall) -> str:
    """``{gen_ai.operation.name} {gen_ai.request.model}``, as the conventions name the span."""
    if call.provider == "http":
        return call.operation.upper()
    operation = OPERATION_NAMES.get(call.operation, call.operation)
    model = request_model(call)
    return f"{operation} {model}" if model else operation


def request_model(call: ModelCall) -> str | None:
    """The model asked for: the request's ``model``, else the recorded model (Gemini and Azure
    name it in the URL, not the body)."""
    model = request_body(call).get("model")
    return model if isinstance(model, str) and model else call.model


def execution_context(execution: dict[str, Any]) -> dict[str, Any]:
    """Who and which conversation, for the root span and each model-call span: backends group
    traces into sessions (Phoenix, Langfuse) and users by these, read on any span."""
    attributes: dict[str, Any] = {}
    if execution.get("user_id") is not None:
        attributes["user.id"] = execution["user_id"]
    if execution.get("session_id") is not None:
        attributes["session.id"] = execution["session_id"]
        attributes["gen_ai.conversation.id"] = execution["session_id"]
    return attributes


def genai_attributes(call: ModelCall) -> dict[str, Any]:
    """A model call's span attributes, named by the OpenTelemetry GenAI conventions.

    Calls that are not model calls (provider ``http``) get the HTTP client attributes only.
    """
    attributes: dict[str, Any] = {"workbench.call_id": call.id}
    if call.provider != "http":
        _model_call(call, attributes)
    else:
        attributes["http.request.method"] = call.operation.upper()
    if call.status_code is not None:
        attributes["http.response.status_code"] = call.status_code
    error = None
    if call.error is not None:
        error = call.error.type or "error"
    elif call.stream_error:
        error = "stream_error"
    elif call.status_code is not None and call.status_code >= 400:
        error = str(call.status_code)
    if error is not None:
        attributes["error.type"] = error
    return attributes


def _model_call(call: ModelCall, attributes: dict[str, Any]) -> None:
    body = request_body(call)
    response = _response(call)
    attributes["gen_ai.operation.name"] = OPERATION_NAMES.get(call.operation, call.operation)
    attributes["gen_ai.provider.name"] = call.provider
    request = call.request if isinstance(call.request, dict) else {}
    path = str(request.get("path") or "").rstrip("/")
    for suffix, api in _OPENAI_APIS:
        if call.operation in ("chat", "responses") and path.endswith(suffix):
            attributes["openai.api.type"] = api
    model = request_model(call)
    if model:
        attributes["gen_ai.request.model"] = model
    for member, name in _REQUEST_PARAMETERS:
        value = body.get(member)
        if name not in attributes and _is_number_or_flag(value):
            attributes[name] = value
    stop = body.get("stop", body.get("stop_sequences"))
    if isinstance(stop, str):
        stop = [stop]
    if isinstance(stop, list) and stop and all(isinstance(s, str) for s in stop):
        attributes["gen_ai.request.stop_sequences"] = stop
    choices = body.get("n")
    if type(choices) is int and choices != 1:
        attributes["gen_ai.request.choice.count"] = choices
    if isinstance(body.get("encoding_format"), str):
        attributes["gen_ai.request.encoding_formats"] = [body["encoding_format"]]
    output_type = _output_type(body)
    if output_type is not None:
        attributes["gen_ai.output.type"] = output_type
    for member, name in (
        ("id", "gen_ai.response.id"),
        ("model", "gen_ai.response.model"),
        ("system_fingerprint", "openai.response.system_fingerprint"),
        ("service_tier", "openai.response.service_tier"),
    ):
        value = response.get(member)
        if isinstance(value, str) and value:
            attributes[name] = value
    if "gen_ai.response.model" not in attributes and call.model and response:
        attributes["gen_ai.response.model"] = call.model
    for key, count in (
        ("gen_ai.usage.input_tokens", call.input_tokens),
        ("gen_ai.usage.output_tokens", call.output_tokens),
        ("gen_ai.usage.cache_read.input_tokens", call.cache_read_tokens),
        ("gen_ai.usage.cache_creation.input_tokens", call.cache_write_tokens),
    ):
        if count is not None:
            attributes[key] = count
    reasons = _finish_reasons(response) or ([call.finish_reason] if call.finish_reason else [])
    if reasons:
        attributes["gen_ai.response.finish_reasons"] = reasons
    if call.cost_usd is not None:
        attributes["workbench.cost_usd"] = call.cost_usd
    if call.ttft_s is not None:
        attributes["workbench.ttft_s"] = call.ttft_s
    attributes["workbench.streamed"] = call.streamed
    if call.tokens_estimated:
        attributes["workbench.tokens_estimated"] = True


def _is_number_or_flag(value: Any) -> bool:
    return isinstance(value, bool | int | float | str) and value != ""


def _finish_reasons(response: dict[str, Any]) -> list[str]:
    """Every choice's finish reason (a request with ``n`` > 1 has several), in choice order."""
    choices = response.get("choices")
    if not isinstance(choices, list):
        return []
    return [
        c["finish_reason"]
        for c in choices
        if isinstance(c, dict) and isinstance(c.get("finish_reason"), str)
    ]


def _output_type(body: dict[str, Any]) -> str | None:
    """``gen_ai.output.type`` from OpenAI's ``response_format`` (or the Responses API's
    ``text.format``): ``json`` for JSON modes and schemas, ``text`` for plain text."""
    fmt = body.get("response_format")
    if fmt is None and isinstance(body.get("text"), dict):
        fmt = body["text"].get("format")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind in ("json_object", "json_schema"):
        return "json"
    return "text" if kind == "text" else None
