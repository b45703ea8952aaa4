"""Cost budgets act before model calls are sent: warn, throttle with backoff, stop, per user,
across processes, with replays free."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import openai
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

import workbench
from workbench.debugging import RequestReplay
from workbench.exceptions import BudgetExceededError, ConfigError
from workbench.monitoring import BudgetAlert, on_budget_alert
from workbench.monitoring.cost._budget import Ledger, period_bounds
from workbench.store import Store, _tables
from workbench.testing import ModelServer, fresh_store

#: With the price below, the test server's answer to "hi" (1 input, 5 output tokens) costs this.
CALL_COST = 0.006
PRICES = (
    "  providers:\n    openai:\n      models:\n"
    "        gpt-4o-mini: {input_cost_per_1k: 1.0, output_cost_per_1k: 1.0}\n"
)


def _configure(folder: Path, budgets: str, alerts: str = "") -> None:
    text = f"cost_tracking:\n{PRICES}  budgets: {{{budgets}}}\n"
    if alerts:
        text += f"  alerts:\n{alerts}"
    (folder / "workbench.yaml").write_text(text)


def _ask(server: ModelServer) -> str:
    with openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0) as client:
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    return reply.choices[0].message.content or ""


@workbench.pipeline
def ask_once(base_url: str) -> str:
    """A one-call pipeline (module level, so replay can import it)."""
    with openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0) as client:
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    return reply.choices[0].message.content or ""


@pytest.fixture
def alerts() -> Any:
    seen: list[BudgetAlert] = []
    stop = on_budget_alert(seen.append)
    yield seen
    stop()


def test_stop_refuses_the_call_before_it_is_sent(
    tmp_path: Path, store: Store, model_server: ModelServer
) -> None:
    """Past daily_limit the next call raises BudgetExceededError, never reaches the server,
    and is recorded with the reason; the calls before it were all sent."""
    _configure(tmp_path, "daily_limit: 0.029")
    before = model_server.request_count
    sent = 0
    with pytest.raises(BudgetExceededError) as raised:
        with workbench.record("budgeted", inputs={}, store=store) as run:
            for _ in range(20):
                _ask(model_server)
                sent += 1
    assert sent == 5  # 5 x $0.006 = $0.030 >= $0.029: the sixth is refused
    assert model_server.request_count - before == 5
    error = raised.value
    assert (error.budget, error.limit_usd) == ("daily", 0.029)
    assert error.spent_usd == pytest.approx(5 * CALL_COST)
    assert "daily budget is spent" in str(error) and "daily_limit" in str(error)
    execution = run.execution()
    assert execution.status == "failed" and execution.error is not None
    assert execution.error.type.endswith("BudgetExceededError")
    refused = execution.model_calls[-1]
    assert refused.status_code is None and refused.error is not None
    assert "daily budget is spent" in refused.error.message
    assert [log.logger for log in execution.logs if "budget alert" in log.message] == [
        "workbench.budget"
    ]


def test_warn_then_throttle_with_backoff_then_stop(
    tmp_path: Path,
    store: Store,
    model_server: ModelServer,
    alerts: list[BudgetAlert],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The documented ladder: a warning once, throttled calls waiting longer each time, then a
    stop; each a log record, an alert event and a log of the execution."""
    _configure(
        tmp_path,
        "daily_limit: 0.0599",
        "    - {threshold: 0.5, action: warn}\n"
        "    - {threshold: 0.8, action: throttle, delay_s: 0.05, backoff_multiplier: 2}\n"
        "    - {threshold: 1.0, action: stop}\n",
    )
    started = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="workbench.budget"):
        with pytest.raises(BudgetExceededError):
            with workbench.record("laddered", inputs={}, store=store) as run:
                for _ in range(20):
                    _ask(model_server)
    elapsed = time.perf_counter() - started
    ladder = [(a.action, a.delay_s) for a in alerts]
    assert ladder == [("warn", None), ("throttle", 0.05), ("throttle", 0.1), ("stop", None)]
    assert elapsed >= 0.15  # the throttled calls did wait
    assert all(a.labels["alert_type"] == "cost" and a.budget == "daily" for a in alerts)
    assert alerts[0].execution_id == run.id and alerts[0].ratio >= 0.5
    records = [r for r in caplog.records if r.name == "workbench.budget"]
    assert [r.budget_alert["action"] for r in records] == ["warn", "throttle", "throttle", "stop"]
    kept = [log for log in run.execution().logs if log.logger == "workbench.budget"]
    assert [log.level for log in kept] == ["WARNING", "WARNING", "WARNING", "ERROR"]
    assert len(run.execution().model_calls) == 11  # 10 sent, the 11th refused


