"""Notebook views: the HTML that Jupyter shows for an ``Execution``, ``ModelCall``, ``Step`` and
the result of ``list_executions()``.

Owns rendering records as compact HTML tables (a prompt as chat bubbles, a long value collapsed
in a ``<details>`` element), escaped throughout. It reads records only; the records' own
``_repr_html_`` methods call it, so it is imported when a notebook first shows one.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from workbench._money import spent, usd
from workbench.records import Execution, ModelCall, Step

__all__ = ["execution_html", "executions_html", "model_call_html", "step_html"]

#: A value longer than this (as text) is shown collapsed, its first characters as the summary.
COLLAPSE_AT = 120
_STYLE = (
    "<style>.wb td,.wb th{text-align:left;vertical-align:top;padding:2px 8px}"
    ".wb .bubble{border-radius:8px;padding:4px 8px;margin:2px 0;max-width:48em;"
    "white-space:pre-wrap}.wb .user{background:#e8f0fe}.wb .assistant{background:#e6f4ea}"
    ".wb .system{background:#f1f3f4;font-style:italic}</style>"
)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, indent=1, default=str)


def value_html(value: Any) -> str:
    """One value, escaped; collapsed behind its first characters when long."""
    text = _text(value)
    if len(text) <= COLLAPSE_AT and "\n" not in text:
        return f"<code>{html.escape(text)}</code>"
    summary = html.escape(text[:60].replace("\n", " "))
    return (
        f"<details><summary><code>{summary}…</code> ({len(text):,} characters)</summary>"
        f"<pre>{html.escape(text)}</pre></details>"
    )


def _table(rows: Iterable[tuple[str, str]]) -> str:
    cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


def _when(moment: float | None) -> str:
    if moment is None:
        return ""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.3f} s"


def chat_html(messages: Sequence[Any]) -> str:
    """A request's messages as chat bubbles, one per message, coloured by role."""
    bubbles = []
    for message in messages:
        if not isinstance(message, dict):
            bubbles.append(f"<div class='bubble'>{value_html(message)}</div>")
            continue
        role = str(message.get("role", ""))
        content = message.get("content")
        body = html.escape(_text(content)) if content is not None else value_html(message)
        css = role if role in ("user", "assistant", "system") else "system"
        bubbles.append(f"<div class='bubble {css}'><b>{html.escape(role)}</b>: {body}</div>")
    return "".join(bubbles)


def model_call_html(call: ModelCall) -> str:
    messages = _messages(call)
    prompt = chat_html(messages) if messages else value_html(call.request)
    tokens = f"{call.input_tokens or 0:,} in / {call.output_tokens or 0:,} out"
    rows = [
        (
            "call",
            f"<code>{html.escape(call.id)}</code> {html.escape(call.provider)} "
            f"{html.escape(call.operation)} <b>{html.escape(call.model or '')}</b>",
        ),
        ("status", html.escape(str(call.status_code))),
        ("tokens", tokens + (" (estimated)" if call.tokens_estimated else "")),
        ("cost", spent(call.cost_usd, replay=call.replayed)),
        ("latency", f"{_seconds(call.latency_s)} (first token {_seconds(call.ttft_s)})"),
        ("prompt", prompt),
        (
            "answer",
            chat_html([{"role": "assistant", "content": call.text}])
            if call.text is not None
            else value_html(call.response),
        ),
    ]
    if call.error is not None:
        rows.append(("error", value_html(f"{call.error.type}: {call.error.message}")))
    return f"<div class='wb'>{_STYLE}{_table(rows)}</div>"


def step_html(step: Step) -> str:
    rows = [
        (
            "step",
            f"<b>{html.escape(step.step_id)}</b> #{step.occurrence} {html.escape(step.status)}",
        ),
        ("duration", _seconds(step.duration_s)),
        ("parameters", value_html(step.parameters)),
        ("result", value_html(step.result)),
    ]
    if step.retries:
        rows.append(("retries", str(step.retries)))
    if step.error is not None:
        rows.append(("error", value_html(f"{step.error.type}: {step.error.message}")))
    return f"<div class='wb'>{_STYLE}{_table(rows)}</div>"


