"""The pipeline document's pydantic models: each bad shape is one PipelineError naming the file,
the line, the step or input, what was allowed and the fix; good documents load as before."""

from __future__ import annotations

from pathlib import Path

import pytest

import workbench.examples
from workbench.exceptions import PipelineError
from workbench.pipelines import load_pipeline
from workbench.pipelines._schema import PipelineDocument, StepDocument

EXAMPLE = Path(workbench.examples.__file__).parent / "research_assistant.yaml"

HEAD = "id: p\nsteps:\n"
STEP = "  - id: a\n    action: llm\n    parameters: {model: m, prompt: p}\n"

# name: (file text, fragments of the message, line, step id)
BAD: dict[str, tuple[str, list[str], int | None, str | None]] = {
    "no_id": (
        "steps:\n" + STEP,
        ["the pipeline needs an id", "got None", "add e.g. 'id: research_assistant'"],
        1,
        None,
    ),
    "misspelt_top_key_before_missing_steps": (
        "id: p\nstep:\n" + STEP,
        ["unknown key 'step' in the pipeline", "did you mean 'steps'", "allowed are: id,"],
        2,
        None,
    ),
    "version": ("id: p\nversion: [1]\nsteps:\n" + STEP, ['a string like "1.0"', "a list"], 2, None),
    "imports": (
        "id: p\nimports: 3\nsteps:\n" + STEP,
        ["imports must be a list of module names", "got 3"],
        2,
        None,
    ),
    "max_concurrency": (
        "id: p\nmax_concurrency: true\nsteps:\n" + STEP,
        ["max_concurrency must be a whole number >= 1", "got True"],
        2,
        None,
    ),
    "inputs_not_a_mapping": (
        "id: p\ninputs: [a]\nsteps:\n" + STEP,
        ["inputs must be a mapping (key: value lines), got a list"],
        2,
        None,
    ),
    "input_name": (
        "id: p\ninputs: {1x: string}\nsteps:\n" + STEP,
        ["input name '1x' is not an identifier", "letters, digits and _"],
        2,
        None,
    ),
    "input_key": (
        "id: p\ninputs:\n  x: {type: string, requird: true}\nsteps:\n" + STEP,
        ["unknown key 'requird' in input 'x'", "did you mean 'required'", "type, required,"],
        3,
        None,
    ),
    "input_type": (
        "id: p\ninputs:\n  x:\n    type: strng\nsteps:\n" + STEP,
        ["input 'x': unknown type 'strng'", "did you mean 'string'", "the types are: string,"],
        4,
        None,
    ),
    "input_short_type_names_the_input_line": (
        "id: p\ninputs:\n  x: strng\nsteps:\n" + STEP,
        ["input 'x': unknown type 'strng'"],
        3,
        None,
    ),
    "input_required": (
        "id: p\ninputs:\n  x:\n    required: maybe\nsteps:\n" + STEP,
        ["input 'x': required must be true or false, got 'maybe'"],
        4,
        None,
    ),
    "input_default": (
        "id: p\ninputs:\n  x:\n    type: string\n    default: 3\nsteps:\n" + STEP,
        ["input 'x': the default must be a string, got 3"],
        5,
        None,
    ),
    "no_steps": ("id: p\n", ["steps must be a non-empty list", "got nothing"], 1, None),
    "step_not_a_mapping": (HEAD + "  - 3\n", ["step #1 must be a mapping", "int 3"], 3, None),
    "step_id_a_keyword": (
        HEAD + "  - id: class\n    action: llm\n",
        ["step #1 needs an id that is a Python identifier", "got 'class'"],
        3,
        None,
    ),
    "duplicate_step": (HEAD + STEP + STEP, ["step id 'a' is used twice (first at line 3)"], 6, "a"),
    "no_action": (HEAD + "  - id: a\n", ["the step needs an action", "got None"], 3, "a"),
    "unknown_step_key_before_bad_value": (
        HEAD + STEP + "    retries: -1\n    retrys: 1\n",
        ["step 'a': unknown key 'retrys' in step 'a'", "did you mean 'retries'"],
        7,
        "a",
    ),
    "parameters": (
        HEAD + "  - id: a\n    action: llm\n    parameters: [1]\n",
        ["parameters must be a mapping (key: value lines), got a list"],
        5,
        "a",
    ),
    "depends_on": (HEAD + STEP + "    depends_on: 3\n", ["list of step ids, got 3"], 6, "a"),
    "retries": (HEAD + STEP + "    retries: 1.5\n", ["whole number >= 0", "got 1.5"], 6, "a"),
    "backoff": (HEAD + STEP + "    backoff: -1\n", ["seconds >= 0, got -1"], 6, "a"),
    "timeout": (HEAD + STEP + "    timeout: '3'\n", ["seconds > 0, got '3'"], 6, "a"),
    "monitoring_key": (
        HEAD + STEP + "    monitoring: {metrics: []}\n",
        ["unknown key 'metrics' in monitoring", "did you mean 'custom_metrics'"],
        6,
        "a",
    ),
    "custom_metrics": (
        HEAD + STEP + "    monitoring: {custom_metrics: 3}\n",
        ["custom_metrics must be a list of metrics, got int 3"],
        6,
        "a",
    ),
    "custom_metric_not_a_mapping": (
        HEAD + STEP + "    monitoring:\n      custom_metrics:\n        - 3\n",
        ["custom metric #1 must be a mapping"],
        8,
        "a",
    ),
    "custom_metric_without_name": (
        HEAD + STEP + "    monitoring:\n      custom_metrics:\n        - {type: gauge}\n",
        ["has no name; add name: my_metric"],
        8,
        "a",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_shape_names_file_line_step_and_what_is_allowed(case: str, tmp_path: Path) -> None:
    """Each bad shape is one PipelineError whose message starts with file:line, names the step
    or input and what was allowed, and whose attributes carry the same line and step."""
    text, fragments, line, step = BAD[case]
    path = tmp_path / "pipeline.yaml"
    path.write_text(text)
    with pytest.raises(PipelineError) as caught:
        load_pipeline(path)
    message = str(caught.value)
    assert message.startswith(f"{path.resolve()}:{line}: ")
    for fragment in fragments:
        assert fragment in message
    assert (caught.value.line, caught.value.step_id) == (line, step)
    assert caught.value.__cause__ is None  # pydantic's own error text never reaches the user


def test_a_mapping_pipeline_is_checked_by_the_same_models() -> None:
    """A pipeline given as a dict gets the same words, with <dict> and no line."""
    with pytest.raises(PipelineError) as caught:
        load_pipeline({"id": "p", "steps": [{"id": "a", "action": "llm", "retries": "x"}]})
    assert str(caught.value) == (
        "<dict>: step 'a': retries must be a whole number >= 0 (attempts after a failure), got 'x'"
    )
    assert caught.value.line is None


def test_the_models_list_the_keys_a_file_may_hold() -> None:
    """The keys an unknown key's message lists are the models' fields, in the format's order."""
    assert list(PipelineDocument.model_fields) == [
        "id",
        "version",
        "description",
        "imports",
        "max_concurrency",
        "inputs",
        "steps",
        "outputs",
    ]
    assert list(StepDocument.model_fields)[:3] == ["id", "action", "description"]


def test_short_forms_and_defaults_load_as_written() -> None:
    """One import or dependency without brackets, ``name: type`` inputs, null parameters and
    a numeric version load as the long forms; unset keys take the documented defaults."""
    pipeline = load_pipeline(
        {
            "id": "p",
            "version": 2,
            "imports": "json",
            "inputs": {"topic": "string", "n": None, "k": {"type": "integer", "default": 3}},
            "steps": [
                {"id": "a", "action": "llm", "parameters": {"model": "m", "prompt": "p"}},
                {
                    "id": "b",
                    "action": "llm",
                    "parameters": {"model": "m", "prompt": "{{ inputs.topic }}"},
                    "depends_on": "a",
                    "backoff": 0,
                    "timeout": 2,
                },
            ],
        }
    )
    assert (pipeline.version, pipeline.imports, pipeline.max_concurrency) == ("2", ("json",), 8)
    assert {n: (s.type, s.has_default, s.default) for n, s in pipeline.inputs.items()} == {
        "topic": ("string", False, None),
        "n": ("any", False, None),
        "k": ("integer", True, 3),
    }
    first, second = pipeline.steps
    assert (first.retries, first.backoff_s, first.timeout_s, first.metrics) == (0, 1.0, None, ())
    assert (second.depends_on, second.backoff_s, second.timeout_s) == (("a",), 0.0, 2.0)
    assert isinstance(second.timeout_s, float)


def test_the_example_pipeline_keeps_its_lines() -> None:
    """The example file loads with every step's line, its parameters' lines below it (run-time
    errors name them) and each metric's line."""
    pipeline = load_pipeline(EXAMPLE)
    lines = EXAMPLE.read_text().splitlines()
    for step in pipeline.steps:
        assert f"id: {step.id}" in lines[step.line - 1]
        assert all(line > step.line for line in step.parameter_lines.values())
        for metric in step.metrics:
            assert metric.name in lines[metric.line - 1]
