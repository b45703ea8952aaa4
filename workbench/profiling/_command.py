"""``workbench profile -- CMD``: run a command and profile the whole of it.

Owns running CMD profiled, as ``py-spy record``, ``memray run`` and yappi users expect: from
its first line for ``duration`` seconds or until it exits, whether or not it records
executions. When it does, the profile is linked to every execution that started under it (one
``Profile`` row each, in that execution's store, sharing the artifact). The trigger-based form
(``--trigger``) is the watchdog's, not this module's.

How, per kind:

* CPU: py-spy, run from here and attached to CMD's first Python process with its subprocesses
  (``--nonblocking``). That process's bootstrap waits until py-spy samples, so nothing of the
  program runs unseen; where py-spy is missing or refused, it samples itself (``cpu_sampler:
  auto``) and the profile says why.
* memory and async: memray's ``Tracker`` and yappi cannot be attached from outside, so the
  bootstrap (``_bootstrap``, a ``sitecustomize`` put first on CMD's ``PYTHONPATH``) starts them
  in CMD's first Python process before its first line and writes their files at the end.

The bootstrap and the executions' announcer (``_link``) append JSON lines to one report file,
which this module follows. It owns no rendering (the CLI prints) and no trigger.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from workbench import _ids
from workbench._conditions import ProfileKind
from workbench.config import ProfilingConfig
from workbench.exceptions import ConfigError, ProfilerError, StoreError
from workbench.profiling._base import prepare_folder
from workbench.profiling._bootstrap import ENV_BOOTSTRAP, sitecustomize_source
from workbench.profiling._cpu import CpuProfile, find_py_spy
from workbench.profiling._link import ENV_COMMAND
from workbench.profiling._summary import summarise_speedscope, summary_text
from workbench.profiling._watchdog import ENV_CONFIG, ENV_EVENTS
from workbench.records import Profile, ProfileSummary
from workbench.store import Store
from workbench.store._store import DB_ENV

__all__ = ["CommandProfile", "ProfiledCommand", "check_command", "check_kinds"]

#: What a profile of the whole command says started it.
COMMAND_TRIGGER = "the whole command"
_KIND = {"cpu": "cpu", "memory": "memory", "async_io": "async"}
_EXTENSION = {"cpu": ".speedscope.json", "memory": ".memray.bin", "async": ".pstat"}
_TOOL = {"cpu": "py-spy", "memory": "memray", "async": "yappi"}
_POLL_S = 0.02
_STOP_GRACE_S = 10.0  # after --duration: the command's own timer writes the in-process files
_EXAMPLE = "e.g. `workbench profile --cpu -- python script.py`"

Progress = Callable[[str, str | None], None]  # (message, rich style)


@dataclasses.dataclass(frozen=True)
class CommandProfile:
    """One kind's profile of the whole command, and the rows that link it to executions."""

    #: The profile itself (``execution_id`` is the first linked execution's, else ``None``).
    profile: Profile
    #: One row per execution that started under the profile, each in that execution's store.
    linked: tuple[Profile, ...]


def check_kinds(kinds: Sequence[ProfileKind]) -> None:
    """A :class:`ConfigError` unless ``kinds`` can be profiled together."""
    if "memory" in kinds and "async_io" in kinds:
        raise ConfigError(
            "--memory and --async cannot run together: memray and yappi share one interpreter "
            "hook; give one of them (--cpu goes with either), e.g. `workbench profile --memory "
            "-- python script.py`, then the same with --async"
        )


def check_command(command: Sequence[str]) -> list[str]:
    """``command`` if it names something that can be run, else a :class:`ConfigError`."""
    if not command or not command[0]:
        raise ConfigError(
            f"give the command to profile after --, {_EXAMPLE}; or use `workbench profile run "
            f"ID` / `workbench profile show PROFILE_ID`"
        )
    program = command[0]
    if os.sep in program or (os.altsep and os.altsep in program):
        if not Path(program).is_file():
            raise ConfigError(
                f"cannot run {program!r}: no such file; check the command after --, {_EXAMPLE}"
            )
        if not os.access(program, os.X_OK):
            raise ConfigError(
                f"cannot run {program!r}: it is not executable; run it through its "
                f"interpreter, e.g. `workbench profile -- python {program}`, or chmod +x it"
            )
    elif shutil.which(program) is None:
        raise ConfigError(
            f"cannot run {program!r}: no such command on PATH; check the command after --, "
            f"{_EXAMPLE}"
        )
    return list(command)


