"""Comparing two executions: alignment, the canonical-form shortcut, deepdiff, ignore paths.

Owns :func:`compare_executions`. The two runs become documents (:mod:`._document`); steps are
aligned by key (``step_id#occurrence``), the model calls within a step by what they asked
(:mod:`._align`: request key, then order among calls with the same key), and a step whose
canonical JSON (sorted keys, via orjson) is byte-for-byte the same in both runs is dropped
before deepdiff runs. deepdiff then
compares only what is left — the execution's own fields that differ, steps that differ, and
steps present in one run only — so that the cost of a diff grows with what changed, not with the
size of the runs. Because an equal step contributes nothing to a deepdiff of the whole
documents either, the result is the same as deepdiff on the whole documents with
:data:`DEEPDIFF_OPTIONS` (a test and ``benchmarks/bench_diff.py`` check that).

deepdiff's report is translated here, at this one boundary, into :class:`Difference` records.
"""

from __future__ import annotations

import re
import warnings
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

import orjson
from deepdiff import DeepDiff

from workbench._gc import paused
from workbench.diff._document import Document, PathPart, build_documents
from workbench.diff._model import Delta, Difference, ExecutionDiff, Kind
from workbench.exceptions import DiffError, UnmatchedIgnoreWarning
from workbench.records import Execution
from workbench.store import Store, open_store

__all__ = [
    "DEEPDIFF_OPTIONS",
    "compare_executions",
    "compile_ignore",
    "join_path",
    "translate",
]

#: How deepdiff is asked to compare. Lists compare position by position (``zip``), so that
#: ``compare(b, a)`` is exactly the mirror of ``compare(a, b)`` — difflib's alignment of lists
#: is not symmetric. Dicts are always compared key by key, however many keys changed, so that
#: a difference's path points at the field that changed rather than at its container.
DEEPDIFF_OPTIONS: Final[dict[str, Any]] = {
    "zip_ordered_iterables": True,
    "threshold_to_diff_deeper": 0,
}

_SORT: Final = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def compare_executions(
    a: str | Execution,
    b: str | Execution,
    *,
    store: Store | None = None,
    ignore: str | Iterable[str] = (),
) -> ExecutionDiff:
    """How execution ``b`` differs from execution ``a``.

    ``a`` and ``b`` are execution ids (read from ``store``, by default the shared store of
    :func:`workbench.open_store`) or :class:`~workbench.Execution` records. ``ignore`` holds
    dotted path patterns of differences to leave out: ``*`` is one path segment, ``**`` any
    number of them, and a pattern also ignores everything under what it matches
    (``"steps.*.result.timestamp"``, ``"outputs.draft"``, ``"steps.retry#*"``). A pattern that
    matches no field of either run warns with :class:`UnmatchedIgnoreWarning`.

    Raises :class:`DiffError` when ``a`` and ``b`` are the same execution, and
    :class:`~workbench.ExecutionNotFoundError` for an id the store does not hold.
    """
    patterns = (ignore,) if isinstance(ignore, str) else tuple(ignore)
    id_a = a if isinstance(a, str) else a.id
    id_b = b if isinstance(b, str) else b.id
    if id_a == id_b:
        raise DiffError(
            f"cannot compare execution {id_a!r} with itself; pass two different executions "
            f"(a run and its replay, or two runs of the same pipeline)"
        )
    run_a, run_b = _load(a, store), _load(b, store)
    # Building the documents allocates a few small dicts per step and call, none of them in a
    # cycle; with the cyclic collector running, it rescans the whole (large) heap again and
    # again meanwhile — a third of the time of comparing two 10,000-step runs. Paused to the
    # end: the documents are freed (by reference counting) as this returns, so the collector
    # finds nothing owed, rather than walking them at the first allocation after they are built.
    with paused():
        doc_a, doc_b = build_documents(run_a, run_b)
        differences = translate(_deepdiff_of_differing(doc_a, doc_b), doc_a, doc_b)
        deltas = _deltas(doc_a, doc_b)
        if patterns:
            differences, deltas = _apply_ignore(patterns, differences, deltas, doc_a, doc_b)
        order = _merged_order(doc_a.step_order, doc_b.step_order)
        differences.sort(key=lambda d: _sort_key(d.step_id, d.occurrence, d.path, order))
        deltas.sort(key=lambda d: _sort_key(d.step_id, d.occurrence, d.path, order))
        return ExecutionDiff(run_a, run_b, differences, deltas, patterns, order)


def _load(run: str | Execution, store: Store | None) -> Execution:
    if isinstance(run, Execution):
        return run
    if not isinstance(run, str):
        raise TypeError(f"expected an execution id or a workbench.Execution, got {run!r}")
    return (store if store is not None else open_store()).get_execution(run)


