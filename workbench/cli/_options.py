"""What every ``workbench`` command shares: its options, its error boundary, its output.

Owns, once for the whole CLI:

- the options several commands take: ``--db FILE`` (:func:`db_option`) and ``--json``
  (:func:`json_option`), with their names, types and help; a command chooses only the words
  of its ``--json`` help (what it prints);
- the error boundary, :class:`CommandGroup`: a :class:`WorkbenchError` from any command becomes
  one red ``error: ...`` line on stderr and exit code 2 (:class:`CommandError`), or a JSON
  object on stdout when the command was given ``--json``; the errors that are answers (a run
  that failed at a step, a replay that missed, an invalid pipeline file) exit 1 the same way;
- the output: :func:`echo_json` (every ``--json``: scrubbed, money rounded) and
  :func:`console` (rich, wide enough when piped);
- :func:`open_existing` (a read command's store must exist) and :func:`execution_ids`, the
  shell completion of ``ID`` arguments from the store.

It owns no command; the modules beside it do, one per command group.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

import click
import orjson
from click.shell_completion import CompletionItem
from rich.console import Console

from workbench.exceptions import (
    PipelineStepError,
    ReplayMismatchError,
    StoreError,
    WorkbenchError,
)
from workbench.redaction import scrub_output, sensitive_names_for
from workbench.store import DEFAULT_PATH, Store, resolve_store_path
from workbench.store._store import DB_ENV

__all__ = [
    "CONTEXT",
    "DB_HELP",
    "JSON_FLAG",
    "CommandError",
    "CommandGroup",
    "console",
    "db_option",
    "echo_json",
    "execution_ids",
    "json_option",
    "money_rounded",
    "open_existing",
]

F = TypeVar("F", bound=Callable[..., Any])

#: Context settings of every command: ``-h`` as well as ``--help``, help up to 100 columns.
CONTEXT: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
# Rich renders for 80 columns when stdout is not a terminal, which squeezes the wide tables of a
# piped or captured run; this width keeps each row on one line unless COLUMNS says otherwise.
_PIPE_WIDTH = 160

# -- shared options ---------------------------------------------------------------------------

#: The flag that asks a command for JSON; the group looks for it to choose how errors print.
JSON_FLAG = "--json"
DB_HELP = (
    f"Store: a file, sqlite:///path or postgresql://user:password@host/db. Default: "
    f"${DB_ENV}, else store.url or store.path in workbench.yaml, else {DEFAULT_PATH}."
)


def db_option(help: str = DB_HELP) -> Callable[[F], F]:
    """``--db FILE``: the store the command reads or writes, passed to it as ``db``.

    ``None`` when not given, and resolved by :func:`workbench.store.resolve_store_path`
    (``$WORKBENCH_DB``, then ``workbench.yaml``, then the default) rather than by click's
    ``envvar``: a command can tell a store it was given from the default one (``import-cassette``
    puts a pytest-recording cassette beside its test unless ``--db`` says otherwise). The
    shell completes it as a file, as click does for every ``click.Path``.
    """
    return click.option(
        "--db",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help=help,
    )


def json_option(help: str = "Print JSON instead of tables.") -> Callable[[F], F]:
    """``--json``: print the result as JSON (:func:`echo_json`), passed as ``as_json``.

    ``help`` says what the command prints; under ``--json`` its errors are JSON too.
    """
    return click.option(JSON_FLAG, "as_json", is_flag=True, help=help)


# -- errors -----------------------------------------------------------------------------------


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


_JSON_META = "workbench.json"


def _wants_json(ctx: click.Context) -> bool:
    """Whether the command being run was given --json (``ctx.meta`` is shared by all levels)."""
    return bool(ctx.meta.get(_JSON_META, False))


class CommandGroup(click.Group):
    """A group whose commands' WorkbenchErrors become CommandErrors: one boundary for all."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # The top group sees every word: whether the command was asked for JSON decides how
        # its error is shown (words after `--` belong to a profiled command, not to us).
        words = args[: args.index("--")] if "--" in args else args
        if JSON_FLAG in words:
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


# -- output -----------------------------------------------------------------------------------


def console(*, stderr: bool = False) -> Console:
    """A rich console on stdout (or stderr), 160 columns wide when piped unless COLUMNS says."""
    printer = Console(highlight=False, stderr=stderr)
    if not printer.is_terminal and "COLUMNS" not in os.environ:
        printer = Console(highlight=False, stderr=stderr, width=_PIPE_WIDTH)
    return printer


#: Keys whose numbers are amounts of money (``cost_usd``, ``model_cost_dollars``, ``spend``...).
_MONEY_WORDS = ("cost", "usd", "spend", "dollar", "price")
_MONEY_DIGITS = 10


def money_rounded(value: Any, money: bool = False) -> Any:
    """``value`` with every float under a money-named key rounded to 10 decimal places.

    A sum of float prices prints as ``1.05e-05``, not ``1.0500000000000001e-05``, and scripts
    comparing costs are not tripped by float noise.
    """
    if isinstance(value, float):
        return round(value, _MONEY_DIGITS) if money else value
    if isinstance(value, dict):
        return {key: money_rounded(item, money or _is_money(key)) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [money_rounded(item, money) for item in value]
    return value


def _is_money(key: object) -> bool:
    return isinstance(key, str) and any(word in key.lower() for word in _MONEY_WORDS)


def echo_json(value: Any) -> None:
    """Print ``value`` as indented JSON on stdout, money rounded, and scrubbed as the store is
    (a store written before a redaction rule existed leaks nothing through it)."""
    value = money_rounded(scrub_output(value, sensitive_names_for()))
    click.echo(
        orjson.dumps(value, default=repr, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
    )


# -- the store --------------------------------------------------------------------------------

_NO_STORE_FIX = (
    f"record a run first (try `workbench demo`), or point --db or {DB_ENV} at an existing store"
)


def open_existing(db: Path | None, *, fix: str = _NO_STORE_FIX) -> Store:
    """The store a read command reads; a missing file is a StoreError naming ``fix``, not a
    new empty store."""
    path = resolve_store_path(db)
    if not path.exists():
        raise StoreError(f"no store at {path}; {fix}")
    return Store(path)


#: How many of the newest executions completion looks through.
_NEWEST = 200


def execution_ids(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Shell completion of an ``ID`` argument: execution ids starting with ``incomplete``,
    newest first, each with its pipeline.

    Enabled as Click documents (README, "The CLI"). It reads the store the command would read
    (``--db`` if typed, else ``WORKBENCH_DB``, ``workbench.yaml``, the default) and never
    creates a store or fails aloud.
    """
    db = ctx.params.get("db")
    try:
        path = resolve_store_path(Path(db) if db else None)
        if not path.is_file():
            return []
        with Store(path) as store:
            listed = store.list_executions(limit=_NEWEST)
    except (WorkbenchError, OSError):
        return []  # a shell's tab key must not print a traceback
    return [
        CompletionItem(e.id, help=f"{e.pipeline_id} · {e.status}")
        for e in listed
        if e.id.startswith(incomplete)
    ]
