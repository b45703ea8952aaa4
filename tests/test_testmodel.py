"""The test model answers agents: tool calls, structured output, the Responses API, embeddings.

Every test talks to a real :class:`ModelServer` on 127.0.0.1 through the real ``openai`` and
``anthropic`` SDKs (and, where installed, pydantic-ai, openai-agents and langchain), except the
property tests of the JSON-from-schema generator, which check its values with ``jsonschema``.
"""

from __future__ import annotations

import asyncio
import json
import string
from collections.abc import Iterator
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Literal

import anthropic
import httpx
import jsonschema
import openai
import pytest
from anthropic.types import Message, TextBlock, ToolUseBlock
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion, ChatCompletionMessageFunctionToolCall
from openai.types.responses import ResponseFunctionToolCall
from pydantic import BaseModel, Field

import workbench
from workbench.debugging import RequestReplay
from workbench.store import Store
from workbench.testmodel import ModelServer
from workbench.testmodel._example import schema_of_example
from workbench.testmodel._schema import json_for_schema

# -- JSON from a schema --------------------------------------------------------------------------

_NAMES = st.text(string.ascii_lowercase, min_size=1, max_size=6)
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-50, 50), st.text(string.ascii_letters, max_size=5)
)
_FORMATS = ["date-time", "date", "time", "email", "uri", "uuid", "ipv4", "ipv6", "hostname"]


@st.composite
def _string_schemas(draw: st.DrawFn) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if draw(st.booleans()):
        schema["format"] = draw(st.sampled_from(_FORMATS))
        return schema
    low = draw(st.none() | st.integers(0, 12))
    high = draw(st.none() | st.integers(max(low or 0, 1), 30))
    if low is not None:
        schema["minLength"] = low
    if high is not None:
        schema["maxLength"] = high
    return schema


@st.composite
def _integer_schemas(draw: st.DrawFn) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer"}
    step = draw(st.none() | st.sampled_from([2, 3, 5, 2.5]))
    low = draw(st.none() | st.integers(-1000, 1000))
    if low is not None:
        schema["exclusiveMinimum" if draw(st.booleans()) else "minimum"] = low
    if draw(st.booleans()):
        # Wide enough that a multiple of the step always fits, even between exclusive bounds.
        schema["maximum"] = (low or 0) + draw(st.integers(12, 500))
    if step is not None:
        schema["multipleOf"] = step
    return schema


@st.composite
def _number_schemas(draw: st.DrawFn) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "number"}
    finite = st.floats(-1e6, 1e6, allow_nan=False)
    low = draw(st.none() | finite)
    if low is not None:
        schema["exclusiveMinimum" if draw(st.booleans()) else "minimum"] = low
    if draw(st.booleans()):
        top = (low or 0.0) + draw(st.floats(0.5, 1e4))
        schema["exclusiveMaximum" if draw(st.booleans()) else "maximum"] = top
    if draw(st.booleans()):
        schema["multipleOf"] = draw(st.sampled_from([0.5, 0.25, 2, 0.1]))
        schema.pop("exclusiveMinimum", None)
        schema.pop("exclusiveMaximum", None)
        if "minimum" in schema and "maximum" in schema:
            schema["maximum"] = schema["minimum"] + 10
    return schema


_LEAVES = st.one_of(
    st.just({"type": "null"}),
    st.just({"type": "boolean"}),
    st.just({}),
    _string_schemas(),
    _integer_schemas(),
    _number_schemas(),
    st.lists(_SCALARS, min_size=1, max_size=4, unique_by=json.dumps).map(lambda e: {"enum": e}),
    _SCALARS.map(lambda value: {"const": value}),
)


def _containers(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[Any]:
    @st.composite
    def objects(draw: st.DrawFn) -> dict[str, Any]:
        properties = draw(st.dictionaries(_NAMES, children, max_size=4))
        required = (
            draw(st.lists(st.sampled_from(sorted(properties)), unique=True)) if properties else []
        )
        schema: dict[str, Any] = {"type": "object", "properties": properties, "required": required}
        extra = draw(st.sampled_from(["absent", "false", "schema"]))
        if extra == "false":
            schema["additionalProperties"] = False
        elif extra == "schema":
            schema["additionalProperties"] = draw(children)
        return schema

    @st.composite
    def arrays(draw: st.DrawFn) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "array", "items": draw(children)}
        low = draw(st.integers(0, 3))
        schema["minItems"] = low
        if draw(st.booleans()):
            schema["maxItems"] = low + draw(st.integers(0, 3))
        if low <= 1 and draw(st.booleans()):
            schema["uniqueItems"] = True
        return schema

    @st.composite
    def tuples(draw: st.DrawFn) -> dict[str, Any]:
        prefix = draw(st.lists(children, min_size=1, max_size=3))
        return {"type": "array", "prefixItems": prefix, "items": False}

    @st.composite
    def merged_objects(draw: st.DrawFn) -> dict[str, Any]:
        # Two halves of one model with distinct property names, as pydantic inheritance emits.
        names = draw(st.lists(_NAMES, min_size=2, max_size=4, unique=True))
        half = len(names) // 2
        parts = [
            {"type": "object", "properties": {n: draw(children) for n in part}, "required": part}
            for part in (names[:half], names[half:])
        ]
        return {"allOf": parts}

    nullable = children.map(lambda schema: {"anyOf": [schema, {"type": "null"}]})
    typed_nullable = _string_schemas().map(lambda schema: {**schema, "type": ["string", "null"]})
    unions = st.lists(children, min_size=1, max_size=3).map(lambda branches: {"anyOf": branches})
    return st.one_of(
        objects(), arrays(), tuples(), merged_objects(), nullable, typed_nullable, unions
    )


