"""What the test model decides to reply, in no provider's shape: a tool call, JSON, or prose.

Owns the decision every dialect shares, so chat completions, the Responses API and Anthropic
messages behave alike: :func:`decide` turns the offered tools, the tool choice, where the
conversation stands (:class:`Turn`) and the requested output format into a :class:`Decision` —
a tool call with arguments generated from the tool's schema, JSON for the format, or the prose
answer cut at the token limit — with the pieces a stream sends it in. Each dialect reads its own
request shape into these values and writes the decision back in its own shape. Does not own
the answer's wording (``_answers``) nor HTTP (``_server``).

The rule, deterministic so agent loops end the same way every run:

- no tools, or a choice of ``none``: no call;
- a choice naming one tool: a call of that tool, every turn (as the providers do);
- ``auto``: a call of the first tool until a tool result comes back after the user's last
  message, then a final answer, so an agent makes one round of tool use and stops;
- ``required``: each tool not yet called since the user's last message, in the order offered,
  then the last one again. Frameworks that force a tool put their final-output tool last
  (pydantic-ai's ``final_result``, langchain's response-format tool), so the run ends there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import orjson

from workbench.testmodel._answers import cut_answer, fingerprint
from workbench.testmodel._protocol import InvalidRequest, JsonObject
from workbench.testmodel._schema import json_for_schema

_EMPTY_PARAMETERS: JsonObject = {"type": "object", "properties": {}}


@dataclass(frozen=True)
class Tool:
    """A function the request offers the model: its name and its parameters' JSON schema."""

    name: str
    parameters: object


@dataclass(frozen=True)
class ToolChoice:
    """The request's tool choice: a mode, or the one tool that must be called."""

    mode: Literal["none", "auto", "required"]
    name: str | None = None


AUTO = ToolChoice("auto")


@dataclass(frozen=True)
class Turn:
    """Where the conversation stands since the user's last message."""

    called: frozenset[str]  # tools the assistant called since then
    answered: bool  # whether a tool result came back since then


@dataclass(frozen=True)
class ToolCall:
    """One call of a tool: an id without provider prefix, the tool and its arguments."""

    call_id: str
    name: str
    arguments: JsonObject

    @property
    def arguments_json(self) -> str:
        """The arguments as the JSON text every provider sends them in."""
        return orjson.dumps(self.arguments).decode()


@dataclass(frozen=True)
class OutputFormat:
    """The reply format the request asks for: prose, any JSON object, or JSON for a schema.

    A ``json_object`` format's schema, if any, is the one its prompt shows by example."""

    kind: Literal["text", "json_object", "json_schema"]
    schema: object = None


TEXT = OutputFormat("text")


@dataclass(frozen=True)
class Decision:
    """What the model says this turn, before a provider's shape is put on it."""

    call: ToolCall | None  # a tool call, or None for text
    text: str  # the reply's text; empty for a tool call
    pieces: tuple[str, ...]  # what a stream sends: the text's, or the call's arguments' deltas
    output_tokens: int
    cut: bool  # whether the token limit cut the text short


def decide(
    tools: Sequence[Tool],
    choice: ToolChoice,
    turn: Turn,
    output: OutputFormat,
    *,
    answer: str,
    limit: int | None,
    seed: str,
) -> Decision:
    """The reply to one request: a tool call, JSON for ``output``, or ``answer`` cut at ``limit``.

    ``seed`` fixes the generated arguments and JSON, so equal requests get equal replies.
    Structured output is never cut short by ``limit``: cut JSON would not parse.
    """
    tool = choose_tool(tools, choice, turn)
    if tool is not None:
        call = call_tool(tool, seed)
        arguments = call.arguments_json
        return Decision(call, "", json_pieces(arguments), json_tokens(arguments), cut=False)
    if output.kind == "text":
        words, cut = cut_answer(answer, limit)
        pieces = tuple(word if i == 0 else " " + word for i, word in enumerate(words))
        return Decision(None, " ".join(words), pieces, len(words), cut)
    text = formatted_text(output, answer, seed)
    return Decision(None, text, json_pieces(text), json_tokens(text), cut=False)


def choose_tool(tools: Sequence[Tool], choice: ToolChoice, turn: Turn) -> Tool | None:
    """The tool to call this turn, or None to answer instead (the rule in the module docstring)."""
    if not tools or choice.mode == "none":
        return None
    if choice.name is not None:
        for tool in tools:
            if tool.name == choice.name:
                return tool
        offered = ", ".join(repr(tool.name) for tool in tools)
        raise InvalidRequest(
            f"tool_choice names the tool {choice.name!r}, which is not among the tools "
            f"offered ({offered}); name one of them or pass 'auto'"
        )
    if choice.mode == "auto":
        return None if turn.answered else tools[0]
    for tool in tools:
        if tool.name not in turn.called:
            return tool
    return tools[-1]


def call_tool(tool: Tool, seed: str) -> ToolCall:
    """A call of ``tool`` with arguments generated from its schema, fixed by ``seed``."""
    schema = tool.parameters if tool.parameters is not None else _EMPTY_PARAMETERS
    arguments = json_for_schema(schema, seed=f"{seed}:{tool.name}")
    if not isinstance(arguments, dict):
        raise InvalidRequest(
            f"the parameters of tool {tool.name!r} do not describe an object: tool arguments "
            f'are always a JSON object; give the schema "type": "object"'
        )
    return ToolCall(fingerprint(seed, tool.name)[:24], tool.name, arguments)


def formatted_text(output: OutputFormat, answer: str, seed: str) -> str:
    """The reply's text: ``answer`` itself, or JSON in the requested format."""
    if output.kind == "json_schema":
        return orjson.dumps(json_for_schema(output.schema, seed=seed)).decode()
    if output.kind == "json_object":
        # Shaped like the prompt's JSON example when it has one (see ``_example``).
        value = (
            {"answer": answer}
            if output.schema is None
            else json_for_schema(output.schema, seed=seed)
        )
        return orjson.dumps(value).decode()
    return answer


def json_tokens(text: str) -> int:
    """Output tokens of JSON text: about four characters each, as tokenizers average on JSON.

    Prose is counted in words (``_answers.count_tokens``), but compact JSON has no spaces.
    """
    return max(1, math.ceil(len(text) / 4))


def json_pieces(text: str, size: int = 16) -> tuple[str, ...]:
    """JSON text cut into stream deltas of ``size`` characters, the last one possibly shorter."""
    return tuple(text[start : start + size] for start in range(0, len(text), size)) or ("",)
