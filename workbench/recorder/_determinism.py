"""Determinism helpers: ``workbench.now()``, ``workbench.uuid4()`` and ``workbench.random()``.

Owns making the clock, random ids and random numbers of user code replayable. While recording,
each call returns a real value and keeps it as a state named ``workbench.<kind>@<occurrence>#<n>``
of the step it was called in (``n`` counts that kind's calls in that occurrence of the step), so
the recording path costs one state row. Inside a replay the same call returns the recorded
value, found by step id, occurrence and call index; when the recording has none (new code, or
an original recorded before the helper was used) it returns a real value and the replay lists
it in ``ReplayResult.fresh_values``. Outside an execution the helpers are the plain functions.
It does not patch ``datetime``, ``uuid`` or ``random``: only calls through these helpers replay.
"""

from __future__ import annotations

import datetime
import random as _random
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from workbench._context import current
from workbench.recorder._span import state

__all__ = ["now", "random", "uuid4"]

T = TypeVar("T")
_MISSING: Any = object()


def now() -> datetime.datetime:
    """The current time as an aware UTC datetime; inside a replay, the recorded one."""
    return _value(
        "now",
        lambda: datetime.datetime.now(datetime.UTC),
        datetime.datetime.isoformat,
        datetime.datetime.fromisoformat,
    )


def uuid4() -> uuid.UUID:
    """A random UUID; inside a replay, the recorded one."""
    return _value("uuid4", uuid.uuid4, str, uuid.UUID)


def random() -> float:
    """A random float in [0, 1); inside a replay, the recorded one."""
    return _value("random", _random.random, float, float)


def _value(
    kind: str,
    real: Callable[[], T],
    encode: Callable[[T], Any],
    decode: Callable[[Any], T],
) -> T:
    frame = current.get()
    if frame is None:
        return real()
    run, step = frame.run, frame.step
    step_id = step.step_id if step is not None else None
    occurrence = step.occurrence if step is not None else 0
    index = run.next_value_index(f"{kind}\x00{step_id}\x00{occurrence}")
    name = f"workbench.{kind}@{occurrence}#{index}"
    value: Any = _MISSING
    if run.replay_of is not None:
        recorded = run.recorded_values.get((step_id, name), _MISSING)
        if recorded is not _MISSING:
            try:
                value = decode(recorded)
            except (TypeError, ValueError):  # a value edited in the store: a real one instead
                value = _MISSING
        if value is _MISSING:
            run.fresh_values.append(name if step_id is None else f"{step_id}: {name}")
    if value is _MISSING:
        value = real()
    state(name, encode(value))
    return value  # type: ignore[no-any-return]
