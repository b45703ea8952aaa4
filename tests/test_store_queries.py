"""The store's public read queries (``workbench/store/_queries.py``): each answers what the
records recorded through the recorder say, computed here in plain Python from
``get_execution``; and, as a property, the aggregates equal a plain-Python computation over any
rows."""

from __future__ import annotations

import os
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import workbench
from workbench.exceptions import StoreError
from workbench.records import Execution, ModelCall
from workbench.store import Store
from workbench.testing import ModelServer, fresh_store

PRICES = (
    "cost_tracking:\n  providers:\n    openai:\n      models:\n"
    "        gpt-4o-mini: {input_cost_per_1k: 1.0, output_cost_per_1k: 1.0}\n"
    "        gpt-4o: {input_cost_per_1k: 2.0, output_cost_per_1k: 2.0}\n"
)
BUCKETS = (0.001, 0.01, 0.1, 1.0, 10.0)


def _ask(server: ModelServer, model: str, fault: str | None = None) -> None:
    headers = {ModelServer.FAULT_HEADER: fault} if fault else None
    with openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0) as client:
        client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], extra_headers=headers
        )


@workbench.step("fetch")
def _fetch(server: ModelServer, model: str) -> None:
    _ask(server, model)


@workbench.step("broken")
def _broken() -> None:
    raise ValueError("no")


@pytest.fixture
def recorded(tmp_path: Path, store: Store, model_server: ModelServer) -> Store:
    """Two pipelines, two users and a run without one; priced, unpriced and rate-limited
    calls; completed and failed steps and executions."""
    (tmp_path / "workbench.yaml").write_text(PRICES)
    with workbench.record("research", inputs={}, store=store, user_id="alice"):
        _fetch(model_server, "gpt-4o-mini")
        _fetch(model_server, "gpt-4o")
    with workbench.record("summarise", inputs={}, store=store, user_id="bob"):
        _fetch(model_server, "gpt-4o-mini")
    with pytest.raises(ValueError), workbench.record("summarise", inputs={}, store=store):
        _ask(model_server, "llama-local-7b")
        _broken()
    with (
        pytest.raises(openai.RateLimitError),
        workbench.record("research", inputs={}, store=store, user_id="alice"),
    ):
        _ask(model_server, "gpt-4o", "429")
    store.flush()
    return store


def _executions(store: Store) -> list[Execution]:
    return [store.get_execution(e.id) for e in store.list_executions(limit=None)]


def _in_ledger(call: ModelCall) -> bool:
    """The calls the cost ledger holds: answered (a status below 400), not plain HTTP, not a
    replay's (see ``workbench.store._schema``)."""
    return call.status_code is not None and call.status_code < 400 and call.provider != "http"


def test_ledger_snapshot_and_entries_count_each_priced_call_once(recorded: Store) -> None:
    """The snapshot's sums equal the recorded calls' costs; the entries after seq 0 are the
    calls, and none arrive after the snapshot's seq."""
    calls = [c for e in _executions(recorded) for c in e.model_calls if _in_ledger(c)]
    spent = sum(c.cost_usd or 0.0 for c in calls)
    snapshot = recorded.ledger_snapshot(since=0.0, recent_since=time.time() + 60)
    assert snapshot.since_usd == pytest.approx(spent) and snapshot.since_usd > 0
    assert snapshot.recent_usd == 0.0  # nothing started after the later moment
    entries = recorded.ledger_since(0)
    assert len(entries) == len(calls)
    assert sorted(e.cost_usd or 0.0 for e in entries) == pytest.approx(
        sorted(c.cost_usd or 0.0 for c in calls)
    )
    assert max(e.seq for e in entries) == snapshot.seq
    assert recorded.ledger_since(snapshot.seq) == []


def test_a_users_total_counts_only_their_calls_up_to_the_seq(recorded: Store) -> None:
    """ledger_user_total is the user's spend since the moment, entries up to the seq only."""
    alice = sum(
        c.cost_usd or 0.0
        for e in _executions(recorded)
        if e.user_id == "alice"
        for c in e.model_calls
        if _in_ledger(c)
    )
    seq = recorded.ledger_snapshot(since=0.0, recent_since=0.0).seq
    assert recorded.ledger_user_total("alice", since=0.0, up_to_seq=seq) == pytest.approx(alice)
    assert recorded.ledger_user_total("alice", since=0.0, up_to_seq=0) == 0.0
    assert recorded.ledger_user_total("nobody", since=0.0, up_to_seq=seq) == 0.0