def test_per_user_budget_stops_one_user_only(
    tmp_path: Path, store: Store, model_server: ModelServer
) -> None:
    """per_user_limit counts each user's spend apart; runs without a user are not limited by it."""
    _configure(tmp_path, "per_user_limit: 0.011")
    for _ in range(2):
        with workbench.record("shared", inputs={}, store=store, user_id="alice"):
            _ask(model_server)
    with pytest.raises(BudgetExceededError) as raised:
        with workbench.record("shared", inputs={}, store=store, user_id="alice"):
            _ask(model_server)
    assert raised.value.budget == "per_user" and raised.value.user_id == "alice"
    assert "of user 'alice'" in str(raised.value)
    with workbench.record("shared", inputs={}, store=store, user_id="bob"):
        _ask(model_server)
    with workbench.record("shared", inputs={}, store=store):
        _ask(model_server)


def test_monthly_budget_counts_the_whole_month(
    tmp_path: Path, store: Store, model_server: ModelServer
) -> None:
    """monthly_limit stops calls once the month's spend reaches it."""
    _configure(tmp_path, "monthly_limit: 0.011")
    with workbench.record("monthly", inputs={}, store=store):
        _ask(model_server)
        _ask(model_server)
        with pytest.raises(BudgetExceededError, match=r"monthly budget is spent.*next month"):
            _ask(model_server)


def test_replays_cost_nothing_and_are_not_stopped(
    tmp_path: Path, store: Store, model_server: ModelServer
) -> None:
    """A spent budget stops live calls but not a replay answered from the recording, and the
    replay adds nothing to the spend."""
    _configure(tmp_path, "")
    with workbench.record("replayable", inputs={}, store=store) as run:
        ask_once(model_server.openai_base_url)
    _configure(tmp_path, "daily_limit: 0.001")
    result = RequestReplay(store).replay_execution(run.id)
    assert result.status == "completed"
    store.flush()
    ledger = sqlite3.connect(store.path).execute("SELECT execution_id FROM cost_ledger").fetchall()
    assert ledger == [(run.id,)]
    with pytest.raises(BudgetExceededError):
        with workbench.record("live", inputs={}, store=store):
            _ask(model_server)


def test_budget_messages_show_small_amounts_with_significant_digits() -> None:
    """A budget of millionths reads `$0.0000021 spent of $0.0000025`, never `$0.0000`."""
    alert = BudgetAlert(
        budget="daily",
        action="warn",
        threshold=0.8,
        spent_usd=0.0000021,
        limit_usd=0.0000025,
        user_id=None,
        execution_id=None,
        pipeline_id=None,
        period_start=0.0,
    )
    assert "$0.0000021 spent of $0.0000025 (84%)" in alert.message
    assert "$0.0000 " not in alert.message


_WORKER = """
import os, sys, time
import openai, workbench
from workbench.exceptions import BudgetExceededError

base_url, db, go = sys.argv[1:4]
client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
sent, stopped = 0, False
with workbench.record("worker", inputs={}, store=db) as run:
    # Ready once the store is open and the observers loaded: after "go", every worker calls at
    # once (else one fast starter can spend the whole budget before the others begin).
    open(f"{go}.ready.{os.getpid()}", "w").close()
    while not os.path.exists(go):
        time.sleep(0.002)
    try:
        for _ in range(500):
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
            sent += 1
    except BudgetExceededError:
        stopped = True
print(sent, stopped)
"""


