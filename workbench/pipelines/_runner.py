"""Running a YAML pipeline: one recorded execution, steps in dependency order, concurrently.

Owns :func:`run_pipeline` and :func:`arun_pipeline`, the entrypoint a recorded run names (so
``RequestReplay.replay_execution`` re-runs it unchanged, and reports a pipeline file that changed
since), scheduling (a step starts when every step it depends on has completed; at most
``max_concurrency`` steps run at once, on one asyncio loop), each step's attempts (timeout per
attempt, retries with doubling backoff, recorded on the step) and the run's outputs.

A step is a ``@workbench.step`` (rendered parameters, result, error, retries and its custom
metric declarations are recorded, and replay's ``step_outputs`` and ``from_step`` apply to it).
When a step fails, no further step starts, the steps already running finish, and the run fails
with a :class:`PipelineStepError` naming the step; everything that ran stays recorded.

Checking the file is ``_model``'s, templates ``_template``'s, actions ``_actions``'.
"""

from __future__ import annotations

import asyncio
import inspect
import keyword
import logging
import os
import time
import warnings
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from workbench._context import current
from workbench._retry import RetryPolicy
from workbench.exceptions import PipelineChangedWarning, PipelineError, PipelineStepError
from workbench.monitoring.prometheus._custom import EvaluatedMetric
from workbench.pipelines._actions import Action, get_action
from workbench.pipelines._load import load_pipeline
from workbench.pipelines._model import Pipeline, StepSpec
from workbench.pipelines._template import RenderFailure, render_value
from workbench.recorder import LiveExecution, record
from workbench.recorder import step as workbench_step
from workbench.store import Store

__all__ = ["ENTRYPOINT", "PipelineResult", "arun_pipeline", "pipeline_entrypoint", "run_pipeline"]

log = logging.getLogger("workbench.pipelines")

#: The entrypoint every recorded YAML run names; replay imports and calls it.
ENTRYPOINT = "workbench.pipelines._runner:pipeline_entrypoint"

PipelineSource = str | os.PathLike[str] | Mapping[str, Any] | Pipeline


@dataclass(frozen=True, slots=True)
class PipelineResult:
    """A completed run of a YAML pipeline."""

    execution_id: str
    pipeline_id: str
    #: The rendered ``outputs:`` (every step's result by step id when the file has none).
    outputs: Any
    #: Every step's result by step id, in the order the steps completed.
    results: Mapping[str, Any] = field(default_factory=dict)
    status: str = "completed"
    #: ``None`` when the run joined an execution that was already being recorded.
    duration_s: float | None = None


def run_pipeline(
    pipeline: PipelineSource,
    inputs: Mapping[str, Any] | None = None,
    *,
    store: Store | str | os.PathLike[str] | None = None,
    user_id: str | None = None,
    environment: str | None = None,
    metadata: dict[str, Any] | None = None,
    max_concurrency: int | None = None,
) -> PipelineResult:
    """Run a YAML pipeline (a file's path, or the same structure as a mapping) and record it.

    >>> result = workbench.run_pipeline("pipeline.yaml", {"topic": "llamas"})
    >>> result.outputs, result.execution_id

    The whole file and ``inputs`` are checked first: a :class:`PipelineError` means nothing ran
    and nothing was recorded. A failed step raises :class:`PipelineStepError` (its
    ``execution_id`` is the failed run's). Inside ``workbench.record(...)`` the run joins that
    execution (``store``, ``user_id``, ``environment`` and ``metadata`` are then the
    execution's). From async code use :func:`arun_pipeline`.
    """
    if _loop_running():
        raise PipelineError(
            "run_pipeline() was called while an event loop is running in this thread, which it "
            "cannot block; use `await workbench.arun_pipeline(...)` instead"
        )
    return asyncio.run(
        arun_pipeline(
            pipeline,
            inputs,
            store=store,
            user_id=user_id,
            environment=environment,
            metadata=metadata,
            max_concurrency=max_concurrency,
        )
    )


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def arun_pipeline(
    pipeline: PipelineSource,
    inputs: Mapping[str, Any] | None = None,
    *,
    store: Store | str | os.PathLike[str] | None = None,
    user_id: str | None = None,
    environment: str | None = None,
    metadata: dict[str, Any] | None = None,
    max_concurrency: int | None = None,
) -> PipelineResult:
    """:func:`run_pipeline` for async code: the steps run on the running loop."""
    spec = load_pipeline(pipeline)
    values = spec.check_inputs(inputs)
    limit = _limit(spec, max_concurrency)
    frame = current.get()
    if frame is not None:
        run = frame.run
        _stamp(run, spec, values, max_concurrency)
        outputs, results = await _Run(spec, values, limit, run).execute()
        run.set_output(outputs)
        return PipelineResult(run.id, spec.id, outputs, results)
    async with record(
        spec.id,
        inputs=values,
        store=store,
        user_id=user_id,
        environment=environment,
        metadata=metadata,
        pipeline_version=spec.version,
        entrypoint=ENTRYPOINT,
    ) as run:
        _stamp(run, spec, values, max_concurrency)
        outputs, results = await _Run(spec, values, limit, run).execute()
        run.set_output(outputs)
    return PipelineResult(run.id, spec.id, outputs, results, run.status, run.duration_s)


