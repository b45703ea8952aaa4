"""The YAML pipeline format and the checked spec a run executes.

Owns the frozen records of a checked pipeline (:class:`Pipeline`, :class:`StepSpec`,
:class:`InputSpec`, :class:`MetricSpec`) and checking a run's inputs against the declared ones.
Reading the file is ``_yaml``'s, checking it ``_load``'s, rendering ``_template``'s, actions
``_actions``', running ``_runner``'s.

The format::

    id: research_assistant            # the pipeline id of every execution
    version: "1.0"
    imports: [my_project.actions]     # modules whose @workbench.action registrations are used
    max_concurrency: 4                # independent steps running at once (default 8)
    inputs: {topic: {type: string, required: true}}
    steps:
      - id: web_search                # a Python identifier: templates read steps.web_search
        action: search
        parameters: {query: "{{ inputs.topic }}"}
        depends_on: [other_step]      # also implied by a template reading steps.other_step
        retries: 2                    # more attempts after a failure, waiting backoff seconds,
        backoff: 1.0                  #   doubled each time
        timeout: 30                   # seconds per attempt
        monitoring:
          custom_metrics: [{name: hits, type: counter, value: "{{ results | length }}"}]
    outputs: {summary: "{{ steps.summarise.result }}"}
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from workbench.exceptions import PipelineError
from workbench.monitoring.prometheus._custom import CustomMetric

__all__ = [
    "DEFAULT_BACKOFF_S",
    "DEFAULT_MAX_CONCURRENCY",
    "INPUT_TYPES",
    "InputSpec",
    "MetricSpec",
    "Pipeline",
    "StepSpec",
    "suggest",
    "type_problem",
]

DEFAULT_MAX_CONCURRENCY = 8
DEFAULT_BACKOFF_S = 1.0
INPUT_TYPES = ("string", "integer", "number", "boolean", "array", "object", "any")


@dataclass(frozen=True, slots=True)
class InputSpec:
    """One declared input of a pipeline."""

    name: str
    type: str = "any"
    required: bool = False
    default: Any = None
    has_default: bool = False
    description: str | None = None
    line: int | None = None


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """A step's custom metric (``monitoring.custom_metrics``): the declaration as
    :meth:`CustomMetric.parse` checked it — the parser Python declarations go through too — and
    the line it is on. The runner renders its templates and the metrics layer records it."""

    metric: CustomMetric
    line: int | None = None

    @property
    def name(self) -> str:
        return self.metric.name

    @property
    def value(self) -> Any:
        """A template, a constant, or None for the step's result itself."""
        return self.metric.value

    @property
    def labels(self) -> Mapping[str, str]:
        return self.metric.labels


