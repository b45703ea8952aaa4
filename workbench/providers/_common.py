"""What every provider reader shares: the facts a call yields and the tools to read them.

Owns :class:`CallFacts` (the public result of :func:`workbench.providers.analyse`), the
:class:`Read` a provider's reader fills in, the :class:`WireFormat` each provider module
describes itself with, and the small total helpers they all use to read JSON that may be
malformed (``as_int``, ``parse_json``, ...) and to estimate tokens from text. Does not know any
provider's paths or field names (each provider module does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import orjson

from workbench._hosts import configured_provider, host_of
from workbench._json import MAX_DEPTH, too_deep
from workbench.providers._sse import SSEEvent

__all__ = [
    "INVALID",
    "JSON",
    "TOO_DEEP",
    "TOO_DEEP_TEXT",
    "CallFacts",
    "Read",
    "Target",
    "Usage",
    "WireFormat",
    "as_int",
    "as_list",
    "as_str",
    "error_text",
    "estimate",
    "event_objects",
    "parse_json",
    "provider_of",
    "request_chars",
    "text_chars",
]

JSON: TypeAlias = Any
#: (input incl. cache, output, cache read, cache write) as a provider reported them.
Usage: TypeAlias = tuple[int | None, int | None, int | None, int | None]


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
class Read:
    """What a provider's reader found; turned into CallFacts by ``analyse``."""

    response: Any = None
    model: str | None = None
    text: str | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    output_chars: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Target:
    """Where a POST went, as recognition reads it: scheme, host (lower-case), port, path, body."""

    scheme: str
    host: str
    port: int | None
    path: str  #: without a trailing slash
    body: JSON  #: the parsed JSON request, or None


def _never(*_: Any) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class WireFormat:
    """One provider API as it looks on the wire, described by the module that reads it.

    ``recognise`` names ``(provider, operation)`` for a POST it serves, else ``None``. A
    response is offered to the formats in turn: ``reads_json(provider, operation, parsed)``
    claims a JSON body (a dict, or a list for APIs that stream a JSON array),
    ``reads_sse(provider, operation, events)`` a server-sent-event stream, and
    ``reads_body(provider, operation, media_type)`` any other body by its media type (NDJSON
    and AWS event streams, plain-text transcripts), read by ``read_body(operation, body)``.
    ``model_of`` names the model from the URL, for APIs whose bodies do not (Bedrock).
    ``estimate`` says whether a call that reported no usage gets tokens estimated from its
    text: not for APIs billed by the second or the image, where characters say nothing.
    """

    name: str
    recognise: Callable[[Target], tuple[str, str] | None]
    reads_json: Callable[[str, str, JSON], bool]
    read_json: Callable[[str, JSON], Read]
    reads_sse: Callable[[str, str, list[SSEEvent]], bool] = _never
    read_sse: Callable[[str, list[SSEEvent], list[str]], Read] | None = None
    reads_body: Callable[[str, str, str], bool] = _never
    read_body: Callable[[str, bytes], Read] | None = None
    model_of: Callable[[Target], str | None] | None = None
    estimate: bool = True


INVALID: Any = object()
#: Valid JSON nested deeper than the store's walks go (``MAX_DEPTH``): kept, not analysed.
TOO_DEEP: Any = object()
TOO_DEEP_TEXT = f"JSON nested deeper than {MAX_DEPTH} levels"


def parse_json(raw: bytes | str) -> JSON:
    """The JSON value of ``raw``, or ``INVALID``, or ``TOO_DEEP``. Never raises."""
    if not raw:
        return INVALID
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return INVALID
    if too_deep(raw, value):
        return TOO_DEEP
    return value


def as_int(value: Any) -> int | None:
    """``value`` if it is a count (an int, not a bool), else None."""
    # bool is an int subclass, and a usage count is never a bool.
    return value if type(value) is int else None


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def estimate(chars: int) -> int:
    """Tokens in ``chars`` characters of text, at the usual four characters a token."""
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


def text_chars(value: Any) -> int:
    """Characters of text in a JSON value, leaving out ids, types, URLs and binary data."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(text_chars(item) for item in value)
    if isinstance(value, dict):
        return sum(text_chars(item) for name, item in value.items() if name not in _NOT_TEXT)
    return 0


def request_chars(request_body: JSON) -> int:
    """Characters of prompt text in a request body, for an estimate of its input tokens."""
    if not isinstance(request_body, dict):
        return 0
    return sum(text_chars(request_body.get(name)) for name in _PROMPT_MEMBERS)


def event_objects(
    events: list[SSEEvent], errors: list[str], done_marker: str | None = None
) -> tuple[list[dict[str, Any]], bool]:
    """The JSON objects carried by the events, and whether ``done_marker`` was seen.

    An event whose object has no ``type`` gets its SSE event name as one; what is not a JSON
    object is reported in ``errors`` and skipped.
    """
    objects: list[dict[str, Any]] = []
    done = False
    for number, event in enumerate(events, 1):
        if event.data == done_marker:
            done = True
            continue
        value = parse_json(event.data)
        if value is INVALID:
            errors.append(f"invalid JSON in event {number}")
            continue
        if value is TOO_DEEP:
            errors.append(f"event {number} is {TOO_DEEP_TEXT}")
            continue
        if not isinstance(value, dict):
            errors.append(f"event {number} is not a JSON object")
            continue
        if event.event is not None and "type" not in value:
            value["type"] = event.event
        objects.append(value)
    return objects, done


def error_text(value: Any) -> str:
    """A one-line ``type: message`` of a provider's error object."""
    if isinstance(value, dict):
        error = value.get("error", value)
        if isinstance(error, dict):
            kind, message = error.get("type"), error.get("message")
            return ": ".join(str(part) for part in (kind, message) if part) or "unknown"
        return str(error)
    return str(value)


def provider_of(target: Target, default: str = "openai") -> str:
    """Whose server ``target`` is: as workbench.yaml's ``providers:`` names it, else by its
    host (``workbench._hosts``), else ``default``."""
    configured = configured_provider(target.scheme, target.host, target.port, target.path)
    if configured is not None:
        return configured
    known = host_of(target.host, target.port)
    return known.provider if known is not None else default