_SCHEMAS = st.recursive(_LEAVES, _containers, max_leaves=12)


@st.composite
def _schemas_with_defs(draw: st.DrawFn) -> dict[str, Any]:
    """A schema whose parts live in ``$defs`` and are used through ``$ref``, as pydantic emits."""
    defs = draw(st.dictionaries(_NAMES, _SCHEMAS, min_size=1, max_size=3))
    refs = st.sampled_from(sorted(defs)).map(lambda name: {"$ref": f"#/$defs/{name}"})
    described = refs.map(lambda ref: {**ref, "description": "a part"})
    body = draw(st.recursive(refs | described, _containers, max_leaves=6))
    return {**body, "$defs": defs}


def _validates(schema: dict[str, Any], value: Any) -> None:
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    errors = [
        f"{list(error.absolute_path)}: {error.message}" for error in validator.iter_errors(value)
    ]
    assert not errors, f"{json.dumps(value)} does not validate: {errors}"


@settings(max_examples=300, deadline=None)
@given(schema=_SCHEMAS, seed=st.text(max_size=8))
def test_value_for_any_schema_validates(schema: dict[str, Any], seed: str) -> None:
    """Whatever the schema (types, bounds, formats, unions, allOf, tuples), the value validates."""
    _validates(schema, json_for_schema(schema, seed=seed))


@settings(max_examples=150, deadline=None)
@given(schema=_schemas_with_defs(), seed=st.text(max_size=8))
def test_value_for_schema_with_defs_and_refs_validates(schema: dict[str, Any], seed: str) -> None:
    """Schemas built from ``$defs`` and ``$ref``s (with sibling annotations) give valid values."""
    _validates(schema, json_for_schema(schema, seed=seed))


@settings(max_examples=50, deadline=None)
@given(schema=_SCHEMAS, seed=st.text(max_size=8))
def test_value_for_schema_is_a_function_of_schema_and_seed(
    schema: dict[str, Any], seed: str
) -> None:
    """The same schema and seed give the same value, every time."""
    assert json_for_schema(schema, seed=seed) == json_for_schema(schema, seed=seed)


class _Colour(StrEnum):
    RED = "red"
    GREEN = "green"


class _Address(BaseModel):
    street: str = Field(min_length=3, max_length=40)
    postcode: str | None = None


class _Node(BaseModel):
    label: str
    children: list[_Node] = []


class _Cat(BaseModel):
    species: Literal["cat"]
    lives: int = Field(ge=1, le=9)


class _Dog(BaseModel):
    species: Literal["dog"]
    good: bool


class _Person(BaseModel):
    name: str
    age: int = Field(ge=18, le=120)
    score: float = Field(gt=0, lt=1)
    colour: _Colour
    kind: Literal["customer", "staff"]
    born: date
    seen: datetime
    tags: list[str] = Field(min_length=1, max_length=3)
    home: _Address
    others: list[_Address] = []
    ratings: dict[str, int] = {}
    tree: _Node
    pair: tuple[int, str]
    pet: _Cat | _Dog = Field(discriminator="species")
    nickname: str | None = None


def test_value_for_a_pydantic_schema_parses_as_the_model() -> None:
    """pydantic's schema (enums, Literal, dates, $defs, a recursive model, a discriminated union)
    gives a valid model."""
    schema = _Person.model_json_schema()
    for seed in ("a", "b", "c"):
        value = json_for_schema(schema, seed=seed)
        _Person.model_validate_json(json.dumps(value))
        _validates(schema, value)


# -- servers and clients -------------------------------------------------------------------------

GPT = "gpt-4o-mini"
CLAUDE = "claude-haiku-4-5"
QUESTION = "What is the weather in Paris"  # six words: the answer echoes them whole

WEATHER_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 2},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "unit", "days"],
    "additionalProperties": False,
}
TIME_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"zone": {"type": "string", "format": "uuid"}},
    "required": ["zone"],
}


def _chat_tool(name: str, parameters: dict[str, Any]) -> Any:
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


CHAT_TOOLS: Any = [
    _chat_tool("get_weather", WEATHER_PARAMETERS),
    _chat_tool("get_time", TIME_PARAMETERS),
]
SCHEMAS = {"get_weather": WEATHER_PARAMETERS, "get_time": TIME_PARAMETERS}


