"""What kind of call an HTTP exchange was, and what it produced and cost in tokens.

This module owns reading provider wire formats: :func:`identify` tells an OpenAI or Anthropic
model call (or an OpenAI-compatible server's) from any other HTTP call by its method, host and
path; :func:`analyse` reads the response — JSON or a server-sent-event stream — into
:class:`CallFacts` (model, tokens, finish reason, text, and the response in the provider's
non-streaming shape); :class:`SSEParser` is the incremental event-stream parser it uses. It does
not capture anything, price anything (``workbench.pricing``) or store anything.

Everything here is a pure function of bytes already received (run on the store's writer thread
when a call is recorded, and when a stored stream is read back), and never raises on a malformed
body: what could not be read is described in ``CallFacts.stream_error`` instead. Bodies must
already be content-decoded (no gzip).

Wire formats covered: OpenAI chat completions, legacy completions, embeddings and the Responses
API (JSON and streams, including the ``stream_options.include_usage`` usage chunk and
``prompt_tokens_details.cached_tokens``), and Anthropic messages (JSON and streams, with
``message_start`` / ``message_delta`` usage and prompt-cache counts). Token counts follow the
OpenTelemetry GenAI conventions: input tokens *include* cached ones.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from typing import Any, TypeAlias
from urllib.parse import urlsplit

import orjson

from workbench._hosts import host_of
from workbench._json import MAX_DEPTH, too_deep

__all__ = [
    "CallFacts",
    "SSEEvent",
    "SSEParser",
    "analyse",
    "identify",
]

_JSON: TypeAlias = Any
#: (input incl. cache, output, cache read, cache write) as a provider reported them.
_Usage: TypeAlias = tuple[int | None, int | None, int | None, int | None]


# --------------------------------------------------------------------------------------------
# Server-sent events
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched server-sent event: its type (``None`` for the default) and its data."""

    event: str | None
    data: str


