"""Replay: recorded executions re-run with model calls answered from the store (real SDKs)."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import sqlite3
import time
from typing import Any

import aiohttp
import openai
import pytest
import requests

import workbench
from workbench.debugging import RequestReplay
from workbench.examples.research_assistant import research
from workbench.exceptions import (
    ConfigError,
    DamagedRecordingError,
    ExecutionNotFoundError,
    ReplayError,
    ReplayMismatchError,
)
from workbench.replay import ReplayResult
from workbench.store import Store
from workbench.testing import ModelServer

KEY = "sk-test-replay-0123456789abcdef"
log = logging.getLogger("test_replay")


def _record_research(store: Store, server: ModelServer, topic: str = "prompt caching") -> str:
    with workbench.record("research_assistant", inputs={}, store=store) as run:
        research(
            topic,
            openai_base_url=server.openai_base_url,
            anthropic_base_url=server.anthropic_base_url,
        )
    return run.id


def _recorded_offline(store: Store, **server_options: Any) -> str:
    """Record the example against a private server, then stop it: nothing answers any more."""
    with ModelServer(**server_options) as server:
        execution_id = _record_research(store, server)
    return execution_id


@workbench.pipeline
def ask(question: str, *, base_url: str) -> str:
    """A one-call pipeline for the tests below (module level, so replay can import it)."""
    log.debug("asking %s", question)
    with openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0) as client:
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": question}]
        )
    return reply.choices[0].message.content or ""


@workbench.pipeline
async def ask_async(question: str, *, base_url: str) -> str:
    """``ask`` with the async SDK client, streamed."""
    parts = []
    async with openai.AsyncOpenAI(base_url=base_url, api_key=KEY, max_retries=0) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": question}]
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
    return "".join(parts)


@workbench.pipeline
def ask_requests(question: str, *, base_url: str) -> str:
    """``ask`` over ``requests``, streamed, reading the SSE lines itself."""
    with requests.Session() as session:
        response = session.post(
            f"{base_url}/chat/completions",
            json={
                "model": "gpt-4o-mini",
                "stream": True,
                "messages": [{"role": "user", "content": question}],
            },
            headers={"authorization": f"Bearer {KEY}"},
            stream=True,
        )
        with response:
            return "\n".join(line.decode() for line in response.iter_lines() if line)


@workbench.pipeline
async def ask_aiohttp(question: str, *, base_url: str) -> dict[str, Any]:
    """``ask`` over aiohttp: one JSON call and one streamed call read line by line."""
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": question}]}
    headers = {"authorization": f"Bearer {KEY}"}
    async with aiohttp.ClientSession(raise_for_status=True) as session:
        async with session.post(f"{base_url}/chat/completions", json=body, headers=headers) as r:
            reply = await r.json()
        lines = []
        async with session.post(
            f"{base_url}/chat/completions", json={**body, "stream": True}, headers=headers
        ) as r:
            async for line in r.content:
                if line.strip():
                    lines.append(line.decode().strip())
    return {"reply": reply["choices"][0]["message"]["content"], "lines": lines}


@workbench.pipeline
def ask_many(count: int, *, base_url: str) -> list[float]:
    """``count`` distinct questions over one client, each answer's ``elapsed`` read raw."""
    elapsed = []
    with openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0) as client:
        for index in range(count):
            raw = client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"Question {index}"}]
            )
            raw.parse()
            elapsed.append(raw.elapsed.total_seconds())
    return elapsed


@workbench.step("ask")
def _ask_step(client: openai.OpenAI, question: str) -> str:
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": question}]
    )
    return reply.choices[0].message.content or ""


@workbench.step("first")
def _first(client: openai.OpenAI) -> str:
    return _ask_step(client, "Same question")


@workbench.step("words")
def _words(text: str) -> Any:
    yield from text.split()


@workbench.step("second")
def _second(client: openai.OpenAI, words: list[str]) -> str:
    return _ask_step(client, "Same question") + f" ({len(words)} words)"


@workbench.pipeline
def ask_twice(*, base_url: str) -> dict[str, Any]:
    """Two steps each asking the same question in a nested 'ask' step, a generator between."""
    with openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0) as client:
        first = _first(client)
        words = list(_words(first))
        with workbench.step("tally"):
            count = len(words)
        return {"first": first, "words": words, "count": count, "second": _second(client, words)}


