"""YAML pipelines: checked before anything runs, run in dependency order, recorded, replayable."""

from __future__ import annotations

import asyncio
import json
import logging
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

import workbench
import workbench.examples
from workbench.cli import cli
from workbench.debugging import RequestReplay
from workbench.examples.research_assistant import research
from workbench.exceptions import (
    ConfigError,
    PipelineChangedWarning,
    PipelineError,
    PipelineStepError,
    ReplayError,
)
from workbench.monitoring import CustomMetric, metrics, serve_metrics
from workbench.pipelines import load_pipeline, run_pipeline
from workbench.pipelines._runner import ENTRYPOINT
from workbench.pipelines._template import render_value
from workbench.store import Store
from workbench.testing import ModelServer

EXAMPLE = Path(workbench.examples.__file__).parent / "research_assistant.yaml"

# What the test actions below saw, by test: reset by the ``events`` fixture.
EVENTS: list[tuple[str, str]] = []
STATE: dict[str, Any] = {}


@workbench.action("tp_note")
async def note(name: str, value: Any = None) -> Any:
    """Notes its start and end, yielding to the loop in between (so others can interleave)."""
    EVENTS.append((name, "start"))
    await asyncio.sleep(0)
    EVENTS.append((name, "end"))
    return value if value is not None else name


@workbench.action("tp_meet")
async def meet(name: str) -> str:
    """Waits until every party of the shared barrier is in flight at the same time."""
    STATE["in_flight"] += 1
    STATE["max_in_flight"] = max(STATE["max_in_flight"], STATE["in_flight"])
    await STATE["barrier"].wait()
    STATE["in_flight"] -= 1
    return name


@workbench.action("tp_flaky")
def flaky(failures: int) -> str:
    """A sync action that fails its first ``failures`` calls."""
    STATE["calls"] = STATE.get("calls", 0) + 1
    if STATE["calls"] <= failures:
        raise ConnectionError(f"flaky call {STATE['calls']}")
    return f"ok after {STATE['calls']} calls"


@workbench.action("tp_hang")
async def hang() -> None:
    """Never finishes on its own."""
    await asyncio.Event().wait()


@workbench.action("tp_boom")
def boom(message: str) -> None:
    raise ValueError(message)


def add(a: int, b: int) -> int:
    """A plain function registered under a taken name below."""
    return a + b


@pytest.fixture
def events() -> Iterator[list[tuple[str, str]]]:
    EVENTS.clear()
    STATE.clear()
    yield EVENTS
    EVENTS.clear()
    STATE.clear()


@pytest.fixture
def sdk_env(monkeypatch: pytest.MonkeyPatch, model_server: ModelServer) -> ModelServer:
    """Point both SDKs at the session's test model server through their environment variables."""
    monkeypatch.setenv("OPENAI_BASE_URL", model_server.openai_base_url)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", model_server.anthropic_base_url)
    return model_server


