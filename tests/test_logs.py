"""Structured JSON logs: shape, recorder context, per-module levels, redaction, outputs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import workbench
from workbench.config import LoggingConfig, WorkbenchConfig
from workbench.exceptions import ConfigError
from workbench.monitoring.tracing._logs import (
    JsonFormatter,
    LoggingSetup,
    PiiFilter,
    SensitiveDataFilter,
    WorkbenchContextFilter,
    configure_logging,
)
from workbench.store import Store


@pytest.fixture
def installed() -> Iterator[list[LoggingSetup]]:
    setups: list[LoggingSetup] = []
    yield setups
    for setup in setups:
        setup.remove()


def _capture(setup: LoggingSetup) -> io.StringIO:
    """Point the setup's stream handler at a buffer (stdout is pytest's during a test)."""
    buffer = io.StringIO()
    stream_handler = next(h for h in setup.handlers if isinstance(h, logging.StreamHandler))
    stream_handler.setStream(buffer)
    return buffer


def _lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_json_line_carries_execution_trace_span_and_context(
    installed: list[LoggingSetup], store: Store
) -> None:
    """A record logged inside a step is one JSON line with the documented fields, the
    recorder's ids and the record's extra fields under context."""
    setup = configure_logging(LoggingConfig())
    installed.append(setup)
    buffer = _capture(setup)
    log = logging.getLogger("orchestrator.pipeline")
    with workbench.record("research_assistant", inputs={}, user_id="user_123", store=store) as run:
        with workbench.step("web_search") as step:
            log.info("Pipeline execution started", extra={"input_size": 1024, "model": "gpt-4"})
    (line,) = _lines(buffer)
    assert line["level"] == "INFO" and line["logger"] == "orchestrator.pipeline"
    assert line["message"] == "Pipeline execution started"
    assert line["timestamp"].endswith("Z") and "T" in line["timestamp"]
    assert line["execution_id"] == run.id and line["pipeline_id"] == "research_assistant"
    assert line["user_id"] == "user_123" and line["step_id"] == "web_search"
    assert line["trace_id"] == run.trace_id and line["span_id"] == step.span_id
    assert line["context"] == {"input_size": 1024, "model": "gpt-4"}


def test_exception_is_kept_and_outside_an_execution_no_ids(installed: list[LoggingSetup]) -> None:
    """Outside an execution there are no ids; logged exceptions keep their traceback."""
    setup = configure_logging(LoggingConfig())
    installed.append(setup)
    buffer = _capture(setup)
    try:
        raise KeyError("missing")
    except KeyError:
        logging.getLogger("app").exception("failed")
    (line,) = _lines(buffer)
    assert "execution_id" not in line
    assert "KeyError" in line["exception"]


def test_per_module_levels(installed: list[LoggingSetup]) -> None:
    """levels.modules lets DEBUG through for one module and only ERROR for another."""
    config = LoggingConfig.model_validate(
        {
            "levels": {
                "default": "INFO",
                "modules": {"orchestrator.pipeline": "DEBUG", "orchestrator.state": "ERROR"},
            }
        }
    )
    setup = configure_logging(config)
    installed.append(setup)
    buffer = _capture(setup)
    logging.getLogger("orchestrator.pipeline").debug("pipeline detail")
    logging.getLogger("orchestrator.state").warning("state warning")
    logging.getLogger("orchestrator.state").error("state error")
    logging.getLogger("other").debug("other detail")
    logging.getLogger("other").info("other info")
    assert [line["message"] for line in _lines(buffer)] == [
        "pipeline detail",
        "state error",
        "other info",
    ]


def test_sensitive_fields_and_pii_are_masked(installed: list[LoggingSetup]) -> None:
    """The sensitive_data filter redacts named fields (extra and in the message); the pii
    filter masks emails, phone and card numbers and API keys."""
    config = LoggingConfig.model_validate(
        {
            "filters": [
                {"type": "sensitive_data", "fields": ["password", "api_key", "token"]},
                {"type": "pii", "enabled": True},
            ]
        }
    )
    setup = configure_logging(config)
    installed.append(setup)
    buffer = _capture(setup)
    logging.getLogger("app").warning(
        "login password=%s for %s, call +44 20 7946 0958, card 4111 1111 1111 1111, key %s",
        "hunter22",
        "ann@example.com",
        "sk-proj-abcdefghijklmnopqrstuvwx",
        extra={"token": "abc123", "request": {"api_key": "k-1", "user": "bob@example.org"}},
    )
    (line,) = _lines(buffer)
    message = line["message"]
    for secret in ("hunter22", "ann@example.com", "7946", "4111", "sk-proj"):
        assert secret not in message
    assert "[EMAIL]" in message and "[PHONE]" in message and "[CARD]" in message
    assert "[API_KEY]" in message and "password=[REDACTED]" in message
    assert line["context"]["token"] == "[REDACTED]"
    assert line["context"]["request"] == {"api_key": "[REDACTED]", "user": "[EMAIL]"}


def test_pii_filter_leaves_ordinary_numbers_alone() -> None:
    """Dates, versions, counts and a non-Luhn 16-digit id are not mistaken for PII."""
    text = "run 2024-01-15 took 1523 ms on v1.2.3, order 1234567812345678, 42 items"
    assert PiiFilter().mask(text) == text


@given(
    st.sampled_from(
        ["4111111111111111", "5500 0000 0000 0004", "3400-0000-0000-009", "6011000990139424"]
    )
)
def test_valid_card_numbers_are_always_masked(card: str) -> None:
    """Every Luhn-valid card number, with spaces, dashes or none, becomes [CARD]."""
    assert PiiFilter().mask(f"paid with {card} today") == "paid with [CARD] today"


@given(st.emails())
def test_any_email_is_masked(email: str) -> None:
    """Any email address in a message is masked."""
    masked = PiiFilter().mask(f"contact {email} now")
    assert email not in masked


def test_rotating_file_output(installed: list[LoggingSetup], tmp_path: Path) -> None:
    """A file output with a size rotation writes JSON lines and rolls over to backups."""
    path = tmp_path / "logs" / "pipeline.log"
    config = LoggingConfig.model_validate(
        {
            "outputs": [
                {"type": "file", "config": {"path": str(path), "rotation": "1KB", "retention": 2}}
            ]
        }
    )
    setup = configure_logging(config)
    installed.append(setup)
    for i in range(60):
        logging.getLogger("app").info("line %d with some padding to fill the file", i)
    for handler in setup.handlers:
        handler.flush()
    assert path.exists() and (tmp_path / "logs" / "pipeline.log.1").exists()
    assert not (tmp_path / "logs" / "pipeline.log.3").exists()
    last = json.loads(path.read_text().splitlines()[-1])
    assert last["message"].startswith("line 59")


def test_file_path_is_relative_to_the_config_file(
    installed: list[LoggingSetup], tmp_path: Path
) -> None:
    """A relative file path in workbench.yaml is resolved against that file's folder."""
    (tmp_path / "conf").mkdir()
    config = WorkbenchConfig.model_validate(
        {
            "source": str(tmp_path / "conf" / "workbench.yaml"),
            "logging": {"outputs": [{"type": "file", "path": "out.log"}]},
        }
    )
    setup = configure_logging(config)
    installed.append(setup)
    logging.getLogger("app").warning("hello")
    setup.handlers[0].flush()
    assert json.loads((tmp_path / "conf" / "out.log").read_text())["message"] == "hello"


