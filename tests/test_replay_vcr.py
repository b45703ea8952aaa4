"""Recorded calls served through vcrpy's stubs over a WorkbenchCassette (real SDKs, no network)."""

from __future__ import annotations

import openai
import pytest
import vcr.errors

import workbench
from workbench.debugging import RequestReplay
from workbench.examples.research_assistant import research
from workbench.exceptions import ConfigError, ExecutionNotFoundError, ReplayMismatchError
from workbench.replay import vcr_cassette
from workbench.store import Store
from workbench.testing import ModelServer

KEY = "sk-test-vcr-0123456789abcdef"


def _recorded_research(store: Store) -> str:
    """The example recorded against a private server that is then stopped."""
    with ModelServer() as server, workbench.record("research", inputs={}, store=store) as run:
        research(
            "prompt caching",
            openai_base_url=server.openai_base_url,
            anthropic_base_url=server.anthropic_base_url,
        )
    return run.id


def _ask(client: openai.OpenAI, question: str) -> str:
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": question}]
    )
    return reply.choices[0].message.content or ""


def test_replay_through_vcrpy_stubs_completes_offline_with_the_recorded_output(
    store: Store,
) -> None:
    """stubs='vcrpy' replays the example with the server stopped and the same output."""
    original_id = _recorded_research(store)
    original = store.get_execution(original_id)
    result = RequestReplay(store).replay_execution(original_id, modifications={"stubs": "vcrpy"})
    assert result.status == "completed" and result.output == original.outputs
    assert result.mismatches == [] and result.unused == []
    assert [c.text for c in result.model_calls] == [c.text for c in original.model_calls]
    assert [c.input_tokens for c in result.model_calls] == [
        c.input_tokens for c in original.model_calls
    ]


def test_vcrpy_stubs_hand_a_stream_over_in_one_piece(store: Store) -> None:
    """Under vcrpy's stubs a streamed call arrives as one chunk: vcrpy served it, not us."""
    original_id = _recorded_research(store)
    recorded = next(c for c in store.get_execution(original_id).model_calls if c.streamed)
    result = RequestReplay(store).replay_execution(original_id, modifications={"stubs": "vcrpy"})
    replayed = next(c for c in result.model_calls if c.streamed)
    assert len(recorded.chunks) > 2 and len(replayed.chunks) == 1
    assert replayed.body == recorded.body and replayed.text == recorded.text


def test_changed_prompt_under_vcrpy_stubs_is_a_replay_mismatch(store: Store) -> None:
    """A request the recording cannot answer fails as any replay miss does, naming the step."""
    original_id = _recorded_research(store)
    with pytest.raises(ReplayMismatchError, match="in step 'outline'"):
        RequestReplay(store).replay_execution(
            original_id,
            modifications={"stubs": "vcrpy", "inputs": {"topic": "latency budgets"}},
        )


def test_live_cassette_plays_what_it_has_and_lets_the_rest_through(
    store: Store, model_server: ModelServer
) -> None:
    """live=True plays recorded answers and sends only the unrecorded request to the network."""
    sent = model_server.request_count
    with workbench.record("asker", inputs={}, store=store) as run:
        with openai.OpenAI(
            base_url=model_server.openai_base_url, api_key=KEY, max_retries=0
        ) as client:
            _ask(client, "a question nobody recorded")
    assert model_server.request_count == sent + 1
    with vcr_cassette(store, run.id, live=True) as cassette:
        with openai.OpenAI(
            base_url=model_server.openai_base_url, api_key=KEY, max_retries=0
        ) as client:
            _ask(client, "a question nobody recorded")  # recorded: played
            _ask(client, "and another one")  # not recorded: sent
    assert [r.call_id for r in cassette.played] == [run.execution().model_calls[0].id]
    assert model_server.request_count == sent + 2


def test_standalone_cassette_answers_identical_requests_in_recorded_order(store: Store) -> None:
    """Outside a replay, vcr_cassette gives the n-th identical request the n-th recorded answer."""
    with ModelServer() as server:
        with workbench.record("twice", inputs={}, store=store) as run:
            with openai.OpenAI(base_url=server.openai_base_url, api_key=KEY, max_retries=0) as c:
                first, second = _ask(c, "same question"), _ask(c, "same question")
        base_url = server.openai_base_url
    calls = run.execution().model_calls
    with vcr_cassette(store, run.id) as cassette:
        with openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0) as client:
            answers = [_ask(client, "same question"), _ask(client, "same question")]
    assert answers == [first, second]
    assert [r.call_id for r in cassette.played] == [calls[0].id, calls[1].id]
    assert len(cassette) == 2


def test_standalone_cassette_refuses_an_unrecorded_request_the_vcrpy_way(store: Store) -> None:
    """A request with no recorded answer raises vcrpy's own error; nothing reaches the network."""
    with ModelServer() as server:
        with workbench.record("once", inputs={}, store=store) as run:
            with openai.OpenAI(base_url=server.openai_base_url, api_key=KEY, max_retries=0) as c:
                _ask(c, "recorded question")
        base_url = server.openai_base_url
    with vcr_cassette(store, run.id):
        with openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0) as client:
            with pytest.raises(vcr.errors.CannotOverwriteExistingCassetteException):
                _ask(client, "unrecorded question")


def test_unknown_execution_for_a_cassette_is_not_found(store: Store) -> None:
    """vcr_cassette names an unknown execution id before patching anything."""
    with pytest.raises(ExecutionNotFoundError):
        with vcr_cassette(store, "exec_missing"):
            pass


@pytest.mark.parametrize(
    ("modifications", "message"),
    [
        ({"stubs": "betamax"}, "must be one of 'workbench', 'vcrpy'"),
        ({"stubs": "vcrpy", "realtime": True}, "do not go together"),
    ],
)
def test_bad_stubs_modification_is_a_config_error(
    store: Store, modifications: dict[str, object], message: str
) -> None:
    """An unknown stubs value, or vcrpy with realtime, is refused before anything runs."""
    original_id = _recorded_research(store)
    with pytest.raises(ConfigError, match=message):
        RequestReplay(store).replay_execution(original_id, modifications=modifications)
    assert store.list_executions(replay_of=original_id) == []
