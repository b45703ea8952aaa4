"""The watchdog: checks the triggers while executions run, starts profilers, records profiles.

Owns the :class:`ProfilingObserver` (the ``workbench._hooks`` observer named in ``BUILTIN``),
the one watchdog thread, and the ``profile`` rows. The thread exists only while profiling is
enabled and an execution with triggers is running: ``execution_started`` registers the
execution (and checks its triggers once, at once, so that ``execution_time >= 0`` profiles from
the first line), the thread checks every ``check_interval`` seconds, and it ends when the last
watched execution has finished. A trigger fires at most once per execution; its profilers stop
after ``profile_duration`` seconds or when the execution ends, whichever is first, and each
stopped profiler leaves one ``Profile`` linked to the execution. A profiler that cannot run
leaves a profile whose ``summary.error`` says why (and a warning in the ``workbench`` log): the
execution itself goes on, unprofiled, and its recording is complete.

Where the settings come from, first match wins: :func:`push_settings` (Python, the pytest
marker, ``workbench profile run``), the ``WORKBENCH_PROFILING`` environment variable (JSON of a
``profiling`` section, set by ``workbench profile -- CMD`` for its child), then the execution's
``workbench.yaml``. Process-wide profilers (py-spy, memray, yappi) see every thread: two
executions profiled at once share what each profile shows.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from workbench import _hooks, _ids
from workbench._conditions import Observation, Trigger
from workbench.config import ProfilingConfig, WorkbenchConfig
from workbench.exceptions import ConfigError, ProfilerError
from workbench.profiling._base import Capture, prepare_folder
from workbench.profiling._cpu import CpuProfile, profiler_threads
from workbench.profiling._summary import summary_text
from workbench.records import Profile, ProfileSummary

__all__ = [
    "ENV_CONFIG",
    "ENV_EVENTS",
    "ProfileListener",
    "ProfilingObserver",
    "add_listener",
    "observer",
    "pop_settings",
    "push_settings",
    "remove_listener",
    "watchdog_thread",
]

log = logging.getLogger("workbench.profiling")

#: JSON of a ``profiling`` section that overrides workbench.yaml (``workbench profile -- CMD``).
ENV_CONFIG = "WORKBENCH_PROFILING"
#: A file that receives one JSON line per profile started, recorded or failed.
ENV_EVENTS = "WORKBENCH_PROFILE_EVENTS"
_THREAD_NAME = "workbench-profiler-watchdog"
_FIRST_CHECK_TIMEOUT_S = 5.0
_KIND = {"cpu": "cpu", "memory": "memory", "async_io": "async"}
_EXTENSION = {"cpu": ".speedscope.json", "memory": ".memray.bin", "async": ".pstat"}


class ProfileListener:
    """Told about profiles as they start and are recorded (the CLI's progress, the marker)."""

    def profile_started(self, execution_id: str, kind: str, trigger: str) -> None:
        """A profiler started for ``execution_id``."""

    def profile_recorded(self, profile: Profile, store_path: str) -> None:
        """``profile`` was queued for the store at ``store_path`` (failed ones too)."""


_settings_stack: list[ProfilingConfig] = []
_listeners: tuple[ProfileListener, ...] = ()
_registry_lock = threading.Lock()


def push_settings(settings: ProfilingConfig) -> None:
    """Profile every execution started from now on with ``settings`` (until popped)."""
    with _registry_lock:
        _settings_stack.append(settings)
    _hooks.add_observer(_OBSERVER)


def pop_settings(settings: ProfilingConfig) -> None:
    with _registry_lock:
        if settings in _settings_stack:
            # Remove the last occurrence: nested blocks unwind in order.
            index = len(_settings_stack) - 1 - _settings_stack[::-1].index(settings)
            del _settings_stack[index]


def add_listener(listener: ProfileListener) -> None:
    global _listeners
    with _registry_lock:
        _listeners = (*_listeners, listener)


def remove_listener(listener: ProfileListener) -> None:
    global _listeners
    with _registry_lock:
        _listeners = tuple(item for item in _listeners if item is not listener)


@functools.lru_cache(maxsize=4)
def _settings_from_env(text: str) -> ProfilingConfig:
    try:
        return ProfilingConfig.model_validate(orjson.loads(text))
    except (orjson.JSONDecodeError, ValueError) as exc:
        raise ConfigError(
            f"{ENV_CONFIG} holds no valid profiling section ({exc}); unset it, or set it to "
            f'JSON such as {{"triggers": [{{"condition": "execution_time > 5"}}]}}'
        ) from exc


def _settings_for(config: WorkbenchConfig) -> tuple[ProfilingConfig, str | None]:
    """The settings for a new execution, and the file that relative paths are relative to."""
    if _settings_stack:
        return _settings_stack[-1], None
    text = os.environ.get(ENV_CONFIG)
    if text:
        return _settings_from_env(text), None
    return config.profiling, config.source


class _Machine:
    """The process's memory and CPU use, sampled only when a trigger reads them."""

    def __init__(self) -> None:
        try:
            import psutil
        except ImportError as exc:
            raise ProfilerError(
                f"triggers on memory_usage or cpu_percent need psutil, which is not installed "
                f"({exc}); install it with pip install 'pipeline-workbench[profiling]'"
            ) from exc
        self._process = psutil.Process()
        self._process.cpu_percent(None)  # the first reading only starts the interval

    def memory_usage(self) -> int:
        return int(self._process.memory_info().rss)

    def cpu_percent(self) -> float:
        return float(self._process.cpu_percent(None))


@dataclasses.dataclass(eq=False)
class _Running:
    capture: Capture
    trigger: Trigger
    profile_id: str
    deadline: float | None
    observation: Observation


@dataclasses.dataclass(eq=False)
class _Watch:
    """One execution being watched."""

    run: Any  # LiveExecution
    settings: ProfilingConfig
    folder: Path
    triggers: list[Trigger]
    reads: frozenset[str]
    started: float
    fired: list[bool]
    step_time: float | None = None
    #: Steps of the execution still running: (step id, occurrence) -> when it began.
    steps: dict[tuple[str, int], float] = dataclasses.field(default_factory=dict)
    running: list[_Running] = dataclasses.field(default_factory=list)
    closed: bool = False
    checked: threading.Event = dataclasses.field(default_factory=threading.Event)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


def _step_time(watch: _Watch, now: float) -> float | None:
    """How long the longest-running step has been running, so that ``step_time > 30`` fires
    while a slow step is still running (and can be profiled); with no step running, how long
    the most recently finished one took; ``None`` before any step."""
    began = list(watch.steps.values())  # a copy: steps start and end on other threads
    if began:
        return now - min(began)
    return watch.step_time


class ProfilingObserver(_hooks.Observer):
    """Watches executions whose settings enable profiling and have triggers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watches: dict[str, _Watch] = {}
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._machine: _Machine | None = None

    # -- the hooks ------------------------------------------------------------------------

    def execution_started(self, run: Any) -> None:
        if not run.recording:
            return  # debug mode did not sample it: no profile could be linked to it
        settings, source = _settings_for(run.config)
        if not settings.enabled or not settings.triggers:
            return
        triggers = [Trigger.from_config(t, settings.types) for t in settings.triggers]
        reads = frozenset().union(*(t.names for t in triggers))
        if reads & {"memory_usage", "cpu_percent"} and self._machine is None:
            self._machine = _Machine()
        watch = _Watch(
            run=run,
            settings=settings,
            folder=settings.output_path(source),
            triggers=triggers,
            reads=reads,
            started=time.perf_counter(),
            fired=[False] * len(triggers),
        )
        # A trigger that holds from the start profiles from the start: then wake the watchdog
        # and wait for its first check. The profilers start on its thread, never here: memray
        # started on a thread deep in a call stack loses that thread's stacks as calls return.
        at_start = self._observe(watch, watch.started, self._sample(reads - {"cpu_percent"}))
        holds_now = any(_holds(trigger, at_start) for trigger in triggers)
        with self._lock:
            self._watches[run.id] = watch
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=_THREAD_NAME, daemon=True)
                self._thread.start()
            if holds_now:
                self._wake.set()
        if holds_now:
            watch.checked.wait(_FIRST_CHECK_TIMEOUT_S)

    def wants_steps(self, run: Any) -> bool:
        # Asked after execution_started: a run without triggers has no watch, and its steps
        # cost this observer nothing.
        return run.id in self._watches

    def step_started(self, step: Any) -> None:
        watch = self._watches.get(step.run.id)
        if watch is not None:
            watch.steps[(step.step_id, step.occurrence)] = time.perf_counter()

    def step_finished(self, event: _hooks.StepEvent) -> None:
        watch = self._watches.get(event.run.id)
        if watch is not None:
            watch.steps.pop((event.step_id, event.occurrence), None)
            watch.step_time = event.duration_s

    def execution_finished(self, run: Any) -> None:
        with self._lock:
            watch = self._watches.pop(run.id, None)
            self._wake.set()  # let the thread end now if this was the last execution
        if watch is None:
            return
        with watch.lock:
            watch.closed = True
            for item in watch.running:
                self._finish(watch, item)
            watch.running = []

    # -- the thread -----------------------------------------------------------------------

    def thread(self) -> threading.Thread | None:
        return self._thread

    def _loop(self) -> None:
        profiler_threads.add(threading.get_ident())
        try:
            while True:
                with self._lock:
                    watches = list(self._watches.values())
                    if not watches:
                        self._thread = None
                        return
                    self._wake.clear()
                reads = frozenset().union(*(w.reads for w in watches))
                sample = self._sample(reads)  # once per round: cpu_percent is "since last time"
                for watch in watches:
                    self._check(watch, sample)
                    watch.checked.set()
                self._wake.wait(min(w.settings.check_interval for w in watches))
        finally:
            profiler_threads.discard(threading.get_ident())

    def _sample(self, reads: frozenset[str]) -> tuple[int | None, float | None]:
        machine = self._machine
        if machine is None:
            return None, None
        memory = machine.memory_usage() if "memory_usage" in reads else None
        cpu = machine.cpu_percent() if "cpu_percent" in reads else None
        return memory, cpu

    def _observe(
        self, watch: _Watch, now: float, sample: tuple[int | None, float | None]
    ) -> Observation:
        memory, cpu = sample
        return Observation(
            execution_id=watch.run.id,
            pipeline_id=watch.run.pipeline_id,
            execution_time=now - watch.started,
            step_time=_step_time(watch, now),
            memory_usage=memory if "memory_usage" in watch.reads else None,
            cpu_percent=cpu if "cpu_percent" in watch.reads else None,
        )

    def _check(self, watch: _Watch, sample: tuple[int | None, float | None]) -> None:
        # Everything under the execution's lock: execution_finished waits for a profile being
        # started or finished here, so no profile is lost when the program exits right after.
        with watch.lock:
            if watch.closed:
                return
            now = time.perf_counter()
            for item in list(watch.running):
                if item.deadline is not None and now >= item.deadline:
                    watch.running.remove(item)
                    self._finish(watch, item)
            if not all(watch.fired):
                observation = self._observe(watch, now, sample)
                for index, trigger in enumerate(watch.triggers):
                    if watch.fired[index]:
                        continue
                    try:
                        hit = bool(trigger.condition(observation))
                    except Exception:
                        watch.fired[index] = True  # a broken condition is not asked again
                        log.exception(
                            "profiling trigger %s raised; it is off for execution %s",
                            trigger.label,
                            watch.run.id,
                        )
                        continue
                    if hit:
                        watch.fired[index] = True
                        self._fire(watch, trigger, observation)

    # -- starting and stopping profilers ----------------------------------------------------

    def _fire(self, watch: _Watch, trigger: Trigger, observation: Observation) -> None:
        settings = watch.settings
        for config_kind in trigger.kinds:
            kind = _KIND[config_kind]
            profile_id = _ids.new_id("prof")
            try:
                folder = prepare_folder(watch.folder)
                capture = _capture(
                    kind, folder / f"{profile_id}{_EXTENSION[kind]}", settings, trigger
                )
                capture.start()
            except ProfilerError as exc:
                self._failed(watch, kind, trigger, profile_id, observation, str(exc))
                continue
            except Exception as exc:  # a profiler's own failure must not fail the pipeline
                message = f"the {kind} profiler failed to start ({type(exc).__name__}: {exc})"
                self._failed(watch, kind, trigger, profile_id, observation, message)
                continue
            deadline = None
            if trigger.duration_s is not None:
                deadline = time.perf_counter() + trigger.duration_s
            watch.running.append(_Running(capture, trigger, profile_id, deadline, observation))
            for listener in _listeners:
                _tell(listener.profile_started, watch.run.id, kind, trigger.label)
            _event(
                {
                    "event": "started",
                    "execution_id": watch.run.id,
                    "kind": kind,
                    "trigger": trigger.label,
                }
            )

    def _failed(
        self,
        watch: _Watch,
        kind: str,
        trigger: Trigger,
        profile_id: str,
        observation: Observation,
        message: str,
    ) -> None:
        log.warning("workbench: no %s profile for execution %s: %s", kind, watch.run.id, message)
        summary = ProfileSummary(kind=kind, observation=observation.as_dict(), error=message)
        self._record(watch, profile_id, kind, trigger, "", summary)

    def _finish(self, watch: _Watch, item: _Running) -> None:
        capture = item.capture
        try:
            summary = capture.stop()
        except Exception as exc:
            message = (
                str(exc)
                if isinstance(exc, ProfilerError)
                else (f"the {capture.kind} profiler failed ({type(exc).__name__}: {exc})")
            )
            self._failed(
                watch, capture.kind, item.trigger, item.profile_id, item.observation, message
            )
            return
        observed = item.observation.as_dict()
        if capture.first_sample_at is not None:
            # When the profile began, on the execution's clock: the trigger's latency shows.
            observed["profile_started_s"] = round(capture.first_sample_at - watch.started, 6)
        summary = dataclasses.replace(summary, observation=observed)
        path = summary.artifacts.get("flamegraph") or str(capture.path)
        self._record(watch, item.profile_id, capture.kind, item.trigger, path, summary)

    def _record(
        self,
        watch: _Watch,
        profile_id: str,
        kind: str,
        trigger: Trigger,
        path: str,
        summary: ProfileSummary,
    ) -> None:
        run = watch.run
        profile = Profile(profile_id, run.id, kind, trigger.label, path, summary, time.time())
        run.store.put(
            "profile",
            (
                profile.id,
                run.id,
                kind,
                profile.trigger,
                path,
                summary_text(summary),
                profile.created_at,
            ),
        )
        store_path = str(run.store.path)
        for listener in _listeners:
            _tell(listener.profile_recorded, profile, store_path)
        _event(
            {
                "event": "recorded",
                "profile_id": profile.id,
                "execution_id": run.id,
                "kind": kind,
                "path": path,
                "error": summary.error,
                "store": store_path,
            }
        )


def _capture(kind: str, path: Path, settings: ProfilingConfig, trigger: Trigger) -> Capture:
    if kind == "cpu":
        return CpuProfile(
            path,
            top=settings.top,
            rate=settings.sampling_rate,
            duration_s=trigger.duration_s,
            sampler=settings.cpu_sampler,
            py_spy_path=settings.py_spy_path,
        )
    if kind == "memory":
        from workbench.profiling._memory import MemoryProfile

        return MemoryProfile(path, top=settings.top, heap_dump=trigger.heap_dump)
    from workbench.profiling._async import AsyncProfile

    return AsyncProfile(path, top=settings.top)


def _holds(trigger: Trigger, observation: Observation) -> bool:
    try:
        return bool(trigger.condition(observation))
    except Exception:
        return False  # the watchdog's check asks again, and logs the failure


def _tell(method: Callable[..., None], *args: Any) -> None:
    try:
        method(*args)
    except Exception:
        log.exception("workbench profile listener %r failed", method)


def _event(fields: dict[str, Any]) -> None:
    """One JSON line for ``workbench profile -- CMD``, which follows the file to show progress."""
    target = os.environ.get(ENV_EVENTS)
    if not target:
        return
    try:
        with open(target, "ab") as file:
            file.write(orjson.dumps(fields) + b"\n")
    except OSError:
        log.warning("workbench: cannot append profiling progress to %s", target)


_OBSERVER = ProfilingObserver()


def observer(config: WorkbenchConfig) -> ProfilingObserver:
    """The ``_hooks.BUILTIN`` factory. Always the one observer: whether an execution is
    profiled is decided per execution, from that execution's settings."""
    from workbench.profiling._link import install_from_environment

    install_from_environment()  # under `workbench profile -- CMD`: name the executions
    return _OBSERVER


def watchdog_thread() -> threading.Thread | None:
    """The watchdog thread while it runs (tests check that it comes and goes)."""
    return _OBSERVER.thread()
