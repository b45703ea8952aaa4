"""Which execution, span and step the running code belongs to: one contextvar.

One variable holding an immutable frame (rather than one variable per field) keeps entering a
span to a single ``ContextVar.set``. Context flows with ``asyncio`` tasks and with
``contextvars.copy_context().run``; a thread pool needs the caller's context carried over
explicitly (see :func:`workbench.recorder.carry_context`).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from workbench.recorder._execution import LiveExecution
    from workbench.recorder._step import ActiveStep

__all__ = ["Frame", "current", "current_frame"]


class Frame(NamedTuple):
    run: LiveExecution
    span_id: str
    step: ActiveStep | None


current: ContextVar[Frame | None] = ContextVar("workbench_frame", default=None)
current_frame = current.get
