"""The store's reads for the UI (``workbench.store._ui_reads``): a page of the run list with its
total, facets, daily costs in a time zone, spend since a moment — against a real SQLite file and
a real PostgreSQL database (every test here runs on both)."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.exceptions import ConfigError
from workbench.store import Store
from workbench.store._sql import EXEC_COLUMNS

PIPELINES = ("alpha", "beta")
USERS = ("ana", "bo", None)
STATUSES = ("completed", "failed", "interrupted")


def execution_row(index: int, rng: random.Random, **fields: Any) -> tuple[Any, ...]:
    """An ``executions`` row as the writer writes it (ended, not running)."""
    started = 1_700_000_000.0 + index * 10
    values: dict[str, Any] = {
        "id": f"exec_{index:06d}",
        "pipeline_id": rng.choice(PIPELINES),
        "pipeline_version": "1",
        "status": rng.choice(STATUSES),
        "success": 1,
        "user_id": rng.choice(USERS),
        "sampled": 1,
        "debug": 0,
        "started_at": started,
        "ended_at": started + 1,
        "duration_s": rng.choice([None, round(rng.uniform(0.1, 9), 3)]),
        "cost_usd": rng.choice([None, 0.0, round(rng.uniform(0, 0.01), 6)]),
        "tokens_in": rng.randint(0, 500),
        "tokens_out": rng.randint(0, 500),
        "trace_id": f"{index:032x}",
        **fields,
    }
    return tuple(values.get(column) for column in EXEC_COLUMNS)


def fill(store: Store, n: int, seed: int = 7) -> list[tuple[Any, ...]]:
    rng = random.Random(seed)
    rows = [execution_row(i, rng) for i in range(n)]
    store.import_rows({"exec": rows}, [r[0] for r in rows])
    return rows


_COLUMN = {name: EXEC_COLUMNS.index(name) for name in EXEC_COLUMNS}


def expected_page(
    rows: list[tuple[Any, ...]], filters: dict[str, Any], sort: str, descending: bool
) -> list[str]:
    """What run_page must answer, computed in Python: filter, then sort with ties broken by
    insertion order in the same direction and runs without a value last."""
    kept = [
        (position, row)
        for position, row in enumerate(rows)
        if all(row[_COLUMN[name]] == value for name, value in filters.items())
    ]

    def value(row: tuple[Any, ...]) -> Any:
        if sort == "tokens":
            return (row[_COLUMN["tokens_in"]] or 0) + (row[_COLUMN["tokens_out"]] or 0)
        return row[_COLUMN[sort]]

    kept.sort(key=lambda item: item[0], reverse=descending)
    present = [item for item in kept if value(item[1]) is not None]
    missing = [item for item in kept if value(item[1]) is None]
    present.sort(key=lambda item: value(item[1]), reverse=descending)
    return [row[0] for _, row in present + missing]


@pytest.fixture
def store(any_store: Store) -> Store:
    """Each test on both backends: a SQLite file, then a PostgreSQL database."""
    return any_store


@pytest.fixture
def filled(store: Store) -> tuple[Store, list[tuple[Any, ...]]]:
    return store, fill(store, 120)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    pipeline=st.sampled_from([None, *PIPELINES]),
    user=st.sampled_from([None, "ana", "bo"]),
    status=st.sampled_from([None, *STATUSES]),
    sort=st.sampled_from(["started_at", "duration_s", "cost_usd", "tokens", "pipeline_id",
                          "status", "user_id"]),
    descending=st.booleans(),
    offset=st.integers(0, 130),
    limit=st.integers(1, 40),
)  # fmt: skip
def test_a_page_is_the_slice_of_the_whole_filtered_sorted_list(
    filled: tuple[Store, list[tuple[Any, ...]]],
    pipeline: str | None,
    user: str | None,
    status: str | None,
    sort: str,
    descending: bool,
    offset: int,
    limit: int,
) -> None:
    """Any filters, sort, direction, offset and limit give exactly that slice of the matching
    runs in that order, and the total of all of them."""
    store, rows = filled
    filters = {
        name: value
        for name, value in (("pipeline_id", pipeline), ("user_id", user), ("status", status))
        if value is not None
    }
    page = store.run_page(
        pipeline_id=pipeline,
        user_id=user,
        status=status,
        sort=sort,
        descending=descending,
        offset=offset,
        limit=limit,
    )
    everything = expected_page(rows, filters, sort, descending)
    assert page.total == len(everything)
    assert [run.id for run in page.runs] == everything[offset : offset + limit]


def test_pages_cover_every_run_once(filled: tuple[Store, list[tuple[Any, ...]]]) -> None:
    """Paging through with the default sort visits each run exactly once, newest first."""
    store, rows = filled
    seen: list[str] = []
    offset = 0
    while True:
        page = store.run_page(offset=offset, limit=50)
        if not page.runs:
            break
        seen.extend(run.id for run in page.runs)
        offset += 50
    assert seen == [row[0] for row in reversed(rows)]


def test_time_bounds_keep_runs_started_between_them(
    filled: tuple[Store, list[tuple[Any, ...]]],
) -> None:
    """since is inclusive, until exclusive, both on the run's start."""
    store, rows = filled
    since, until = rows[10][_COLUMN["started_at"]], rows[20][_COLUMN["started_at"]]
    page = store.run_page(since=since, until=until, descending=False)
    assert [run.id for run in page.runs] == [row[0] for row in rows[10:20]]


