"""The check behind ``@pytest.mark.replay_many``, without pytest: replay the selected runs with
the marker's modifications and say, when more outputs changed than allowed (or a run failed),
which runs and where each first diverged."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from workbench.exceptions import ConfigError

__all__ = ["REPLAY_MANY_OPTIONS", "replay_many_problem"]

#: The marker's keyword arguments: the selection's filters, replay_many's own, and the bound.
REPLAY_MANY_OPTIONS = (
    "engine",
    "executions",
    "include_replays",
    "limit",
    "max_changed",
    "modifications",
    "on_miss",
    "pipeline",
    "since",
    "status",
    "store",
    "workers",
)
_LISTED = 20


def replay_many_problem(options: Mapping[str, Any]) -> str | None:
    """Run the experiment ``options`` describe; what is wrong with it, or ``None``."""
    from workbench.debugging import RequestReplay
    from workbench.store import open_store

    unknown = sorted(set(options) - set(REPLAY_MANY_OPTIONS))
    if unknown:
        raise ConfigError(
            f"replay_many({', '.join(f'{k}=' for k in unknown)}...): not an option; use "
            f"{', '.join(REPLAY_MANY_OPTIONS)}"
        )
    executions: Sequence[str] | dict[str, Any] | None = options.get("executions")
    if executions is None:
        if options.get("pipeline") is None:
            raise ConfigError(
                "replay_many needs pipeline= (with since=, status=, limit=) or executions=[ids]"
            )
        executions = {
            k: options[k]
            for k in ("pipeline", "since", "status", "limit", "include_replays")
            if options.get(k) is not None
        }
    max_changed = int(options.get("max_changed", 0))
    store_path = options.get("store")
    store = open_store(os.fspath(store_path) if store_path is not None else None)
    exp = RequestReplay(store).replay_many(
        executions,
        modifications=options.get("modifications"),
        on_miss=options.get("on_miss", "error"),
        engine=options.get("engine", "processes"),
        workers=options.get("workers"),
        name="pytest replay_many",
    )
    summary = exp.summary()
    if summary.changed <= max_changed and not summary.failed:
        return None
    lines = [
        f"replay_many: {summary.changed} of {summary.n} run(s) changed their outputs "
        f"(max_changed={max_changed}), {summary.failed} failed; experiment {exp.id} "
        f"(`workbench experiments show {exp.id}`)"
    ]
    for run in exp.changed()[:_LISTED]:
        lines.append(
            f"  changed {run.original_id} -> {run.replay_id}: first divergent step "
            f"{run.first_divergent_step or '(the execution outputs)'}"
        )
    for run in exp.failed()[:_LISTED]:
        lines.append(f"  failed {run.original_id}: {run.error}")
    return "\n".join(lines)
