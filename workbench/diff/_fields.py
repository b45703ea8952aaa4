"""Which recorded fields the diff engine compares, measures, or ignores — the one place.

Every field of :class:`~workbench.records.Execution`, :class:`~workbench.records.Step`,
:class:`~workbench.records.ModelCall` and :class:`~workbench.records.State` has exactly one role
here (a test checks that a new field cannot be forgotten):

``content``
    Compared; a change is a :class:`~workbench.diff.Difference`.
``metric``
    Cost, tokens and time: reported as a numeric :class:`~workbench.diff.Delta` (absolute and
    relative), never as a content change — two runs of the same code never take the same time.
``key``
    Used to align the two runs (step id and occurrence, the step a call or state belongs to).
``volatile``
    Ignored by default, for the reason given: ids and timestamps that differ in every run, and
    values derived from compared ones (a request's ``request_key`` is a hash of the request,
    so comparing it again would only repeat the request's difference as noise).

Spans, logs and profiles are not compared at all: spans mirror steps and model calls with their
timings, log lines carry times and addresses, and profiles are artifacts of a machine.
"""

from __future__ import annotations

from typing import Final, Literal, TypeAlias

__all__ = [
    "CALL_METRICS",
    "EXECUTION_FIELDS",
    "EXECUTION_METRICS",
    "MODEL_CALL_FIELDS",
    "REQUEST_FIELDS",
    "STATE_FIELDS",
    "STEP_FIELDS",
    "STEP_METRICS",
    "Role",
    "content_fields",
]

Role: TypeAlias = Literal["content", "metric", "key", "volatile"]

EXECUTION_FIELDS: Final[dict[str, Role]] = {
    "id": "volatile",  # every run has its own
    "pipeline_id": "content",  # compared, and a difference is also said in the summary
    "pipeline_version": "content",
    "entrypoint": "content",
    "inputs": "content",
    "outputs": "content",
    "status": "content",
    "success": "content",
    "error": "content",  # type and message; the traceback holds paths and line numbers
    "user_id": "volatile",  # who ran it, not what it did
    "session_id": "volatile",  # likewise: in which conversation
    "environment": "volatile",
    "sampled": "volatile",
    "debug": "volatile",
    "started_at": "volatile",
    "ended_at": "volatile",
    "duration_s": "metric",
    "cost_usd": "metric",
    "tokens_in": "metric",
    "tokens_out": "metric",
    "replay_of": "volatile",  # a replay differs from its original in this by definition
    "modifications": "volatile",  # likewise: the cause of the differences, not one of them
    "experiment_id": "volatile",  # likewise: the batch a replay was run in
    "code_version": "volatile",
    "metadata": "volatile",
    "trace_id": "volatile",
    "steps": "content",
    "spans": "volatile",
    "model_calls": "content",
    "states": "content",
    "logs": "volatile",
    "profiles": "volatile",
}

STEP_FIELDS: Final[dict[str, Role]] = {
    "execution_id": "volatile",
    "step_id": "key",
    "occurrence": "key",
    "span_id": "volatile",
    "parent_step_id": "content",
    "action": "content",
    "parameters": "content",
    "result": "content",
    "error": "content",
    "status": "content",
    "retries": "content",
    "started_at": "volatile",
    "ended_at": "volatile",
    "duration_s": "metric",
}

MODEL_CALL_FIELDS: Final[dict[str, Role]] = {
    "id": "volatile",
    "execution_id": "volatile",
    "span_id": "volatile",
    "step_id": "key",
    "step_occurrence": "key",
    "provider": "content",
    "model": "content",
    "operation": "content",
    "request": "content",  # only the parts in REQUEST_FIELDS
    "status_code": "content",
    "response": "volatile",  # provider ids and timestamps; its meaning is in text and tokens
    "response_headers": "volatile",  # request ids, dates, rate-limit counters
    "streamed": "content",
    "chunks": "volatile",  # the stream's timing; its content is ``text``
    "input_tokens": "metric",
    "output_tokens": "metric",
    "cache_read_tokens": "metric",
    "cache_write_tokens": "metric",
    "tokens_estimated": "content",
    "cost_usd": "metric",
    "ttft_s": "metric",
    "latency_s": "metric",
    "finish_reason": "content",
    "text": "content",
    "request_key": "volatile",  # a hash of the request: derived from a compared field
    "occurrence": "volatile",  # counts identical requests: derived from the request as well
    "started_at": "volatile",
    "error": "content",
    "stream_error": "content",
    "replayed": "volatile",  # how the call was answered, not what it said
}

#: The parts of a canonical request that are compared. The URL's host and port, and the headers
#: (redacted keys, SDK versions, idempotency keys), change with where and when a run happened;
#: what was asked is the method, the path, the query and the body.
REQUEST_FIELDS: Final[tuple[str, ...]] = ("method", "path", "query", "body_format", "body")

STATE_FIELDS: Final[dict[str, Role]] = {
    "execution_id": "volatile",
    "step_id": "key",
    "name": "key",
    "seq": "key",  # orders states of the same name
    "blob_hash": "volatile",  # a hash of the value: derived from a compared field
    "value": "content",
    "recorded_at": "volatile",  # used to find the step occurrence a state belongs to
}

#: The numeric fields reported as deltas, under the metric name they are reported as.
EXECUTION_METRICS: Final[dict[str, str]] = {
    "cost_usd": "cost_usd",
    "tokens_in": "tokens_in",
    "tokens_out": "tokens_out",
    "duration_s": "latency_s",
}
STEP_METRICS: Final[dict[str, str]] = {"duration_s": "latency_s"}
CALL_METRICS: Final[dict[str, str]] = {
    "cost_usd": "cost_usd",
    "input_tokens": "tokens_in",
    "output_tokens": "tokens_out",
    "cache_read_tokens": "cache_read_tokens",
    "cache_write_tokens": "cache_write_tokens",
    "latency_s": "latency_s",
    "ttft_s": "ttft_s",
}


def content_fields(fields: dict[str, Role]) -> tuple[str, ...]:
    """The compared fields of one record type, in declaration order."""
    return tuple(name for name, role in fields.items() if role == "content")
