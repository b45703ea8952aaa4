"""Checking a pipeline before anything runs, and building its :class:`Pipeline`.

Owns what a pipeline document (from a file or a mapping) means once ``_schema``'s models have
checked its shape (keys, types, bounds, step ids): actions and their parameters, ``imports``
(imported here, so their actions are registered), the ``python`` action's function,
dependencies and cycles, template syntax and the names templates read (``steps.X`` adds a
dependency on X). Every problem is a :class:`PipelineError` naming the file, the line, the step
and the fix.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import orjson

from workbench._imports import import_function, import_module
from workbench.exceptions import PipelineError
from workbench.pipelines._actions import get_action
from workbench.pipelines._actions import registered_actions as _registered
from workbench.pipelines._model import (
    DEFAULT_BACKOFF_S,
    InputSpec,
    MetricSpec,
    Pipeline,
    StepSpec,
    suggest,
)
from workbench.pipelines._schema import PipelineDocument, StepDocument, kind_of, validate_document
from workbench.pipelines._template import TemplateProblem, is_template, references, template_strings
from workbench.pipelines._yaml import line_of, parse_file, plain

__all__ = ["load_pipeline"]

#: What templates may read, by where they are.
_STEP_NAMES = frozenset({"inputs", "steps", "execution"})
_METRIC_NAMES = _STEP_NAMES | {"results"}


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
    """Checks what one pipeline document means once its shape is right (``_schema``); every
    ``fail`` names the file, the line and the step."""

    def __init__(self, source: str, digest: str, search: tuple[Path, ...]) -> None:
        self.source = source
        self.digest = digest
        self.search = search

    def fail(self, message: str, *, line: int | None = None, step: str | None = None) -> NoReturn:
        where = f"{self.source}:{line}" if line is not None else self.source
        prefix = f"{where}: step {step!r}: " if step is not None else f"{where}: "
        raise PipelineError(prefix + message, source=self.source, line=line, step_id=step)

    # -- the document --------------------------------------------------------------------

    def pipeline(self, document: Any, plain_document: Any) -> Pipeline:
        if not isinstance(document, Mapping):
            # The kind only, never the value: the file may be anything (a typo for
            # /etc/passwd, a key file), and the error is printed and logged.
            self.fail(
                f"a pipeline file holds a mapping with id: and steps:, got "
                f"{kind_of(document, quote=False)}; start the file with 'id: my_pipeline'",
                line=line_of(document),
            )
        checked = validate_document(document, self.source)
        self.imports(checked.imports, document.get("imports"), line_of(document, "imports"))
        inputs = self.inputs(checked, document.get("inputs"))
        steps = self.steps(checked, document["steps"], inputs)
        outputs, output_lines = self.outputs(document, inputs, {s.id for s in steps})
        return Pipeline(
            id=checked.id,
            steps=steps,
            inputs=inputs,
            outputs=outputs,
            source=self.source,
            sha256=self.digest,
            document=plain_document,
            version=None if checked.version is None else str(checked.version),
            description=checked.description,
            imports=tuple(checked.imports),
            max_concurrency=checked.max_concurrency,
            output_lines=output_lines,
        )

    def imports(self, names: list[str], raw: Any, line: int | None) -> None:
        for index, name in enumerate(names):
            try:
                import_module(name, self.search)
            except Exception as exc:  # the user's module: any error it raises is shown
                self.fail(
                    f"cannot import {name!r} listed under imports ({type(exc).__name__}: "
                    f"{exc}); make it importable from the working directory or the pipeline "
                    f"file's folder, or fix the module",
                    line=line_of(raw, index) or line,
                )

    def inputs(self, checked: PipelineDocument, raw: Any) -> dict[str, InputSpec]:
        return {
            name: InputSpec(
                name=name,
                type=spec.type,
                required=spec.required,
                default=plain(spec.default),
                has_default=spec.has_default,
                description=spec.description,
                line=line_of(raw, name),
            )
            for name, spec in checked.inputs.items()
        }

    # -- steps ---------------------------------------------------------------------------

    def steps(
        self, checked: PipelineDocument, raw: Any, inputs: Mapping[str, InputSpec]
    ) -> tuple[StepSpec, ...]:
        step_ids = {step.id for step in checked.steps}
        steps = [
            self.step(step, raw[index], line_of(raw, index), inputs, step_ids)
            for index, step in enumerate(checked.steps)
        ]
        self.cycles(steps)
        return tuple(steps)

    def step(
        self,
        step: StepDocument,
        item: Mapping[str, Any],
        line: int | None,
        inputs: Mapping[str, InputSpec],
        step_ids: set[str],
    ) -> StepSpec:
        step_id = step.id
        found = get_action(step.action)
        if found is None:
            known = sorted(_registered())
            self.fail(
                f"unknown action {step.action!r}{suggest(step.action, known)}; the registered "
                f"actions are: {', '.join(known)}. Register it with "
                f"@workbench.action({step.action!r}) in a module listed under imports:, or use "
                f"action: python with function: 'module:function'",
                line=line_of(item, "action"),
                step=step_id,
            )
        # The YAML mapping (it knows its lines), or the mapping a dict pipeline was given as.
        raw_parameters = item.get("parameters") or {}
        parameters = plain(step.parameters)
        problem = found.check(parameters)
        if problem:
            self.fail(problem, line=line_of(item, "parameters") or line, step=step_id)
        if step.action == "python":
            self.python_function(parameters, step_id, line_of(raw_parameters, "function"))
        parameter_lines = self.parameter_lines(raw_parameters, line_of(item, "parameters") or line)
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
        depends_on = self.depends_on(step, item, step_ids)
        if step_id in used_steps:
            self.fail(
                "its parameters read its own result (steps."
                f"{step_id}); a step can read only the steps it depends on",
                line=line_of(item, "parameters"),
                step=step_id,
            )
        metrics, metric_steps = self.metrics(step, item, inputs, step_ids)
        used_steps |= metric_steps
        used_steps.discard(step_id)  # a metric may read its own step's results
        dependencies = [*depends_on, *sorted(used_steps - set(depends_on))]
        return StepSpec(
            id=step_id,
            action=step.action,
            parameters=parameters,
            depends_on=depends_on,
            dependencies=tuple(dependencies),
            retries=step.retries,
            backoff_s=DEFAULT_BACKOFF_S if step.backoff is None else float(step.backoff),
            timeout_s=None if step.timeout is None else float(step.timeout),
            metrics=metrics,
            description=step.description,
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
        self, step: StepDocument, item: Mapping[str, Any], step_ids: set[str]
    ) -> tuple[str, ...]:
        raw = item.get("depends_on")
        for index, name in enumerate(step.depends_on):
            if name not in step_ids:
                self.fail(
                    f"depends_on names {name!r}, which is not a step"
                    f"{suggest(name, step_ids)}; the steps are: {', '.join(sorted(step_ids))}",
                    line=line_of(raw, index) or line_of(item, "depends_on"),
                    step=step.id,
                )
        return tuple(dict.fromkeys(step.depends_on))

    def metrics(
        self,
        step: StepDocument,
        item: Mapping[str, Any],
        inputs: Mapping[str, InputSpec],
        step_ids: set[str],
    ) -> tuple[tuple[MetricSpec, ...], set[str]]:
        if step.monitoring is None:
            return (), set()
        raw = item["monitoring"].get("custom_metrics")
        metrics: list[MetricSpec] = []
        used: set[str] = set()
        for index, metric in enumerate(step.monitoring.custom_metrics):
            line = line_of(raw, index)
            for path, text in template_strings({"value": metric.value, "labels": metric.labels}):
                used |= self.template(
                    text,
                    _METRIC_NAMES,
                    inputs,
                    step_ids,
                    line,
                    step.id,
                    f"custom metric {metric.name!r} {path}",
                )
            metrics.append(MetricSpec(metric, line=line))
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
