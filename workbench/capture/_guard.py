"""The one guard against capturing a call twice when one HTTP client sends through another.

Clients nest: litellm's default async transport is an httpx transport that sends with aiohttp,
a requests adapter can sit on urllib3, an SDK may mount any transport it likes. Each client is
patched, so without a guard a nested call is recorded once per layer — one request on the wire,
two ``ModelCall`` rows under one key (occurrences 0 and 1), tokens and cost counted twice, and
a replay that answers at the top layer and then reports the lower copy as unused.

So every layer asks :func:`frame_to_capture` before it captures, and the layer that captures a
call hands the request down with :func:`sent_below` / :func:`sent_below_async`, which mark the
context for as long as the layers below are sending it. Under the mark the layers below pass
the request straight through: they do not record it, rewrite it or ask the run's interceptor
again, so a replayed call is answered (or, going out live, recorded) exactly once, at the top.

The mark is a contextvar of its own, not a cleared execution frame: code running below the
top layer (a transport's logging, a budget hook) still belongs to its execution and step.
Tasks started while a request is sent copy the mark with the context; they are part of
sending that request. It does not own what a call records — that is ``_call``'s.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import ParamSpec, TypeVar

from workbench._context import Frame, current

__all__ = ["frame_to_capture", "sent_below", "sent_below_async"]

P = ParamSpec("P")
R = TypeVar("R")

# True while a captured call is sent by the layers under the one that captured it.
_sending_captured: ContextVar[bool] = ContextVar("workbench_sending_captured", default=False)


def frame_to_capture() -> Frame | None:
    """The frame to record a call in, or ``None`` to pass it straight through: outside an
    execution, with capture turned off, or under a layer that already captures this call."""
    frame = current.get()
    if frame is None or not frame.run.capture_enabled or _sending_captured.get():
        return None
    return frame


def sent_below(send: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """``send(*args, **kwargs)`` for a call this layer captures: the layers below see it as
    already captured."""
    token = _sending_captured.set(True)
    try:
        return send(*args, **kwargs)
    finally:
        _sending_captured.reset(token)


async def sent_below_async(send: Callable[P, Awaitable[R]], *args: P.args, **kwargs: P.kwargs) -> R:
    """:func:`sent_below` for async clients (the mark is the awaiting task's own)."""
    token = _sending_captured.set(True)
    try:
        return await send(*args, **kwargs)
    finally:
        _sending_captured.reset(token)