@workbench.step("roll")
def _roll(times: int) -> list[float]:
    return [workbench.recorder.random() for _ in range(times)]


@workbench.pipeline
def stamped(*, rolls: int = 1) -> dict[str, Any]:
    """Uses every determinism helper, in a step and outside one."""
    from workbench.recorder import now, uuid4

    return {
        "at": now().isoformat(),
        "id": str(uuid4()),
        "rolls": [_roll(rolls), _roll(rolls)],
    }


def test_replay_gives_the_same_output_and_calls_and_leaves_the_original_alone(
    any_store: Store, model_server: ModelServer
) -> None:
    """Replaying the example gives its output and call texts, with replay_of set."""
    store = any_store
    original_id = _record_research(store, model_server)
    before = store.get_execution(original_id)
    result = RequestReplay(store).replay_execution(original_id)

    assert isinstance(result, ReplayResult)
    assert result.status == "completed" and result.replay_of == original_id
    assert result.output == before.outputs
    assert [c.text for c in result.model_calls] == [c.text for c in before.model_calls]
    assert result.mismatches == [] and result.unused == []
    replayed = store.get_execution(result.execution_id)
    assert replayed.replay_of == original_id and replayed.entrypoint == before.entrypoint
    assert [e.id for e in store.list_executions(replay_of=original_id)] == [result.execution_id]
    assert store.get_execution(original_id) == before


def test_default_replay_touches_no_network(store: Store) -> None:
    """With the model server stopped, a replay still completes: every answer is recorded."""
    original_id = _recorded_offline(store)
    result = RequestReplay(store).replay_execution(original_id)
    assert result.status == "completed"
    assert result.output == store.get_execution(original_id).outputs
    assert all(c.status_code == 200 for c in result.model_calls)


def test_replayed_responses_are_freed_without_the_cyclic_collector(
    store: Store, model_server: ModelServer
) -> None:
    """A replayed httpx response (with its request, headers and stream) is freed as soon as
    the SDK drops it: no reference cycle is left for the garbage collector per call, which
    ran it every few dozen calls and made long replays slower per call; ``elapsed`` still
    reads as after a real response."""
    with workbench.record("ask_many", inputs={}, store=store) as run:
        ask_many(30, base_url=model_server.openai_base_url)
    replay = RequestReplay(store)
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        result = replay.replay_execution(run.id)
        gc.collect()
        left = [o for o in gc.garbage if type(o).__name__ in ("Response", "Request", "Headers")]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert result.status == "completed" and len(result.output) == 30
    assert all(elapsed >= 0.0 for elapsed in result.output)
    assert len(left) <= 3  # the client's own, once, when it is closed; not one per call


def test_streamed_call_replays_with_the_original_chunking(any_store: Store) -> None:
    """The streamed call's replay has the same number of chunks, each with the same bytes."""
    store = any_store
    original_id = _recorded_offline(store)
    result = RequestReplay(store).replay_execution(original_id)
    recorded = next(c for c in store.get_execution(original_id).model_calls if c.streamed)
    replayed = next(c for c in result.model_calls if c.streamed)
    assert len(recorded.chunks) > 2
    assert [c.data for c in replayed.chunks] == [c.data for c in recorded.chunks]


def test_realtime_replay_reproduces_the_stream_timing(store: Store) -> None:
    """With realtime, a replay takes at least as long as the recorded stream did."""
    original_id = _recorded_offline(store, chunk_delay_s=0.02)
    streamed = next(c for c in store.get_execution(original_id).model_calls if c.streamed)
    duration = streamed.chunks[-1].offset_s
    assert duration > 0.1
    started = time.perf_counter()
    result = RequestReplay(store).replay_execution(original_id, modifications={"realtime": True})
    assert time.perf_counter() - started >= duration
    assert result.status == "completed"


def test_changed_prompt_raises_a_mismatch_with_the_nearest_request_and_a_diff(
    store: Store,
) -> None:
    """A request with no recorded answer fails the replay, naming step, nearest and diff."""
    original_id = _recorded_offline(store)
    before = store.get_execution(original_id)
    with pytest.raises(ReplayMismatchError) as caught:
        RequestReplay(store).replay_execution(
            original_id, modifications={"inputs": {"topic": "latency budgets"}}
        )
    message = str(caught.value)
    assert "in step 'outline'" in message and "POST /v1/chat/completions" in message
    assert "nearest recorded request: POST /v1/chat/completions model=gpt-4o-mini" in message
    lines = [line.strip() for line in message.splitlines()]
    assert any(re.match(r'-\s+"content": "Outline a report on prompt caching', x) for x in lines)
    assert any(re.match(r'\+\s+"content": "Outline a report on latency budgets', x) for x in lines)
    replay = store.get_execution(caught.value.execution_id)
    assert replay.status == "failed" and replay.replay_of == original_id
    assert replay.error is not None and replay.error.type.endswith("ReplayMismatchError")
    assert caught.value.mismatches[0].step_id == "outline"
    assert store.get_execution(original_id) == before


