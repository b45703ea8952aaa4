"""The terminal view of a diff: rich tables, with changed words coloured.

Owns only rich renderables; printing them is the caller's (the CLI's, or rich's own
``print``, which finds :meth:`ExecutionDiff.__rich__`).
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from workbench.diff._model import Difference, ExecutionDiff, format_delta
from workbench.diff._text import word_segments

__all__ = ["diff_renderable"]

# Long values are cut in the terminal; `--json` has them whole.
_MAX_VALUE = 600
_KIND_STYLE = {"added": "green", "removed": "red", "changed": "yellow"}


def _short(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= _MAX_VALUE else f"{text[:_MAX_VALUE]}… ({len(text):,} chars)"


def _removed(text: str, marked: bool) -> tuple[str, str]:
    return (f"[-{text}-]", "red strike") if marked else (text, "red strike")


def _added(text: str, marked: bool) -> tuple[str, str]:
    return (f"{{+{text}+}}", "green") if marked else (text, "green")


def _change(difference: Difference, marked: bool = False) -> Text:
    """The change, coloured; ``marked`` also in ``git diff --word-diff=plain`` marks
    (``[-old-]{+new+}``), so that before and after stay apart where colour is lost."""
    before, after = difference.before, difference.after
    if difference.kind == "added":
        return Text.assemble(_added(_short(after), marked))
    if difference.kind == "removed":
        return Text.assemble(_removed(_short(before), marked))
    if isinstance(before, str) and isinstance(after, str):
        text = Text()
        for op, part in word_segments(_short(before), _short(after)):
            if op == "equal":
                text.append(part)
            else:
                text.append(*(_removed if op == "delete" else _added)(part, marked))
        return text
    return Text.assemble(_removed(_short(before), marked), " → ", _added(_short(after), marked))


def diff_renderable(diff: ExecutionDiff, *, marked: bool = False) -> RenderableType:
    """A header with the totals' deltas, then one row per difference, in run order; with
    ``marked``, removed and added words carry ``[-…-]``/``{+…+}`` marks (no colour)."""
    summary = diff.summary()
    header = Table(title=f"{diff.a.id} → {diff.b.id}", show_header=True, title_justify="left")
    header.add_column("total")
    header.add_column("a → b (delta)")
    for name, delta in summary.totals.items():
        header.add_row(name, format_delta(delta))
    lines: list[RenderableType] = [header]
    counts = ", ".join(f"{n} {kind}" for kind, n in summary.counts.items())
    if not diff:
        lines.append(Text("no differences in content", style="green"))
    else:
        lines.append(Text(f"{counts}; first divergent step: {summary.first_divergent_step or '-'}"))
    lines.extend(Text(f"note: {note}", style="italic") for note in summary.notes)
    if diff.differences:
        table = Table(show_header=True, expand=False)
        table.add_column("path", overflow="fold")
        table.add_column("kind")
        table.add_column("change", overflow="fold")
        for difference in diff.differences:
            table.add_row(
                difference.path,
                Text(difference.kind, style=_KIND_STYLE[difference.kind]),
                _change(difference, marked),
            )
        lines.append(table)
    if diff.deltas and len(diff.deltas) <= 50:
        table = Table(show_header=True, title="deltas", title_justify="left")
        table.add_column("path", overflow="fold")
        table.add_column("a → b (delta)")
        for delta in diff.deltas:
            table.add_row(delta.path, format_delta(delta))
        lines.append(table)
    elif diff.deltas:
        lines.append(Text(f"{len(diff.deltas)} deltas (see --json)"))
    return Group(*lines)
