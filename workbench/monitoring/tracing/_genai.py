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

from collections.abc import Collection
from typing import Any

from workbench.records import ModelCall
from workbench.redaction import scrub_output

__all__ = [
    "OPERATION_NAMES",
    "content_attributes",
    "execution_context",
    "genai_attributes",
    "span_name",
]

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
    # OpenInference's kind: Phoenix lists a span as an LLM call (tokens, cost, messages) by it.
    attributes["openinference.span.kind"] = "EMBEDDING" if call.operation == "embeddings" else "LLM"
    attributes["llm.provider"] = call.provider
    request = call.request if isinstance(call.request, dict) else {}
    path = str(request.get("path") or "").rstrip("/")
    for suffix, api in _OPENAI_APIS:
        if call.operation in ("chat", "responses") and path.endswith(suffix):
            attributes["openai.api.type"] = api
    model = request_model(call)
    if model:
        attributes["gen_ai.request.model"] = model
        attributes["llm.model_name"] = call.model or model
    parameters = {}
    for member, name in _REQUEST_PARAMETERS:
        value = body.get(member)
        if name not in attributes and _is_number_or_flag(value):
            attributes[name] = parameters[member] = value
    if parameters:
        attributes["llm.invocation_parameters"] = _json(parameters)
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
    _usage_for_consumers(call, attributes)
    if call.ttft_s is not None:
        attributes["workbench.ttft_s"] = call.ttft_s
    attributes["workbench.streamed"] = call.streamed
    if call.tokens_estimated:
        attributes["workbench.tokens_estimated"] = True


def _usage_for_consumers(call: ModelCall, attributes: dict[str, Any]) -> None:
    """Tokens and cost again under the names the backends read them by: the conventions
    define no cost attribute, so Langfuse maps ``gen_ai.usage.cost`` and Phoenix
    (OpenInference) ``llm.cost.total`` and ``llm.token_count.*``. An unknown cost is left out,
    never sent as 0; a call answered from a recording is sent as 0, which it cost (left out,
    a backend would price its tokens itself and count a replay as spend)."""
    if call.cost_usd is not None:
        attributes["workbench.cost_usd"] = call.cost_usd
    spent = 0.0 if call.replayed else call.cost_usd
    if spent is not None:
        attributes["gen_ai.usage.cost"] = spent
        attributes["llm.cost.total"] = spent
    if call.replayed:
        attributes["workbench.replayed"] = True
    for key, count in (
        ("llm.token_count.prompt", call.input_tokens),
        ("llm.token_count.completion", call.output_tokens),
        ("llm.token_count.prompt_details.cache_read", call.cache_read_tokens),
        ("llm.token_count.prompt_details.cache_write", call.cache_write_tokens),
    ):
        if count is not None:
            attributes[key] = count
    if call.input_tokens is not None or call.output_tokens is not None:
        attributes["llm.token_count.total"] = (call.input_tokens or 0) + (call.output_tokens or 0)


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


# -- content: opt-in (``tracing.capture_content``) ------------------------------------------
# Prompts and answers as two families of readers look for them: the GenAI conventions'
# ``gen_ai.input.messages``/``gen_ai.output.messages`` (JSON of role-and-parts messages), and
# OpenInference's ``input.value``/``output.value`` and ``llm.input_messages.N.message.*``,
# which Phoenix shows and Langfuse maps to a generation's input and output.


def content_attributes(call: ModelCall, sensitive: Collection[str] | None) -> dict[str, Any]:
    """The call's prompt and answer as span attributes, each value scrubbed before it is
    encoded (a secret inside a message is redacted by name, not only by its shape)."""
    if call.provider == "http":
        return {}
    body = request_body(call)
    attributes: dict[str, Any] = {}
    if body:
        attributes["input.value"] = _json(scrub_output(body, sensitive))
        attributes["input.mime_type"] = "application/json"
    if call.operation == "embeddings":
        return attributes
    inputs, system = _input_messages(body)
    outputs = _output_messages(call)
    inputs, system, outputs = scrub_output([inputs, system, outputs], sensitive)  # type: ignore[misc]
    if inputs:
        attributes["gen_ai.input.messages"] = _json(inputs)
    if system:
        attributes["gen_ai.system_instructions"] = _json(system)
    if outputs:
        attributes["gen_ai.output.messages"] = _json(outputs)
    answer = "".join(
        part.get("content", "")
        for message in outputs
        for part in message["parts"]
        if part.get("type") == "text"
    )
    if answer:
        attributes["output.value"] = answer
        attributes["output.mime_type"] = "text/plain"
    elif outputs:
        attributes["output.value"] = _json(outputs)
        attributes["output.mime_type"] = "application/json"
    flat = [{"role": "system", "parts": system}] if system else []
    for prefix, messages in (
        ("llm.input_messages", flat + inputs),
        ("llm.output_messages", outputs),
    ):
        for index, message in enumerate(messages):
            attributes[f"{prefix}.{index}.message.role"] = message["role"]
            text = "".join(p["content"] for p in message["parts"] if p.get("type") == "text")
            if text:
                attributes[f"{prefix}.{index}.message.content"] = text
            calls = [p for p in message["parts"] if p.get("type") == "tool_call"]
            for n, tool in enumerate(calls):
                key = f"{prefix}.{index}.message.tool_calls.{n}.tool_call"
                attributes[f"{key}.id"] = tool.get("id") or ""
                attributes[f"{key}.function.name"] = tool.get("name") or ""
                attributes[f"{key}.function.arguments"] = _json(tool.get("arguments"))
    return attributes


