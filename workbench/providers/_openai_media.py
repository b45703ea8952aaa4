"""OpenAI's audio transcriptions and image generation, on OpenAI and compatible servers.

Owns recognising ``/audio/transcriptions`` (operation ``transcription``) and
``/images/generations`` / ``/images/edits`` (``image_generation``), reading their ``usage``
when the model reports tokens (``gpt-4o-transcribe``, ``gpt-image-1``), the transcript text
(JSON, plain text, or a ``transcript.text.delta`` stream) and the number of images. Calls
billed by the second (``whisper-1``) or by the image (``dall-e-3``) report no tokens: they
are left unknown — never estimated from characters, never $0 — with a warning saying so.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from workbench.providers._common import (
    JSON,
    Read,
    Target,
    WireFormat,
    as_list,
    as_str,
    error_text,
    event_objects,
    provider_of,
)
from workbench.providers._openai import openai_usage
from workbench.providers._sse import SSEEvent

__all__ = ["FORMAT"]

logger = logging.getLogger("workbench.providers")

_PATHS = (
    ("/audio/transcriptions", "transcription"),
    ("/images/generations", "image_generation"),
    ("/images/edits", "image_generation"),
)
OPERATIONS = frozenset(operation for _, operation in _PATHS)
_TEXT_TYPES = frozenset({"text/plain", "text/vtt", "application/x-subrip", "text/srt"})
_warned: set[str] = set()
_warned_lock = threading.Lock()


def _recognise(target: Target) -> tuple[str, str] | None:
    for suffix, operation in _PATHS:
        if target.path.endswith(suffix):
            return provider_of(target), operation
    return None


def _warn_once(key: str, message: str, *args: object) -> None:
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    logger.warning(message, *args)


def _reads_json(provider: str, operation: str, data: JSON) -> bool:
    return operation in OPERATIONS and isinstance(data, dict)


def _read_json(operation: str, data: dict[str, Any]) -> Read:
    read = Read(response=data, model=as_str(data.get("model")))
    usage = data.get("usage")
    if operation == "transcription":
        read.text = as_str(data.get("text"))
        read.output_chars = len(read.text or "")
        if isinstance(usage, dict) and usage.get("type") == "duration":
            _warn_once(
                "duration",
                "An audio transcription was billed by duration (%s s), which workbench does "
                "not price; its cost is recorded as unknown. Price it per call in code, or use "
                "a model that reports tokens (gpt-4o-transcribe).",
                usage.get("seconds"),
            )
            return read
    elif usage is None:
        _warn_once(
            "images",
            "An image generation reported no token usage (it is billed per image, as "
            "dall-e-3 is), which workbench does not price; its cost is recorded as unknown.",
        )
    read.usage = openai_usage(usage)
    if operation == "image_generation":
        read.output_chars = 0
        read.finish_reason = f"{len(as_list(data.get('data')))} images"
    return read


def _reads_body(provider: str, operation: str, media_type: str) -> bool:
    return operation == "transcription" and media_type in _TEXT_TYPES


def _read_text(operation: str, body: bytes) -> Read:
    # response_format text, srt or vtt: the transcript alone, no usage to read.
    text = body.decode("utf-8", "replace")
    return Read(response=text, text=text, output_chars=len(text))


def _reads_sse(provider: str, operation: str, events: list[SSEEvent]) -> bool:
    return operation in OPERATIONS


def _read_sse(operation: str, events: list[SSEEvent], errors: list[str]) -> Read:
    objects, _ = event_objects(events, errors, "[DONE]")
    deltas: list[str] = []
    final: dict[str, Any] | None = None
    for event in objects:
        kind = event.get("type")
        if kind == "transcript.text.delta" and isinstance(event.get("delta"), str):
            deltas.append(event["delta"])
        elif kind in ("transcript.text.done", "image_generation.completed"):
            final = event
        elif kind == "error" or "error" in event:
            errors.append(f"error event: {error_text(event)}")
    if final is None:
        errors.append(f"stream ended without its {operation} done event")
        final = {"text": "".join(deltas)}
    response = {key: value for key, value in final.items() if key != "type"}
    read = _read_json(operation, response)
    read.errors = errors
    return read


FORMAT = WireFormat(
    name="openai.media",
    recognise=_recognise,
    reads_json=_reads_json,
    read_json=_read_json,
    reads_body=_reads_body,
    read_body=_read_text,
    reads_sse=_reads_sse,
    read_sse=_read_sse,
    estimate=False,
)
