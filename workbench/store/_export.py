"""Executions as canonical JSON files a reviewer reads in a pull request, and read back.

Owns the document of one execution (:func:`execution_document`: the execution's fields, inputs
and outputs, its steps, model calls with their requests, response bodies and stream chunks,
states, spans, logs and profiles), its canonical text (:func:`dumps`: sorted keys, two-space
indent, one trailing newline, so the same execution is always the same bytes), writing one file
per execution (:func:`export_executions`), reading such files back into a store
(:func:`import_executions`, through :meth:`Store.import_rows`) and the text of a whole store for
``git diff`` (:func:`store_text`). It reads through the store's public API and writes the rows
the recorder would have; it knows no SQL.

What a recording holds is already redacted (the store keeps no secret); the document is also
passed through :func:`~workbench.redaction.scrub_output`, as every other output is. Values the
store derives (a blob's hash, a call's parsed response, the stream's assembled answer) are left
out: they come back from what is kept.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson

from workbench._json import encode, to_jsonable
from workbench.exceptions import ExecutionNotFoundError, StoreError
from workbench.records import (
    ErrorInfo,
    Execution,
    ModelCall,
    Profile,
    Step,
)
from workbench.redaction import scrub_output
from workbench.store._codec import blob_hash
from workbench.store._sql import CALL_COLUMNS, EXEC_COLUMNS
from workbench.store._store import Store

__all__ = [
    "FORMAT",
    "by_column",
    "copy_executions",
    "dumps",
    "execution_document",
    "export_executions",
    "export_text",
    "import_executions",
    "store_text",
]

#: The ``format`` of an exported execution: a reader refuses a format it does not know.
FORMAT = "workbench.execution/1"
Rows = dict[str, list[tuple[Any, ...]]]


# -- out ---------------------------------------------------------------------------------------


def _bytes(data: bytes) -> str | dict[str, str]:
    """Text a reviewer reads when it is UTF-8; base64 under ``{"base64": ...}`` otherwise."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}


def _error(error: ErrorInfo | None) -> dict[str, str] | None:
    return None if error is None else error.to_json()


def _step(step: Step) -> dict[str, Any]:
    return {
        "step_id": step.step_id,
        "occurrence": step.occurrence,
        "span_id": step.span_id,
        "parent_step_id": step.parent_step_id,
        "action": step.action,
        "parameters": step.parameters,
        "result": step.result,
        "error": _error(step.error),
        "status": step.status,
        "retries": step.retries,
        "started_at": step.started_at,
        "ended_at": step.ended_at,
        "duration_s": step.duration_s,
    }


def _call(call: ModelCall) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": call.id,
        "span_id": call.span_id,
        "step_id": call.step_id,
        "step_occurrence": call.step_occurrence,
        "provider": call.provider,
        "model": call.model,
        "operation": call.operation,
        "request": call.request,
        "request_key": call.request_key,
        "occurrence": call.occurrence,
        "started_at": call.started_at,
        "status_code": call.status_code,
        "response_headers": call.response_headers,
        "streamed": call.streamed,
        "input_tokens": call.input_tokens,
        "output_tokens": call.output_tokens,
        "cache_read_tokens": call.cache_read_tokens,
        "cache_write_tokens": call.cache_write_tokens,
        "tokens_estimated": call.tokens_estimated,
        "cost_usd": call.cost_usd,
        "ttft_s": call.ttft_s,
        "latency_s": call.latency_s,
        "finish_reason": call.finish_reason,
        "text": call.text,
        "error": _error(call.error),
        "stream_error": call.stream_error,
        "replayed": call.replayed,
    }
    if call.streamed:
        # Each read as the caller got it, at the moment it came: what a replay serves.
        document["chunks"] = [
            {"offset_s": chunk.offset_s, "data": _bytes(chunk.data)} for chunk in call.chunks
        ]
    else:
        document["body"] = _bytes(call.chunks[-1].data) if call.chunks else None
    return document


def _fields(record: Any, *left_out: str) -> dict[str, Any]:
    """A record's fields, less those the document holds once (the execution's id) or that
    the store derives (a state's blob hash)."""
    return {
        field.name: getattr(record, field.name)
        for field in dataclasses.fields(record)
        if field.name not in left_out
    }


def _profile(profile: Profile) -> dict[str, Any]:
    return {
        "id": profile.id,
        "kind": profile.kind,
        "trigger": profile.trigger,
        "path": profile.path,
        "summary": dataclasses.asdict(profile.summary),
        "created_at": profile.created_at,
    }


