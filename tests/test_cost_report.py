"""CostReporter and `workbench report cost`: daily cost by model, pipeline and user, and trends."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import openai
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

import workbench
from workbench.cli import cli
from workbench.cli._options import money_rounded
from workbench.exceptions import ConfigError, StoreError
from workbench.monitoring import CostReporter
from workbench.monitoring.cost._cost_report import STABLE_PERCENT, trend
from workbench.store import Store
from workbench.testing import ModelServer

PRICES = (
    "cost_tracking:\n  providers:\n    openai:\n      models:\n"
    "        gpt-4o-mini: {input_cost_per_1k: 1.0, output_cost_per_1k: 1.0}\n"
    "        gpt-4o: {input_cost_per_1k: 2.0, output_cost_per_1k: 2.0}\n"
)


def _ask(server: ModelServer, model: str) -> None:
    with openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0) as client:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])


def _past_call(store: Store, when: datetime, cost: float, *, user: str = "carol") -> None:
    """A priced call recorded at ``when``, written into the store's own tables (the ledger's
    trigger does the rest), as a recorder of that day would have."""
    execution_id = f"exec_{when.timestamp():.0f}_{cost}"
    conn = sqlite3.connect(store.path)
    with conn:
        conn.execute(
            "INSERT INTO executions (id, pipeline_id, status, user_id, started_at) "
            "VALUES (?, 'nightly', 'completed', ?, ?)",
            (execution_id, user, when.timestamp()),
        )
        conn.execute(
            "INSERT INTO model_calls (id, execution_id, provider, model, status_code, "
            "cost_usd, input_tokens, output_tokens, started_at) "
            "VALUES (?, ?, 'openai', 'gpt-4o', 200, ?, 10, 10, ?)",
            (f"call_{execution_id}", execution_id, cost, when.timestamp()),
        )
    conn.close()


@pytest.fixture
def recorded(tmp_path: Path, store: Store, model_server: ModelServer) -> Store:
    """Today: two pipelines, two users and a run without one, two priced models, one unpriced."""
    return _record_today(tmp_path, store, model_server)


def _record_today(tmp_path: Path, store: Store, model_server: ModelServer) -> Store:
    (tmp_path / "workbench.yaml").write_text(PRICES)
    with workbench.record("research", inputs={}, store=store, user_id="alice"):
        _ask(model_server, "gpt-4o-mini")
        _ask(model_server, "gpt-4o")
    with workbench.record("summarise", inputs={}, store=store, user_id="bob"):
        _ask(model_server, "gpt-4o-mini")
    with workbench.record("summarise", inputs={}, store=store):
        _ask(model_server, "llama-local-7b")
    store.flush()
    return store


def test_daily_report_splits_the_day_by_model_pipeline_and_user(
    tmp_path: Path, any_store: Store, model_server: ModelServer
) -> None:
    """Totals and splits equal the recorded calls' costs; the unpriced call is counted apart
    (on both backends; a reporter opened by the store's location reads the same, and names
    the store without a password)."""
    recorded = _record_today(tmp_path, any_store, model_server)
    calls = [
        call
        for execution in recorded.list_executions(limit=None)
        for call in recorded.get_execution(execution.id).model_calls
    ]
    report = CostReporter(recorded).get_daily_report()
    assert report.date == datetime.now(UTC).date() and report.timezone == "UTC"
    assert report.total_cost == pytest.approx(sum(c.cost_usd or 0 for c in calls))
    assert report.calls == 4 and report.unpriced_calls == 1
    assert report.cost_by_model == pytest.approx(
        {"gpt-4o": 0.012, "gpt-4o-mini": 0.012, "llama-local-7b": 0.0}
    )
    assert report.cost_by_pipeline == pytest.approx({"research": 0.018, "summarise": 0.006})
    assert report.cost_by_user == pytest.approx({"alice": 0.018, "bob": 0.006, "(no user)": 0.0})
    assert list(report.cost_by_pipeline) == ["research", "summarise"]  # dearest first
    assert report.input_tokens == sum(c.input_tokens or 0 for c in calls)
    assert report.to_json()["cost_by_model"]["gpt-4o"] == pytest.approx(0.012)
    by_location = CostReporter(recorded.location)
    assert by_location.get_daily_report() == report
    assert str(by_location.path) == str(recorded.path)  # a URL's password masked


def test_another_day_is_empty_and_a_bad_date_is_refused(recorded: Store) -> None:
    """A day without calls reports zero; a date that is not YYYY-MM-DD is a ConfigError."""
    reporter = CostReporter(recorded.path)
    empty = reporter.get_daily_report(date="2001-02-03")
    assert empty.total_cost == 0 and empty.calls == 0 and empty.cost_by_model == {}
    assert reporter.get_daily_report(date(2001, 2, 3)) == empty
    with pytest.raises(ConfigError, match="YYYY-MM-DD"):
        reporter.get_daily_report(date="yesterday")


def test_trends_average_and_direction(store: Store) -> None:
    """Rising daily costs read as increasing with a positive percentage; days without calls
    count as zero in the average."""
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    for days_ago, cost in ((4, 1.0), (3, 2.0), (2, 3.0), (1, 4.0)):
        _past_call(store, today - timedelta(days=days_ago), cost)
    trends = CostReporter(store).get_cost_trends(days=5, end=(today - timedelta(days=1)).date())
    assert trends.days == 5 and len(trends.daily_costs) == 5
    assert list(trends.daily_costs.values()) == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert trends.avg_daily_cost == pytest.approx(2.0)
    assert trends.trend_direction == "increasing" and trends.trend_percentage == pytest.approx(200)
    falling = CostReporter(store).get_cost_trends(days=3, end=today.date())
    assert list(falling.daily_costs.values()) == [3.0, 4.0, 0.0]
    with pytest.raises(ConfigError, match="days must be"):
        CostReporter(store).get_cost_trends(days=0)


def test_days_are_those_of_the_configured_time_zone(tmp_path: Path, store: Store) -> None:
    """A call at 23:30 UTC belongs to the next day in Tokyo (cost_tracking.timezone)."""
    late = datetime(2024, 1, 15, 23, 30, tzinfo=UTC)
    _past_call(store, late, 0.5)
    assert CostReporter(store).get_daily_report("2024-01-15").total_cost == 0.5
    (tmp_path / "workbench.yaml").write_text("cost_tracking: {timezone: Asia/Tokyo}\n")
    tokyo = CostReporter(store)
    assert tokyo.get_daily_report("2024-01-15").total_cost == 0
    assert tokyo.get_daily_report("2024-01-16").total_cost == 0.5
    assert CostReporter(store, timezone="UTC").get_daily_report("2024-01-15").total_cost == 0.5


def test_async_variants_give_the_same_reports(recorded: Store) -> None:
    """await aget_daily_report()/aget_cost_trends() equal their synchronous twins."""
    reporter = CostReporter(recorded)

    async def both() -> tuple[object, object]:
        return await reporter.aget_daily_report(), await reporter.aget_cost_trends(days=2)

    daily, trends = asyncio.run(both())
    assert daily == reporter.get_daily_report()
    assert trends == reporter.get_cost_trends(days=2)


def test_a_missing_store_is_an_error_not_a_new_file(tmp_path: Path) -> None:
    """CostReporter on a path with no store says so instead of creating one."""
    with pytest.raises(StoreError, match="no store at"):
        CostReporter(tmp_path / "nowhere.db")
    assert not (tmp_path / "nowhere.db").exists()


_COST = st.one_of(st.just(0.0), st.floats(min_value=1e-6, max_value=1e4))


@given(st.lists(_COST, min_size=2, max_size=40))
def test_trend_properties(costs: list[float]) -> None:
    """Property: reversing the days negates the trend; scaling costs keeps it; a constant
    series is stable at 0%."""
    direction, percentage = trend(costs)
    back_direction, back_percentage = trend(costs[::-1])
    assert back_percentage == pytest.approx(-percentage, rel=1e-6, abs=1e-6)
    if abs(percentage) >= STABLE_PERCENT + 1e-6:
        assert {direction, back_direction} == {"increasing", "decreasing"}
    assert trend([c * 3 for c in costs])[1] == pytest.approx(percentage, rel=1e-6, abs=1e-6)
    assert trend([costs[0]] * len(costs)) == ("stable", pytest.approx(0.0, abs=1e-9))


# -- the CLI -------------------------------------------------------------------------------------


def test_report_cost_json_matches_the_library(recorded: Store) -> None:
    """`workbench report cost --json --days 2` prints the daily report (money rounded to 10
    places, as every --json) and the trends."""
    result = CliRunner().invoke(
        cli, ["report", "cost", "--json", "--days", "2", "--db", str(recorded.path)]
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    reporter = CostReporter(recorded)
    assert printed["daily"] == money_rounded(reporter.get_daily_report().to_json())
    assert printed["trends"]["days"] == 2
    assert printed["trends"]["total_cost"] == pytest.approx(reporter.get_daily_report().total_cost)


def test_report_cost_tables(recorded: Store) -> None:
    """The table output names the day, the splits and the unpriced calls."""
    result = CliRunner().invoke(cli, ["report", "cost", "--days", "3", "--db", str(recorded.path)])
    assert result.exit_code == 0, result.output
    for text in ("By model", "By pipeline", "By user", "alice", "no known price", "Last 3 days"):
        assert text in result.stdout


def test_report_cost_bad_input_is_one_clear_line(tmp_path: Path) -> None:
    """A bad --date is a usage error (exit 2); a missing store one error line (exit 1)."""
    runner = CliRunner()
    bad = runner.invoke(cli, ["report", "cost", "--date", "15/01/2024"])
    assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.stderr
    missing = runner.invoke(cli, ["report", "cost", "--db", str(tmp_path / "none.db")])
    assert missing.exit_code == 2
    assert missing.stderr.startswith("error: no store at")


def test_calls_answered_from_a_recording_cost_nothing(
    store: Store, model_server: ModelServer
) -> None:
    """A call a test's recording answers (the pytest plugin's cassette) is stored as replayed
    and left out of the day's cost, though its execution is no replay."""
    from workbench.testing._cassette import Cassette, load_recording

    with workbench.record("live", inputs={}, store=store) as live:
        _ask(model_server, "gpt-4o-mini")
    recording = load_recording(store, live.id)
    with workbench.record("answered", inputs={}, store=store) as answered:
        answered.interceptor = Cassette(recording, on_miss="refuse", why="a test")
        _ask(model_server, "gpt-4o-mini")
    (call,) = answered.execution().model_calls
    assert call.replayed and call.status_code == 200 and call.cost_usd
    assert not live.execution().model_calls[0].replayed
    report = CostReporter(store).get_daily_report()
    assert report.calls == 1 and report.total_cost == pytest.approx(call.cost_usd)


def test_a_store_from_before_the_replayed_column_gains_it(tmp_path: Path) -> None:
    """Opening a store whose calls table lacks 'replayed' adds it and the trigger that uses it."""
    path = tmp_path / "old.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.executescript(
        "DROP TRIGGER cost_ledger_on_call; ALTER TABLE model_calls DROP COLUMN replayed;"
    )
    conn.close()
    Store(path).close()
    conn = sqlite3.connect(path)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(model_calls)")}
    (trigger,) = conn.execute(
        "SELECT sql FROM sqlite_master WHERE name = 'cost_ledger_on_call'"
    ).fetchone()
    conn.close()
    assert "replayed" in columns and "NEW.replayed IS NOT 1" in trigger