def _json(value: Any) -> str:
    from workbench._json import encode

    return value if isinstance(value, str) else encode(value).decode()


def _input_messages(body: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(messages, system instructions)`` of a chat, Messages, Responses or completions
    request, in the conventions' shape: ``{"role", "parts": [{"type": "text", ...}]}``."""
    system = _parts(body.get("system")) + _parts(body.get("instructions"))
    messages: list[dict[str, Any]] = []
    source = body.get("messages")
    if source is None:
        source = body.get("input")
    if source is None and body.get("prompt") is not None:
        source = [{"role": "user", "content": body["prompt"]}]
    if isinstance(source, str):
        source = [{"role": "user", "content": source}]
    for item in source if isinstance(source, list) else []:
        if not isinstance(item, dict):
            messages.append({"role": "user", "parts": _parts(item)})
            continue
        kind = item.get("type")
        if kind == "function_call_output":  # the Responses API's tool result item
            part = {"type": "tool_call_response", "id": item.get("call_id")}
            messages.append({"role": "tool", "parts": [{**part, "response": item.get("output")}]})
            continue
        if kind == "function_call":
            messages.append({"role": "assistant", "parts": [_tool_call(item)]})
            continue
        role = str(item.get("role") or "user")
        parts = _parts(item.get("content"))
        if role == "tool":  # chat completions' tool result
            parts = [
                {
                    "type": "tool_call_response",
                    "id": item.get("tool_call_id"),
                    "response": item.get("content"),
                }
            ]
        for tool in item.get("tool_calls") or []:
            if isinstance(tool, dict):
                parts.append(_tool_call(tool))
        messages.append({"role": role, "parts": parts})
    return messages, system


def _parts(content: Any) -> list[dict[str, Any]]:
    """A message's content as parts: text kept as text, tool use and results named as the
    conventions do, anything else (an image, a file) as its type without its data."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    if isinstance(content, list):
        return [part for item in content for part in _parts_of_block(item)]
    return [{"type": "text", "content": _json(content)}]


def _parts_of_block(block: Any) -> list[dict[str, Any]]:
    if isinstance(block, str):
        return [{"type": "text", "content": block}]
    if not isinstance(block, dict):
        return []
    kind = block.get("type")
    text = block.get("text")
    if isinstance(text, str):  # text, input_text, output_text
        return [{"type": "text", "content": text}]
    if kind == "tool_use":  # Anthropic
        return [_tool_call(block)]
    if kind == "tool_result":
        response = block.get("content")
        return [
            {"type": "tool_call_response", "id": block.get("tool_use_id"), "response": response}
        ]
    return [{"type": str(kind or "unknown")}]


def _tool_call(item: dict[str, Any]) -> dict[str, Any]:
    function = item.get("function") if isinstance(item.get("function"), dict) else item
    arguments = function.get("arguments", item.get("input"))
    return {
        "type": "tool_call",
        "id": item.get("id") or item.get("call_id"),
        "name": function.get("name"),
        "arguments": arguments,
    }


def _output_messages(call: ModelCall) -> list[dict[str, Any]]:
    """The answer as the conventions' output messages: one per choice, with its reason."""
    response = _response(call)
    messages: list[dict[str, Any]] = []
    for choice in response.get("choices") or []:
        if not isinstance(choice, dict):
            continue
        message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
        parts = _parts(message.get("content", choice.get("text")))
        for tool in message.get("tool_calls") or []:
            if isinstance(tool, dict):
                parts.append(_tool_call(tool))
        messages.append(
            {
                "role": str(message.get("role") or "assistant"),
                "parts": parts,
                "finish_reason": choice.get("finish_reason") or "",
            }
        )
    if not messages and isinstance(response.get("output"), list):  # the Responses API
        parts = []
        for item in response["output"]:
            if isinstance(item, dict) and item.get("type") == "function_call":
                parts.append(_tool_call(item))
            elif isinstance(item, dict) and item.get("type") == "message":
                parts.extend(_parts(item.get("content")))
        messages.append({"role": "assistant", "parts": parts})
    elif not messages and response.get("type") == "message":  # Anthropic's Messages API
        messages.append({"role": "assistant", "parts": _parts(response.get("content"))})
    if not messages and call.text:
        messages.append({"role": "assistant", "parts": _parts(call.text)})
    for message in messages:
        message.setdefault("finish_reason", call.finish_reason or "")
    return messages
