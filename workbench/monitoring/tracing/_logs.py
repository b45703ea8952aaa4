"""Structured JSON logs: the ``logging`` section as standard-library handlers and filters.

Owns how log lines *leave* the process: :class:`JsonFormatter` (one JSON object per line with
timestamp, level, logger, message, the execution, pipeline, user, step, trace and span of the
code that logged, and the record's ``extra=`` fields under ``context``), the redaction filters
:class:`SensitiveDataFilter` (named fields) and :class:`PiiFilter` (emails, phone and card
numbers, API-key shapes), and :func:`configure_logging`, which installs them on the root logger
with per-module levels and stdout/stderr/rotating-file outputs.

It does not own what the store keeps of a log record (``workbench.recorder._logging`` captures
records inside executions, redacting secrets by name and value) and changes nothing unless
:func:`configure_logging` is called: logging is the application's, and a library that
reconfigures it on import surprises everyone.
"""

from __future__ import annotations

import logging
import logging.handlers
import re
import sys
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from workbench._context import current
from workbench.config import LoggingConfig, WorkbenchConfig, load_config
from workbench.exceptions import ConfigError
from workbench.recorder._logging import STANDARD_ATTRIBUTES
from workbench.redaction import (
    REDACTED,
    SensitiveNames,
    redact_json,
    scrub_rendered,
    scrub_text,
    sensitive_names_for,
)

__all__ = [
    "JsonFormatter",
    "LoggingSetup",
    "PiiFilter",
    "SensitiveDataFilter",
    "TextFormatter",
    "WorkbenchContextFilter",
    "configure_logging",
]

# Attributes every LogRecord has are the recorder's STANDARD_ATTRIBUTES; anything else came
# from ``extra=`` and is context.
_CONTEXT_FIELDS = ("execution_id", "pipeline_id", "user_id", "step_id", "trace_id", "span_id")
_OURS = frozenset(f"workbench_{name}" for name in _CONTEXT_FIELDS)


def _context_of_frame() -> dict[str, str | None]:
    frame = current.get()
    if frame is None:
        return {}
    run = frame.run
    return {
        "execution_id": run.id,
        "pipeline_id": run.pipeline_id,
        "user_id": run.user_id,
        "step_id": frame.step.step_id if frame.step is not None else None,
        "trace_id": run.trace_id,
        "span_id": frame.span_id,
    }


