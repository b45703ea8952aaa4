"""The diff engine: alignment, what is compared, deltas, ignore paths, renderers and the CLI."""

from __future__ import annotations

import dataclasses
import io
import json
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest
from click.testing import CliRunner
from deepdiff import DeepDiff
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

import workbench
from examples import research_assistant as ra
from workbench import Execution, compare_executions
from workbench.cli.diff import diff_command
from workbench.debugging import RequestReplay
from workbench.diff import (
    Difference,
    DiffError,
    ExecutionDiff,
    UnmatchedIgnoreWarning,
)
from workbench.diff._document import build_documents
from workbench.diff._engine import DEEPDIFF_OPTIONS, translate
from workbench.diff._fields import EXECUTION_FIELDS, MODEL_CALL_FIELDS, STATE_FIELDS, STEP_FIELDS
from workbench.diff._model import SCHEMA
from workbench.records import ErrorInfo, ModelCall, State, Step
from workbench.store import Store
from workbench.testing import ModelServer

# Hypothesis draws many examples against one recorded execution, which it never mutates.
_PROPERTY = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


KINDER_EDITOR = "You are a kind and thorough editor. Praise the strongest claim first."


def _research(store: Store, server: ModelServer, topic: str = "prompt caching", **kw: Any) -> str:
    with workbench.record(kw.pop("pipeline", "research_assistant"), inputs={}, store=store) as run:
        ra.research(
            topic,
            openai_base_url=server.openai_base_url,
            anthropic_base_url=server.anthropic_base_url,
        )
    return run.id


@pytest.fixture
def recorded(store: Store, model_server: ModelServer) -> Execution:
    """One recorded run of the example research pipeline."""
    return store.get_execution(_research(store, model_server))


def twin(run: Execution, shift: float = 1000.0, new_id: str = "exec_twin") -> Execution:
    """``run`` with the same content and different ids, timestamps and timings."""
    steps = [
        dataclasses.replace(
            s,
            execution_id=new_id,
            span_id=f"span-{i}",
            started_at=s.started_at + shift,
            ended_at=None if s.ended_at is None else s.ended_at + shift,
            duration_s=(s.duration_s or 0) * 2 + 0.5,
        )
        for i, s in enumerate(run.steps)
    ]
    calls = [
        dataclasses.replace(
            c,
            id=f"call-{i}",
            execution_id=new_id,
            started_at=c.started_at + shift,
            latency_s=(c.latency_s or 0) + 1,
            response_headers={"x-request-id": f"req-{i}"},
        )
        for i, c in enumerate(run.model_calls)
    ]
    states = [
        dataclasses.replace(s, execution_id=new_id, recorded_at=s.recorded_at + shift)
        for s in run.states
    ]
    return dataclasses.replace(
        run,
        id=new_id,
        trace_id="0" * 32,
        started_at=run.started_at + shift,
        ended_at=None if run.ended_at is None else run.ended_at + shift,
        duration_s=(run.duration_s or 0) + 3,
        steps=steps,
        model_calls=calls,
        states=states,
        spans=[],
    )


def _key(difference: Difference) -> tuple[str, str, str]:
    return (difference.path, difference.kind, repr((difference.before, difference.after)))


# -- injected differences ---------------------------------------------------------------------

Injection = Callable[[Execution, Any], tuple[Execution, str]]


def _step_index(run: Execution, step_id: str) -> int:
    return next(i for i, s in enumerate(run.steps) if s.step_id == step_id)


def _replace_step(run: Execution, step_id: str, **changes: Any) -> Execution:
    steps = list(run.steps)
    index = _step_index(run, step_id)
    steps[index] = dataclasses.replace(steps[index], **changes)
    return dataclasses.replace(run, steps=steps)


def _replace_call(run: Execution, step_id: str, **changes: Any) -> Execution:
    calls = [
        dataclasses.replace(c, **changes) if c.step_id == step_id else c for c in run.model_calls
    ]
    return dataclasses.replace(run, model_calls=calls)


