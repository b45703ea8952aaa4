"""A research assistant: the example pipeline that ``workbench demo`` records.

It shows how a pipeline is instrumented with workbench, and nothing more:

- ``@workbench.pipeline`` marks :func:`research` as the entrypoint, so its import path and
  arguments are recorded and a replay can call it again;
- ``@workbench.step(...)`` makes each stage a step with its parameters, result and timing;
- ``workbench.state(...)`` keeps an intermediate value worth looking at later;
- the model calls are made with the ordinary ``openai`` and ``anthropic`` SDKs. workbench records
  them at the HTTP layer (tokens, cost, time to first token, the stream's chunks) without any
  wrapper around the clients.

Four steps: ``retrieve`` picks documents from a small in-file corpus (no vector database, so the
example runs anywhere), ``outline`` asks an OpenAI model for section titles in JSON, ``draft``
streams a short text from an OpenAI model, and ``critique`` asks an Anthropic model to review it.

Against the real APIs (keys from ``OPENAI_API_KEY`` and ``ANTHROPIC_API_KEY``)::

    >>> from workbench.examples.research_assistant import research
    >>> research("prompt caching")

Against workbench's local test model server, with no key and no network: ``workbench demo``.

The base URLs are arguments, so they are recorded inputs and a replay calls the same servers; the
API keys are read from the environment on purpose, so that they never become recorded inputs.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import asdict, dataclass
from typing import Any

import anthropic
import openai
from anthropic.types import TextBlock

import workbench

__all__ = [
    "CORPUS",
    "DEFAULT_TOPIC",
    "PIPELINE_ID",
    "PIPELINE_VERSION",
    "Document",
    "critique",
    "draft",
    "outline",
    "research",
    "retrieve",
]

# Not __name__: the recorder keeps no log records of workbench.* loggers (its own), and this
# example's logs belong to the recorded run like any application's.
log = logging.getLogger("research_assistant")

PIPELINE_ID = "research_assistant"
PIPELINE_VERSION = "1"
DEFAULT_TOPIC = "prompt caching and token costs"

# Model names genai-prices knows, so every call of a recorded run has a price.
OUTLINE_MODEL = "gpt-4o-mini"
DRAFT_MODEL = "gpt-4o-mini"
CRITIQUE_MODEL = "claude-3-5-haiku-latest"

# Enough for the SDKs to send a request; the test model server accepts any key.
DUMMY_KEY = "sk-test-not-a-real-key"


@dataclass(frozen=True, slots=True)
class Document:
    """One source the assistant can cite."""

    id: str
    title: str
    text: str


CORPUS: tuple[Document, ...] = (
    Document(
        "doc-caching",
        "Prompt caching",
        "Providers cache a repeated prompt prefix; cached input tokens are billed at a "
        "fraction of the normal input price and cut the time to first token.",
    ),
    Document(
        "doc-streaming",
        "Streaming responses",
        "Streaming sends tokens as server-sent events while they are generated, so users see "
        "the first words early; usage arrives in the last event when asked for.",
    ),
    Document(
        "doc-retrieval",
        "Retrieval augmented generation",
        "Retrieval finds documents relevant to a question and puts them in the prompt, which "
        "grounds the answer in sources and reduces invented facts.",
    ),
    Document(
        "doc-evaluation",
        "Evaluating pipelines",
        "Evaluation compares outputs of a pipeline against references or a judging model; "
        "recorded runs make regressions reproducible.",
    ),
    Document(
        "doc-costs",
        "Token costs",
        "Model calls are priced per million input and output tokens; long prompts, retries "
        "and verbose outputs are where the costs of a pipeline hide.",
    ),
    Document(
        "doc-latency",
        "Latency budgets",
        "Latency of a pipeline is the sum of its sequential model calls; time to first token "
        "and streaming decide how fast it feels.",
    ),
)

_WORD = re.compile(r"[a-z]{3,}")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


@workbench.step("retrieve")
def retrieve(topic: str, *, top_k: int = 3) -> list[dict[str, str]]:
    """The ``top_k`` documents sharing the most words with ``topic`` (ties broken by id)."""
    wanted = _words(topic)
    scored = sorted(
        ((len(wanted & _words(f"{doc.title} {doc.text}")), doc) for doc in CORPUS),
        key=lambda pair: (-pair[0], pair[1].id),
    )
    chosen = [doc for _, doc in scored[:top_k]]
    # The scores explain *why* these documents were chosen; the step's result only says which.
    workbench.state("retrieval_scores", {doc.id: score for score, doc in scored})
    return [asdict(doc) for doc in chosen]


def _openai_client(base_url: str | None) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=os.environ.get("OPENAI_API_KEY", DUMMY_KEY))


def _sources(documents: list[dict[str, str]]) -> str:
    return "\n".join(f"[{doc['id']}] {doc['title']}: {doc['text']}" for doc in documents)


def _sections_from(text: str) -> list[str]:
    """Section titles from the model's answer: the JSON asked for, or its lines if not JSON."""
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        # JSON mode is a request, not a guarantee (a truncated answer is not JSON, and
        # OpenAI-compatible servers may ignore the mode): degrade to one section per line.
        log.warning("outline answer is not JSON; using its lines as sections")
        return [line.strip(" -*") for line in text.splitlines() if line.strip(" -*")]
    sections = parsed.get("sections") if isinstance(parsed, dict) else None
    if not isinstance(sections, list):
        log.warning("outline JSON has no list under 'sections'; using the whole answer")
        return [text.strip()]
    return [str(section) for section in sections]