@dataclasses.dataclass
class _Kind:
    """One kind being profiled: where its artifact goes and how it went."""

    kind: str
    profile_id: str
    path: Path
    sampler: str  # py-spy, in-process, memray, yappi
    notes: list[str] = dataclasses.field(default_factory=list)
    started: bool = False
    done: bool = False  # stopped or failed
    error: str | None = None
    duration_s: float = 0.0


class ProfiledCommand:
    """CMD run with its whole process profiled.

    >>> with ProfiledCommand(["python", "x.py"], kinds=["cpu"], settings=settings) as run:
    ...     for found in run.profiles():   # when the profile ends: --duration, or CMD's exit
    ...         print(found.profile.summary.top_functions)
    ...     code = run.wait()              # CMD's exit code

    For CPU, CMD's Python waits (at most 10 s) until :meth:`profiles` has attached py-spy, so
    call it right after :meth:`start`.
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        kinds: Sequence[ProfileKind],
        settings: ProfilingConfig,
        duration: float | None = None,
        db: Path | None = None,
        progress: Progress | None = None,
    ) -> None:
        check_kinds(kinds)
        self.command = check_command(command)
        self.settings = settings
        self.duration = duration
        self.db = db
        self._progress = progress or (lambda message, style: None)
        folder = prepare_folder(settings.output_path(None))
        self._kinds: dict[str, _Kind] = {}
        for config_kind in kinds:
            kind = _KIND[config_kind]
            profile_id = _ids.new_id("prof")
            self._kinds[kind] = _Kind(
                kind, profile_id, folder / f"{profile_id}{_EXTENSION[kind]}", _TOOL[kind]
            )
        self.trigger = COMMAND_TRIGGER + (f", first {duration:g} s" if duration else "")
        self._control: Path | None = None
        self._child: subprocess.Popen[bytes] | None = None
        self._spy: CpuProfile | None = None
        self._offset = 0
        self._pid: int | None = None  # the command's first Python process
        self._executions: list[dict[str, Any]] = []
        self._started_at = 0.0
        self._ended_at: float | None = None  # wall clock: executions after it are not linked
        self._code: int | None = None

    # -- running ------------------------------------------------------------------------------

    def __enter__(self) -> ProfiledCommand:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._spy is not None and exc is not None:
                self._spy.abandon()
            if self._control is not None:
                self._release()  # the command must never wait for a profile that is over
            self.wait()
        finally:
            if self._control is not None:
                shutil.rmtree(self._control, ignore_errors=True)

    def start(self) -> None:
        """Start CMD with its bootstrap (and, for CPU, get py-spy ready to attach)."""
        control = self._control = Path(tempfile.mkdtemp(prefix="workbench-profile-"))
        site = control / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(sitecustomize_source(), encoding="utf-8")
        report = control / "report.jsonl"
        report.touch()
        in_process = {k.kind: str(k.path) for k in self._kinds.values() if k.kind != "cpu"}
        go: str | None = None
        cpu = self._kinds.get("cpu")
        if cpu is not None:
            reason = self._why_not_py_spy()
            if reason is None:
                go = str(control / "go")
            else:
                in_process["cpu"] = str(cpu.path)
                cpu.sampler = "in-process"
                cpu.notes.append(_in_process_note(reason))
        plan = {
            "site_dir": str(site),
            "pythonpath": os.environ.get("PYTHONPATH"),
            "claim": str(control / "claim"),
            "report": str(report),
            "go": go,
            "in_process": in_process,
            "duration": self.duration,
            "rate": self.settings.sampling_rate,
        }
        env = {k: v for k, v in os.environ.items() if k != ENV_EVENTS}
        paths = [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]
        env.update(
            {
                ENV_BOOTSTRAP: json.dumps(plan),
                "PYTHONPATH": os.pathsep.join(paths),
                ENV_COMMAND: str(report),
                # The program's own trigger-based profilers (workbench.yaml) would fight these
                # over the interpreter hook and the CPU: this profile replaces them.
                ENV_CONFIG: ProfilingConfig(enabled=False).model_dump_json(),
            }
        )
        if self.db is not None:
            env[DB_ENV] = str(self.db.expanduser().absolute())
        self._started_at = time.time()
        try:
            self._child = subprocess.Popen(self.command, env=env)
        except OSError as exc:
            shutil.rmtree(control, ignore_errors=True)
            self._control = None
            raise ProfilerError(
                f"cannot run {shlex.join(self.command)!r}: {exc.strerror}; check the command "
                f"after --, {_EXAMPLE}"
            ) from exc

    def _why_not_py_spy(self) -> str | None:
        """Why the CPU profile cannot be py-spy's (then the command samples itself), or None."""
        choice = self.settings.cpu_sampler
        if choice == "in-process":
            return "profiling.cpu_sampler is in-process"
        if find_py_spy(self.settings.py_spy_path) is not None:
            return None
        where = self.settings.py_spy_path or "beside the interpreter or on PATH"
        if choice == "py-spy":
            raise ProfilerError(
                f"cannot profile CPU with py-spy: no py-spy executable {where}. Install it "
                f"(pip install py-spy), or set profiling.cpu_sampler to auto or in-process"
            )
        return f"no py-spy executable {where}"

    def profiles(self) -> list[CommandProfile]:
        """Wait until the profile ends (``duration`` passed, or CMD exited), then summarise
        each kind and link it to the executions that started meanwhile."""
        child = self._child
        if child is None:
            raise ProfilerError("the profiled command was not started; call start() first")
        deadline = None if self.duration is None else time.perf_counter() + self.duration
        grace: float | None = None
        while True:
            try:
                self._follow()
                if child.poll() is not None:
                    break
                now = time.perf_counter()
                if deadline is not None and now >= deadline:
                    if self._spy is not None:
                        self._stop_py_spy()
                    grace = grace or now + _STOP_GRACE_S
                    in_child = [k for k in self._kinds.values() if k.sampler != "py-spy"]
                    if all(k.done for k in in_child) or now >= grace:
                        break
                child.wait(_POLL_S)
            except subprocess.TimeoutExpired:
                pass
            except KeyboardInterrupt:
                continue  # CMD got the Ctrl-C too: wait for it to write its profiles
        self._ended_at = time.time()
        if self._spy is not None:
            self._stop_py_spy()
        self._follow()
        self._release()
        return [self._result(k) for k in self._kinds.values()]

    def wait(self) -> int:
        """Wait for CMD to exit; its exit code."""
        if self._code is None and self._child is not None:
            while True:
                try:
                    self._code = self._child.wait()
                    break
                except KeyboardInterrupt:
                    continue
        return self._code or 0

    # -- following the report -----------------------------------------------------------------

    def _follow(self) -> None:
        assert self._control is not None
        with (self._control / "report.jsonl").open("rb") as file:
            file.seek(self._offset)
            data = file.read()
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.splitlines():
            self._handle(json.loads(line))

    def _handle(self, event: dict[str, Any]) -> None:
        name = event["event"]
        if name == "execution":
            self._executions.append(event)
            return
        if self._pid is None:
            self._pid = event["pid"]  # the bootstrap's events come from the profiled process
        if name == "hello":
            self._attach(event)
            return
        item = self._kinds.get(event.get("kind", ""))
        if item is None:
            return
        if name == "started":
            item.started = True
            self._progress(f"▶ {item.kind} profile ({item.sampler}) of pid {event['pid']}", None)
        elif name == "stopped":
            item.done = True
            item.duration_s = float(event.get("duration_s", 0.0))
        elif name == "failed":
            item.done = True
            item.error = str(event["error"])
            self._progress(f"✗ {item.kind} profile: {item.error}", "red")

    def _attach(self, hello: dict[str, Any]) -> None:
        """py-spy onto the process that said hello; then let it run (or sample itself)."""
        cpu = self._kinds.get("cpu")
        if cpu is None or self._spy is not None or cpu.done or self._ended_at is not None:
            return
        spy = CpuProfile(
            cpu.path,
            top=self.settings.top,
            rate=self.settings.sampling_rate,
            sampler="py-spy",
            py_spy_path=self.settings.py_spy_path,
            pid=int(hello["pid"]),
        )
        refusal = spy.attach()
        answer = ""
        if refusal is None:
            self._spy = spy
            cpu.started = True
            self._progress(f"▶ cpu profile (py-spy) of pid {hello['pid']}", None)
        else:
            if hello.get("ptrace"):
                refusal = f"{refusal}; {hello['ptrace']}"
            if self.settings.cpu_sampler == "py-spy":
                cpu.done, cpu.error = True, _py_spy_required(refusal)
            else:
                answer = str(cpu.path)  # the command samples itself into the file
                cpu.sampler = "in-process"
                cpu.notes.append(_in_process_note(refusal))
        self._release(answer)

    def _release(self, answer: str = "") -> None:
        """Let the command's Python go on: py-spy samples it (``""``), or it samples itself
        into the file ``answer`` names. Once only; a hello after the profile ended finds the
        answer already there and waits for nothing."""
        assert self._control is not None
        if (self._control / "go").exists():
            return
        ready = self._control / "go.tmp"
        ready.write_text(answer, encoding="utf-8")
        ready.replace(self._control / "go")

    def _stop_py_spy(self) -> None:
        spy, cpu = self._spy, self._kinds["cpu"]
        self._spy = None
        if spy is None:
            return
        try:
            summary = spy.stop()
        except ProfilerError as exc:
            cpu.error = str(exc)
        else:
            cpu.duration_s = summary.duration_s
            cpu.notes.extend(summary.notes)
        cpu.done = True

    # -- results ------------------------------------------------------------------------------

    def _summary(self, item: _Kind) -> ProfileSummary:
        if item.error is None and not item.started:
            item.error = self._never_started(item)
        elif item.error is None and not item.done:
            item.error = (
                f"{shlex.join(self.command)} ended before its {item.kind} profile was written "
                f"(killed by a signal, or it left through os._exit); let it exit normally, or "
                f"give --duration shorter than its run"
            )
        if item.error is None:
            try:
                return self._read(item)
            except ProfilerError as exc:
                item.error = str(exc)
        return ProfileSummary(kind=item.kind, sampler=item.sampler, error=item.error)

    def _read(self, item: _Kind) -> ProfileSummary:
        if item.kind == "cpu":
            return summarise_speedscope(
                item.path, sampler=item.sampler, top=self.settings.top, notes=item.notes
            )
        if item.kind == "memory":
            from workbench.profiling._memory import MemoryProfile

            memory = MemoryProfile(
                item.path, top=self.settings.top, heap_dump=True, from_start=True
            )
            return memory.summarise()
        from workbench.profiling._async import summarise_pstat

        return summarise_pstat(item.path, top=self.settings.top, duration_s=item.duration_s)

    def _never_started(self, item: _Kind) -> str:
        shown = shlex.join(self.command)
        if self._pid is None:
            return (
                f"{shown} ran no Python process that loaded workbench's profiler bootstrap: "
                f"it is not a Python program, or Python ran with -I, -E or -S (which ignore "
                f"PYTHONPATH, where the bootstrap is); profile the Python command itself, "
                f"{_EXAMPLE}"
            )
        return f"the {item.kind} profiler did not start in process {self._pid}"

    def _result(self, item: _Kind) -> CommandProfile:
        summary = self._summary(item)
        if summary.error is None:
            summary = dataclasses.replace(
                summary, observation={"command": shlex.join(self.command), "pid": self._pid}
            )
        path = "" if summary.error else summary.artifacts.get("flamegraph", str(item.path))
        ended = self._ended_at or time.time()
        executions = [e for e in self._executions if e["at"] <= ended]
        # The first execution's row carries the artifact's own id, so `profile show` finds it.
        linked = [
            Profile(
                item.profile_id if index == 0 else _ids.new_id("prof"),
                execution["execution_id"],
                item.kind,
                self.trigger,
                path,
                summary,
                time.time(),
            )
            for index, execution in enumerate(executions)
        ]
        stored = self._store(linked, {e["execution_id"]: e["store"] for e in executions})
        first = stored[0] if stored else None
        profile = Profile(
            item.profile_id,
            first.execution_id if first and first.id == item.profile_id else None,
            item.kind,
            self.trigger,
            path,
            summary,
            time.time(),
        )
        return CommandProfile(profile, tuple(stored))

    def _store(self, profiles: list[Profile], stores: dict[str, str]) -> list[Profile]:
        """Write each row into its execution's store; the rows written."""
        written: list[Profile] = []
        by_store: dict[str, list[Profile]] = {}
        for profile in profiles:
            by_store.setdefault(stores[profile.execution_id or ""], []).append(profile)
        for path, rows in by_store.items():
            try:
                with Store(path) as store:
                    for p in rows:
                        store.put(
                            "profile",
                            (
                                p.id,
                                p.execution_id,
                                p.kind,
                                p.trigger,
                                p.path,
                                summary_text(p.summary),
                                p.created_at,
                            ),
                        )
                written.extend(rows)
            except StoreError as exc:
                self._progress(f"✗ cannot link the profile to executions in {path}: {exc}", "red")
        return written


def _in_process_note(reason: str) -> str:
    return (
        f"py-spy could not be used ({reason}); the command sampled itself in-process over "
        f"sys._current_frames() instead, which holds the GIL for each sample, cannot see "
        f"native frames, and imported workbench before the program's first line"
    )


def _py_spy_required(reason: str) -> str:
    return (
        f"cannot profile CPU with py-spy: {reason}. Allow ptrace (run as root, give "
        f"CAP_SYS_PTRACE, or set kernel.yama.ptrace_scope to 0 or 1), or set "
        f"profiling.cpu_sampler to auto or in-process"
    )