class SSEParser:
    """Incremental parser of a ``text/event-stream``, per the WHATWG EventSource algorithm.

    :meth:`feed` takes bytes as they arrive, split anywhere (inside a UTF-8 sequence, between
    ``\\r`` and ``\\n``), and returns the events completed so far. Lines end with CRLF, LF or
    CR; a leading BOM is dropped; comment lines are skipped; consecutive ``data`` lines are
    joined by newlines; an event with no ``data`` line is not dispatched. ``id`` and ``retry``
    are read past: no model call uses them.
    """

    __slots__ = ("_data", "_decoder", "_event", "_pending", "_started", "truncated")

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        # Text after the last complete line. It may end with a "\r" whose "\n" has not come yet.
        self._pending = ""
        self._data: list[str] = []
        self._event: str | None = None
        self._started = False
        #: Set by :meth:`close` when the stream stopped in the middle of an event.
        self.truncated = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Parse the next bytes of the stream; return the events they complete."""
        return self._feed_text(self._decoder.decode(chunk))

    def close(self) -> list[SSEEvent]:
        """End the stream; return the event it was cut in the middle of, if any.

        The spec discards an event whose closing blank line never came. We return it anyway,
        so that a stream cut off by a timeout still shows what arrived, and set
        :attr:`truncated` so the caller can say that it was cut.
        """
        events = self._feed_text(self._decoder.decode(b"", final=True))
        pending, self._pending = self._pending, ""
        if pending.endswith("\r"):  # a CR at the very end is a complete line end
            self._line(pending[:-1], events)
            pending = ""
        if pending or self._data or self._event is not None:
            self.truncated = True
            if pending:
                self._line(pending, events)
            self._line("", events)
        return events

    def _feed_text(self, text: str) -> list[SSEEvent]:
        if not self._started:
            if not text:  # e.g. only the first byte of a BOM so far
                return []
            self._started = True
            if text[0] == "\ufeff":
                text = text[1:]
        buffer = self._pending + text
        held = ""
        if "\r" in buffer:
            if buffer[-1] == "\r":
                # The next chunk may start with "\n": keep the CR until we know.
                buffer, held = buffer[:-1], "\r"
            buffer = buffer.replace("\r\n", "\n").replace("\r", "\n")
        lines = buffer.split("\n")
        self._pending = lines.pop() + held
        events: list[SSEEvent] = []
        data = self._data
        for line in lines:
            # Model streams are almost all "data: {...}" lines and blank lines: take those
            # without the general field parsing.
            if line.startswith("data: "):
                data.append(line[6:])
            elif line or not data:
                self._line(line, events)
                data = self._data
            else:
                events.append(SSEEvent(self._event or None, "\n".join(data)))
                self._data = data = []
                self._event = None
        return events

    def _line(self, line: str, events: list[SSEEvent]) -> None:
        if not line:
            if self._data:
                events.append(SSEEvent(self._event or None, "\n".join(self._data)))
            self._data = []
            self._event = None
            return
        if line[0] == ":":
            return
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value


# --------------------------------------------------------------------------------------------
# Identification
# --------------------------------------------------------------------------------------------


def identify(method: str, url: str, request_body: _JSON) -> tuple[str, str]:
    """``(provider, operation)`` of a call, named as ``gen_ai.provider.name`` / ``.operation.name``.

    Model calls are POSTs whose path *ends* with a known endpoint, so that proxy base URLs
    (``/openai/v1/chat/completions``, Azure's ``/openai/deployments/x/chat/completions``) and
    OpenAI-compatible servers (vLLM, Ollama, the test server) are recognised too:

    ====================================  ==============  ==================
    path ends with                        provider        operation
    ====================================  ==============  ==================
    ``/chat/completions``                 ``openai`` [1]  ``chat``
    ``/v1/messages`` [2]                  ``anthropic``   ``chat``
    ``/completions``                      ``openai``      ``text_completion``
    ``/embeddings``                       ``openai``      ``embeddings``
    ``/responses``                        ``openai``      ``responses``
    ====================================  ==============  ==================

    [1] Or the provider whose host it is (``workbench._hosts``): ``anthropic`` on
    ``api.anthropic.com`` (its OpenAI-compatible endpoint), ``groq`` on ``api.groq.com``,
    ``gcp.gemini`` on Gemini's OpenAI-compatible API, ``azure.ai.openai`` on Azure OpenAI,
    ``ollama`` on port 11434, ...; ``openai`` on any host the table does not know.
    [2] Or ``/messages`` on ``api.anthropic.com``, or anywhere when the body is a messages
    request (has ``model``, ``messages`` and ``max_tokens``) and the path is not an OpenAI
    Assistants thread. Every other call is ``("http", method.lower())``.
    """
    verb = method.lower()
    if verb != "post":
        return "http", verb
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    path = parts.path.rstrip("/")
    if path.endswith("/messages") and (
        path.endswith("/v1/messages")
        or host == "api.anthropic.com"
        or (_looks_like_messages_request(request_body) and "/threads/" not in path)
    ):
        return "anthropic", "chat"
    for suffix, operation in _OPENAI_PATHS:
        if path.endswith(suffix):
            try:
                port = parts.port
            except ValueError:  # a port out of range: no provider runs there
                port = None
            known = host_of(host, port)
            return (known.provider if known is not None else "openai"), operation
    return "http", verb


# OpenAI's API paths, which every OpenAI-compatible server copies; the host says whose it is.
_OPENAI_PATHS = (
    ("/chat/completions", "chat"),
    ("/completions", "text_completion"),
    ("/embeddings", "embeddings"),
    ("/responses", "responses"),
)


def _looks_like_messages_request(body: _JSON) -> bool:
    return (
        isinstance(body, dict) and "messages" in body and "max_tokens" in body and "model" in body
    )


# --------------------------------------------------------------------------------------------
# Facts
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What one call was and what it produced, read from its request and response bodies."""

    provider: str  #: ``gen_ai.provider.name``: "openai", "anthropic", "groq", ... or "http"
    operation: str  #: ``gen_ai.operation.name``, or the lower-case HTTP method for plain HTTP
    model: str | None  #: the response's model if it names one, else the request's
    input_tokens: int | None  #: including cache reads and writes (OTel GenAI semantics)
    output_tokens: int | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    tokens_estimated: bool  #: no usage was reported; tokens are characters / 4
    finish_reason: str | None  #: the provider's own value ("stop", "end_turn", "length", ...)
    text: str | None  #: the assistant's text, assembled from the stream if it streamed
    response: Any  #: JSON body; for a stream, the assembled message in non-streaming shape
    stream_error: str | None  #: what was malformed or missing, if anything


@dataclass(slots=True)
class _Read:
    """What a wire-format reader found; turned into CallFacts by :func:`analyse`."""

    response: Any = None
    model: str | None = None
    text: str | None = None
    finish_reason: str | None = None
    usage: _Usage | None = None
    output_chars: int = 0
    errors: list[str] = field(default_factory=list)


def analyse(
    provider: str,
    operation: str,
    request_body: _JSON,
    status_code: int,
    content_type: str | None,
    body: bytes,
) -> CallFacts:
    """Read a finished call's response into :class:`CallFacts`. Never raises.

    ``request_body`` is the parsed JSON request (as in the canonical request). Error
    responses (status ≥ 400) carry no tokens and no text; ``response`` is the parsed error.
    When a successful model call reports no usage, tokens are estimated as characters / 4 of
    the request's text and of the response's text, and ``tokens_estimated`` is True.
    """
    request_model = request_body.get("model") if isinstance(request_body, dict) else None
    if not isinstance(request_model, str):
        request_model = None
    try:
        return _analyse(
            provider, operation, request_body, request_model, status_code, content_type, body
        )
    except Exception as exc:  # a reader bug must not break the user's call
        error = f"could not read response: {type(exc).__name__}: {exc}"
        return _without_usage(provider, operation, request_model, None, error)


def _without_usage(
    provider: str, operation: str, model: str | None, response: Any, error: str | None
) -> CallFacts:
    return CallFacts(
        provider, operation, model, None, None, None, None, False, None, None, response, error
    )


def _analyse(
    provider: str,
    operation: str,
    request_body: _JSON,
    request_model: str | None,
    status_code: int,
    content_type: str | None,
    body: bytes,
) -> CallFacts:
    media_type = (content_type or "").partition(";")[0].strip().lower()
    is_stream = media_type == "text/event-stream" or (
        not media_type and body[:6] in (b"data: ", b"event:", b"data:{")
    )
    if provider == "http" or status_code >= 400:
        response = _parse_json(body) if not is_stream else None
        if response is _INVALID or response is _TOO_DEEP:
            response = body.decode("utf-8", errors="replace") if status_code >= 400 else None
        return _without_usage(provider, operation, request_model, response, None)

    read = _read_stream(operation, body) if is_stream else _read_json(operation, body)
    if read.usage is not None and (read.usage[0] is not None or read.usage[1] is not None):
        input_tokens, output_tokens, cache_read, cache_write = read.usage
        estimated = False
    else:
        input_tokens = _estimate(_request_chars(request_body))
        output_tokens = 0 if operation == "embeddings" else _estimate(read.output_chars)
        cache_read = cache_write = None
        estimated = True
    return CallFacts(
        provider=provider,
        operation=operation,
        model=read.model or request_model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        tokens_estimated=estimated,
        finish_reason=read.finish_reason,
        text=read.text,
        response=read.response,
        stream_error="; ".join(dict.fromkeys(read.errors)) or None,
    )


_INVALID: Any = object()
#: Valid JSON nested deeper than the store's walks go (``MAX_DEPTH``): kept, not analysed.
_TOO_DEEP: Any = object()
_TOO_DEEP_TEXT = f"JSON nested deeper than {MAX_DEPTH} levels"


def _parse_json(raw: bytes | str) -> _JSON:
    if not raw:
        return _INVALID
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _INVALID
    if too_deep(raw, value):
        return _TOO_DEEP
    return value


def _int(value: Any) -> int | None:
    # bool is an int subclass, and a usage count is never a bool.
    return value if type(value) is int else None


def _estimate(chars: int) -> int:
    return (chars + 3) // 4


# Request members that hold no prompt text: counting base64 images or ids would inflate the
# estimate by orders of magnitude.
# fmt: off
_NOT_TEXT = frozenset({
    "type", "role", "id", "tool_call_id", "image_url", "source", "data", "url", "file_data",
    "file_id", "cache_control", "signature", "detail", "format",
})
# fmt: on
_PROMPT_MEMBERS = ("messages", "system", "prompt", "input", "instructions", "tools", "functions")


def _text_chars(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(_text_chars(item) for item in value)
    if isinstance(value, dict):
        return sum(_text_chars(item) for name, item in value.items() if name not in _NOT_TEXT)
    return 0


def _request_chars(request_body: _JSON) -> int:
    if not isinstance(request_body, dict):
        return 0
    return sum(_text_chars(request_body.get(name)) for name in _PROMPT_MEMBERS)


# --------------------------------------------------------------------------------------------
# JSON responses
# --------------------------------------------------------------------------------------------


def _read_json(operation: str, body: bytes) -> _Read:
    data = _parse_json(body)
    if data is _TOO_DEEP:
        read = _Read(response=None)
        read.errors.append(f"response body is {_TOO_DEEP_TEXT}; kept as received, not analysed")
        return read
    if data is _INVALID or not isinstance(data, dict):
        read = _Read(response=None if data is _INVALID else data)
        read.errors.append("response body is not a JSON object")
        return read
    if operation == "embeddings":
        read = _Read(response=data, model=_str(data.get("model")))
        read.usage = _openai_usage(data.get("usage"), embeddings=True)
        return read
    if operation == "responses":
        return _read_responses_object(data)
    if data.get("type") == "message" or ("content" in data and "choices" not in data):
        return _read_anthropic_message(data)
    return _read_openai_choices(data)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _openai_usage(usage: Any, *, embeddings: bool = False) -> _Usage | None:
    if not isinstance(usage, dict):
        return None
    details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details")
    if not isinstance(details, dict):
        details = {}
    input_tokens = _int(usage.get("prompt_tokens", usage.get("input_tokens")))
    output_tokens = _int(usage.get("completion_tokens", usage.get("output_tokens")))
    if embeddings and output_tokens is None:
        output_tokens = 0  # embeddings produce no tokens; 0 is a fact, not a gap
    # OpenAI's input count already includes cache reads and writes, as OTel's does.
    cache_read = _int(details.get("cached_tokens")) or 0
    cache_write = _int(details.get("cache_write_tokens")) or 0
    return input_tokens, output_tokens, cache_read, cache_write


def _message_text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts, as some OpenAI-compatible servers send
        texts = [part.get("text") for part in content if isinstance(part, dict)]
        return "".join(text for text in texts if isinstance(text, str))
    return None


def _read_openai_choices(data: dict[str, Any]) -> _Read:
    read = _Read(response=data, model=_str(data.get("model")))
    read.usage = _openai_usage(data.get("usage"))
    choices = data.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        first = choices[0]
        read.finish_reason = _str(first.get("finish_reason"))
        message = first.get("message")
        if isinstance(message, dict):
            read.text = _message_text(message.get("content"))
            read.output_chars = len(read.text or "") + _tool_call_chars(message.get("tool_calls"))
        else:  # legacy completions
            read.text = _str(first.get("text"))
            read.output_chars = len(read.text or "")
    return read


def _tool_call_chars(tool_calls: Any) -> int:
    if not isinstance(tool_calls, list):
        return 0
    return sum(_text_chars(call.get("function")) for call in tool_calls if isinstance(call, dict))


def _anthropic_usage(usage: Any) -> _Usage | None:
    if not isinstance(usage, dict):
        return None
    uncached = _int(usage.get("input_tokens"))
    cache_read = _int(usage.get("cache_read_input_tokens")) or 0
    cache_write = _int(usage.get("cache_creation_input_tokens")) or 0
    # Anthropic's input_tokens counts only the uncached part; OTel's includes the cache.
    input_tokens = None if uncached is None else uncached + cache_read + cache_write
    return input_tokens, _int(usage.get("output_tokens")), cache_read, cache_write


def _read_anthropic_message(data: dict[str, Any]) -> _Read:
    read = _Read(response=data, model=_str(data.get("model")))
    read.usage = _anthropic_usage(data.get("usage"))
    read.finish_reason = _str(data.get("stop_reason"))
    content = data.get("content")
    if isinstance(content, list):
        blocks = [block for block in content if isinstance(block, dict)]
        read.text = "".join(
            block["text"]
            for block in blocks
            if block.get("type") == "text" and isinstance(block.get("text"), str)
        )
        read.output_chars = sum(_text_chars(block) for block in blocks)
    return read


def _read_responses_object(data: dict[str, Any]) -> _Read:
    read = _Read(response=data, model=_str(data.get("model")))
    read.usage = _openai_usage(data.get("usage"))
    status = _str(data.get("status"))
    details = data.get("incomplete_details")
    if status == "incomplete" and isinstance(details, dict) and _str(details.get("reason")):
        read.finish_reason = details["reason"]
    else:
        read.finish_reason = status
    texts: list[str] = []
    output = data.get("output")
    for item in output if isinstance(output, list) else ():
        if isinstance(item, dict):
            if item.get("type") == "message" and isinstance(item.get("content"), list):
                texts.extend(
                    part["text"]
                    for part in item["content"]
                    if isinstance(part, dict)
                    and part.get("type") == "output_text"
                    and isinstance(part.get("text"), str)
                )
            read.output_chars += _text_chars(item)
    read.text = "".join(texts)
    return read


# --------------------------------------------------------------------------------------------
# Streams
# --------------------------------------------------------------------------------------------


def _read_stream(operation: str, body: bytes) -> _Read:
    parser = SSEParser()
    events = parser.feed(body)
    events.extend(parser.close())
    # The readers append to this list and hand it on as their own ``errors``.
    errors: list[str] = []
    if parser.truncated:
        errors.append("stream ended in the middle of an event")
    if operation == "responses":
        read = _read_responses_stream(events, errors)
    elif operation == "chat" and _is_anthropic_stream(events):
        read = _read_anthropic_stream(events, errors)
    else:
        read = _read_openai_stream(events, errors, chat=operation != "text_completion")
    return read


def _is_anthropic_stream(events: list[SSEEvent]) -> bool:
    for event in events[:3]:
        if event.event and event.event.startswith(("message_", "content_block_")):
            return True
        if '"type":"message_start"' in event.data or '"type": "message_start"' in event.data:
            return True
    return False


def _event_objects(
    events: list[SSEEvent], errors: list[str], done_marker: str | None = None
) -> tuple[list[dict[str, Any]], bool]:
    """The JSON objects carried by the events, and whether ``done_marker`` was seen."""
    objects: list[dict[str, Any]] = []
    done = False
    for number, event in enumerate(events, 1):
        if event.data == done_marker:
            done = True
            continue
        value = _parse_json(event.data)
        if value is _INVALID:
            errors.append(f"invalid JSON in event {number}")
            continue
        if value is _TOO_DEEP:
            errors.append(f"event {number} is {_TOO_DEEP_TEXT}")
            continue
        if not isinstance(value, dict):
            errors.append(f"event {number} is not a JSON object")
            continue
        if event.event is not None and "type" not in value:
            value["type"] = event.event
        objects.append(value)
    return objects, done


def _error_text(value: Any) -> str:
    if isinstance(value, dict):
        error = value.get("error", value)
        if isinstance(error, dict):
            kind, message = error.get("type"), error.get("message")
            return ": ".join(str(part) for part in (kind, message) if part) or "unknown"
        return str(error)
    return str(value)


def _read_openai_stream(events: list[SSEEvent], errors: list[str], *, chat: bool) -> _Read:
    objects, done = _event_objects(events, errors, "[DONE]")
    top: dict[str, Any] = {}
    usage: Any = None
    choices: dict[int, dict[str, Any]] = {}
    for chunk in objects:
        if "error" in chunk:
            errors.append(f"error event: {_error_text(chunk)}")
            continue
        for name in ("id", "created", "model", "system_fingerprint", "service_tier"):
            # Azure OpenAI opens a stream with a content-filter chunk whose model and id are
            # "" and created is 0: the first chunk with a real value names the call.
            if name not in top and chunk.get(name) not in (None, "", 0):
                top[name] = chunk[name]
        if chunk.get("usage") is not None:
            usage = chunk["usage"]
        for choice in _list(chunk.get("choices")):
            if isinstance(choice, dict):
                index = choice.get("index", 0)
                index = index if type(index) is int else 0
                _accumulate_choice(choices.setdefault(index, {"index": index}), choice, chat=chat)
    if not done:
        errors.append("stream ended without [DONE]")

    assembled = [_finish_choice(choices[index], chat=chat) for index in sorted(choices)]
    response = {
        "id": top.get("id"),
        "object": "chat.completion" if chat else "text_completion",
        "created": top.get("created"),
        "model": top.get("model"),
        "choices": assembled,
        "usage": usage,
    }
    for name in ("system_fingerprint", "service_tier"):
        if name in top:
            response[name] = top[name]
    read = _read_openai_choices(response)
    read.errors = errors
    return read


def _accumulate_choice(state: dict[str, Any], choice: dict[str, Any], *, chat: bool) -> None:
    if choice.get("finish_reason") is not None:
        state["finish_reason"] = choice["finish_reason"]
    logprobs = choice.get("logprobs")
    if isinstance(logprobs, dict):
        for name in ("content", "refusal"):
            if isinstance(logprobs.get(name), list):
                state.setdefault("logprobs_" + name, []).extend(logprobs[name])
    if not chat:
        if isinstance(choice.get("text"), str):
            state.setdefault("text", []).append(choice["text"])
        return
    delta = choice.get("delta")
    if not isinstance(delta, dict):
        return
    if isinstance(delta.get("role"), str):
        state["role"] = delta["role"]
    for name in ("content", "refusal"):
        if isinstance(delta.get(name), str):
            state.setdefault(name, []).append(delta[name])
    if isinstance(delta.get("function_call"), dict):
        _accumulate_function(state.setdefault("function_call", {}), delta["function_call"])
    for call in _list(delta.get("tool_calls")):
        if not isinstance(call, dict):
            continue
        calls = state.setdefault("tool_calls", {})
        index = call.get("index")
        slot = calls.setdefault(index if type(index) is int else len(calls), {"function": {}})
        for name in ("id", "type"):
            if call.get(name):
                slot[name] = call[name]
        if isinstance(call.get("function"), dict):
            _accumulate_function(slot["function"], call["function"])


def _accumulate_function(target: dict[str, Any], delta: dict[str, Any]) -> None:
    # Names and arguments arrive in pieces, as the SDKs' own accumulators assume.
    for name in ("name", "arguments"):
        if isinstance(delta.get(name), str):
            target[name] = target.get(name, "") + delta[name]


def _finish_choice(state: dict[str, Any], *, chat: bool) -> dict[str, Any]:
    logprobs = None
    if "logprobs_content" in state or "logprobs_refusal" in state:
        logprobs = {
            "content": state.get("logprobs_content"),
            "refusal": state.get("logprobs_refusal"),
        }
    if not chat:
        return {
            "index": state["index"],
            "text": "".join(state.get("text", ())),
            "finish_reason": state.get("finish_reason"),
            "logprobs": logprobs,
        }
    message: dict[str, Any] = {
        "role": state.get("role", "assistant"),
        "content": "".join(state["content"]) if "content" in state else None,
        "refusal": "".join(state["refusal"]) if "refusal" in state else None,
    }
    if "function_call" in state:
        message["function_call"] = state["function_call"]
    if "tool_calls" in state:
        message["tool_calls"] = [
            {
                "id": slot.get("id"),
                "type": slot.get("type", "function"),
                "function": {
                    "name": slot["function"].get("name", ""),
                    "arguments": slot["function"].get("arguments", ""),
                },
            }
            for _, slot in sorted(state["tool_calls"].items())
        ]
    return {
        "index": state["index"],
        "message": message,
        "finish_reason": state.get("finish_reason"),
        "logprobs": logprobs,
    }


def _read_anthropic_stream(events: list[SSEEvent], errors: list[str]) -> _Read:
    objects, _ = _event_objects(events, errors)
    message: dict[str, Any] | None = None
    content: list[dict[str, Any]] = []
    usage: dict[str, Any] = {}
    tool_inputs: dict[int, list[str]] = {}
    stopped = False
    for event in objects:
        kind = event.get("type")
        if kind == "message_start" and isinstance(event.get("message"), dict):
            message = dict(event["message"])
            content = [dict(b) for b in _list(message.get("content")) if isinstance(b, dict)]
            start_usage = message.get("usage")
            usage = dict(start_usage) if isinstance(start_usage, dict) else {}
        elif kind == "content_block_start" and isinstance(event.get("content_block"), dict):
            index = _block_index(event, len(content))
            if 0 <= index <= len(content) + 16:  # a wild index must not allocate a huge list
                while len(content) <= index:
                    content.append({})
                content[index] = dict(event["content_block"])
        elif kind == "content_block_delta" and isinstance(event.get("delta"), dict):
            index = _block_index(event, len(content) - 1)
            if 0 <= index < len(content):
                _apply_block_delta(content[index], event["delta"], tool_inputs, index)
        elif kind == "content_block_stop":
            index = _block_index(event, -1)
            if index in tool_inputs and 0 <= index < len(content):
                _finish_tool_input(content[index], tool_inputs.pop(index), index, errors)
        elif kind == "message_delta":
            if message is not None and isinstance(event.get("delta"), dict):
                message.update(event["delta"])
            if isinstance(event.get("usage"), dict):
                # message_delta counts are cumulative totals: they replace, not add to, the
                # message_start ones — and a count it omits keeps its earlier value.
                usage.update((k, v) for k, v in event["usage"].items() if v is not None)
        elif kind == "message_stop":
            stopped = True
        elif kind == "error":
            errors.append(f"error event: {_error_text(event)}")
    for index, pieces in tool_inputs.items():  # blocks whose stop event never came
        if 0 <= index < len(content):
            _finish_tool_input(content[index], pieces, index, errors)
    if message is None:
        errors.append("stream has no message_start event")
        message = {"type": "message", "role": "assistant"}
    elif not stopped:
        errors.append("stream ended without message_stop")
    message["content"] = content
    message["usage"] = usage
    read = _read_anthropic_message(message)
    read.errors = errors
    return read


def _block_index(event: dict[str, Any], default: int) -> int:
    index = event.get("index")
    return index if type(index) is int else default


def _apply_block_delta(
    block: dict[str, Any], delta: dict[str, Any], tool_inputs: dict[int, list[str]], index: int
) -> None:
    kind = delta.get("type")
    if kind == "text_delta" and isinstance(delta.get("text"), str):
        block["text"] = (_str(block.get("text")) or "") + delta["text"]
    elif kind == "input_json_delta" and isinstance(delta.get("partial_json"), str):
        tool_inputs.setdefault(index, []).append(delta["partial_json"])
    elif kind == "thinking_delta" and isinstance(delta.get("thinking"), str):
        block["thinking"] = (_str(block.get("thinking")) or "") + delta["thinking"]
    elif kind == "signature_delta" and isinstance(delta.get("signature"), str):
        block["signature"] = delta["signature"]
    elif kind == "citations_delta" and "citation" in delta:
        block["citations"] = [*_list(block.get("citations")), delta["citation"]]


def _finish_tool_input(
    block: dict[str, Any], pieces: list[str], index: int, errors: list[str]
) -> None:
    text = "".join(pieces)
    if not text:
        return  # the tool takes no input: keep the start event's {}
    value = _parse_json(text)
    if value is _INVALID or value is _TOO_DEEP:
        errors.append(
            f"invalid tool input JSON in content block {index}"
            if value is _INVALID
            else f"tool input in content block {index} is {_TOO_DEEP_TEXT}"
        )
        value = {}
    block["input"] = value


def _read_responses_stream(events: list[SSEEvent], errors: list[str]) -> _Read:
    objects, _ = _event_objects(events, errors)
    snapshot: Any = None
    final: Any = None
    deltas: list[str] = []
    for event in objects:
        kind = event.get("type")
        if kind in ("response.completed", "response.incomplete", "response.failed"):
            final = event.get("response")
        elif isinstance(kind, str) and kind.startswith("response.") and "response" in event:
            snapshot = event["response"]
        elif kind == "response.output_text.delta" and isinstance(event.get("delta"), str):
            deltas.append(event["delta"])
        elif kind == "error":
            errors.append(f"error event: {_error_text(event)}")
    if isinstance(final, dict):
        read = _read_responses_object(final)
    else:
        errors.append("stream ended without response.completed")
        read = (
            _read_responses_object(snapshot)
            if isinstance(snapshot, dict)
            else _Read(response=snapshot)
        )
        read.text = "".join(deltas)
        read.output_chars = len(read.text)
    read.errors = errors
    return read
