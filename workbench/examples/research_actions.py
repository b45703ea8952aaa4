"""The two Python actions of ``research_assistant.yaml``, the YAML twin of
``research_assistant.py`` (both beside this file).

The model calls of the twin are the built-in ``llm`` action; what is not a model call — picking
sources from the example's corpus, and reading section titles out of the outline — is Python,
registered with ``@workbench.action`` and reused from the Python example so that both pipelines
do the same thing. The YAML file lists this module under ``imports:``.
"""

from __future__ import annotations

import workbench
from workbench.examples import research_assistant

__all__ = ["retrieve", "sections"]


@workbench.action("retrieve")
def retrieve(topic: str, top_k: int = 3) -> list[dict[str, str]]:
    """The ``top_k`` documents of the example corpus sharing the most words with ``topic``."""
    # The Python example's retrieval without its own @workbench.step wrapper: in the YAML
    # pipeline the step is the YAML step, and a second, nested "retrieve" step would be noise.
    # It still records the retrieval scores as a state of the step.
    documents: list[dict[str, str]] = research_assistant.retrieve.__wrapped__(topic, top_k=top_k)
    return documents


@workbench.action("sections")
def sections(outline: str) -> list[str]:
    """Section titles from the outline model's answer: its JSON, or its lines when not JSON."""
    return research_assistant._sections_from(outline)
