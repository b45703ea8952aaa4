"""Standard ``logging`` records emitted inside an execution, kept with trace and span ids.

Installed at the first ``workbench.record`` around ``Logger.callHandlers``. It records what the
application's logger levels let through (a logger at WARNING stays at WARNING: recording must
not change what the application does); outside an execution it returns at once.
"""

from __future__ import annotations

import logging
import threading

from workbench._context import current
from workbench.redaction import scrub_text

__all__ = ["STANDARD_ATTRIBUTES", "install"]

# Attributes every LogRecord has; anything else came from ``extra=`` and is a structured field.
STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def _capture(record: logging.LogRecord) -> None:
    frame = current.get()
    if frame is None or record.name.startswith("workbench."):
        return
    run = frame.run
    if not run.keep_trace:  # not sampled, or debug mode keeps no fine-grained trace
        return
    fields = {k: v for k, v in record.__dict__.items() if k not in STANDARD_ATTRIBUTES}
    if record.exc_info and record.exc_info[1] is not None:
        fields["exception"] = logging.Formatter().formatException(record.exc_info)
    try:
        message = record.getMessage()
    except Exception:  # a bad format string is the logging module's to report, not ours
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
            scrub_text(message, run.sensitive),
            run.json_text(fields) if fields else "{}",
            record.created,
        ),
    )


_original_call_handlers = logging.Logger.callHandlers
_lock = threading.Lock()
_installed = False


def _call_handlers(self: logging.Logger, record: logging.LogRecord) -> None:
    # Seen after the logger's level and filters, exactly as the application's own handlers see
    # it; anything going wrong here is logging's trouble to report, never the caller's.
    try:
        _capture(record)
    except Exception:
        logging.Handler.handleError(_REPORTER, record)
    _original_call_handlers(self, record)


_REPORTER = logging.Handler()


def install() -> None:
    """Capture log records inside executions (idempotent).

    A wrapper around ``Logger.callHandlers`` rather than a handler on the root logger: adding
    a handler would change the application's logging (``logging.lastResort`` stops printing
    warnings, a later ``basicConfig()`` does nothing).
    """
    global _installed
    with _lock:
        if not _installed:
            logging.Logger.callHandlers = _call_handlers  # type: ignore[method-assign]
            _installed = True
