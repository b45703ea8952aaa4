"""The ``workbench`` command line: a thin click layer over the store and the example pipeline.

Owns parsing arguments, opening the store a command reads, turning every :class:`WorkbenchError`
into one red ``error: ...`` line on stderr with exit code 1 (usage errors keep click's exit code
2), and choosing between rich output and ``--json``. How records look is ``workbench._render``'s
business; what they hold is the store's.

Commands::

    workbench runs list [--pipeline P] [--status S] [--user U] [--since WHEN] [--json]
    workbench runs show ID [--json]
    workbench replay ID [--modify KEY=VALUE ...] [--input NAME=VALUE ...] [--from-step S]
                        [--on-miss error|live|test-model] [--json]
    workbench run FILE [--input NAME=VALUE ...] [--test-model] [--json]
    workbench validate FILE [--json]
    workbench report cost [--date YYYY-MM-DD] [--days N] [--json]
    workbench serve-metrics [--port P] [--host H]
    workbench alerts export [--output FILE]
    workbench alerts check [--notify] [--json] [--db FILE]
    workbench demo

``workbench demo`` runs the example pipeline shipped in the package,
:mod:`workbench.examples.research_assistant`, so it works from any install and any folder, and
the recorded entrypoint ``workbench.examples.research_assistant:research`` imports again
wherever replay runs. The repository's ``examples/`` folder points at the same files.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shlex
import shutil
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import IO, Any, TypeVar

import click
import orjson
from rich.console import Console

import workbench
from workbench import _render
from workbench._cli_cassettes import export_cassette_command, import_cassette_command
from workbench._complete import execution_ids
from workbench._json import to_jsonable
from workbench._jsonout import echo_json
from workbench._when import parse_when
from workbench.diff._cli import diff_command
from workbench.exceptions import (
    ConfigError,
    PipelineStepError,
    ReplayMismatchError,
    WorkbenchError,
)
from workbench.monitoring._cli import report, serve_metrics_command
from workbench.monitoring._cli_alerts import alerts_group
from workbench.pipelines._cli import run_command, validate_command
from workbench.profiling._cli import profile_command
from workbench.store import DEFAULT_PATH, Store, resolve_store_path
from workbench.store._cli import store_group
from workbench.types import JSON

__all__ = ["cli", "main", "parse_when", "replay_modifications"]

F = TypeVar("F", bound=Callable[..., Any])

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
_STATUSES = ("running", "completed", "failed", "interrupted")
_EXAMPLE = "workbench.examples.research_assistant"
# Rich renders for 80 columns when stdout is not a terminal, which squeezes the wide tables of a
# piped or captured run; this width keeps each row on one line unless COLUMNS says otherwise.
_PIPE_WIDTH = 160


class CommandError(click.ClickException):
    """A failure the user can fix, shown as one red ``error: ...`` line; exit code 2.

    As ``diff(1)`` and ``grep(1)``: 0 and 1 are answers (equal/different, completed/failed), 2
    is trouble. Under ``--json`` the error is a JSON object on stdout instead, so a script
    that parses the output reads the error too: ``{"error": {"type": ..., "message": ...}}``.
    """

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        kind: str = "CommandError",
        as_json: bool = False,
        exit_code: int = 2,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.as_json = as_json
        self.exit_code = exit_code

    def show(self, file: IO[Any] | None = None) -> None:
        if self.as_json:
            error = {"type": self.kind, "message": " ".join(self.message.split())}
            click.echo(orjson.dumps({"error": error}).decode(), file=file)
            return
        # Messages are one line by contract; collapsing whitespace keeps them so.
        click.secho(f"error: {' '.join(self.message.split())}", fg="red", err=True, file=file)


class _MismatchError(CommandError):
    """A replay that missed: a few lines (the misses, short diffs, the options that help)."""

    def show(self, file: IO[Any] | None = None) -> None:
        if self.as_json:
            super().show(file)
            return
        click.secho(f"error: {self.message}", fg="red", err=True, file=file)


def _diff_width() -> int:
    """How wide a missed request's diff lines are cut: the terminal's width less their indent
    (COLUMNS, else the terminal, else 100), within 40 to 120 characters."""
    columns = shutil.get_terminal_size((108, 24)).columns
    return max(40, min(120, columns - 8))


def _mismatch_error(exc: ReplayMismatchError) -> _MismatchError:
    """The library's message is for Python (whole diffs, ``on_miss='live'``); on the command
    line each diff is cut around its change and the fix is the ``--on-miss`` option."""
    from workbench.replay._engine import mismatch_message

    message = mismatch_message(
        exc.replay_of or "the execution",
        exc.execution_id,
        exc.mismatches,
        option=lambda policy: f"--on-miss {policy}",
        width=_diff_width(),
    )
    return _MismatchError(f"{message}\nSee it with `workbench runs show {exc.execution_id}`.")


class _Group(click.Group):
    """A group whose commands' WorkbenchErrors become CommandErrors: one boundary for all."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # The top group sees every word: whether the command was asked for JSON decides how
        # its error is shown (words after `--` belong to a profiled command, not to us).
        words = args[: args.index("--")] if "--" in args else args
        if "--json" in words:
            ctx.meta[_JSON_META] = True
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CommandError as exc:
            exc.as_json = exc.as_json or _wants_json(ctx)
            raise
        except ReplayMismatchError as exc:  # an answer (the replay differs), as a failed run
            error = _mismatch_error(exc)
            error.kind, error.as_json, error.exit_code = type(exc).__name__, _wants_json(ctx), 1
            raise error from exc
        except PipelineStepError as exc:  # an answer, not trouble: the run failed at a step
            raise CommandError(
                str(exc), kind=type(exc).__name__, as_json=_wants_json(ctx), exit_code=1
            ) from exc
        except WorkbenchError as exc:
            raise CommandError(str(exc), kind=type(exc).__name__, as_json=_wants_json(ctx)) from exc


