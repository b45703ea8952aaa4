"""Which provider API a call spoke, and what its response says: the dispatch over providers.

Owns :func:`identify` (a POST's ``(provider, operation)``, asked of each provider module's
:class:`~workbench.providers._common.WireFormat` in turn) and :func:`analyse` (a response
offered to the formats in the same order, the first that claims it reading it, and the
estimate of tokens when a call reported none). Knows no provider's paths or fields itself.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from workbench.providers import (
    _anthropic,
    _bedrock,
    _cohere,
    _gemini,
    _ollama,
    _openai,
    _openai_media,
    _responses,
)
from workbench.providers._common import (
    INVALID,
    JSON,
    TOO_DEEP,
    TOO_DEEP_TEXT,
    CallFacts,
    Read,
    Target,
    WireFormat,
    estimate,
    parse_json,
    request_chars,
)
from workbench.providers._sse import parse_events

__all__ = ["FORMATS", "analyse", "identify", "is_stream"]

#: Most specific first: OpenAI's reader takes whatever no other format claims.
FORMATS: tuple[WireFormat, ...] = (
    _gemini.FORMAT,
    _bedrock.FORMAT,
    _cohere.FORMAT,
    _ollama.FORMAT,
    _openai_media.FORMAT,
    _responses.FORMAT,
    _anthropic.FORMAT,
    _openai.FORMAT,
)


#: Media types of the streams the formats assemble: SSE, Ollama's NDJSON, AWS event streams.
STREAM_TYPES = frozenset({"text/event-stream", _bedrock.EVENT_STREAM, *_ollama.NDJSON_TYPES})


def is_stream(content_type: str | None) -> bool:
    """Whether a response of this content type is a stream that :func:`analyse` assembles (so
    its stored body is read back through it, not as JSON)."""
    return (content_type or "").partition(";")[0].strip().lower() in STREAM_TYPES


def identify(method: str, url: str, request_body: JSON) -> tuple[str, str]:
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
    ``/audio/transcriptions``             ``openai`` [1]  ``transcription``
    ``/images/generations``, ``/edits``   ``openai`` [1]  ``image_generation``
    ``/models/M:generateContent`` [3]     ``gcp.gemini``  ``generate_content``
    ``/model/M/converse`` [4]             ``aws.bedrock`` ``chat``
    ``/api/chat``                         ``ollama``      ``chat``
    ``/api/generate``                     ``ollama``      ``text_completion``
    ``/api/embed``                        ``ollama``      ``embeddings``
    ``/v2/chat``, ``/v2/embed``           ``cohere``      ``chat``, ``embeddings``
    ====================================  ==============  ==================

    [1] Or the provider workbench.yaml's ``providers:`` names for the URL, else the one
    whose host it is (``workbench._hosts``): ``anthropic`` on
    ``api.anthropic.com`` (its OpenAI-compatible endpoint), ``groq`` on ``api.groq.com``,
    ``gcp.gemini`` on Gemini's OpenAI-compatible API, ``azure.ai.openai`` on Azure OpenAI,
    ``ollama`` on port 11434, ...; ``openai`` on any host the table does not know.
    [2] Or ``/messages`` on ``api.anthropic.com``, or anywhere when the body is a messages
    request (has ``model``, ``messages`` and ``max_tokens``) and the path is not an OpenAI
    Assistants thread. [3] And ``:streamGenerateContent``; ``gcp.vertex_ai`` on Vertex AI's
    hosts. [4] And ``converse-stream``, ``invoke``, ``invoke-with-response-stream``. The native
    paths take the host's provider too when the host table knows it. Every other call is
    ``("http", method.lower())``.
    """
    verb = method.lower()
    if verb != "post":
        return "http", verb
    target = _target(url, request_body)
    for wire_format in FORMATS:
        found = wire_format.recognise(target)
        if found is not None:
            return found
    return "http", verb