def test_on_miss_live_sends_and_records_the_new_call_and_reports_unused_ones(
    any_store: Store, model_server: ModelServer
) -> None:
    """on_miss='live' sends what missed, records it, and lists the recorded calls not asked for."""
    store = any_store
    original_id = _record_research(store, model_server)
    sent_before = model_server.request_count
    result = RequestReplay(store).replay_execution(
        original_id, modifications={"inputs": {"topic": "latency budgets"}}, on_miss="live"
    )
    assert result.status == "completed" and result.output["topic"] == "latency budgets"
    assert model_server.request_count - sent_before == 3
    assert [m.answered_by for m in result.mismatches] == ["live"] * 3
    assert [c.step_id for c in result.model_calls] == ["outline", "draft", "critique"]
    assert all(c.status_code == 200 for c in result.model_calls)
    assert [c.step_id for c in result.unused] == ["outline", "draft", "critique"]


def test_on_miss_test_model_answers_with_the_server_stopped(store: Store) -> None:
    """on_miss='test-model' answers misses from the built-in test model, not the network."""
    original_id = _recorded_offline(store)
    result = RequestReplay(store).replay_execution(
        original_id, modifications={"inputs": {"topic": "latency budgets"}}, on_miss="test-model"
    )
    assert result.status == "completed" and result.output["draft"]
    assert [m.answered_by for m in result.mismatches] == ["test-model"] * 3
    assert all(c.status_code == 200 for c in result.model_calls)


def test_use_test_models_sends_every_call_to_the_test_model(store: Store) -> None:
    """use_test_models answers every call from the test model; the recording is not used."""
    original_id = _recorded_offline(store)
    result = RequestReplay(store).replay_execution(
        original_id, modifications={"use_test_models": True}
    )
    assert result.status == "completed" and result.mismatches == [] and result.unused == []
    assert len(result.model_calls) == 3 and all(c.status_code == 200 for c in result.model_calls)


def test_step_outputs_skip_the_step_and_use_the_value(store: Store) -> None:
    """A step named in step_outputs does not run; its value is used, its call goes unused."""
    original_id = _recorded_offline(store)
    result = RequestReplay(store).replay_execution(
        original_id, modifications={"step_outputs": {"critique": "Looks fine."}}
    )
    assert result.output["critique"] == "Looks fine."
    assert [c.step_id for c in result.model_calls] == ["outline", "draft"]
    assert [c.step_id for c in result.unused] == ["critique"]
    critique = next(
        s for s in store.get_execution(result.execution_id).steps if s.step_id == "critique"
    )
    assert critique.result == "Looks fine."


def test_log_level_applies_inside_the_replay_only(store: Store, model_server: ModelServer) -> None:
    """log_level DEBUG records the entrypoint's debug logs, and the level is restored after."""
    with workbench.record("ask", inputs={}, store=store) as run:
        ask("Tell me about llamas", base_url=model_server.openai_base_url)
    root = logging.getLogger()
    level = root.level
    result = RequestReplay(store).replay_execution(run.id, modifications={"log_level": "DEBUG"})
    assert root.level == level
    logs = store.get_execution(result.execution_id).logs
    assert any(r.message == "asking Tell me about llamas" for r in logs)
    assert not any(r.message.startswith("asking") for r in store.get_execution(run.id).logs)


def test_async_entrypoint_replays_with_areplay_execution(store: Store) -> None:
    """An async pipeline with a streamed async SDK call replays offline with the same answer."""
    with ModelServer() as server:
        with workbench.record("ask", inputs={}, store=store) as run:
            answer = asyncio.run(ask_async("Hi", base_url=server.openai_base_url))
    result = asyncio.run(RequestReplay(store).areplay_execution(run.id))
    assert result.status == "completed" and result.output == answer