_JSON_META = "workbench.json"


def _wants_json(ctx: click.Context) -> bool:
    """Whether the command being run was given --json (``ctx.meta`` is shared by all levels)."""
    return bool(ctx.meta.get(_JSON_META, False))


# -- shared options and helpers --------------------------------------------------------------


def _db_option(fn: F) -> F:
    return click.option(
        "--db",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help=f"Store file. Default: $WORKBENCH_DB, else store.path in workbench.yaml, "
        f"else {DEFAULT_PATH}.",
    )(fn)


def _json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")(fn)


def _console() -> Console:
    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(highlight=False, width=_PIPE_WIDTH)
    return console


_echo_json = echo_json


def _open_existing(db: Path | None) -> Store:
    """The store a read command reads; a missing file is an error, not a new empty store."""
    path = resolve_store_path(db)
    if not path.exists():
        raise CommandError(
            f"no store at {path}; record a run first (try `workbench demo`), or point --db or "
            f"WORKBENCH_DB at an existing store"
        )
    return Store(path)


def _when_option(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    # A callback rather than a ParamType subclass: ParamType is generic only from click 8.2 on.
    if value is None:
        return None
    try:
        return parse_when(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


# -- commands --------------------------------------------------------------------------------


@click.group(cls=_Group, context_settings=_CONTEXT)
@click.version_option(workbench.__version__, prog_name="workbench")
def cli() -> None:
    """Record, inspect and replay runs of LLM pipelines.

    Start with `workbench demo`, which records an example pipeline against a local model
    server (no API key, no network), then look at it with `workbench runs list` and
    `workbench runs show ID`.
    """


@cli.group(cls=_Group, context_settings=_CONTEXT)
def runs() -> None:
    """List recorded executions and show one in detail."""


@runs.command("list")
@click.option("--pipeline", "pipeline_id", metavar="P", help="Only executions of pipeline P.")
@click.option("--status", type=click.Choice(_STATUSES), help="Only executions with this status.")
@click.option("--user", "user_id", metavar="U", help="Only executions recorded for user U.")
@click.option(
    "--since",
    metavar="WHEN",
    callback=_when_option,
    help="Only executions started at or after WHEN: 30m, 1h, 2d, 1w ago, or an ISO date or "
    "datetime (local time unless it has an offset).",
)
@click.option(
    "--until",
    metavar="WHEN",
    callback=_when_option,
    help="Only executions started before WHEN (same forms as --since).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    metavar="N",
    default=50,
    show_default=True,
    help="Show at most this many, newest first.",
)
@_json_option
@_db_option
def list_runs(
    pipeline_id: str | None,
    status: str | None,
    user_id: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    as_json: bool,
    db: Path | None,
) -> None:
    """List recorded executions, newest first.

    Costs read "unknown" when a model's price is not known (it is never shown as $0), and
    "$0 (replay)" for a replay, which spent nothing (as `workbench report cost` counts). With
    --json, each execution is an object with the fields of workbench.Execution, without its
    steps, calls, states and logs (use `runs show ID --json` for those). Executions whose
    record is damaged are left out and named in a warning on stderr.
    """
    with _open_existing(db) as store:
        executions = store.list_executions(
            pipeline_id=pipeline_id,
            status=status,
            user_id=user_id,
            since=since,
            until=until,
            limit=limit,
        )
    if executions.damaged:
        damaged = ", ".join(sorted(executions.damaged))
        click.secho(
            f"warning: {len(executions.damaged)} execution(s) with a damaged record left out: "
            f"{damaged}; `workbench runs show ID` says what is wrong; restore {store.path} "
            f"from a backup, or record those runs again",
            fg="yellow",
            err=True,
        )
    if as_json:
        _echo_json(_render.listing_json(executions))
        return
    console = _console()
    if not executions:
        console.print(f"No executions in {store.path} match.", style="dim")
        return
    console.print(_render.executions_table(executions))


@runs.command("show")
@click.argument("execution_id", metavar="ID", shell_complete=execution_ids)
@_json_option
@_db_option
def show_run(execution_id: str, as_json: bool, db: Path | None) -> None:
    """Show one execution: header, steps, model calls, states, errors and logs.

    With --json, print the whole execution (every field of workbench.Execution and its
    children). The bytes of streamed chunks are UTF-8 text, or {"__bytes__": base64} for a
    chunk that is not valid UTF-8 on its own.
    """
    with _open_existing(db) as store:
        execution = store.get_execution(execution_id)
    if as_json:
        _echo_json(_render.execution_json(execution))
        return
    _console().print(_render.execution_view(execution))


def _json_or_text(text: str) -> Any:
    """A value that parses as JSON is JSON (``true``, ``{"topic": "x"}``), else the text."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def _pairs(option: str, items: tuple[str, ...], form: str, example: str) -> list[tuple[str, str]]:
    pairs = []
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{option} {item!r} is not {form}; write e.g. {option} {example}")
        pairs.append((key, text))
    return pairs


def replay_modifications(
    modify: tuple[str, ...], inputs: tuple[str, ...], recorded: JSON = None
) -> dict[str, Any]:
    """The modifications of ``workbench replay`` from its ``--modify KEY=VALUE`` and
    ``--input NAME=VALUE`` options.

    A dotted key sets one entry of a mapping modification: ``inputs.topic=alpacas`` is
    ``{"inputs": {"topic": "alpacas"}}``, merged with ``--input topic=alpacas`` and with an
    ``inputs='{...}'`` given whole. A key that is neither a modification nor dotted is refused
    with the allowed keys and, since it is most often meant as one, the spelling of an input.
    A value is JSON when it parses as JSON, else text — but an input whose ``recorded`` value
    (the execution's inputs) is text stays text, so ``--input topic=2024`` is ``"2024"``.
    """
    from workbench.replay._engine import MODIFICATIONS

    def input_value(name: str, text: str) -> Any:
        was = recorded.get(name) if isinstance(recorded, dict) else None
        return text if isinstance(was, str) else _json_or_text(text)

    mapping = sorted(k for k, types in MODIFICATIONS.items() if types == (dict,))
    modifications: dict[str, Any] = {}
    for key, text in _pairs("--modify", modify, "KEY=VALUE", "realtime=true"):
        name, dot, entry = key.partition(".")
        value = input_value(entry, text) if name == "inputs" and dot else _json_or_text(text)
        if name not in MODIFICATIONS:
            raise ConfigError(
                f"--modify {key}=... names no replay modification: the allowed ones are "
                f"{', '.join(sorted(MODIFICATIONS))} (dotted for one entry of "
                f"{', '.join(mapping)}); to change the run's input {key!r}, write "
                f"--input {key}={text} or --modify inputs.{key}={text}"
            )
        if not dot:
            if isinstance(modifications.get(name), dict) and isinstance(value, dict):
                value = {**value, **modifications[name]}  # dotted entries given earlier win
            modifications[name] = value
            continue
        if name not in mapping or not entry:
            raise ConfigError(
                f"--modify {key}=...: only {', '.join(mapping)} take a dotted entry "
                f"(e.g. --modify inputs.topic=alpacas); write --modify {name}=VALUE"
            )
        current = modifications.setdefault(name, {})
        if not isinstance(current, dict):
            raise ConfigError(f"--modify {key}=... contradicts --modify {name}={current!r}")
        current[entry] = value
    for name, text in _pairs("--input", inputs, "NAME=VALUE", "topic=alpacas"):
        value = input_value(name, text)
        modifications.setdefault("inputs", {})
        if not isinstance(modifications["inputs"], dict):
            raise ConfigError(
                f"--input {name}=... contradicts --modify inputs={modifications['inputs']!r}; "
                f"give the inputs one way"
            )
        modifications["inputs"][name] = value
    return modifications


@cli.command()
@click.argument("execution_id", metavar="ID", shell_complete=execution_ids)
@click.option(
    "--modify",
    "modify",
    metavar="KEY=VALUE",
    multiple=True,
    help="Change the replay: realtime=true, log_level=DEBUG, use_test_models=true, "
    "inputs.topic=x, step_outputs.critique=ok (a dotted KEY sets one entry; "
    'inputs=\'{"topic": "x"}\' sets them whole). Repeatable; a VALUE that parses as JSON is '
    "JSON, else text.",
)
@click.option(
    "--input",
    "inputs",
    metavar="NAME=VALUE",
    multiple=True,
    help="Run with input NAME set to VALUE instead of the recorded one, as `workbench run "
    "--input`: a parameter of the recorded entrypoint, or an input of a YAML pipeline. "
    "Repeatable; an input recorded as text stays text, any other VALUE that parses as JSON "
    "is JSON.",
)
@click.option(
    "--from-step",
    metavar="S",
    default=None,
    help="Steps that completed before step S first started return their recorded results "
    "without running; execution continues live from S (the from_step modification).",
)
@click.option(
    "--on-miss",
    type=click.Choice(["error", "live", "test-model"]),
    default="error",
    show_default=True,
    help="What a request without a recorded answer gets: fail the replay, send it for real, "
    "or answer it from the built-in test model.",
)
@_json_option
@_db_option
def replay(
    execution_id: str,
    modify: tuple[str, ...],
    inputs: tuple[str, ...],
    from_step: str | None,
    on_miss: str,
    as_json: bool,
    db: Path | None,
) -> None:
    """Re-run a recorded execution with its model calls answered from the recording.

    Imports the recorded @workbench.pipeline entrypoint, calls it with the recorded arguments
    (or those --input changes), and records the replay as a new execution (its replay_of is
    ID). No network is used unless --on-miss live. Prints the replayed execution; with --json,
    its id, status, output, mismatches and unused recorded calls.
    """
    from workbench.debugging import RequestReplay

    with _open_existing(db) as store:
        recorded: JSON = None
        if inputs or any(key.startswith("inputs.") for key in modify):
            # The recorded inputs type the new ones: text stays text (topic=2024).
            recorded = store.get_execution(execution_id, model_calls=False).inputs
        modifications = replay_modifications(modify, inputs, recorded)
        if from_step is not None:
            if modifications.get("from_step", from_step) != from_step:
                raise click.BadParameter(
                    f"--from-step {from_step} contradicts --modify "
                    f"from_step={modifications['from_step']}; give the step once",
                    param_hint="'--from-step'",
                )
            modifications = {**modifications, "from_step": from_step}
        result = RequestReplay(store).replay_execution(
            execution_id, modifications=modifications, on_miss=on_miss
        )
        replayed = store.get_execution(result.execution_id)
    if as_json:
        _echo_json(
            to_jsonable(
                {
                    "execution_id": result.execution_id,
                    "replay_of": result.replay_of,
                    "status": result.status,
                    "output": result.output,
                    "error": result.error,
                    "model_calls": [call.id for call in replayed.model_calls],
                    "mismatches": result.mismatches,
                    "unused": [call.id for call in result.unused],
                }
            )
        )
        return
    console = _console()
    console.print(_render.execution_view(replayed))
    for mismatch in result.mismatches:
        console.print(mismatch.describe(), markup=False)
    unused = ", ".join(f"{c.step_id}: {c.model}" for c in result.unused) or "none"
    console.print(f"Replay of {result.replay_of}; unused recorded calls: {unused}", markup=False)


@cli.command()
@click.option(
    "--topic",
    default=None,
    help="What the research assistant researches. Default: the example's DEFAULT_TOPIC.",
)
@_json_option
@_db_option
def demo(topic: str | None, as_json: bool, db: Path | None) -> None:
    """Record the example research assistant against a local model server.

    Starts workbench's test model server on 127.0.0.1 (OpenAI and Anthropic APIs, deterministic
    answers), runs the example in workbench.examples through the real openai and anthropic SDKs,
    records it into the store, and prints the execution id. Needs no API key and no network.
    With --json, prints the recorded execution as `runs show ID --json` does.
    """
    try:
        import anthropic
        import openai
    except ImportError as exc:
        raise WorkbenchError(
            f"workbench demo runs the real openai and anthropic SDKs, and {exc.name} is not "
            f"installed (the base install leaves them out); install them with `pip install "
            f"'pipeline-workbench[demo]'`"
        ) from exc

    from workbench.testmodel import ModelServer

    example = _load_example()
    path = resolve_store_path(db)
    console = _console()
    with Store(path) as store:
        status = console.status("Recording the research assistant…")
        with ModelServer() as server, status if not as_json else contextlib.nullcontext():
            try:
                with workbench.record(
                    example.PIPELINE_ID,
                    inputs={},  # @workbench.pipeline fills in the entrypoint's arguments
                    store=store,
                    user_id="demo",
                    environment="demo",
                    pipeline_version=example.PIPELINE_VERSION,
                ) as run:
                    example.research(
                        topic or example.DEFAULT_TOPIC,
                        openai_base_url=server.openai_base_url,
                        anthropic_base_url=server.anthropic_base_url,
                    )
            except (openai.OpenAIError, anthropic.AnthropicError) as exc:
                raise CommandError(
                    f"the demo run failed ({type(exc).__name__}: {exc}); it is recorded, "
                    f"see `workbench runs show {run.id}`"
                ) from exc
        execution = store.get_execution(run.id)
    if as_json:
        _echo_json(_render.execution_json(execution))
        return
    suffix = "" if db is None else f" --db {shlex.quote(str(db))}"
    console.print(
        _render.demo_summary(
            execution,
            [f"workbench runs show {execution.id}{suffix}", f"workbench runs list{suffix}"],
        )
    )


def _load_example() -> ModuleType:
    """The example pipeline, imported only when the demo runs (it imports both SDKs)."""
    return importlib.import_module(_EXAMPLE)


cli.add_command(diff_command)
cli.add_command(report)
cli.add_command(serve_metrics_command)
cli.add_command(run_command)
cli.add_command(validate_command)
cli.add_command(alerts_group)
cli.add_command(profile_command)
cli.add_command(store_group)
store_group.add_command(import_cassette_command)
store_group.add_command(export_cassette_command)


def main(argv: Sequence[str] | None = None) -> None:
    """The ``workbench`` console script."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="workbench")


if __name__ == "__main__":
    main()
