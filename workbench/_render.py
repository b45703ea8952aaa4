"""How the CLI shows records: rich tables and panels for people, plain JSON for programs.

Owns formatting (times in local time, durations, costs where ``None`` reads "unknown", never
$0), the rich renderables of ``workbench runs list`` / ``runs show`` / ``demo``, and the JSON
shape of ``--json``. It reads records only: no store, no click, no printing — ``cli`` does that.

In ``--json`` output the bytes of a stream's chunks are UTF-8 text when they decode (SSE is UTF-8
by specification, so nearly always); a chunk that does not — a multi-byte character split across
two chunks — is ``{"__bytes__": "<base64>"}``, the convention ``workbench._json`` uses for every
recorded bytes value, so text and base64 are never confused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from workbench._json import encode, to_jsonable
from workbench._money import spent, usd
from workbench.records import ErrorInfo, Execution, ModelCall, Step
from workbench.types import JSON

__all__ = [
    "FittedTable",
    "demo_summary",
    "execution_json",
    "execution_view",
    "executions_table",
    "format_cost",
    "format_duration",
    "format_time",
    "listing_json",
]

# The children of an execution; a listing has none of them, so its JSON leaves them out.
_CHILDREN = ("steps", "spans", "model_calls", "states", "logs", "profiles")
_STATUS_STYLE = {
    "completed": "green",
    "failed": "bold red",
    "running": "yellow",
    "interrupted": "magenta",
}
_NONE = "—"


# -- formatting ------------------------------------------------------------------------------


def format_cost(cost: float | None) -> str:
    """``$0.000104``; ``unknown`` for ``None`` (a model without a price is not free): the one
    money format of every view (``workbench._money.usd``)."""
    return usd(cost)


def format_duration(seconds: float | None) -> str:
    """``12 ms``, ``1.50 s``, ``2m 03s``; a dash when not known (still running)."""
    if seconds is None:
        return _NONE
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m {rest:02d}s"


def format_time(timestamp: float | None, *, precise: bool = False) -> str:
    """A Unix timestamp in the local time zone, to the second (or millisecond if ``precise``)."""
    if timestamp is None:
        return _NONE
    moment = datetime.fromtimestamp(timestamp).astimezone()
    if precise:
        return moment.strftime("%H:%M:%S.%f")[:-3]
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _count(value: int | None, *, estimated: bool = False) -> str:
    if value is None:
        return _NONE
    # "~" marks counts workbench estimated because the response reported none.
    return f"~{value:,}" if estimated else f"{value:,}"


def _success(value: bool | None) -> Text:
    if value is None:
        return Text(_NONE)
    return Text("yes", style="green") if value else Text("no", style="red")


def _status(status: str) -> Text:
    return Text(status, style=_STATUS_STYLE.get(status, ""))


def _short(value: Any, width: int = 60) -> str:
    """A value on one line, cut to ``width`` characters."""
    text = value if isinstance(value, str) else encode(value).decode(errors="replace")
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _error_line(error: ErrorInfo | None) -> str:
    if error is None:
        return ""
    return f"{error.type}: {error.message}" if error.message else error.type


def _step_label(step_id: str | None, occurrence: int | None) -> str:
    if step_id is None:
        return _NONE
    return f"{step_id}#{occurrence}" if occurrence is not None else step_id


# -- tables that fit the terminal -------------------------------------------------------------

#: A wrapping column is never narrower than its longest word, up to this many cells.
_WRAP_MAX = 24


@dataclass(frozen=True)
class _Column:
    header: str
    priority: int  # the lowest is dropped first when the row does not fit
    justify: Literal["left", "right"]
    wrap: bool  # long text that may wrap onto more lines; the others never wrap nor shrink
    style: str


@dataclass
class FittedTable:
    """A rich table that chooses its columns for the width it is rendered at.

    Rich squeezes every column of a table wider than the terminal, until ids, costs and
    statuses read ``r… c… $…``. Here the columns that never wrap (ids, costs, counts, times)
    keep their full width; text columns wrap down to a minimum; and when the row still does not
    fit, whole columns are dropped, lowest priority first, and named in the caption. The
    choice is made at render time, so one renderable fits an 80-column terminal, a 120-column
    one, or ``Console(width=...)`` in a test.
    """

    title: str
    columns: list[_Column] = field(default_factory=list)
    rows: list[list[str | Text]] = field(default_factory=list)

    def column(
        self,
        header: str,
        priority: int,
        *,
        justify: Literal["left", "right"] = "left",
        wrap: bool = False,
        style: str = "",
    ) -> None:
        self.columns.append(_Column(header, priority, justify, wrap, style))

    def add_row(self, *cells: str | Text) -> None:
        self.rows.append(list(cells))

    def _widths(self) -> list[tuple[int, int]]:
        """Each column's (natural, minimum) width in cells."""
        widths = []
        for index, column in enumerate(self.columns):
            cells = [_plain(row[index]) for row in self.rows]
            natural = max([cell_len(column.header), *(cell_len(c) for c in cells)])
            minimum = natural
            if column.wrap:
                # Text wraps between words down to its longest word (a name like
                # research_assistant reads badly folded), and folds only a word past _WRAP_MAX.
                longest = max((cell_len(w) for c in cells for w in c.split()), default=1)
                minimum = min(natural, max(longest, cell_len(column.header)), _WRAP_MAX)
            widths.append((natural, minimum))
        return widths

    def shown(self, width: int) -> list[int]:
        """The indexes of the columns that fit in ``width`` cells, in table order: the most
        important first, then each less important one that still fits (a narrow column may
        fit where a wide one did not)."""
        widths = self._widths()
        # A heavy-head box: one border cell per column plus one, one padding cell each side.
        used = 1
        kept: list[int] = []
        by_priority = sorted(range(len(self.columns)), key=lambda i: -self.columns[i].priority)
        for i in by_priority:
            if not kept or used + widths[i][1] + 3 <= width:  # the first is shown whatever
                kept.append(i)
                used += widths[i][1] + 3
        return sorted(kept)

    def table(self, width: int) -> Table:
        kept = self.shown(width)
        dropped = [c.header for i, c in enumerate(self.columns) if i not in kept]
        caption = (
            f"not shown for lack of width: {', '.join(dropped)} (widen the terminal, or --json)"
            if dropped
            else None
        )
        table = Table(
            title=self.title,
            title_justify="left",
            caption=caption,
            caption_justify="left",
            caption_style="dim",
        )
        widths = self._widths()
        for i in kept:
            column = self.columns[i]
            table.add_column(
                column.header,
                justify=column.justify,
                style=column.style,
                no_wrap=not column.wrap,
                overflow="fold" if column.wrap else "ellipsis",
                # Rich shrinks wrapping columns first; the minimum keeps ids and costs whole.
                min_width=None if column.wrap else widths[i][1],
            )
        for row in self.rows:
            table.add_row(*(row[i] for i in kept))
        return table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.table(options.max_width)