def _inject_output(run: Execution, value: Any) -> tuple[Execution, str]:
    return dataclasses.replace(run, outputs={**run.outputs, "draft": value}), "outputs.draft"


def _inject_result(run: Execution, value: Any) -> tuple[Execution, str]:
    return _replace_step(run, "outline", result=value), "steps.outline#0.result"


def _inject_parameter(run: Execution, value: Any) -> tuple[Execution, str]:
    step = run.steps[_step_index(run, "draft")]
    parameters = {**step.parameters, "topic": value}
    return _replace_step(run, "draft", parameters=parameters), "steps.draft#0.parameters.topic"


def _inject_error(run: Execution, value: Any) -> tuple[Execution, str]:
    error = ErrorInfo("ValueError", f"injected {value!r}")
    return _replace_step(run, "retrieve", error=error), "steps.retrieve#0.error"


def _inject_response(run: Execution, value: Any) -> tuple[Execution, str]:
    text = f"injected {value!r}"
    return _replace_call(run, "critique", text=text), "steps.critique#0.model_calls.0.text"


def _inject_prompt(run: Execution, value: Any) -> tuple[Execution, str]:
    call = next(c for c in run.model_calls if c.step_id == "draft")
    body = {**call.request["body"], "temperature": value}
    request = {**call.request, "body": body}
    path = "steps.draft#0.model_calls.0.request.body.temperature"
    return _replace_call(run, "draft", request=request), path


def _inject_state(run: Execution, value: Any) -> tuple[Execution, str]:
    states = [dataclasses.replace(s, value=value) for s in run.states]
    return dataclasses.replace(run, states=states), "steps.retrieve#0.states.retrieval_scores"


def _inject_added_step(run: Execution, value: Any) -> tuple[Execution, str]:
    last = max(s.started_at for s in run.steps)
    extra = dataclasses.replace(
        run.steps[0], step_id="extra", result=value, started_at=last + 1, ended_at=last + 2
    )
    return dataclasses.replace(run, steps=[*run.steps, extra]), "steps.extra#0"


