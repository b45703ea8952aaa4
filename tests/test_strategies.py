"""workbench.strategies: what they draw is accepted by the real SDKs and drives recorded
pipelines through replay against the test model."""

from __future__ import annotations

import inspect
from typing import Any, Literal

import anthropic
import openai
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import workbench
from workbench import strategies as wst
from workbench.debugging import RequestReplay
from workbench.exceptions import ConfigError
from workbench.testing import ModelServer, fresh_store

FEW = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FEW
@given(conversation=wst.chat_messages())
def test_conversations_round_trip_through_the_openai_api(
    conversation: list[dict[str, str]], model_server: ModelServer
) -> None:
    """The server receives exactly the drawn messages and answers them."""
    client = openai.OpenAI(base_url=model_server.openai_base_url, api_key="sk-t", max_retries=0)
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=conversation)  # type: ignore[arg-type]
    assert reply.choices[0].message.content
    assert model_server.requests[-1].body["messages"] == conversation
    assert conversation[-1]["role"] == "user"
    roles = [m["role"] for m in conversation if m["role"] != "system"]
    assert roles == ["user", "assistant"] * (len(roles) // 2) + ["user"]


@FEW
@given(request=wst.openai_chat_request())
def test_openai_requests_are_accepted_streamed_or_not(
    request: dict[str, Any], model_server: ModelServer
) -> None:
    """Drawn keyword arguments work with chat.completions.create, streamed or not."""
    client = openai.OpenAI(base_url=model_server.openai_base_url, api_key="sk-t", max_retries=0)
    response = client.chat.completions.create(**request)
    if request["stream"]:
        assert list(response)
    else:
        assert response.choices


@FEW
@given(request=wst.anthropic_request())
def test_anthropic_requests_are_accepted(
    request: dict[str, Any], model_server: ModelServer
) -> None:
    """Drawn keyword arguments work with messages.create: system apart, max_tokens given."""
    client = anthropic.Anthropic(
        base_url=model_server.anthropic_base_url, api_key="sk-ant-t", max_retries=0
    )
    response = client.messages.create(**request)
    if request["stream"]:
        assert list(response)
    else:
        assert response.content
    assert all(m["role"] != "system" for m in request["messages"])


def entrypoint(
    topic: str, words: int, tags: list[str], tone: Literal["dry", "warm"] = "dry"
) -> str:
    return topic


@settings(max_examples=50, deadline=None)
@given(inputs=wst.pipeline_inputs(entrypoint))
def test_inputs_from_a_signature_bind_and_are_json(inputs: dict[str, Any]) -> None:
    """Inputs drawn from annotations bind to the signature, have the annotated types, and
    survive JSON (no lone surrogates in text)."""
    inspect.signature(entrypoint).bind(**inputs)
    assert isinstance(inputs["topic"], str) and inputs["topic"].strip()
    assert isinstance(inputs["words"], int) and not isinstance(inputs["words"], bool)
    assert all(isinstance(tag, str) for tag in inputs["tags"])
    assert inputs.get("tone", "dry") in ("dry", "warm")
    assert orjson.loads(orjson.dumps(inputs)) == inputs


@settings(max_examples=30, deadline=None)
@given(inputs=wst.pipeline_inputs({"question": "why?", "limit": 3, "opts": {"deep": True}}))
def test_inputs_shaped_like_recorded_ones(inputs: dict[str, Any]) -> None:
    """Inputs drawn from recorded ones keep their keys and their values' types."""
    assert set(inputs) == {"question", "limit", "opts"}
    assert isinstance(inputs["question"], str) and isinstance(inputs["limit"], int)
    assert isinstance(inputs["opts"]["deep"], bool)


def test_overrides_and_bad_sources_are_checked() -> None:
    """An override must name an input, and the source must be a function, execution or mapping."""

    @settings(max_examples=5)
    @given(inputs=wst.pipeline_inputs(entrypoint, words=st.just(7)))
    def overridden(inputs: dict[str, Any]) -> None:
        assert inputs["words"] == 7

    overridden()
    with pytest.raises(ConfigError, match=r"'colour' not parameters of entrypoint"):
        wst.pipeline_inputs(entrypoint, colour=st.just("red"))
    with pytest.raises(ConfigError, match=r"'colour' not among the inputs"):
        wst.pipeline_inputs({"topic": "x"}, colour=st.just("red"))
    with pytest.raises(ConfigError, match=r"takes an entrypoint function, a recorded Execution"):
        wst.pipeline_inputs(42)  # type: ignore[arg-type]


@workbench.pipeline
def summarise(text: str, *, base_url: str, words: int = 20) -> str:
    """A recorded pipeline: one model call."""
    client = openai.OpenAI(base_url=base_url, api_key="sk-t", max_retries=0)
    reply = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": f"Summarise in {words} words: {text}"}],
    )
    return reply.choices[0].message.content or ""


def test_drawn_inputs_drive_a_recorded_pipeline_through_replay(model_server: ModelServer) -> None:
    """A property test replays a recorded pipeline with drawn inputs; calls the recording has no
    answer for go to the test model, and every replay completes with a text output."""
    with fresh_store() as store:
        with workbench.record("summarise", inputs={}, store=store):
            summarise("llamas are camelids", base_url=model_server.openai_base_url)
        (recorded_id,) = [e.id for e in store.list_executions()]
        recorded = store.get_execution(recorded_id)
        replay = RequestReplay(store)

        @settings(max_examples=4, deadline=None)
        @given(inputs=wst.pipeline_inputs(recorded, base_url=st.just(model_server.openai_base_url)))
        def replays(inputs: dict[str, Any]) -> None:
            result = replay.replay_execution(
                recorded_id, modifications={"inputs": inputs}, on_miss="test-model"
            )
            assert result.status == "completed" and isinstance(result.output, str)

        replays()