class City(BaseModel):
    name: str
    population: int = Field(ge=0)
    founded: date
    districts: list[_Address] = Field(min_length=1)
    kind: Literal["capital", "town"]


@pytest.fixture
def server() -> Iterator[ModelServer]:
    with ModelServer() as running:
        yield running


@pytest.fixture
def oai(server: ModelServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0) as client:
        yield client


@pytest.fixture
def claude(server: ModelServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        base_url=server.anthropic_base_url, api_key="sk-test", max_retries=0
    ) as client:
        yield client


def _user(text: str = QUESTION) -> Any:
    return [{"role": "user", "content": text}]


def _only_call(completion: ChatCompletion) -> ChatCompletionMessageFunctionToolCall:
    calls = completion.choices[0].message.tool_calls
    assert calls is not None and len(calls) == 1
    call = calls[0]
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    return call


def _valid_arguments(name: str, arguments: str) -> dict[str, Any]:
    value = json.loads(arguments)
    _validates(SCHEMAS[name], value)
    return value


def _after_tool_result(completion: ChatCompletion) -> Any:
    """The conversation continued as an agent does: the assistant's call, then the tool's result."""
    call = _only_call(completion)
    return [
        *_user(),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.function.name, "arguments": call.function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 degrees"},
    ]


# -- chat completions: tools ---------------------------------------------------------------------


def test_chat_required_tool_choice_calls_a_tool_with_schema_valid_arguments(
    oai: openai.OpenAI,
) -> None:
    """tool_choice=required gives a tool call whose arguments validate against its schema."""
    completion = oai.chat.completions.create(
        model=GPT, messages=_user(), tools=CHAT_TOOLS, tool_choice="required"
    )
    call = _only_call(completion)
    assert completion.choices[0].finish_reason == "tool_calls"
    assert completion.choices[0].message.content is None
    assert call.id.startswith("call_") and call.function.name == "get_weather"
    _valid_arguments("get_weather", call.function.arguments)
    assert completion.usage is not None and completion.usage.completion_tokens > 0


def test_chat_named_tool_choice_calls_that_tool(oai: openai.OpenAI) -> None:
    """A tool_choice naming the second tool calls that one, with arguments valid for it."""
    completion = oai.chat.completions.create(
        model=GPT,
        messages=_user(),
        tools=CHAT_TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    call = _only_call(completion)
    assert call.function.name == "get_time"
    _valid_arguments("get_time", call.function.arguments)


def test_chat_auto_calls_a_tool_first_then_answers_after_the_result(oai: openai.OpenAI) -> None:
    """With tool_choice auto, the first turn is a tool call; the turn after its result is text."""
    first = oai.chat.completions.create(model=GPT, messages=_user(), tools=CHAT_TOOLS)
    _valid_arguments("get_weather", _only_call(first).function.arguments)
    final = oai.chat.completions.create(
        model=GPT, messages=_after_tool_result(first), tools=CHAT_TOOLS
    )
    assert final.choices[0].message.tool_calls is None
    assert final.choices[0].finish_reason == "stop"
    assert QUESTION in (final.choices[0].message.content or "")


def test_chat_required_calls_each_tool_in_turn_then_repeats_the_last(oai: openai.OpenAI) -> None:
    """Under required, a called tool gives way to the next one offered: a final tool ends runs."""
    first = oai.chat.completions.create(
        model=GPT, messages=_user(), tools=CHAT_TOOLS, tool_choice="required"
    )
    second = oai.chat.completions.create(
        model=GPT, messages=_after_tool_result(first), tools=CHAT_TOOLS, tool_choice="required"
    )
    assert _only_call(first).function.name == "get_weather"
    assert _only_call(second).function.name == "get_time"
    _valid_arguments("get_time", _only_call(second).function.arguments)


def test_chat_tool_choice_none_and_no_tools_answer_in_text(oai: openai.OpenAI) -> None:
    """tool_choice none answers in text, exactly as the same prompt without tools does."""
    plain = oai.chat.completions.create(model=GPT, messages=_user())
    refused = oai.chat.completions.create(
        model=GPT, messages=_user(), tools=CHAT_TOOLS, tool_choice="none"
    )
    assert refused.choices[0].message.tool_calls is None
    assert refused.choices[0].message.content == plain.choices[0].message.content


def test_chat_tool_call_streams_and_matches_the_json_answer(oai: openai.OpenAI) -> None:
    """A streamed tool call assembles (SDK stream helper) into the same call as the JSON answer."""
    whole = oai.chat.completions.create(
        model=GPT, messages=_user(), tools=CHAT_TOOLS, tool_choice="required"
    )
    with oai.chat.completions.stream(
        model=GPT, messages=_user(), tools=CHAT_TOOLS, tool_choice="required"
    ) as stream:
        deltas = [event for event in stream if event.type == "tool_calls.function.arguments.delta"]
        streamed = stream.get_final_completion()
    assert len(deltas) > 1  # the arguments arrive in pieces, as from OpenAI
    call = streamed.choices[0].message.tool_calls
    assert call is not None and streamed.choices[0].finish_reason == "tool_calls"
    assert call[0].id == _only_call(whole).id
    assert call[0].function.arguments == _only_call(whole).function.arguments


def test_chat_parse_with_a_pydantic_tool_gives_parsed_arguments(oai: openai.OpenAI) -> None:
    """A strict pydantic function tool is called with arguments the SDK parses into the model."""
    completion = oai.chat.completions.parse(
        model=GPT,
        messages=_user(),
        tools=[openai.pydantic_function_tool(City)],
        tool_choice="required",
    )
    calls = completion.choices[0].message.tool_calls
    assert calls is not None
    assert isinstance(calls[0].function.parsed_arguments, City)


def test_chat_naming_a_tool_not_offered_is_a_400_naming_the_offered_ones(
    oai: openai.OpenAI,
) -> None:
    """A tool_choice naming an unknown tool is refused with the names that were offered."""
    with pytest.raises(openai.BadRequestError, match="'get_weather', 'get_time'"):
        oai.chat.completions.create(
            model=GPT,
            messages=_user(),
            tools=CHAT_TOOLS,
            tool_choice={"type": "function", "function": {"name": "get_news"}},
        )


# -- chat completions: structured output ---------------------------------------------------------


@pytest.mark.parametrize("beta", [False, True], ids=["chat", "beta.chat"])
def test_chat_parse_with_a_pydantic_model_gives_a_parsed_instance(
    oai: openai.OpenAI, beta: bool
) -> None:
    """response_format from a pydantic model gives JSON that the SDK's parse() validates into it."""
    completions = oai.beta.chat.completions if beta else oai.chat.completions
    completion = completions.parse(model=GPT, messages=_user(), response_format=City)
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, City)
    again = completions.parse(model=GPT, messages=_user(), response_format=City)
    assert again.choices[0].message.parsed == parsed  # same request, same answer