def _same(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` have the same canonical JSON; ``False`` when either has none."""
    if a is b:
        return True
    try:
        return orjson.dumps(a, option=_SORT) == orjson.dumps(b, option=_SORT)
    except (TypeError, orjson.JSONEncodeError):
        return False  # not JSON (a record built in memory): deepdiff decides


def _deepdiff_of_differing(doc_a: Document, doc_b: Document) -> DeepDiff:
    """deepdiff of the two documents with every equal field and equal step left out."""
    a, b = doc_a.content, doc_b.content
    left: dict[str, Any] = {}
    right: dict[str, Any] = {}
    for name in a.keys() | b.keys():
        if name == "steps" or (name in a and name in b and _same(a[name], b[name])):
            continue
        if name in a:
            left[name] = a[name]
        if name in b:
            right[name] = b[name]
    steps_a: dict[str, Any] = a["steps"]
    steps_b: dict[str, Any] = b["steps"]
    differing_a = {
        key: step
        for key, step in steps_a.items()
        if key not in steps_b or not _same(step, steps_b[key])
    }
    differing_b = {
        key: step for key, step in steps_b.items() if key not in steps_a or key in differing_a
    }
    # Within a step present in both, deepdiff need not see the fields that are equal either
    # (dicts are compared key by key, so leaving equal keys out changes nothing it reports).
    for key, step in differing_a.items():
        other = differing_b.get(key)
        if isinstance(step, dict) and isinstance(other, dict):
            equal = {name for name in step.keys() & other.keys() if _same(step[name], other[name])}
            if equal:
                differing_a[key] = {k: v for k, v in step.items() if k not in equal}
                differing_b[key] = {k: v for k, v in other.items() if k not in equal}
    left["steps"], right["steps"] = differing_a, differing_b
    return DeepDiff(left, right, view="tree", **DEEPDIFF_OPTIONS)


def _kind(report: str) -> Kind:
    if report.endswith("_added"):
        return "added"
    if report.endswith("_removed"):
        return "removed"
    return "changed"  # values_changed, type_changes, repetition_change


def join_path(parts: Sequence[PathPart]) -> str:
    """``["steps", "draft#0", "model_calls", 0]`` -> ``"steps.draft#0.model_calls.0"``."""
    return ".".join(map(str, parts))


def translate(tree: DeepDiff, doc_a: Document, doc_b: Document) -> list[Difference]:
    """deepdiff's tree report as :class:`Difference` records (in deepdiff's order)."""
    differences = []
    for report, levels in tree.items():
        kind = _kind(report)
        for level in levels:
            parts = level.path(output_format="list")
            step_id = occurrence = None
            if len(parts) > 1 and parts[0] == "steps":
                step_id, occurrence = doc_a.steps.get(parts[1]) or doc_b.steps[parts[1]]
            differences.append(
                Difference(
                    join_path(parts),
                    kind,
                    None if kind == "added" else level.t1,
                    None if kind == "removed" else level.t2,
                    step_id,
                    occurrence,
                )
            )
    return differences


def _deltas(doc_a: Document, doc_b: Document) -> list[Delta]:
    """Numeric deltas of every measured record present in both runs (unknown is not zero)."""
    deltas = []
    for path, before in doc_a.metrics.items():
        after = doc_b.metrics.get(path)
        if after is None:
            continue  # an added or removed step or call: its content difference says so
        step = doc_a.steps.get(str(path[1])) if len(path) > 1 and path[0] == "steps" else None
        step_id, occurrence = step if step is not None else (None, None)
        for metric, value in before.items():
            other = after.get(metric)
            if value != other:
                deltas.append(
                    Delta(join_path((*path, metric)), metric, value, other, step_id, occurrence)
                )
    return deltas


def _merged_order(order_a: list[str], order_b: list[str]) -> dict[str, int]:
    """Step keys of both runs in one order: ``a``'s, with each step only in ``b`` placed after
    the last step both runs share that precedes it in ``b``."""
    in_a = set(order_a)
    after: dict[str | None, list[str]] = defaultdict(list)
    previous: str | None = None
    for key in order_b:
        if key in in_a:
            previous = key
        else:
            after[previous].append(key)
    merged = list(after[None])
    for key in order_a:
        merged.append(key)
        merged.extend(after[key])
    return {key: index for index, key in enumerate(merged)}


def _sort_key(
    step_id: str | None, occurrence: int | None, path: str, order: dict[str, int]
) -> tuple[int, str]:
    # Execution-level fields first, then steps in run order; the path string breaks ties so
    # that the order does not depend on which run was ``a``.
    if step_id is None:
        return (-1, path)
    return (order.get(f"{step_id}#{occurrence}", len(order)), path)


def compile_ignore(pattern: str) -> re.Pattern[str]:
    """The regular expression of one ignore pattern (it also matches everything below)."""
    regex = []
    for token in re.split(r"(\*\*|\*)", pattern):
        if token == "**":
            regex.append(".*")
        elif token == "*":
            regex.append(r"[^.]*")
        else:
            regex.append(re.escape(token))
    return re.compile(rf"(?:{''.join(regex)})(?:\..*)?", re.DOTALL)


def _paths(value: Any, prefix: str) -> Iterator[str]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, f"{prefix}.{index}" if prefix else str(index))


def _document_paths(doc: Document) -> Iterator[str]:
    yield from _paths(doc.content, "")
    for path, metrics in doc.metrics.items():
        for metric in metrics:
            yield join_path((*path, metric))


def _apply_ignore(
    patterns: tuple[str, ...],
    differences: list[Difference],
    deltas: list[Delta],
    doc_a: Document,
    doc_b: Document,
) -> tuple[list[Difference], list[Delta]]:
    compiled = [compile_ignore(pattern) for pattern in patterns]
    matched = [False] * len(compiled)

    def ignored(path: str) -> bool:
        hit = False
        for index, regex in enumerate(compiled):
            if regex.fullmatch(path):
                matched[index] = hit = True
        return hit

    kept = [d for d in differences if not ignored(d.path)]
    kept_deltas = [d for d in deltas if not ignored(d.path)]
    for index, regex in enumerate(compiled):
        # A pattern that ignored nothing may still name a field that is equal in both runs:
        # only one that names no field at all is probably a typo.
        if matched[index]:
            continue
        if any(regex.fullmatch(path) for doc in (doc_a, doc_b) for path in _document_paths(doc)):
            continue
        warnings.warn(
            f"ignore pattern {patterns[index]!r} matches no field of {doc_a.execution.id} or "
            f"{doc_b.execution.id}; paths look like 'outputs.answer', "
            f"'steps.<step_id>#<occurrence>.result' or 'steps.*.model_calls.0.text'",
            UnmatchedIgnoreWarning,
            stacklevel=3,
        )
    return kept, kept_deltas
