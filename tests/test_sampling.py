"""Sampled debug mode: which executions are recorded, what they keep, and what still counts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from hypothesis import given
from hypothesis import strategies as st

import workbench
from workbench import _hooks
from workbench.config import load_config
from workbench.debug import RATE_ENV, decide, sampled_by_rate
from workbench.exceptions import ConfigError, RecordingError
from workbench.store import Store
from workbench.testing import ModelServer

TABLES = ("executions", "steps", "spans", "model_calls", "states", "logs")


class Counting(_hooks.Observer):
    """What a metrics layer sees: every execution, step and priced call, sampled or not."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.finished: list[tuple[str, str]] = []
        self.steps: list[_hooks.StepEvent] = []
        self.calls: list[_hooks.ModelCallEvent] = []

    def execution_started(self, run: Any) -> None:
        self.started.append(run.id)

    def execution_finished(self, run: Any) -> None:
        self.finished.append((run.id, run.status))

    def step_finished(self, event: _hooks.StepEvent) -> None:
        self.steps.append(event)

    def model_call_finished(self, event: _hooks.ModelCallEvent) -> None:
        self.calls.append(event)


@pytest.fixture
def counting() -> Iterator[Counting]:
    observer = Counting()
    _hooks.add_observer(observer)
    yield observer
    _hooks.remove_observer(observer)


def debug_yaml(rate: float = 0.0, *, features: list[str] | None = None, **sampling: Any) -> None:
    """Write a workbench.yaml with debug mode on into the test's working directory."""
    lines = ["debug:", "  enabled: true", f"  sampling: {{rate: {rate}"]
    for key, names in sampling.items():
        lines[-1] += f", {key}: [{', '.join(names)}]"
    lines[-1] += "}"
    if features is not None:
        lines.append(f"  features: [{', '.join(features)}]")
    Path("workbench.yaml").write_text("\n".join(lines) + "\n")


def rows(store: Store) -> dict[str, int]:
    stats = store.stats()
    return {table: stats[table] for table in TABLES}


def client(server: ModelServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)


def pipeline_body(server: ModelServer) -> str:
    """A step with a span, a state, a log line and a model call."""

    @workbench.step("ask")
    def ask(question: str) -> str:
        with workbench.span("prepare", size=len(question)):
            workbench.state("question", question)
        logging.getLogger("app").warning("asking %s", question)
        reply = client(server).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": question}]
        )
        return reply.choices[0].message.content or ""

    return ask("why is the sky blue?")


def test_debug_mode_off_records_everything_unflagged(
    store: Store, model_server: ModelServer
) -> None:
    """Without a debug section every execution is recorded whole, not flagged sampled/debug."""
    with workbench.record("plain", inputs={}, store=store) as run:
        pipeline_body(model_server)
    execution = run.execution()
    assert (execution.sampled, execution.debug) == (False, False)
    assert len(execution.steps) == 1 and len(execution.model_calls) == 1
    assert [s.name for s in execution.states] == ["question"]
    assert any(span.name == "prepare" for span in execution.spans) and execution.logs


def test_unsampled_execution_writes_nothing_but_still_counts(
    store: Store, model_server: ModelServer, counting: Counting
) -> None:
    """At rate 0 no row of any kind is written, yet observers see the run, its step and the
    call's tokens and cost (metrics and cost totals do not shrink with the rate)."""
    debug_yaml(0.0)
    with workbench.record("quiet", inputs={"q": 1}, store=store) as run:
        answer = pipeline_body(model_server)
    store.flush()
    assert answer and not run.recording
    assert rows(store) == dict.fromkeys(TABLES, 0)
    assert counting.started == [run.id] and counting.finished == [(run.id, "completed")]
    assert [(e.step_id, e.status, e.result) for e in counting.steps] == [
        ("ask", "completed", answer)
    ]
    (call,) = counting.calls
    assert call.run is run and call.step_id == "ask"
    assert call.input_tokens and call.output_tokens and call.cost_usd and call.cost_usd > 0
    with pytest.raises(RecordingError, match=r"not recorded.*debug\.force\(True\)"):
        run.execution()