def test_eight_worker_processes_overspend_by_at_most_one_call_each(
    tmp_path: Path, any_store: Store, model_server: ModelServer
) -> None:
    """8 processes calling back to back against one daily budget (in a SQLite file, and in a
    PostgreSQL database): all are stopped, and the spend past the limit is at most one call
    per worker."""
    store = any_store
    limit = 0.29  # about 48 calls: six per worker
    _configure(tmp_path, f"daily_limit: {limit}")
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    go = tmp_path / "go"
    before = model_server.request_count
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                str(script),
                model_server.openai_base_url,
                os.fspath(store.path),  # a URL whole, password included
                str(go),
            ],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("go.ready.*"))) < len(workers):  # all imported, all waiting
        assert time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.05)
    go.touch()
    outputs = [worker.communicate(timeout=120) for worker in workers]
    assert all(w.returncode == 0 for w in workers), [err for _, err in outputs]
    results = [line.split() for line, _ in outputs]
    assert all(stopped == "True" for _, stopped in results), results
    assert sum(int(count) > 0 for count, _ in results) >= 2, results  # they did run together
    sent = sum(int(count) for count, _ in results)
    calls = _tables.table("model_calls")
    (paid,) = store._read(
        sa.select(sa.func.count(), sa.func.sum(calls.c.cost_usd)).where(calls.c.status_code == 200),
        mappings=False,
    )
    assert paid[0] == sent == model_server.request_count - before
    assert paid[1] >= limit
    assert paid[1] <= limit + 8 * CALL_COST + 1e-9, (sent, paid)


def test_an_older_store_gains_the_ledger_with_the_calls_it_holds(
    store: Store, model_server: ModelServer
) -> None:
    """A version-1 store made before the cost ledger gets it, filled, when next opened."""
    with workbench.record("old", inputs={}, store=store) as run:
        _ask(model_server)
    store.flush()
    conn = sqlite3.connect(store.path)
    conn.executescript("DROP TRIGGER cost_ledger_on_call; DROP TABLE cost_ledger;")
    conn.close()
    Store(store.path).close()
    rows = sqlite3.connect(store.path).execute("SELECT execution_id, cost_usd FROM cost_ledger")
    assert rows.fetchall() == [(run.id, run.execution().model_calls[0].cost_usd)]


def test_an_older_store_gains_the_cost_reports_covering_index_when_opened(store: Store) -> None:
    """A store made before the cost report's covering index gets it when next opened, and a
    day's calls grouped by model, pipeline and user are then read from it alone."""
    store.close()
    conn = sqlite3.connect(store.path)
    conn.execute("DROP INDEX idx_cost_ledger_report")
    conn.close()
    Store(store.path).close()
    conn = sqlite3.connect(store.path)
    try:
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT model, pipeline_id, user_id, SUM(cost_usd), COUNT(*), "
            "COUNT(cost_usd), SUM(input_tokens), SUM(output_tokens) FROM cost_ledger WHERE "
            "started_at >= 0 AND started_at < 1 GROUP BY model, pipeline_id, user_id"
        ).fetchall()
    finally:
        conn.close()
    assert any("COVERING INDEX idx_cost_ledger_report" in row[-1] for row in plan), plan