def test_facets_are_the_distinct_pipelines_and_users(
    filled: tuple[Store, list[tuple[Any, ...]]],
) -> None:
    """The facets list each pipeline and user once, sorted, without the runs that have none."""
    facets = filled[0].run_facets()
    assert facets.pipelines == PIPELINES and facets.users == ("ana", "bo")


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"sort": "colour"}, "colour"),
        ({"status": "done"}, "done"),
        ({"limit": 0}, "limit 0"),
        ({"limit": 501}, "limit 501"),
        ({"offset": -1}, "offset -1"),
        ({"since": "yesterday-ish"}, "yesterday-ish"),
    ],
)
def test_bad_arguments_are_config_errors_naming_them(
    store: Store, arguments: dict[str, Any], named: str
) -> None:
    """A sort, status, page bound or time the run list does not take is a ConfigError."""
    with pytest.raises(ConfigError, match=named):
        store.run_page(**arguments)


def _spend(store: Store, when: datetime, cost: float | None, **fields: Any) -> None:
    store.put(
        "ledger",
        (
            "exec_x",
            when.timestamp(),
            fields.get("user"),
            fields.get("pipeline", "alpha"),
            "openai",
            fields.get("model", "gpt-4o-mini"),
            cost,
            10,
            5,
        ),
    )


def test_daily_costs_fall_on_the_days_of_the_time_zone(store: Store) -> None:
    """A call at 23:50 UTC is on the next day in Kolkata (UTC+5:30); each day sums its calls
    per model; an unpriced call is counted apart, in no total."""
    _spend(store, datetime(2024, 5, 1, 12, 0, tzinfo=UTC), 0.25, model="a")
    _spend(store, datetime(2024, 5, 1, 23, 50, tzinfo=UTC), 0.5, model="b")
    _spend(store, datetime(2024, 5, 1, 13, 0, tzinfo=UTC), None, model="a")
    utc = store.daily_costs(days=2, end=date(2024, 5, 2), by="model", timezone="UTC")
    assert utc.days == (date(2024, 5, 1), date(2024, 5, 2))
    assert utc.series == {"b": (0.5, 0.0), "a": (0.25, 0.0)}
    assert utc.calls == 3 and utc.unpriced_calls == 1 and utc.totals == (0.75, 0.0)
    kolkata = store.daily_costs(days=2, end=date(2024, 5, 2), by="model", timezone="Asia/Kolkata")
    assert kolkata.series == {"b": (0.0, 0.5), "a": (0.25, 0.0)}


def test_daily_costs_group_by_user_with_runs_without_one_named(store: Store) -> None:
    """By user, a run recorded without a user is under "(no user)"."""
    _spend(store, datetime(2024, 5, 1, 12, 0, tzinfo=UTC), 0.25, user="ana")
    _spend(store, datetime(2024, 5, 1, 13, 0, tzinfo=UTC), 0.5)
    costs = store.daily_costs(days=1, end=date(2024, 5, 1), by="user", timezone="UTC")
    assert costs.series == {"(no user)": (0.5,), "ana": (0.25,)}


def test_spend_since_sums_the_ledger_from_a_moment(store: Store) -> None:
    """spend_since totals what was spent from a moment on, in all or per user."""
    _spend(store, datetime(2024, 5, 1, 12, 0, tzinfo=UTC), 0.25, user="ana")
    _spend(store, datetime(2024, 5, 2, 12, 0, tzinfo=UTC), 0.5, user="bo")
    moment = datetime(2024, 5, 2, tzinfo=UTC).timestamp()
    assert store.spend_since(moment) == {"": 0.5}
    assert store.spend_since(0, by_user=True) == {"bo": 0.5, "ana": 0.25}


def test_text_search_reads_compressed_prompts(store: Store, model_server: Any) -> None:
    """The words of a prompt long enough to be stored compressed are found, case-blind."""
    from _ui_runs import record_python

    found = record_python(store, model_server, "Quokka habitats and diets")
    record_python(store, model_server, "llamas")
    assert [run.id for run in store.run_page(text="quokka HABITATS").runs] == [found]
    assert store.run_page(text="wombat").total == 0


def test_call_timings_are_the_calls_without_their_payloads(store: Store, model_server: Any) -> None:
    """call_timings gives each model call's place, timing and stream offsets as the full
    record has them."""
    from _ui_runs import record_python

    run = store.get_execution(record_python(store, model_server))
    timings = store.call_timings(run.id)
    assert [t.id for t in timings] == [c.id for c in run.model_calls]
    for timing, call in zip(timings, run.model_calls, strict=True):
        assert (timing.span_id, timing.step_id, timing.model) == (
            call.span_id,
            call.step_id,
            call.model,
        )
        assert (timing.latency_s, timing.ttft_s, timing.cost_usd) == (
            call.latency_s,
            call.ttft_s,
            call.cost_usd,
        )
        expected = tuple(c.offset_s for c in call.chunks) if call.streamed else ()
        assert timing.chunk_offsets == pytest.approx(expected)
        assert timing.failed is False
    assert any(t.streamed and len(t.chunk_offsets) > 3 for t in timings)
