"""The OpenAI dialect of the test server: its routes, its model list and its error shape.

Owns which endpoint answers which OpenAI path (chat and legacy completions in ``_chat``, the
Responses API in ``_responses``, embeddings in ``_embeddings``), ``GET /v1/models`` and the
``{"error": {...}}`` body. Does not own HTTP, latency and faults (``_server``).
"""

from __future__ import annotations

from workbench.testmodel._chat import chat_completions, completions
from workbench.testmodel._embeddings import KNOWN_DIMENSIONS, embeddings
from workbench.testmodel._media import image_generations, transcriptions
from workbench.testmodel._protocol import CallContext, Dialect, JsonObject, JsonReply, Reply
from workbench.testmodel._responses import responses

_MODELS = ("gpt-4o", "gpt-4o-mini", "gpt-4.1-mini", *sorted(KNOWN_DIMENSIONS))

# (type, code) per status, as OpenAI labels its errors.
_ERROR_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    404: ("invalid_request_error", "unknown_url"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
}


def error_payload(status: int, message: str) -> JsonObject:
    """OpenAI's error body: ``{"error": {"message", "type", "param", "code"}}``."""
    kind, code = _ERROR_KINDS.get(status, ("server_error", None))
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def models(body: JsonObject, ctx: CallContext) -> Reply:
    """``GET /v1/models``: a fixed short list, enough for clients that probe before calling."""
    return JsonReply(
        {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": 1_700_000_000, "owned_by": "workbench"}
                for name in _MODELS
            ],
        }
    )


OPENAI = Dialect(
    name="openai",
    endpoints={
        ("POST", "/v1/chat/completions"): chat_completions,
        ("POST", "/v1/completions"): completions,
        ("POST", "/v1/responses"): responses,
        ("POST", "/v1/embeddings"): embeddings,
        ("POST", "/v1/audio/transcriptions"): transcriptions,
        ("POST", "/v1/images/generations"): image_generations,
        ("GET", "/v1/models"): models,
    },
    error_payload=error_payload,
    request_id_header="x-request-id",
    request_id_prefix="req_",
)