class WorkbenchContextFilter(logging.Filter):
    """Stamps each record with the execution, step, trace and span of the code that logged it.

    A handler filter runs on the logging thread, where the recorder's context is; a formatter
    may run later on another thread (``QueueHandler``), so the ids are copied onto the record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "workbench_execution_id"):
            context = _context_of_frame()
            for name in _CONTEXT_FIELDS:
                setattr(record, f"workbench_{name}", context.get(name))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, in the Orchestrator documentation's shape.

    Every line is scrubbed as the store's copy is (``workbench.redaction``): ``extra=`` fields
    under sensitive names are redacted, and remembered secrets, key shapes and credential pairs
    are scrubbed from every string, the message and the traceback included. ``sensitive``
    (from ``workbench.redaction.sensitive_names``) adds configured names and the allow-list.
    """

    def __init__(self, *args: Any, sensitive: Collection[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sensitive = sensitive

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            )[:-6]
            + "Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        stamped = hasattr(record, "workbench_execution_id")
        context_ids = (
            {name: getattr(record, f"workbench_{name}", None) for name in _CONTEXT_FIELDS}
            if stamped
            else _context_of_frame()
        )
        entry.update({k: v for k, v in context_ids.items() if v is not None})
        context = {
            key: value
            for key, value in record.__dict__.items()
            if key not in STANDARD_ATTRIBUTES and key not in _OURS
        }
        if context:
            entry["context"] = redact_json(context, self.sensitive or ())
        if record.exc_info and record.exc_info[1] is not None:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        line = orjson.dumps(entry, default=repr, option=orjson.OPT_NON_STR_KEYS)
        return scrub_rendered(line, self.sensitive).decode()


class TextFormatter(logging.Formatter):
    """The text format of ``configure_logging``, each line scrubbed as :class:`JsonFormatter`'s."""

    def __init__(self, *args: Any, sensitive: Collection[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sensitive = sensitive

    def format(self, record: logging.LogRecord) -> str:
        return scrub_text(super().format(record), self.sensitive)


def _freeze_message(record: logging.LogRecord, message: str) -> None:
    """Replace the record's message by ``message`` (already formatted with its arguments)."""
    record.msg = message
    record.args = None


def _extra_fields(record: logging.LogRecord) -> Iterable[str]:
    return [key for key in record.__dict__ if key not in STANDARD_ATTRIBUTES and key not in _OURS]


class SensitiveDataFilter(logging.Filter):
    """Redacts the values of named fields: in ``extra=`` fields (at any depth) and in
    ``name=value`` / ``"name": "value"`` pairs of the message."""

    def __init__(self, fields: Sequence[str]) -> None:
        super().__init__()
        if not fields:
            raise ConfigError(
                "a sensitive_data log filter needs the field names to redact, e.g. "
                "fields: [password, api_key, token]"
            )
        self.fields = tuple(fields)
        names = "|".join(re.escape(name) for name in sorted(fields, key=len, reverse=True))
        self._pattern = re.compile(
            rf"(?i)(\"?\b(?:{names})\b\"?\s*[:=]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&}}]+)"
        )

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self._pattern.sub(lambda m: f"{m.group(1)}{REDACTED}", message)
        if redacted != message:
            _freeze_message(record, redacted)
        lowered = {name.lower() for name in self.fields}
        for key in _extra_fields(record):
            value = getattr(record, key)
            if key.lower() in lowered:
                setattr(record, key, REDACTED)
            elif isinstance(value, dict | list):
                setattr(record, key, redact_json(value, self.fields))
        return True


def _luhn(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        n = int(char)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


class PiiFilter(logging.Filter):
    """Masks personal data and credentials in messages and string fields.

    Emails → ``[EMAIL]``; card numbers (13–19 digits passing the Luhn check, spaces or dashes
    allowed) → ``[CARD]``; phone numbers (international ``+`` form, or 10+ digits grouped the
    usual ways) → ``[PHONE]``; API-key shapes (``sk-…``, ``sk-ant-…``, ``AKIA…``, ``ghp_…``,
    ``xox[bp]-…``, ``AIza…``, ``Bearer …``) → ``[API_KEY]``.
    """

    _API_KEY = re.compile(
        r"\b(?:sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{16,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{20,}"
        r"|xox[abprs]-[A-Za-z0-9\-]{10,}|AIza[0-9A-Za-z_\-]{35})\b"
        r"|(?i:\bbearer\s+)[A-Za-z0-9._\-~+/]{16,}=*"
    )
    # The local part may hold any of RFC 5322's atom characters, not only letters and digits.
    _EMAIL = re.compile(
        r"(?<![\w.!#$%&'*+/=?^`{|}~\-])[\w.!#$%&'*+/=?^`{|}~\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b"
    )
    _CARD = re.compile(r"(?<![\d\-])\d(?:[ \-]?\d){12,18}(?![\d\-])")
    _PHONE = re.compile(
        r"(?<![\w+])(?:\+\d{1,3}[\s.\-]?)?(?:\(\d{2,4}\)[\s.\-]?)?\d{2,4}(?:[\s.\-]\d{2,4}){1,4}"
        r"(?![\w])"
    )

    def mask(self, text: str) -> str:
        text = self._API_KEY.sub("[API_KEY]", text)
        text = self._EMAIL.sub("[EMAIL]", text)
        text = self._CARD.sub(self._card, text)
        return self._PHONE.sub(self._phone, text)

    @staticmethod
    def _card(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group(0))
        return "[CARD]" if _luhn(digits) else match.group(0)

    @staticmethod
    def _phone(match: re.Match[str]) -> str:
        text = match.group(0)
        digits = re.sub(r"\D", "", text)
        # Ten digits or an explicit country code: short groups (dates, versions) stay as they are.
        if len(digits) >= 10 or (text.startswith("+") and len(digits) >= 8):
            return "[PHONE]"
        return text

    def _masked(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, dict):
            return {k: self._masked(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._masked(v) for v in value]
        return value

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = self.mask(message)
        if masked != message:
            _freeze_message(record, masked)
        for key in _extra_fields(record):
            setattr(record, key, self._masked(getattr(record, key)))
        return True


_BYTES = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}


class LoggingSetup:
    """What :func:`configure_logging` installed; ``remove()`` takes it all back out."""

    def __init__(
        self, handlers: list[logging.Handler], levels: dict[str, int], root_level: int
    ) -> None:
        self.handlers = handlers
        self._levels = levels
        self._root_level = root_level

    def remove(self) -> None:
        root = logging.getLogger()
        for handler in self.handlers:
            root.removeHandler(handler)
            handler.close()
        for name, level in self._levels.items():
            logging.getLogger(name).setLevel(level)
        root.setLevel(self._root_level)


_installed: LoggingSetup | None = None


def _filters(config: LoggingConfig) -> list[logging.Filter]:
    filters: list[logging.Filter] = [WorkbenchContextFilter()]
    for entry in config.filters:
        if not entry.enabled:
            continue
        if entry.type == "sensitive_data":
            filters.append(SensitiveDataFilter(entry.fields))
        else:
            filters.append(PiiFilter())
    return filters


def _file_handler(path: str, rotation: str, retention: int, base: Path | None) -> logging.Handler:
    file = Path(path).expanduser()
    if not file.is_absolute() and base is not None:
        file = base / file
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        if rotation in ("daily", "midnight", "hourly"):
            return logging.handlers.TimedRotatingFileHandler(
                file,
                when="H" if rotation == "hourly" else "midnight",
                backupCount=retention,
                encoding="utf-8",
                utc=True,
            )
        number, unit = re.match(r"^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB)$", rotation).groups()  # type: ignore[union-attr]
        return logging.handlers.RotatingFileHandler(
            file,
            maxBytes=int(float(number) * _BYTES[unit]),
            backupCount=retention,
            encoding="utf-8",
        )
    except OSError as exc:
        raise ConfigError(
            f"logging output file {file} cannot be opened ({exc.strerror}); choose a writable "
            f"path in logging.outputs"
        ) from exc


def configure_logging(config: LoggingConfig | WorkbenchConfig | None = None) -> LoggingSetup:
    """Install the ``logging`` section on the root logger (replacing a previous call's setup).

    Levels: ``levels.default`` (or ``level``) on the root logger, ``levels.modules`` per logger.
    Outputs: ``output``/``outputs`` (``stdout`` when none is given). Every handler gets the
    context filter and the configured redaction filters, so a record is redacted whichever
    logger it came from.
    """
    global _installed
    base: Path | None = None
    if config is None:
        config = load_config()
    if isinstance(config, WorkbenchConfig):
        base = Path(config.source).parent if config.source else None
        sensitive = sensitive_names_for(config)
        config = config.logging
    else:
        sensitive = sensitive_names_for(load_config())
    if _installed is not None:
        _installed.remove()
        _installed = None
    text = TextFormatter(
        "%(asctime)s %(levelname)s %(name)s [%(workbench_execution_id)s] %(message)s",
        sensitive=sensitive,
    )
    handlers: list[logging.Handler] = []
    outputs = list(config.outputs)
    if config.output is not None or not outputs:
        stream = sys.stderr if config.output == "stderr" else sys.stdout
        handlers.append(_with_format(logging.StreamHandler(stream), config.format, text, sensitive))
    for output in outputs:
        if output.type == "file":
            assert output.path is not None  # validated by LoggingConfig
            handler = _file_handler(output.path, output.rotation, output.retention, base)
        else:
            handler = logging.StreamHandler(sys.stderr if output.type == "stderr" else sys.stdout)
        handlers.append(_with_format(handler, output.format or config.format, text, sensitive))
    filters = _filters(config)
    root = logging.getLogger()
    previous = {name: logging.getLogger(name).level for name in config.levels.modules}
    setup = LoggingSetup(handlers, previous, root.level)
    for handler in handlers:
        for log_filter in filters:
            handler.addFilter(log_filter)
        root.addHandler(handler)
    root.setLevel(config.level or config.levels.default)
    for name, level in config.levels.modules.items():
        logging.getLogger(name).setLevel(level)
    _installed = setup
    return setup


def _with_format(
    handler: logging.Handler, kind: str, text: logging.Formatter, sensitive: SensitiveNames
) -> logging.Handler:
    handler.setFormatter(JsonFormatter(sensitive=sensitive) if kind == "json" else text)
    return handler