def test_ledger_sums_cut_the_spend_at_the_bounds(recorded: Store) -> None:
    """Each sum is the spend between two consecutive bounds; a call lies in exactly one."""
    calls = [c for e in _executions(recorded) for c in e.model_calls if _in_ledger(c)]
    middle = sorted(c.started_at for c in calls)[2]
    bounds = [0.0, middle, time.time() + 60]
    before, after = recorded.ledger_sums(bounds)
    assert before == pytest.approx(sum(c.cost_usd or 0 for c in calls if c.started_at < middle))
    assert after == pytest.approx(sum(c.cost_usd or 0 for c in calls if c.started_at >= middle))
    assert recorded.ledger_sums([1.0]) == []


def test_cost_groups_split_the_calls_by_model_pipeline_and_user(recorded: Store) -> None:
    """One group per (model, pipeline, user): costs, counts, unpriced calls and tokens equal
    the recorded calls' the ledger holds (the rate-limited one is not)."""
    expected: dict[tuple[Any, ...], list[Any]] = defaultdict(lambda: [0.0, 0, 0, 0, 0])
    for execution in _executions(recorded):
        for call in filter(_in_ledger, execution.model_calls):
            group = expected[(call.model, execution.pipeline_id, execution.user_id)]
            group[0] += call.cost_usd or 0.0
            group[1] += 1
            group[2] += call.cost_usd is None
            group[3] += call.input_tokens or 0
            group[4] += call.output_tokens or 0
    found = {
        (g.model, g.pipeline_id, g.user_id): [
            g.cost_usd,
            g.calls,
            g.unpriced_calls,
            g.input_tokens,
            g.output_tokens,
        ]
        for g in recorded.cost_groups(since=0.0, until=time.time() + 60)
    }
    assert found.keys() == expected.keys()
    for key, values in expected.items():
        assert found[key] == pytest.approx(values), key
    assert recorded.cost_groups(since=0.0, until=1.0) == []


def test_execution_aggregates_count_per_pipeline_and_status(recorded: Store) -> None:
    """Counts, failures and the duration histogram per pipeline and status equal the
    recorded executions'; without a grouping, one total."""
    executions = _executions(recorded)
    found = {
        (a.pipeline_id, a.status): a
        for a in recorded.execution_aggregates(
            by=("pipeline_id", "status"), duration_buckets=BUCKETS
        )
    }
    assert {k: a.executions for k, a in found.items()} == dict(
        Counter((e.pipeline_id, e.status) for e in executions)
    )
    for (pipeline, status), aggregate in found.items():
        durations = [
            e.duration_s
            for e in executions
            if (e.pipeline_id, e.status) == (pipeline, status) and e.duration_s is not None
        ]
        assert aggregate.duration is not None
        assert aggregate.duration.count == len(durations)
        assert aggregate.duration.total == pytest.approx(sum(durations))
        assert aggregate.duration.cumulative == tuple(
            sum(d <= b for d in durations) for b in BUCKETS
        )
        assert aggregate.failed == (aggregate.executions if status == "failed" else 0)
    (total,) = recorded.execution_aggregates()
    assert total.executions == len(executions) == 4
    assert total.failed == sum(e.status == "failed" for e in executions) == 2
    assert total.succeeded == sum(bool(e.success) for e in executions)
    (research,) = recorded.execution_aggregates(pipeline_id="research", statuses=("failed",))
    assert research.executions == 1