def test_unsampled_spend_still_counts_in_cost_reports(
    store: Store, model_server: ModelServer, counting: Counting
) -> None:
    """An unsampled call keeps no row, but its cost reaches the ledger budgets and reports read."""
    from workbench.monitoring import CostReporter

    debug_yaml(0.0)
    with workbench.record("quiet", inputs={}, store=store, user_id="u7"):
        pipeline_body(model_server)
    store.flush()
    (call,) = counting.calls
    report = CostReporter(store).get_daily_report()
    assert rows(store)["model_calls"] == 0
    assert report.calls == 1 and report.total_cost == pytest.approx(call.cost_usd)
    assert report.cost_by_pipeline == {"quiet": pytest.approx(call.cost_usd)}
    assert report.cost_by_user == {"u7": pytest.approx(call.cost_usd)}


def test_sampled_execution_is_recorded_and_flagged(store: Store, model_server: ModelServer) -> None:
    """At rate 1 with every feature the execution is recorded whole and flagged."""
    debug_yaml(1.0)
    with workbench.record("loud", inputs={}, store=store) as run:
        pipeline_body(model_server)
    execution = run.execution()
    assert (execution.sampled, execution.debug) == (True, True)
    assert execution.model_calls[0].request["body"]["messages"]
    assert execution.states and execution.logs and execution.steps[0].parameters


def test_sampled_trace_has_no_orphan_spans(store: Store, model_server: ModelServer) -> None:
    """Every recorded span of a sampled execution has its parent recorded too."""
    debug_yaml(1.0)
    with workbench.record("tree", inputs={}, store=store) as run:
        pipeline_body(model_server)
        with workbench.span("outer"), workbench.span("inner"):
            pass
    spans = run.execution().spans
    ids = {span.span_id for span in spans}
    assert all(span.parent_span_id in ids for span in spans if span.parent_span_id is not None)
    assert len(spans) == 5  # execution, step, prepare, outer, inner


@given(execution_id=st.text(min_size=1, max_size=40), low=st.floats(0, 1), high=st.floats(0, 1))
def test_the_decision_is_a_pure_monotone_function_of_the_id(
    execution_id: str, low: float, high: float
) -> None:
    """The same id gets the same answer every time, and an id sampled at a rate is sampled at
    every higher rate (so raising the rate only adds executions)."""
    low, high = sorted((low, high))
    assert sampled_by_rate(execution_id, low) == sampled_by_rate(execution_id, low)
    if sampled_by_rate(execution_id, low):
        assert sampled_by_rate(execution_id, high)
    assert sampled_by_rate(execution_id, 1.0) and not sampled_by_rate(execution_id, 0.0)


def test_the_recorder_uses_the_hash_of_the_execution_id() -> None:
    """decide() agrees with sampled_by_rate for each id, and samples about the rate."""
    debug_yaml(0.3)
    config = load_config()
    ids = [f"exec_{n:08x}" for n in range(20_000)]
    decided = [decide(config, i, user_id=None, pipeline_id="p").recording for i in ids]
    assert decided == [sampled_by_rate(i, 0.3) for i in ids]
    assert abs(sum(decided) / len(ids) - 0.3) < 0.02  # 6 standard deviations


def test_listed_users_and_pipelines_are_always_recorded(store: Store) -> None:
    """At rate 0 the listed users' and pipelines' executions are still recorded."""
    debug_yaml(0.0, users=["debug_user_1"], pipelines=["experimental_pipeline"])
    with workbench.record("other", inputs={}, user_id="debug_user_1", store=store) as by_user:
        pass
    with workbench.record("experimental_pipeline", inputs={}, store=store) as by_pipeline:
        pass
    with workbench.record("other", inputs={}, user_id="someone", store=store) as neither:
        pass
    assert by_user.recording and by_pipeline.recording and not neither.recording
    assert {e.id for e in store.list_executions()} == {by_user.id, by_pipeline.id}


def test_force_records_the_next_execution_only(store: Store) -> None:
    """workbench.debug.force(True) records the next execution started, then sampling resumes."""
    debug_yaml(0.0)
    workbench.debug.force(True)
    with workbench.record("forced", inputs={}, store=store) as first:
        pass
    with workbench.record("forced", inputs={}, store=store) as second:
        pass
    assert first.recording and first.execution().sampled and not second.recording


