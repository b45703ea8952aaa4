"""Pairing the model calls of one step (or of the execution) across two runs, by what they are.

Owns the order in which two documents list the calls they are compared by; does not compare
anything. Calls made at once (a thread pool or ``asyncio.gather`` inside one step) finish, and
are recorded, in whatever order the scheduler and the network decide, so the position of a call
says nothing about which call it is. A call is what it asked: its ``request_key`` (a hash of the
canonical request). Two runs' calls are therefore paired

1. by request key — among calls with the same key, in the order of their ``occurrence`` (the
   order in which identical requests were made, which is also the order replay answers them);
2. the calls left over on both sides (a request that changed) pair up in the order they were
   made, so a changed prompt is reported as that change on that call;
3. what is left after that is a call only one run made: listed last, it is ``added`` or
   ``removed``.

Both documents then list their calls pair by pair, so that deepdiff (which compares lists
position by position) compares each call with its counterpart. The order of the pairs is the
order the calls were made in, read symmetrically from both runs (the sum of their two positions)
so that ``compare(b, a)`` stays the mirror of ``compare(a, b)``; for calls made one after the
other, which every run makes in the same order, that is each call's own position. The same set
of calls made in another order is therefore no difference at all.
"""

from __future__ import annotations

from collections import defaultdict, deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.diff._document import Document, PathPart

__all__ = ["CallKey", "align_calls", "pair_calls"]

#: What a call is, for pairing: its request key and its occurrence.
CallKey = tuple[str, int]


def pair_calls(
    keys_a: list[CallKey], keys_b: list[CallKey]
) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """The pairs ``(index in a, index in b)`` in compared order, then the unpaired indices of
    ``a`` and of ``b`` (each in the order its run made them)."""
    waiting: dict[str, deque[int]] = defaultdict(deque)
    for j in sorted(range(len(keys_b)), key=lambda j: keys_b[j][1]):
        waiting[keys_b[j][0]].append(j)
    pairs: list[tuple[int, int]] = []
    left_a: list[int] = []
    for i in sorted(range(len(keys_a)), key=lambda i: keys_a[i][1]):
        same = waiting.get(keys_a[i][0])
        if same:
            pairs.append((i, same.popleft()))
        else:
            left_a.append(i)
    left_a.sort()
    paired_b = {j for _, j in pairs}
    left_b = [j for j in range(len(keys_b)) if j not in paired_b]
    count = min(len(left_a), len(left_b))
    pairs.extend(zip(left_a[:count], left_b[:count], strict=True))
    # Symmetric in a and b: swapping the runs swaps each pair and leaves the order unchanged.
    pairs.sort(key=lambda p: (p[0] + p[1], min(p), tuple(sorted((keys_a[p[0]], keys_b[p[1]])))))
    return pairs, left_a[count:], left_b[count:]


def align_calls(doc_a: Document, doc_b: Document) -> None:
    """Reorder the call lists of both documents (and their measured paths) pair by pair."""
    for owner, keys_a in doc_a.call_keys.items():
        keys_b = doc_b.call_keys.get(owner)
        if keys_b is None or keys_a == keys_b:
            continue  # a step only one run has, or the same calls in the same order
        pairs, only_a, only_b = pair_calls(keys_a, keys_b)
        _reorder(doc_a, owner, [i for i, _ in pairs] + only_a)
        _reorder(doc_b, owner, [j for _, j in pairs] + only_b)


def _reorder(doc: Document, owner: tuple[PathPart, ...], order: list[int]) -> None:
    if order == sorted(order):
        return
    calls: list[Any] = _calls_at(doc.content, owner)
    calls[:] = [calls[i] for i in order]
    keys = doc.call_keys[owner]
    keys[:] = [keys[i] for i in order]
    measured = [doc.metrics.pop((*owner, i)) for i in range(len(order))]
    for position, i in enumerate(order):
        doc.metrics[(*owner, position)] = measured[i]


def _calls_at(content: dict[str, Any], owner: tuple[PathPart, ...]) -> list[Any]:
    node: Any = content
    for part in owner:
        node = node[part]
    return node  # type: ignore[no-any-return]