def test_replayed_stream_is_recorded_once_though_the_sdk_drains_it_again(store: Store) -> None:
    """The async SDK drains a stream again after [DONE]; the replay records its chunks once."""
    with ModelServer() as server:
        with workbench.record("ask", inputs={}, store=store) as run:
            asyncio.run(ask_async("Hi", base_url=server.openai_base_url))
    (recorded,) = run.execution().model_calls
    result = asyncio.run(RequestReplay(store).areplay_execution(run.id))
    (replayed,) = result.model_calls
    assert [c.data for c in replayed.chunks] == [c.data for c in recorded.chunks]
    assert replayed.text == recorded.text


def test_requests_calls_replay_offline(store: Store) -> None:
    """A pipeline using requests (streamed) replays with the server stopped, same lines."""
    with ModelServer() as server:
        with workbench.record("ask", inputs={}, store=store) as run:
            answer = ask_requests("Hi", base_url=server.openai_base_url)
    result = RequestReplay(store).replay_execution(run.id)
    assert result.status == "completed" and result.output == answer and "[DONE]" in answer


def test_aiohttp_calls_replay_offline(store: Store) -> None:
    """An aiohttp pipeline (JSON and streamed) replays with the server stopped, same output."""
    with ModelServer() as server:
        with workbench.record("ask", inputs={}, store=store) as run:
            answer = asyncio.run(ask_aiohttp("Hi", base_url=server.openai_base_url))
    result = asyncio.run(RequestReplay(store).areplay_execution(run.id))
    assert result.status == "completed" and result.output == answer
    assert answer["lines"][-1] == "data: [DONE]" and result.mismatches == []
    recorded = store.get_execution(run.id).model_calls
    assert [c.text for c in result.model_calls] == [c.text for c in recorded]


def test_aiohttp_realtime_replay_reproduces_the_stream_timing(store: Store) -> None:
    """With realtime, an aiohttp replay takes at least as long as the recorded stream did."""
    with ModelServer(chunk_delay_s=0.02) as server:
        with workbench.record("ask", inputs={}, store=store) as run:
            answer = asyncio.run(ask_aiohttp("Hi", base_url=server.openai_base_url))
    streamed = next(c for c in store.get_execution(run.id).model_calls if c.streamed)
    started = time.perf_counter()
    result = asyncio.run(
        RequestReplay(store).areplay_execution(run.id, modifications={"realtime": True})
    )
    assert time.perf_counter() - started >= streamed.chunks[-1].offset_s > 0.1
    assert result.output == answer


def test_aiohttp_miss_under_on_miss_error_raises_without_touching_the_network(
    store: Store,
) -> None:
    """A changed aiohttp request is refused (no network) and fails with ReplayMismatchError."""
    with ModelServer() as server:
        with workbench.record("ask", inputs={}, store=store) as run:
            asyncio.run(ask_aiohttp("Hi", base_url=server.openai_base_url))
        sent = server.request_count
        with pytest.raises(ReplayMismatchError, match="Hi there"):
            asyncio.run(
                RequestReplay(store).areplay_execution(
                    run.id, modifications={"inputs": {"question": "Hi there"}}
                )
            )
        assert server.request_count == sent


def test_unknown_execution_is_not_found(store: Store) -> None:
    """An unknown id raises ExecutionNotFoundError."""
    with pytest.raises(ExecutionNotFoundError):
        RequestReplay(store).replay_execution("exec_nope")


def test_running_execution_cannot_be_replayed(store: Store) -> None:
    """An execution still running raises ReplayError."""
    with workbench.record("p", inputs={}, store=store, entrypoint="test_replay:ask") as run:
        store.flush()
        with pytest.raises(ReplayError, match="still running"):
            RequestReplay(store).replay_execution(run.id)


def test_execution_without_entrypoint_says_how_to_make_it_replayable(store: Store) -> None:
    """No recorded entrypoint: ReplayError naming @workbench.pipeline."""
    with workbench.record("p", inputs={}, store=store) as run:
        pass
    with pytest.raises(ReplayError, match=r"@workbench\.pipeline"):
        RequestReplay(store).replay_execution(run.id)


@pytest.mark.parametrize("entrypoint", ["no_such_module_xyz:main", "test_replay:gone"])
def test_entrypoint_that_no_longer_imports_is_named(store: Store, entrypoint: str) -> None:
    """An entrypoint that cannot be imported: ReplayError naming its import path."""
    with workbench.record("p", inputs={}, store=store, entrypoint=entrypoint) as run:
        pass
    with pytest.raises(ReplayError, match=entrypoint):
        RequestReplay(store).replay_execution(run.id)


