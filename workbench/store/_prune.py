"""Which executions ``Store.prune`` removes: keep the newest, drop the old, drop replays.

Owns the choice only, made from :meth:`Store.list_executions`; the deleting (children and
orphaned blobs with them) is :meth:`Store.delete_executions`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from workbench._when import parse_when
from workbench.exceptions import StoreError
from workbench.records import Execution

if TYPE_CHECKING:
    from workbench.store._store import Store

__all__ = ["Pruned", "prunable"]


@dataclass(frozen=True)
class Pruned:
    """What a prune removed (or, with ``dry_run``, would remove)."""

    executions: list[Execution] = field(default_factory=list)
    blobs: int = 0
    bytes_before: int = 0
    bytes_after: int = 0


def prunable(
    store: Store,
    *,
    keep_last: int | None = None,
    older_than: datetime | float | str | None = None,
    replays: bool = False,
) -> list[Execution]:
    """The executions matching every condition given, oldest first; running ones never.

    ``keep_last``: beyond the N newest of their pipeline. ``older_than``: started before that
    moment (``30d``, ``2w``, an ISO date, a ``datetime``). ``replays``: replays of another
    execution (``replay_of`` set).
    """
    if keep_last is None and older_than is None and not replays:
        raise StoreError(
            "prune needs at least one of keep_last, older_than or replays, e.g. "
            "`workbench store prune --keep-last 20` or `--older-than 30d`"
        )
    if keep_last is not None and keep_last < 0:
        raise StoreError(f"keep_last must be 0 or more, got {keep_last}")
    if isinstance(older_than, str):
        try:
            older_than = parse_when(older_than)
        except ValueError as exc:
            raise StoreError(f"older_than: {exc}") from exc
    listed = store.list_executions(until=older_than, limit=None)
    beyond: set[str] | None = None
    if keep_last is not None:
        beyond = set()
        seen: dict[str, int] = {}
        for execution in store.list_executions(limit=None):  # newest first
            seen[execution.pipeline_id] = seen.get(execution.pipeline_id, 0) + 1
            if seen[execution.pipeline_id] > keep_last:
                beyond.add(execution.id)
    chosen = [
        execution
        for execution in listed
        if execution.status != "running"
        and (beyond is None or execution.id in beyond)
        and (not replays or execution.replay_of is not None)
    ]
    return sorted(chosen, key=lambda e: (e.started_at, e.id))