def test_chat_parse_streams_structured_output(oai: openai.OpenAI) -> None:
    """Streamed structured output assembles into JSON the stream helper parses into the model."""
    with oai.chat.completions.stream(model=GPT, messages=_user(), response_format=City) as stream:
        final = stream.get_final_completion()
    parsed = final.choices[0].message.parsed
    assert isinstance(parsed, City)
    whole = oai.chat.completions.parse(model=GPT, messages=_user(), response_format=City)
    assert parsed == whole.choices[0].message.parsed


def test_chat_json_object_mode_answers_a_json_object(oai: openai.OpenAI) -> None:
    """response_format json_object gives content that is a JSON object, not prose."""
    completion = oai.chat.completions.create(
        model=GPT, messages=_user(), response_format={"type": "json_object"}, max_tokens=3
    )
    content = completion.choices[0].message.content
    assert content is not None and isinstance(json.loads(content), dict)
    assert completion.choices[0].finish_reason == "stop"  # structured output is not cut


OUTLINE_SYSTEM = 'Answer with JSON: {"sections": ["<title>", ...], "confidence": 0.5}, 3 titles.'


def test_json_object_mode_follows_the_json_example_in_the_prompt(oai: openai.OpenAI) -> None:
    """json_object answers (chat, streamed chat and Responses) are JSON shaped like the example
    the prompt gives: its keys, a list of strings where it shows one, a number for a number."""
    messages: Any = [
        {"role": "system", "content": OUTLINE_SYSTEM},
        {"role": "user", "content": "Outline a report on llamas."},
    ]
    whole = oai.chat.completions.create(
        model=GPT, messages=messages, response_format={"type": "json_object"}, max_tokens=200
    )
    streamed = oai.chat.completions.create(
        model=GPT, messages=messages, response_format={"type": "json_object"}, stream=True
    )
    response = oai.responses.create(
        model=GPT,
        instructions=OUTLINE_SYSTEM,
        input="Outline a report on llamas.",
        text={"format": {"type": "json_object"}},
    )
    answers = [
        json.loads(whole.choices[0].message.content or ""),
        json.loads("".join(c.choices[0].delta.content or "" for c in streamed if c.choices)),
        json.loads(response.output_text),
    ]
    for answer in answers:
        assert set(answer) == {"sections", "confidence"}
        assert len(answer["sections"]) >= 3
        assert all(isinstance(title, str) and title for title in answer["sections"])
        assert isinstance(answer["confidence"], int | float)


