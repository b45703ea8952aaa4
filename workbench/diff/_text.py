"""Text diffs of changed prompts and responses: word-level segments and unified diffs.

Owns only the comparison of two strings; which strings are compared is the engine's business,
and how segments are coloured the renderers'.
"""

from __future__ import annotations

import difflib
import re
from typing import Literal, TypeAlias

__all__ = ["Segment", "unified_diff", "word_segments"]

Op: TypeAlias = Literal["equal", "delete", "insert"]
#: A run of text that is in both strings (``equal``), only in the first, or only in the second.
Segment: TypeAlias = tuple[Op, str]

# Words, runs of whitespace, and single punctuation marks: a changed word is highlighted alone,
# and joining the tokens gives back the text exactly.
_TOKEN = re.compile(r"\w+|\s+|[^\w\s]")
# SequenceMatcher is quadratic in the worst case; past this many tokens the diff is by line.
_MAX_WORD_TOKENS = 4000


def _tokens(text: str) -> list[str]:
    tokens = _TOKEN.findall(text)
    if sum(map(len, tokens)) != len(text):  # only if the pattern missed something
        return list(text)
    return tokens


def word_segments(before: str, after: str) -> list[Segment]:
    """``before`` turned into ``after`` as segments (by word; by line for very long texts)."""
    a, b = _tokens(before), _tokens(after)
    if max(len(a), len(b)) > _MAX_WORD_TOKENS:
        a, b = before.splitlines(keepends=True), after.splitlines(keepends=True)
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    segments: list[Segment] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            segments.append(("equal", "".join(a[i1:i2])))
            continue
        if i2 > i1:
            segments.append(("delete", "".join(a[i1:i2])))
        if j2 > j1:
            segments.append(("insert", "".join(b[j1:j2])))
    return segments


def unified_diff(before: str, after: str, *, path: str = "") -> str:
    """A unified diff by line for multi-line texts; a ``[-old-]{+new+}`` word diff otherwise.

    The word form is git's ``--word-diff=plain``: a one-line prompt that changed in one word
    reads better as that word than as two whole lines.
    """
    if "\n" in before or "\n" in after:
        lines = difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=f"a/{path}" if path else "a",
            tofile=f"b/{path}" if path else "b",
        )
        return "".join(line if line.endswith("\n") else f"{line}\n" for line in lines)
    parts = []
    for op, text in word_segments(before, after):
        if op == "equal":
            parts.append(text)
        elif op == "delete":
            parts.append(f"[-{text}-]")
        else:
            parts.append(f"{{+{text}+}}")
    return "".join(parts)
