"""An execution as the diff engine sees it: a JSON document of its compared content.

Owns the shape of that document and the paths into it; does not compare anything. Steps are
keyed ``"<step_id>#<occurrence>"`` under ``steps`` so that two runs align by step id and
occurrence whatever order their steps finished in; each step holds its model calls and its
states. A document built alone lists a step's calls in the order they were made;
:func:`build_documents` builds two and pairs their calls by what they are
(:mod:`workbench.diff._align`), so that position ``i`` in one is the counterpart of position
``i`` in the other. What is compared, measured or ignored is
decided in :mod:`workbench.diff._fields`, not here.

The document of a run::

    {"pipeline_id", "pipeline_version", "entrypoint", "inputs", "outputs", "status", "success",
     "error": {"type", "message"} | null,
     "states": {name: value},            # states recorded outside any step
     "model_calls": [call, ...],         # calls made outside any step
     "steps": {"draft#0": {"parent_step_id", "action", "parameters", "result", "error",
                           "status", "retries", "states": {name: value},
                           "model_calls": [{"provider", "model", "operation",
                                            "request": {"method", "path", "query",
                                                        "body_format", "body"},
                                            "status_code", "streamed", "tokens_estimated",
                                            "finish_reason", "text", "error",
                                            "stream_error"}, ...]}}}

A state recorded twice under one name in the same step is ``name``, then ``name#1``, ... in
recording order.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from workbench.diff._align import align_calls
from workbench.diff._fields import (
    CALL_METRICS,
    EXECUTION_FIELDS,
    EXECUTION_METRICS,
    MODEL_CALL_FIELDS,
    REQUEST_FIELDS,
    STEP_FIELDS,
    STEP_METRICS,
    content_fields,
)
from workbench.records import ErrorInfo, Execution, ModelCall, State, Step
from workbench.types import JSON

__all__ = ["Document", "PathPart", "build_document", "build_documents", "step_key"]

PathPart = str | int

_EXECUTION_CONTENT = tuple(
    name
    for name in content_fields(EXECUTION_FIELDS)
    if name not in ("steps", "model_calls", "states")
)
_STEP_CONTENT = content_fields(STEP_FIELDS)
_CALL_CONTENT = tuple(name for name in content_fields(MODEL_CALL_FIELDS) if name != "request")


def step_key(step_id: str, occurrence: int) -> str:
    """The key of one step occurrence under ``steps``: ``"draft#0"``."""
    return f"{step_id}#{occurrence}"


@dataclass(slots=True)
class Document:
    """The compared content of one execution, with what is needed to align and measure it."""

    execution: Execution
    content: dict[str, Any]
    #: ``steps`` keys in the order the steps started, for naming the first divergent one.
    step_order: list[str] = field(default_factory=list)
    #: step key -> (step id, occurrence)
    steps: dict[str, tuple[str, int]] = field(default_factory=dict)
    #: path of a measured record -> metric name -> value; ``()`` is the execution itself.
    metrics: dict[tuple[PathPart, ...], dict[str, float | None]] = field(default_factory=dict)
    #: path of a list of model calls -> what each call in it is, for pairing them across runs
    #: (:mod:`workbench.diff._align`).
    call_keys: dict[tuple[PathPart, ...], list[tuple[str, int]]] = field(default_factory=dict)


def _error(error: ErrorInfo | None) -> JSON:
    # The traceback names files, lines and addresses of one machine: type and message say what
    # went wrong.
    return None if error is None else {"type": error.type, "message": error.message}


# attrgetter reads all fields in one C call: documents are built for every step and call of
# both runs, so this is most of the cost of comparing two large runs.
_get_call = attrgetter(*_CALL_CONTENT)
_get_step = attrgetter(*_STEP_CONTENT)


def _call(call: ModelCall) -> dict[str, Any]:
    request = call.request if isinstance(call.request, dict) else {"body": call.request}
    doc = dict(zip(_CALL_CONTENT, _get_call(call), strict=True))
    doc["error"] = _error(call.error)
    doc["request"] = {name: request.get(name) for name in REQUEST_FIELDS}
    return doc


def _measure(record: object, names: dict[str, str]) -> dict[str, float | None]:
    getter = _METRIC_GETTERS.get(id(names))
    if getter is None:
        getter = _METRIC_GETTERS[id(names)] = attrgetter(*names)
    values = getter(record)
    if len(names) == 1:  # attrgetter of one name returns the value, not a tuple
        values = (values,)
    return dict(zip(names.values(), values, strict=True))


_METRIC_GETTERS: dict[int, attrgetter[Any]] = {}


class _StateOwner:
    """Finds the step occurrence a state was recorded in: states carry a step id, not an
    occurrence, so the occurrence is the innermost one running when the state was recorded."""

    def __init__(self, steps: list[Step]) -> None:
        self._runs: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
        for step in steps:
            end = math.inf if step.ended_at is None else step.ended_at
            self._runs[step.step_id].append(
                (step.started_at, end, step_key(step.step_id, step.occurrence))
            )

    def __call__(self, state: State) -> str | None:
        runs = self._runs.get(state.step_id) if state.step_id is not None else None
        if not runs:
            return None
        at = state.recorded_at
        running = [run for run in runs if run[0] <= at <= run[1]]
        if running:
            return max(running)[2]
        started = [run for run in runs if run[0] <= at]
        return max(started)[2] if started else min(runs)[2]


def _add_state(states: dict[str, Any], state: State) -> None:
    name, repeat = state.name, 1
    while name in states:
        name = f"{state.name}#{repeat}"
        repeat += 1
    states[name] = state.value


def build_document(execution: Execution) -> Document:
    """The compared content of ``execution`` (see the module docstring for its shape)."""
    content: dict[str, Any] = {
        name: _error(execution.error) if name == "error" else getattr(execution, name)
        for name in _EXECUTION_CONTENT
    }
    document = Document(execution, content)
    document.metrics[()] = _measure(execution, EXECUTION_METRICS)
    steps: dict[str, dict[str, Any]] = {}
    for step in sorted(execution.steps, key=lambda step: step.started_at):
        key = step_key(step.step_id, step.occurrence)
        doc = dict(zip(_STEP_CONTENT, _get_step(step), strict=True))
        doc["error"] = _error(step.error)
        doc["states"] = {}
        doc["model_calls"] = []
        steps[key] = doc
        document.step_order.append(key)
        document.steps[key] = (step.step_id, step.occurrence)
        document.metrics[("steps", key)] = _measure(step, STEP_METRICS)

    loose_calls: list[dict[str, Any]] = []
    for call in execution.model_calls:
        owner = None
        if call.step_id is not None and call.step_occurrence is not None:
            owner = steps.get(step_key(call.step_id, call.step_occurrence))
        calls = loose_calls if owner is None else owner["model_calls"]
        where: tuple[PathPart, ...] = ("model_calls",)
        if owner is not None:
            where = ("steps", step_key(call.step_id or "", call.step_occurrence or 0), *where)
        document.metrics[(*where, len(calls))] = _measure(call, CALL_METRICS)
        document.call_keys.setdefault(where, []).append((call.request_key, call.occurrence))
        calls.append(_call(call))

    loose_states: dict[str, Any] = {}
    owner_of = _StateOwner(execution.steps)
    for state in sorted(execution.states, key=lambda state: state.seq):
        owner_key = owner_of(state)
        _add_state(loose_states if owner_key is None else steps[owner_key]["states"], state)

    content["states"] = loose_states
    content["model_calls"] = loose_calls
    content["steps"] = steps
    return document


def build_documents(a: Execution, b: Execution) -> tuple[Document, Document]:
    """The documents of two runs, with each step's model calls paired across them."""
    doc_a, doc_b = build_document(a), build_document(b)
    align_calls(doc_a, doc_b)
    return doc_a, doc_b