INJECTIONS: dict[str, Injection] = {
    "output": _inject_output,
    "result": _inject_result,
    "parameter": _inject_parameter,
    "error": _inject_error,
    "response": _inject_response,
    "prompt": _inject_prompt,
    "state": _inject_state,
    "added_step": _inject_added_step,
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
injections = st.lists(st.sampled_from(sorted(INJECTIONS)), min_size=1, max_size=4, unique=True)


def _inject(run: Execution, names: list[str], values: list[Any]) -> tuple[Execution, set[str]]:
    expected = set()
    for name, value in zip(names, values, strict=True):
        # Wrapped, the injected value can never equal the recorded one.
        run, path = INJECTIONS[name](run, {"injected": value})
        expected.add(path)
    return run, expected


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(f"{prefix}.")


# -- properties -------------------------------------------------------------------------------


@_PROPERTY
@given(shift=st.floats(min_value=-1e6, max_value=1e6, allow_nan=False))
def test_identical_content_has_no_difference(recorded: Execution, shift: float) -> None:
    """Two runs with the same content (other ids, times, durations) compare empty."""
    diff = compare_executions(recorded, twin(recorded, shift))
    assert diff.differences == []
    assert not diff
    assert diff.first_divergent_step is None


@_PROPERTY
@given(names=injections, data=st.data())
def test_injected_differences_are_all_found_and_nothing_else(
    recorded: Execution, names: list[str], data: st.DataObject
) -> None:
    """Differences injected into a copy are each found, and every difference is one of them."""
    values = [data.draw(json_values) for _ in names]
    changed, expected = _inject(twin(recorded), names, values)
    diff = compare_executions(recorded, changed)
    for difference in diff.differences:
        assert any(_under(difference.path, prefix) for prefix in expected), difference
    for prefix in expected:
        assert any(_under(d.path, prefix) for d in diff.differences), prefix
    assert diff


@_PROPERTY
@given(names=injections, data=st.data())
def test_compare_b_a_mirrors_compare_a_b(
    recorded: Execution, names: list[str], data: st.DataObject
) -> None:
    """compare(b, a) is compare(a, b) with added/removed and before/after swapped."""
    values = [data.draw(json_values) for _ in names]
    changed, _ = _inject(twin(recorded), names, values)
    forward = compare_executions(recorded, changed)
    backward = compare_executions(changed, recorded)
    assert sorted(map(_key, backward.differences)) == sorted(
        _key(d.mirrored()) for d in forward.differences
    )
    assert sorted(map(repr, backward.deltas)) == sorted(repr(d.mirrored()) for d in forward.deltas)
    assert forward.first_divergent_step == backward.first_divergent_step


@_PROPERTY
@given(names=injections, data=st.data())
def test_same_result_as_deepdiff_of_the_whole_documents(
    recorded: Execution, names: list[str], data: st.DataObject
) -> None:
    """Skipping equal steps changes nothing: the result is deepdiff's on the whole documents."""
    values = [data.draw(json_values) for _ in names]
    changed, _ = _inject(twin(recorded), names, values)
    doc_a, doc_b = build_documents(recorded, changed)
    plain = translate(
        DeepDiff(doc_a.content, doc_b.content, view="tree", **DEEPDIFF_OPTIONS), doc_a, doc_b
    )
    ours = compare_executions(recorded, changed).differences
    assert sorted(map(_key, ours)) == sorted(map(_key, plain))


def test_every_record_field_has_one_role() -> None:
    """Each field of the compared records is classified in _fields (none silently dropped)."""
    for record, roles in (
        (Execution, EXECUTION_FIELDS),
        (Step, STEP_FIELDS),
        (ModelCall, MODEL_CALL_FIELDS),
        (State, STATE_FIELDS),
    ):
        assert {f.name for f in dataclasses.fields(record)} == set(roles), record.__name__


# -- concurrent calls -------------------------------------------------------------------------


def _fan_out_run(calls: int, new_id: str = "exec_fan") -> Execution:
    """A run whose one step made ``calls`` model calls at once (as a thread pool would)."""
    steps = [
        Step(new_id, "fan_out", 0, f"span-{new_id}", None, None, {}, None, None,
             "completed", 0, 10.0, 20.0, 10.0)
    ]  # fmt: skip
    model_calls = [
        ModelCall(
            id=f"{new_id}-call-{i}", execution_id=new_id, span_id=None, step_id="fan_out",
            step_occurrence=0, provider="openai", model="gpt-4o-mini", operation="chat",
            request={"method": "POST", "path": "/v1/chat/completions", "query": {},
                     "body_format": "json",
                     "body": {"messages": [{"role": "user", "content": f"question {i}"}]}},
            status_code=200, response={"id": i}, response_headers={}, streamed=False, chunks=[],
            input_tokens=2, output_tokens=3, cache_read_tokens=None, cache_write_tokens=None,
            tokens_estimated=False, cost_usd=0.001 * (i + 1), ttft_s=None, latency_s=0.5,
            finish_reason="stop", text=f"answer {i}", request_key=f"key-{i}", occurrence=0,
            started_at=10.0 + i, error=None,
        )
        for i in range(calls)
    ]  # fmt: skip
    return Execution(
        id=new_id, pipeline_id="fan", pipeline_version=None, entrypoint=None, inputs={},
        outputs={"n": calls}, status="completed", success=True, error=None, user_id=None,
        environment=None, sampled=True, debug=False, started_at=0.0, ended_at=30.0,
        duration_s=30.0, cost_usd=None, tokens_in=0, tokens_out=0, replay_of=None,
        modifications={}, code_version=None, metadata={}, trace_id="0" * 32, steps=steps,
        model_calls=model_calls,
    )  # fmt: skip


def _made_in_order(run: Execution, order: list[int], new_id: str) -> Execution:
    """``run`` under another id, its calls made (and recorded) in ``order``."""
    calls = [
        dataclasses.replace(
            run.model_calls[i], id=f"{new_id}-call-{i}", execution_id=new_id,
            started_at=10.0 + position,
        )
        for position, i in enumerate(order)
    ]  # fmt: skip
    steps = [dataclasses.replace(s, execution_id=new_id) for s in run.steps]
    return dataclasses.replace(run, id=new_id, model_calls=calls, steps=steps)


@_PROPERTY
@given(order=st.integers(min_value=1, max_value=8).flatmap(lambda n: st.permutations(range(n))))
def test_concurrent_calls_made_in_any_order_diff_as_equal(order: list[int]) -> None:
    """The same calls of one step, made in any other order, are no difference and no delta."""
    original = _fan_out_run(len(order))
    diff = compare_executions(original, _made_in_order(original, order, "exec_perm"))
    assert diff.differences == []
    assert diff.deltas == []


@_PROPERTY
@given(
    order=st.integers(min_value=1, max_value=8).flatmap(lambda n: st.permutations(range(n))),
    data=st.data(),
)
def test_a_changed_prompt_among_reordered_calls_is_exactly_that_change(
    order: list[int], data: st.DataObject
) -> None:
    """One call's prompt changed among calls made in another order is found as that change
    on that call, and nothing else — in both directions."""
    original = _fan_out_run(len(order))
    changed = _made_in_order(original, order, "exec_perm")
    index = data.draw(st.integers(min_value=0, max_value=len(order) - 1))
    target = changed.model_calls[index]
    prompt = data.draw(st.text(max_size=20).filter(lambda t: not t.startswith("question")))
    body = {"messages": [{"role": "user", "content": prompt}]}
    calls = list(changed.model_calls)
    calls[index] = dataclasses.replace(
        target, request={**target.request, "body": body}, request_key="key-changed"
    )
    changed = dataclasses.replace(changed, model_calls=calls)

    forward = compare_executions(original, changed)
    assert len(forward.differences) == 1
    (difference,) = forward.differences
    assert difference.path.startswith("steps.fan_out#0.model_calls.")
    assert difference.path.endswith(".request.body.messages.0.content")
    assert (difference.kind, difference.after) == ("changed", prompt)
    assert difference.before == target.request["body"]["messages"][0]["content"]
    assert forward.deltas == []
    backward = compare_executions(changed, original)
    assert [_key(d) for d in backward.differences] == [_key(difference.mirrored())]


def test_identical_requests_pair_in_occurrence_order() -> None:
    """Calls with the same request pair by occurrence: their different answers are compared
    occurrence with occurrence, whatever order they finished in."""
    original = _fan_out_run(3)
    same_key = [dataclasses.replace(c, request_key="same", occurrence=i)
                for i, c in enumerate(original.model_calls)]  # fmt: skip
    original = dataclasses.replace(original, model_calls=same_key)
    reordered = _made_in_order(original, [2, 0, 1], "exec_perm")
    assert compare_executions(original, reordered).differences == []
    wrong = dataclasses.replace(
        reordered,
        model_calls=[dataclasses.replace(c, text="other") if c.occurrence == 1 else c
                     for c in reordered.model_calls],
    )  # fmt: skip
    (difference,) = compare_executions(original, wrong).differences
    assert (difference.before, difference.after) == ("answer 1", "other")


#: The order in which :func:`fan_out`'s workers send their calls (each waits for the previous
#: one's answer), so that a test can make a replay send them the other way round.
SEND_ORDER: list[int] = []


@workbench.pipeline
def fan_out(questions: list[str], *, base_url: str) -> list[str]:
    """One step that asks every question at once from a thread pool (module level: replayed)."""
    turns = [threading.Event() for _ in questions]
    order = SEND_ORDER or list(range(len(questions)))
    rank = {index: position for position, index in enumerate(order)}

    def ask(index: int) -> str:
        if rank[index]:
            turns[rank[index] - 1].wait(timeout=10)
        try:
            with openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0) as client:
                reply = client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": questions[index]}],
                )
            return reply.choices[0].message.content or ""
        finally:
            turns[rank[index]].set()

    with workbench.step("fan_out"), ThreadPoolExecutor(len(questions)) as pool:
        return list(pool.map(workbench.carry_context(ask), range(len(questions))))


