"""Alert rules: a Prometheus rule file promtool accepts, in-process evaluation and routing.

Receivers are real servers on 127.0.0.1 started here: an ``http.server`` for the
Slack-compatible webhook and an aiosmtpd SMTP sink for email.
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

import workbench
from workbench.cli import cli
from workbench.config import WorkbenchConfig
from workbench.monitoring.alerts._alerts import (
    AlertManager,
    export_rules,
    parse_duration,
    parse_expr,
)
from workbench.store import Store

DOC_RULES: list[dict[str, Any]] = [
    {
        "name": "high_error_rate",
        "expr": "rate(pipeline_errors_total[5m]) > 0.1",
        "for": "5m",
        "severity": "critical",
        "annotations": {
            "summary": "High pipeline error rate",
            "description": "Error rate is {{ $value | humanizePercentage }}",
        },
    },
    {
        "name": "cost_spike",
        "expr": "increase(model_cost_dollars[1h]) > 50",
        "severity": "warning",
        "annotations": {
            "summary": "Unusual cost spike detected",
            "description": "Cost increased by ${{ $value }} in last hour",
        },
    },
    {
        "name": "memory_pressure",
        "expr": "memory_usage_percent > 90",
        "for": "10m",
        "severity": "warning",
        "annotations": {"summary": "High memory usage", "description": "at {{ $value }}%"},
    },
    {
        "name": "sla_violation",
        "expr": "histogram_quantile(0.95, pipeline_duration_seconds) > 300",
        "severity": "high",
        "annotations": {"summary": "95th percentile latency exceeds SLA"},
    },
]


class WebhookSink:
    """A Slack-style incoming webhook: keeps every JSON body it is posted."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                sink.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/critical"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SmtpSink:
    """An SMTP server (aiosmtpd) that keeps every message it accepts."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[Any] = []
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                sink.messages.append(envelope)
                return "250 OK"

        # The controller connects to its own port to see that it is up: port 0 cannot work.
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()


@pytest.fixture
def webhook() -> Iterator[WebhookSink]:
    sink = WebhookSink()
    yield sink
    sink.close()


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    yield sink
    sink.close()


def test_exported_rules_pass_promtool(tmp_path: Path) -> None:
    """The documentation's rules, exported, are a rule file `promtool check rules` accepts."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package `prometheus`; .ci/run installs it)")
    config = WorkbenchConfig.model_validate({"alerts": {"rules": DOC_RULES}})
    path = tmp_path / "workbench-rules.yml"
    path.write_text(export_rules(config))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 4 rules found" in result.stdout + result.stderr
    document = yaml.safe_load(path.read_text())
    first = document["groups"][0]["rules"][0]
    assert first == {
        "alert": "high_error_rate",
        "expr": "rate(pipeline_errors_total[5m]) > 0.1",
        "for": "5m",
        "labels": {"severity": "critical"},
        "annotations": DOC_RULES[0]["annotations"],
    }


def test_cli_export_writes_the_rule_file(tmp_path: Path) -> None:
    """`workbench alerts export --output F` writes the same file export_rules returns."""
    (tmp_path / "workbench.yaml").write_text(
        yaml.safe_dump({"alerts": {"rules": DOC_RULES}}, sort_keys=False)
    )
    result = CliRunner().invoke(cli, ["alerts", "export", "--output", "out/rules.yml"])
    assert result.exit_code == 0, result.output
    written = (tmp_path / "out" / "rules.yml").read_text()
    assert written == export_rules(WorkbenchConfig.model_validate({"alerts": {"rules": DOC_RULES}}))
    printed = CliRunner().invoke(cli, ["alerts", "export"])
    assert printed.output == written


def test_cli_export_json_is_the_rule_file_as_json(tmp_path: Path) -> None:
    """`workbench alerts export --json` prints the same groups and rules as JSON."""
    (tmp_path / "workbench.yaml").write_text(
        yaml.safe_dump({"alerts": {"rules": DOC_RULES}}, sort_keys=False)
    )
    result = CliRunner().invoke(cli, ["alerts", "export", "--json"])
    assert result.exit_code == 0, result.output
    expected = yaml.safe_load(
        export_rules(WorkbenchConfig.model_validate({"alerts": {"rules": DOC_RULES}}))
    )
    assert json.loads(result.output) == expected and len(expected["groups"][0]["rules"]) == 4


def _failing_runs(store: Store, pipeline: str, failed: int, ok: int) -> None:
    for _ in range(failed):
        with pytest.raises(RuntimeError), workbench.record(pipeline, inputs={}, store=store):
            raise RuntimeError("upstream timeout")
    for _ in range(ok):
        with workbench.record(pipeline, inputs={}, store=store):
            pass


