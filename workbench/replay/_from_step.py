"""The ``from_step`` modification: which recorded steps a replay answers without running them.

Owns choosing the steps that had completed before the named step first started — each to
return its recorded result, by step id and occurrence — and listing what ran inside each (by
the recorded span tree), so the replay can count those steps and requests as done and later
ones keep the occurrence numbers they had. It does not skip anything itself: the recorder's
step wrappers do, from ``LiveExecution.recorded_steps``.
"""

from __future__ import annotations

from collections import defaultdict

from workbench.exceptions import ConfigError
from workbench.recorder import RecordedStep
from workbench.records import Execution

__all__ = ["SkippedSteps", "steps_before"]

#: ``(step_id, occurrence) -> RecordedStep``, and the ``(request_key, occurrence)`` of every
#: recorded call made inside one of those steps.
SkippedSteps = tuple[dict[tuple[str, int], RecordedStep], set[tuple[str, int]]]


def steps_before(original: Execution, from_step: str) -> SkippedSteps:
    """The completed steps of ``original`` that ended before ``from_step`` first started.

    A step still running when ``from_step`` started (an ancestor of it, or one running
    concurrently) runs again; so does a step that failed, whose exception is not recorded.
    """
    starts = [s.started_at for s in original.steps if s.step_id == from_step]
    if not starts:
        recorded = sorted({s.step_id for s in original.steps})
        raise ConfigError(
            f"replay modification from_step={from_step!r} names a step that execution "
            f"{original.id} never ran; its steps are {', '.join(map(repr, recorded)) or '(none)'}"
        )
    cutoff = min(starts)
    children: dict[str, list[str]] = defaultdict(list)
    for span in original.spans:
        if span.parent_span_id is not None:
            children[span.parent_span_id].append(span.span_id)
    step_of_span = {s.span_id: s.step_id for s in original.steps if s.span_id}
    calls_of_span: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for call in original.model_calls:
        if call.span_id is not None:
            calls_of_span[call.span_id].append((call.request_key, call.occurrence))

    skipped: dict[tuple[str, int], RecordedStep] = {}
    skipped_calls: set[tuple[str, int]] = set()
    for step in original.steps:
        if (
            step.status != "completed"
            or step.span_id is None
            or step.ended_at is None
            or step.ended_at > cutoff
        ):
            continue
        inner_steps: list[str] = []
        inner_calls: list[tuple[str, int]] = list(calls_of_span.get(step.span_id, ()))
        pending = list(children.get(step.span_id, ()))
        while pending:
            span_id = pending.pop()
            if span_id in step_of_span:
                inner_steps.append(step_of_span[span_id])
            inner_calls += calls_of_span.get(span_id, ())
            pending += children.get(span_id, ())
        skipped[(step.step_id, step.occurrence)] = RecordedStep(
            step.result, tuple(inner_steps), tuple(key for key, _ in inner_calls)
        )
        skipped_calls.update(inner_calls)
    return skipped, skipped_calls
