"""Profile summaries: built from speedscope profiles, stored as JSON, shown as a table.

Owns turning a speedscope file (py-spy's output, and the in-process sampler's) into a
:class:`~workbench.records.ProfileSummary` — self and total time per function —, the JSON text
the store keeps, and the rich rendering ``workbench profile show`` prints. The memory and async
profilers build their summaries from their own tools' readers (``_memory``, ``_async``).
"""

from __future__ import annotations

import shlex
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from workbench._json import encode
from workbench.exceptions import ProfilerError
from workbench.records import FunctionStat, Profile, ProfileSummary

__all__ = [
    "PROFILER_THREAD_PREFIX",
    "FrameKey",
    "as_json",
    "format_bytes",
    "function_stats",
    "open_command",
    "profile_view",
    "summarise_speedscope",
    "summary_text",
]

FrameKey = tuple[str, str, int | None]  # (function, file, line)
#: The names of workbench's profiler threads start with this; their samples are left out.
PROFILER_THREAD_PREFIX = "workbench-profiler-"


def function_stats(
    samples: Iterable[tuple[tuple[FrameKey, ...], float, int]], *, unit: str, top: int
) -> tuple[list[FunctionStat], float, int]:
    """Self and total value per function from weighted stacks (innermost frame LAST), each
    standing for ``count`` events (samples, allocations).

    Returns the ``top`` functions by self value, the summed weight and the number of events.
    A function that recurses is counted once per stack in its total.
    """
    own: defaultdict[FrameKey, float] = defaultdict(float)
    total: defaultdict[FrameKey, float] = defaultdict(float)
    counts: defaultdict[FrameKey, int] = defaultdict(int)
    weight_sum = 0.0
    n = 0
    for stack, weight, count in samples:
        n += count
        weight_sum += weight
        if not stack:
            continue
        own[stack[-1]] += weight
        counts[stack[-1]] += count
        for frame in set(stack):
            total[frame] += weight
    ranked = sorted(total, key=lambda f: (-own[f], -total[f], f[0]))[:top]
    stats = [
        FunctionStat(f[0], f[1], f[2], own[f], total[f], counts[f], unit)
        for f in ranked
        if own[f] > 0 or total[f] > 0
    ]
    return stats, weight_sum, n


def summarise_speedscope(
    path: Path, *, sampler: str, top: int, notes: Iterable[str] = ()
) -> ProfileSummary:
    """The summary of a speedscope file of sampled profiles (one per thread)."""
    try:
        document = orjson.loads(path.read_bytes())
        frames = document["shared"]["frames"]
        keys: list[FrameKey] = [(f["name"], f.get("file") or "", f.get("line")) for f in frames]
        stacks: list[tuple[tuple[FrameKey, ...], float, int]] = []
        duration = 0.0
        for profile in document["profiles"]:
            if f'"{PROFILER_THREAD_PREFIX}' in profile.get("name", ""):
                continue  # py-spy names threads: leave out the profilers' own
            duration = max(
                duration, float(profile.get("endValue", 0)) - float(profile.get("startValue", 0))
            )
            for sample, weight in zip(profile["samples"], profile["weights"], strict=True):
                stack = tuple(keys[i] for i in sample)
                while stack and _is_process_frame(stack[0]):
                    stack = stack[1:]  # a subprocess's stack starts with each ancestor's
                stacks.append((stack, float(weight), 1))
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise ProfilerError(
            f"cannot read the CPU profile {path} ({type(exc).__name__}: {exc}); the sampler "
            f"wrote no usable speedscope file"
        ) from exc
    stats, _, n = function_stats(stacks, unit="s", top=top)
    return ProfileSummary(
        kind="cpu",
        sampler=sampler,
        duration_s=duration,
        samples=n,
        top_functions=tuple(stats),
        artifacts={"speedscope": str(path)},
        notes=tuple(notes),
    )


def _is_process_frame(frame: FrameKey) -> bool:
    """py-spy's ``--subprocesses`` roots each stack in a frame naming the process, not code."""
    name, file, line = frame
    return not file and not line and name.startswith("process ")


def summary_text(summary: ProfileSummary) -> str:
    """The JSON text of ``summary`` for the store's ``summary`` column."""
    return encode(summary).decode()


# -- rendering ----------------------------------------------------------------------------------


def format_bytes(size: float | None) -> str:
    if size is None:
        return "—"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover - the loop returns