def _plain(cell: str | Text) -> str:
    return cell.plain if isinstance(cell, Text) else cell


# -- runs list -------------------------------------------------------------------------------


def executions_table(executions: Sequence[Execution]) -> FittedTable:
    """One row per execution, newest first (the order the store returns them in)."""
    table = FittedTable(f"{len(executions)} execution(s)")
    table.column("id", 100, style="cyan")
    table.column("pipeline", 70, wrap=True)
    table.column("status", 90)
    table.column("success", 20)
    table.column("user", 40, wrap=True)
    table.column("started", 80)
    table.column("duration", 60, justify="right")
    table.column("cost", 95, justify="right")
    table.column("tokens in/out", 50, justify="right")
    for execution in executions:
        table.add_row(
            Text(execution.id),
            Text(execution.pipeline_id),
            _status(execution.status),
            _success(execution.success),
            Text(execution.user_id or _NONE),
            format_time(execution.started_at),
            format_duration(execution.duration_s),
            spent(execution.cost_usd, replay=execution.replay_of is not None),
            f"{execution.tokens_in:,} / {execution.tokens_out:,}",
        )
    return table


# -- runs show -------------------------------------------------------------------------------


def execution_view(execution: Execution) -> Group:
    """Everything ``workbench runs show`` prints about one execution, top to bottom."""
    parts: list[RenderableType] = [_header(execution)]
    if execution.error is not None:
        parts.append(
            Panel(
                Text(execution.error.traceback or _error_line(execution.error)),
                title=Text(_error_line(execution.error)),
                title_align="left",
                border_style="red",
                expand=False,
            )
        )
    parts.append(_steps_table(execution.steps))
    parts.append(_calls_table(execution.model_calls, replay=execution.replay_of is not None))
    if execution.states:
        parts.append(_states_table(execution))
    errors = _errors_table(execution)
    if errors is not None:
        parts.append(errors)
    if execution.logs:
        parts.append(_logs(execution))
    if execution.profiles:
        parts.append(_profiles_table(execution))
    return Group(*parts)


