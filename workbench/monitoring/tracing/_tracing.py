"""``from workbench.monitoring import tracer``: custom spans in the OpenTelemetry style.

Owns the user-facing span API of the Orchestrator documentation — ``tracer.start_span(name,
attributes=...)`` used as a context manager, with ``set_attribute``, ``add_event``,
``record_exception`` and ``set_status(StatusCode.ERROR, "why")``. A span is the recorder's own
:class:`workbench.recorder.ActiveSpan` (same ids, same row in the store, same cost), so a custom
span nests under the step that opened it and over the steps and model calls inside it. Export to
an OpenTelemetry backend is :mod:`workbench.monitoring.tracing._otel`'s business, from the store.

Outside an execution nothing is recorded and the span is a no-op that still accepts every call:
instrumented library code must run the same whether or not someone is recording it.
"""

from __future__ import annotations

import enum
import traceback
from types import TracebackType
from typing import Any

from workbench._context import current
from workbench.exceptions import ConfigError
from workbench.recorder import ActiveSpan

__all__ = ["Span", "StatusCode", "Tracer", "tracer"]

#: The attribute that carries a span's status description (OpenTelemetry's name for it in
#: formats without a status message field); the exporter turns it back into the status.
STATUS_DESCRIPTION = "otel.status_description"


class StatusCode(enum.Enum):
    """A span's status, as OpenTelemetry names it (``opentelemetry.trace.StatusCode`` works too)."""

    UNSET = "unset"
    OK = "ok"
    ERROR = "error"


def _status_name(code: Any) -> str:
    """``"ok"``/``"error"``/``"unset"`` from our enum, OpenTelemetry's, or a string."""
    name = code.name if isinstance(code, enum.Enum) else code
    if isinstance(name, str) and name.upper() in StatusCode.__members__:
        return name.lower()
    raise ConfigError(
        f"span status {code!r} is not a status code; use StatusCode.OK, StatusCode.ERROR or "
        f"StatusCode.UNSET (from workbench.monitoring or opentelemetry.trace)"
    )


class Span(ActiveSpan):
    """A span opened by :meth:`Tracer.start_span`; nothing is recorded outside an execution."""

    __slots__ = ("_recorded_exception", "_recording")

    def __init__(self, name: str, attributes: dict[str, Any] | None = None) -> None:
        super().__init__(name, **(attributes or {}))
        self._recording = False
        self._recorded_exception: BaseException | None = None

    def is_recording(self) -> bool:
        """True while the span is open inside an execution (its data will be kept)."""
        return self._recording

    def set_attributes(self, attributes: dict[str, Any]) -> None:
        self.attributes.update(attributes)

    def set_status(self, status: Any, description: str | None = None) -> None:
        """``StatusCode.OK``/``ERROR``/``UNSET``, with an optional description of an error."""
        name = _status_name(status)
        # The store keeps "ok" or "error"; an unset status reads as "ok", as OTLP backends do.
        self.status = "error" if name == "error" else "ok"
        if description is not None and name == "error":
            self.attributes[STATUS_DESCRIPTION] = description

    def record_exception(
        self, exception: BaseException, attributes: dict[str, Any] | None = None
    ) -> None:
        """An ``exception`` event with type, message and stack trace (OpenTelemetry's names)."""
        self._recorded_exception = exception
        self.add_event(
            "exception",
            **{
                "exception.type": type(exception).__qualname__,
                "exception.message": str(exception),
                "exception.stacktrace": "".join(traceback.format_exception(exception)),
                **(attributes or {}),
            },
        )

    def __enter__(self) -> Span:
        if current.get() is None:
            return self  # not recording: every method still works, nothing is kept
        super().__enter__()
        self._recording = self._token is not None  # debug mode may keep no fine-grained trace
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._recording:
            return
        self._recording = False
        if exc is not None and exc is self._recorded_exception:
            # Already recorded by the caller (the documented try/except pattern): once is enough.
            self.status = "error"
            exc = None
        super().__exit__(None if exc is None else type(exc), exc, tb)


class Tracer:
    """Opens :class:`Span`\\ s in the current execution: ``with tracer.start_span("x") as s:``."""

    def start_span(self, name: str, attributes: dict[str, Any] | None = None) -> Span:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"span name must be a non-empty string, got {name!r}")
        return Span(name, attributes)

    #: OpenTelemetry's name for the same thing (our spans always become the current span).
    start_as_current_span = start_span


#: The process's tracer.
tracer = Tracer()