def _value(value: float, unit: str) -> str:
    if unit == "B":
        return format_bytes(value)
    if value < 1:
        return f"{value * 1000:.1f} ms"
    return f"{value:.3f} s"


def _where(file: str, line: int | None) -> str:
    return f"{file}:{line}" if line is not None else file


def open_command(summary: ProfileSummary) -> tuple[str, str] | None:
    """The shell command that opens the profile's main artifact, and a word on it."""
    artifacts = summary.artifacts
    if "flamegraph" in artifacts:
        uri = Path(artifacts["flamegraph"]).absolute().as_uri()
        return f"python -m webbrowser -t {shlex.quote(uri)}", "memray's flame graph, in a browser"
    if "speedscope" in artifacts:
        return (
            f"npx speedscope {shlex.quote(artifacts['speedscope'])}",
            "or drop the file on https://www.speedscope.app",
        )
    if "pstat" in artifacts:
        return (
            f"python -m pstats {shlex.quote(artifacts['pstat'])}",
            "then `sort cumtime` and `stats 20`; or snakeviz FILE",
        )
    if "memray" in artifacts:
        return f"memray flamegraph {shlex.quote(artifacts['memray'])}", "writes the HTML"
    return None


def profile_view(profile: Profile) -> RenderableType:
    """The summary of ``profile`` as ``workbench profile show`` prints it (print it with
    ``crop=False``, so that its paths come out whole)."""
    summary = profile.summary
    rows: list[tuple[str, str | Text]] = [
        ("profile", profile.id),
        ("execution", profile.execution_id or "—"),
        ("kind", f"{profile.kind} ({summary.sampler or 'no sampler'})"),
        ("trigger", profile.trigger or "—"),
    ]
    if summary.error:
        rows.append(("error", Text(summary.error, style="red")))
    else:
        rows.append(("duration", f"{summary.duration_s:.2f} s, {summary.samples} samples"))
    if summary.peak_bytes is not None:
        rows.append(("peak", format_bytes(summary.peak_bytes)))
    # Paths and the command that opens them are there to be copied whole: each is one line
    # that is never cut or broken (printed with ``crop=False``; the terminal wraps it).
    whole: list[tuple[str, str | Text]] = []
    if profile.path:
        whole.append(("file", profile.path))
    for role, path in summary.artifacts.items():
        if path != profile.path:
            whole.append((role, path))
    opener = open_command(summary) if not summary.error else None
    if opener is not None:
        command, hint = opener
        whole.append(("open", Text.assemble(command, (f"  ({hint})", "dim"))))
    width = max(len(label) for label, _ in rows + whole) + 2
    header = Table.grid()
    header.add_column(style="bold", min_width=width)
    header.add_column()
    for label, value in rows:
        header.add_row(label, value)
    parts: list[RenderableType] = [header]
    for label, value in whole:
        parts.append(
            Text.assemble((label.ljust(width), "bold"), value, no_wrap=True, overflow="ignore")
        )
    if summary.top_functions:
        unit = summary.top_functions[0].unit
        table = Table(title="top functions", title_justify="left", expand=False)
        table.add_column("function", overflow="fold")
        table.add_column("where", overflow="fold")
        table.add_column("self", justify="right")
        table.add_column("total", justify="right")
        table.add_column("calls" if summary.kind == "async" else "count", justify="right")
        for stat in summary.top_functions:
            table.add_row(
                stat.name,
                _where(stat.file, stat.line),
                _value(stat.self_value, unit),
                _value(stat.total_value, unit),
                str(stat.count),
            )
        parts.append(table)
    if summary.top_stacks:
        stacks = Table(title="largest stacks at the high-water mark", title_justify="left")
        stacks.add_column("size", justify="right")
        stacks.add_column("allocations", justify="right")
        stacks.add_column("stack (innermost first)", overflow="fold")
        for stack in summary.top_stacks:
            frames = " ← ".join(
                f"{name} ({_where(file, line)})" for name, file, line in stack.frames[:4]
            )
            stacks.add_row(format_bytes(stack.size), str(stack.allocations), frames or "—")
        parts.append(stacks)
    for note in summary.notes:
        parts.append(Text(f"note: {note}", style="dim"))
    return Group(*parts)


def as_json(profile: Profile) -> Any:
    """``profile`` as plain JSON (``workbench profile show --json``)."""
    return orjson.loads(encode(profile))
