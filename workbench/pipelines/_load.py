"""Checking a pipeline before anything runs, and building its :class:`Pipeline`.

Owns every check of a pipeline document (from a file or a mapping): known keys and their types,
step ids, actions and their parameters, ``imports`` (imported here, so their actions are
registered), the ``python`` action's function, dependencies and cycles, template syntax and the
names templates read (``steps.X`` adds a dependency on X). Every problem is a
:class:`PipelineError` naming the file, the line, the step and the fix.
"""

from __future__ import annotations

import hashlib
import keyword
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import orjson

from workbench.exceptions import ConfigError, PipelineError
from workbench.monitoring._custom import CustomMetric
from workbench.pipelines._actions import get_action, import_function, import_module
from workbench.pipelines._actions import registered_actions as _registered
from workbench.pipelines._model import (
    DEFAULT_BACKOFF_S,
    DEFAULT_MAX_CONCURRENCY,
    INPUT_TYPES,
    InputSpec,
    MetricSpec,
    Pipeline,
    StepSpec,
    suggest,
    type_problem,
)
from workbench.pipelines._template import TemplateProblem, is_template, references, template_strings
from workbench.pipelines._yaml import line_of, parse_file, plain

__all__ = ["load_pipeline"]

_TOP_KEYS = (
    "id",
    "version",
    "description",
    "imports",
    "max_concurrency",
    "inputs",
    "steps",
    "outputs",
)
_STEP_KEYS = (
    "id",
    "action",
    "description",
    "parameters",
    "depends_on",
    "retries",
    "backoff",
    "timeout",
    "monitoring",
)
_INPUT_KEYS = ("type", "required", "default", "description")
#: What templates may read, by where they are.
_STEP_NAMES = frozenset({"inputs", "steps", "execution"})
_METRIC_NAMES = _STEP_NAMES | {"results"}

_NO_DEFAULT: Any = object()


def load_pipeline(pipeline: str | os.PathLike[str] | Mapping[str, Any] | Pipeline) -> Pipeline:
    """Read and check a pipeline: a YAML file's path, or the same structure as a mapping.

    Imports the modules under ``imports:`` (their actions must be registered to be checked).
    Raises :class:`PipelineError` naming the file, line, step and fix; nothing is run.
    """
    if isinstance(pipeline, Pipeline):
        return pipeline
    if isinstance(pipeline, Mapping):
        document: Any = pipeline
        source = "<dict>"
        try:
            canonical = orjson.dumps(plain(pipeline), option=orjson.OPT_SORT_KEYS)
        except TypeError as exc:
            raise PipelineError(
                f"a pipeline given as a mapping must hold only YAML/JSON values ({exc}); "
                f"convert the values to strings, numbers, lists and mappings",
                source=source,
            ) from exc
        digest = hashlib.sha256(canonical).hexdigest()
        search: tuple[Path, ...] = ()
    elif isinstance(pipeline, str | os.PathLike):
        source, digest, document = parse_file(pipeline)
        folder = Path(source).parent
        search = (folder, *folder.parents)
    else:
        raise PipelineError(
            f"a pipeline is a YAML file's path or a mapping, got {type(pipeline).__name__}; "
            f"pass e.g. run_pipeline('pipeline.yaml', ...)"
        )
    return _Checker(source, digest, search).pipeline(
        document, None if source != "<dict>" else plain(document)
    )