def test_reconfiguring_replaces_the_previous_handlers(installed: list[LoggingSetup]) -> None:
    """A second configure_logging removes the first one's handlers from the root logger."""
    first = configure_logging(LoggingConfig())
    second = configure_logging(LoggingConfig())
    installed.append(second)
    root_handlers = logging.getLogger().handlers
    assert not any(h in root_handlers for h in first.handlers)
    assert all(h in root_handlers for h in second.handlers)


def test_bad_logging_sections_are_clear_errors() -> None:
    """Unsupported outputs, a file without a path and an empty field list are refused."""
    with pytest.raises(ValueError, match="stdout"):
        LoggingConfig.model_validate({"outputs": [{"type": "elasticsearch"}]})
    with pytest.raises(ValueError, match="needs a path"):
        LoggingConfig.model_validate({"outputs": [{"type": "file"}]})
    with pytest.raises(ConfigError, match="fields"):
        SensitiveDataFilter([])


def test_formatter_without_the_filter_reads_the_context(store: Store) -> None:
    """JsonFormatter alone (a user's own handler) still finds the execution id."""
    formatter = JsonFormatter()
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hi", None, None)
    with workbench.record("p", inputs={}, store=store) as run:
        inside = json.loads(formatter.format(record))
        WorkbenchContextFilter().filter(record)
    assert inside["execution_id"] == run.id
    assert json.loads(formatter.format(record))["execution_id"] == run.id