def _header(execution: Execution) -> Panel:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    pipeline = execution.pipeline_id
    if execution.pipeline_version:
        pipeline += f" (version {execution.pipeline_version})"
    rows: list[tuple[str, str | Text]] = [
        ("pipeline", Text(pipeline)),
        ("entrypoint", Text(execution.entrypoint or _NONE)),
        ("status", _status(execution.status)),
        ("success", _success(execution.success)),
        ("user", Text(execution.user_id or _NONE)),
        ("environment", Text(execution.environment or _NONE)),
        ("started", format_time(execution.started_at)),
        ("ended", format_time(execution.ended_at)),
        ("duration", format_duration(execution.duration_s)),
        ("cost", _execution_cost(execution)),
        ("tokens", f"{execution.tokens_in:,} in / {execution.tokens_out:,} out"),
        ("inputs", Text(_short(execution.inputs, 100))),
        ("outputs", Text(_short(execution.outputs, 100))),
    ]
    if execution.replay_of:
        rows.append(("replay of", Text(execution.replay_of)))
    if execution.code_version:
        rows.append(("code", Text(execution.code_version)))
    for key, value in rows:
        grid.add_row(key, value)
    return Panel(
        grid, title=Text(execution.id, style="bold cyan"), title_align="left", expand=False
    )


def _steps_table(steps: Sequence[Step]) -> Table:
    table = Table(title=f"steps ({len(steps)})", title_justify="left")
    table.add_column("step", no_wrap=True)
    table.add_column("status")
    table.add_column("duration", justify="right")
    table.add_column("retries", justify="right")
    table.add_column("error")
    for step in steps:
        # Nested steps are indented under their parent, so the table reads like the call tree.
        indent = "  " if step.parent_step_id else ""
        table.add_row(
            Text(indent + _step_label(step.step_id, step.occurrence)),
            _status(step.status),
            format_duration(step.duration_s),
            str(step.retries),
            Text(_short(_error_line(step.error), 80), style="red"),
        )
    return table


def _execution_cost(execution: Execution) -> str:
    """The cost in the header: a replay's with what its calls would have cost sent live."""
    if execution.replay_of is None:
        return usd(execution.cost_usd)
    return f"{spent(None, replay=True)}; as live calls: {usd(execution.cost_usd)}"


def _calls_table(calls: Sequence[ModelCall], *, replay: bool = False) -> FittedTable:
    table = FittedTable(f"model calls ({len(calls)})")
    table.column("step", 100)
    table.column("provider", 50)
    table.column("model", 90, wrap=True)
    table.column("stream", 20)
    table.column("in", 80, justify="right")
    table.column("out", 80, justify="right")
    table.column("cache r/w", 10, justify="right")
    table.column("cost", 95, justify="right")
    table.column("ttft", 30, justify="right")
    table.column("latency", 70, justify="right")
    table.column("finish", 40, wrap=True)
    for call in calls:
        cache = f"{_count(call.cache_read_tokens)} / {_count(call.cache_write_tokens)}"
        finish = call.finish_reason or (f"HTTP {call.status_code}" if call.status_code else _NONE)
        table.add_row(
            Text(_step_label(call.step_id, call.step_occurrence)),
            Text(call.provider),
            Text(call.model or _NONE),
            "yes" if call.streamed else "no",
            _count(call.input_tokens, estimated=call.tokens_estimated),
            _count(call.output_tokens, estimated=call.tokens_estimated),
            cache,
            spent(call.cost_usd, replay=replay or call.replayed)
            if call.provider != "http"
            else _NONE,
            format_duration(call.ttft_s),
            format_duration(call.latency_s),
            Text(finish, style="red" if call.error or call.stream_error else ""),
        )
    return table


def _states_table(execution: Execution) -> Table:
    table = Table(title=f"states ({len(execution.states)})", title_justify="left")
    table.add_column("name", no_wrap=True)
    table.add_column("step")
    table.add_column("value")
    for state in execution.states:
        table.add_row(Text(state.name), Text(state.step_id or _NONE), Text(_short(state.value, 90)))
    return table