class _Checker:
    """Checks one pipeline document; every ``fail`` names the file, the line and the step."""

    def __init__(self, source: str, digest: str, search: tuple[Path, ...]) -> None:
        self.source = source
        self.digest = digest
        self.search = search

    def fail(self, message: str, *, line: int | None = None, step: str | None = None) -> NoReturn:
        where = f"{self.source}:{line}" if line is not None else self.source
        prefix = f"{where}: step {step!r}: " if step is not None else f"{where}: "
        raise PipelineError(prefix + message, source=self.source, line=line, step_id=step)

    def mapping(self, value: Any, what: str, *, line: int | None, step: str | None = None) -> None:
        if not isinstance(value, Mapping):
            self.fail(
                f"{what} must be a mapping (key: value lines), got {_kind(value)}",
                line=line,
                step=step,
            )

    def keys(
        self,
        value: Mapping[Any, Any],
        allowed: tuple[str, ...],
        what: str,
        *,
        step: str | None = None,
    ) -> None:
        for key in value:
            if key not in allowed:
                self.fail(
                    f"unknown key {key!r} in {what}{suggest(str(key), allowed)}; the keys "
                    f"allowed are: {', '.join(allowed)}",
                    line=line_of(value, key),
                    step=step,
                )

    # -- the document --------------------------------------------------------------------

    def pipeline(self, document: Any, plain_document: Any) -> Pipeline:
        if not isinstance(document, Mapping):
            # The kind only, never the value: the file may be anything (a typo for
            # /etc/passwd, a key file), and the error is printed and logged.
            self.fail(
                f"a pipeline file holds a mapping with id: and steps:, got "
                f"{_kind(document, quote=False)}; start the file with 'id: my_pipeline'",
                line=line_of(document),
            )
        self.keys(document, _TOP_KEYS, "the pipeline")
        pipeline_id = document.get("id")
        if not isinstance(pipeline_id, str) or not pipeline_id.strip():
            self.fail(
                f"the pipeline needs an id (a non-empty string naming it in the store), got "
                f"{pipeline_id!r}; add e.g. 'id: research_assistant'",
                line=line_of(document, "id") if "id" in document else line_of(document),
            )
        version = document.get("version")
        if version is not None and not isinstance(version, str | int | float):
            self.fail(
                f'version must be a string like "1.0", got {_kind(version)}',
                line=line_of(document, "version"),
            )
        description = self.optional_text(document, "description")
        imports = self.imports(document)
        limit = document.get("max_concurrency", DEFAULT_MAX_CONCURRENCY)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            self.fail(
                f"max_concurrency must be a whole number >= 1 (steps running at once), got "
                f"{limit!r}",
                line=line_of(document, "max_concurrency"),
            )
        inputs = self.inputs(document)
        steps = self.steps(document, inputs)
        outputs, output_lines = self.outputs(document, inputs, {s.id for s in steps})
        return Pipeline(
            id=pipeline_id,
            steps=steps,
            inputs=inputs,
            outputs=outputs,
            source=self.source,
            sha256=self.digest,
            document=plain_document,
            version=None if version is None else str(version),
            description=description,
            imports=imports,
            max_concurrency=limit,
            output_lines=output_lines,
        )

    def optional_text(
        self, container: Mapping[str, Any], key: str, step: str | None = None
    ) -> str | None:
        value = container.get(key)
        if value is not None and not isinstance(value, str):
            self.fail(
                f"{key} must be text, got {_kind(value)}", line=line_of(container, key), step=step
            )
        return value

    def imports(self, document: Mapping[str, Any]) -> tuple[str, ...]:
        raw = document.get("imports", [])
        line = line_of(document, "imports")
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list) or not all(isinstance(m, str) and m for m in raw):
            self.fail(
                f"imports must be a list of module names, like [my_project.actions], got {raw!r}",
                line=line,
            )
        for index, name in enumerate(raw):
            try:
                import_module(name, self.search)
            except Exception as exc:  # the user's module: any error it raises is shown
                self.fail(
                    f"cannot import {name!r} listed under imports ({type(exc).__name__}: "
                    f"{exc}); make it importable from the working directory or the pipeline "
                    f"file's folder, or fix the module",
                    line=line_of(raw, index) or line,
                )
        return tuple(raw)

    def inputs(self, document: Mapping[str, Any]) -> dict[str, InputSpec]:
        raw = document.get("inputs", {})
        if raw is None:
            return {}
        self.mapping(raw, "inputs", line=line_of(document, "inputs"))
        inputs: dict[str, InputSpec] = {}
        for name, spec in raw.items():
            line = line_of(raw, name)
            if not isinstance(name, str) or not name.isidentifier():
                self.fail(
                    f"input name {name!r} is not an identifier; templates read it as "
                    f"inputs.NAME, so use letters, digits and _",
                    line=line,
                )
            if isinstance(spec, str):
                spec = {"type": spec}
            elif spec is None:
                spec = {}
            self.mapping(spec, f"input {name!r}", line=line)
            self.keys(spec, _INPUT_KEYS, f"input {name!r}")
            kind = spec.get("type", "any")
            if kind not in INPUT_TYPES:
                self.fail(
                    f"input {name!r} has type {kind!r}{suggest(str(kind), INPUT_TYPES)}; the "
                    f"types are: {', '.join(INPUT_TYPES)}",
                    line=line_of(spec, "type") or line,
                )
            required = spec.get("required", False)
            if not isinstance(required, bool):
                self.fail(
                    f"input {name!r}: required must be true or false, got {required!r}",
                    line=line_of(spec, "required") or line,
                )
            default = spec.get("default", _NO_DEFAULT)
            if default is not _NO_DEFAULT and default is not None:
                problem = type_problem(default, kind)
                if problem:
                    self.fail(
                        f"the default of input {name!r} must be {problem}, got {default!r}",
                        line=line_of(spec, "default") or line,
                    )
            inputs[name] = InputSpec(
                name=name,
                type=kind,
                required=required,
                default=plain(default) if default is not _NO_DEFAULT else None,
                has_default=default is not _NO_DEFAULT,
                description=self.optional_text(spec, "description"),
                line=line,
            )
        return inputs

    # -- steps ---------------------------------------------------------------------------

    def steps(
        self, document: Mapping[str, Any], inputs: Mapping[str, InputSpec]
    ) -> tuple[StepSpec, ...]:
        raw = document.get("steps")
        line = line_of(document, "steps") if "steps" in document else line_of(document)
        if not isinstance(raw, list) or not raw:
            self.fail(
                f"steps must be a non-empty list of steps (each '- id: ... action: ...'), got "
                f"{_kind(raw)}",
                line=line,
            )
        seen: dict[str, int | None] = {}
        for index, item in enumerate(raw):
            item_line = line_of(raw, index)
            self.mapping(item, f"step #{index + 1}", line=item_line)
            step_id = item.get("id")
            if (
                not isinstance(step_id, str)
                or not step_id.isidentifier()
                or (keyword.iskeyword(step_id))
            ):
                self.fail(
                    f"step #{index + 1} needs an id that is a Python identifier (letters, "
                    f"digits and _; templates read it as steps.ID), got {step_id!r}",
                    line=line_of(item, "id") if "id" in item else item_line,
                )
            if step_id in seen:
                self.fail(
                    f"step id {step_id!r} is used twice (first at line {seen[step_id]}); give "
                    f"each step its own id",
                    line=line_of(item, "id"),
                    step=step_id,
                )
            seen[step_id] = line_of(item, "id")
        steps = [self.step(item, line_of(raw, i), inputs, set(seen)) for i, item in enumerate(raw)]
        self.cycles(steps)
        return tuple(steps)

    def step(
        self,
        item: Mapping[str, Any],
        line: int | None,
        inputs: Mapping[str, InputSpec],
        step_ids: set[str],
    ) -> StepSpec:
        step_id: str = item["id"]
        self.keys(item, _STEP_KEYS, f"step {step_id!r}", step=step_id)
        action_name = item.get("action")
        if not isinstance(action_name, str) or not action_name:
            self.fail(
                f"the step needs an action (a registered action's name, or llm, http, python), "
                f"got {action_name!r}",
                line=line_of(item, "action") if "action" in item else line,
                step=step_id,
            )
        found = get_action(action_name)
        if found is None:
            known = sorted(_registered())
            self.fail(
                f"unknown action {action_name!r}{suggest(action_name, known)}; the registered "
                f"actions are: {', '.join(known)}. Register it with "
                f"@workbench.action({action_name!r}) in a module listed under imports:, or use "
                f"action: python with function: 'module:function'",
                line=line_of(item, "action"),
                step=step_id,
            )
        parameters = item.get("parameters", {})
        if parameters is None:
            parameters = {}
        self.mapping(parameters, "parameters", line=line_of(item, "parameters"), step=step_id)
        problem = found.check(parameters)
        if problem:
            self.fail(problem, line=line_of(item, "parameters") or line, step=step_id)
        if action_name == "python":
            self.python_function(parameters, step_id, line_of(parameters, "function"))
        parameter_lines = self.parameter_lines(parameters, line_of(item, "parameters") or line)
        used_steps: set[str] = set()
        for path, text in template_strings(parameters):
            used_steps |= self.template(
                text,
                _STEP_NAMES,
                inputs,
                step_ids,
                parameter_lines.get(path),
                step_id,
                f"parameter {path!r}",
            )
        depends_on = self.depends_on(item, step_id, step_ids)
        if step_id in used_steps:
            self.fail(
                "its parameters read its own result (steps."
                f"{step_id}); a step can read only the steps it depends on",
                line=line_of(item, "parameters"),
                step=step_id,
            )
        metrics, metric_steps = self.metrics(item, step_id, inputs, step_ids)
        used_steps |= metric_steps
        used_steps.discard(step_id)  # a metric may read its own step's results
        dependencies = [*depends_on, *sorted(used_steps - set(depends_on))]
        backoff = self.seconds(item, "backoff", step_id, zero_ok=True)
        return StepSpec(
            id=step_id,
            action=action_name,
            parameters=plain(parameters),
            depends_on=depends_on,
            dependencies=tuple(dependencies),
            retries=self.retries(item, step_id),
            backoff_s=DEFAULT_BACKOFF_S if backoff is None else backoff,
            timeout_s=self.seconds(item, "timeout", step_id, zero_ok=False),
            metrics=metrics,
            description=self.optional_text(item, "description", step_id),
            line=line,
            parameter_lines=parameter_lines,
        )

    def parameter_lines(self, parameters: Any, fallback: int | None) -> dict[str, int]:
        lines: dict[str, int] = {}

        def walk(value: Any, path: str, line: int | None) -> None:
            if line is not None:
                lines[path] = line
            if isinstance(value, Mapping):
                for key, item in value.items():
                    walk(item, f"{path}.{key}" if path else str(key), line_of(value, key) or line)
            elif isinstance(value, list):
                for index, item in enumerate(value):
                    walk(item, f"{path}[{index}]", line_of(value, index) or line)

        walk(parameters, "", fallback)
        lines.pop("", None)
        return lines

    def python_function(self, parameters: Mapping[str, Any], step_id: str, line: Any) -> None:
        target = parameters.get("function")
        if not isinstance(target, str) or is_template(target):
            return  # a template: checked when it is rendered
        try:
            import_function(target, self.search)
        except Exception as exc:  # the user's module: any error it raises is shown
            self.fail(
                f"the python action cannot import {target!r} ({type(exc).__name__}: {exc}); "
                f"write function: 'package.module:function' with the module importable from "
                f"the working directory or the pipeline file's folder",
                line=line,
                step=step_id,
            )

    def template(
        self,
        text: str,
        allowed: frozenset[str],
        inputs: Mapping[str, InputSpec],
        step_ids: set[str],
        line: int | None,
        step_id: str | None,
        what: str,
    ) -> set[str]:
        """Check one template; returns the step ids it reads."""
        try:
            found = references(text)
        except TemplateProblem as exc:
            self.fail(
                f"{what}: template {text!r}: {exc.message}; fix the template",
                line=line,
                step=step_id,
            )
        unknown = sorted(found.names - allowed)
        if unknown:
            self.fail(
                f"{what}: template {text!r} reads {', '.join(map(repr, unknown))}, which is not "
                f"defined here; templates here can read {', '.join(sorted(allowed))} (e.g. "
                f"inputs.NAME, steps.ID.result)",
                line=line,
                step=step_id,
            )
        for name in sorted(found.steps - step_ids):
            self.fail(
                f"{what}: template {text!r} reads steps.{name}, but there is no step "
                f"{name!r}{suggest(name, step_ids)}; the steps are: "
                f"{', '.join(sorted(step_ids))}",
                line=line,
                step=step_id,
            )
        for name in sorted(found.inputs - set(inputs)):
            self.fail(
                f"{what}: template {text!r} reads inputs.{name}, but the pipeline declares no "
                f"input {name!r}{suggest(name, inputs)}; declare it under inputs: (declared: "
                f"{', '.join(inputs) or 'none'})",
                line=line,
                step=step_id,
            )
        return set(found.steps)

    def depends_on(
        self, item: Mapping[str, Any], step_id: str, step_ids: set[str]
    ) -> tuple[str, ...]:
        raw = item.get("depends_on", [])
        line = line_of(item, "depends_on")
        if raw is None:
            raw = []
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list) or not all(isinstance(d, str) for d in raw):
            self.fail(
                f"depends_on must be a list of step ids, got {raw!r}", line=line, step=step_id
            )
        for index, name in enumerate(raw):
            if name not in step_ids:
                self.fail(
                    f"depends_on names {name!r}, which is not a step"
                    f"{suggest(name, step_ids)}; the steps are: {', '.join(sorted(step_ids))}",
                    line=line_of(raw, index) or line,
                    step=step_id,
                )
        return tuple(dict.fromkeys(raw))

    def retries(self, item: Mapping[str, Any], step_id: str) -> int:
        value = item.get("retries", 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self.fail(
                f"retries must be a whole number >= 0 (attempts after a failure), got {value!r}",
                line=line_of(item, "retries"),
                step=step_id,
            )
        return int(value)

    def seconds(
        self,
        item: Mapping[str, Any],
        key: str,
        step_id: str,
        *,
        zero_ok: bool,
    ) -> float | None:
        value = item.get(key)
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or value < 0
            or (value == 0 and not zero_ok)
        ):
            bound = ">= 0" if zero_ok else "> 0"
            self.fail(
                f"{key} must be a number of seconds {bound}, got {value!r}",
                line=line_of(item, key),
                step=step_id,
            )
        return float(value)

    def metrics(
        self,
        item: Mapping[str, Any],
        step_id: str,
        inputs: Mapping[str, InputSpec],
        step_ids: set[str],
    ) -> tuple[tuple[MetricSpec, ...], set[str]]:
        monitoring = item.get("monitoring")
        if monitoring is None:
            return (), set()
        self.mapping(monitoring, "monitoring", line=line_of(item, "monitoring"), step=step_id)
        self.keys(monitoring, ("custom_metrics",), "monitoring", step=step_id)
        raw = monitoring.get("custom_metrics") or []
        if not isinstance(raw, list):
            self.fail(
                f"custom_metrics must be a list of metrics, got {_kind(raw)}",
                line=line_of(monitoring, "custom_metrics"),
                step=step_id,
            )
        metrics: list[MetricSpec] = []
        used: set[str] = set()
        for index, metric in enumerate(raw):
            line = line_of(raw, index)
            self.mapping(metric, f"custom metric #{index + 1}", line=line, step=step_id)
            try:
                # The parser of Python's @step(metrics=[...]) declarations: one set of rules.
                parsed = CustomMetric.parse(plain(metric))
            except ConfigError as exc:
                self.fail(str(exc), line=line, step=step_id)
            for path, text in template_strings({"value": parsed.value, "labels": parsed.labels}):
                used |= self.template(
                    text,
                    _METRIC_NAMES,
                    inputs,
                    step_ids,
                    line,
                    step_id,
                    f"custom metric {parsed.name!r} {path}",
                )
            metrics.append(MetricSpec(parsed, line=line))
        return tuple(metrics), used

    def cycles(self, steps: list[StepSpec]) -> None:
        """Fail on the first dependency cycle, naming every step on it."""
        graph = {s.id: s.dependencies for s in steps}
        lines = {s.id: s.line for s in steps}
        state: dict[str, int] = {}  # 1: on the current path, 2: finished
        path: list[str] = []

        def visit(node: str) -> None:
            state[node] = 1
            path.append(node)
            for dependency in graph[node]:
                if state.get(dependency) == 1:
                    cycle = [*path[path.index(dependency) :], dependency]
                    self.fail(
                        f"dependency cycle: {' → '.join(cycle)} (each step waits for the "
                        f"next); remove one of these dependencies (depends_on, or a template "
                        f"reading steps.ID)",
                        line=lines[dependency],
                        step=dependency,
                    )
                if state.get(dependency) is None:
                    visit(dependency)
            path.pop()
            state[node] = 2

        for spec in steps:
            if state.get(spec.id) is None:
                visit(spec.id)

    def outputs(
        self, document: Mapping[str, Any], inputs: Mapping[str, InputSpec], step_ids: set[str]
    ) -> tuple[Any, dict[str, int]]:
        raw = document.get("outputs")
        if raw is None:
            return None, {}
        line = line_of(document, "outputs")
        lines = self.parameter_lines(raw, line)
        for path, text in template_strings(raw):
            self.template(
                text,
                _STEP_NAMES,
                inputs,
                step_ids,
                lines.get(path, line),
                None,
                f"outputs.{path}" if path else "outputs",
            )
        return plain(raw), lines


#: The most characters of a bad value an error message quotes.
_QUOTED = 60


def _kind(value: Any, *, quote: bool = True) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str) and not quote:
        return "plain text"
    if not quote:
        return f"a {type(value).__name__}"
    shown = repr(value)
    if len(shown) > _QUOTED:
        shown = shown[: _QUOTED - 3] + "..."
    return f"{type(value).__name__} {shown}"