_EXAMPLE_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-1000, 1000)
    | st.floats(-10, 10, allow_nan=False)
    | st.text(string.ascii_letters + " <>", max_size=12),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(string.ascii_lowercase, min_size=1, max_size=8), children)
    ),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(
    example=st.dictionaries(
        st.text(string.ascii_lowercase, min_size=1, max_size=8), _EXAMPLE_VALUES, min_size=1
    ),
    before=st.text(string.ascii_letters + " .:", max_size=30),
)
def test_the_schema_of_a_prompt_example_gives_json_of_its_shape(
    example: dict[str, Any], before: str
) -> None:
    """Property: the schema read from a JSON example inside prose is valid, and the JSON made
    from it has the example's keys and, key by key, its kinds of values."""
    schema = schema_of_example(f"{before} {json.dumps(example)} and nothing else")
    assert schema is not None
    jsonschema.Draft202012Validator.check_schema(schema)
    answer = json_for_schema(schema, seed=before)
    jsonschema.validate(answer, schema)
    assert set(answer) == set(example)
    for key, value in example.items():
        kind = type(answer[key])
        assert kind is type(value) or (isinstance(value, float) and kind is int)


def test_json_object_mode_without_an_example_is_still_a_json_object(oai: openai.OpenAI) -> None:
    """No usable example in the prompt (none, or broken JSON): the answer is still an object."""
    for system in ("Answer in JSON.", 'Answer with JSON like {"a": [1, 2'):
        completion = oai.chat.completions.create(
            model=GPT,
            messages=[{"role": "system", "content": system}, *_user()],
            response_format={"type": "json_object"},
        )
        assert isinstance(json.loads(completion.choices[0].message.content or ""), dict)


def test_legacy_completions_answer_as_json_and_as_a_stream(oai: openai.OpenAI) -> None:
    """/v1/completions answers text_completion objects, and a stream with the same text."""
    whole = oai.completions.create(model=GPT, prompt="Say something kind")
    pieces = oai.completions.create(model=GPT, prompt="Say something kind", stream=True)
    assert whole.object == "text_completion" and whole.choices[0].text
    assert (
        "".join(chunk.choices[0].text for chunk in pieces if chunk.choices) == whole.choices[0].text
    )


# -- Responses API -------------------------------------------------------------------------------

RESPONSE_TOOLS: Any = [
    {"type": "function", "name": name, "parameters": schema, "strict": False}
    for name, schema in SCHEMAS.items()
]


def _function_calls(response: Any) -> list[ResponseFunctionToolCall]:
    return [item for item in response.output if isinstance(item, ResponseFunctionToolCall)]


def test_responses_create_answers_text_with_usage(oai: openai.OpenAI) -> None:
    """responses.create answers a completed response whose output_text echoes the prompt."""
    response = oai.responses.create(model=GPT, input=QUESTION, instructions="Be brief")
    assert response.status == "completed" and response.id.startswith("resp_")
    assert QUESTION in response.output_text
    assert response.usage is not None
    assert response.usage.input_tokens == len(QUESTION.split()) + 2
    assert response.usage.output_tokens == len(response.output_text.split())
    again = oai.responses.create(model=GPT, input=QUESTION, instructions="Be brief")
    assert again.output_text == response.output_text


