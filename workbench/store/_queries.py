"""The store's public read queries: what budgets, cost reports, health, alerts, performance,
resources, ``serve-metrics`` and the trace exporter ask of a store, answered as typed records
(``_aggregates``).

Every query is a SQLAlchemy Core statement over ``_tables``, run by ``Store._read`` on the
store's backend, and written to mean the same on SQLite and PostgreSQL: booleans are counted
with ``CASE``, never summed; ``IS NOT 1`` is spelled ``IS NULL OR != 1``; no two-argument
``MIN``; days are cut by the caller's moments (its time zone's midnights), never by a date
function of one dialect. So nothing above ``workbench/store/`` writes SQL.

One exception to "through ``_read``": :meth:`Queries.ledger_since`, on every model call while a
budget is set, must cost a few microseconds (and :meth:`Queries.ledger_user_total`, once per
user and day). ``_read`` costs ~250 µs a statement here (a pooled connection checked out, the
statement looked up in SQLAlchemy's cache, a result built); so on SQLite these two are compiled
once and run on the store's own reader connection (~10 µs). A backend without such a connection
runs them through ``_read``.

Owns no writes and no row decoding beyond these records (``_rows`` decodes records).
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from workbench._json import decode
from workbench.exceptions import StoreError
from workbench.records import Execution, Span
from workbench.store import _rows as rows
from workbench.store._aggregates import (
    CostGroup,
    ExecutionAggregate,
    ExecutionOutcome,
    ExecutionTiming,
    Histogram,
    LedgerEntry,
    LedgerSnapshot,
    ModelCallAggregate,
    ModelCallFailure,
    ModelCallTiming,
    StepAggregate,
    StepTiming,
)
from workbench.store._errors import store_error
from workbench.store._tables import table

if TYPE_CHECKING:
    import sqlalchemy as sa

__all__ = ["Queries"]

_EXECUTION_GROUPS = ("pipeline_id", "status")
_STEP_GROUPS = ("pipeline_id", "step_id", "status")
_CALL_GROUPS = ("provider", "model", "pipeline_id", "in_replay")


def _sa() -> Any:
    import sqlalchemy

    return sqlalchemy


def _count_if(condition: Any) -> Any:
    sa = _sa()
    return sa.func.sum(sa.case((condition, 1), else_=0))


def _histogram_columns(column: Any, bounds: Sequence[float], prefix: str) -> list[Any]:
    sa = _sa()
    return [
        sa.func.count(column).label(f"{prefix}_count"),
        sa.func.sum(column).label(f"{prefix}_total"),
        *(
            _count_if(column <= float(bound)).label(f"{prefix}_le_{i}")
            for i, bound in enumerate(bounds)
        ),
    ]


def _histogram(row: Any, bounds: Sequence[float], prefix: str) -> Histogram:
    return Histogram(
        bounds=tuple(float(b) for b in bounds),
        cumulative=tuple(int(row[f"{prefix}_le_{i}"] or 0) for i in range(len(bounds))),
        count=int(row[f"{prefix}_count"] or 0),
        total=float(row[f"{prefix}_total"] or 0.0),
    )


def _grouping(by: Sequence[str], allowed: Sequence[str], what: str) -> tuple[str, ...]:
    unknown = [key for key in by if key not in allowed]
    if unknown:
        raise StoreError(
            f"{what} cannot be grouped by {', '.join(map(repr, unknown))}; group by any of "
            f"{', '.join(allowed)}"
        )
    return tuple(dict.fromkeys(by))


def error_type(text: str | None) -> str | None:
    """The type named by a stored error (``ErrorInfo`` JSON); ``error`` when it names none."""
    if not text:
        return None
    try:
        value = decode(text.encode())
    except ValueError:
        return "error"
    if isinstance(value, dict) and value.get("type"):
        return str(value["type"])
    return "error"


class Queries:
    """The read queries :class:`~workbench.store.Store` offers (a mixin: ``Store`` holds the
    connections and ``_read``; this class only states what to ask)."""

    if TYPE_CHECKING:
        path: Any
        _closed: bool
        _reader: Any
        _read_lock: threading.Lock
        _backend: Any

        def _read(self, statement: Any) -> list[Any]: ...
        def flush(self, timeout: float | None = 30.0, *, strict: bool = True) -> None: ...
        def _execution(self, row: Any, *, full: bool, interrupted: bool) -> Execution: ...

    # -- the cost ledger (budgets) ---------------------------------------------------------

    def ledger_snapshot(self, *, since: float, recent_since: float) -> LedgerSnapshot:
        """The ledger's last ``seq`` and the spend since ``since`` and since ``recent_since``
        (a month's and a day's start), all of one snapshot (one statement): a reader that then
        follows :meth:`ledger_since` from that ``seq`` counts every call exactly once."""
        sa = _sa()
        ledger = table("cost_ledger")
        high_water = sa.select(sa.func.coalesce(sa.func.max(ledger.c.seq), 0)).scalar_subquery()
        statement = sa.select(
            high_water.label("seq"),
            sa.func.coalesce(sa.func.sum(ledger.c.cost_usd), 0.0).label("since_usd"),
            sa.func.coalesce(
                sa.func.sum(sa.case((ledger.c.started_at >= recent_since, ledger.c.cost_usd))),
                0.0,
            ).label("recent_usd"),
        ).where(ledger.c.started_at >= since)
        row = self._read(statement)[0]
        return LedgerSnapshot(int(row["seq"]), float(row["since_usd"]), float(row["recent_usd"]))

    def ledger_since(self, seq: int) -> list[LedgerEntry]:
        """The ledger's entries after ``seq``, in no particular order (the budget check's
        incremental read: microseconds when nothing new arrived)."""
        return [LedgerEntry(*values) for values in self._fast("ledger_since", (seq,))]

    def ledger_user_total(self, user_id: str, *, since: float, up_to_seq: int) -> float:
        """What ``user_id`` spent since ``since``, counting entries up to ``up_to_seq`` only
        (asked once per user and day by the budget check, so on the fast path too)."""
        ((total,),) = self._fast("ledger_user_total", (user_id, since, up_to_seq))
        return float(total or 0.0)

    def ledger_sums(self, bounds: Sequence[float]) -> list[float]:
        """The spend between each pair of consecutive moments of ``bounds`` (``len(bounds) - 1``
        sums: the days of a cost trend, cut at the caller's midnights)."""
        if len(bounds) < 2:
            return []
        sa = _sa()
        ledger = table("cost_ledger")
        # One indexed range sum per period: the ledger's (started_at, cost_usd) index covers it.
        selects = [
            sa.select(
                sa.literal(i).label("i"),
                sa.select(sa.func.coalesce(sa.func.sum(ledger.c.cost_usd), 0.0))
                .where(ledger.c.started_at >= start, ledger.c.started_at < end)
                .scalar_subquery()
                .label("cost"),
            )
            for i, (start, end) in enumerate(itertools.pairwise(bounds))
        ]
        sums = [0.0] * (len(bounds) - 1)
        for row in self._read(sa.union_all(*selects)):
            sums[int(row["i"])] = float(row["cost"] or 0.0)
        return sums

    def cost_groups(self, *, since: float, until: float) -> list[CostGroup]:
        """The ledger's calls that started in ``[since, until)``, summed per model, pipeline
        and user (replays are not in the ledger; unknown prices are counted apart)."""
        sa = _sa()
        ledger = table("cost_ledger")
        c = ledger.c
        statement = (
            sa.select(
                c.model,
                c.pipeline_id,
                c.user_id,
                sa.func.sum(c.cost_usd).label("cost"),
                sa.func.count().label("calls"),
                (sa.func.count() - sa.func.count(c.cost_usd)).label("unpriced"),
                sa.func.sum(c.input_tokens).label("tokens_in"),
                sa.func.sum(c.output_tokens).label("tokens_out"),
            )
            .where(c.started_at >= since, c.started_at < until)
            .group_by(c.model, c.pipeline_id, c.user_id)
        )
        return [
            CostGroup(
                model=row["model"],
                pipeline_id=row["pipeline_id"],
                user_id=row["user_id"],
                cost_usd=float(row["cost"] or 0.0),
                calls=int(row["calls"]),
                unpriced_calls=int(row["unpriced"] or 0),
                input_tokens=int(row["tokens_in"] or 0),
                output_tokens=int(row["tokens_out"] or 0),
            )
            for row in self._read(statement)
        ]

    # -- executions ------------------------------------------------------------------------

    def _execution_filters(
        self,
        *,
        since: float | None = None,
        ended_since: float | None = None,
        pipeline_id: str | None = None,
        user_id: str | None = None,
        environment: str | None = None,
        statuses: Iterable[str] | None = None,
    ) -> list[Any]:
        e = table("executions").c
        where: list[Any] = []
        for column, value in (
            (e.pipeline_id, pipeline_id),
            (e.user_id, user_id),
            (e.environment, environment),
        ):
            if value is not None:
                where.append(column == value)
        if statuses is not None:
            where.append(e.status.in_(list(statuses)))
        if since is not None:
            where.append(e.started_at >= since)
        if ended_since is not None:
            where.append(e.ended_at >= ended_since)
        return where

    def execution_aggregates(
        self,
        *,
        by: Sequence[str] = (),
        since: float | None = None,
        ended_since: float | None = None,
        pipeline_id: str | None = None,
        user_id: str | None = None,
        environment: str | None = None,
        statuses: Iterable[str] | None = None,
        duration_buckets: Sequence[float] = (),
    ) -> list[ExecutionAggregate]:
        """Executions counted per group of ``by`` (``pipeline_id``, ``status``; none: one
        total), of those that started at or after ``since`` / ended at or after
        ``ended_since`` and match the filters; with their durations in ``duration_buckets``.
        Without ``by``, one aggregate even when no execution matches."""
        sa = _sa()
        keys = _grouping(by, _EXECUTION_GROUPS, "executions")
        executions = table("executions")
        e = executions.c
        statement = sa.select(
            *(e[key] for key in keys),
            sa.func.count().label("n"),
            _count_if(e.status == "running").label("running"),
            _count_if(e.status == "failed").label("failed"),
            _count_if(e.success == 1).label("succeeded"),
            sa.func.count(e.success).label("judged"),
            _count_if(
                sa.or_(e.success == 1, sa.and_(e.success.is_(None), e.status == "completed"))
            ).label("judged_ok"),
            *_histogram_columns(e.duration_s, duration_buckets, "d"),
        ).where(
            *self._execution_filters(
                since=since,
                ended_since=ended_since,
                pipeline_id=pipeline_id,
                user_id=user_id,
                environment=environment,
                statuses=statuses,
            )
        )
        if keys:
            statement = statement.group_by(*(e[key] for key in keys))
        return [
            ExecutionAggregate(
                pipeline_id=row["pipeline_id"] if "pipeline_id" in keys else None,
                status=row["status"] if "status" in keys else None,
                executions=int(row["n"]),
                running=int(row["running"] or 0),
                failed=int(row["failed"] or 0),
                succeeded=int(row["succeeded"] or 0),
                judged=int(row["judged"] or 0),
                judged_successful=int(row["judged_ok"] or 0),
                duration=_histogram(row, duration_buckets, "d"),
            )
            for row in self._read(statement)
        ]

    def execution_timings(
        self,
        *,
        since: float | None = None,
        pipeline_id: str | None = None,
        user_id: str | None = None,
        environment: str | None = None,
        statuses: Iterable[str] | None = None,
    ) -> list[ExecutionTiming]:
        """The durations of the executions that have one (finished), filtered as in
        :meth:`execution_aggregates`."""
        sa = _sa()
        e = table("executions").c
        statement = sa.select(e.id, e.pipeline_id, e.duration_s).where(
            e.duration_s.is_not(None),
            *self._execution_filters(
                since=since,
                pipeline_id=pipeline_id,
                user_id=user_id,
                environment=environment,
                statuses=statuses,
            ),
        )
        return [
            ExecutionTiming(row["id"], row["pipeline_id"], float(row["duration_s"]))
            for row in self._read(statement)
        ]

    def execution_outcomes(self, pipeline_id: str, *, limit: int) -> list[ExecutionOutcome]:
        """The last ``limit`` finished (not running) executions of ``pipeline_id``, newest
        first: how each ended, without inputs, outputs or children."""
        sa = _sa()
        e = table("executions").c
        statement = (
            sa.select(e.id, e.status, e.success, e.duration_s, e.error, e.started_at)
            .where(e.pipeline_id == pipeline_id, e.status != "running")
            .order_by(e.started_at.desc())
            .limit(int(limit))
        )
        return [
            ExecutionOutcome(
                id=row["id"],
                status=row["status"],
                success=None if row["success"] is None else bool(row["success"]),
                duration_s=row["duration_s"],
                error_type=error_type(row["error"]),
                started_at=row["started_at"],
            )
            for row in self._read(statement)
        ]

    def find_execution(self, execution_id: str) -> Execution | None:
        """The execution without its children (as :meth:`list_executions` gives them), or
        ``None`` when the store holds no such execution. Its status is as stored: no liveness
        check."""
        sa = _sa()
        executions = table("executions")
        found = self._read(sa.select(executions).where(executions.c.id == execution_id))
        if not found:
            return None
        return self._execution(found[0], full=False, interrupted=False)

    def spans(self, execution_id: str) -> list[Span]:
        """An execution's spans as written so far, by start time (no flush)."""
        sa = _sa()
        spans = table("spans")
        statement = (
            sa.select(spans)
            .where(spans.c.execution_id == execution_id)
            .order_by(spans.c.start, spans.c.span_id)
        )
        return [rows.span(row) for row in self._read(statement)]

    # -- steps -----------------------------------------------------------------------------

    def _step_statement(
        self,
        columns: Sequence[Any],
        *,
        since: float | None,
        ended_since: float | None,
        pipeline_id: str | None,
        step_id: str | None,
        statuses: Iterable[str] | None,
        running_executions: bool = False,
        pid: int | None = None,
    ) -> Any:
        sa = _sa()
        steps, executions = table("steps"), table("executions")
        s, e = steps.c, executions.c
        where: list[Any] = []
        if since is not None:
            where.append(s.started_at >= since)
        if ended_since is not None:
            where.append(s.ended_at >= ended_since)
        if step_id is not None:
            where.append(s.step_id == step_id)
        if statuses is not None:
            where.append(s.status.in_(list(statuses)))
        if pipeline_id is not None:
            where.append(e.pipeline_id == pipeline_id)
        if running_executions:
            where.append(e.status == "running")
        if pid is not None:
            where.append(e.pid == pid)
        # An outer join: a step whose execution row is not written yet still counts.
        joined = steps.outerjoin(executions, e.id == s.execution_id)
        return sa.select(*columns).select_from(joined).where(*where)

    def step_aggregates(
        self,
        *,
        by: Sequence[str] = (),
        since: float | None = None,
        ended_since: float | None = None,
        pipeline_id: str | None = None,
        step_id: str | None = None,
        statuses: Iterable[str] | None = None,
        duration_buckets: Sequence[float] = (),
        busy_cap_s: float | None = None,
    ) -> list[StepAggregate]:
        """Steps counted per group of ``by`` (``pipeline_id`` of their execution, ``step_id``,
        ``status``), of those that started at or after ``since`` / ended at or after
        ``ended_since``; with retries, durations in ``duration_buckets``, and the seconds of
        work with each duration capped at ``busy_cap_s``."""
        sa = _sa()
        keys = _grouping(by, _STEP_GROUPS, "steps")
        s, e = table("steps").c, table("executions").c
        key_columns = [e.pipeline_id if key == "pipeline_id" else s[key] for key in keys]
        busy = (
            sa.func.sum(s.duration_s)
            if busy_cap_s is None
            else sa.func.sum(
                sa.case((s.duration_s > busy_cap_s, float(busy_cap_s)), else_=s.duration_s)
            )
        )
        statement = self._step_statement(
            [
                *key_columns,
                sa.func.count().label("n"),
                sa.func.sum(s.retries).label("retries"),
                busy.label("busy"),
                *_histogram_columns(s.duration_s, duration_buckets, "d"),
            ],
            since=since,
            ended_since=ended_since,
            pipeline_id=pipeline_id,
            step_id=step_id,
            statuses=statuses,
        )
        if keys:
            statement = statement.group_by(*key_columns)
        return [
            StepAggregate(
                pipeline_id=row["pipeline_id"] if "pipeline_id" in keys else None,
                step_id=row["step_id"] if "step_id" in keys else None,
                status=row["status"] if "status" in keys else None,
                steps=int(row["n"]),
                retries=int(row["retries"] or 0),
                duration=_histogram(row, duration_buckets, "d"),
                busy_s=float(row["busy"] or 0.0),
            )
            for row in self._read(statement)
        ]

    def step_timings(
        self,
        *,
        since: float | None = None,
        pipeline_id: str | None = None,
        step_id: str | None = None,
        statuses: Iterable[str] | None = None,
        executions_since: float | None = None,
        finished_executions: bool = False,
    ) -> list[StepTiming]:
        """The durations of the steps that have one, filtered as in :meth:`step_aggregates`;
        ``executions_since`` / ``finished_executions`` filter on their execution's start and
        on its having a duration (a latency report's executions)."""
        s, e = table("steps").c, table("executions").c
        statement = self._step_statement(
            [s.execution_id, e.pipeline_id, s.step_id, s.occurrence, s.duration_s],
            since=since,
            ended_since=None,
            pipeline_id=pipeline_id,
            step_id=step_id,
            statuses=statuses,
        ).where(s.duration_s.is_not(None))
        if executions_since is not None:
            statement = statement.where(e.started_at >= executions_since)
        if finished_executions:
            statement = statement.where(e.duration_s.is_not(None))
        return [
            StepTiming(
                execution_id=row["execution_id"],
                pipeline_id=row["pipeline_id"],
                step_id=row["step_id"],
                occurrence=int(row["occurrence"] or 0),
                duration_s=float(row["duration_s"]),
            )
            for row in self._read(statement)
        ]

    def running_steps(self, *, pid: int | None = None) -> int:
        """Steps started and not finished, in executions still running (of the process
        ``pid`` on any host, when given): the work pipelines have taken on."""
        sa = _sa()
        statement = self._step_statement(
            [sa.func.count().label("n")],
            since=None,
            ended_since=None,
            pipeline_id=None,
            step_id=None,
            statuses=("running",),
            running_executions=True,
            pid=pid,
        )
        return int(self._read(statement)[0]["n"])

    # -- model calls -----------------------------------------------------------------------

    def _call_statement(
        self,
        columns: Sequence[Any],
        *,
        since: float | None,
        provider: str | None,
        model: str | None,
        operation: str | None,
        pipeline_id: str | None,
        http: bool,
        in_replays: bool | None,
        answered_from_recordings: bool | None,
    ) -> Any:
        sa = _sa()
        calls, executions = table("model_calls"), table("executions")
        c, e = calls.c, executions.c
        where: list[Any] = []
        if since is not None:
            where.append(c.started_at >= since)
        for column, value in (
            (c.provider, provider),
            (c.model, model),
            (c.operation, operation),
            (e.pipeline_id, pipeline_id),
        ):
            if value is not None:
                where.append(column == value)
        if not http:
            where.append(sa.or_(c.provider.is_(None), c.provider != "http"))
        if in_replays is not None:
            where.append(e.replay_of.is_not(None) if in_replays else e.replay_of.is_(None))
        if answered_from_recordings is not None:
            where.append(
                c.replayed == 1
                if answered_from_recordings
                else sa.or_(c.replayed.is_(None), c.replayed != 1)
            )
        joined = calls.outerjoin(executions, e.id == c.execution_id)
        return sa.select(*columns).select_from(joined).where(*where)

    def model_call_aggregates(
        self,
        *,
        by: Sequence[str] = (),
        since: float | None = None,
        provider: str | None = None,
        model: str | None = None,
        operation: str | None = None,
        pipeline_id: str | None = None,
        http: bool = True,
        in_replays: bool | None = None,
        answered_from_recordings: bool | None = None,
        latency_buckets: Sequence[float] = (),
    ) -> list[ModelCallAggregate]:
        """Model calls counted per group of ``by`` (``provider``, ``model``, ``pipeline_id``
        of their execution, ``in_replay``), of those that started at or after ``since`` and
        match the filters: ``http=False`` leaves out plain HTTP calls (provider ``http``),
        ``in_replays`` keeps only (True) or leaves out (False) the calls of replays,
        ``answered_from_recordings`` likewise for calls a replay answered from its recording.
        Money spent is ``in_replays=False, answered_from_recordings=False``."""
        sa = _sa()
        keys = _grouping(by, _CALL_GROUPS, "model calls")
        c, e = table("model_calls").c, table("executions").c
        derived = {
            "pipeline_id": e.pipeline_id,
            "in_replay": sa.case((e.replay_of.is_not(None), 1), else_=0).label("in_replay"),
        }
        key_columns = [derived[key] if key in derived else c[key] for key in keys]
        statement = self._call_statement(
            [
                *key_columns,
                sa.func.count().label("n"),
                _count_if(sa.or_(c.error.is_not(None), c.status_code >= 400)).label("errors"),
                _count_if(sa.and_(c.error.is_(None), c.status_code.is_(None))).label("silent"),
                sa.func.sum(c.input_tokens).label("t_in"),
                sa.func.sum(c.output_tokens).label("t_out"),
                sa.func.sum(c.cache_read_tokens).label("t_cr"),
                sa.func.sum(c.cache_write_tokens).label("t_cw"),
                sa.func.sum(c.cost_usd).label("cost"),
                *_histogram_columns(c.latency_s, latency_buckets, "l"),
            ],
            since=since,
            provider=provider,
            model=model,
            operation=operation,
            pipeline_id=pipeline_id,
            http=http,
            in_replays=in_replays,
            answered_from_recordings=answered_from_recordings,
        )
        if keys:
            statement = statement.group_by(*key_columns)
        return [
            ModelCallAggregate(
                provider=row["provider"] if "provider" in keys else None,
                model=row["model"] if "model" in keys else None,
                pipeline_id=row["pipeline_id"] if "pipeline_id" in keys else None,
                in_replay=bool(row["in_replay"]) if "in_replay" in keys else None,
                calls=int(row["n"]),
                errors=int(row["errors"] or 0),
                unanswered=int(row["silent"] or 0),
                input_tokens=int(row["t_in"] or 0),
                output_tokens=int(row["t_out"] or 0),
                cache_read_tokens=int(row["t_cr"] or 0),
                cache_write_tokens=int(row["t_cw"] or 0),
                cost_usd=None if row["cost"] is None else float(row["cost"]),
                latency=_histogram(row, latency_buckets, "l"),
            )
            for row in self._read(statement)
        ]

    def model_call_timings(
        self,
        *,
        since: float | None = None,
        provider: str | None = None,
        model: str | None = None,
        operation: str | None = None,
        pipeline_id: str | None = None,
    ) -> list[ModelCallTiming]:
        """The latencies of the model calls that have one, filtered as in
        :meth:`model_call_aggregates`."""
        c = table("model_calls").c
        statement = self._call_statement(
            [c.id, c.provider, c.model, c.latency_s],
            since=since,
            provider=provider,
            model=model,
            operation=operation,
            pipeline_id=pipeline_id,
            http=True,
            in_replays=None,
            answered_from_recordings=None,
        ).where(c.latency_s.is_not(None))
        return [
            ModelCallTiming(row["id"], row["provider"], row["model"], float(row["latency_s"]))
            for row in self._read(statement)
        ]

    def model_call_failures(self, execution_ids: Sequence[str]) -> list[ModelCallFailure]:
        """The model calls of ``execution_ids`` that failed: an HTTP status of 400 or more, or
        an error recorded."""
        sa = _sa()
        c = table("model_calls").c
        found: list[ModelCallFailure] = []
        ids = list(dict.fromkeys(execution_ids))
        for i in range(0, len(ids), 500):  # bounded IN lists: SQLite's variable limit
            statement = sa.select(c.execution_id, c.provider, c.status_code, c.error).where(
                c.execution_id.in_(ids[i : i + 500]),
                sa.or_(c.status_code >= 400, c.error.is_not(None)),
            )
            found.extend(
                ModelCallFailure(
                    execution_id=row["execution_id"],
                    provider=row["provider"],
                    status_code=row["status_code"],
                    error_type=error_type(row["error"]),
                )
                for row in self._read(statement)
            )
        return found

    # -- the user's own SQL ----------------------------------------------------------------

    def run_user_sql(self, sql: str) -> list[dict[str, Any]]:
        """The rows of ``sql``, a statement a user wrote (``health_checks`` ``type: database``
        ``query:``), as dictionaries. Backend-specific by nature: the text goes to the store's
        database as written (SQLite's dialect for a SQLite store, PostgreSQL's for a
        PostgreSQL one); workbench's own readers never use this."""
        sa = _sa()
        try:
            return [dict(row) for row in self._read(sa.text(sql))]
        except sa.exc.ResourceClosedError:  # a statement that returns no rows (an UPDATE)
            return []

    # -- the fast path -----------------------------------------------------------------------

    def _fast(self, name: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """The rows of one of ``_FAST``'s statements, as tuples: on SQLite compiled once and
        run on the store's reader connection; elsewhere through ``_read``."""
        reader = getattr(self, "_reader", None)
        if isinstance(reader, sqlite3.Connection):
            sql = _compiled_sqlite(name)
            if self._closed:
                raise StoreError(f"store {self.path} is closed; open it again with Store(path)")
            with self._read_lock:
                reader.row_factory = None
                try:
                    return reader.execute(sql, params).fetchall()
                except sqlite3.Error as exc:
                    raise store_error(exc, self.path, "reading") from exc
        if self._closed:
            raise StoreError(f"store {self.path} is closed; open it again with Store(path)")
        backend = self._backend
        try:
            return backend.fast_read(_compiled_for(name, "postgresql"), params)  # type: ignore[no-any-return]
        except backend.write_errors as exc:
            raise backend.error("reading", exc) from exc


def _ledger_since() -> tuple[sa.Select[Any], tuple[str, ...]]:
    sa = _sa()
    c = table("cost_ledger").c
    statement = sa.select(c.seq, c.started_at, c.user_id, c.cost_usd).where(
        c.seq > sa.bindparam("seq")
    )
    return statement, ("seq",)


def _ledger_user_total() -> tuple[sa.Select[Any], tuple[str, ...]]:
    sa = _sa()
    c = table("cost_ledger").c
    # No literal in the statement: each bound value is one of ``names``, in order.
    statement = sa.select(sa.func.sum(c.cost_usd)).where(
        c.user_id == sa.bindparam("user_id"),
        c.started_at >= sa.bindparam("since"),
        c.seq <= sa.bindparam("up_to_seq"),
    )
    return statement, ("user_id", "since", "up_to_seq")


_FAST = {"ledger_since": _ledger_since, "ledger_user_total": _ledger_user_total}
_compiled: dict[tuple[str, str], str] = {}


def _compiled_sqlite(name: str) -> str:
    return _compiled_for(name, "sqlite")


def _compiled_for(name: str, dialect: str) -> str:
    """``_FAST[name]`` as the SQL text of ``dialect`` with positional parameters in the order
    of its ``names`` (``?`` for sqlite3, ``%s`` for psycopg), compiled once a process."""
    sql = _compiled.get((name, dialect))
    if sql is None:
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import dialect as make
        else:
            from sqlalchemy.dialects.postgresql.psycopg import dialect as make  # type: ignore[no-redef]

        statement, names = _FAST[name]()
        d = make()
        if dialect != "sqlite":
            d = make(paramstyle="format")
        compiled = statement.compile(dialect=d)
        if tuple(compiled.positiontup or ()) != names:
            raise AssertionError(f"{name}: parameters {compiled.positiontup} != {names}")
        sql = _compiled[(name, dialect)] = str(compiled)
    return sql
