"""``workbench profile``: profile a command, re-run a recorded execution profiled, show one.

Owns the command group's options and output, and nothing about profiling itself::

    workbench profile [--cpu] [--memory] [--async] [--duration S] [--trigger COND] -- CMD ...
    workbench profile run ID [--cpu] [--memory] [--async] [--duration S] [--trigger COND]
    workbench profile show PROFILE_ID [--json]

The first profiles the whole of CMD, as ``py-spy record -- CMD`` does (``_command``), and links
the profile to every execution CMD records. With ``--trigger`` it profiles CMD's executions
instead, each once the condition holds in it: it hands the child a ``profiling`` section in
``WORKBENCH_PROFILING`` (the child's own watchdog does the work) and follows the progress the
child appends to the file in ``WORKBENCH_PROFILE_EVENTS``. WorkbenchErrors become one
``error: ...`` line through the CLI's group, as for every command.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import ValidationError
from rich.console import Console

from workbench._conditions import ProfileKind
from workbench.cli._options import (
    CONTEXT,
    console,
    db_option,
    echo_json,
    execution_ids,
    json_option,
    open_existing,
)
from workbench.config import ProfilingConfig, ProfilingTriggerConfig, load_config
from workbench.exceptions import ConfigError, StoreError
from workbench.profiling._command import ProfiledCommand, check_command, check_kinds
from workbench.profiling._session import FROM_THE_START, profile_executions
from workbench.profiling._summary import as_json as profile_json
from workbench.profiling._summary import profile_view
from workbench.profiling._triggered import TriggeredCommand
from workbench.records import Profile
from workbench.store import Store

__all__ = ["profile_command"]

F = TypeVar("F", bound=Callable[..., Any])
_COMMAND_KEY = "workbench.profile.command"


def _profiling_options(fn: F) -> F:
    options = [
        click.option("--cpu", is_flag=True, help="CPU profile (py-spy). The default."),
        click.option("--memory", is_flag=True, help="Heap profile (memray), with flame graph."),
        click.option(
            "--async",
            "async_io",
            is_flag=True,
            help="Async I/O profile (yappi, wall clock). Not with --memory.",
        ),
        click.option(
            "--duration",
            type=click.FloatRange(min=0, min_open=True),
            metavar="S",
            default=None,
            help="Profile for S seconds (CMD runs on to its end). Default: until CMD exits "
            "(with --trigger: until the execution ends).",
        ),
        click.option(
            "--trigger",
            metavar="COND",
            default=None,
            help="Profile each execution once COND holds in it, e.g. 'execution_time > 5s' "
            "or 'memory_usage > 500MB'. Default: from the start (for CMD: the whole command, "
            "not each execution).",
        ),
        db_option(),
        json_option("Print the profiles as JSON (as `profile show --json`), progress on stderr."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _kinds(cpu: bool, memory: bool, async_io: bool) -> list[ProfileKind]:
    kinds: list[ProfileKind] = []
    if cpu:
        kinds.append("cpu")
    if memory:
        kinds.append("memory")
    if async_io:
        kinds.append("async_io")
    check_kinds(kinds)
    return kinds or ["cpu"]


def _settings(
    kinds: Sequence[ProfileKind], duration: float | None, trigger: str | None
) -> ProfilingConfig:
    """The section the profiled executions use; profiles go where workbench.yaml says."""
    config = load_config()
    try:
        return ProfilingConfig(
            enabled=True,
            types=list(kinds),
            triggers=[
                ProfilingTriggerConfig(
                    condition=trigger or FROM_THE_START,
                    profile_type=list(kinds),
                    profile_duration=duration,
                    heap_dump="memory" in kinds,
                )
            ],
            check_interval=0.05,
            output_dir=str(config.profiling.output_path(config.source)),
            cpu_sampler=config.profiling.cpu_sampler,
            py_spy_path=config.profiling.py_spy_path,
            sampling_rate=config.profiling.sampling_rate,
            top=config.profiling.top,
        )
    except ValidationError as exc:  # the trigger is not in the grammar
        message = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"--trigger: {message}") from None


class _ProfileGroup(click.Group):
    """A group whose default command is "profile CMD": everything after ``--`` is CMD."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            split = args.index("--")
            ctx.meta[_COMMAND_KEY] = args[split + 1 :]
            args = args[:split]
        return super().parse_args(ctx, args)

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        return ["[OPTIONS] -- CMD [ARGS]...", "|", "run ID", "|", "show PROFILE_ID"]