@dataclass(frozen=True, slots=True)
class StepSpec:
    """One step as written, checked; its parameters are still templates."""

    id: str
    action: str
    parameters: Mapping[str, Any]
    #: ``depends_on`` as written.
    depends_on: tuple[str, ...]
    #: ``depends_on`` and every step its templates read, in file order.
    dependencies: tuple[str, ...]
    retries: int = 0
    backoff_s: float = DEFAULT_BACKOFF_S
    timeout_s: float | None = None
    metrics: tuple[MetricSpec, ...] = ()
    description: str | None = None
    line: int | None = None
    #: The line of each parameter path (``prompt``, ``messages[0].content``) for run-time errors.
    parameter_lines: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Pipeline:
    """A checked pipeline: what ``run_pipeline`` executes."""

    id: str
    steps: tuple[StepSpec, ...]
    inputs: Mapping[str, InputSpec]
    outputs: Any  # a template structure, or None for "every step's result"
    source: str  # the file's path, or "<dict>"
    sha256: str  # of the file's bytes, or of the mapping as canonical JSON
    document: Any  # the mapping a dict pipeline was given as (None for a file)
    version: str | None = None
    description: str | None = None
    imports: tuple[str, ...] = ()
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    output_lines: Mapping[str, int] = field(default_factory=dict)

    @property
    def path(self) -> Path | None:
        return None if self.document is not None else Path(self.source)

    @property
    def reference(self) -> Any:
        """What a recorded run names as its pipeline: the file's path, or the mapping itself."""
        return self.source if self.document is None else self.document

    def step(self, step_id: str) -> StepSpec:
        for spec in self.steps:
            if spec.id == step_id:
                return spec
        raise KeyError(step_id)

    def order(self) -> list[str]:
        """Step ids in an order that respects every dependency (file order among equals)."""
        done: list[str] = []
        placed: set[str] = set()
        remaining = list(self.steps)
        while remaining:
            for spec in remaining:
                if all(d in placed for d in spec.dependencies):
                    done.append(spec.id)
                    placed.add(spec.id)
                    remaining.remove(spec)
                    break
        return done

    def where(self, line: int | None = None) -> str:
        return f"{self.source}:{line}" if line is not None else self.source

    def check_inputs(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        """The run's inputs: ``given`` checked against the declared inputs, defaults filled in.

        An undeclared input, a missing required one or a value of the wrong type is a
        :class:`PipelineError` naming the input and the fix.
        """
        values = dict(given or {})
        if not isinstance(given, Mapping | None) or any(not isinstance(k, str) for k in values):
            raise PipelineError(
                f"inputs of pipeline {self.id!r} must map input names to values, got {given!r}",
                source=self.source,
            )
        declared = ", ".join(self.inputs) or "none"
        unknown = sorted(set(values) - set(self.inputs))
        if unknown:
            hint = suggest(unknown[0], self.inputs)
            raise PipelineError(
                f"{self.source}: pipeline {self.id!r} has no input(s) "
                f"{', '.join(map(repr, unknown))}{hint}; its inputs are: {declared}. Fix the "
                f"name, or declare the input under inputs: in the pipeline file",
                source=self.source,
            )
        result: dict[str, Any] = {}
        for name, spec in self.inputs.items():
            if name in values:
                value = values[name]
                problem = type_problem(value, spec.type)
                if problem:
                    raise PipelineError(
                        f"{self.where(spec.line)}: input {name!r} of pipeline {self.id!r} "
                        f"must be {problem}, got {value!r}; pass a value of that type",
                        source=self.source,
                        line=spec.line,
                    )
                result[name] = value
            elif spec.has_default:
                result[name] = spec.default
            elif spec.required:
                raise PipelineError(
                    f"{self.where(spec.line)}: pipeline {self.id!r} needs the input {name!r} "
                    f"({spec.type}{': ' + spec.description if spec.description else ''}); pass "
                    f"it with --input {name}=VALUE on the command line, or "
                    f"inputs={{{name!r}: ...}} to run_pipeline",
                    source=self.source,
                    line=spec.line,
                )
        return result

    def parse_input(self, name: str, text: str) -> Any:
        """A command-line ``--input name=text`` as the declared type (JSON for arrays, objects
        and undeclared types when it parses as JSON, else the text)."""
        spec = self.inputs.get(name)
        kind = spec.type if spec is not None else "any"
        try:
            if kind == "string":
                return text
            if kind == "integer":
                return int(text)
            if kind == "number":
                number = float(text)
                return int(number) if number.is_integer() and "." not in text else number
            if kind == "boolean":
                lowered = text.strip().lower()
                if lowered in ("true", "yes", "1", "on"):
                    return True
                if lowered in ("false", "no", "0", "off"):
                    return False
                raise ValueError(text)
            try:
                return orjson.loads(text)
            except orjson.JSONDecodeError:
                if kind in ("array", "object"):
                    raise
                return text
        except ValueError:
            raise PipelineError(
                f"--input {name}={text!r} is not a valid {kind} for pipeline {self.id!r}; "
                f"{_TYPE_EXAMPLES[kind]}",
                source=self.source,
                line=spec.line if spec is not None else None,
            ) from None


_TYPE_EXAMPLES = {
    "string": "any text is a string",
    "integer": "write a whole number like 3",
    "number": "write a number like 0.5",
    "boolean": "write true or false",
    "array": 'write a JSON array like \'["a", "b"]\'',
    "object": "write a JSON object like '{\"k\": 1}'",
    "any": "any text or JSON",
}


def type_problem(value: Any, kind: str) -> str | None:
    """What ``value`` should have been for the declared ``kind``, or ``None`` if it is fine."""
    ok = {
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "array": isinstance(value, list | tuple),
        "object": isinstance(value, Mapping),
        "any": True,
    }[kind]
    return None if ok else f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"


def suggest(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