def test_responses_tool_call_then_final_answer_after_its_output(oai: openai.OpenAI) -> None:
    """With tools, a first turn is a function_call with valid arguments; after its output, text."""
    first = oai.responses.create(model=GPT, input=QUESTION, tools=RESPONSE_TOOLS)
    (call,) = _function_calls(first)
    assert call.name == "get_weather" and call.call_id.startswith("call_")
    _valid_arguments("get_weather", call.arguments)
    follow_up: Any = [
        {"role": "user", "content": QUESTION},
        {
            "type": "function_call",
            "call_id": call.call_id,
            "name": call.name,
            "arguments": call.arguments,
        },
        {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny"},
    ]
    final = oai.responses.create(model=GPT, input=follow_up, tools=RESPONSE_TOOLS)
    assert _function_calls(final) == [] and QUESTION in final.output_text


def test_responses_named_tool_choice_calls_that_tool(oai: openai.OpenAI) -> None:
    """A Responses tool_choice naming a function calls that function."""
    response = oai.responses.create(
        model=GPT,
        input=QUESTION,
        tools=RESPONSE_TOOLS,
        tool_choice={"type": "function", "name": "get_time"},
    )
    (call,) = _function_calls(response)
    assert call.name == "get_time"
    _valid_arguments("get_time", call.arguments)


def test_responses_text_format_json_schema_is_valid_json(oai: openai.OpenAI) -> None:
    """text.format json_schema gives output_text that validates, and parse() gives the model."""
    schema = City.model_json_schema()
    raw = oai.responses.create(
        model=GPT,
        input=QUESTION,
        text={"format": {"type": "json_schema", "name": "City", "schema": schema}},
    )
    _validates(schema, json.loads(raw.output_text))
    parsed = oai.responses.parse(model=GPT, input=QUESTION, text_format=City)
    assert isinstance(parsed.output_parsed, City)


def test_responses_max_output_tokens_makes_an_incomplete_response(oai: openai.OpenAI) -> None:
    """A max_output_tokens cut is reported as status incomplete, reason max_output_tokens."""
    response = oai.responses.create(model=GPT, input=QUESTION, max_output_tokens=2)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert len(response.output_text.split()) == 2


def test_responses_stream_sends_every_event_and_matches_create(oai: openai.OpenAI) -> None:
    """responses.stream sees created … completed, with deltas that make the create() answer."""
    whole = oai.responses.create(model=GPT, input=QUESTION)
    with oai.responses.stream(model=GPT, input=QUESTION) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [event.type for event in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert len(deltas) > 1 and "".join(deltas) == whole.output_text == final.output_text


def test_responses_stream_of_a_tool_call_and_of_parsed_output(oai: openai.OpenAI) -> None:
    """A streamed function call arrives as argument deltas; streamed text_format output parses."""
    with oai.responses.stream(
        model=GPT, input=QUESTION, tools=RESPONSE_TOOLS, tool_choice="required"
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds
    (call,) = _function_calls(final)
    _valid_arguments(call.name, call.arguments)
    with oai.responses.stream(model=GPT, input=QUESTION, text_format=City) as parsed_stream:
        parsed = parsed_stream.get_final_response()
    assert isinstance(parsed.output_parsed, City)


def test_async_responses_stream(server: ModelServer) -> None:
    """The async client streams a Responses answer to completion too."""

    async def main() -> str:
        async with openai.AsyncOpenAI(
            base_url=server.openai_base_url, api_key="sk-test", max_retries=0
        ) as client:
            async with client.responses.stream(model=GPT, input=QUESTION) as stream:
                async for _ in stream:
                    pass
                return (await stream.get_final_response()).output_text

    assert QUESTION in asyncio.run(main())


# -- embeddings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "dimensions", "expected"),
    [
        ("text-embedding-3-small", None, 1536),
        ("text-embedding-3-large", None, 3072),
        ("text-embedding-ada-002", None, 1536),
        ("text-embedding-3-large", 256, 256),
    ],
)
def test_embeddings_have_the_models_dimension_or_the_one_asked_for(
    oai: openai.OpenAI, model: str, dimensions: int | None, expected: int
) -> None:
    """A vector is as wide as the dimensions parameter, else as the model's own default."""
    extra: Any = {} if dimensions is None else {"dimensions": dimensions}
    first = oai.embeddings.create(model=model, input=["a b", "c"], **extra)
    again = oai.embeddings.create(model=model, input="a b", **extra)
    assert [len(item.embedding) for item in first.data] == [expected, expected]
    assert first.data[0].embedding == again.data[0].embedding


# -- Anthropic messages --------------------------------------------------------------------------

ANTHROPIC_TOOLS: Any = [
    {"name": name, "description": f"{name} tool", "input_schema": schema}
    for name, schema in SCHEMAS.items()
]


def _tool_use(message: Message) -> ToolUseBlock:
    (block,) = message.content
    assert isinstance(block, ToolUseBlock)
    return block


@pytest.mark.parametrize(
    ("tool_choice", "name"),
    [({"type": "any"}, "get_weather"), ({"type": "tool", "name": "get_time"}, "get_time")],
)
def test_anthropic_tool_choice_gives_tool_use_with_schema_valid_input(
    claude: anthropic.Anthropic, tool_choice: Any, name: str
) -> None:
    """tool_choice any or a named tool gives a tool_use block whose input fits its input_schema."""
    message = claude.messages.create(
        model=CLAUDE,
        max_tokens=100,
        messages=_user(),
        tools=ANTHROPIC_TOOLS,
        tool_choice=tool_choice,
    )
    block = _tool_use(message)
    assert message.stop_reason == "tool_use" and block.id.startswith("toolu_")
    assert block.name == name
    _validates(SCHEMAS[name], block.input)


def test_anthropic_auto_tool_use_then_final_answer_after_tool_result(
    claude: anthropic.Anthropic,
) -> None:
    """With tools on auto, Claude's first turn is tool_use; after the tool_result, text."""
    first = claude.messages.create(
        model=CLAUDE, max_tokens=100, messages=_user(), tools=ANTHROPIC_TOOLS
    )
    block = _tool_use(first)
    follow_up: Any = [
        *_user(),
        {"role": "assistant", "content": [block.model_dump()]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "Sunny"}],
        },
    ]
    final = claude.messages.create(
        model=CLAUDE, max_tokens=100, messages=follow_up, tools=ANTHROPIC_TOOLS
    )
    assert final.stop_reason == "end_turn"
    assert isinstance(final.content[0], TextBlock) and QUESTION in final.content[0].text


def test_anthropic_streamed_tool_use_matches_the_json_answer(claude: anthropic.Anthropic) -> None:
    """A streamed tool_use sends input_json deltas that the SDK assembles into the same input."""
    kwargs: Any = {
        "model": CLAUDE,
        "max_tokens": 100,
        "messages": _user(),
        "tools": ANTHROPIC_TOOLS,
        "tool_choice": {"type": "any"},
    }
    whole = _tool_use(claude.messages.create(**kwargs))
    with claude.messages.stream(**kwargs) as stream:
        kinds = [event.type for event in stream]
        streamed = _tool_use(stream.get_final_message())
    assert "input_json" in kinds
    assert (streamed.id, streamed.name, streamed.input) == (whole.id, whole.name, whole.input)


