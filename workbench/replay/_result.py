"""What a replay returns: :class:`ReplayResult` and the :class:`Mismatch` records inside it.

Plain frozen dataclasses (and their notebook HTML); how a replay runs is ``_engine``'s business.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from workbench.records import ErrorInfo, ModelCall
from workbench.types import JSON, ExecutionStatus

__all__ = ["Mismatch", "ReplayResult"]


@dataclass(frozen=True, slots=True)
class Mismatch:
    """A replayed request the recording had no answer for, and how it was answered.

    ``answered_by`` is ``"error"`` (refused), ``"live"`` (sent for real) or ``"test-model"``.
    ``diff`` is a unified diff of the canonical JSON bodies, ``-`` recorded, ``+`` replayed.
    """

    step_id: str | None
    step_occurrence: int | None
    request: str
    request_key: str
    occurrence: int
    nearest: str | None
    nearest_call_id: str | None
    diff: str
    answered_by: str

    def describe(self, width: int | None = None) -> str:
        """Several lines: the step, the request, the nearest recorded request and the diff.

        With ``width``, each diff line is cut to about ``width`` characters around where the
        recorded and the replayed line first differ, and the diff to :data:`SHORT_DIFF_LINES`
        lines: a prompt is one JSON line of thousands of characters, shown whole otherwise.
        """
        where = "outside any step" if self.step_id is None else f"in step {self.step_id!r}"
        lines = [
            f"{where}: {self.request} (occurrence {self.occurrence})",
            f"  nearest recorded request: {self.nearest or '(none with this method and path)'}",
        ]
        if self.diff:
            lines.append("  diff (- recorded, + replayed):")
            diff = self.diff.splitlines() if width is None else _short_diff(self.diff, width)
            lines += [f"    {line}" for line in diff]
        elif self.nearest is not None:
            lines.append(
                "  (same body: the recording has fewer identical requests than the replay sent)"
            )
        return "\n".join(lines)


#: The most diff lines :meth:`Mismatch.describe` shows when given a width.
SHORT_DIFF_LINES = 12


def _short_diff(diff: str, width: int) -> list[str]:
    """``diff`` without its file headers, each line cut to ``width`` characters; a removed
    line and the added line paired with it are cut at the same place, a third of the width
    before their first difference, so the change itself is in view."""
    lines = [line for line in diff.splitlines() if not line.startswith(("---", "+++"))]
    removed = [i for i, line in enumerate(lines) if line.startswith("-")]
    added = [i for i, line in enumerate(lines) if line.startswith("+")]
    starts: dict[int, int] = {}
    for a, b in zip(removed, added, strict=False):
        old, new = lines[a][1:], lines[b][1:]
        differ = (n for n, (x, y) in enumerate(zip(old, new, strict=False)) if x != y)
        common = next(differ, min(len(old), len(new)))
        # A change already in view (in the first two thirds) keeps the line's start.
        starts[a] = starts[b] = 0 if common <= width * 2 // 3 else common - width // 3
    short = []
    for i, line in enumerate(lines[:SHORT_DIFF_LINES]):
        sign, body = line[:1], line[1:]
        start = starts.get(i, 0)
        head = "…" if start else ""
        tail = "…" if start + width < len(body) else ""
        short.append(f"{sign}{head}{body[start : start + width]}{tail}")
    if len(lines) > SHORT_DIFF_LINES:
        short.append(f"… {len(lines) - SHORT_DIFF_LINES} more diff lines")
    return short


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """One replay: its own recorded execution, what it returned, and how its calls matched.

    ``unused`` are recorded calls the replay never asked for: the code took another path.
    ``fresh_values`` name the ``workbench.now()`` / ``uuid4()`` / ``random()`` calls the
    recording had no value for, which got a real (so different) value.
    """

    execution_id: str
    replay_of: str
    status: ExecutionStatus
    output: JSON
    error: ErrorInfo | None
    mismatches: list[Mismatch] = field(default_factory=list)
    unused: list[ModelCall] = field(default_factory=list)
    modifications: dict[str, Any] = field(default_factory=dict)
    fresh_values: list[str] = field(default_factory=list)
    # The replay's own calls are read from the store on first use: most callers want the
    # output and the mismatches, and reading N calls back costs as much as replaying them.
    _load_calls: Callable[[], list[ModelCall]] | None = field(
        default=None, repr=False, compare=False
    )
    _calls: list[ModelCall] | None = field(default=None, repr=False, compare=False)

    @property
    def model_calls(self) -> list[ModelCall]:
        """The replay's own model calls (answered from the recording, or as on_miss said)."""
        if self._calls is None:
            calls = self._load_calls() if self._load_calls is not None else []
            object.__setattr__(self, "_calls", calls)  # a cache on a frozen record
            return calls
        return self._calls

    def _repr_html_(self) -> str:
        esc = html.escape
        rows = "".join(
            f"<tr><td>{esc(str(call.step_id))}</td><td>{esc(str(call.model))}</td>"
            f"<td>{call.status_code}</td><td>{esc((call.text or '')[:120])}</td></tr>"
            for call in self.model_calls
        )
        misses = "".join(f"<pre>{esc(m.describe())}</pre>" for m in self.mismatches)
        unused = ", ".join(esc(f"{c.step_id}: {c.model}") for c in self.unused) or "none"
        fresh = ", ".join(map(esc, self.fresh_values)) or "none"
        error = "" if self.error is None else f"<p>error: {esc(self.error.message)}</p>"
        return (
            f"<div><h4>Replay {esc(self.execution_id)} of {esc(self.replay_of)}: "
            f"{esc(self.status)}</h4>{error}"
            f"<p>modifications: {esc(repr(self.modifications or {}))}</p>"
            f"<table><tr><th>step</th><th>model</th><th>status</th><th>text</th></tr>{rows}"
            f"</table><p>{len(self.mismatches)} mismatch(es)</p>{misses}"
            f"<p>unused recorded calls: {unused}</p>"
            f"<p>values not in the recording (real ones used): {fresh}</p></div>"
        )
