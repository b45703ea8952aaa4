"""OpenAI's audio transcriptions and image generation, as the test model answers them.

Owns ``POST /v1/audio/transcriptions`` (a multipart upload: the model and response format read
from its form fields; ``whisper-1`` reports its usage as a duration, other models as tokens,
as OpenAI does) and ``POST /v1/images/generations`` (one tiny PNG per image, token usage for
``gpt-image-*`` models and none for ``dall-e-*``, which are billed per image). Does not own
HTTP (``_server``).
"""

from __future__ import annotations

import base64
import re

from workbench.testmodel._answers import VOCABULARY, count_tokens, fingerprint
from workbench.testmodel._protocol import (
    CallContext,
    InvalidRequest,
    JsonObject,
    JsonReply,
    Reply,
    require,
)

__all__ = ["image_generations", "transcriptions"]

# A 1x1 transparent PNG: a real image, small enough to keep recordings short.
_PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
        "0000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
    )
).decode()


def _form_field(raw: bytes, name: str) -> str | None:
    found = re.search(
        rb'name="' + name.encode() + rb'"\r\n(?:[^\r\n]+\r\n)*\r\n(.*?)\r\n--', raw, re.S
    )
    return found.group(1).decode("utf-8", "replace") if found else None


def transcriptions(body: JsonObject, ctx: CallContext) -> Reply:
    """``POST /v1/audio/transcriptions``: a transcript of hash-chosen words for the file."""
    if not ctx.content_type.startswith("multipart/"):
        raise InvalidRequest("send the audio as multipart/form-data with 'file' and 'model'")
    model = _form_field(ctx.raw_body, "model")
    if not model:
        raise InvalidRequest("model: Field required (a model name string)")
    digest = bytes.fromhex(fingerprint(model, ctx.raw_body.hex()[:4096]))
    words = [VOCABULARY[byte % len(VOCABULARY)] for byte in digest[:6]]
    text = " ".join(words).capitalize() + "."
    audio_seconds = max(1, len(ctx.raw_body) // 16_000)
    payload: JsonObject = {"text": text}
    if model.startswith("whisper"):
        payload["usage"] = {"type": "duration", "seconds": audio_seconds}
    else:
        audio_tokens = 10 * audio_seconds
        payload["usage"] = {
            "type": "tokens",
            "input_tokens": audio_tokens,
            "input_token_details": {"text_tokens": 0, "audio_tokens": audio_tokens},
            "output_tokens": count_tokens(text),
            "total_tokens": audio_tokens + count_tokens(text),
        }
    return JsonReply(payload)


def image_generations(body: JsonObject, ctx: CallContext) -> Reply:
    """``POST /v1/images/generations``: ``n`` tiny PNGs, with token usage for gpt-image."""
    model = body.get("model") if isinstance(body.get("model"), str) else "dall-e-2"
    prompt = require(body, "prompt", str, "a prompt string")
    count = body.get("n", 1)
    if type(count) is not int or not 1 <= count <= 10:
        raise InvalidRequest(f"n: expected an integer from 1 to 10, got {count!r}")
    payload: JsonObject = {"created": ctx.created, "data": [{"b64_json": _PNG}] * count}
    if model.startswith("gpt-image"):
        input_tokens = count_tokens(prompt)
        output_tokens = 272 * count  # a low-quality square image, in OpenAI's image tokens
        payload["usage"] = {
            "input_tokens": input_tokens,
            "input_tokens_details": {"text_tokens": input_tokens, "image_tokens": 0},
            "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
        }
    return JsonReply(payload)