def test_anthropic_parse_with_an_output_format_gives_the_model(claude: anthropic.Anthropic) -> None:
    """messages.parse(output_format=Model) gets JSON for the schema, parsed into the model."""
    message = claude.messages.parse(
        model=CLAUDE, max_tokens=100, messages=_user(), output_format=City
    )
    assert isinstance(message.parsed_output, City)


def test_anthropic_count_tokens_counts_what_messages_reports(claude: anthropic.Anthropic) -> None:
    """messages.count_tokens gives the input tokens that messages.create then reports."""
    counted = claude.messages.count_tokens(model=CLAUDE, messages=_user(), system="Be brief")
    message = claude.messages.create(
        model=CLAUDE, max_tokens=100, messages=_user(), system="Be brief"
    )
    assert counted.input_tokens == message.usage.input_tokens == len(QUESTION.split()) + 2


# -- determinism ---------------------------------------------------------------------------------


def test_tool_calls_and_structured_answers_are_the_same_from_any_server() -> None:
    """Two servers answer the same tool and schema requests identically, ids of calls included."""
    answers = []
    for _ in range(2):
        with (
            ModelServer() as fresh,
            openai.OpenAI(
                base_url=fresh.openai_base_url, api_key="sk-test", max_retries=0
            ) as client,
        ):
            call = _only_call(
                client.chat.completions.create(
                    model=GPT, messages=_user(), tools=CHAT_TOOLS, tool_choice="required"
                )
            )
            parsed = client.chat.completions.parse(
                model=GPT, messages=_user(), response_format=City
            )
            answers.append((call.id, call.function.arguments, parsed.choices[0].message.content))
    assert answers[0] == answers[1]


# -- agent frameworks, end to end ----------------------------------------------------------------


