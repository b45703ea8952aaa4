"""The built-in test model: a real HTTP model server on 127.0.0.1 with deterministic answers.

Used at run time (replay's ``on_miss="test-model"`` and ``use_test_models``, ``workbench demo``,
pipelines run against the test model) as well as in tests, so it lives here rather than in
``workbench.testing``, which re-exports it. Owns :class:`ModelServer` and what it answers on every
API the capture recognises: OpenAI chat completions, legacy completions, the Responses API,
embeddings, audio transcriptions and image generation, Anthropic messages, and the native APIs
of Gemini, Ollama, Cohere (v2 chat) and Bedrock (Converse, its binary event stream). Does not
own recording, replay or any pytest wiring.
"""

from __future__ import annotations

from workbench.testmodel._server import ModelServer, ModelServerFault, ReceivedRequest

__all__ = [
    "ModelServer",
    "ModelServerFault",
    "ReceivedRequest",
]
