"""What kind of call an HTTP exchange was, and what it produced and cost in tokens.

This package owns reading provider wire formats, one module per provider API, each owning its
recognition (method, host, path), usage parsing and stream assembly as a
:class:`~workbench.providers._common.WireFormat`:

* ``_openai`` — chat completions, legacy completions and embeddings, on OpenAI and on every
  OpenAI-compatible server (the host names whose: ``workbench._hosts``);
* ``_responses`` — OpenAI's Responses API;
* ``_anthropic`` — Anthropic's Messages API;
* ``_gemini`` — Gemini's and Vertex AI's native ``:generateContent`` and its streams;
* ``_bedrock`` — Bedrock's Converse API (and ``invoke`` of Claude), its binary event stream;
* ``_ollama`` — Ollama's native ``/api/chat``, ``/api/generate``, ``/api/embed`` and NDJSON;
* ``_cohere`` — Cohere's v2 chat and embed;
* ``_openai_media`` — OpenAI's audio transcriptions and image generation.

:func:`identify` tells a model call from any other HTTP call; :func:`analyse` reads the
response — JSON or a stream — into :class:`CallFacts` (model, tokens, finish reason, text, and
the response in the provider's non-streaming shape); :class:`SSEParser` is the incremental
event-stream parser the SSE readers use. It does not capture anything, price anything
(``workbench.pricing``, by the API URL ``workbench._hosts`` gives each provider) or store
anything. :func:`is_stream` says which content types are streams it assembles;
:func:`request_fields` gives the request value they read from a canonical request (a
multipart form's fields too).

Everything here is a pure function of bytes already received (run on the store's writer thread
when a call is recorded, and when a stored stream is read back), and never raises on a malformed
body: what could not be read is described in ``CallFacts.stream_error`` instead. Bodies must
already be content-decoded (no gzip). Token counts follow the OpenTelemetry GenAI conventions:
input tokens *include* cached ones.
"""

from __future__ import annotations

from workbench.providers._analyse import analyse, identify, is_stream
from workbench.providers._common import CallFacts
from workbench.providers._request import request_fields
from workbench.providers._sse import SSEEvent, SSEParser

__all__ = [
    "CallFacts",
    "SSEEvent",
    "SSEParser",
    "analyse",
    "identify",
    "is_stream",
    "request_fields",
]
