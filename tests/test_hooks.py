"""Observers hear about executions, steps and model calls at the points the recorder promises."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

import workbench
from workbench import _hooks
from workbench.exceptions import CallRefused
from workbench.store import Store
from workbench.testing import ModelServer


class Seen(_hooks.Observer):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.stop: BaseException | None = None

    def execution_started(self, run: Any) -> None:
        self.events.append(("started", run.id))

    def execution_finished(self, run: Any) -> None:
        self.events.append(("finished", (run.id, run.status, run.duration_s)))

    def step_started(self, step: Any) -> None:
        self.events.append(("step_started", (step.step_id, step.occurrence)))

    def step_finished(self, event: _hooks.StepEvent) -> None:
        self.events.append(("step", event))

    def model_call_starting(self, run: Any, method: str, url: str, canonical: Any) -> None:
        self.events.append(("starting", url))
        if self.stop is not None:
            raise self.stop

    def model_call_finished(self, event: _hooks.ModelCallEvent) -> None:
        self.events.append(("call", event))


@pytest.fixture
def seen() -> Iterator[Seen]:
    observer = Seen()
    _hooks.add_observer(observer)
    yield observer
    _hooks.remove_observer(observer)


def _client(server: ModelServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)


def test_observer_sees_execution_step_and_priced_call(
    seen: Seen, store: Store, model_server: ModelServer
) -> None:
    """One run reports its start, the step's start, the step with its result and metrics and
    its end with status and duration, in that order, and the call's tokens and price after the
    call started (from the writer thread: possibly after the end)."""
    client = _client(model_server)

    @workbench.step("ask", metrics=[{"name": "answer_chars"}])
    def ask() -> str:
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
        return reply.choices[0].message.content or ""

    with workbench.record("hooked", inputs={}, store=store) as run:
        answer = ask()
    store.flush()
    kinds = [kind for kind, _ in seen.events]
    assert kinds.index("starting") < kinds.index("call")
    kinds.remove("call")
    assert kinds[0] == "started" and kinds[-1] == "finished"
    assert kinds.index("step_started") < kinds.index("starting") < kinds.index("step")
    assert ("step_started", ("ask", 0)) in seen.events
    step = next(e for k, e in seen.events if k == "step")
    assert (step.step_id, step.status, step.result) == ("ask", "completed", answer)
    assert step.metrics == ({"name": "answer_chars"},)
    call = next(e for k, e in seen.events if k == "call")
    recorded = run.execution().model_calls[0]
    assert call.run is run and call.step_id == "ask" and not call.replayed
    assert (call.input_tokens, call.output_tokens) == (
        recorded.input_tokens,
        recorded.output_tokens,
    )
    assert call.cost_usd == recorded.cost_usd and call.cost_usd is not None
    assert next(e for k, e in seen.events if k == "finished")[:2] == (run.id, "completed")


def test_raising_before_a_call_stops_it_and_records_why(
    seen: Seen, store: Store, model_server: ModelServer
) -> None:
    """An observer raising CallRefused before a call stops it; the call keeps the error."""
    seen.stop = CallRefused("budget spent")
    client = _client(model_server)
    before = model_server.request_count
    with pytest.raises(CallRefused, match="budget spent"):
        with workbench.record("stopped", inputs={}, store=store) as run:
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
    (call,) = run.execution().model_calls
    assert call.status_code is None and call.error is not None
    assert "budget spent" in call.error.message
    assert model_server.request_count == before


def test_failing_observer_does_not_fail_the_pipeline(
    seen: Seen, store: Store, model_server: ModelServer
) -> None:
    """Any other exception from an observer, before a call included, is logged, not raised."""

    class Broken(_hooks.Observer):
        def step_finished(self, event: _hooks.StepEvent) -> None:
            raise RuntimeError("observer bug")

        def model_call_starting(self, run: Any, method: str, url: str, canonical: Any) -> None:
            raise RuntimeError("observer bug")

    broken = Broken()
    _hooks.add_observer(broken)
    try:
        with workbench.record("robust", inputs={}, store=store) as run:
            with workbench.step("s"):
                _client(model_server).chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
                )
    finally:
        _hooks.remove_observer(broken)
    assert run.execution().status == "completed"
    assert run.execution().model_calls[0].status_code == 200
    assert any(kind == "step" for kind, _ in seen.events)


def test_a_failing_builtin_observer_does_not_keep_the_others_out(
    monkeypatch: pytest.MonkeyPatch, store: Store
) -> None:
    """One built-in factory that fails is reported once; the ones after it are still loaded."""
    monkeypatch.setattr(_hooks, "_observers", ())
    monkeypatch.setattr(_hooks, "_builtin_loaded", False)
    monkeypatch.setattr(
        _hooks,
        "BUILTIN",
        ("workbench.no_such_module:observer", "workbench.monitoring.cost._budget:observer"),
    )
    with pytest.raises(ModuleNotFoundError, match="no_such_module"):
        with workbench.record("first", inputs={}, store=store):
            pass
    assert [type(o).__name__ for o in _hooks.observers()] == ["BudgetGuard"]
    with workbench.record("second", inputs={}, store=store) as run:
        pass
    assert run.execution().status == "completed"


def _builtin(listening: tuple[_hooks.Observer, ...]) -> set[str]:
    return {type(o).__name__ for o in listening} & {
        "MetricsObserver",
        "BudgetGuard",
        "ProfilingObserver",
    }


def test_builtin_observers_with_nothing_to_do_do_not_listen_to_the_run(store: Store) -> None:
    """With no budget and no profiling trigger, only the metrics hear a run's steps and calls;
    a budget makes the budget guard hear its calls, a trigger the profiler hear its steps."""
    with workbench.record("idle", inputs={}, store=store) as run:
        assert _builtin(run.listeners.steps) == {"MetricsObserver"}
        assert _builtin(run.listeners.calls) == {"MetricsObserver"}
    Path("workbench.yaml").write_text(
        "cost_tracking: {budgets: {daily_limit: 100}}\n"
        "profiling: {check_interval: 0.01, triggers: [{condition: execution_time > 1h}]}\n"
    )
    with workbench.record("watched", inputs={}, store=store) as run:
        assert _builtin(run.listeners.steps) == {"MetricsObserver", "ProfilingObserver"}
        assert _builtin(run.listeners.calls) == {"MetricsObserver", "BudgetGuard"}
    Path("workbench.yaml").write_text("metrics: {enabled: false}\n")
    with workbench.record("quiet", inputs={}, store=store) as run:
        assert _builtin(run.listeners.steps) == set() and _builtin(run.listeners.calls) == set()


def test_an_observer_hears_only_the_events_it_overrides_and_wants(store: Store) -> None:
    """An observer of executions only is not called per step; one that says it does not want
    a run's steps is not told of them, and is still told of the run itself."""

    class RunsOnly(_hooks.Observer):
        def __init__(self) -> None:
            self.runs = 0

        def execution_finished(self, run: Any) -> None:
            self.runs += 1

    class Picky(_hooks.Observer):
        def __init__(self) -> None:
            self.steps: list[str] = []

        def wants_steps(self, run: Any) -> bool:
            return bool(run.pipeline_id == "wanted")

        def step_finished(self, event: _hooks.StepEvent) -> None:
            self.steps.append(event.run.pipeline_id)

    runs_only, picky = RunsOnly(), Picky()
    _hooks.add_observer(runs_only)
    _hooks.add_observer(picky)
    try:
        for pipeline in ("wanted", "unwanted"):
            with workbench.record(pipeline, inputs={}, store=store) as run:
                with workbench.step("s"):
                    pass
                assert runs_only not in run.listeners.steps + run.listeners.calls
    finally:
        _hooks.remove_observer(runs_only)
        _hooks.remove_observer(picky)
    assert picky.steps == ["wanted"] and runs_only.runs == 2
