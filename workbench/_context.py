"""Which execution, span and step the running code belongs to: one contextvar.

One variable holding an immutable frame (rather than one variable per field) keeps entering a
span to a single ``ContextVar.set``. Context flows with ``asyncio`` tasks and with
``contextvars.copy_context().run``; a thread pool needs the caller's context carried over
explicitly (see :func:`workbench.recorder.carry_context`).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from workbench.recorder._execution import LiveExecution
    from workbench.recorder._step import ActiveStep

__all__ = ["AsyncFromSync", "Frame", "current", "current_frame"]


class Frame(NamedTuple):
    run: LiveExecution
    span_id: str
    step: ActiveStep | None


current: ContextVar[Frame | None] = ContextVar("workbench_frame", default=None)
current_frame = current.get


class AsyncFromSync:
    """``async with`` for the recorder's context managers, whose enter and exit never await."""

    __slots__ = ()

    async def __aenter__(self) -> Any:
        return self.__enter__()  # type: ignore[attr-defined]

    async def __aexit__(self, *exc_info: Any) -> None:
        self.__exit__(*exc_info)  # type: ignore[attr-defined]