def execution_document(execution: Execution) -> dict[str, Any]:
    """``execution`` (read with its children) as the JSON-able document an export file holds."""
    fields = {
        "id": execution.id,
        "pipeline_id": execution.pipeline_id,
        "pipeline_version": execution.pipeline_version,
        "entrypoint": execution.entrypoint,
        "inputs": execution.inputs,
        "outputs": execution.outputs,
        "status": execution.status,
        "success": execution.success,
        "error": _error(execution.error),
        "user_id": execution.user_id,
        "session_id": execution.session_id,
        "environment": execution.environment,
        "sampled": execution.sampled,
        "debug": execution.debug,
        "started_at": execution.started_at,
        "ended_at": execution.ended_at,
        "duration_s": execution.duration_s,
        "cost_usd": execution.cost_usd,
        "tokens_in": execution.tokens_in,
        "tokens_out": execution.tokens_out,
        "replay_of": execution.replay_of,
        "modifications": execution.modifications,
        "code_version": execution.code_version,
        "metadata": execution.metadata,
        "trace_id": execution.trace_id,
        "experiment_id": execution.experiment_id,
    }
    document = {
        "format": FORMAT,
        "execution": fields,
        "steps": [_step(step) for step in execution.steps],
        "model_calls": [_call(call) for call in execution.model_calls],
        "states": [_fields(state, "execution_id", "blob_hash") for state in execution.states],
        "spans": [_fields(span, "execution_id") for span in execution.spans],
        "logs": [_fields(log, "execution_id") for log in execution.logs],
        "profiles": [_profile(profile) for profile in execution.profiles],
    }
    scrubbed: dict[str, Any] = scrub_output(to_jsonable(document))  # type: ignore[assignment]
    return scrubbed


def dumps(document: Any) -> str:
    """The canonical text of a document: the same content is always the same bytes (sorted
    keys, two-space indent, UTF-8 as is, one trailing newline)."""
    try:
        text = orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        # Past orjson's reach (an int over 64 bits, deep nesting): the standard library's,
        # laid out alike.
        return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return text.decode("utf-8") + "\n"


def _selected(
    store: Store, execution_ids: Sequence[str], pipeline_id: str | None
) -> list[Execution]:
    if execution_ids:
        return [store.get_execution(execution_id) for execution_id in execution_ids]
    listed = store.list_executions(pipeline_id=pipeline_id, limit=None)
    # Oldest first, ties by id: a listing (and store_text) that does not depend on insertion.
    ordered = sorted(listed, key=lambda e: (e.started_at, e.id))
    return [store.get_execution(execution.id) for execution in ordered]


def export_executions(
    store: Store,
    folder: Path,
    *,
    execution_ids: Sequence[str] = (),
    pipeline_id: str | None = None,
) -> list[Path]:
    """Write ``<execution id>.json`` in ``folder`` for each execution chosen (these ids, else
    those of ``pipeline_id``, else all); the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for execution in _selected(store, execution_ids, pipeline_id):
        path = folder / f"{execution.id}.json"
        path.write_text(dumps(execution_document(execution)), encoding="utf-8")
        written.append(path)
    return written


def export_text(
    store: Store, *, execution_ids: Sequence[str] = (), pipeline_id: str | None = None
) -> str:
    """The files :func:`export_executions` would write, one after another, as one text."""
    chosen = _selected(store, execution_ids, pipeline_id)
    return "".join(dumps(execution_document(execution)) for execution in chosen)


def store_text(store: Store) -> str:
    """Every execution of ``store``, oldest first, as one text: for ``git diff``'s textconv."""
    return export_text(store)


# -- in ----------------------------------------------------------------------------------------


def _data(value: Any, where: str) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict) and isinstance(value.get("base64"), str):
        return base64.b64decode(value["base64"])
    raise StoreError(f"{where}: expected text or {{'base64': ...}}, got {value!r:.80}")


def _json_text(value: Any) -> str:
    return encode(value).decode()


def _error_text(value: Any) -> str | None:
    return None if value is None else _json_text(value)


class _Rows:
    """The rows of one imported execution, with the blobs they name."""

    def __init__(self) -> None:
        self.rows: Rows = {}
        self._blobs: set[str] = set()

    def add(self, kind: str, row: tuple[Any, ...]) -> None:
        self.rows.setdefault(kind, []).append(row)

    def blob(self, data: bytes) -> str:
        digest = blob_hash(data)
        if digest not in self._blobs:
            self._blobs.add(digest)
            self.add("blob", (digest, data))
        return digest

    def value(self, value: Any) -> str | None:
        """The blob of a recorded value (``None`` stays without one, as the recorder leaves an
        output never set)."""
        return None if value is None else self.blob(encode(value))