def test_bad_on_miss_and_modifications_list_the_allowed_values(store: Store) -> None:
    """Unknown on_miss, unknown modification keys and wrong types raise ConfigError."""
    replay = RequestReplay(store)
    with pytest.raises(ConfigError, match="'error', 'live', 'test-model'"):
        replay.replay_execution("exec_x", on_miss="ignore")
    with pytest.raises(ConfigError, match="inputs, log_level, model, prompt_overrides, realtime"):
        replay.replay_execution("exec_x", modifications={"temperature": 0})
    with pytest.raises(ConfigError, match="must be a bool"):
        replay.replay_execution("exec_x", modifications={"realtime": "yes"})
    with pytest.raises(ConfigError, match="not a logging level"):
        replay.replay_execution("exec_x", modifications={"log_level": "LOUD"})


def test_inputs_override_of_an_unknown_parameter_is_a_config_error(
    store: Store, model_server: ModelServer
) -> None:
    """Overriding an input the entrypoint does not take names its parameters."""
    original_id = _record_research(store, model_server)
    with pytest.raises(ConfigError, match="openai_base_url"):
        RequestReplay(store).replay_execution(
            original_id, modifications={"inputs": {"subject": "x"}}
        )


def test_entrypoint_that_now_raises_is_a_replay_error(
    store: Store, model_server: ModelServer
) -> None:
    """A replay that fails where the original completed raises ReplayError with the replay id."""
    original_id = _record_research(store, model_server)
    with pytest.raises(ReplayError, match="where the original completed"):
        RequestReplay(store).replay_execution(original_id, modifications={"inputs": {"topic": 42}})


def _edit_store(store: Store, sql: str, *params: Any) -> None:
    """Change the store file behind the store's back, as a partial restore or a bad edit would."""
    store.flush()
    with sqlite3.connect(store.path) as conn:
        assert conn.execute(sql, params).rowcount == 1
    conn.close()


def _call_id(store: Store, execution_id: str, step_id: str) -> str:
    return next(c.id for c in store.get_execution(execution_id).model_calls if c.step_id == step_id)


def test_missing_response_body_is_a_damaged_recording_error(store: Store) -> None:
    """A recorded response whose body blob is gone: DamagedRecordingError naming the execution,
    the call and the fix, before anything runs; nothing is recorded, the original is intact."""
    original_id = _recorded_offline(store)
    call_id = _call_id(store, original_id, "critique")
    _edit_store(
        store,
        "DELETE FROM blobs WHERE hash = (SELECT body_hash FROM model_calls WHERE id = ?)",
        call_id,
    )
    before = store.get_execution(original_id)
    with pytest.raises(DamagedRecordingError) as caught:
        RequestReplay(store).replay_execution(original_id)
    message = str(caught.value)
    assert f"execution {original_id} cannot be replayed" in message
    assert (
        f"model call {call_id} in step 'critique'" in message and "is not in the store" in message
    )
    assert "Record the execution again" in message and "use_test_models" in message
    assert caught.value.damaged.keys() == {call_id}
    assert store.list_executions(replay_of=original_id) == []
    assert store.get_execution(original_id) == before
    # Replays that do not need the damaged response still work.
    replay = RequestReplay(store)
    assert replay.replay_execution(original_id, modifications={"use_test_models": True}).status == (
        "completed"
    )


def test_corrupt_recorded_stream_is_a_damaged_recording_error(store: Store) -> None:
    """A streamed call whose chunk index does not add up to its body: DamagedRecordingError
    naming the call and both sizes; nothing is recorded, the original is intact."""
    original_id = _recorded_offline(store)
    streamed = next(c for c in store.get_execution(original_id).model_calls if c.streamed)
    size = sum(len(chunk.data) for chunk in streamed.chunks)
    _edit_store(
        store, "UPDATE model_calls SET chunks = ? WHERE id = ?", f"[[0, {size + 7}]]", streamed.id
    )
    before = store.get_execution(original_id)
    with pytest.raises(
        DamagedRecordingError, match=f"model call {streamed.id} in step 'draft'"
    ) as e:
        RequestReplay(store).replay_execution(original_id)
    assert f"a chunk index covering {size + 7} bytes for a body of {size} bytes" in str(e.value)
    assert store.list_executions(replay_of=original_id) == []
    assert store.get_execution(original_id) == before