def test_force_as_a_block_and_explicit_sampled(store: Store) -> None:
    """``with force(...)`` covers every execution in the block; record(sampled=) wins over it."""
    debug_yaml(1.0)
    with workbench.debug.force(False):
        runs = []
        for _ in range(3):
            with workbench.record("blocked", inputs={}, store=store) as run:
                runs.append(run)
        with workbench.record("explicit", inputs={}, store=store, sampled=True) as explicit:
            pass
    with workbench.record("after", inputs={}, store=store) as after:
        pass
    assert [run.recording for run in runs] == [False, False, False]
    assert explicit.recording and after.recording


def test_force_false_skips_even_without_debug_mode(store: Store, counting: Counting) -> None:
    """With debug mode off, force(False) still skips recording one execution (it counts)."""
    workbench.debug.force(False)
    with workbench.record("skipped", inputs={}, store=store) as run:
        pass
    assert not run.recording and rows(store)["executions"] == 0
    assert counting.finished == [(run.id, "completed")]


def test_force_refuses_a_non_boolean() -> None:
    """force() names what it takes when given something else."""
    with pytest.raises(ConfigError, match=r"True \(record\), False \(skip\) or None"):
        workbench.debug.force("yes")  # type: ignore[arg-type]


def test_nested_execution_follows_its_parent(store: Store) -> None:
    """An execution started inside an unsampled one is not recorded either (parent-based)."""
    debug_yaml(1.0)
    with workbench.record("outer", inputs={}, store=store, sampled=False):
        with workbench.record("inner", inputs={}, store=store) as inner:
            pass
    assert not inner.recording and rows(store)["executions"] == 0


def test_unsampled_steps_still_behave(store: Store, counting: Counting) -> None:
    """In an unsampled execution steps still retry, return, yield, await and nest."""
    debug_yaml(0.0)
    attempts: list[int] = []

    @workbench.step("flaky", retries=2)
    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ValueError("not yet")
        return "done"

    @workbench.step("items")
    def items() -> Iterator[int]:
        yield from range(3)

    @workbench.step("wait")
    async def wait() -> int:
        await asyncio.sleep(0)
        return 7

    with workbench.record("quiet", inputs={}, store=store) as run:
        assert flaky() == "done"
        assert list(items()) == [0, 1, 2]
        assert asyncio.run(wait()) == 7
        with workbench.step("block") as block:
            block.set_result("kept for observers")
    assert rows(store) == dict.fromkeys(TABLES, 0) and not run.recording
    seen = {(e.step_id, e.status, e.retries) for e in counting.steps}
    assert seen == {
        ("flaky", "completed", 2),
        ("items", "completed", 0),
        ("wait", "completed", 0),
        ("block", "completed", 0),
    }


def test_plain_steps_of_an_unsampled_run_are_plain_calls(store: Store) -> None:
    """With no observer listening, an unsampled step is a plain call (the fast path) whose
    errors reach the caller unchanged."""
    debug_yaml(0.0)

    @workbench.step("boom")
    def boom(x: int) -> int:
        if x < 0:
            raise KeyError(x)
        return x * 2

    with workbench.record("quiet", inputs={}, store=store):
        assert boom(4) == 8
        with pytest.raises(KeyError):
            boom(-1)
    assert rows(store)["steps"] == 0


def test_features_toggle_what_a_sampled_run_keeps(store: Store, model_server: ModelServer) -> None:
    """With no feature listed a sampled run keeps its steps, step spans and call metrics, but
    no light spans, logs, states, step values or prompts."""
    debug_yaml(1.0, features=[])
    with workbench.record("lean", inputs={}, store=store) as run:
        pipeline_body(model_server)
    execution = run.execution()
    assert sorted(s.kind for s in execution.spans) == ["execution", "step"]
    assert not execution.logs and not execution.states
    step = execution.steps[0]
    assert step.status == "completed" and step.parameters is None and step.result is None
    call = execution.model_calls[0]
    assert call.input_tokens and call.cost_usd and call.model == "gpt-4o-mini"
    assert call.request["body"] is None and "log_model_prompts" in call.request["body_omitted"]
    assert call.text is None and call.chunks == []
    assert execution.cost_usd == call.cost_usd  # the execution's cost is still known


