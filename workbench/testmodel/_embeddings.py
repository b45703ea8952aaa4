"""OpenAI embeddings, as the test model answers them: deterministic unit vectors.

Owns ``POST /v1/embeddings``: the inputs it accepts (a string, a batch, token ids), the vector
dimension (the ``dimensions`` parameter, else the model's known default), and float or base64
encoding. Does not own how a vector is derived from its text (``_answers.embedding_for``).
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from workbench.testmodel._answers import count_tokens, embedding_for
from workbench.testmodel._protocol import (
    CallContext,
    InvalidRequest,
    JsonObject,
    JsonReply,
    Reply,
    require,
)

_MAX_DIMENSIONS = 4096
# What the providers return without a ``dimensions`` parameter; code sizes its vector index by it.
KNOWN_DIMENSIONS = {
    "text-embedding-3-large": 3072,
    "text-embedding-3-small": 1536,
    "text-embedding-ada-002": 1536,
}
# Other models get OpenAI's default width, the one code written against OpenAI expects.
_DEFAULT_DIMENSIONS = 1536


def default_dimensions(model: str) -> int:
    """The vector width of ``model`` when the request names none (dated snapshots included)."""
    for name, dimensions in KNOWN_DIMENSIONS.items():
        if model == name or model.startswith(name + "-"):
            return dimensions
    return _DEFAULT_DIMENSIONS


def embeddings(body: JsonObject, ctx: CallContext) -> Reply:
    """``POST /v1/embeddings``: a deterministic unit vector per input, floats or base64."""
    model = require(body, "model", str, "a model name string")
    raw_input = body.get("input")
    inputs: list[Any] = raw_input if isinstance(raw_input, list) else [raw_input]
    if inputs and all(isinstance(item, int) for item in inputs):
        inputs = [inputs]  # one input given as token ids, not a batch of inputs
    if not inputs or not all(isinstance(item, str | list) for item in inputs):
        raise InvalidRequest(
            f"input: expected a string or a list of strings, got {raw_input!r:.60}"
        )
    dimensions = default_dimensions(model)
    if body.get("dimensions") is not None:
        dimensions = require(body, "dimensions", int, "an integer from 1 to 4096")
        if not 1 <= dimensions <= _MAX_DIMENSIONS:
            raise InvalidRequest(
                f"dimensions: expected an integer from 1 to 4096, got {dimensions}"
            )
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    tokens = 0
    for index, item in enumerate(inputs):
        # Token-id inputs (lists of ints) are embedded by their JSON text.
        text = item if isinstance(item, str) else str(item)
        tokens += count_tokens(text) if isinstance(item, str) else len(item)
        vector = embedding_for(model, text, dimensions)
        encoded: object = vector
        if as_base64:
            encoded = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    return JsonReply(
        {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )
