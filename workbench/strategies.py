"""Hypothesis strategies for model messages and pipeline inputs.

Property tests draw conversations and requests the OpenAI and Anthropic SDKs accept, and inputs
for a pipeline — from its entrypoint's signature, or shaped like a recorded execution's inputs —
so that a recorded pipeline can be driven with many inputs against the built-in test model::

    from hypothesis import given, settings
    from workbench import strategies as wst

    @given(messages=wst.chat_messages())
    def test_any_conversation_gets_an_answer(messages, model_server):
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        assert reply.choices[0].message.content

    @given(inputs=wst.pipeline_inputs(recorded_execution))
    def test_replays_with_other_inputs(inputs):
        RequestReplay().replay_execution(recorded_execution.id, on_miss="test-model",
                                         modifications={"inputs": inputs})

Needs Hypothesis (``pip install 'pipeline-workbench[test]'``).
"""

from __future__ import annotations

import collections.abc
import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from workbench.exceptions import ConfigError, MissingExtraError
from workbench.records import Execution

try:
    from hypothesis import strategies as st
    from hypothesis.strategies import SearchStrategy
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError(
        "workbench.strategies needs Hypothesis; install it with "
        "pip install 'pipeline-workbench[test]' (or pip install hypothesis)"
    ) from exc

__all__ = [
    "anthropic_request",
    "chat_messages",
    "json_values",
    "message_text",
    "openai_chat_request",
    "pipeline_inputs",
]

#: Models the built-in test model server prices and answers like the real ones.
OPENAI_MODELS = ("gpt-4o-mini", "gpt-4o")
ANTHROPIC_MODELS = ("claude-haiku-4-5",)


def message_text(*, min_size: int = 1, max_size: int = 200) -> SearchStrategy[str]:
    """Text a model API accepts as message content: any Unicode but lone surrogates (which
    JSON cannot carry) and NUL, with at least one visible character."""
    alphabet = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
    return st.text(alphabet, min_size=max(min_size, 1), max_size=max_size).filter(
        lambda text: text.strip() != ""
    )


def chat_messages(
    *,
    min_turns: int = 1,
    max_turns: int = 4,
    system: bool | None = None,
    text: SearchStrategy[str] | None = None,
) -> SearchStrategy[list[dict[str, str]]]:
    """OpenAI chat ``messages``: an optional system message (``system=None``: sometimes), then
    user and assistant turns alternating, ending with the user's."""
    content = text if text is not None else message_text()

    @st.composite
    def build(draw: st.DrawFn) -> list[dict[str, str]]:
        turns = draw(st.integers(min_turns, max_turns))
        messages = []
        with_system = draw(st.booleans()) if system is None else system
        if with_system:
            messages.append({"role": "system", "content": draw(content)})
        for turn in range(turns):
            if turn:
                messages.append({"role": "assistant", "content": draw(content)})
            messages.append({"role": "user", "content": draw(content)})
        return messages

    return build()


def openai_chat_request(
    *, models: Sequence[str] = OPENAI_MODELS, stream: bool | None = None
) -> SearchStrategy[dict[str, Any]]:
    """Keyword arguments for ``client.chat.completions.create(**kwargs)``."""
    return st.fixed_dictionaries(
        {
            "model": st.sampled_from(list(models)),
            "messages": chat_messages(),
            "stream": st.booleans() if stream is None else st.just(stream),
        },
        optional={
            "temperature": st.floats(0, 2, allow_nan=False).map(lambda t: round(t, 2)),
            "max_tokens": st.integers(1, 512),
        },
    )


def anthropic_request(
    *, models: Sequence[str] = ANTHROPIC_MODELS, stream: bool | None = None
) -> SearchStrategy[dict[str, Any]]:
    """Keyword arguments for ``client.messages.create(**kwargs)``: the system prompt is its
    own argument, and ``max_tokens`` is required."""

    def to_anthropic(messages: list[dict[str, str]]) -> dict[str, Any]:
        system = [m["content"] for m in messages if m["role"] == "system"]
        request: dict[str, Any] = {"messages": [m for m in messages if m["role"] != "system"]}
        if system:
            request["system"] = system[0]
        return request

    return st.builds(
        lambda model, conversation, max_tokens, streamed: {
            "model": model,
            "max_tokens": max_tokens,
            "stream": streamed,
            **conversation,
        },
        st.sampled_from(list(models)),
        chat_messages().map(to_anthropic),
        st.integers(1, 1024),
        st.booleans() if stream is None else st.just(stream),
    )


def json_values(*, max_leaves: int = 10) -> SearchStrategy[Any]:
    """Values that survive a JSON round trip: what a recorded input can be."""
    leaves = (
        st.none()
        | st.booleans()
        | st.integers(-(2**53), 2**53)
        | st.floats(allow_nan=False, allow_infinity=False)
        | message_text(max_size=40)
    )
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(message_text(max_size=10), children, max_size=4)
        ),
        max_leaves=max_leaves,
    )


def pipeline_inputs(
    source: Callable[..., Any] | Execution | Mapping[str, Any],
    **overrides: SearchStrategy[Any],
) -> SearchStrategy[dict[str, Any]]:
    """Inputs for a pipeline, as a mapping of argument names to values.

    ``source`` is the entrypoint (its parameters' annotations decide each value's strategy; a
    parameter with a default is sometimes left out), a recorded :class:`~workbench.Execution`
    or its ``inputs`` mapping (values of the same shape: same keys, same types, list lengths
    that vary). ``overrides`` give the strategy for named arguments.
    """
    if isinstance(source, Execution):
        recorded = source.metadata.get("entrypoint_arguments", source.inputs)
        return _shaped_like(recorded, overrides, f"execution {source.id}")
    if isinstance(source, Mapping):
        return _shaped_like(source, overrides, "the inputs given")
    if callable(source):
        return _from_signature(source, overrides)
    raise ConfigError(
        f"pipeline_inputs() takes an entrypoint function, a recorded Execution or a mapping "
        f"of inputs, got {type(source).__name__}"
    )


def _shaped_like(
    inputs: Any, overrides: Mapping[str, SearchStrategy[Any]], where: str
) -> SearchStrategy[dict[str, Any]]:
    if not isinstance(inputs, Mapping):
        raise ConfigError(
            f"{where} has inputs of type {type(inputs).__name__}, not a mapping of argument "
            f"names; record it through @workbench.pipeline or give the strategies yourself"
        )
    unknown = sorted(set(overrides) - set(inputs))
    if unknown:
        raise ConfigError(
            f"pipeline_inputs: {', '.join(map(repr, unknown))} not among the inputs of "
            f"{where}: {', '.join(map(repr, inputs)) or '(none)'}"
        )
    return st.fixed_dictionaries(
        {
            name: overrides[name] if name in overrides else _like(value)
            for name, value in inputs.items()
        }
    )


def _like(value: Any) -> SearchStrategy[Any]:
    """Values of the same JSON shape as ``value``."""
    if value is None:
        return st.none()
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.integers(-(2**31), 2**31)
    if isinstance(value, float):
        return st.floats(allow_nan=False, allow_infinity=False)
    if isinstance(value, str):
        return message_text(min_size=1, max_size=max(20, 2 * len(value)))
    if isinstance(value, list):
        if not value:
            return st.just([])
        return st.lists(st.one_of(*(_like(item) for item in value[:3])), max_size=2 * len(value))
    if isinstance(value, dict):
        return st.fixed_dictionaries({str(key): _like(item) for key, item in value.items()})
    return st.just(value)


def _from_signature(
    fn: Callable[..., Any], overrides: Mapping[str, SearchStrategy[Any]]
) -> SearchStrategy[dict[str, Any]]:
    target = inspect.unwrap(fn)
    signature = inspect.signature(target)
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # an annotation that does not resolve: that parameter takes any JSON
        hints = {}
    unknown = sorted(set(overrides) - set(signature.parameters))
    if unknown:
        raise ConfigError(
            f"pipeline_inputs: {', '.join(map(repr, unknown))} not parameters of "
            f"{target.__qualname__}{signature}"
        )
    required: dict[str, SearchStrategy[Any]] = {}
    optional: dict[str, SearchStrategy[Any]] = {}
    for name, parameter in signature.parameters.items():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        strategy = overrides[name] if name in overrides else _for_type(hints.get(name))
        if parameter.default is parameter.empty or name in overrides:
            required[name] = strategy
        else:
            optional[name] = strategy
    return st.fixed_dictionaries(required, optional=optional)


def _for_type(hint: Any) -> SearchStrategy[Any]:
    """Values of type ``hint``, with JSON-safe text (Hypothesis' own ``str`` strategy draws
    lone surrogates, which no model API accepts) for the types pipelines take."""
    if hint is None or hint is Any:
        return json_values()
    if hint is type(None):
        return st.none()
    if hint is str:
        return message_text()
    if hint is bool:
        return st.booleans()
    if hint is int:
        return st.integers(-(2**31), 2**31)
    if hint is float:
        return st.floats(allow_nan=False, allow_infinity=False)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return st.sampled_from(args)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(_for_type(arg) for arg in args))
    if origin in (list, Sequence, collections.abc.Sequence) and args:
        return st.lists(_for_type(args[0]), max_size=5)
    if origin is dict and len(args) == 2 and args[0] is str:
        return st.dictionaries(message_text(max_size=20), _for_type(args[1]), max_size=5)
    try:
        return st.from_type(hint)
    except Exception:  # a type Hypothesis cannot build: any JSON value
        return json_values()