def _request_hashes(store: Store, execution_id: str) -> list[str]:
    store.flush()
    with sqlite3.connect(store.path) as conn:
        found = conn.execute(
            "SELECT request_hash FROM model_calls WHERE execution_id = ? ORDER BY started_at, id",
            (execution_id,),
        ).fetchall()
    conn.close()
    return [digest for (digest,) in found]


def _blob_count(store: Store) -> int:
    store.flush()
    with sqlite3.connect(store.path) as conn:
        (count,) = conn.execute("SELECT COUNT(*) FROM blobs").fetchone()
    conn.close()
    return int(count)


def test_replayed_calls_name_the_recorded_request_and_response_blobs(store: Store) -> None:
    """A replay opened from another Store (nothing known in memory) records each call with the
    recording's own request and response blobs, adds no blob, and reads back the same request,
    response, headers and analysis as the original's calls."""
    original_id = _recorded_offline(store)
    blobs = _blob_count(store)
    with Store(store.path) as fresh:
        responses = fresh.recorded_responses(original_id)
        assert [r.request_hash for r in responses] == _request_hashes(fresh, original_id)
        result = RequestReplay(fresh).replay_execution(original_id)
        assert result.status == "completed"
        assert _request_hashes(fresh, result.execution_id) == _request_hashes(fresh, original_id)
        assert _blob_count(fresh) == blobs  # the outputs and states are the same blobs too
        before = fresh.get_execution(original_id).model_calls
        after = fresh.get_execution(result.execution_id).model_calls
    assert [c.request for c in after] == [c.request for c in before]
    for name in ("response", "response_headers", "text", "input_tokens", "cost_usd"):
        assert [getattr(c, name) for c in after] == [getattr(c, name) for c in before], name
    assert all(c.replayed for c in after)


def test_a_recorded_request_blob_gone_is_stored_again_by_the_replay(store: Store) -> None:
    """When the store has lost a recorded request's blob, the recording offers no blob to point
    at for that call, and its replay stores the request it sent, so the replay reads whole."""
    original_id = _recorded_offline(store)
    call_id = _call_id(store, original_id, "outline")
    _edit_store(
        store,
        "DELETE FROM blobs WHERE hash = (SELECT request_hash FROM model_calls WHERE id = ?)",
        call_id,
    )
    with Store(store.path) as fresh:
        responses = fresh.recorded_responses(original_id)
        gone = [r.call_id for r in responses if r.request_hash is None]
        assert gone == [call_id] and len(responses) > 1
        result = RequestReplay(fresh).replay_execution(original_id)
        assert result.status == "completed"
        replayed = next(c for c in result.model_calls if c.step_id == "outline")
        assert replayed.request["body"]["messages"][0]["role"] == "system"
        assert (
            next(c for c in fresh.get_execution(original_id).model_calls if c.id == call_id).request
            == replayed.request
        )  # the replay put the blob back


def test_prompt_override_with_test_model_changes_what_follows(store: Store) -> None:
    """A message override in 'outline' is sent as rewritten, answered by the test model, and
    changes the outline and everything downstream of it."""
    original_id = _recorded_offline(store)
    before = store.get_execution(original_id)
    new_prompt = "Outline a report on llamas and alpacas."
    result = RequestReplay(store).replay_execution(
        original_id,
        modifications={"prompt_overrides": {"outline": {"messages": {1: new_prompt}}}},
        on_miss="test-model",
    )
    assert result.status == "completed"
    assert result.output["outline"] != before.outputs["outline"]
    assert result.output["draft"] != before.outputs["draft"]
    sent = result.model_calls[0].request["body"]["messages"]
    assert sent[1]["content"] == new_prompt and sent[0] == {
        "role": "system",
        "content": 'Answer with JSON: {"sections": ["<title>", ...]}, 3 titles.',
    }
    assert [m.step_id for m in result.mismatches] == ["outline", "draft", "critique"]
    assert store.get_execution(original_id) == before


