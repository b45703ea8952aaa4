"""The contract between the test server's HTTP layer and its two provider dialects.

Owns the values a dialect hands back (:class:`JsonReply`, :class:`StreamReply`), the per-call
:class:`CallContext` it reads, the :class:`Dialect` description the server routes by, SSE framing,
and request-body checks that become a 400. Does not own sockets, latency or faults (``_server``),
nor any provider's JSON shapes (``_openai``, ``_anthropic``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

from workbench.testmodel._answers import PromptCache

_T = TypeVar("_T")

JsonObject = dict[str, Any]


@dataclass(frozen=True)
class CallContext:
    """What a dialect needs beyond the request body to answer one call."""

    call_id: str  # unique per server and call; dialects add their provider's prefix
    created: int  # unix seconds, for the ``created`` fields
    cache: PromptCache
    path: str = ""  # the request path, for APIs that name the model or the mode in it
    query: str = ""  # the raw query string (Gemini's ``alt=sse``)
    raw_body: bytes = b""  # the body as received, for a multipart upload
    content_type: str = ""


@dataclass(frozen=True)
class JsonReply:
    """A complete JSON response body (a list for Gemini's JSON-array stream)."""

    payload: JsonObject | list[Any]


@dataclass(frozen=True)
class StreamReply:
    """A server-sent-event response, each event already framed and ending in a blank line."""

    events: tuple[bytes, ...]
    break_at: int  # the content event a malformed-sse fault corrupts, mid-stream on purpose
    #: NDJSON (Ollama) and AWS event streams (Bedrock) are streamed event by event alike.
    content_type: str = "text/event-stream; charset=utf-8"


Reply = JsonReply | StreamReply
Endpoint = Callable[[JsonObject, CallContext], Reply]


@dataclass(frozen=True)
class Dialect:
    """One provider's API as the server sees it: its routes and its error and header shapes."""

    name: str
    endpoints: Mapping[tuple[str, str], Endpoint]  # (method, path) -> endpoint
    error_payload: Callable[[int, str], JsonObject]
    request_id_header: str
    request_id_prefix: str
    #: (method, path pattern, endpoint) for APIs with the model in the path (Gemini, Bedrock).
    patterns: tuple[tuple[str, re.Pattern[str], Endpoint], ...] = field(default=())


class InvalidRequest(Exception):
    """The request cannot be answered; the server sends a 400 in the dialect's error shape."""


def sse(data: object, event: str | None = None) -> bytes:
    """One server-sent event: an optional ``event:`` line, a ``data:`` line, a blank line."""
    payload = b"data: " + orjson.dumps(data) + b"\n\n"
    return payload if event is None else b"event: " + event.encode() + b"\n" + payload


def require(body: JsonObject, key: str, kind: type[_T], description: str) -> _T:
    """``body[key]`` if it is a ``kind``, else an :class:`InvalidRequest` naming key and kind."""
    value = body.get(key)
    # bool is an int to isinstance, but never a valid count of tokens.
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    if value is None:
        raise InvalidRequest(f"{key}: Field required ({description})")
    raise InvalidRequest(f"{key}: expected {description}, got {type(value).__name__} {value!r:.60}")


def optional_token_limit(body: JsonObject, *keys: str) -> int | None:
    """The first of ``keys`` present in the body, checked to be a positive int, or None."""
    for key in keys:
        if body.get(key) is not None:
            limit = require(body, key, int, "an integer of at least 1")
            if limit < 1:
                raise InvalidRequest(f"{key}: expected an integer of at least 1, got {limit}")
            return limit
    return None
