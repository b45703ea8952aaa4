"""Standard ``logging`` records emitted inside an execution, kept with trace and span ids.

One handler on the root logger, installed at the first ``workbench.record``. It records what
the application's logger levels let through (a logger at WARNING stays at WARNING: recording
must not change what the application does); outside an execution it returns at once.
"""

from __future__ import annotations

import logging
import threading

from workbench._context import current
from workbench._json import encode
from workbench.redaction import redact_json

__all__ = ["install"]

# Attributes every LogRecord has; anything else came from ``extra=`` and is a structured field.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class _RecordingHandler(logging.Handler):
    def handle(self, record: logging.LogRecord) -> bool:  # no handler lock: put() is safe
        frame = current.get()
        if frame is None or record.name.startswith("workbench.store"):
            return False
        run = frame.run
        fields = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        if record.exc_info and record.exc_info[1] is not None:
            fields["exception"] = logging.Formatter().formatException(record.exc_info)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not break the application's logging
            message = str(record.msg)
        run.store.put(
            "log",
            (
                run.id,
                run.trace_id,
                frame.span_id,
                frame.step.step_id if frame.step is not None else None,
                record.levelname,
                record.name,
                message,
                encode(redact_json(fields, run.sensitive)).decode() if fields else "{}",
                record.created,
            ),
        )
        return True

    def emit(self, record: logging.LogRecord) -> None:  # pragma: no cover - handle() does it
        self.handle(record)


_handler = _RecordingHandler()
_lock = threading.Lock()


def install() -> None:
    root = logging.getLogger()
    if _handler in root.handlers:
        return
    with _lock:
        if _handler not in root.handlers:
            root.addHandler(_handler)