def test_prompt_override_under_on_miss_error_raises_naming_the_step(store: Store) -> None:
    """Under on_miss='error', an overridden prompt misses the recording: ReplayMismatchError
    naming the step, with the rewritten content in the diff."""
    original_id = _recorded_offline(store)
    with pytest.raises(ReplayMismatchError, match="in step 'outline'") as caught:
        RequestReplay(store).replay_execution(
            original_id,
            modifications={"prompt_overrides": {"outline": {"system": "Answer in French."}}},
        )
    assert re.search(r'\+\s+"content": "Answer in French\."', str(caught.value))
    assert [m.step_id for m in caught.value.mismatches] == ["outline"]


def test_anthropic_system_override_rewrites_only_that_step(store: Store) -> None:
    """A system override for 'critique' sets Anthropic's top-level system; the other steps
    are still answered from the recording."""
    original_id = _recorded_offline(store)
    result = RequestReplay(store).replay_execution(
        original_id,
        modifications={"prompt_overrides": {"critique": {"system": "Be kind."}}},
        on_miss="test-model",
    )
    assert [m.step_id for m in result.mismatches] == ["critique"]
    critique = next(c for c in result.model_calls if c.step_id == "critique")
    assert critique.request["body"]["system"] == "Be kind."
    before = store.get_execution(original_id).outputs
    assert result.output["draft"] == before["draft"]
    assert result.output["critique"] != before["critique"]


def test_model_mapping_swaps_only_the_named_model(store: Store) -> None:
    """model={'gpt-4o-mini': 'gpt-4o'} rewrites the OpenAI calls, not the Anthropic one."""
    original_id = _recorded_offline(store)
    result = RequestReplay(store).replay_execution(
        original_id, modifications={"model": {"gpt-4o-mini": "gpt-4o"}}, on_miss="test-model"
    )
    models = [(c.step_id, c.request["body"]["model"]) for c in result.model_calls]
    assert models == [
        ("outline", "gpt-4o"),
        ("draft", "gpt-4o"),
        ("critique", "claude-3-5-haiku-latest"),
    ]
    assert [m.step_id for m in result.mismatches] == ["outline", "draft", "critique"]


def test_model_swap_rewrites_requests_and_aiohttp_bodies(store: Store) -> None:
    """model='gpt-4o' rewrites the body that requests and aiohttp send (to the test model)."""
    with ModelServer() as server:
        with workbench.record("ask", inputs={}, store=store) as plain:
            ask_requests("Hi", base_url=server.openai_base_url)
        with workbench.record("ask", inputs={}, store=store) as aio:
            asyncio.run(ask_aiohttp("Hi", base_url=server.openai_base_url))
    replay = RequestReplay(store)
    for result in (
        replay.replay_execution(plain.id, modifications={"model": "gpt-4o"}, on_miss="test-model"),
        asyncio.run(
            replay.areplay_execution(
                aio.id, modifications={"model": "gpt-4o"}, on_miss="test-model"
            )
        ),
    ):
        assert result.status == "completed" and result.model_calls
        assert {c.request["body"]["model"] for c in result.model_calls} == {"gpt-4o"}
        assert all(c.status_code == 200 for c in result.model_calls)


@pytest.mark.parametrize(
    ("modifications", "message"),
    [
        ({"model": {"gpt-4o-mini": 4}}, "mapping"),
        ({"prompt_overrides": {"outline": "terse"}}, "'system', 'messages'|'messages', 'system'"),
        ({"prompt_overrides": {"outline": {"user": "x"}}}, "allowed keys are 'messages', 'system'"),
        ({"prompt_overrides": {"outline": {"messages": {"first": "x"}}}}, "indexes"),
        ({"prompt_overrides": {"outlne": {"system": "x"}}}, "'critique', 'draft', 'outline'"),
        ({"step_outputs": {"drfat": "x"}}, "never ran"),
        ({"from_step": "drfat"}, "never ran; its steps are 'critique', 'draft'"),
    ],
)
def test_bad_rewrite_modifications_are_config_errors(
    store: Store, modifications: dict[str, Any], message: str
) -> None:
    """A badly shaped model/prompt_overrides, or a step the original never ran: ConfigError."""
    original_id = _recorded_offline(store)
    with pytest.raises(ConfigError, match=message):
        RequestReplay(store).replay_execution(original_id, modifications=modifications)