def test_extended_error_details_keep_locals_with_secrets_redacted(store: Store) -> None:
    """extended_error_details records each frame's locals, sensitive names redacted."""
    debug_yaml(1.0, features=["extended_error_details"])

    @workbench.step("fail")
    def fail(count: int) -> None:
        api_key = "sk-live-very-secret"  # noqa: F841 - a local the traceback must not show
        doubled = count * 2  # noqa: F841
        raise RuntimeError("broke")

    with pytest.raises(RuntimeError):
        with workbench.record("errors", inputs={}, store=store) as run:
            fail(21)
    error = run.execution().steps[0].error
    assert error is not None and "doubled = 42" in error.traceback
    assert "api_key = [REDACTED]" in error.traceback
    assert "sk-live-very-secret" not in error.traceback


def test_tracebacks_have_no_locals_without_the_feature(store: Store) -> None:
    """Without extended_error_details (or debug mode) tracebacks are the plain ones."""

    @workbench.step("fail")
    def fail(count: int) -> None:
        doubled = count * 2  # noqa: F841
        raise RuntimeError("broke")

    with pytest.raises(RuntimeError):
        with workbench.record("errors", inputs={}, store=store) as run:
            fail(21)
    error = run.execution().steps[0].error
    assert error is not None and "RuntimeError: broke" in error.traceback
    assert "doubled = 42" not in error.traceback


def test_environment_rate_overrides_the_file(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """WORKBENCH_DEBUG_RATE overrides debug.sampling.rate, and alone switches debug mode on."""
    debug_yaml(1.0)
    monkeypatch.setenv(RATE_ENV, "0")
    with workbench.record("env", inputs={}, store=store) as overridden:
        pass
    Path("workbench.yaml").unlink()
    with workbench.record("env", inputs={}, store=store) as alone:
        pass
    assert not overridden.recording and not alone.recording


def test_bad_environment_rate_is_refused(monkeypatch: pytest.MonkeyPatch, store: Store) -> None:
    """A WORKBENCH_DEBUG_RATE that is not a number from 0 to 1 is a ConfigError naming it."""
    monkeypatch.setenv(RATE_ENV, "10%")
    with pytest.raises(ConfigError, match=r"WORKBENCH_DEBUG_RATE='10%'.*number from 0 to 1"):
        with workbench.record("env", inputs={}, store=store):
            pass


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        (
            "debug: {enabled: true, sampling: {rate: 1.5}}",
            r"key 'debug.sampling.rate' has value 1.5.*number from 0 to 1",
        ),
        (
            "debug: {enabled: true, sampling: {rate: -0.1}}",
            r"key 'debug.sampling.rate'.*number from 0 to 1",
        ),
        (
            "debug: {features: [trace_all_requests, log_prompts]}",
            r"key 'debug.features'.*'log_prompts'.*allowed features are trace_all_requests, "
            r"log_model_prompts, save_intermediate_results, extended_error_details",
        ),
        ("debug: {sampling: {ratio: 0.1}}", r"'debug.sampling.ratio'.*allowed keys here"),
    ],
)
def test_bad_debug_config_names_key_and_allowed_values(yaml: str, message: str) -> None:
    """A rate outside 0-1 or an unknown feature is a ConfigError naming key and allowed values."""
    Path("workbench.yaml").write_text(yaml + "\n")
    with pytest.raises(ConfigError, match=message):
        load_config()


def test_a_replay_is_recorded_even_at_rate_zero(store: Store) -> None:
    """Replays are explicit debugging: debug mode never skips them."""
    with workbench.record("source", inputs={}, store=store, sampled=True) as original:
        workbench.state("x", 1)
    debug_yaml(0.0)
    with workbench.record("source", inputs={}, store=store, replay_of=original.id) as replay:
        pass
    assert replay.recording and replay.execution().replay_of == original.id