def test_step_aggregates_count_per_pipeline_step_and_status(recorded: Store) -> None:
    """Steps, retries and durations per (pipeline, step, status) equal the recorded steps'."""
    expected: Counter[tuple[str, str, str]] = Counter()
    seconds: dict[str, float] = defaultdict(float)
    for execution in _executions(recorded):
        for step in execution.steps:
            expected[(execution.pipeline_id, step.step_id, step.status)] += 1
            seconds[step.step_id] += step.duration_s or 0.0
    found = recorded.step_aggregates(by=("pipeline_id", "step_id", "status"))
    assert {(a.pipeline_id, a.step_id, a.status): a.steps for a in found} == dict(expected)
    by_step = {a.step_id: a for a in recorded.step_aggregates(by=("step_id",))}
    for step_id, total in seconds.items():
        assert by_step[step_id].duration.total == pytest.approx(total)
        assert by_step[step_id].busy_s == pytest.approx(total)
    (capped,) = recorded.step_aggregates(step_id="fetch", busy_cap_s=1e-9)
    assert capped.busy_s == pytest.approx(capped.steps * 1e-9)
    assert {t.step_id for t in recorded.step_timings()} == {"fetch", "broken"}
    assert {t.pipeline_id for t in recorded.step_timings(pipeline_id="summarise")} == {"summarise"}


def test_model_call_aggregates_count_per_provider_model_and_pipeline(recorded: Store) -> None:
    """Calls, errors, tokens and costs per (provider, model, pipeline) equal the recorded
    calls'; the rate-limited call is an error."""
    expected: dict[tuple[Any, ...], list[Any]] = defaultdict(lambda: [0, 0, 0, 0.0])
    for execution in _executions(recorded):
        for call in execution.model_calls:
            group = expected[(call.provider, call.model, execution.pipeline_id)]
            group[0] += 1
            group[1] += call.error is not None or (call.status_code or 0) >= 400
            group[2] += (call.input_tokens or 0) + (call.output_tokens or 0)
            group[3] += call.cost_usd or 0.0
    found = {
        (a.provider, a.model, a.pipeline_id): [
            a.calls,
            a.errors,
            a.input_tokens + a.output_tokens,
            a.cost_usd or 0.0,
        ]
        for a in recorded.model_call_aggregates(by=("provider", "model", "pipeline_id"))
    }
    assert found.keys() == expected.keys()
    for key, values in expected.items():
        assert found[key] == pytest.approx(values), key
    (limited,) = recorded.model_call_aggregates(pipeline_id="research", model="gpt-4o")
    assert (limited.calls, limited.errors) == (2, 1)
    (replays,) = recorded.model_call_aggregates(in_replays=True)
    assert replays.calls == 0 and replays.cost_usd is None
    timings = recorded.model_call_timings(provider="openai")
    assert len(timings) == sum(v[0] for v in expected.values()) and all(
        t.latency_s >= 0 for t in timings
    )


def test_execution_outcomes_are_the_last_finished_runs_newest_first(recorded: Store) -> None:
    """Outcomes of one pipeline, newest first, with the error's type of a failed run; the
    failed calls of those runs name their HTTP status."""
    outcomes = recorded.execution_outcomes("research", limit=10)
    assert [o.started_at for o in outcomes] == sorted(
        (o.started_at for o in outcomes), reverse=True
    )
    assert [(o.status, o.success) for o in outcomes] == [("failed", False), ("completed", True)]
    assert outcomes[0].error_type == "openai.RateLimitError" and outcomes[1].error_type is None
    assert len(recorded.execution_outcomes("research", limit=1)) == 1
    failures = recorded.model_call_failures([o.id for o in outcomes])
    assert [(f.execution_id, f.status_code) for f in failures] == [(outcomes[0].id, 429)]


def test_find_execution_and_spans_read_one_execution(recorded: Store) -> None:
    """find_execution is the execution without children (None when absent); spans are its
    spans as get_execution gives them."""
    listed = recorded.list_executions(pipeline_id="summarise", limit=1)[0]
    found = recorded.find_execution(listed.id)
    assert found is not None and found.id == listed.id and found.steps == []
    assert found.trace_id == listed.trace_id
    assert recorded.find_execution("exec_missing") is None
    assert recorded.spans(listed.id) == recorded.get_execution(listed.id).spans
    assert recorded.spans(listed.id)