def _target(url: str, request_body: JSON) -> Target:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # a port out of range: no provider runs there
        port = None
    return Target(
        parts.scheme.lower(),
        (parts.hostname or "").lower(),
        port,
        parts.path.rstrip("/"),
        request_body,
    )


def analyse(
    provider: str,
    operation: str,
    request_body: JSON,
    status_code: int,
    content_type: str | None,
    body: bytes,
    *,
    url: str | None = None,
) -> CallFacts:
    """Read a finished call's response into :class:`CallFacts`. Never raises.

    ``request_body`` is the parsed JSON request (as in the canonical request); ``url``, when
    given, names the model of APIs that put it only in the path (Bedrock's
    ``/model/<id>/converse``; Gemini's responses name theirs anyway). Error
    responses (status ≥ 400) carry no tokens and no text; ``response`` is the parsed error.
    When a successful model call reports no usage, tokens are estimated as characters / 4 of
    the request's text and of the response's text, and ``tokens_estimated`` is True.
    """
    request_model = request_body.get("model") if isinstance(request_body, dict) else None
    if not isinstance(request_model, str):
        request_model = None
    try:
        return _analyse(
            provider, operation, request_body, request_model, status_code, content_type, body, url
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
    request_body: JSON,
    request_model: str | None,
    status_code: int,
    content_type: str | None,
    body: bytes,
    url: str | None,
) -> CallFacts:
    media_type = (content_type or "").partition(";")[0].strip().lower()
    is_sse = media_type == "text/event-stream" or (
        not media_type and body[:6] in (b"data: ", b"event:", b"data:{")
    )
    if provider == "http" or status_code >= 400:
        response = parse_json(body) if not is_sse else None
        if response is INVALID or response is TOO_DEEP:
            response = body.decode("utf-8", errors="replace") if status_code >= 400 else None
        return _without_usage(provider, operation, request_model, response, None)

    wire_format, read = _read(provider, operation, media_type, is_sse, body)
    if read.usage is not None and (read.usage[0] is not None or read.usage[1] is not None):
        input_tokens, output_tokens, cache_read, cache_write = read.usage
        estimated = False
    elif wire_format is not None and not wire_format.estimate:
        input_tokens = output_tokens = cache_read = cache_write = None
        estimated = False
    else:
        input_tokens = estimate(request_chars(request_body))
        output_tokens = 0 if operation == "embeddings" else estimate(read.output_chars)
        cache_read = cache_write = None
        estimated = True
    model = read.model or request_model
    if model is None and url is not None and wire_format is not None and wire_format.model_of:
        model = wire_format.model_of(_target(url, request_body))
    return CallFacts(
        provider=provider,
        operation=operation,
        model=model,
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


def _read(
    provider: str, operation: str, media_type: str, is_sse: bool, body: bytes
) -> tuple[WireFormat | None, Read]:
    """The format that claimed the response (None: no format did) and what it read."""
    for wire_format in FORMATS:
        if wire_format.read_body is not None and wire_format.reads_body(
            provider, operation, media_type
        ):
            return wire_format, wire_format.read_body(operation, body)
    if is_sse:
        events, truncated = parse_events(body)
        # The readers append to this list and hand it on as their own ``errors``.
        errors: list[str] = []
        if truncated:
            errors.append("stream ended in the middle of an event")
        for wire_format in FORMATS:
            if wire_format.read_sse is not None and wire_format.reads_sse(
                provider, operation, events
            ):
                return wire_format, wire_format.read_sse(operation, events, errors)
        return None, Read(errors=errors)
    data = parse_json(body)
    if data is TOO_DEEP:
        read = Read(response=None)
        read.errors.append(f"response body is {TOO_DEEP_TEXT}; kept as received, not analysed")
        return None, read
    if data is not INVALID:
        for wire_format in FORMATS:
            if wire_format.reads_json(provider, operation, data):
                return wire_format, wire_format.read_json(operation, data)
    read = Read(response=None if data is INVALID else data)
    read.errors.append("response body is not a JSON object")
    return None, read