def _execution_cost(execution: Execution) -> str:
    """As ``workbench runs show`` says it: a replay spent nothing, and its calls sent live
    would have cost this."""
    if execution.replay_of is None:
        return usd(execution.cost_usd)
    return f"{spent(None, replay=True)}; as live calls: {usd(execution.cost_usd)}"


def execution_html(execution: Execution) -> str:
    replay = execution.replay_of is not None
    rows = [
        (
            "execution",
            f"<code>{html.escape(execution.id)}</code> "
            f"<b>{html.escape(execution.pipeline_id)}</b> {html.escape(execution.status)}",
        ),
        ("started", _when(execution.started_at)),
        ("duration", _seconds(execution.duration_s)),
        ("cost", _execution_cost(execution)),
        ("tokens", f"{execution.tokens_in:,} in / {execution.tokens_out:,} out"),
        ("inputs", value_html(execution.inputs)),
        ("outputs", value_html(execution.outputs)),
    ]
    if execution.error is not None:
        rows.append(("error", value_html(f"{execution.error.type}: {execution.error.message}")))
    steps = "".join(
        f"<tr><td>{html.escape(s.step_id)}</td><td>{html.escape(s.status)}</td>"
        f"<td>{_seconds(s.duration_s)}</td><td>{value_html(s.result)}</td></tr>"
        for s in execution.steps
    )
    calls = "".join(
        f"<tr><td>{html.escape(c.model or '')}</td>"
        f"<td>{spent(c.cost_usd, replay=replay or c.replayed)}</td>"
        f"<td>{_seconds(c.latency_s)}</td><td>{chat_html(_messages(c))}</td></tr>"
        for c in execution.model_calls
    )
    parts = [_STYLE, _table(rows)]
    if steps:
        parts.append(
            "<details><summary>steps</summary><table><tr><th>step</th><th>status</th>"
            f"<th>duration</th><th>result</th></tr>{steps}</table></details>"
        )
    if calls:
        parts.append(
            "<details><summary>model calls</summary><table><tr><th>model</th>"
            f"<th>cost</th><th>latency</th><th>prompt</th></tr>{calls}</table></details>"
        )
    return f"<div class='wb'>{''.join(parts)}</div>"


def executions_html(executions: Sequence[Execution], damaged: dict[str, str] | None = None) -> str:
    """A compact table, one execution a row (newest first, as listed)."""
    head = "".join(
        f"<th>{name}</th>"
        for name in ("id", "pipeline", "status", "started", "duration", "cost", "tokens")
    )
    rows = "".join(
        f"<tr><td><code>{html.escape(e.id)}</code></td><td>{html.escape(e.pipeline_id)}</td>"
        f"<td>{html.escape(e.status)}</td><td>{_when(e.started_at)}</td>"
        f"<td>{_seconds(e.duration_s)}</td>"
        f"<td>{spent(e.cost_usd, replay=e.replay_of is not None)}</td>"
        f"<td>{e.tokens_in + e.tokens_out:,}</td></tr>"
        for e in executions
    )
    note = "".join(
        f"<p>damaged: <code>{html.escape(i)}</code> {html.escape(why)}</p>"
        for i, why in (damaged or {}).items()
    )
    return (
        f"<div class='wb'>{_STYLE}<table><tr>{head}</tr>{rows}</table>"
        f"<p>{len(executions)} execution(s)</p>{note}</div>"
    )


def _messages(call: ModelCall) -> list[Any]:
    """The chat messages of a call's canonical request (its JSON body), or none."""
    request = call.request if isinstance(call.request, dict) else {}
    body = request.get("body")
    body = body if isinstance(body, dict) else {}
    messages = body.get("messages") or body.get("input")
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    return messages if isinstance(messages, list) else []