async def pipeline_entrypoint(
    pipeline: Any,
    inputs: dict[str, Any],
    sha256: str | None = None,
    max_concurrency: int | None = None,
) -> Any:
    """The entrypoint a recorded YAML run names: replay calls it with the recorded arguments.

    Runs ``pipeline`` (the file as it is now) inside the current execution and returns its
    outputs. When the file's content no longer has the recorded ``sha256``, it warns with
    :class:`PipelineChangedWarning` and notes ``pipeline_changed`` in the execution's metadata.
    """
    spec = load_pipeline(pipeline)
    if sha256 is not None and spec.sha256 != sha256:
        frame = current.get()
        if frame is not None:
            # Before warning: under an "error" warnings filter the warning raises.
            frame.run.metadata["pipeline_changed"] = {
                "source": spec.source,
                "recorded_sha256": sha256,
                "sha256": spec.sha256,
            }
        recorded_in = f" (execution {frame.run.replay_of})" if frame and frame.run.replay_of else ""
        warnings.warn(
            f"the pipeline file {spec.source} changed since it was recorded{recorded_in}: its "
            f"sha256 was {sha256[:12]}…, now {spec.sha256[:12]}…; the replay runs the file as "
            f"it is now, so differences may come from the edit",
            PipelineChangedWarning,
            stacklevel=2,
        )
    result = await arun_pipeline(spec, inputs, max_concurrency=max_concurrency)
    return result.outputs


def _limit(spec: Pipeline, max_concurrency: int | None) -> int:
    if max_concurrency is None:
        return spec.max_concurrency
    if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int):
        raise PipelineError(
            f"max_concurrency={max_concurrency!r} is not a whole number; pass e.g. 4"
        )
    if max_concurrency < 1:
        raise PipelineError(f"max_concurrency={max_concurrency} must be at least 1")
    return max_concurrency


def _stamp(
    run: LiveExecution, spec: Pipeline, inputs: dict[str, Any], max_concurrency: int | None
) -> None:
    """Mark the execution as a run of this pipeline file, replayable through ENTRYPOINT."""
    arguments: dict[str, Any] = {
        "pipeline": spec.reference,
        "inputs": inputs,
        "sha256": spec.sha256,
    }
    if max_concurrency is not None:
        arguments["max_concurrency"] = max_concurrency
    run.entrypoint = ENTRYPOINT
    if run.pipeline_version is None:
        run.pipeline_version = spec.version
    # Kept apart from the execution's inputs, which stay the pipeline's own inputs: replay
    # calls the entrypoint with these and records the original inputs again.
    run.metadata["entrypoint_arguments"] = arguments
    run.metadata["pipeline"] = {
        "id": spec.id,
        "version": spec.version,
        "source": spec.source,
        "sha256": spec.sha256,
    }
    run.write_row()


def _signature(parameters: Mapping[str, Any]) -> inspect.Signature:
    """A signature naming each parameter, so the step records them as the rendered mapping."""
    if all(
        isinstance(n, str) and n.isidentifier() and not keyword.iskeyword(n) for n in parameters
    ):
        return inspect.Signature(
            [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY) for name in parameters]
        )
    # Names Python cannot bind one by one are recorded under "parameters".
    return inspect.Signature([inspect.Parameter("parameters", inspect.Parameter.VAR_KEYWORD)])


