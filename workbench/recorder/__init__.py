"""The recorder: executions, steps, spans, states and logs, attributed through contextvars."""

from workbench._context import Frame, current_frame
from workbench.recorder._determinism import now, random, uuid4
from workbench.recorder._execution import LiveExecution, RecordedStep, record
from workbench.recorder._pipeline import pipeline
from workbench.recorder._span import ActiveSpan, carry_context, span, state
from workbench.recorder._step import ActiveStep, step

__all__ = [
    "ActiveSpan",
    "ActiveStep",
    "Frame",
    "LiveExecution",
    "RecordedStep",
    "carry_context",
    "current_frame",
    "now",
    "pipeline",
    "random",
    "record",
    "span",
    "state",
    "step",
    "uuid4",
]
