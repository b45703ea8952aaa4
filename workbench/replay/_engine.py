"""Re-running a recorded execution: :class:`RequestReplay`.

Owns checking that an execution can be replayed, importing its recorded entrypoint, calling it
with the recorded (or overridden) arguments inside a new recorded execution that has
``replay_of`` set, and turning what happened into a :class:`ReplayResult`. The answers to model
calls are ``_interceptor``'s; the lookup is ``_index``'s. The original execution is only read.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench._imports import attribute_at, import_module
from workbench._json import decode
from workbench.diff import ExecutionDiff
from workbench.diff import compare_executions as _compare_executions
from workbench.exceptions import (
    ConfigError,
    DamagedRecordingError,
    ReplayError,
    ReplayMismatchError,
)
from workbench.recorder import LiveExecution, record
from workbench.records import ErrorInfo, Execution, ModelCall
from workbench.replay._from_step import SkippedSteps, steps_before
from workbench.replay._index import RecordedCalls, request_summary
from workbench.replay._interceptor import OnMiss, ReplayInterceptor
from workbench.replay._result import Mismatch, ReplayResult
from workbench.replay._rewrite import RequestRewriter
from workbench.replay._vcr import WorkbenchCassette, require_vcrpy, stubs_installed
from workbench.store import RecordedResponse, Store, open_store

if TYPE_CHECKING:
    from workbench.experiments import ExperimentComparison, ExperimentResult

__all__ = [
    "MODIFICATIONS",
    "ON_MISS",
    "STUBS",
    "RequestReplay",
    "check_modifications",
    "load_entrypoint",
    "mismatch_message",
]

ON_MISS: tuple[OnMiss, ...] = ("error", "live", "test-model")
#: Modification keys a replay understands, and the type each value must have.
MODIFICATIONS: dict[str, tuple[type, ...]] = {
    "from_step": (str,),
    "inputs": (dict,),
    "log_level": (str, int),
    "model": (str, dict),
    "prompt_overrides": (dict,),
    "realtime": (bool,),
    "save_all_states": (bool,),
    "step_outputs": (dict,),
    "stubs": (str,),
    "use_test_models": (bool,),
}
#: What answers recorded calls: workbench's own stubs at its capture patch points (the
#: original chunking and timing), or vcrpy's stubs over a ``WorkbenchCassette``.
STUBS = ("workbench", "vcrpy")


@dataclass(frozen=True, slots=True)
class _Plan:
    """Everything checked before a replay starts: nothing is recorded for a bad request."""

    original: Execution
    function: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    inputs: Any
    modifications: dict[str, Any]
    on_miss: OnMiss
    rewriter: RequestRewriter
    skipped: SkippedSteps
    responses: list[RecordedResponse]  # what answers requests; empty with use_test_models


class RequestReplay:
    """Replays recorded executions from one store.

    >>> replay = RequestReplay()                      # the default store
    >>> result = replay.replay_execution("exec_12345", modifications={"realtime": True})
    >>> result.execution_id, result.output, result.mismatches
    >>> diff = replay.compare_executions("exec_12345", result)   # what the replay changed
    """

    def __init__(self, store: Store | str | os.PathLike[str] | None = None) -> None:
        self.store = store if isinstance(store, Store) else open_store(store)

    def replay_execution(
        self,
        execution_id: str,
        *,
        modifications: Mapping[str, Any] | None = None,
        on_miss: str = "error",
    ) -> ReplayResult:
        """Run the recorded entrypoint again with every model call answered from the recording.

        ``on_miss`` says what a request without a recorded answer gets: ``"error"`` raises
        :class:`ReplayMismatchError` (the replay is recorded as failed), ``"live"`` sends it
        for real, ``"test-model"`` answers it from the built-in test model. Raises
        :class:`ReplayError` when the replay fails where the original did not.

        ``modifications`` (see :data:`MODIFICATIONS`): ``inputs`` overrides recorded arguments;
        ``step_outputs`` ``{step_id: value}`` skips steps; ``model`` (a name, or a
        ``{"from": "to"}`` mapping) and ``prompt_overrides`` (``{step_id: {"system": str,
        "messages": {index: str}}}``) rewrite outgoing requests before lookup (see
        ``workbench.replay._rewrite``); ``from_step`` makes the steps that completed before
        that step first started return their recorded results without running (their calls
        are not reported unused); ``save_all_states`` keeps every step's parameters and
        result as the states ``<step>.inputs`` / ``<step>.outputs``; ``log_level``,
        ``realtime``, ``use_test_models``; ``stubs`` (see :data:`STUBS`): ``"vcrpy"`` serves the
        recorded calls through vcrpy's stubs over a ``WorkbenchCassette`` (one chunk per body,
        so not with ``realtime``). Replaced step outputs are the recorded JSON form.
        """
        plan = self._plan(execution_id, modifications, on_miss)
        interceptor = self._interceptor(plan)
        failure: BaseException | None = None
        run: LiveExecution | None = None
        try:
            with (
                self._record(plan) as run,
                _log_level(plan.modifications.get("log_level")),
                _stubs(plan, interceptor),
            ):
                self._arm(run, plan, interceptor)
                try:
                    output = plan.function(*plan.args, **plan.kwargs)
                    if inspect.isawaitable(output):
                        output = _run_coroutine(output)
                except Exception as exc:
                    _raise_on_mismatch(plan, run, interceptor, exc)
                    raise
                _raise_on_mismatch(plan, run, interceptor, None)
                run.set_output(output)
        except (ReplayMismatchError, ConfigError):
            raise
        except Exception as exc:
            failure = exc
        finally:
            interceptor.close()
        assert run is not None
        return self._result(plan, run, interceptor, failure)

    async def areplay_execution(
        self,
        execution_id: str,
        *,
        modifications: Mapping[str, Any] | None = None,
        on_miss: str = "error",
    ) -> ReplayResult:
        """:meth:`replay_execution` for async code: an async entrypoint is awaited on the
        running loop, a sync one runs in a worker thread (with the replay's context)."""
        plan = self._plan(execution_id, modifications, on_miss)
        interceptor = self._interceptor(plan)
        failure: BaseException | None = None
        run: LiveExecution | None = None
        try:
            async with self._record(plan) as run:
                with _log_level(plan.modifications.get("log_level")), _stubs(plan, interceptor):
                    self._arm(run, plan, interceptor)
                    try:
                        if inspect.iscoroutinefunction(plan.function):
                            output = await plan.function(*plan.args, **plan.kwargs)
                        else:
                            output = await asyncio.to_thread(
                                plan.function, *plan.args, **plan.kwargs
                            )
                    except Exception as exc:
                        _raise_on_mismatch(plan, run, interceptor, exc)
                        raise
                    _raise_on_mismatch(plan, run, interceptor, None)
                    run.set_output(output)
        except (ReplayMismatchError, ConfigError):
            raise
        except Exception as exc:
            failure = exc
        finally:
            await asyncio.to_thread(interceptor.close)
        assert run is not None
        return self._result(plan, run, interceptor, failure)

    def compare_executions(
        self,
        a: str | Execution | ReplayResult,
        b: str | Execution | ReplayResult,
        *,
        ignore: str | Iterable[str] = (),
    ) -> ExecutionDiff:
        """How execution ``b`` differs from ``a``, both read from this replay's store.

        :func:`workbench.compare_executions` with ``store`` set; a :class:`ReplayResult` stands
        for its own execution, so ``replay.compare_executions(original_id, result)`` shows what
        the replay changed.
        """
        return _compare_executions(_execution(a), _execution(b), store=self.store, ignore=ignore)

    def replay_many(
        self,
        executions: Mapping[str, Any] | Sequence[str],
        *,
        modifications: Mapping[str, Any] | None = None,
        on_miss: str = "error",
        workers: int | None = None,
        engine: str = "processes",
        address: str | None = None,
        name: str | None = None,
        progress: Callable[[Any], None] | None = None,
    ) -> ExperimentResult:
        """Replay many recorded executions with the same ``modifications``: an experiment.

        ``executions`` is a list of ids or a filter: ``pipeline_id``, ``since``/``until``
        (``"7d"``, a datetime), ``status``, ``user_id``, ``limit``, ``include_replays`` (off:
        original runs only), newest first. ``engine`` is ``"processes"`` (``workers``
        spawned processes, each opening the store itself), ``"dask"`` (tasks on the
        scheduler at ``address``, or on a ``LocalCluster`` of ``workers`` processes) or
        ``"inline"``. The experiment and each run's outcome are kept in the store as they
        finish; every replay keeps ``replay_of`` and gains ``experiment_id``. A failing run
        is a failed run, not an error. Ctrl-C stops handing out runs, waits for the running
        ones and raises ``KeyboardInterrupt``, leaving a resumable experiment. ``progress``
        is called with a :class:`workbench.experiments.Progress` after every run.
        """
        from workbench.experiments import run_experiment

        return run_experiment(
            self.store,
            executions,
            modifications=modifications,
            on_miss=on_miss,
            workers=workers,
            engine=engine,
            address=address,
            name=name,
            progress=progress,
        )

    def compare_experiments(self, a: str, b: str) -> ExperimentComparison:
        """Two experiments of this store side by side (e.g. two candidate changes)."""
        from workbench.experiments import ExperimentComparison, ExperimentResult

        return ExperimentComparison.of(
            ExperimentResult.load(self.store, a), ExperimentResult.load(self.store, b)
        )

    # -- before ----------------------------------------------------------------------------

    def _plan(
        self, execution_id: str, modifications: Mapping[str, Any] | None, on_miss: str
    ) -> _Plan:
        if on_miss not in ON_MISS:
            raise ConfigError(
                f"on_miss={on_miss!r} is not a mismatch policy; use one of "
                f"{', '.join(repr(p) for p in ON_MISS)}"
            )
        mods = _checked_modifications(modifications)
        rewriter = RequestRewriter(mods.get("model"), mods.get("prompt_overrides"))
        # Without its model calls, most of a large recording: the interceptor reads them
        # lighter (``RecordedCalls``); from_step and a damaged recording read them whole.
        original = self.store.get_execution(execution_id, model_calls=False)
        if original.status == "running":
            raise ReplayError(
                f"execution {execution_id} is still running; replay it once it has ended"
            )
        if not original.entrypoint:
            raise ReplayError(
                f"execution {execution_id} has no recorded entrypoint, so there is no code to "
                f"run again; decorate the pipeline's entrypoint with @workbench.pipeline and "
                f"record a new execution"
            )
        _check_step_names(original, mods, rewriter)
        skipped: SkippedSteps = ({}, set())
        if "from_step" in mods:
            skipped = steps_before(self.store.get_execution(execution_id), mods["from_step"])
        responses: list[RecordedResponse] = []
        if not mods.get("use_test_models", False):
            responses = self.store.recorded_responses(execution_id)
            self._check_responses(original, responses, skipped[1])
        function = _load_entrypoint(original.entrypoint, execution_id)
        arguments = original.metadata.get("entrypoint_arguments", original.inputs)
        if not isinstance(arguments, dict):
            raise ReplayError(
                f"execution {execution_id} recorded its entrypoint's arguments as "
                f"{type(arguments).__name__}, not as a mapping of parameter names; record it "
                f"again through @workbench.pipeline"
            )
        overrides: dict[str, Any] = mods.get("inputs", {})
        signature = _signature(function)
        arguments = _overridden(original, signature, arguments, overrides)
        args, kwargs = _call_arguments(signature, arguments)
        inputs = arguments if "entrypoint_arguments" not in original.metadata else original.inputs
        on_miss_policy: OnMiss = on_miss  # narrowed by the check above
        return _Plan(
            original,
            function,
            args,
            kwargs,
            inputs,
            mods,
            on_miss_policy,
            rewriter,
            skipped,
            responses,
        )

    def _check_responses(
        self,
        original: Execution,
        responses: list[RecordedResponse],
        skipped_calls: set[tuple[str, int]],
    ) -> None:
        """Every recorded response the replay may serve is in the store and whole; a damaged
        one would reach the user's code as a baffling SDK error halfway through the run."""
        damaged = {r.call_id: r.damage for r in responses if r.damage is not None}
        if not damaged:
            return
        calls = [
            call
            for call in self.store.get_execution(original.id).model_calls
            if call.id in damaged and (call.request_key, call.occurrence) not in skipped_calls
        ]
        if not calls:
            return
        where = [
            f"  model call {call.id} in step {call.step_id!r} "
            f"({request_summary(call.request)}): {damaged[call.id]}"
            for call in calls
        ]
        raise DamagedRecordingError(
            "\n".join(
                [
                    f"execution {original.id} cannot be replayed: {len(calls)} recorded "
                    f"response(s) in store {self.store.path} are damaged:",
                    *where,
                    "Nothing was run or recorded. Record the execution again, restore the store "
                    "file from a complete copy, or replay with modifications={'use_test_models': "
                    "True} (or from_step past those steps) so the damaged responses are not "
                    "needed.",
                ]
            ),
            execution_id=original.id,
            damaged={call.id: damaged[call.id] for call in calls},
        )

    def _recorded_calls(self, execution_id: str) -> list[ModelCall]:
        return self.store.get_execution(execution_id).model_calls

    def _interceptor(self, plan: _Plan) -> ReplayInterceptor:
        return ReplayInterceptor(
            RecordedCalls(
                plan.responses, functools.partial(self._recorded_calls, plan.original.id)
            ),
            on_miss=plan.on_miss,
            realtime=bool(plan.modifications.get("realtime", False)),
            use_test_models=bool(plan.modifications.get("use_test_models", False)),
            rewriter=plan.rewriter,
            skipped_calls=plan.skipped[1],
            via_stubs=plan.modifications.get("stubs") == "vcrpy",
        )

    def _record(self, plan: _Plan) -> record:
        original = plan.original
        return record(
            original.pipeline_id,
            inputs=plan.inputs,
            store=self.store,
            replay_of=original.id,
            modifications=plan.modifications,
            pipeline_version=original.pipeline_version,
            entrypoint=original.entrypoint,
            user_id=original.user_id,
            session_id=original.session_id,
            environment=original.environment,
        )

    @staticmethod
    def _arm(run: LiveExecution, plan: _Plan, interceptor: ReplayInterceptor) -> None:
        run.interceptor = interceptor
        run.step_outputs = dict(plan.modifications.get("step_outputs", {}))
        run.recorded_steps = plan.skipped[0]
        run.save_all_states = bool(plan.modifications.get("save_all_states", False))
        run.recorded_values = {
            (s.step_id, s.name): s.value
            for s in plan.original.states
            if s.name.startswith("workbench.")
        }

    # -- after -----------------------------------------------------------------------------

    def _result(
        self,
        plan: _Plan,
        run: LiveExecution,
        interceptor: ReplayInterceptor,
        failure: BaseException | None,
    ) -> ReplayResult:
        replay_id = run.id
        if failure is not None and plan.original.status == "completed":
            raise ReplayError(
                f"the replay of {plan.original.id} raised {type(failure).__name__}: {failure} "
                f"where the original completed; the replay is recorded as {replay_id} (see "
                f"`workbench runs show {replay_id}`)",
                execution_id=replay_id,
            ) from failure
        return ReplayResult(
            execution_id=replay_id,
            replay_of=plan.original.id,
            # As recorded (rendered and redacted), without reading the replay back.
            status=run.status,  # type: ignore[arg-type]
            output=None if run.outputs is None else decode(run.json_text(run.outputs).encode()),
            error=None
            if failure is None
            else ErrorInfo.from_json(decode(run.error_text(failure).encode())),
            mismatches=list(interceptor.mismatches),
            unused=interceptor.unused(),
            modifications=plan.modifications,
            fresh_values=list(run.fresh_values),
            _load_calls=lambda: self.store.get_execution(replay_id).model_calls,
        )


def _execution(run: str | Execution | ReplayResult) -> str | Execution:
    return run.execution_id if isinstance(run, ReplayResult) else run


def _raise_on_mismatch(
    plan: _Plan, run: LiveExecution, interceptor: ReplayInterceptor, cause: BaseException | None
) -> None:
    """Under ``on_miss="error"``, any miss fails the replay — even if the code caught the
    SDK error the refused request raised — inside the record block, so it is recorded."""
    if plan.on_miss != "error" or not interceptor.mismatches:
        return
    misses = interceptor.mismatches
    message = mismatch_message(plan.original.id, run.id, misses)
    raise ReplayMismatchError(
        message, mismatches=list(misses), execution_id=run.id, replay_of=plan.original.id
    ) from cause


def mismatch_message(
    original_id: str,
    replay_id: str,
    misses: Sequence[Mismatch],
    *,
    option: Callable[[str], str] = lambda policy: f"on_miss={policy!r}",
    width: int | None = None,
) -> str:
    """What a replay that missed says: each miss (diffs cut to ``width``, see
    :meth:`Mismatch.describe`), where the failed replay is recorded, and the ``on_miss`` policies
    that would answer the misses, spelled by ``option`` (the CLI says ``--on-miss live``)."""
    return "\n".join(
        [
            f"the replay of {original_id} sent {len(misses)} request(s) the recording has "
            f"no answer for:",
            *(m.describe(width) for m in misses),
            f"The replay is recorded as failed: {replay_id}. Pass {option('live')} to send such "
            f"requests for real, or {option('test-model')} to answer them from the test model.",
        ]
    )


def _overridden(
    original: Execution,
    signature: inspect.Signature | None,
    arguments: dict[str, Any],
    overrides: dict[str, Any],
) -> dict[str, Any]:
    """The entrypoint's arguments with the ``inputs`` modification applied.

    A YAML pipeline's run records the runner's arguments (the file, its inputs, its hash), so a
    name that is not one of the runner's is one of the pipeline's inputs, overriding the
    recorded value — as ``workbench run --input NAME=VALUE`` names it; ``{"inputs": {...}}``
    still replaces them all.
    """
    parameters = list(signature.parameters) if signature else []
    recorded_inputs = arguments.get("inputs")
    if "pipeline" in original.metadata and isinstance(recorded_inputs, dict):
        # The pipeline checks its inputs itself, naming the declared ones (PipelineError).
        own = {k: v for k, v in overrides.items() if k in parameters}
        inputs = {k: v for k, v in overrides.items() if k not in parameters}
        return {**arguments, **own, "inputs": {**own.get("inputs", recorded_inputs), **inputs}}
    unknown = sorted(set(overrides) - set(parameters)) if signature else []
    if unknown:
        raise ConfigError(
            f"replay input {', '.join(map(repr, unknown))} is not a parameter of "
            f"{original.entrypoint}, whose parameters are {', '.join(parameters)}; override "
            f"one of those (`--input NAME=VALUE` in the CLI, "
            f"modifications={{'inputs': {{NAME: VALUE}}}} in Python)"
        )
    return {**arguments, **overrides}


def _check_step_names(original: Execution, mods: dict[str, Any], rewriter: RequestRewriter) -> None:
    """A modification naming a step the original never ran is a typo, not a no-op."""
    recorded = {s.step_id for s in original.steps}
    for name, steps in (
        ("prompt_overrides", rewriter.steps),
        ("step_outputs", sorted(mods.get("step_outputs", {}))),
    ):
        unknown = [s for s in steps if s not in recorded]
        if unknown:
            raise ConfigError(
                f"replay modification {name!r} names step(s) {', '.join(map(repr, unknown))} "
                f"that execution {original.id} never ran; its steps are "
                f"{', '.join(map(repr, sorted(recorded))) or '(none)'}"
            )


@contextlib.contextmanager
def _stubs(plan: _Plan, interceptor: ReplayInterceptor) -> Iterator[None]:
    """vcrpy's stubs over the recording, when the replay asked for them; else nothing."""
    if plan.modifications.get("stubs") != "vcrpy":
        yield
        return
    cassette = WorkbenchCassette(
        interceptor.recorded, name=f"replay of {plan.original.id}", live=plan.on_miss == "live"
    )
    with stubs_installed(cassette):
        yield


def _checked_modifications(modifications: Mapping[str, Any] | None) -> dict[str, Any]:
    mods = dict(modifications or {})
    allowed = ", ".join(sorted(MODIFICATIONS))
    for key, value in mods.items():
        types = MODIFICATIONS.get(key)
        if types is None:
            raise ConfigError(
                f"unknown replay modification {key!r}; the allowed ones are {allowed}"
            )
        if not isinstance(value, types) or (types != (bool,) and isinstance(value, bool)):
            expected = " or ".join(t.__name__ for t in types)
            raise ConfigError(f"replay modification {key!r} must be a {expected}, got {value!r}")
    stubs = mods.get("stubs", "workbench")
    if stubs not in STUBS:
        raise ConfigError(
            f"replay modification 'stubs' must be one of {', '.join(map(repr, STUBS))}, "
            f"got {stubs!r}"
        )
    if stubs == "vcrpy":
        require_vcrpy()
        if mods.get("realtime"):
            raise ConfigError(
                "replay modifications 'realtime' and stubs='vcrpy' do not go together: vcrpy's "
                "stubs hand each body over in one piece, so there is no chunk timing to keep; "
                "drop 'stubs' (workbench's stubs keep the original chunks and timing)"
            )
    level = mods.get("log_level")
    if isinstance(level, str) and not isinstance(logging.getLevelName(level.upper()), int):
        raise ConfigError(
            f"replay modification 'log_level'={level!r} is not a logging level; use DEBUG, "
            f"INFO, WARNING, ERROR or CRITICAL"
        )
    for name in ("inputs", "step_outputs"):
        if any(not isinstance(k, str) for k in mods.get(name, {})):
            raise ConfigError(f"replay modification {name!r} must map names (str) to values")
    return mods


@contextlib.contextmanager
def _log_level(level: str | int | None) -> Iterator[None]:
    """The root logger at ``level`` for the replay, restored afterwards."""
    if level is None:
        yield
        return
    root = logging.getLogger()
    before = root.level
    root.setLevel(level.upper() if isinstance(level, str) else level)
    try:
        yield
    finally:
        root.setLevel(before)


def _load_entrypoint(path: str, execution_id: str) -> Callable[..., Any]:
    """The function at ``module:qualname``; the working directory is searched too, as
    ``python -m`` would, because recorded paths are relative to where the run started (the
    finding is ``workbench._imports``'; the words of each failure are the replay's)."""
    module_name, _, qualname = path.partition(":")
    fix = (
        "run the replay from the directory the execution was recorded in, or make the module "
        "importable (pip install -e . or PYTHONPATH)"
    )
    try:
        module = import_module(module_name)
    except Exception as exc:
        raise ReplayError(
            f"the entrypoint {path} of execution {execution_id} cannot be imported "
            f"({type(exc).__name__}: {exc}); {fix}"
        ) from exc
    try:
        target = attribute_at(module, qualname)
    except ValueError as exc:  # <locals> in the path
        raise ReplayError(
            f"the entrypoint {path} of execution {execution_id} is a function defined "
            f"inside another function, which cannot be imported; decorate a module-level "
            f"function with @workbench.pipeline"
        ) from exc
    except AttributeError as exc:
        raise ReplayError(
            f"the entrypoint {path} of execution {execution_id} cannot be imported: "
            f"{module_name} has no {qualname} any more; {fix}"
        ) from exc
    if not callable(target):
        raise ReplayError(f"the entrypoint {path} of execution {execution_id} is not callable")
    return target  # type: ignore[no-any-return]


def _signature(function: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(function)
    except (TypeError, ValueError):
        return None


def _call_arguments(
    signature: inspect.Signature | None, arguments: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Positional and keyword arguments from the bound arguments ``@pipeline`` recorded."""
    if signature is None:
        return tuple(arguments.get("args", ())), dict(arguments.get("kwargs", {}))
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    # Before a ``*args``, a parameter must be passed by position for ``*args`` to follow it.
    positional = any(p.kind is p.VAR_POSITIONAL for p in signature.parameters.values())
    for name, parameter in signature.parameters.items():
        if parameter.kind is parameter.VAR_POSITIONAL:
            positional = False
        if name not in arguments:
            continue
        value = arguments[name]
        if parameter.kind is parameter.POSITIONAL_ONLY or (
            positional and parameter.kind is parameter.POSITIONAL_OR_KEYWORD
        ):
            args.append(value)
        elif parameter.kind is parameter.VAR_POSITIONAL:
            args.extend(value)
        elif parameter.kind is parameter.VAR_KEYWORD:
            kwargs.update(value)
        else:
            kwargs[name] = value
    return tuple(args), kwargs


def _run_coroutine(awaitable: Any) -> Any:
    async def wait() -> Any:
        return await awaitable

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(wait())
    awaitable.close()
    raise ReplayError(
        "the entrypoint is async and an event loop is already running; use "
        "`await RequestReplay(...).areplay_execution(...)`"
    )


#: For batches of replays (``workbench.experiments``), which check the modifications once
#: before any run, and the entrypoints in every worker before the first.
check_modifications = _checked_modifications
load_entrypoint = _load_entrypoint