@workbench.step("outline")
def outline(topic: str, documents: list[dict[str, str]], *, base_url: str | None) -> list[str]:
    """Section titles for a short report on ``topic``, from an OpenAI model in JSON mode."""
    with _openai_client(base_url) as client:
        response = client.chat.completions.create(
            model=OUTLINE_MODEL,
            response_format={"type": "json_object"},
            max_tokens=200,
            messages=[
                {
                    "role": "system",
                    "content": 'Answer with JSON: {"sections": ["<title>", ...]}, 3 titles.',
                },
                {"role": "user", "content": f"Outline a report on {topic}.\n{_sources(documents)}"},
            ],
        )
    return _sections_from(response.choices[0].message.content or "")


@workbench.step("draft")
def draft(
    topic: str, sections: list[str], documents: list[dict[str, str]], *, base_url: str | None
) -> str:
    """A short report following ``sections``, streamed from an OpenAI model."""
    parts: list[str] = []
    with _openai_client(base_url) as client:
        stream = client.chat.completions.create(
            model=DRAFT_MODEL,
            stream=True,
            # Without this a stream reports no token counts, and the call could not be priced.
            stream_options={"include_usage": True},
            max_tokens=400,
            messages=[
                {"role": "system", "content": "Write concisely and cite sources as [doc-id]."},
                {
                    "role": "user",
                    "content": f"Write about {topic} in sections: {'; '.join(sections)}.\n"
                    f"{_sources(documents)}",
                },
            ],
        )
        with stream:
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    parts.append(chunk.choices[0].delta.content)
    return "".join(parts)


@workbench.step("critique")
def critique(text: str, *, base_url: str | None) -> str:
    """An editor's review of ``text`` from an Anthropic model."""
    with anthropic.Anthropic(
        base_url=base_url, api_key=os.environ.get("ANTHROPIC_API_KEY", DUMMY_KEY)
    ) as client:
        message = client.messages.create(
            model=CRITIQUE_MODEL,
            max_tokens=300,
            system="You are a strict editor. Name the weakest claim and how to support it.",
            messages=[{"role": "user", "content": f"Review this draft:\n{text}"}],
        )
    return "".join(block.text for block in message.content if isinstance(block, TextBlock))


@workbench.pipeline(name=PIPELINE_ID, version=PIPELINE_VERSION)
def research(
    topic: str, *, openai_base_url: str | None = None, anthropic_base_url: str | None = None
) -> dict[str, Any]:
    """Research ``topic``: retrieve sources, outline, draft (streamed), critique.

    ``None`` base URLs mean each SDK's default (its environment variable, else the real API).
    """
    documents = retrieve(topic)
    sections = outline(topic, documents, base_url=openai_base_url)
    text = draft(topic, sections, documents, base_url=openai_base_url)
    review = critique(text, base_url=anthropic_base_url)
    return {
        "topic": topic,
        "sources": [doc["id"] for doc in documents],
        "outline": sections,
        "draft": text,
        "critique": review,
    }
