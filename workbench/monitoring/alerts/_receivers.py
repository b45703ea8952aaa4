"""Alert receivers: Slack-compatible webhooks, email over SMTP, PagerDuty events, the log.

Owns turning one alert into one message for one receiver of the ``alerting`` section, and
sending it. A failed delivery is logged and returned as a :class:`Delivery` with its error —
never raised, since one unreachable receiver must not keep an alert from the others. Values of
the form ``{{ env.NAME }}`` (the documentation's way to keep secrets out of the file) are read
from the environment when the alert is sent.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import smtplib
import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

import httpx

from workbench.exceptions import ConfigError
from workbench.redaction import scrub_output, scrub_text

if TYPE_CHECKING:
    from workbench.config import AlertingConfig, ReceiverConfig
    from workbench.monitoring.alerts._alerts import Alert

__all__ = ["Delivery", "deliver", "slack_payload"]

log = logging.getLogger("workbench.alerts")

_PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
_COLOURS = {"critical": "danger", "high": "danger", "warning": "warning", "info": "good"}
_PAGERDUTY_SEVERITY = {"critical": "critical", "high": "error", "warning": "warning"}
_ENV = re.compile(r"\{\{\s*env\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(frozen=True, slots=True)
class Delivery:
    """What happened when ``alert`` was sent to ``receiver``: ``ok``, or ``error`` says why not."""

    receiver: str
    alert: str
    ok: bool
    error: str | None = None


def _env(value: str | None, receiver: str, key: str) -> str | None:
    if value is None:
        return None

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        found = os.environ.get(name)
        if found is None:
            raise ConfigError(
                f"alerting.receivers.{receiver}.{key} reads the environment variable {name}, "
                f"which is not set; set it, or write the value into workbench.yaml"
            )
        return found

    return _ENV.sub(lookup, value)


def _headline(alert: Alert) -> str:
    return f"[{alert.state.upper()}:{alert.severity}] {alert.name}: {alert.summary}"


def slack_payload(alert: Alert, channel: str | None = None) -> dict[str, Any]:
    """A Slack incoming-webhook message (``text`` plus one attachment with the details)."""
    colour = "good" if alert.state == "resolved" else _COLOURS.get(alert.severity, "warning")
    fields = [
        {"title": "severity", "value": alert.severity, "short": True},
        {"title": "value", "value": f"{alert.value:g}", "short": True},
        *(
            {"title": key, "value": value, "short": True}
            for key, value in alert.labels.items()
            if key not in ("alertname", "severity")
        ),
    ]
    payload: dict[str, Any] = {
        "text": _headline(alert),
        "attachments": [
            {
                "color": colour,
                "title": alert.summary,
                "text": alert.annotations.get("description", alert.expr),
                "fields": fields,
                "footer": f"workbench · {alert.expr}",
                "ts": int(alert.starts_at),
            }
        ],
    }
    if channel:
        payload["channel"] = channel
    return payload


def _post(url: str, payload: dict[str, Any], timeout: float) -> None:
    response = httpx.post(url, json=payload, timeout=timeout)
    if response.status_code >= 300:
        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")


def _email(alert: Alert, name: str, receiver: ReceiverConfig, alerting: AlertingConfig) -> None:
    smtp = alerting.smtp
    message = EmailMessage()
    message["Subject"] = _headline(alert)
    message["From"] = receiver.sender or smtp.sender
    message["To"] = ", ".join(receiver.to)
    lines = [
        alert.summary,
        "",
        alert.annotations.get("description", ""),
        "",
        f"state: {alert.state}",
        f"value: {alert.value:g}",
        f"expr: {alert.expr}",
        *(f"{key}: {value}" for key, value in alert.labels.items()),
        f"since: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(alert.starts_at))}",
    ]
    message.set_content("\n".join(lines))
    host = receiver.smtp_host or smtp.host
    port = receiver.smtp_port or smtp.port
    username = _env(receiver.username or smtp.username, name, "username")
    password = _env(receiver.password or smtp.password, name, "password")
    with smtplib.SMTP(host, port, timeout=receiver.timeout) as client:
        if receiver.starttls or smtp.starttls:
            client.starttls()
        if username and password:
            client.login(username, password)
        client.send_message(message)


def _pagerduty(alert: Alert, name: str, receiver: ReceiverConfig) -> None:
    key = _env(receiver.routing_key, name, "routing_key")
    payload = {
        "routing_key": key,
        "event_action": "resolve" if alert.state == "resolved" else "trigger",
        "dedup_key": f"workbench-{alert.name}",
        "payload": {
            "summary": _headline(alert),
            "source": "workbench",
            "severity": _PAGERDUTY_SEVERITY.get(alert.severity, "info"),
            "custom_details": {**alert.labels, **alert.annotations, "value": alert.value},
        },
    }
    _post(_env(receiver.url, name, "url") or _PAGERDUTY_URL, payload, receiver.timeout)


def _scrubbed(alert: Alert) -> Alert:
    return dataclasses.replace(
        alert,
        name=scrub_text(alert.name),
        labels=scrub_output(alert.labels),
        annotations=scrub_output(alert.annotations),
        expr=scrub_text(alert.expr),
    )


def deliver(
    alert: Alert, name: str, receiver: ReceiverConfig | None, alerting: AlertingConfig
) -> Delivery:
    """Send ``alert`` to the receiver called ``name`` (``None``: the log).

    What the message says is scrubbed as the store is (a rule's text or a label may hold a
    credential); what the receiver needs to be reached — its URL, routing key, password — is not.
    """
    alert = _scrubbed(alert)
    kind = "log" if receiver is None else receiver.kind()
    try:
        if receiver is None or kind == "log":
            level = logging.WARNING if receiver is None else logging.getLevelName(receiver.level)
            if alert.state == "resolved":
                level = logging.INFO
            log.log(
                level,
                "%s",
                _headline(alert),
                extra={"alert": alert.name, "alert_value": alert.value, "labels": alert.labels},
            )
        elif kind == "webhook":
            url = _env(receiver.webhook or receiver.url, name, "webhook")
            if not url:
                raise ConfigError(f"alerting.receivers.{name} needs a webhook URL")
            _post(url, slack_payload(alert, receiver.channel), receiver.timeout)
        elif kind == "email":
            _email(alert, name, receiver, alerting)
        else:
            _pagerduty(alert, name, receiver)
    except Exception as exc:
        log.error("workbench could not send alert %s to receiver %s: %s", alert.name, name, exc)
        return Delivery(name, alert.name, False, f"{type(exc).__name__}: {exc}")
    return Delivery(name, alert.name, True)
