"""Spans, states and carried context: the light-weight records inside an execution.

``workbench.span`` is a timed, attributed span with no payloads, cheap enough for hot loops;
``workbench.state`` keeps a named intermediate value, stored once however often it recurs;
``workbench.carry_context`` takes the current execution and step into a thread pool. Steps,
with their payloads and durable ends, are ``_step``'s.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from contextvars import Context, copy_context
from types import TracebackType
from typing import Any

import orjson

from workbench import _ids, redaction
from workbench._context import AsyncFromSync, Frame, current
from workbench._json import encode
from workbench.recorder._execution import LiveExecution
from workbench.redaction import encode_redacted, scrub_json
from workbench.store import MAX_QUEUED
from workbench.types import JSON

__all__ = ["ActiveSpan", "carry_context", "span", "state"]


class ActiveSpan(AsyncFromSync):
    """A running span: ``set_attribute``, ``add_event``. Costs a few µs, payloads stay out."""

    __slots__ = (
        "_parent",
        "_run",
        "_start",
        "_token",
        "attributes",
        "events",
        "name",
        "span_id",
        "status",
    )

    def __init__(self, name: str, /, **attributes: Any) -> None:
        self.name = name
        self.attributes = attributes
        self.events: list[dict[str, Any]] | None = None
        self.status = "ok"

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[key] = value

    def add_event(self, name: str, **attributes: Any) -> None:
        if self.events is None:
            self.events = []
        self.events.append({"name": name, "time": time.time(), **attributes})

    # The recorder's hot path, where every operation shows: no payload rendering beyond one
    # C call, the span id from a C iterator, one contextvar set and one reset, and a bare deque
    # append (the writer wakes on its own timer). The frame is a tuple subclass, whose indexing
    # is not specialised: each field is read from it once and kept in a slot.
    def __enter__(self) -> ActiveSpan:
        parent = _get_frame()
        if parent is None:  # outside an execution: a span that records nothing, as in OTel
            self._token = None
            return self
        run = parent[0]
        if run.keep_trace:
            self._run = run
            self._parent = parent
            span_id = self.span_id = _next(_ids.span_ids)
            self._token = _set_frame(_new_tuple(Frame, (run, span_id, parent[2])))
            self._start = _time()
        else:  # not sampled, or debug mode keeps no fine-grained trace
            self._token = None
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        end = _time()
        token = self._token
        if token is None:
            return
        try:
            _reset_frame(token)
        except ValueError:  # left in another context (an async generator's finaliser)
            current.set(self._parent)
        run = self._run
        if exc is not None:
            self.status = "error"
            self.add_event(
                "exception", **{"exception.type": type(exc).__name__, "exception.message": str(exc)}
            )
        attributes = self.attributes
        rendered = None
        if attributes:
            # The common case inline (no secret-looking name, no nested value, no known secret,
            # no '=' for a URL credential): one C call to render. Anything else takes _render.
            names = run.attribute_names
            for key, item in attributes.items():
                if names.get(key) is not False or type(item) in _CONTAINERS:
                    rendered = _render(attributes, run)
                    break
            else:
                try:
                    rendered = _dumps(attributes)
                except TypeError:
                    rendered = encode(attributes)
                if redaction._known_in_json or _EQUALS in rendered:
                    rendered = scrub_json(rendered)
            # Kept as text: orjson's bytes sit in a 1 KB buffer from malloc, shrunk in place, so
            # thousands of them queued for the writer fragment the C heap, which the C library
            # then hands back to the OS and faults in again - a page fault per span (+1.8 us,
            # measured). A short str is small-object memory, and the bytes are freed at once.
            rendered = rendered.decode()
        events = self.events
        run.enqueue(
            (
                "span",
                (
                    self.span_id,
                    run.trace_id,
                    self._parent[1],
                    run.id,
                    self.name,
                    "internal",
                    rendered,
                    run.json_text(events) if events else None,
                    self.status,
                    self._start,
                    end,
                ),
            )
        )
        if len(run.queue) >= MAX_QUEUED:
            run.store.flush(strict=False)  # bounded memory under a flood of spans


def span(name: str, /, **attributes: Any) -> ActiveSpan:
    """A span inside the current execution: ``with workbench.span("rerank", k=5): ...``
    (outside an execution it records nothing, like an OpenTelemetry non-recording span).

    ``ActiveSpan(name, **attributes)`` without the class call: a span is made in hot loops,
    and calling a class with a Python ``__init__`` costs a third more than this.
    """
    active = _new_span(ActiveSpan)
    active.name = name
    active.attributes = attributes
    active.events = None
    active.status = "ok"
    return active


_new_span = object.__new__
_get_frame = current.get
_set_frame = current.set
_reset_frame = current.reset
_new_tuple = tuple.__new__
_next = next
_time = time.time


def _render(value: dict[str, Any], run: LiveExecution) -> bytes:
    # Rendered now, on this thread: the row then holds only atomic values, which the garbage
    # collector stops tracking, and later changes to an attribute's value are not recorded.
    # Attributes are keyword arguments, so a look at their names (remembered per run) decides
    # whether the slower walk for sensitive names is needed; nested values always take it.
    known = run.attribute_names
    for key, item in value.items():
        sensitive = known.get(key)
        if sensitive is None:
            sensitive = known[key] = key.lower().replace("-", "_") in run.sensitive
        if sensitive or type(item) in _CONTAINERS:
            return encode_redacted(value, run.sensitive)
    try:
        data = _dumps(value)
    except TypeError:
        data = encode(value)
    if redaction.has_known_secrets() or _EQUALS in data:
        return scrub_json(data)
    return data


_CONTAINERS = frozenset({dict, list, tuple, set})
#: ``b"="`` as the byte's value: ``bytes.__contains__`` tries a bytes argument as an integer
#: first and raises and clears a TypeError each time, an int is a plain ``memchr``.
_EQUALS = ord("=")


_dumps = orjson.dumps


def state(name: str, value: JSON) -> str:
    """Record a named intermediate value (as it is now); returns its content hash.

    Identical values, in any step or execution, are stored once. Returns ``""`` outside an
    execution and when the execution keeps no intermediate results (debug mode: not sampled, or
    the feature is off).
    """
    frame = _get_frame()
    if frame is None:
        return ""  # outside an execution: nothing to keep it in
    run = frame.run
    if not run.keep_states:
        return ""  # not sampled, or debug mode keeps no intermediate results
    digest = run.blob(value)
    run.store.put(
        "state",
        (
            run.id,
            frame.step.step_id if frame.step is not None else None,
            name,
            run.next_state_seq(),
            digest,
            time.time(),
        ),
    )
    return digest


def carry_context(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Bind ``fn`` to the caller's context, for thread pools:

    ``pool.submit(workbench.carry_context(work), item)`` records ``work`` on the caller's
    execution and step. (The one-liner without this helper is
    ``pool.submit(contextvars.copy_context().run, work, item)``.)
    """
    context: Context = copy_context()

    @functools.wraps(fn)
    def run_in_context(*args: Any, **kwargs: Any) -> Any:
        # A Context can be entered by one thread at a time: each call runs in its own copy.
        return context.copy().run(fn, *args, **kwargs)

    return run_in_context