@settings(max_examples=30, deadline=None)
@given(
    batches=st.lists(
        st.lists(
            st.tuples(
                st.floats(min_value=-40 * 86400, max_value=86400),  # seconds from now
                st.sampled_from(["u1", "u2", None]),
                st.one_of(st.none(), st.floats(min_value=0, max_value=5)),
            ),
            max_size=6,
        ),
        min_size=1,
        max_size=4,
    )
)
def test_running_totals_equal_a_full_sum(batches: list[list[tuple[float, Any, Any]]]) -> None:
    """Property: after rows arrive in any batches, the ledger's incremental totals equal SUMs
    over the whole table for today, this month and a user's day."""
    tz = ZoneInfo("Europe/Paris")
    now = time.time()
    with fresh_store() as fresh:
        ledger = Ledger(str(fresh.path), tz)
        ledger.totals("u1", now)
        conn = sqlite3.connect(fresh.path, isolation_level=None)
        for batch in batches:
            conn.executemany(
                "INSERT INTO cost_ledger (started_at, user_id, cost_usd) VALUES (?, ?, ?)",
                [(now + offset, user, cost) for offset, user, cost in batch],
            )
            day, month, user = ledger.totals("u1", now)
            day_start, _, month_start = period_bounds(now, tz)

            def total(where: str, *params: Any) -> float:
                sql = f"SELECT COALESCE(SUM(cost_usd), 0) FROM cost_ledger WHERE {where}"
                return float(conn.execute(sql, params).fetchone()[0])

            assert day == pytest.approx(total("started_at >= ?", day_start))
            assert month == pytest.approx(total("started_at >= ?", month_start))
            assert user == pytest.approx(total("started_at >= ? AND user_id = 'u1'", day_start))
        conn.close()
        ledger.close()


@given(
    now=st.floats(min_value=0, max_value=4e9),
    zone=st.sampled_from(["UTC", "Europe/Paris", "Asia/Kolkata", "America/St_Johns"]),
)
def test_periods_hold_the_moment_and_start_at_local_midnight(now: float, zone: str) -> None:
    """Property: the day and month bounds hold the moment and begin at local midnight (DST and
    half-hour zones included); the month begins on the 1st."""
    tz = ZoneInfo(zone)
    day_start, day_end, month_start = period_bounds(now, tz)
    assert month_start <= day_start <= now < day_end
    for start in (day_start, day_end, month_start):
        moment = datetime.fromtimestamp(start, tz)
        assert (moment.hour, moment.minute, moment.second) == (0, 0, 0)
    assert datetime.fromtimestamp(month_start, tz).day == 1


def test_bad_budget_configuration_names_the_key(tmp_path: Path) -> None:
    """A negative limit, an unknown action or time zone is refused when the file is read."""
    from workbench.config import load_config

    (tmp_path / "workbench.yaml").write_text("cost_tracking: {budgets: {daily_limit: -1}}\n")
    with pytest.raises(ConfigError, match=r"cost_tracking\.budgets\.daily_limit"):
        load_config()
    (tmp_path / "workbench.yaml").write_text(
        "cost_tracking: {alerts: [{threshold: 0.9, action: panic}]}\n"
    )
    with pytest.raises(ConfigError, match=r"cost_tracking.alerts.0.action.*'warn', 'throttle'"):
        load_config()
    (tmp_path / "workbench.yaml").write_text("cost_tracking: {timezone: Mars/Olympus}\n")
    with pytest.raises(ConfigError, match="not a time zone"):
        load_config()


def test_the_guard_keeps_the_connections_of_a_few_stores_only(tmp_path: Path) -> None:
    """A guard that has seen many stores (a test suite's) keeps at most eight ledgers open;
    an evicted store's ledger reads its totals again when asked."""
    from workbench.monitoring.cost._budget import _MAX_LEDGERS, BudgetGuard

    guard = BudgetGuard()
    utc = ZoneInfo("UTC")
    paths = []
    for index in range(_MAX_LEDGERS + 4):
        store = Store(tmp_path / f"s{index}.db")
        store.close()
        paths.append(str(store.path))
        guard._ledger(paths[-1], utc).totals(None, time.time())
    assert len(guard._ledgers) == _MAX_LEDGERS
    assert (paths[0], "UTC") not in guard._ledgers
    assert guard._ledger(paths[0], utc).totals(None, time.time())[:2] == (0.0, 0.0)