def test_faithful_replay_of_threaded_calls_in_another_order_is_equal(
    any_store: Store, model_server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replay whose thread pool sent the step's calls in the reverse order of the original
    compares equal."""
    store = any_store
    questions = ["why is the sky blue", "what is a llama", "who wrote hamlet"]
    monkeypatch.setattr(sys.modules[__name__], "SEND_ORDER", [0, 1, 2])
    with workbench.record("fan_out", inputs={}, store=store) as run:
        fan_out(questions, base_url=model_server.openai_base_url)
    monkeypatch.setattr(sys.modules[__name__], "SEND_ORDER", [2, 1, 0])
    result = RequestReplay(store).replay_execution(run.id)
    assert result.status == "completed" and not result.mismatches and not result.unused
    replayed = store.get_execution(result.execution_id)
    recorded = store.get_execution(run.id)
    made = [c.request["body"]["messages"][0]["content"] for c in replayed.model_calls]
    assert made == questions[::-1]  # the replay really made them the other way round
    diff = compare_executions(recorded, replayed)
    assert diff.differences == [], diff.differences
    assert not [d for d in diff.deltas if d.metric != "latency_s"]


# -- recorded scenarios -----------------------------------------------------------------------


def test_replay_with_a_prompt_override_yields_exactly_the_expected_differences(
    any_store: Store, model_server: ModelServer
) -> None:
    """A replay overriding the critique prompt differs from its original in that prompt, its
    response, the step's result and the output — and in cost, as a delta."""
    store = any_store
    before = _research(store, model_server)
    replay = RequestReplay(store)
    result = replay.replay_execution(
        before,
        modifications={"prompt_overrides": {"critique": {"system": KINDER_EDITOR}}},
        on_miss="test-model",
    )
    assert [m.step_id for m in result.mismatches] == ["critique"]

    diff = replay.compare_executions(before, result)
    assert diff.a.id == before and diff.b.id == result.execution_id
    assert [(d.path, d.kind) for d in diff.differences] == [
        ("outputs.critique", "changed"),
        ("steps.critique#0.model_calls.0.request.body.system", "changed"),
        ("steps.critique#0.model_calls.0.text", "changed"),
        ("steps.critique#0.result", "changed"),
    ]
    summary = diff.summary()
    assert summary.first_divergent_step == "critique#0"
    assert summary.counts == {"added": 0, "removed": 0, "changed": 4}
    assert summary.totals["cost_usd"].relative  # a delta, not a difference
    deltas = {d.path: d for d in diff.deltas if d.step_id == "critique"}
    cost = deltas["steps.critique#0.model_calls.0.cost_usd"]
    assert cost.absolute and cost.relative  # the review changed length, so did its price
    # Twelve words of system prompt instead of fourteen (the test server counts words).
    assert deltas["steps.critique#0.model_calls.0.tokens_in"].absolute == -2
    prompt = diff.differences[1].text_diff()
    assert prompt is not None and "[-strict-]" in prompt and "{+kind and thorough+}" in prompt
    assert summary.notes == [f"{result.execution_id} is a replay of {before}"]
    assert compare_executions(before, result.execution_id, store=store).to_json() == diff.to_json()


def test_loop_occurrences_align_and_extra_ones_are_added(store: Store) -> None:
    """Steps align by (step id, occurrence): a third loop turn shows as one added step."""
    ids = []
    for turns in (2, 3):
        with workbench.record("loop", inputs={}, store=store) as run:
            for turn in range(turns):
                with workbench.step("fetch"):
                    workbench.state("page", {"turn": turn})
        ids.append(run.id)
    diff = compare_executions(*ids, store=store)
    assert [(d.path, d.kind) for d in diff.differences] == [("steps.fetch#2", "added")]
    assert diff.differences[0].after["states"] == {"page": {"turn": 2}}
    assert diff.first_divergent_step == "fetch#2"


def test_ignore_paths_leave_out_differences(store: Store, model_server: ModelServer) -> None:
    """Ignored paths (with * for one segment) are left out of differences and of bool()."""
    a, b = _research(store, model_server, "llamas"), _research(store, model_server, "alpacas")
    full = compare_executions(a, b, store=store)
    assert any(d.path.startswith("steps.outline#0.parameters") for d in full.differences)
    diff = compare_executions(a, b, store=store, ignore=["steps.*.parameters", "outputs.topic"])
    assert diff.ignore == ("steps.*.parameters", "outputs.topic")
    assert not any(".parameters." in d.path or d.path == "outputs.topic" for d in diff.differences)
    assert len(diff.differences) < len(full.differences)
    everything = compare_executions(a, b, store=store, ignore=["**"])
    assert not everything and everything.deltas == []


def test_ignore_path_matching_nothing_warns(recorded: Execution) -> None:
    """A pattern naming no field warns; one naming an equal field does not."""
    other = twin(recorded)
    with pytest.warns(UnmatchedIgnoreWarning, match="outputs.no_such_key"):
        compare_executions(recorded, other, ignore="outputs.no_such_key")
    compare_executions(recorded, other, ignore="outputs.draft")  # equal, but exists: no warning


def test_comparing_an_execution_with_itself_is_an_error(recorded: Execution) -> None:
    """The same execution twice (by id or by record) raises DiffError naming it."""
    with pytest.raises(DiffError, match=recorded.id):
        compare_executions(recorded.id, recorded.id)
    with pytest.raises(DiffError, match="itself"):
        compare_executions(recorded, recorded)


def test_unknown_id_is_execution_not_found(store: Store, recorded: Execution) -> None:
    """An id the store does not hold raises ExecutionNotFoundError."""
    with pytest.raises(workbench.ExecutionNotFoundError, match="exec_nope"):
        compare_executions(recorded.id, "exec_nope", store=store)


def test_different_pipelines_are_compared_and_said(store: Store, model_server: ModelServer) -> None:
    """Runs of different pipelines compare, with the pipeline difference noted in the summary."""
    a = _research(store, model_server)
    b = _research(store, model_server, pipeline="other_pipeline")
    diff = compare_executions(a, b, store=store)
    assert any(d.path == "pipeline_id" for d in diff.differences)
    assert any("different pipelines" in note for note in diff.summary().notes)


def test_only_filters_by_category(store: Store, model_server: ModelServer) -> None:
    """only() keeps one category: prompts, outputs, states, cost or latency."""
    a = _research(store, model_server, "llamas")
    b = _research(store, model_server, "alpacas and vicunas")  # longer prompts: cost deltas
    diff = compare_executions(a, b, store=store)
    prompts = diff.only("prompts")
    assert prompts.differences and all(".request." in d.path for d in prompts.differences)
    outputs = diff.only("outputs")
    assert {d.path.split(".")[0] for d in outputs.differences} == {"outputs", "steps"}
    assert all(d.metric in ("latency_s", "ttft_s") for d in diff.only("latency").deltas)
    assert not diff.only("cost") and diff.only("cost").deltas
    with pytest.raises(ValueError, match="one of"):
        diff.only("tokens")  # type: ignore[arg-type]


# -- renderers --------------------------------------------------------------------------------


@pytest.fixture
def changed_diff(recorded: Execution) -> ExecutionDiff:
    """A diff with a changed response text, an added step and a changed state."""
    changed, _ = _inject(twin(recorded), ["response", "added_step", "state"], [1, 2, 3])
    return compare_executions(recorded, changed)


def test_json_has_the_documented_schema(changed_diff: ExecutionDiff) -> None:
    """to_json() has the stable keys of schema 1 and survives a JSON round trip."""
    data = json.loads(json.dumps(changed_diff.to_json()))
    assert data["schema"] == SCHEMA
    assert set(data) == {"schema", "equal", "a", "b", "ignore", "summary", "differences", "deltas"}
    assert set(data["summary"]) == {"counts", "first_divergent_step", "totals", "notes"}
    assert set(data["differences"][0]) == {
        "path", "kind", "step_id", "occurrence", "before", "after", "text_diff",
    }  # fmt: skip
    assert set(data["deltas"][0]) == {
        "path", "metric", "step_id", "occurrence", "before", "after", "absolute", "relative",
    }  # fmt: skip
    assert data["equal"] is False


def test_html_shows_the_changed_words_highlighted(changed_diff: ExecutionDiff) -> None:
    """_repr_html_ puts the runs side by side with inserted words in <ins>, escaped."""
    page = changed_diff._repr_html_()
    assert changed_diff.a.id in page and changed_diff.b.id in page
    assert "<ins>injected</ins>" in page
    assert "<del>" in page
    assert "&quot;injected&quot;" in page  # values are escaped JSON


def test_rich_renders(changed_diff: ExecutionDiff) -> None:
    """The diff prints with rich, showing each difference's path."""
    console = Console(record=True, width=200)
    console.print(changed_diff)
    text = console.export_text()
    assert "steps.extra#0" in text and "critique#0.model_calls.0.text" in text


def test_text_diff_is_unified_for_multiline_texts() -> None:
    """A multi-line text gets a unified diff by line; other values none."""
    difference = Difference("outputs.report", "changed", "a\nb\nc\n", "a\nB\nc\n")
    assert difference.text_diff() == (
        "--- a/outputs.report\n+++ b/outputs.report\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n"
    )
    assert Difference("outputs.n", "changed", 1, 2).text_diff() is None


# -- command line -----------------------------------------------------------------------------


@pytest.fixture
def two_runs(store: Store, model_server: ModelServer) -> Iterator[tuple[str, str, str]]:
    """Two research runs of different topics, and the store's path."""
    a, b = _research(store, model_server, "llamas"), _research(store, model_server, "alpacas")
    store.flush()
    yield a, b, str(store.path)


def test_a_piped_diff_marks_removed_and_added_words(
    two_runs: tuple[str, str, str], store: Store, recorded: Execution
) -> None:
    """Without colour (a pipe, NO_COLOR) a changed text keeps before and after apart with
    git's word-diff marks ([-old-]{+new+}); in colour the marks are left out."""
    a, b, db = two_runs
    piped = CliRunner().invoke(diff_command, [a, b, "--db", db])
    assert "[-llamas-]{+alpacas+}" in piped.output, piped.output
    diff = compare_executions(a, b, store=store)
    coloured = Console(file=io.StringIO(), color_system="truecolor", width=200)
    coloured.print(diff)
    assert "[-" not in coloured.file.getvalue() and "alpacas" in coloured.file.getvalue()  # type: ignore[attr-defined]


def test_cli_exit_code_says_whether_runs_differ(
    two_runs: tuple[str, str, str], store: Store, recorded: Execution
) -> None:
    """`workbench diff` exits 1 for different runs, 0 for equal ones under --only/--ignore."""
    a, b, db = two_runs
    runner = CliRunner()
    different = runner.invoke(diff_command, [a, b, "--db", db])
    assert different.exit_code == 1, different.output
    assert "first divergent step: retrieve#0" in different.output
    equal = runner.invoke(diff_command, [a, b, "--db", db, "--ignore", "**"])
    assert equal.exit_code == 0, equal.output
    as_json = runner.invoke(diff_command, [a, b, "--db", db, "--json", "--only", "prompts"])
    data = json.loads(as_json.output)
    assert data["differences"] and all(".request." in d["path"] for d in data["differences"])
    same = runner.invoke(diff_command, [a, a, "--db", db])
    assert same.exit_code != 0 and "itself" in str(same.exception)