def test_rule_fires_after_for_and_routes_to_webhook_and_email(
    store: Store, webhook: WebhookSink, smtp: SmtpSink
) -> None:
    """A critical rule goes pending, fires once its `for:` has passed, and reaches the
    Slack-compatible webhook and the email receiver its route names; then it resolves."""
    _failing_runs(store, "research_assistant", failed=3, ok=1)
    config = WorkbenchConfig.model_validate(
        {
            "alerts": {
                "rules": [
                    {
                        "name": "high_error_rate",
                        "expr": 'pipeline_error_rate{pipeline="research_assistant"} > 0.5',
                        "for": "1m",
                        "severity": "critical",
                        "annotations": {
                            "summary": "High pipeline error rate",
                            "description": "Error rate is {{ $value | humanizePercentage }}",
                        },
                    }
                ]
            },
            "alerting": {
                "smtp": {"host": "127.0.0.1", "port": smtp.port, "from": "wb@localhost"},
                "routes": [
                    {"match": {"severity": "critical"}, "receivers": ["slack-critical", "email"]}
                ],
                "receivers": {
                    "slack-critical": {"webhook": webhook.url, "channel": "#critical-alerts"},
                    "email": {"to": ["oncall@example.com"]},
                },
            },
        }
    )
    manager = AlertManager(config, store=store)
    now = time.time()
    assert manager.check(now) == []
    assert manager.states["high_error_rate"].state == "pending"
    deliveries = manager.check(now + 61)
    assert [(d.receiver, d.ok) for d in deliveries] == [("slack-critical", True), ("email", True)]
    (body,) = webhook.bodies
    assert body["channel"] == "#critical-alerts"
    assert body["text"].startswith("[FIRING:critical] high_error_rate")
    assert body["attachments"][0]["text"] == "Error rate is 75%"
    (envelope,) = smtp.messages
    assert envelope.rcpt_tos == ["oncall@example.com"]
    assert b"Subject: [FIRING:critical] high_error_rate" in envelope.content
    assert manager.check(now + 62) == []  # still firing: no repeat notification
    resolved = manager.check(now + 3600)  # the failures left the look-back window
    assert [d.receiver for d in resolved] == ["slack-critical", "email"]
    assert webhook.bodies[-1]["text"].startswith("[RESOLVED:critical]")