@click.group("profile", cls=_ProfileGroup, invoke_without_command=True, context_settings=CONTEXT)
@_profiling_options
@click.pass_context
def profile_command(
    ctx: click.Context,
    cpu: bool,
    memory: bool,
    async_io: bool,
    duration: float | None,
    trigger: str | None,
    db: Path | None,
    as_json: bool,
) -> None:
    """Profile a command, e.g. `python script.py`, and every execution it records.

    `workbench profile [OPTIONS] -- CMD [ARGS]...` runs CMD profiled from its first line for
    --duration seconds or until it exits, as py-spy, memray and yappi would: CPU with py-spy
    (a speedscope file), --memory with memray (a flame graph HTML), --async with yappi's wall
    clock (a pstat file). Prints where the file is, the top functions and the command that
    opens it, links the profile to each execution CMD records (workbench.record or
    @workbench.pipeline), and exits with CMD's exit code. With --trigger, each execution is
    profiled once COND holds in it instead. Also: `profile run ID`, `profile show PROFILE_ID`.
    """
    if ctx.invoked_subcommand is not None:
        return
    command = check_command(ctx.meta.get(_COMMAND_KEY) or [])
    kinds = _kinds(cpu, memory, async_io)
    settings = _settings(kinds, duration, trigger)
    if trigger is None:
        code = _run_whole(command, kinds, settings, duration, db, as_json)
    else:
        code = _run_profiled(command, settings, db, as_json)
    if code:
        ctx.exit(code)


#: The exit status when nothing was profiled and the command itself succeeded.
_NOTHING_PROFILED = 1


def _run_whole(
    command: list[str],
    kinds: list[ProfileKind],
    settings: ProfilingConfig,
    duration: float | None,
    db: Path | None,
    as_json: bool = False,
) -> int:
    err = console(stderr=True)
    out = console()
    printed: list[dict[str, Any]] = []

    def progress(message: str, style: str | None) -> None:
        err.print(message, style=style, markup=False)

    with ProfiledCommand(
        command, kinds=kinds, settings=settings, duration=duration, db=db, progress=progress
    ) as run:
        sampled = False
        for found in run.profiles():
            summary = found.profile.summary
            sampled = sampled or (summary.samples > 0 and summary.error is None)
            if as_json:
                linked = [{"execution_id": p.execution_id, "id": p.id} for p in found.linked]
                printed.append({**profile_json(found.profile), "linked": linked})
                continue
            out.print(profile_view(found.profile), crop=False)
            if found.linked:
                links = ", ".join(f"{p.execution_id} as {p.id}" for p in found.linked)
                out.print(f"linked to {links}", markup=False)
        code = run.wait()
    if as_json:
        echo_json({"command": command, "exit_code": code, "profiles": printed})
    if not sampled:
        # As `py-spy record` ("No stack counts found"): a profile of nothing is a failure,
        # so a script or CI step that profiles a command notices it profiled nothing.
        err.print(
            f"nothing was profiled: {command[0]} ended before the first sample, or the "
            f"profiler could not read it (see above); profile a command that runs longer",
            style="yellow",
        )
        return code or _NOTHING_PROFILED
    return code


