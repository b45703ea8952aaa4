"""The incremental server-sent-event parser every SSE-streaming provider's reader uses.

Owns :class:`SSEParser` and the :class:`SSEEvent` it dispatches. Does not know any provider's
event names or JSON (each provider module reads its own events).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

__all__ = ["SSEEvent", "SSEParser", "parse_events"]


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched server-sent event: its type (``None`` for the default) and its data."""

    event: str | None
    data: str


class SSEParser:
    """Incremental parser of a ``text/event-stream``, per the WHATWG EventSource algorithm.

    :meth:`feed` takes bytes as they arrive, split anywhere (inside a UTF-8 sequence, between
    ``\\r`` and ``\\n``), and returns the events completed so far. Lines end with CRLF, LF or
    CR; a leading BOM is dropped; comment lines are skipped; consecutive ``data`` lines are
    joined by newlines; an event with no ``data`` line is not dispatched. ``id`` and ``retry``
    are read past: no model call uses them.
    """

    __slots__ = ("_data", "_decoder", "_event", "_pending", "_started", "truncated")

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        # Text after the last complete line. It may end with a "\r" whose "\n" has not come yet.
        self._pending = ""
        self._data: list[str] = []
        self._event: str | None = None
        self._started = False
        #: Set by :meth:`close` when the stream stopped in the middle of an event.
        self.truncated = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Parse the next bytes of the stream; return the events they complete."""
        return self._feed_text(self._decoder.decode(chunk))

    def close(self) -> list[SSEEvent]:
        """End the stream; return the event it was cut in the middle of, if any.

        The spec discards an event whose closing blank line never came. We return it anyway,
        so that a stream cut off by a timeout still shows what arrived, and set
        :attr:`truncated` so the caller can say that it was cut.
        """
        events = self._feed_text(self._decoder.decode(b"", final=True))
        pending, self._pending = self._pending, ""
        if pending.endswith("\r"):  # a CR at the very end is a complete line end
            self._line(pending[:-1], events)
            pending = ""
        if pending or self._data or self._event is not None:
            self.truncated = True
            if pending:
                self._line(pending, events)
            self._line("", events)
        return events

    def _feed_text(self, text: str) -> list[SSEEvent]:
        if not self._started:
            if not text:  # e.g. only the first byte of a BOM so far
                return []
            self._started = True
            if text[0] == "\ufeff":
                text = text[1:]
        buffer = self._pending + text
        held = ""
        if "\r" in buffer:
            if buffer[-1] == "\r":
                # The next chunk may start with "\n": keep the CR until we know.
                buffer, held = buffer[:-1], "\r"
            buffer = buffer.replace("\r\n", "\n").replace("\r", "\n")
        lines = buffer.split("\n")
        self._pending = lines.pop() + held
        events: list[SSEEvent] = []
        data = self._data
        for line in lines:
            # Model streams are almost all "data: {...}" lines and blank lines: take those
            # without the general field parsing.
            if line.startswith("data: "):
                data.append(line[6:])
            elif line or not data:
                self._line(line, events)
                data = self._data
            else:
                events.append(SSEEvent(self._event or None, "\n".join(data)))
                self._data = data = []
                self._event = None
        return events

    def _line(self, line: str, events: list[SSEEvent]) -> None:
        if not line:
            if self._data:
                events.append(SSEEvent(self._event or None, "\n".join(self._data)))
            self._data = []
            self._event = None
            return
        if line[0] == ":":
            return
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value


def parse_events(body: bytes) -> tuple[list[SSEEvent], bool]:
    """All events of a complete stream, and whether it was cut in the middle of one."""
    parser = SSEParser()
    events = parser.feed(body)
    events.extend(parser.close())
    return events, parser.truncated