def _call_row(rows: _Rows, execution_id: str, call: dict[str, Any], where: str) -> tuple[Any, ...]:
    streamed = bool(call["streamed"])
    index = None
    if streamed:
        pieces = [_data(c["data"], f"{where} chunk") for c in call.get("chunks") or ()]
        body = b"".join(pieces)
        marks, previous = [], 0
        for chunk, piece in zip(call.get("chunks") or (), pieces, strict=True):
            micros = round(chunk["offset_s"] * 1_000_000)
            marks.append([micros - previous, len(piece)])
            previous = micros
        index = json.dumps(marks, separators=(",", ":")) if marks else None
    else:
        body = b"" if call.get("body") is None else _data(call["body"], f"{where} body")
    values = {
        "id": call["id"],
        "execution_id": execution_id,
        "span_id": call["span_id"],
        "step_id": call["step_id"],
        "step_occurrence": call["step_occurrence"],
        "provider": call["provider"],
        "model": call["model"],
        "operation": call["operation"],
        "request_hash": rows.value(call["request"]),
        "status_code": call["status_code"],
        "response_headers": _json_text(call["response_headers"]),
        "streamed": int(streamed),
        "body_hash": rows.blob(body) if body else None,
        "chunks": index,
        "tokens_estimated": int(bool(call["tokens_estimated"])),
        "error": _error_text(call["error"]),
        "replayed": int(bool(call["replayed"])),
    }
    for name in (
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "cost_usd",
        "ttft_s",
        "latency_s",
        "finish_reason",
        "text",
        "request_key",
        "occurrence",
        "started_at",
        "stream_error",
    ):
        values[name] = call[name]
    return by_column(CALL_COLUMNS, values)


def document_rows(document: Any, where: str) -> tuple[str, Rows]:
    """The execution id and the store rows of one exported document (``where`` names it in
    errors)."""
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise StoreError(
            f"{where} is not an exported workbench execution (format {found!r}, expected "
            f"{FORMAT!r}); write it with `workbench store export`"
        )
    try:
        return _rows_of(document)
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreError(
            f"{where} is a damaged export ({type(exc).__name__}: {exc}); export the execution "
            f"again with `workbench store export`"
        ) from exc


def by_column(columns: Sequence[str], values: dict[str, Any]) -> tuple[Any, ...]:
    """A row in the table's column order from values named by column; a column without a
    value, or a value for no column, is a :class:`StoreError` (a schema this module has not
    caught up with), never a row shifted by one."""
    if set(values) != set(columns):
        missing, extra = sorted(set(columns) - set(values)), sorted(set(values) - set(columns))
        raise StoreError(
            f"import rows out of date with the schema: missing {missing}, extra {extra}"
        )
    return tuple(values[column] for column in columns)


def _execution_row(rows: _Rows, execution_id: str, e: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": execution_id,
        "pipeline_id": e["pipeline_id"],
        "pipeline_version": e["pipeline_version"],
        "entrypoint": e["entrypoint"],
        "inputs_hash": rows.value(e["inputs"]),
        "outputs_hash": rows.value(e["outputs"]),
        "status": e["status"],
        "success": None if e["success"] is None else int(bool(e["success"])),
        "error": _error_text(e["error"]),
        "user_id": e["user_id"],
        "session_id": e.get("session_id"),  # absent from files exported before sessions
        "environment": e["environment"],
        "sampled": int(bool(e["sampled"])),
        "debug": int(bool(e["debug"])),
        "started_at": e["started_at"],
        "ended_at": e["ended_at"],
        "duration_s": e["duration_s"],
        "cost_usd": e["cost_usd"],
        "tokens_in": e["tokens_in"],
        "tokens_out": e["tokens_out"],
        "replay_of": e["replay_of"],
        "modifications": _json_text(e["modifications"]),
        "code_version": e["code_version"],
        "metadata": _json_text(e["metadata"]),
        "trace_id": e["trace_id"],
        # An imported execution runs in no process here: no owner to judge alive.
        "pid": None,
        "host": None,
        "proc_start": None,
        "experiment_id": e.get("experiment_id"),  # absent from files exported before experiments
    }


