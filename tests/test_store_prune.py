"""Pruning a store: which executions go (kept newest, old, replays), their rows and blobs
with them, the file compacted, and the CLI that prints what it removed."""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import pytest
from click.testing import CliRunner

import workbench
from workbench.cli import cli
from workbench.exceptions import StoreError
from workbench.store import Store
from workbench.store._export import execution_document, import_documents
from workbench.store._owner import owner_stamp

DAY = 86_400.0


def _fill(store: Store) -> dict[str, dict[str, Any]]:
    """Executions of pipelines a and b, some old, some replays, one still running; by id."""
    with workbench.record("seed", inputs={}, store=store) as run:
        workbench.state("big", {"text": "x" * 20_000})
    template = execution_document(store.get_execution(run.id))
    store.delete_executions([run.id])
    now = time.time()
    made: dict[str, dict[str, Any]] = {}
    for n, (pipeline, age_days, replay_of, status) in enumerate(
        [
            ("a", 40, None, "completed"),
            ("a", 35, "exec_a0", "completed"),
            ("a", 2, None, "completed"),
            ("a", 1, "exec_a2", "failed"),
            ("b", 50, None, "running"),
            ("b", 45, None, "completed"),
            ("b", 0, None, "completed"),
        ]
    ):
        document = copy.deepcopy(template)
        execution_id = f"exec_{pipeline}{n}"
        document["execution"].update(
            id=execution_id,
            pipeline_id=pipeline,
            started_at=now - age_days * DAY,
            replay_of=replay_of,
            status=status,
        )
        document["states"][0]["value"] = {"text": f"{n}" * 20_000}  # a blob of its own
        made[execution_id] = document
    import_documents(store, [(key, doc) for key, doc in made.items()])
    # A running execution of no live process is judged interrupted: make b4 this process's.
    store._query(
        "UPDATE executions SET pid = ?, host = ?, proc_start = ? WHERE id = 'exec_b4'",
        owner_stamp(),
    )
    return made


@pytest.mark.parametrize(
    ("options", "removed"),
    [
        ({"keep_last": 1}, ["exec_b5", "exec_a0", "exec_a1", "exec_a2"]),
        ({"older_than": "30d"}, ["exec_b5", "exec_a0", "exec_a1"]),
        ({"replays": True}, ["exec_a1", "exec_a3"]),
        ({"older_than": "30d", "replays": True}, ["exec_a1"]),
        ({"keep_last": 2, "older_than": "3d"}, ["exec_a0", "exec_a1"]),
    ],
)
def test_prune_removes_what_matches_every_condition_and_never_a_running_run(
    store: Store, options: dict[str, Any], removed: list[str]
) -> None:
    """Each condition, and conditions together, choose the executions removed (oldest first);
    a running execution stays whatever its age."""
    _fill(store)
    pruned = store.prune(**options)
    assert [e.id for e in pruned.executions] == removed
    left = {e.id for e in store.list_executions(limit=None)}
    assert left.isdisjoint(removed) and "exec_b4" in left and len(left) == 7 - len(removed)


def test_prune_takes_the_children_and_orphaned_blobs_and_shrinks_the_file(store: Store) -> None:
    """The removed executions' states and blobs go, the kept ones read back whole, and the file
    is compacted; a dry run removes nothing."""
    made = _fill(store)
    before = store.stats()
    dry = store.prune(older_than="30d", dry_run=True)
    assert len(dry.executions) == 3 and store.stats() == before
    pruned = store.prune(older_than="30d")
    after = store.stats()
    assert after["executions"] == 4 and after["states"] == 4
    assert pruned.blobs == 3 and after["blobs"] == before["blobs"] - 3
    assert pruned.bytes_after < pruned.bytes_before
    kept = store.get_execution("exec_a2")
    assert kept.states[0].value == made["exec_a2"]["states"][0]["value"]


def test_prune_needs_a_condition(store: Store) -> None:
    """A prune with no condition would empty the store: it is refused, naming the options."""
    with pytest.raises(StoreError, match="at least one of keep_last, older_than or replays"):
        store.prune()
    with pytest.raises(StoreError, match="older_than: 'yesterday' is not a time"):
        store.prune(older_than="yesterday")


def test_cli_prune_prints_what_it_removed(store: Store) -> None:
    """`workbench store prune` lists each removed execution and the totals; --dry-run says
    what it would remove and leaves the store as it was."""
    _fill(store)
    runner = CliRunner()
    db = ["--db", str(store.path)]
    dry = runner.invoke(cli, ["store", "prune", "--replays", "--dry-run", *db])
    assert dry.exit_code == 0, dry.output
    assert dry.output.splitlines() == [
        "would remove exec_a1  a  completed",
        "would remove exec_a3  a  failed",
        f"would remove 2 execution(s); store {store.stats()['bytes']:,} bytes",
    ]
    done = runner.invoke(cli, ["store", "prune", "--keep-last", "1", "--older-than", "30d", *db])
    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    assert lines[:3] == [
        "removed exec_b5  b  completed",
        "removed exec_a0  a  completed",
        "removed exec_a1  a  completed",
    ]
    assert lines[3].startswith("removed 3 execution(s) and 3 blob(s); store ")
    as_json = runner.invoke(cli, ["store", "prune", "--replays", "--json", *db])
    assert as_json.exit_code == 0, as_json.output
    report = json.loads(as_json.output)
    assert [e["id"] for e in report["executions"]] == ["exec_a3"] and not report["dry_run"]
    refused = runner.invoke(cli, ["store", "prune", *db])
    assert refused.exit_code == 2 and "error: prune needs at least one of" in refused.output