def _profiles_table(execution: Execution) -> FittedTable:
    """The profiles triggered in this run: what fired, what it found, where the artifact is
    (``workbench profile show ID`` prints one whole)."""
    table = FittedTable(f"profiles ({len(execution.profiles)})")
    table.column("id", 100)
    table.column("kind", 90)
    table.column("trigger", 50, wrap=True)
    table.column("found", 60, wrap=True)
    table.column("file", 70, wrap=True)
    for profile in execution.profiles:
        summary = profile.summary
        if summary.error is not None:
            found = Text(summary.error, style="red")
        elif summary.top_functions:
            top = summary.top_functions[0]
            found = Text(f"top: {top.name} ({top.file}:{top.line})")
        else:
            found = Text(_NONE)
        table.add_row(
            Text(profile.id),
            Text(profile.kind),
            Text(profile.trigger or _NONE),
            found,
            Text(profile.path),
        )
    return table


def _errors_table(execution: Execution) -> Table | None:
    """Errors of steps and model calls; the execution's own error has its panel above."""
    rows: list[tuple[str, str]] = []
    for step in execution.steps:
        if step.error is not None:
            rows.append(
                (f"step {_step_label(step.step_id, step.occurrence)}", _error_line(step.error))
            )
    for call in execution.model_calls:
        where = f"call {call.provider} {call.model or ''} in {_step_label(call.step_id, None)}"
        if call.error is not None:
            rows.append((where, _error_line(call.error)))
        if call.stream_error:
            rows.append((where, f"stream: {call.stream_error}"))
    if not rows:
        return None
    table = Table(title=f"errors ({len(rows)})", title_justify="left", border_style="red")
    table.add_column("where", no_wrap=True)
    table.add_column("error")
    for where, message in rows:
        table.add_row(Text(where), Text(message, style="red"))
    return table


def _logs(execution: Execution) -> Panel:
    lines = Text()
    for record in execution.logs:
        style = (
            "red"
            if record.level in ("ERROR", "CRITICAL")
            else ("yellow" if record.level == "WARNING" else "")
        )
        where = f" [{record.step_id}]" if record.step_id else ""
        lines.append(f"{format_time(record.created_at, precise=True)} ", style="dim")
        lines.append(f"{record.level:<8}", style=style)
        lines.append(f" {record.logger}{where}: {record.message}\n")
    lines.rstrip()
    return Panel(lines, title=f"logs ({len(execution.logs)})", title_align="left", expand=False)


# -- demo ------------------------------------------------------------------------------------


def demo_summary(execution: Execution, commands: Iterable[str]) -> Group:
    """What the demo recorded, and the commands that show more of it."""
    streamed = sum(call.streamed for call in execution.model_calls)
    lines = Text()
    lines.append("Recorded execution ")
    lines.append(execution.id, style="bold cyan")
    lines.append(f" of {execution.pipeline_id}: ")
    lines.append_text(_status(execution.status))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("steps", Text(", ".join(s.step_id for s in execution.steps)))
    grid.add_row("model calls", f"{len(execution.model_calls)} ({streamed} streamed)")
    grid.add_row("tokens", f"{execution.tokens_in:,} in / {execution.tokens_out:,} out")
    grid.add_row("cost", spent(execution.cost_usd, replay=execution.replay_of is not None))
    grid.add_row("duration", format_duration(execution.duration_s))
    next_steps = Text("\nNext, try:\n")
    for command in commands:
        next_steps.append(f"  {command}\n", style="bold")
    next_steps.rstrip()
    return Group(lines, grid, next_steps)


# -- JSON --------------------------------------------------------------------------------------


def _chunk_data(data: bytes) -> JSON:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data  # to_jsonable renders bytes as {"__bytes__": base64}


def execution_json(execution: Execution) -> JSON:
    """The whole execution as JSON-ready values (see the module docstring for chunk bytes)."""
    value = dataclasses.asdict(execution)
    for call in value["model_calls"]:
        for chunk in call["chunks"]:
            chunk["data"] = _chunk_data(chunk["data"])
    return to_jsonable(value)


def listing_json(executions: Sequence[Execution]) -> JSON:
    """Executions as JSON objects without their children, which a listing does not load."""
    listed = []
    for execution in executions:
        value = dataclasses.asdict(execution)
        for child in _CHILDREN:
            value.pop(child, None)
        listed.append(value)
    return to_jsonable(listed)