def test_unrouted_alerts_go_to_the_log_and_labels_route(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A rule with no matching route is logged; route match uses the rule's labels."""
    _failing_runs(store, "p", failed=2, ok=0)
    config = WorkbenchConfig.model_validate(
        {
            "alerts": [
                {"name": "errors", "expr": "increase(pipeline_errors_total[5m]) >= 2"},
                {
                    "name": "cost",
                    "expr": "increase(pipeline_executions_total[5m]) > 1",
                    "labels": {"alert_type": "cost"},
                },
            ],
            "alerting": {
                "routes": [{"match": {"alert_type": "cost"}, "receivers": ["finance-log"]}],
                "receivers": {"finance-log": {"type": "log", "level": "ERROR"}},
            },
        }
    )
    with caplog.at_level(logging.INFO, logger="workbench.alerts"):
        deliveries = AlertManager(config, store=store).check()
    assert sorted((d.receiver, d.alert) for d in deliveries) == [
        ("finance-log", "cost"),
        ("log", "errors"),
    ]
    levels = {r.getMessage().split()[1].rstrip(":"): r.levelname for r in caplog.records}
    assert levels == {"errors": "WARNING", "cost": "ERROR"}


def test_quantile_and_ratio_rules_read_the_store(any_store: Store) -> None:
    """histogram_quantile over step durations and a ratio of two rates are evaluated (on
    both backends)."""
    store = any_store
    for _ in range(4):
        with workbench.record("p", inputs={}, store=store), workbench.step("slow"):
            time.sleep(0.02)
    config = WorkbenchConfig.model_validate(
        {
            "alerts": [
                {
                    "name": "slow_task",
                    "expr": "histogram_quantile(0.95, rate(task_duration_seconds_bucket"
                    '{task="slow"}[5m])) > 0.01',
                },
                {
                    "name": "failure_ratio",
                    "expr": "rate(pipeline_errors_total[5m]) / rate(pipeline_executions_total[5m])"
                    " > 0.5",
                },
                {"name": "weird", "expr": "absent(up) == 1"},
            ]
        }
    )
    manager = AlertManager(config, store=store)
    fired = manager.evaluate()
    assert [a.name for a in fired] == ["slow_task"]
    assert manager.states["slow_task"].value is not None
    assert manager.states["slow_task"].value >= 0.02
    assert manager.states["failure_ratio"].state == "inactive"
    assert manager.states["weird"].state == "not_evaluable"
    assert "exported only" in (manager.states["weird"].reason or "")


def test_failed_delivery_is_reported_not_raised(store: Store) -> None:
    """A receiver whose secret is missing from the environment fails alone, with the reason."""
    _failing_runs(store, "p", failed=1, ok=0)
    config = WorkbenchConfig.model_validate(
        {
            "alerts": [{"name": "errors", "expr": "increase(pipeline_errors_total[5m]) > 0"}],
            "alerting": {
                "routes": [{"match": {}, "receivers": ["pagerduty", "log-it"]}],
                "receivers": {
                    "pagerduty": {"routing_key": "{{ env.WB_TEST_PAGERDUTY_KEY }}"},
                    "log-it": {"type": "log"},
                },
            },
        }
    )
    deliveries = AlertManager(config, store=store).check()
    by_name = {d.receiver: d for d in deliveries}
    assert not by_name["pagerduty"].ok and "WB_TEST_PAGERDUTY_KEY" in (
        by_name["pagerduty"].error or ""
    )
    assert by_name["log-it"].ok


def test_alerting_config_refuses_unknown_receivers() -> None:
    """A route naming a receiver that is not defined is a clear configuration error."""
    with pytest.raises(ValueError, match="slack-platform"):
        WorkbenchConfig.model_validate(
            {"alerting": {"routes": [{"match": {}, "receivers": ["slack-platform"]}]}}
        )
    with pytest.raises(ValueError, match="duration"):
        WorkbenchConfig.model_validate({"alerts": [{"name": "a", "expr": "x > 1", "for": "5 m"}]})


@given(
    metric=st.sampled_from(["pipeline_errors_total", "model_cost_dollars", "model_requests_total"]),
    fn=st.sampled_from(["rate", "increase"]),
    minutes=st.integers(1, 600),
    op=st.sampled_from([">", ">=", "<", "<=", "==", "!="]),
    threshold=st.floats(0, 1e6, allow_nan=False).map(lambda x: round(x, 3)),
)
def test_threshold_forms_parse(
    metric: str, fn: str, minutes: int, op: str, threshold: float
) -> None:
    """Every `fn(metric[Nm]) op number` parses to that function, window, operator and number."""
    condition = parse_expr(f"{fn}({metric}[{minutes}m]) {op} {threshold}")
    assert condition.numerator.fn == fn
    assert condition.numerator.selector.window_s == minutes * 60
    assert (condition.op, condition.threshold) == (op, threshold)


def test_durations() -> None:
    """Prometheus durations read as seconds; anything else is refused by name."""
    assert parse_duration("1h30m") == 5400
    assert parse_duration("250ms") == 0.25
    with pytest.raises(workbench.ConfigError, match="5 minutes"):
        parse_duration("5 minutes")


def test_budget_alerts_reach_the_routed_receivers_once(webhook: WebhookSink) -> None:
    """A cost budget's alert is routed by its labels (alert_type: cost) to the webhook,
    once per budget, action and period however often the budget reports it."""
    from workbench.monitoring.alerts._alerts import BudgetAlertRouter
    from workbench.monitoring.cost._budget import BudgetAlert

    config = WorkbenchConfig.model_validate(
        {
            "alerting": {
                "routes": [{"match": {"alert_type": "cost"}, "receivers": ["slack-cost"]}],
                "receivers": {"slack-cost": {"webhook": webhook.url}},
            }
        }
    )
    router = BudgetAlertRouter(config)
    try:
        alert = BudgetAlert(
            budget="daily",
            action="warn",
            threshold=0.8,
            spent_usd=85.0,
            limit_usd=100.0,
            user_id=None,
            execution_id=None,
            pipeline_id="p",
            period_start=0.0,
        )
        router._on_alert(alert)
        router._on_alert(alert)
        router.join()
    finally:
        router.stop_listening()
    assert [(d.receiver, d.ok) for d in router.deliveries] == [("slack-cost", True)]
    (body,) = webhook.bodies
    assert body["text"].startswith("[FIRING:warning] budget_daily_warn")
    assert "85%" in body["attachments"][0]["text"]


def test_cli_check_reports_rule_states(store: Store) -> None:
    """`workbench alerts check --json` evaluates against --db and reports each rule's state."""
    _failing_runs(store, "p", failed=1, ok=0)
    rules = [
        {"name": "errors", "expr": "increase(pipeline_errors_total[5m]) > 0"},
        {"name": "quiet", "expr": "increase(model_requests_total[5m]) > 0"},
        {"name": "exotic", "expr": "absent(up) == 1"},
    ]
    Path("workbench.yaml").write_text(yaml.safe_dump({"alerts": {"rules": rules}}))
    result = CliRunner().invoke(cli, ["alerts", "check", "--json", "--db", str(store.path)])
    assert result.exit_code == 0, result.output
    states = {r["name"]: r["state"] for r in json.loads(result.stdout)["rules"]}
    assert states == {"errors": "firing", "quiet": "inactive", "exotic": "not_evaluable"}