def write(folder: Path, text: str, name: str = "pipeline.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


ASK = """
    id: ask
    version: "2"
    inputs:
      question: {type: string, required: true}
    steps:
      - id: answer
        action: llm
        parameters:
          model: gpt-4o-mini
          system: Answer briefly.
          prompt: "Q: {{ inputs.question }}"
      - id: review
        action: llm
        parameters:
          provider: anthropic
          model: claude-3-5-haiku-latest
          max_tokens: 50
          prompt: "Review: {{ steps.answer.result }}"
    outputs:
      answer: "{{ steps.answer.result }}"
      review: "{{ steps.review.result }}"
"""


# -- a run is an execution ----------------------------------------------------------------------


def test_a_run_records_steps_rendered_parameters_and_model_calls(
    tmp_path: Path, store: Store, sdk_env: ModelServer
) -> None:
    """A run is one execution: inputs, rendered parameters, results, calls per step, outputs."""
    path = write(tmp_path, ASK)
    result = run_pipeline(path, {"question": "why llamas?"}, store=store, user_id="u1")
    execution = store.get_execution(result.execution_id)
    assert execution.status == "completed"
    assert (execution.pipeline_id, execution.pipeline_version) == ("ask", "2")
    assert execution.inputs == {"question": "why llamas?"} and execution.user_id == "u1"
    assert execution.entrypoint == ENTRYPOINT
    assert execution.metadata["pipeline"]["sha256"] == load_pipeline(path).sha256
    answer, review = execution.steps
    assert answer.action == "llm" and answer.parameters["prompt"] == "Q: why llamas?"
    assert review.parameters["prompt"] == f"Review: {answer.result}"
    assert [(c.step_id, c.provider) for c in execution.model_calls] == [
        ("answer", "openai"),
        ("review", "anthropic"),
    ]
    assert execution.outputs == result.outputs == {"answer": answer.result, "review": review.result}
    assert result.results == {"answer": answer.result, "review": review.result}


def test_a_pipeline_can_be_a_mapping(store: Store, events: list[tuple[str, str]]) -> None:
    """run_pipeline takes the same structure as a dict; without outputs: every step's result."""
    pipeline = {
        "id": "inline",
        "steps": [{"id": "a", "action": "tp_note", "parameters": {"name": "x"}}],
    }
    result = run_pipeline(pipeline, store=store)
    assert result.outputs == {"a": "x"}
    assert (
        store.get_execution(result.execution_id).metadata["entrypoint_arguments"]["pipeline"]
        == pipeline
    )


def test_a_run_inside_an_execution_joins_it(store: Store, events: list[tuple[str, str]]) -> None:
    """Inside workbench.record the pipeline's steps land on that execution, which can replay."""
    pipeline = {
        "id": "inline",
        "steps": [{"id": "a", "action": "tp_note", "parameters": {"name": "x"}}],
    }
    with workbench.record("outer", inputs={}, store=store) as run:
        result = run_pipeline(pipeline)
    assert result.execution_id == run.id
    execution = store.get_execution(run.id)
    assert [s.step_id for s in execution.steps] == ["a"] and execution.entrypoint == ENTRYPOINT


def test_arun_pipeline_runs_on_the_callers_loop(
    store: Store, events: list[tuple[str, str]]
) -> None:
    """The async twin runs on the running loop; the sync one refuses to block a running loop."""
    pipeline = {
        "id": "inline",
        "steps": [{"id": "a", "action": "tp_note", "parameters": {"name": "x"}}],
    }

    async def main() -> Any:
        with pytest.raises(PipelineError, match="arun_pipeline"):
            run_pipeline(pipeline, store=store)
        return await workbench.arun_pipeline(pipeline, store=store)

    assert asyncio.run(main()).outputs == {"a": "x"}


# -- scheduling -------------------------------------------------------------------------------


def test_steps_start_only_after_what_they_depend_on(
    tmp_path: Path, store: Store, events: list[tuple[str, str]]
) -> None:
    """A diamond: b and c wait for a, d for both (depends_on, or implied by steps.X)."""
    path = write(
        tmp_path,
        """
        id: diamond
        steps:
          - id: d
            action: tp_note
            parameters: {name: d, value: "{{ steps.b.result }}{{ steps.c.result }}"}
          - {id: b, action: tp_note, depends_on: [a], parameters: {name: b}}
          - {id: c, action: tp_note, depends_on: [a], parameters: {name: c}}
          - {id: a, action: tp_note, parameters: {name: a}}
        """,
    )
    assert load_pipeline(path).order() == ["a", "b", "c", "d"]
    result = run_pipeline(path, store=store)
    position = {event: index for index, event in enumerate(events)}
    for before, after in [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]:
        assert position[(before, "end")] < position[(after, "start")]
    assert result.outputs["d"] == "bc"


def test_independent_steps_run_at_the_same_time(
    tmp_path: Path, store: Store, events: list[tuple[str, str]]
) -> None:
    """Two independent steps meet at a barrier: each can finish only while the other runs."""
    STATE.update(barrier=asyncio.Barrier(2), in_flight=0, max_in_flight=0)
    path = write(
        tmp_path,
        """
        id: overlap
        steps:
          - {id: left, action: tp_meet, parameters: {name: left}, timeout: 10}
          - {id: right, action: tp_meet, parameters: {name: right}, timeout: 10}
        """,
    )
    result = run_pipeline(path, store=store)
    assert result.outputs == {"left": "left", "right": "right"}
    assert STATE["max_in_flight"] == 2


def test_max_concurrency_bounds_the_steps_in_flight(
    tmp_path: Path, store: Store, events: list[tuple[str, str]]
) -> None:
    """Four independent steps with a limit of two: never more than two in flight, and two are."""
    STATE.update(barrier=asyncio.Barrier(2), in_flight=0, max_in_flight=0)
    steps = "".join(
        f"  - {{id: s{i}, action: tp_meet, parameters: {{name: s{i}}}, timeout: 10}}\n"
        for i in range(4)
    )
    path = write(tmp_path, "id: bounded\nmax_concurrency: 3\nsteps:\n" + steps)
    run_pipeline(path, store=store, max_concurrency=2)
    assert STATE["max_in_flight"] == 2


# -- retries, timeouts, failures --------------------------------------------------------------


def test_a_failing_step_is_retried_and_its_retries_recorded(
    tmp_path: Path, store: Store, events: list[tuple[str, str]]
) -> None:
    """retries: 2 survives two failures; the step records retries=2 and a span event for each."""
    path = write(
        tmp_path,
        """
        id: flaky
        steps:
          - {id: fetch, action: tp_flaky, parameters: {failures: 2}, retries: 2, backoff: 0}
        """,
    )
    result = run_pipeline(path, store=store)
    assert result.outputs == {"fetch": "ok after 3 calls"}
    execution = store.get_execution(result.execution_id)
    (step,) = execution.steps
    assert (step.status, step.retries) == ("completed", 2)
    (span,) = [s for s in execution.spans if s.kind == "step"]
    assert [e["error.message"] for e in span.events] == ["flaky call 1", "flaky call 2"]


def test_retries_that_run_out_fail_the_run(
    tmp_path: Path, store: Store, events: list[tuple[str, str]]
) -> None:
    """With one retry for two failures, the run fails naming the step and its two attempts."""
    path = write(
        tmp_path,
        """
        id: flaky
        steps:
          - {id: fetch, action: tp_flaky, parameters: {failures: 2}, retries: 1, backoff: 0}
        """,
    )
    with pytest.raises(PipelineStepError, match=r"step 'fetch'.*after 2 attempts.*flaky call 2"):
        run_pipeline(path, store=store)


def test_an_llm_step_retries_a_provider_error_with_the_sdk_retries_off(
    tmp_path: Path, store: Store, sdk_env: ModelServer
) -> None:
    """A 500 from the provider is retried by the step (not the SDK): two calls on one step."""
    path = write(
        tmp_path,
        """
        id: retry_llm
        steps:
          - id: answer
            action: llm
            parameters: {model: gpt-4o-mini, prompt: hello}
            retries: 1
            backoff: 0
        """,
    )
    sdk_env.fail_next("500")
    result = run_pipeline(path, store=store)
    execution = store.get_execution(result.execution_id)
    assert execution.steps[0].retries == 1
    assert [c.status_code for c in execution.model_calls] == [500, 200]
    assert {c.step_id for c in execution.model_calls} == {"answer"}


def test_a_step_that_exceeds_its_timeout_fails(
    tmp_path: Path, store: Store, events: list[tuple[str, str]]
) -> None:
    """timeout: bounds each attempt; the step is recorded failed with a TimeoutError."""
    path = write(tmp_path, "id: slow\nsteps:\n  - {id: wait, action: tp_hang, timeout: 0.05}\n")
    with pytest.raises(PipelineStepError, match=r"step 'wait'.*timeout of 0\.05 s") as caught:
        run_pipeline(path, store=store)
    step = store.get_execution(caught.value.execution_id).steps[0]
    assert step.status == "failed" and step.error is not None and step.error.type == "TimeoutError"


def test_a_failed_step_fails_the_execution_and_keeps_what_ran(
    tmp_path: Path, store: Store, events: list[tuple[str, str]]
) -> None:
    """The execution fails naming the step; earlier steps stay recorded; later ones never start."""
    path = write(
        tmp_path,
        """
        id: broken
        steps:
          - {id: first, action: tp_note, parameters: {name: first}}
          - {id: second, action: tp_boom, depends_on: [first], parameters: {message: kaput}}
          - {id: third, action: tp_note, depends_on: [second], parameters: {name: third}}
        """,
    )
    with pytest.raises(PipelineStepError) as caught:
        run_pipeline(path, store=store)
    error = caught.value
    assert error.step_id == "second" and "not run: third" in str(error)
    assert isinstance(error.__cause__, ValueError)
    execution = store.get_execution(error.execution_id)
    assert execution.status == "failed" and execution.error is not None
    assert "step 'second'" in execution.error.message and "kaput" in execution.error.message
    assert [(s.step_id, s.status) for s in execution.steps] == [
        ("first", "completed"),
        ("second", "failed"),
    ]
    assert ("third", "start") not in events


# -- templates --------------------------------------------------------------------------------


def test_templates_render_text_and_keep_the_type_of_one_expression(
    tmp_path: Path, store: Store, events: list[tuple[str, str]]
) -> None:
    """One {{ expression }} keeps its value's type; other strings render to text; filters work."""
    path = write(
        tmp_path,
        """
        id: templates
        inputs:
          n: {type: integer, default: 2}
          tags: {type: array, default: [a, b]}
        steps:
          - id: dump
            action: python
            parameters:
              function: json:dumps
              arguments: {obj: "{{ inputs.tags }}", sort_keys: true}
          - {id: count, action: tp_note, parameters: {name: c, value: "{{ inputs.n * 21 }}"}}
          - {id: listed, action: tp_note, parameters: {name: l, value: "{{ inputs.tags }}"}}
        outputs:
          number: "{{ steps.count.result }}"
          text: "{{ steps.count.result }} items"
          dumped: "{{ steps.dump.result }}"
          tags: "{{ steps.listed.result | tojson }}"
          upper: "{{ steps.listed.result | map('upper') | join(',') }}"
        """,
    )
    result = run_pipeline(path, store=store)
    assert result.outputs == {
        "number": 42,
        "text": "42 items",
        "dumped": '["a", "b"]',
        "tags": '["a", "b"]',
        "upper": "A,B",
    }


@settings(max_examples=50, deadline=None)
@given(st.text(), st.text().filter(lambda t: not any(m in t for m in ("{{", "{%", "{#"))))
def test_an_expression_renders_the_value_and_plain_text_is_untouched(
    value: str, plain: str
) -> None:
    """{{ inputs.x }} is exactly the input, whatever it holds; text without markers is unchanged."""
    context = {"inputs": {"x": value}}
    assert render_value("{{ inputs.x }}", context) == value
    assert render_value({"k": [plain]}, context) == {"k": [plain]}


def test_an_undefined_name_at_run_time_fails_the_step_naming_the_template(
    tmp_path: Path, store: Store, events: list[tuple[str, str]]
) -> None:
    """steps.a.result.missing is an error, not ""; the step is recorded failed with its template."""
    path = write(
        tmp_path,
        """
        id: undefined
        steps:
          - {id: a, action: tp_note, parameters: {name: a}}
          - id: b
            action: tp_note
            parameters:
              name: "{{ steps.a.result.missing }}"
        """,
    )
    with pytest.raises(PipelineStepError) as caught:
        run_pipeline(path, store=store)
    message = str(caught.value)
    assert ":7: step 'b': parameter 'name'" in message and "steps.a.result.missing" in message
    assert "has no attribute 'missing'" in message
    execution = store.get_execution(caught.value.execution_id)
    failed = execution.steps[1]
    assert failed.status == "failed" and failed.parameters == {
        "name": "{{ steps.a.result.missing }}"
    }


def test_the_sandbox_refuses_python_internals(
    tmp_path: Path, store: Store, events: list[tuple[str, str]]
) -> None:
    """Templates cannot reach Python's internals through a value's dunder attributes."""
    path = write(
        tmp_path,
        """
        id: escape
        steps:
          - {id: a, action: tp_note, parameters: {name: a}}
          - {id: b, action: tp_note, parameters: {name: "{{ steps.a.result.__class__.__mro__ }}"}}
        """,
    )
    with pytest.raises(PipelineStepError, match="SecurityError: access to attribute '__class__'"):
        run_pipeline(path, store=store)
    assert ("b", "start") not in events


# -- bad input: nothing runs -------------------------------------------------------------------

BAD = {
    "invalid_yaml": (
        "id: bad\nsteps:\n  - id: a\n    action: tp_note\n   parameters: {name: a}\n",
        ["invalid YAML", ":5:", "fix the YAML syntax"],
    ),
    "unknown_action": (
        "id: bad\nsteps:\n  - id: a\n    action: tp_nte\n",
        [
            ":4:",
            "step 'a'",
            "unknown action 'tp_nte'",
            "did you mean 'tp_note'",
            "@workbench.action",
        ],
    ),
    "cycle": (
        "id: bad\nsteps:\n  - {id: a, action: tp_note, depends_on: [c], parameters: {name: a}}\n"
        "  - {id: b, action: tp_note, depends_on: [a], parameters: {name: b}}\n"
        "  - {id: c, action: tp_note, parameters: {name: '{{ steps.b.result }}'}}\n",
        ["dependency cycle: a → c → b → a", "remove one of these dependencies"],
    ),
    "template_syntax": (
        "id: bad\nsteps:\n  - id: a\n    action: tp_note\n    parameters:\n"
        "      name: '{{ inputs.x | }}'\ninputs: {x: string}\n",
        [":6:", "step 'a'", "parameter 'name'", "syntax error", "fix the template"],
    ),
    "undefined_name": (
        "id: bad\nsteps:\n  - {id: a, action: tp_note, parameters: {name: '{{ topic }}'}}\n",
        [":3:", "reads 'topic', which is not defined here", "inputs.NAME"],
    ),
    "undeclared_input": (
        "id: bad\nsteps:\n  - {id: a, action: tp_note, parameters: {name: '{{ inputs.topc }}'}}\n"
        "inputs: {topic: string}\n",
        ["inputs.topc", "did you mean 'topic'", "declare it under inputs:"],
    ),
    "unknown_step_key": (
        "id: bad\nsteps:\n  - id: a\n    action: tp_note\n    parameters: {name: a}\n"
        "    retry: 2\n",
        [":6:", "unknown key 'retry'", "did you mean 'retries'"],
    ),
    "unknown_parameter": (
        "id: bad\nsteps:\n  - id: a\n    action: llm\n"
        "    parameters: {model: m, prompt: p, temp: 1}\n",
        [":5:", "unknown parameter(s) 'temp' for action 'llm'", "temperature"],
    ),
    "duplicate_step": (
        "id: bad\nsteps:\n  - {id: a, action: tp_note, parameters: {name: a}}\n"
        "  - {id: a, action: tp_note, parameters: {name: b}}\n",
        [":4:", "step id 'a' is used twice (first at line 3)"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_pipeline_names_file_line_step_and_fix_and_runs_nothing(
    case: str, tmp_path: Path, store: Store, sdk_env: ModelServer, events: list[tuple[str, str]]
) -> None:
    """Each bad file is one PipelineError naming the problem and fix; no execution, no request."""
    text, fragments = BAD[case]
    path = write(tmp_path, text)
    requests_before = sdk_env.request_count
    with pytest.raises(PipelineError) as caught:
        run_pipeline(path, store=store)
    message = str(caught.value)
    assert message.startswith(str(path.resolve()))
    for fragment in fragments:
        assert fragment in message
    assert store.list_executions() == [] and events == []
    assert sdk_env.request_count == requests_before


def test_a_missing_required_input_runs_nothing(
    tmp_path: Path, store: Store, sdk_env: ModelServer
) -> None:
    """A required input left out, or a wrong type, is named with how to pass it; nothing runs."""
    path = write(tmp_path, ASK)
    requests_before = sdk_env.request_count
    with pytest.raises(PipelineError, match=r"needs the input 'question'.*--input question="):
        run_pipeline(path, store=store)
    with pytest.raises(PipelineError, match=r"input 'question' .* must be a string, got 3"):
        run_pipeline(path, {"question": 3}, store=store)
    with pytest.raises(PipelineError, match=r"no input\(s\) 'questoin' \(did you mean 'question'"):
        run_pipeline(path, {"questoin": "x"}, store=store)
    assert store.list_executions() == [] and sdk_env.request_count == requests_before


def test_a_missing_file_is_a_pipeline_error(tmp_path: Path) -> None:
    """A path that does not exist names the path and the working directory."""
    with pytest.raises(PipelineError, match=r"no pipeline file at .*nope\.yaml"):
        load_pipeline(tmp_path / "nope.yaml")


# -- monitoring -------------------------------------------------------------------------------


def test_custom_metrics_are_recorded_from_the_rendered_result(
    tmp_path: Path, store: Store, events: list[tuple[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    """monitoring.custom_metrics are recorded with value and labels rendered from the result
    and the pipeline's context (``steps`` too), and nothing is warned about."""
    name = f"result_chars_{uuid.uuid4().hex[:8]}"
    path = write(
        tmp_path,
        f"""
        id: metered
        inputs: {{kind: {{type: string, default: demo}}}}
        steps:
          - id: a
            action: tp_note
            parameters: {{name: abcde}}
          - id: b
            action: tp_note
            parameters: {{name: xy}}
            monitoring:
              custom_metrics:
                - name: {name}
                  type: histogram
                  value: "{{{{ results | length }}}}"
                  buckets: [1, 10]
                  labels: {{kind: "{{{{ inputs.kind }}}}", before: "{{{{ steps.a.result }}}}"}}
        """,
    )
    with caplog.at_level(logging.WARNING):
        run_pipeline(path, store=store)
        run_pipeline(path, store=store)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    labels = {"kind": "demo", "before": "abcde"}
    assert metrics.value(f"{name}_count", labels) == 2
    assert metrics.value(f"{name}_sum", labels) == 4
    assert metrics.value(f"{name}_bucket", {**labels, "le": "1.0"}) == 0


def test_an_unsampled_yaml_run_still_records_its_custom_metric(
    tmp_path: Path, store: Store, events: list[tuple[str, str]]
) -> None:
    """Debug sampling at rate 0 records no rows, yet a YAML step's custom metric still counts
    (metrics do not shrink with the sampling rate)."""
    name = f"unsampled_{uuid.uuid4().hex[:8]}"
    Path("workbench.yaml").write_text("debug:\n  enabled: true\n  sampling: {rate: 0.0}\n")
    path = write(
        tmp_path,
        f"""
        id: quiet
        steps:
          - id: a
            action: tp_note
            parameters: {{name: abc}}
            monitoring:
              custom_metrics: [{{name: {name}, type: counter, value: "{{{{ results | length }}}}"}}]
        """,
    )
    run_pipeline(path, store=store)
    store.flush()
    assert store.list_executions() == []  # unsampled: nothing written
    assert metrics.value(f"{name}_total") == 3


def test_a_yaml_metric_is_checked_by_the_same_parser_as_a_python_one(tmp_path: Path) -> None:
    """A declaration the Python parser refuses is refused by the YAML loader with the same
    words, naming the file and line."""
    bad = {"name": "x", "type": "gauge", "value": 1, "buckets": [1]}
    with pytest.raises(ConfigError) as python_error:
        CustomMetric.parse(bad)
    path = write(
        tmp_path,
        """
        id: metered
        steps:
          - id: a
            action: tp_note
            parameters: {name: abcde}
            monitoring:
              custom_metrics:
                - {name: x, type: gauge, value: 1, buckets: [1]}
        """,
    )
    with pytest.raises(PipelineError) as yaml_error:
        load_pipeline(path)
    assert str(python_error.value) in str(yaml_error.value)
    assert "pipeline.yaml:8" in str(yaml_error.value)


def test_the_example_yaml_metric_is_served_on_metrics(
    store: Store, sdk_env: ModelServer, caplog: pytest.LogCaptureFixture
) -> None:
    """After a run of examples/research_assistant.yaml, a real /metrics endpoint serves its
    draft_chars histogram (workbench warns about nothing)."""
    before = metrics.value("draft_chars_count") or 0
    with caplog.at_level(logging.WARNING, logger="workbench"):
        result = run_pipeline(EXAMPLE, {"topic": "llamas"}, store=store)
    assert [r.getMessage() for r in caplog.records if r.name.startswith("workbench")] == []
    draft = len(result.outputs["draft"])
    with serve_metrics(port=0) as server:
        text = httpx.get(f"http://127.0.0.1:{server.port}/metrics").text
    samples = {
        (sample.name, sample.labels.get("le")): sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "draft_chars"
        for sample in family.samples
    }
    assert samples[("draft_chars_count", None)] == before + 1
    assert samples[("draft_chars_bucket", "10000.0")] >= 1
    assert samples[("draft_chars_sum", None)] >= draft


# -- replay -------------------------------------------------------------------------------------


def _record_offline(path: Path, store: Store, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run against a private server, then stop it: nothing answers any more."""
    with ModelServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_base_url)
        result = run_pipeline(path, {"question": "why llamas?"}, store=store)
    return result.execution_id


def test_a_yaml_run_replays_from_the_recording_and_compares_equal(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RequestReplay re-runs a YAML run with its server stopped; the diff finds no difference."""
    path = write(tmp_path, ASK)
    original = _record_offline(path, store, monkeypatch)
    replay = RequestReplay(store)
    result = replay.replay_execution(original)
    assert result.status == "completed" and result.mismatches == [] and result.unused == []
    assert result.output == store.get_execution(original).outputs
    replayed = store.get_execution(result.execution_id)
    assert replayed.replay_of == original and len(replayed.model_calls) == 2
    assert "pipeline_changed" not in replayed.metadata
    diff = replay.compare_executions(original, result)
    assert not diff, diff.differences


def test_a_replay_of_a_changed_file_warns_and_notes_it(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An edited pipeline file is reported: a PipelineChangedWarning and the replay's metadata."""
    path = write(tmp_path, ASK)
    original = _record_offline(path, store, monkeypatch)
    path.write_text(path.read_text() + "# edited after the recording\n")
    with pytest.warns(
        PipelineChangedWarning, match=r"pipeline\.yaml changed since it was recorded"
    ):
        result = RequestReplay(store).replay_execution(original)
    changed = store.get_execution(result.execution_id).metadata["pipeline_changed"]
    assert (
        changed["recorded_sha256"] == store.get_execution(original).metadata["pipeline"]["sha256"]
    )
    assert changed["sha256"] == load_pipeline(path).sha256


def test_replay_modifications_apply_to_yaml_steps(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """from_step, step_outputs and inputs work on a YAML run as on a Python pipeline."""
    path = write(tmp_path, ASK)
    original = _record_offline(path, store, monkeypatch)
    replay = RequestReplay(store)
    from_review = replay.replay_execution(original, modifications={"from_step": "review"})
    assert from_review.output == store.get_execution(original).outputs
    forced = replay.replay_execution(
        original, modifications={"step_outputs": {"answer": "forced"}}, on_miss="test-model"
    )
    review = store.get_execution(forced.execution_id).steps[1]
    assert review.parameters["prompt"] == "Review: forced"
    other = replay.replay_execution(
        original,
        modifications={"inputs": {"inputs": {"question": "why alpacas?"}}},
        on_miss="test-model",
    )
    answer = store.get_execution(other.execution_id).steps[0]
    assert answer.parameters["prompt"] == "Q: why alpacas?"


def test_a_yaml_replay_overrides_one_input_by_its_name(
    tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """inputs={"question": ...} overrides that one input of a YAML run, as `workbench run
    --input question=...` names it; an undeclared name is the pipeline's own clear error."""
    path = write(tmp_path, ASK)
    original = _record_offline(path, store, monkeypatch)
    replay = RequestReplay(store)
    other = replay.replay_execution(
        original, modifications={"inputs": {"question": "why alpacas?"}}, on_miss="test-model"
    )
    answer = store.get_execution(other.execution_id).steps[0]
    assert answer.parameters["prompt"] == "Q: why alpacas?"
    with pytest.raises(ReplayError, match=r"has no input.*'questoin'.*its inputs are: question"):
        replay.replay_execution(original, modifications={"inputs": {"questoin": "x"}})


# -- the example ------------------------------------------------------------------------------


def test_the_example_yaml_sends_the_same_requests_as_the_python_example(
    store: Store, sdk_env: ModelServer
) -> None:
    """examples/research_assistant.yaml runs end to end and is the Python example's twin."""
    result = run_pipeline(EXAMPLE, {"topic": "llamas"}, store=store)
    with workbench.record("research_assistant", inputs={}, store=store) as run:
        python_outputs = research(
            "llamas",
            openai_base_url=sdk_env.openai_base_url,
            anthropic_base_url=sdk_env.anthropic_base_url,
        )
    assert result.outputs == python_outputs
    yaml_run, python_run = store.get_execution(result.execution_id), store.get_execution(run.id)
    assert [(c.step_id, c.request_key) for c in yaml_run.model_calls] == [
        (c.step_id, c.request_key) for c in python_run.model_calls
    ]
    assert [s.step_id for s in yaml_run.steps] == [
        "retrieve",
        "outline",
        "sections",
        "draft",
        "critique",
    ]
    assert {s.name for s in yaml_run.states} == {"retrieval_scores"}


# -- the command line -------------------------------------------------------------------------


def test_cli_run_json_with_the_test_model(tmp_path: Path) -> None:
    """`workbench run FILE --test-model --json` records the example offline and prints it."""
    db = tmp_path / "cli.db"
    outcome = CliRunner().invoke(
        cli,
        ["run", str(EXAMPLE), "--test-model", "--input", "topic=llamas", "--json", "--db", str(db)],
    )
    assert outcome.exit_code == 0, outcome.output
    printed = json.loads(outcome.stdout)
    assert printed["status"] == "completed" and printed["outputs"]["topic"] == "llamas"
    assert [s["step_id"] for s in printed["steps"]][-1] == "critique"
    with Store(db) as store:
        assert store.get_execution(printed["execution_id"]).status == "completed"


def test_cli_run_without_a_key_fails_at_once_and_sends_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no API key and no base URL, an llm step fails before sending (not retried against
    the real provider): one error naming OPENAI_API_KEY and --test-model, exit code 1, and no
    model call recorded."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    path = write(
        tmp_path,
        """
        id: keyless
        steps:
          - id: ask
            action: llm
            retries: 2
            backoff: 0
            parameters: {model: gpt-4o-mini, prompt: hi}
        """,
    )
    db = tmp_path / "keyless.db"
    outcome = CliRunner().invoke(cli, ["run", str(path), "--db", str(db)])
    assert outcome.exit_code == 1, outcome.output
    message = " ".join(outcome.output.split())
    assert "OPENAI_API_KEY is not set (nothing was sent)" in message and "--test-model" in message
    with Store(db) as store:
        (execution,) = store.list_executions()
        recorded = store.get_execution(execution.id)
    assert recorded.model_calls == [] and recorded.steps[0].retries == 0


def test_cli_run_reports_a_failed_step_with_exit_code_1(
    tmp_path: Path, events: list[tuple[str, str]]
) -> None:
    """A failed step: one error line naming the step (or JSON with --json), exit code 1."""
    path = write(
        tmp_path, "id: broken\nsteps:\n  - {id: a, action: tp_boom, parameters: {message: kaput}}\n"
    )
    db = str(tmp_path / "cli.db")
    plain = CliRunner().invoke(cli, ["run", str(path), "--db", db])
    assert plain.exit_code == 1 and "error: pipeline 'broken' failed at step 'a'" in plain.stderr
    as_json = CliRunner().invoke(cli, ["run", str(path), "--db", db, "--json"])
    assert as_json.exit_code == 1
    printed = json.loads(as_json.stdout)
    assert (printed["status"], printed["failed_step"]) == ("failed", "a")


def test_cli_validate(tmp_path: Path) -> None:
    """`workbench validate` prints the order of a good file, and the problem of a bad one."""
    good = CliRunner().invoke(cli, ["validate", str(EXAMPLE)])
    assert good.exit_code == 0
    assert "retrieve → outline → sections → draft → critique" in good.stdout
    bad = write(tmp_path, "id: bad\nsteps:\n  - {id: a, action: nope}\n")
    outcome = CliRunner().invoke(cli, ["validate", str(bad)])
    assert outcome.exit_code == 1 and "unknown action 'nope'" in outcome.stderr
    as_json = CliRunner().invoke(cli, ["validate", str(bad), "--json"])
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["line"] == 3


def test_validate_does_not_echo_a_file_that_is_not_a_pipeline(tmp_path: Path) -> None:
    """`workbench validate` of a file that is not a pipeline (say /etc/passwd) says so without
    printing the file's content, which may hold anything."""
    secret = "root:x:0:0:hunter2-password-of-root:/root:/bin/bash"
    path = write(tmp_path, secret + "\n" + "daemon:x:1:1::/usr/sbin:/bin/false\n", "passwd")
    for args in (["validate", str(path)], ["validate", str(path), "--json"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1
        assert "hunter2" not in result.output and "daemon" not in result.output
        assert "id: my_pipeline" in result.output and str(path) in result.output


def test_cli_input_values_are_read_as_the_declared_type(tmp_path: Path) -> None:
    """--input n=3 is an integer for an integer input; a bad number names the allowed form."""
    path = write(
        tmp_path,
        "id: typed\ninputs: {n: integer}\n"
        "steps:\n  - {id: a, action: tp_note, parameters: {name: a}}\n",
    )
    assert load_pipeline(path).parse_input("n", "3") == 3
    outcome = CliRunner().invoke(cli, ["validate", str(path), "--input", "n=three"])
    assert outcome.exit_code == 1 and "not a valid integer" in outcome.stderr


def test_action_names_cannot_be_taken_twice() -> None:
    """Registering another function under a taken (or built-in) name is refused."""
    with pytest.raises(PipelineError, match="already registered"):
        workbench.action("llm")(add)
    with pytest.raises(PipelineError, match="already registered"):
        workbench.action("tp_note")(add)
