"""What each page shows, as JSON-ready values built from the store's records.

Owns the shape of every ``/api/`` answer (documented in ``docs/ui.md``): a run list page, a run
with its trace tree, a step, a model call as a chat, a diff (the diff engine's own records, with
word segments for changed texts), daily costs with budgets, a profile. It reads records and
returns plain dicts; it does not touch HTTP (``_app``) nor SQL (the store's).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from workbench._json import to_jsonable
from workbench.records import ErrorInfo, Execution, ModelCall, Profile, Span, Step
from workbench.store import CallTiming, DailyCosts, RunPage, RunSummary
from workbench.ui._chat import chat_messages, response_messages

if TYPE_CHECKING:
    from workbench.diff import Difference, ExecutionDiff

__all__ = [
    "budgets_json",
    "call_json",
    "costs_json",
    "diff_json",
    "profile_json",
    "run_json",
    "run_page_json",
    "step_json",
    "trace_json",
]

#: Chunk arrival ticks kept per streamed call in the trace (all are in the call's own view).
MAX_TICKS = 200
#: A changed text longer than this is word-diffed on its first part only (a page stays usable).
MAX_DIFF_TEXT = 20_000


def _error(error: ErrorInfo | None) -> dict[str, str] | None:
    return None if error is None else error.to_json()


def summary_json(run: RunSummary) -> dict[str, Any]:
    return {
        "id": run.id,
        "pipeline_id": run.pipeline_id,
        "pipeline_version": run.pipeline_version,
        "status": run.status,
        "success": run.success,
        "user_id": run.user_id,
        "environment": run.environment,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "duration_s": run.duration_s,
        "cost_usd": run.cost_usd,
        "tokens_in": run.tokens_in,
        "tokens_out": run.tokens_out,
        "model_calls": run.model_calls,
        "replay_of": run.replay_of,
        "sampled": run.sampled,
        "debug": run.debug,
        "error": None
        if run.error_type is None
        else {"type": run.error_type, "message": run.error_message},
    }


def run_page_json(page: RunPage) -> dict[str, Any]:
    return {
        "total": page.total,
        "offset": page.offset,
        "limit": page.limit,
        "sort": page.sort,
        "order": "desc" if page.descending else "asc",
        "runs": [summary_json(run) for run in page.runs],
    }


def _execution_fields(run: Execution) -> dict[str, Any]:
    return {
        "id": run.id,
        "pipeline_id": run.pipeline_id,
        "pipeline_version": run.pipeline_version,
        "entrypoint": run.entrypoint,
        "status": run.status,
        "success": run.success,
        "error": _error(run.error),
        "user_id": run.user_id,
        "environment": run.environment,
        "session_id": run.session_id,
        "sampled": run.sampled,
        "debug": run.debug,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "duration_s": run.duration_s,
        "cost_usd": run.cost_usd,
        "tokens_in": run.tokens_in,
        "tokens_out": run.tokens_out,
        "model_calls": len(run.model_calls),
        "replay_of": run.replay_of,
        "modifications": to_jsonable(run.modifications),
        "code_version": run.code_version,
        "metadata": to_jsonable(run.metadata),
        "inputs": to_jsonable(run.inputs),
        "outputs": to_jsonable(run.outputs),
        "trace_id": run.trace_id,
    }


def _call_row(call: CallTiming, t0: float, depth: int, parent: str) -> dict[str, Any]:
    end = None if call.latency_s is None else call.started_at - t0 + call.latency_s
    ticks = [round(offset, 6) for offset in call.chunk_offsets]
    if len(ticks) > MAX_TICKS:
        step = len(ticks) / MAX_TICKS
        ticks = [ticks[int(i * step)] for i in range(MAX_TICKS)]
    return {
        "key": f"call:{call.id}",
        "kind": "model_call",
        "name": f"{call.model or call.operation} ({call.provider})",
        "depth": depth,
        "parent": parent,
        "start": call.started_at - t0,
        "end": end,
        "status": "error" if call.failed else "ok",
        "call_id": call.id,
        "step_id": call.step_id,
        "streamed": call.streamed,
        "ttft_s": call.ttft_s,
        "chunks": ticks,
        "cost_usd": call.cost_usd,
        "tokens": (call.input_tokens or 0) + (call.output_tokens or 0),
    }


def trace_json(run: Execution, calls: Sequence[CallTiming]) -> dict[str, Any]:
    """The run's trace as rows in drawing order: execution, then each span's children (child
    spans and the model calls made in it) by start time, each row with its depth and parent.

    Steps are drawn as their spans (a step row carries its ``step_id`` and ``occurrence``); a
    step recorded without a span (an unsampled run keeps steps but no spans) is drawn under the
    execution, and its calls under it.
    """
    t0 = run.started_at
    spans: dict[str, Span] = {s.span_id: s for s in run.spans}
    step_of_span = {s.span_id: s for s in run.steps if s.span_id in spans}
    children: dict[str | None, list[tuple[float, str, Any]]] = {}
    root_key = "execution"
    roots = [s for s in run.spans if s.parent_span_id not in spans]
    execution_span = next((s for s in roots if s.kind == "execution"), None)
    for span in run.spans:
        if span is execution_span:
            continue
        parent = span.parent_span_id if span.parent_span_id in spans else None
        if parent is not None and execution_span is not None and parent == execution_span.span_id:
            parent = None
        children.setdefault(parent, []).append((span.start, "span", span))
    spanless = [s for s in run.steps if s.span_id not in spans]
    for step in spanless:
        children.setdefault(None, []).append((step.started_at, "step", step))
    spanless_keys = {(s.step_id, s.occurrence) for s in spanless}
    for call in calls:
        owner: str | None = call.span_id if call.span_id in spans else None
        if owner is not None and execution_span is not None and owner == execution_span.span_id:
            owner = None
        if owner is None and (call.step_id, call.step_occurrence) in spanless_keys:
            owner = f"step:{call.step_id}#{call.step_occurrence}"
        children.setdefault(owner, []).append((call.started_at, "call", call))
    end = run.ended_at
    rows: list[dict[str, Any]] = [
        {
            "key": root_key,
            "kind": "execution",
            "name": run.pipeline_id,
            "depth": 0,
            "parent": None,
            "start": 0.0,
            "end": None if end is None else end - t0,
            "status": run.status,
        }
    ]

    def walk(owner: str | None, parent_key: str, depth: int) -> None:
        for _, kind, item in sorted(children.get(owner, ()), key=lambda c: (c[0], c[1])):
            if kind == "call":
                rows.append(_call_row(item, t0, depth, parent_key))
                continue
            if kind == "step":
                key = f"step:{item.step_id}#{item.occurrence}"
                rows.append(_step_row(item, t0, depth, parent_key, key))
                walk(key, key, depth + 1)
                continue
            span: Span = item
            key = f"span:{span.span_id}"
            step = step_of_span.get(span.span_id)
            if step is not None:
                rows.append(_step_row(step, t0, depth, parent_key, key))
            else:
                rows.append(
                    {
                        "key": key,
                        "kind": "span",
                        "name": span.name,
                        "depth": depth,
                        "parent": parent_key,
                        "start": span.start - t0,
                        "end": None if span.end is None else span.end - t0,
                        "status": span.status,
                    }
                )
            walk(span.span_id, key, depth + 1)

    walk(None, root_key, 1)
    longest = max((r["end"] or r["start"] for r in rows), default=0.0)
    return {"t0": t0, "duration_s": max(longest, run.duration_s or 0.0), "rows": rows}


def _step_row(step: Step, t0: float, depth: int, parent: str, key: str) -> dict[str, Any]:
    return {
        "key": key,
        "kind": "step",
        "name": step.step_id if not step.occurrence else f"{step.step_id} #{step.occurrence}",
        "depth": depth,
        "parent": parent,
        "start": step.started_at - t0,
        "end": None if step.ended_at is None else step.ended_at - t0,
        "status": step.status,
        "step_id": step.step_id,
        "occurrence": step.occurrence,
        "retries": step.retries,
    }


def run_json(run: Execution, calls: Sequence[CallTiming], replays: list[str]) -> dict[str, Any]:
    """Everything the run page shows at once: the run, its trace, states, logs, profiles.

    ``run`` may be read without its model calls (``get_execution(model_calls=False)``):
    ``calls`` are what the trace draws of them.
    """
    t0 = run.started_at
    fields = _execution_fields(run)
    fields["model_calls"] = len(calls)
    return {
        "run": fields,
        "replays": replays,
        "steps": [
            {"step_id": s.step_id, "occurrence": s.occurrence, "status": s.status}
            for s in run.steps
        ],
        "calls_by_step": sorted({c.step_id for c in calls if c.step_id}),
        "trace": trace_json(run, calls),
        "states": [
            {
                "step_id": s.step_id,
                "name": s.name,
                "seq": s.seq,
                "value": to_jsonable(s.value),
                "at": s.recorded_at - t0,
            }
            for s in run.states
        ],
        "logs": [
            {
                "at": r.created_at - t0,
                "level": r.level,
                "logger": r.logger,
                "message": r.message,
                "step_id": r.step_id,
                "fields": to_jsonable(r.fields),
            }
            for r in run.logs
        ],
        "profiles": [_profile_brief(p) for p in run.profiles],
    }


def step_json(run: Execution, step: Step) -> dict[str, Any]:
    t0 = run.started_at
    return {
        "execution_id": run.id,
        "step_id": step.step_id,
        "occurrence": step.occurrence,
        "parent_step_id": step.parent_step_id,
        "action": step.action,
        "status": step.status,
        "retries": step.retries,
        "start": step.started_at - t0,
        "duration_s": step.duration_s,
        "parameters": to_jsonable(step.parameters),
        "result": to_jsonable(step.result),
        "error": _error(step.error),
        "model_calls": [
            c.id
            for c in run.model_calls
            if c.step_id == step.step_id and c.step_occurrence == step.occurrence
        ],
        "states": [s.name for s in run.states if s.step_id == step.step_id],
    }


def call_json(run: Execution, call: ModelCall) -> dict[str, Any]:
    """A model call as the page draws it: the request as a chat, the answer, the stream."""
    request = call.request if isinstance(call.request, dict) else {}
    try:
        events = call.sse_events() if call.streamed else []
    except Exception:  # a stream that is not SSE (NDJSON, event stream): its chunks stay
        events = []
    return {
        "execution_id": run.id,
        "id": call.id,
        "step_id": call.step_id,
        "step_occurrence": call.step_occurrence,
        "provider": call.provider,
        "model": call.model,
        "operation": call.operation,
        "status_code": call.status_code,
        "streamed": call.streamed,
        "start": call.started_at - run.started_at,
        "latency_s": call.latency_s,
        "ttft_s": call.ttft_s,
        "input_tokens": call.input_tokens,
        "output_tokens": call.output_tokens,
        "cache_read_tokens": call.cache_read_tokens,
        "cache_write_tokens": call.cache_write_tokens,
        "tokens_estimated": call.tokens_estimated,
        "cost_usd": call.cost_usd,
        "finish_reason": call.finish_reason,
        "replayed": call.replayed,
        "error": _error(call.error),
        "stream_error": call.stream_error,
        "request_key": call.request_key,
        "occurrence": call.occurrence,
        "method": request.get("method"),
        "url": request.get("url"),
        "request_headers": to_jsonable(request.get("headers", {})),
        "response_headers": call.response_headers,
        "messages": chat_messages(request),
        "response_messages": response_messages(call.response, call.text),
        "request_body": to_jsonable(request.get("body")),
        "response": to_jsonable(call.response),
        "text": call.text,
        "events": [
            {"offset_s": offset, "event": event, "data": data} for offset, event, data in events
        ],
        "chunks": [{"offset_s": c.offset_s, "bytes": len(c.data)} for c in call.chunks],
    }


# -- diff ------------------------------------------------------------------------------------


def _segments(difference: Difference) -> list[list[str]] | None:
    before, after = difference.before, difference.after
    if difference.kind != "changed" or not isinstance(before, str) or not isinstance(after, str):
        return None
    from workbench.diff._text import word_segments

    return [[op, text] for op, text in word_segments(before[:MAX_DIFF_TEXT], after[:MAX_DIFF_TEXT])]


def _side(step: Step | None) -> dict[str, Any] | None:
    if step is None:
        return None
    return {"status": step.status, "duration_s": step.duration_s, "action": step.action}


def diff_json(diff: ExecutionDiff) -> dict[str, Any]:
    """The diff engine's JSON (``workbench.diff/1``) with what the side-by-side page adds:
    the steps of both runs aligned in the engine's merged order, which of them differ, and word
    segments for every changed text (the engine's own word diff)."""
    value = diff.to_json()
    for difference, entry in zip(diff.differences, value["differences"], strict=True):
        entry["segments"] = _segments(difference)
        entry["within"] = difference.within
    steps_a = {f"{s.step_id}#{s.occurrence}": s for s in diff.a.steps}
    steps_b = {f"{s.step_id}#{s.occurrence}": s for s in diff.b.steps}
    differing: dict[str, int] = {}
    for difference in diff.differences:
        if difference.step_id is not None:
            key = f"{difference.step_id}#{difference.occurrence}"
            differing[key] = differing.get(key, 0) + 1
    order = diff.step_order
    keys = sorted(steps_a.keys() | steps_b.keys(), key=lambda k: (order.get(k, len(order)), k))
    first = diff.first_divergent_step
    value["steps"] = [
        {
            "key": key,
            "a": _side(steps_a.get(key)),
            "b": _side(steps_b.get(key)),
            "differences": differing.get(key, 0),
            "first_divergent": key == first,
        }
        for key in keys
    ]
    for side, run in (("a", diff.a), ("b", diff.b)):
        value[side].update(
            {
                "cost_usd": run.cost_usd,
                "duration_s": run.duration_s,
                "tokens_in": run.tokens_in,
                "tokens_out": run.tokens_out,
                "replay_of": run.replay_of,
            }
        )
    return to_jsonable(value)  # type: ignore[no-any-return]


# -- costs and budgets -----------------------------------------------------------------------


def costs_json(costs: DailyCosts) -> dict[str, Any]:
    return {
        "by": costs.by,
        "timezone": costs.timezone,
        "days": [d.isoformat() for d in costs.days],
        "series": [
            {"name": name, "costs": list(values), "total": sum(values)}
            for name, values in costs.series.items()
        ],
        "totals": list(costs.totals),
        "total": sum(costs.totals),
        "calls": costs.calls,
        "unpriced_calls": costs.unpriced_calls,
    }


def budgets_json(
    limits: dict[str, float | None],
    spend: dict[str, float],
    per_user: dict[str, float],
    timezone: str,
) -> list[dict[str, Any]]:
    """Each budget set in ``cost_tracking.budgets`` and how much of it is spent."""
    budgets = []
    for name, period in (("daily", "today"), ("monthly", "this month")):
        limit = limits.get(f"{name}_limit")
        if limit is not None:
            spent = spend[name]
            budgets.append(
                {
                    "name": name,
                    "period": period,
                    "limit": limit,
                    "spent": spent,
                    "ratio": spent / limit if limit else None,
                    "user": None,
                }
            )
    limit = limits.get("per_user_limit")
    if limit is not None:
        for user, spent in per_user.items():
            budgets.append(
                {
                    "name": "per_user",
                    "period": "today",
                    "limit": limit,
                    "spent": spent,
                    "ratio": spent / limit if limit else None,
                    "user": user,
                }
            )
    return budgets


def period_starts(now: float, timezone: str) -> tuple[float, float]:
    """The Unix times today and this month began, in ``timezone`` (the budgets' periods)."""
    local = datetime.fromtimestamp(now, ZoneInfo(timezone))
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return day.timestamp(), day.replace(day=1).timestamp()


# -- profiles --------------------------------------------------------------------------------


def artifact_format(path: str) -> str:
    """What kind of file a profile artifact is, by its name: how the page shows it."""
    name = Path(path).name.lower()
    if name.endswith((".speedscope.json", ".json")):
        return "speedscope"
    if name.endswith((".html", ".htm")):
        return "html"
    if name.endswith((".pstat", ".prof", ".pstats")):
        return "pstat"
    return "file"


def _artifacts(profile: Profile) -> list[dict[str, Any]]:
    found = []
    seen = set()
    for role, path in [("main", profile.path), *profile.summary.artifacts.items()]:
        if not path or path in seen:
            continue
        seen.add(path)
        found.append(
            {
                "role": role,
                "name": Path(path).name,
                "format": artifact_format(path),
                "available": Path(path).is_file(),
            }
        )
    return found


def _profile_brief(profile: Profile) -> dict[str, Any]:
    return {
        "id": profile.id,
        "kind": profile.kind,
        "trigger": profile.trigger,
        "sampler": profile.summary.sampler,
        "error": profile.summary.error,
        "created_at": profile.created_at,
    }


def profile_json(profile: Profile) -> dict[str, Any]:
    summary = profile.summary
    return {
        **_profile_brief(profile),
        "execution_id": profile.execution_id,
        "path": profile.path,
        "duration_s": summary.duration_s,
        "samples": summary.samples,
        "peak_bytes": summary.peak_bytes,
        "notes": list(summary.notes),
        "observation": to_jsonable(summary.observation),
        "top_functions": [
            {
                "name": f.name,
                "file": f.file,
                "line": f.line,
                "self": f.self_value,
                "total": f.total_value,
                "count": f.count,
                "unit": f.unit,
            }
            for f in summary.top_functions
        ],
        "top_stacks": [
            {"size": s.size, "allocations": s.allocations, "frames": [list(f) for f in s.frames]}
            for s in summary.top_stacks
        ],
        "artifacts": _artifacts(profile),
    }


def artifact_path(profile: Profile, role: str) -> Path | None:
    """The file behind one of a profile's artifacts, only ever one the profile names."""
    path = profile.path if role == "main" else profile.summary.artifacts.get(role)
    return Path(path) if path else None


def today_in(timezone: str) -> date:
    return datetime.now(ZoneInfo(timezone)).date()