def _run_profiled(
    command: list[str], settings: ProfilingConfig, db: Path | None, as_json: bool = False
) -> int:
    err = console(stderr=True)
    out = console()
    recorded: list[dict[str, Any]] = []
    with TriggeredCommand(command, settings=settings, db=db) as run:
        started = time.perf_counter()
        status = err.status(f"running {command[0]} with profiling…") if err.is_terminal else None
        if status is not None:
            status.start()
        try:
            while True:
                try:
                    finished = run.wait(0.1)
                except KeyboardInterrupt:
                    continue  # the child got the Ctrl-C too; wait for it to write its rows
                if finished is not None:
                    code = finished
                    break
                recorded += _show(run.events(), err)
                if status is not None:
                    status.update(
                        f"running {command[0]} with profiling… "
                        f"{time.perf_counter() - started:.0f} s, "
                        f"{len(recorded)} profile(s)"
                    )
        finally:
            if status is not None:
                status.stop()
        recorded += _show(run.events(), err)
    if not recorded:
        err.print(
            f"no profile was recorded: {command[0]} recorded no execution in which the "
            f"trigger held (--trigger profiles executions: workbench.record and "
            f"@workbench.pipeline); drop --trigger to profile the whole command",
            style="yellow",
        )
        code = code or _NOTHING_PROFILED
    profiles: list[dict[str, Any]] = []
    for event in recorded:
        try:
            with Store(event["store"]) as store:
                profile = store.get_profile(event["profile_id"])
        except (StoreError, KeyError) as exc:
            err.print(f"profile {event.get('profile_id')} cannot be read: {exc}", style="red")
            continue
        if as_json:
            profiles.append(profile_json(profile))
        else:
            out.print(profile_view(profile), crop=False)
    if as_json:
        echo_json({"command": command, "exit_code": code, "profiles": profiles})
    return code


def _show(events: list[dict[str, Any]], printer: Console) -> list[dict[str, Any]]:
    """Print each progress event; the events that ended a profile (recorded or failed)."""
    ended = []
    for event in events:
        if event["event"] == "started":
            printer.print(
                f"▶ {event['kind']} profile started for {event['execution_id']} "
                f"({event['trigger']})",
                markup=False,
            )
        elif event.get("error"):
            printer.print(
                f"✗ {event['kind']} profile of {event['execution_id']}: {event['error']}",
                style="red",
                markup=False,
            )
            ended.append(event)
        else:
            printer.print(f"✓ {event['kind']} profile {event['profile_id']} recorded", markup=False)
            ended.append(event)
    return ended


@profile_command.command("run", context_settings=CONTEXT)
@click.argument("execution_id", metavar="ID", shell_complete=execution_ids)
@_profiling_options
@click.option(
    "--on-miss",
    type=click.Choice(["error", "live", "test-model"]),
    default="error",
    show_default=True,
    help="What a request without a recorded answer gets (as in `workbench replay`).",
)
def run_command(
    execution_id: str,
    cpu: bool,
    memory: bool,
    async_io: bool,
    duration: float | None,
    trigger: str | None,
    db: Path | None,
    as_json: bool,
    on_miss: str,
) -> None:
    """Re-run recorded execution ID under replay, profiled.

    Shows the profiles of the replay. Model calls are answered from the recording (no network
    unless --on-miss live); the replay is recorded as a new execution, with its profiles.
    """
    from workbench.debugging import RequestReplay

    settings = _settings(_kinds(cpu, memory, async_io), duration, trigger)
    err = console(stderr=True)
    with open_existing(db) as store:
        with (
            profile_executions(settings=settings) as session,
            err.status(f"replaying {execution_id} with profiling…"),
        ):
            result = RequestReplay(store).replay_execution(execution_id, on_miss=on_miss)
        profiles = [p for p in session.profiles if p.execution_id == result.execution_id]
    out = console()
    if as_json:
        echo_json(
            {
                "replay": {
                    "execution_id": result.execution_id,
                    "replay_of": execution_id,
                    "status": result.status,
                },
                "profiles": [profile_json(p) for p in profiles],
            }
        )
    else:
        out.print(f"replay {result.execution_id} of {execution_id}: {result.status}", markup=False)
        for profile in profiles:
            out.print(profile_view(profile), crop=False)
    if not profiles:
        err.print("no profile was recorded: the trigger never held", style="yellow")
        click.get_current_context().exit(_NOTHING_PROFILED)


@profile_command.command("show", context_settings=CONTEXT)
@click.argument("profile_id", metavar="PROFILE_ID")
@json_option("Print the profile as JSON.")
@db_option()
def show_command(profile_id: str, as_json: bool, db: Path | None) -> None:
    """Show a profile's summary and the path of its flame graph.

    The summary table lists the top functions (self and total time, or bytes for memory
    profiles), the peak heap, and the largest stacks of a heap dump; the path is the flame
    graph, speedscope or pstat file to open.
    """
    with open_existing(db) as store:
        profile: Profile = store.get_profile(profile_id)
    if as_json:
        echo_json(profile_json(profile))
        return
    console().print(profile_view(profile), crop=False)