def test_save_all_states_keeps_every_steps_inputs_and_outputs(store: Store) -> None:
    """save_all_states records '<step>.inputs' and '<step>.outputs' states for every step."""
    original_id = _recorded_offline(store)
    result = RequestReplay(store).replay_execution(
        original_id, modifications={"save_all_states": True}
    )
    replayed = store.get_execution(result.execution_id)
    states = {(s.step_id, s.name): s.value for s in replayed.states}
    for step in replayed.steps:
        assert states[(step.step_id, f"{step.step_id}.inputs")] == step.parameters
        assert states[(step.step_id, f"{step.step_id}.outputs")] == step.result
    assert not any(s.name.endswith(".inputs") for s in store.get_execution(original_id).states)


def test_from_step_returns_recorded_results_before_it_and_runs_the_rest(store: Store) -> None:
    """from_step='draft': retrieve and outline return their recorded results without a call;
    draft and critique run, answered from the recording; nothing is reported unused."""
    original_id = _recorded_offline(store)
    before = store.get_execution(original_id)
    result = RequestReplay(store).replay_execution(
        original_id, modifications={"from_step": "draft"}
    )
    assert result.status == "completed" and result.output == before.outputs
    assert [c.step_id for c in result.model_calls] == ["draft", "critique"]
    assert result.mismatches == [] and result.unused == []
    steps = {s.step_id: s.result for s in store.get_execution(result.execution_id).steps}
    assert steps["outline"] == before.outputs["outline"]


def test_from_step_keeps_occurrences_of_nested_steps_and_repeated_requests(
    store: Store,
) -> None:
    """Skipping 'first' counts its nested 'ask' and its request as done, so 'second' asks as
    occurrence 1 and gets the second recorded answer; the generator step yields its items."""
    with ModelServer() as server:
        with workbench.record("twice", inputs={}, store=store) as run:
            answer = ask_twice(base_url=server.openai_base_url)
    result = RequestReplay(store).replay_execution(run.id, modifications={"from_step": "second"})
    assert result.status == "completed" and result.output == answer
    (call,) = result.model_calls
    assert (call.step_id, call.step_occurrence, call.occurrence) == ("ask", 1, 1)
    assert result.unused == [] and result.mismatches == []


def test_step_outputs_for_a_generator_step_yields_the_given_items(store: Store) -> None:
    """step_outputs for a generator step yields the listed items; a non-list is ConfigError."""
    with ModelServer() as server:
        with workbench.record("twice", inputs={}, store=store) as run:
            ask_twice(base_url=server.openai_base_url)
    replay = RequestReplay(store)
    result = replay.replay_execution(run.id, modifications={"step_outputs": {"words": ["a", "b"]}})
    assert result.output["words"] == ["a", "b"] and result.output["count"] == 2
    with pytest.raises(ConfigError, match="list of items"):
        replay.replay_execution(run.id, modifications={"step_outputs": {"words": "a b"}})


def test_step_outputs_naming_a_with_block_is_a_config_error(store: Store) -> None:
    """A with-block step cannot be skipped: naming it in step_outputs raises ConfigError."""
    with ModelServer() as server:
        with workbench.record("twice", inputs={}, store=store) as run:
            ask_twice(base_url=server.openai_base_url)
    with pytest.raises(ConfigError, match="'tally', a `with"):
        RequestReplay(store).replay_execution(run.id, modifications={"step_outputs": {"tally": 3}})


def test_determinism_helpers_replay_their_recorded_values(store: Store) -> None:
    """now(), uuid4() and random() return the recorded values in a replay: same output."""
    with workbench.record("stamped", inputs={}, store=store) as run:
        original = stamped(rolls=2)
    time.sleep(0.01)
    result = RequestReplay(store).replay_execution(run.id)
    assert result.status == "completed" and result.output == original
    assert result.fresh_values == []
    assert workbench.recorder.uuid4() != workbench.recorder.uuid4()  # outside a run: real


def test_helper_calls_the_recording_lacks_get_real_values_and_are_reported(
    store: Store,
) -> None:
    """A helper call with no recorded value gets a real one, named in fresh_values."""
    with workbench.record("stamped", inputs={}, store=store) as run:
        original = stamped(rolls=1)
    result = RequestReplay(store).replay_execution(run.id, modifications={"inputs": {"rolls": 2}})
    assert result.output["at"] == original["at"] and result.output["id"] == original["id"]
    assert [r[0] for r in result.output["rolls"]] == [r[0] for r in original["rolls"]]
    assert result.fresh_values == ["roll: workbench.random@0#1", "roll: workbench.random@1#1"]
    assert "workbench.random@0#1" in result._repr_html_()
