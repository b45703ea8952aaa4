"""What a failed replay tells: the execution it left behind, and the prompt of each miss."""

from __future__ import annotations

import sys
from typing import Any

import openai
import pytest

import workbench
from workbench.debugging import RequestReplay
from workbench.exceptions import ReplayError, ReplayMismatchError
from workbench.replay._index import prompt_text, request_summary
from workbench.store import Store
from workbench.testing import ModelServer

#: Set by a test between recording and replaying, so that only the replay fails.
FAIL_AFTER_THE_CALL = False


@workbench.pipeline
def answer_then_check(question: str, *, base_url: str) -> str:
    """One call, then a check that fails when the test says so (module level: replayed)."""
    with openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0) as client:
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": question}]
        )
    if FAIL_AFTER_THE_CALL:
        raise RuntimeError("the answer failed a check it passed when recorded")
    return reply.choices[0].message.content or ""


def test_a_replay_that_fails_where_the_original_completed_names_its_execution(
    store: Store, model_server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ReplayError carries the replay's execution_id, which is recorded and can be diffed."""
    with workbench.record("checked", inputs={}, store=store) as run:
        answer_then_check("what do llamas eat", base_url=model_server.openai_base_url)
    monkeypatch.setattr(sys.modules[__name__], "FAIL_AFTER_THE_CALL", True)
    with pytest.raises(ReplayError) as caught:
        RequestReplay(store).replay_execution(run.id)
    replay_id = caught.value.execution_id
    assert replay_id is not None and replay_id in str(caught.value)
    replay = store.get_execution(replay_id)
    assert replay.replay_of == run.id and replay.status == "failed"
    diff = workbench.compare_executions(run.id, replay_id, store=store)
    assert {d.path for d in diff.differences} >= {"status", "error"}


def test_a_replay_refused_before_running_has_no_execution(store: Store) -> None:
    """A replay refused up front (a run with no entrypoint) has execution_id None."""
    with workbench.record("no_entrypoint", inputs={}, store=store) as run:
        pass
    with pytest.raises(ReplayError) as caught:
        RequestReplay(store).replay_execution(run.id)
    assert caught.value.execution_id is None
    assert not isinstance(caught.value, ReplayMismatchError)


SYSTEM = "You are a research agent. Use the tools to answer; be terse."


def _request(path: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"method": "POST", "path": path, "query": {}, "body_format": "json", "body": body}


AGENT_CHAT = _request(
    "/v1/chat/completions",
    {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "What is the weather in Lima?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "weather", "arguments": '{"city": "Lima"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18 C, cloudy"},
        ],
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {}}}],
    },
)  # fmt: skip
RESPONSES_ITEMS = _request(
    "/v1/responses",
    {
        "model": "gpt-4o-mini",
        "instructions": SYSTEM,
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Summarise the memo"}]},
            {"type": "function_call", "call_id": "c1", "name": "read_memo", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "memo text"},
        ],
    },
)
RESPONSES_STRING = _request(
    "/v1/responses", {"model": "gpt-4o-mini", "instructions": SYSTEM, "input": "Plan a trip"}
)
ANTHROPIC_TOOL_RESULT = _request(
    "/v1/messages",
    {
        "model": "claude-sonnet-4-5",
        "system": SYSTEM,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Find the cheapest flight"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "search",
                                               "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                          "content": [{"type": "text", "text": "LIM-CUZ $80"}]}]},
        ],
    },
)  # fmt: skip


@pytest.mark.parametrize(
    ("request_", "prompt"),
    [
        (AGENT_CHAT, "What is the weather in Lima?"),
        (RESPONSES_ITEMS, "Summarise the memo"),
        (RESPONSES_STRING, "Plan a trip"),
        (ANTHROPIC_TOOL_RESULT, "LIM-CUZ $80"),
        (_request("/v1/embeddings", {"model": "m", "input": ["alpha", "beta"]}), "alpha beta"),
    ],
    ids=["agent-chat", "responses-items", "responses-string", "anthropic-tool-result", "embed"],
)
def test_a_mismatch_summary_shows_the_prompt_not_the_shared_instructions(
    request_: dict[str, Any], prompt: str
) -> None:
    """The summary line of agent and Responses API requests shows the last user turn's text,
    never the system instructions every request of the agent shares."""
    assert prompt_text(request_["body"]) == prompt
    summary = request_summary(request_)
    assert repr(prompt) in summary and SYSTEM[:20] not in summary


def test_a_short_description_cuts_a_long_prompt_line_around_its_change(
    store: Store, model_server: ModelServer
) -> None:
    """describe(width) keeps the change of a 3,000-character prompt line in view, on lines of
    about the width; describe() and the Python error keep the whole diff and on_miss advice."""
    shared = "context " * 375
    with workbench.record("long", inputs={}, store=store) as run:
        answer_then_check(shared + "what do llamas eat", base_url=model_server.openai_base_url)
    store.flush()
    with pytest.raises(ReplayMismatchError) as caught:
        RequestReplay(store).replay_execution(
            run.id, modifications={"inputs": {"question": shared + "what do alpacas eat"}}
        )
    (miss,) = caught.value.mismatches
    assert "on_miss='live'" in str(caught.value) and len(miss.describe()) > 6000
    text = miss.describe(width=60)
    short = text.split("diff (- recorded, + replayed):\n")[1].splitlines()
    assert max(len(line) for line in short) <= 60 + 8, text
    changed = [line.strip() for line in short if line.strip()[:1] in "-+" and "@@" not in line]
    assert any(line.startswith("-…") and "llamas" in line for line in changed)
    assert any(line.startswith("+…") and "alpacas" in line for line in changed)