class _Run:
    """One run of a checked pipeline inside an execution."""

    def __init__(
        self, spec: Pipeline, inputs: dict[str, Any], limit: int, run: LiveExecution
    ) -> None:
        self.spec = spec
        self.inputs = inputs
        self.run = run
        self.semaphore = asyncio.Semaphore(limit)
        #: What templates read as ``steps``: completed steps only.
        self.steps: dict[str, dict[str, Any]] = {}
        self.attempts: dict[str, int] = {}

    def context(self, **extra: Any) -> dict[str, Any]:
        run = self.run
        return {
            "inputs": self.inputs,
            "steps": self.steps,
            "execution": {
                "id": run.id,
                "pipeline_id": run.pipeline_id,
                "started_at": run.started_at,
                "duration": time.time() - run.started_at,
            },
            **extra,
        }

    async def execute(self) -> tuple[Any, dict[str, Any]]:
        order = {s.id: index for index, s in enumerate(self.spec.steps)}
        pending = list(self.spec.steps)
        running: dict[asyncio.Task[None], StepSpec] = {}
        failure: tuple[StepSpec, BaseException] | None = None
        try:
            while pending or running:
                if failure is None:
                    for spec in [
                        s for s in pending if all(d in self.steps for d in s.dependencies)
                    ]:
                        pending.remove(spec)
                        task = asyncio.create_task(self.step(spec), name=f"step {spec.id}")
                        running[task] = spec
                if not running:
                    break
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in sorted(done, key=lambda t: order[running[t].id]):
                    spec = running.pop(task)
                    error = task.exception()
                    if error is not None and failure is None:
                        failure = (spec, error)
        finally:
            for task in running:
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)
        if failure is not None:
            spec, error = failure
            raise self.step_error(spec, error, [s.id for s in pending]) from error
        results = {step_id: value["result"] for step_id, value in self.steps.items()}
        return self.outputs(results), results

    # -- one step --------------------------------------------------------------------------

    async def step(self, spec: StepSpec) -> None:
        async with self.semaphore:
            try:
                parameters = render_value(spec.parameters, self.context())
            except RenderFailure as exc:
                line = spec.parameter_lines.get(exc.path, spec.line)
                error = PipelineError(
                    f"{self.spec.where(line)}: step {spec.id!r}: parameter {exc.path!r}: "
                    f"template {exc.template!r} failed: {exc.message}; fix the template, or "
                    f"check what the steps it reads returned",
                    source=self.spec.source,
                    line=line,
                    step_id=spec.id,
                )
                # Recorded as a failed step, with its parameters as written.
                with workbench_step(spec.id, action=spec.action, parameters=dict(spec.parameters)):
                    raise error from exc
            action = get_action(spec.action)
            if action is None:  # unregistered since the file was checked
                raise PipelineError(
                    f"{self.spec.where(spec.line)}: step {spec.id!r}: the action "
                    f"{spec.action!r} is no longer registered; register it again",
                    source=self.spec.source,
                    line=spec.line,
                    step_id=spec.id,
                )
            started = time.perf_counter()
            call = self.step_function(spec, action, parameters)
            result = await call(**parameters)
            self.steps[spec.id] = {
                "result": result,
                "status": "completed",
                "duration": time.perf_counter() - started,
                "attempts": self.attempts.get(spec.id, 1),
            }

    def step_function(
        self, spec: StepSpec, action: Action, parameters: Mapping[str, Any]
    ) -> Callable[..., Coroutine[Any, Any, Any]]:
        """The action as a ``@workbench.step`` with this step's attempts, timeout and metrics."""

        async def attempts(**values: Any) -> Any:
            frame = current.get()
            active = frame.step if frame is not None else None
            started = time.perf_counter()

            async def attempt() -> Any:
                nonlocal started
                self.attempts[spec.id] = self.attempts.get(spec.id, 0) + 1
                started = time.perf_counter()
                return await self.attempt(spec, action, values)

            def retrying(exc: BaseException, retry: int, wait_s: float) -> None:
                assert active is not None  # a policy with retries only where a step records
                active.retries += 1
                active.events.append(
                    {
                        "name": "retry",
                        "time": time.time(),
                        "attempt": active.retries,
                        "error.type": type(exc).__name__,
                        "error.message": str(exc),
                    }
                )
                log.info(
                    "step %s: attempt %d failed (%s: %s); retrying in %gs",
                    spec.id,
                    retry,
                    type(exc).__name__,
                    exc,
                    wait_s,
                )

            self.attempts[spec.id] = 0
            policy = _NO_RETRIES if active is None else _retry_policy(spec)
            result = await policy.acall(attempt, retrying)
            if spec.metrics and active is not None:
                active.metrics = self.metric_declarations(
                    spec, result, time.perf_counter() - started
                )
            return result

        attempts.__signature__ = _signature(parameters)  # type: ignore[attr-defined]
        attempts.__name__ = attempts.__qualname__ = spec.id
        decorated: Callable[..., Coroutine[Any, Any, Any]] = workbench_step(
            spec.id,
            action=spec.action,
            # Declared so the recorder knows the step has metrics; the runner replaces them with
            # the rendered ones when the step completes (metric_declarations).
            metrics=[metric.metric for metric in spec.metrics],
        )(attempts)
        return decorated

    async def attempt(self, spec: StepSpec, action: Action, parameters: Mapping[str, Any]) -> Any:
        if spec.timeout_s is None:
            return await action.call(parameters)
        try:
            async with asyncio.timeout(spec.timeout_s) as scope:
                return await action.call(parameters)
        except TimeoutError:
            if not scope.expired():
                raise  # the action's own timeout, not the step's
            # A sync action's thread cannot be stopped: it runs on, and its result is dropped.
            raise TimeoutError(
                f"step {spec.id!r} did not finish within its timeout of {spec.timeout_s:g} s "
                f"({self.spec.where(spec.line)}); raise timeout: or make the action faster"
            ) from None

    def metric_declarations(
        self, spec: StepSpec, result: Any, duration_s: float
    ) -> tuple[EvaluatedMetric, ...]:
        """The step's custom metrics with ``value`` and ``labels`` rendered from its result and
        the pipeline's context, for the metrics layer to record as given. A metric that cannot
        be rendered is logged and left out: a metric never fails the pipeline."""
        context = self.context(results=result)
        context["execution"] = {**context["execution"], "duration": duration_s}
        declarations: list[EvaluatedMetric] = []
        for spec_metric in spec.metrics:
            metric = spec_metric.metric
            try:
                # No value: the step's result itself, as for a Python declaration.
                value = result if metric.value is None else render_value(metric.value, context)
                labels = render_value(dict(metric.labels), context, "labels")
            except RenderFailure as exc:
                log.warning(
                    "step %s: custom metric %s was not recorded: %s template %r failed (%s)",
                    spec.id,
                    metric.name,
                    exc.path or "value",
                    exc.template,
                    exc.message,
                )
                continue
            declarations.append(
                # Text that reads as a number is one: the metrics layer turns it into a float.
                EvaluatedMetric(metric, value, {str(k): str(v) for k, v in labels.items()})
            )
        return tuple(declarations)

    # -- the end ---------------------------------------------------------------------------

    def outputs(self, results: dict[str, Any]) -> Any:
        if self.spec.outputs is None:
            return {s.id: results[s.id] for s in self.spec.steps}
        try:
            return render_value(self.spec.outputs, self.context())
        except RenderFailure as exc:
            path = f"outputs.{exc.path}" if exc.path else "outputs"
            line = self.spec.output_lines.get(exc.path)
            raise PipelineError(
                f"{self.spec.where(line)}: {path}: template {exc.template!r} failed: "
                f"{exc.message}; fix the template, or check what the steps it reads returned",
                source=self.spec.source,
                line=line,
            ) from exc

    def step_error(
        self, spec: StepSpec, error: BaseException, not_run: list[str]
    ) -> PipelineStepError:
        attempts = self.attempts.get(spec.id, 1)
        tried = f" after {attempts} attempts" if attempts > 1 else ""
        cause = (
            str(error) if isinstance(error, PipelineError) else (f"{type(error).__name__}: {error}")
        )
        skipped = f"; not run: {', '.join(not_run)}" if not_run else ""
        return PipelineStepError(
            f"pipeline {self.spec.id!r} failed at step {spec.id!r} (action {spec.action}, "
            f"{self.spec.where(spec.line)}){tried}: {cause}{skipped}. The steps that ran are "
            f"recorded in execution {self.run.id} (see `workbench runs show {self.run.id}`)",
            source=self.spec.source,
            line=spec.line,
            step_id=spec.id,
            execution_id=self.run.id,
        )


#: Outside a recorded step a YAML step runs once (nowhere to count its retries).
_NO_RETRIES = RetryPolicy()


def _retry_policy(spec: StepSpec) -> RetryPolicy:
    """A YAML step's ``retries`` and ``backoff``: any failure but a mistake in the pipeline,
    which would be the same on every attempt."""
    return RetryPolicy(retries=spec.retries, retry_if=_worth_retrying, backoff_s=spec.backoff_s)


def _worth_retrying(exc: BaseException) -> bool:
    return isinstance(exc, Exception) and not isinstance(exc, PipelineError)