def test_running_steps_counts_the_steps_in_progress(store: Store) -> None:
    """A step in progress in a running execution of this process is counted; once it ends,
    it is not."""
    seen: list[int] = []

    @workbench.step("slow")
    def slow() -> None:
        store.flush()
        seen.append(store.running_steps(pid=os.getpid()))
        seen.append(store.running_steps(pid=-1))

    with workbench.record("queue", inputs={}, store=store):
        slow()
    store.flush()
    assert seen == [1, 0]
    assert store.running_steps() == 0


def test_user_sql_runs_as_written(store: Store) -> None:
    """run_user_sql returns the rows of the user's statement as dictionaries (none for one
    that returns no rows); SQL the backend refuses is a StoreError."""
    assert store.run_user_sql("SELECT 1 AS one, 'x' AS two") == [{"one": 1, "two": "x"}]
    assert store.run_user_sql("UPDATE workbench_schema SET app = app WHERE 1 = 0") == []
    with pytest.raises(StoreError, match="reading store"):
        store.run_user_sql("SELECT * FROM no_such_table")


def test_an_unknown_grouping_is_refused_by_name(store: Store) -> None:
    """Grouping by a key the query does not have is a StoreError naming it and the keys."""
    with pytest.raises(StoreError, match=r"'colour'.*pipeline_id, status"):
        store.execution_aggregates(by=("colour",))
    with pytest.raises(StoreError, match=r"provider, model, pipeline_id, in_replay"):
        store.model_call_aggregates(by=("user",))


# -- a property: the aggregates equal a plain-Python computation over any rows ----------------

_execution_rows = st.lists(
    st.tuples(
        st.sampled_from(["p1", "p2", "p3"]),
        st.sampled_from(["running", "completed", "failed", "interrupted"]),
        st.one_of(st.none(), st.booleans()),
        st.one_of(st.none(), st.floats(min_value=0, max_value=20, allow_nan=False)),
        st.one_of(st.none(), st.just("exec_origin")),  # replay_of
    ),
    max_size=12,
)
_call_rows = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=11),  # the execution (by index; missing ones too)
        st.sampled_from(["openai", "anthropic", "http", None]),
        st.sampled_from(["m1", "m2"]),
        st.one_of(st.none(), st.sampled_from([200, 429, 500])),
        st.one_of(st.none(), st.just('{"type": "Timeout"}')),
        st.one_of(st.none(), st.floats(min_value=0, max_value=1, allow_nan=False)),
        st.one_of(st.none(), st.integers(min_value=0, max_value=1000)),
        st.one_of(st.none(), st.floats(min_value=0, max_value=5, allow_nan=False)),
    ),
    max_size=20,
)


@pytest.fixture(scope="module")
def scratch() -> Iterator[Store]:
    with fresh_store() as store:
        yield store