@pytest.fixture
def no_tracing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Framework tracing would export to the vendors' services; these tests stay on 127.0.0.1."""
    monkeypatch.setenv("OPENAI_AGENTS_DISABLE_TRACING", "1")
    for name in ("LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2", "LANGSMITH_API_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("structured", [False, True], ids=["text", "output-model"])
def test_pydantic_ai_agent_with_a_tool_runs_to_its_final_output(
    server: ModelServer, structured: bool
) -> None:
    """A pydantic-ai agent calls its tool, then ends with text, or with its output model."""
    pytest.importorskip("pydantic_ai")
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    cities: list[str] = []

    def weather(city: str) -> str:
        """The weather in a city."""
        cities.append(city)
        return f"Sunny in {city}"

    async def main() -> Any:
        # Our own client, closed here; run_sync would leave an event loop open behind it.
        async with openai.AsyncOpenAI(
            base_url=server.openai_base_url, api_key="sk-test", max_retries=0
        ) as client:
            model = OpenAIChatModel(GPT, provider=OpenAIProvider(openai_client=client))
            agent: Agent[None, Any] = Agent(
                model, output_type=City if structured else str, tools=[weather]
            )
            return (await agent.run(QUESTION)).output

    output = asyncio.run(main())
    assert len(cities) == 1
    if structured:
        assert isinstance(output, City)
    else:
        assert isinstance(output, str) and QUESTION in output


@pytest.mark.parametrize("api", ["responses", "chat"])
@pytest.mark.parametrize("stream", [False, True], ids=["run", "run_streamed"])
def test_openai_agents_agent_with_a_tool_runs_to_its_final_output(
    server: ModelServer, no_tracing: None, api: str, stream: bool
) -> None:
    """An openai-agents agent (Responses or chat model, streamed or not) uses its tool, then ends
    with its structured final output."""
    pytest.importorskip("agents")
    from agents import (
        Agent,
        OpenAIChatCompletionsModel,
        OpenAIResponsesModel,
        RunConfig,
        Runner,
        function_tool,
    )

    cities: list[str] = []

    @function_tool
    def weather(city: str) -> str:
        """The weather in a city."""
        cities.append(city)
        return f"Sunny in {city}"

    async def main() -> Any:
        async with openai.AsyncOpenAI(
            base_url=server.openai_base_url, api_key="sk-test", max_retries=0
        ) as client:
            model = (
                OpenAIResponsesModel(GPT, openai_client=client)
                if api == "responses"
                else OpenAIChatCompletionsModel(GPT, openai_client=client)
            )
            agent = Agent(
                name="weather",
                instructions="Answer",
                tools=[weather],
                model=model,
                output_type=City,
            )
            config = RunConfig(tracing_disabled=True)
            if not stream:
                return (await Runner.run(agent, QUESTION, run_config=config)).final_output
            streamed = Runner.run_streamed(agent, QUESTION, run_config=config)
            async for _ in streamed.stream_events():
                pass
            return streamed.final_output

    assert isinstance(asyncio.run(main()), City)
    assert len(cities) == 1
    path = "/v1/responses" if api == "responses" else "/v1/chat/completions"
    assert [request.path for request in server.requests] == [path, path]


def test_langchain_agent_with_a_tool_runs_to_its_final_answer(
    server: ModelServer, no_tracing: None
) -> None:
    """A langchain create_agent (langgraph underneath) calls its tool, then answers."""
    pytest.importorskip("langchain_openai")
    agents = pytest.importorskip("langchain.agents")
    from langchain_core.messages import AIMessage, ToolMessage
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    @tool
    def weather(city: str) -> str:
        """The weather in a city."""
        return f"Sunny in {city}"

    # A client of the test's own: langchain-openai's default one lives in a process-wide
    # cache, and its socket would outlive the test (a ResourceWarning at the session's end).
    with httpx.Client() as http:
        llm = ChatOpenAI(
            model=GPT,
            base_url=server.openai_base_url,
            api_key="sk-test",
            max_retries=0,
            http_client=http,
        )
        agent = agents.create_agent(llm, [weather])
        messages = agent.invoke({"messages": [("user", QUESTION)]})["messages"]
    assert [type(message).__name__ for message in messages[1:]] == [
        "AIMessage",
        "ToolMessage",
        "AIMessage",
    ]
    assert isinstance(messages[2], ToolMessage) and messages[2].content.startswith("Sunny in ")
    assert isinstance(messages[-1], AIMessage) and QUESTION in str(messages[-1].content)


@pytest.mark.parametrize(
    ("method", "responses_api"),
    [("json_schema", False), ("function_calling", False), ("json_schema", True)],
)
def test_langchain_structured_output_parses_into_the_model(
    server: ModelServer, no_tracing: None, method: str, responses_api: bool
) -> None:
    """ChatOpenAI.with_structured_output gives the model, by JSON schema or by tool, chat or
    Responses API."""
    pytest.importorskip("langchain_openai")
    from langchain_openai import ChatOpenAI

    with httpx.Client() as http:  # not langchain-openai's cached default client (see above)
        llm = ChatOpenAI(
            model=GPT,
            base_url=server.openai_base_url,
            api_key="sk-test",
            max_retries=0,
            use_responses_api=responses_api,
            http_client=http,
        )
        answer = llm.with_structured_output(City, method=method).invoke(QUESTION)
    assert isinstance(answer, City)


# -- replay with use_test_models -----------------------------------------------------------------


@workbench.pipeline
async def pydantic_ai_weather(question: str, *, base_url: str) -> str:
    """A pydantic-ai agent with one tool (module level, so replay can import it)."""
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    def weather(city: str) -> str:
        """The weather in a city."""
        return f"Sunny in {city}"

    async with openai.AsyncOpenAI(base_url=base_url, api_key="sk-test", max_retries=0) as client:
        model = OpenAIChatModel(GPT, provider=OpenAIProvider(openai_client=client))
        agent: Agent[None, City] = Agent(model, output_type=City, tools=[weather])
        return (await agent.run(question)).output.model_dump_json()


@workbench.pipeline
async def openai_agents_weather(question: str, *, base_url: str) -> str:
    """An openai-agents agent with one tool on the Responses API (module level, for replay)."""
    from agents import Agent, OpenAIResponsesModel, RunConfig, Runner, function_tool

    @function_tool
    def weather(city: str) -> str:
        """The weather in a city."""
        return f"Sunny in {city}"

    async with openai.AsyncOpenAI(base_url=base_url, api_key="sk-test", max_retries=0) as client:
        agent = Agent(
            name="weather",
            instructions="Answer",
            tools=[weather],
            model=OpenAIResponsesModel(GPT, openai_client=client),
        )
        result = await Runner.run(agent, question, run_config=RunConfig(tracing_disabled=True))
        return str(result.final_output)


@pytest.mark.parametrize(
    ("pipeline", "framework"),
    [(pydantic_ai_weather, "pydantic_ai"), (openai_agents_weather, "agents")],
    ids=["pydantic-ai", "openai-agents"],
)
def test_use_test_models_replays_an_agent_pipeline_to_the_same_output(
    store: Store, no_tracing: None, pipeline: Any, framework: str
) -> None:
    """An agent run recorded against a server now stopped replays on the test model, tool round
    included, to the output it had."""
    pytest.importorskip(framework)
    with ModelServer() as recorded_against:
        with workbench.record("weather", inputs={}, store=store) as run:
            output = asyncio.run(pipeline(QUESTION, base_url=recorded_against.openai_base_url))
    replay = RequestReplay(store)
    result = asyncio.run(replay.areplay_execution(run.id, modifications={"use_test_models": True}))
    assert result.status == "completed", result
    assert result.output == output
    assert len(result.model_calls) == 2 and all(c.status_code == 200 for c in result.model_calls)
