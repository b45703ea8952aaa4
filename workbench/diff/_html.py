"""The notebook view of a diff: an HTML table, run ``a`` and run ``b`` side by side.

Owns only markup; every value is scrubbed as the store is (``workbench.redaction``: a diff of
runs recorded before a rule existed shows no secret either), then escaped. A changed text shows
the words removed from ``a`` struck through in red and the words added in ``b`` in green; other
values are shown as indented JSON.
"""

from __future__ import annotations

import dataclasses
import html

import orjson

from workbench.diff._model import Delta, Difference, ExecutionDiff, format_delta, format_number
from workbench.diff._text import word_segments
from workbench.redaction import scrub_output, scrub_text, sensitive_names_for
from workbench.types import JSON

__all__ = ["diff_html"]

# A cell longer than this is cut: a notebook should stay scrollable with a 100 kB prompt.
_MAX_CELL = 4000
_STYLE = (
    "<style>"
    ".wb-diff td,.wb-diff th{text-align:left;vertical-align:top;padding:2px 6px}"
    ".wb-diff pre{white-space:pre-wrap;margin:0;font-size:90%}"
    ".wb-diff del{background:#fdd;color:#a00}.wb-diff ins{background:#dfd;color:#060;"
    "text-decoration:none}"
    "</style>"
)


def _cut(text: str) -> str:
    return text if len(text) <= _MAX_CELL else f"{text[:_MAX_CELL]}… ({len(text):,} characters)"


def _json(value: JSON) -> str:
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        return repr(value)


def _sides(difference: Difference) -> tuple[str, str]:
    """The before and after cells, with changed words highlighted for a changed text."""
    before, after = difference.before, difference.after
    if difference.kind == "changed" and isinstance(before, str) and isinstance(after, str):
        removed: list[str] = []
        inserted: list[str] = []
        for op, text in word_segments(_cut(before), _cut(after)):
            escaped = html.escape(text)
            if op == "equal":
                removed.append(escaped)
                inserted.append(escaped)
            elif op == "delete":
                removed.append(f"<del>{escaped}</del>")
            else:
                inserted.append(f"<ins>{escaped}</ins>")
        return "".join(removed), "".join(inserted)
    left = "" if difference.kind == "added" else html.escape(_cut(_json(before)))
    right = "" if difference.kind == "removed" else html.escape(_cut(_json(after)))
    if difference.kind == "removed":
        left = f"<del>{left}</del>"
    elif difference.kind == "added":
        right = f"<ins>{right}</ins>"
    elif left:
        left, right = f"<del>{left}</del>", f"<ins>{right}</ins>"
    return left, right


def _delta_row(delta: Delta) -> str:
    return (
        f"<tr><td>{html.escape(delta.path)}</td>"
        f"<td>{html.escape(format_number(delta.before, delta.metric))}</td>"
        f"<td>{html.escape(format_number(delta.after, delta.metric))}</td>"
        f"<td>{html.escape(format_delta(delta))}</td></tr>"
    )


def diff_html(diff: ExecutionDiff) -> str:
    """The whole diff as one HTML fragment (a style block and tables)."""
    summary = diff.summary()
    a, b = html.escape(diff.a.id), html.escape(diff.b.id)
    counts = ", ".join(f"{n} {kind}" for kind, n in summary.counts.items())
    parts = [_STYLE, '<div class="wb-diff">']
    parts.append(
        f"<p><b>{a}</b> ({html.escape(diff.a.pipeline_id)}) vs <b>{b}</b> "
        f"({html.escape(diff.b.pipeline_id)}): "
        f"{'no differences' if not diff else html.escape(counts)}; first divergent step: "
        f"<code>{html.escape(summary.first_divergent_step or '-')}</code></p>"
    )
    parts.extend(f"<p><i>{html.escape(note)}</i></p>" for note in summary.notes)
    parts.append("<table><tr><th>total</th><th>a</th><th>b</th><th>delta</th></tr>")
    parts.extend(_delta_row(delta) for delta in summary.totals.values())
    parts.append("</table>")
    if diff.differences:
        parts.append(f"<table><tr><th>path</th><th>kind</th><th>{a}</th><th>{b}</th></tr>")
        sensitive = sensitive_names_for()
        for found in diff.differences:
            difference = dataclasses.replace(
                found,
                path=scrub_text(found.path, sensitive),
                before=scrub_output(found.before, sensitive),
                after=scrub_output(found.after, sensitive),
            )
            left, right = _sides(difference)
            parts.append(
                f"<tr><td><code>{html.escape(difference.path)}</code></td>"
                f"<td>{difference.kind}</td><td><pre>{left}</pre></td>"
                f"<td><pre>{right}</pre></td></tr>"
            )
        parts.append("</table>")
    parts.append("</div>")
    return "".join(parts)