@settings(max_examples=40, deadline=None)
@given(executions=_execution_rows, calls=_call_rows)
def test_aggregates_equal_sums_over_the_rows(
    scratch: Store, executions: list[tuple[Any, ...]], calls: list[tuple[Any, ...]]
) -> None:
    """Property: execution and model-call aggregates and the ledger's cost groups equal the
    same sums computed in Python over the rows written (NULLs, replays, plain HTTP calls and
    calls of executions not in the store included)."""
    conn = sqlite3.connect(scratch.path, isolation_level=None)
    try:
        conn.execute("DELETE FROM executions")
        conn.execute("DELETE FROM model_calls")
        conn.execute("DELETE FROM cost_ledger")
        conn.executemany(
            "INSERT INTO executions (id, pipeline_id, status, success, duration_s, replay_of, "
            "started_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (f"e{i}", p, s, None if ok is None else int(ok), d, r, 100.0 + i)
                for i, (p, s, ok, d, r) in enumerate(executions)
            ],
        )
        conn.executemany(
            "INSERT INTO model_calls (id, execution_id, provider, model, status_code, error, "
            "cost_usd, input_tokens, latency_s, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(f"c{i}", f"e{row[0]}", *row[1:], 200.0 + i) for i, row in enumerate(calls)],
        )
    finally:
        conn.close()

    by_group: dict[tuple[str, str], list[Any]] = defaultdict(lambda: [0, 0, 0, []])
    for pipeline, status, ok, duration, _ in executions:
        group = by_group[(pipeline, status)]
        group[0] += 1
        group[1] += ok is True
        group[2] += ok is True or (ok is None and status == "completed")
        if duration is not None:
            group[3].append(duration)
    found = scratch.execution_aggregates(by=("pipeline_id", "status"), duration_buckets=BUCKETS)
    assert {(a.pipeline_id, a.status) for a in found} == set(by_group)
    for a in found:
        n, succeeded, judged_ok, durations = by_group[(a.pipeline_id, a.status)]
        assert (a.executions, a.succeeded, a.judged_successful) == (n, succeeded, judged_ok)
        assert a.failed == (n if a.status == "failed" else 0)
        assert a.running == (n if a.status == "running" else 0)
        assert a.duration is not None and a.duration.count == len(durations)
        assert a.duration.total == pytest.approx(sum(durations))
        assert a.duration.cumulative == tuple(sum(d <= b for d in durations) for b in BUCKETS)

    replay_of = {f"e{i}": row[4] for i, row in enumerate(executions)}
    by_call: dict[tuple[Any, ...], list[Any]] = defaultdict(lambda: [0, 0, 0, 0, None])
    for index, provider, model, status, error, cost, tokens, _ in calls:
        if provider == "http":
            continue
        in_replay = replay_of.get(f"e{index}") is not None
        group = by_call[(provider, model, in_replay)]
        group[0] += 1
        group[1] += error is not None or (status or 0) >= 400
        group[2] += error is None and status is None
        group[3] += tokens or 0
        if cost is not None:
            group[4] = (group[4] or 0.0) + cost
    found_calls = scratch.model_call_aggregates(by=("provider", "model", "in_replay"), http=False)
    assert {(a.provider, a.model, a.in_replay) for a in found_calls} == set(by_call)
    for a in found_calls:
        n, errors, unanswered, tokens, cost = by_call[(a.provider, a.model, a.in_replay)]
        assert (a.calls, a.errors, a.unanswered, a.input_tokens) == (n, errors, unanswered, tokens)
        assert a.cost_usd == (None if cost is None else pytest.approx(cost))

    # The ledger: answered calls (a status below 400), not plain HTTP, not a replay's.
    pipeline_of = {f"e{i}": row[0] for i, row in enumerate(executions)}
    by_cost: dict[tuple[Any, ...], list[Any]] = defaultdict(lambda: [0.0, 0, 0, 0])
    for index, provider, model, status, _, cost, tokens, _ in calls:
        execution_id = f"e{index}"
        if status is None or status >= 400 or provider == "http" or replay_of.get(execution_id):
            continue
        group = by_cost[(model, pipeline_of.get(execution_id))]
        group[0] += cost or 0.0
        group[1] += 1
        group[2] += cost is None
        group[3] += tokens or 0
    found_costs = {
        (g.model, g.pipeline_id): [g.cost_usd, g.calls, g.unpriced_calls, g.input_tokens]
        for g in scratch.cost_groups(since=0.0, until=1e9)
    }
    assert found_costs.keys() == by_cost.keys()
    for key, values in by_cost.items():
        assert found_costs[key] == pytest.approx(values), key


def test_the_fast_path_answers_as_its_statements_do_through_read(recorded: Store) -> None:
    """The ledger reads compiled onto SQLite's reader connection answer what the same Core
    statements answer through ``_read`` (the path a backend without that connection takes)."""
    from workbench.store._queries import _FAST

    since_statement, names = _FAST["ledger_since"]()
    through_read = recorded._read(since_statement.params(dict(zip(names, (1,), strict=True))))
    assert sorted(tuple(row.values()) for row in through_read) == sorted(
        (e.seq, e.started_at, e.user_id, e.cost_usd) for e in recorded.ledger_since(1)
    )
    user_statement, names = _FAST["ledger_user_total"]()
    args = ("alice", 0.0, 10**9)
    (row,) = recorded._read(user_statement.params(dict(zip(names, args, strict=True))))
    assert float(next(iter(row.values()))) == pytest.approx(
        recorded.ledger_user_total("alice", since=0.0, up_to_seq=10**9)
    )