def _rows_of(document: dict[str, Any]) -> tuple[str, Rows]:
    e = document["execution"]
    execution_id = str(e["id"])
    rows = _Rows()
    rows.add("exec", by_column(EXEC_COLUMNS, _execution_row(rows, execution_id, e)))
    for s in document["steps"]:
        rows.add(
            "step",
            (
                execution_id,
                s["step_id"],
                s["occurrence"],
                s["span_id"],
                s["parent_step_id"],
                s["action"],
                rows.value(s["parameters"]),
                rows.value(s["result"]),
                _error_text(s["error"]),
                s["status"],
                s["retries"],
                s["started_at"],
                s["ended_at"],
                s["duration_s"],
            ),
        )
    for n, call in enumerate(document["model_calls"]):
        rows.add("call", _call_row(rows, execution_id, call, f"model call {n}"))
    for state in document["states"]:
        rows.add(
            "state",
            (
                execution_id,
                state["step_id"],
                state["name"],
                state["seq"],
                rows.blob(encode(state["value"])),
                state["recorded_at"],
            ),
        )
    for span in document["spans"]:
        rows.add(
            "span",
            (
                span["span_id"],
                span["trace_id"],
                span["parent_span_id"],
                execution_id,
                span["name"],
                span["kind"],
                _json_text(span["attributes"]),
                _json_text(span["events"]) if span["events"] else None,
                span["status"],
                span["start"],
                span["end"],
            ),
        )
    for log in document["logs"]:
        rows.add(
            "log",
            (
                execution_id,
                log["trace_id"],
                log["span_id"],
                log["step_id"],
                log["level"],
                log["logger"],
                log["message"],
                _json_text(log["fields"]),
                log["created_at"],
            ),
        )
    for profile in document["profiles"]:
        rows.add(
            "profile",
            (
                profile["id"],
                execution_id,
                profile["kind"],
                profile["trigger"],
                profile["path"],
                _json_text(profile["summary"]),
                profile["created_at"],
            ),
        )
    return execution_id, rows.rows


def import_documents(store: Store, documents: Iterable[tuple[str, Any]]) -> list[str]:
    """Write exported documents (``(where, document)`` pairs) into ``store``, each replacing
    an execution of the same id; the ids imported."""
    ids: list[str] = []
    merged: Rows = {}
    for where, document in documents:
        execution_id, rows = document_rows(document, where)
        ids.append(execution_id)
        for kind, kind_rows in rows.items():
            merged.setdefault(kind, []).extend(kind_rows)
    if ids:
        store.import_rows(merged, ids)
    return ids


def copy_executions(
    source: Store, target: Store, execution_ids: Sequence[str], *, skip_missing: bool = False
) -> list[str]:
    """Copy executions from ``source`` into ``target`` whole, as an export and an import
    would (replacing executions of the same ids there); the ids copied. ``skip_missing``
    passes over ids ``source`` does not hold instead of raising."""
    documents = []
    for execution_id in execution_ids:
        try:
            execution = source.get_execution(execution_id)
        except ExecutionNotFoundError:
            if skip_missing:
                continue
            raise
        documents.append(
            (f"execution {execution_id} of {source.path}", execution_document(execution))
        )
    return import_documents(target, documents)


def copy_store(
    source: Store,
    target: Store,
    execution_ids: Sequence[str],
    *,
    progress: Callable[[int], None] | None = None,
    chunk: int = 50,
) -> list[str]:
    """``workbench store copy``: :func:`copy_executions` in chunks of ``chunk`` executions
    (one transaction each, so memory stays bounded), reporting each chunk to ``progress``;
    the ids copied. Ids ``source`` does not hold are an error, named."""
    copied: list[str] = []
    for start in range(0, len(execution_ids), chunk):
        part = list(execution_ids[start : start + chunk])
        copied.extend(copy_executions(source, target, part))
        if progress is not None:
            progress(len(part))
    return copied


def import_executions(store: Store, folder: Path) -> list[str]:
    """Read every ``*.json`` export in ``folder`` (a file, too) into ``store``; the ids."""
    if folder.is_file():
        files = [folder]
    elif folder.is_dir():
        files = sorted(folder.glob("*.json"))
    else:
        raise StoreError(f"no folder or file {folder}; give what `workbench store export` wrote")

    def documents() -> Iterable[tuple[str, Any]]:
        for path in files:
            try:
                yield str(path), json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise StoreError(f"cannot read {path}: {exc}") from exc

    return import_documents(store, documents())
