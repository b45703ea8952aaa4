"""The reads the web UI needs that the record-level API does not give: a sorted, filtered page
of the run list with its total, the values to filter by, and money spent grouped by day.

Owns these queries and the typed records they return; :class:`Store` mixes :class:`UIReads`
in, so the UI (``workbench.ui``) reads through public methods only and no SQL sits above the
store. It does not render anything, and knows nothing of HTTP.

Text search reads the prompts where the store keeps them (compressed request blobs): the SQL
asks a function registered on the reader connection to unpack each candidate request, so that a
page and its total come from one query rather than from loading every run into Python.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeAlias
from zoneinfo import ZoneInfo

import orjson

from workbench.exceptions import ConfigError, StoreError
from workbench.store._codec import decompress

if TYPE_CHECKING:
    from workbench.store._store import Store

__all__ = [
    "COST_GROUPS",
    "RUN_SORTS",
    "CallTiming",
    "CostBy",
    "DailyCosts",
    "RunFacets",
    "RunPage",
    "RunSummary",
    "UIReads",
]

RunSort: TypeAlias = Literal[
    "started_at", "duration_s", "cost_usd", "tokens", "pipeline_id", "status", "user_id"
]
#: The run list's sort keys and the SQL each sorts by (rowid breaks ties: a stable page order).
_SORT_SQL: dict[str, str] = {
    "started_at": "started_at",
    "duration_s": "duration_s",
    "cost_usd": "cost_usd",
    "tokens": "COALESCE(tokens_in, 0) + COALESCE(tokens_out, 0)",
    "pipeline_id": "pipeline_id",
    "status": "status",
    "user_id": "user_id",
}
RUN_SORTS: tuple[str, ...] = tuple(_SORT_SQL)
CostBy: TypeAlias = Literal["model", "pipeline", "user"]
COST_GROUPS: tuple[str, ...] = ("model", "pipeline", "user")
_GROUP_COLUMN = {"model": "model", "pipeline": "pipeline_id", "user": "user_id"}
_STATUSES = ("running", "completed", "failed", "interrupted")
#: The run list's largest page: a page is read and rendered at once.
MAX_PAGE = 500
#: Cost is summed in quarter hours, then into the days of the time zone asked for: every time
#: zone's offset from UTC is a whole number of quarter hours.
_QUARTER_S = 900
_NO_USER = "(no user)"
_UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class RunSummary:
    """One row of the run list: an execution's own fields and how many model calls it made."""

    id: str
    pipeline_id: str
    pipeline_version: str | None
    status: str
    success: bool | None
    user_id: str | None
    environment: str | None
    started_at: float
    ended_at: float | None
    duration_s: float | None
    cost_usd: float | None
    tokens_in: int
    tokens_out: int
    model_calls: int
    replay_of: str | None
    sampled: bool
    debug: bool
    error_type: str | None
    error_message: str | None


@dataclass(frozen=True, slots=True)
class CallTiming:
    """A model call as a trace draws it: where and when it ran, what it cost, its stream's
    chunk arrivals (seconds after sending) — without its request and response, which are most
    of a call's bytes (``get_execution`` has them)."""

    id: str
    span_id: str | None
    step_id: str | None
    step_occurrence: int | None
    provider: str
    model: str | None
    operation: str
    status_code: int | None
    streamed: bool
    started_at: float
    latency_s: float | None
    ttft_s: float | None
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    failed: bool
    chunk_offsets: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class RunPage:
    """A page of the run list: its rows, how many runs match in all, and where it starts."""

    runs: tuple[RunSummary, ...]
    total: int
    offset: int
    limit: int
    sort: str
    descending: bool


@dataclass(frozen=True, slots=True)
class RunFacets:
    """The values the run list can be filtered by: every pipeline and user recorded."""

    pipelines: tuple[str, ...]
    users: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DailyCosts:
    """Money spent per day (in ``timezone``) and per model, pipeline or user (``by``).

    ``series`` maps each name to its cost on each of ``days`` (0.0 on a day without calls);
    ``unpriced_calls`` counts calls without a known price, which are in no total (unknown is
    not $0). Replays and calls answered from a recording cost nothing and are not counted.
    """

    by: str
    timezone: str
    days: tuple[date, ...]
    series: dict[str, tuple[float, ...]]
    calls: int
    unpriced_calls: int

    @property
    def totals(self) -> tuple[float, ...]:
        """Each day's cost, all names together."""
        return tuple(sum(day) for day in zip(*self.series.values(), strict=True)) or tuple(
            0.0 for _ in self.days
        )


def _unpacked_text(codec: int | None, data: bytes | None) -> str:
    """A blob's bytes as lower-case text, for ``instr`` in SQL (the search is case-blind)."""
    if data is None:
        return ""
    try:
        return decompress(codec or 0, data).decode("utf-8", "replace").lower()
    except Exception:  # a damaged blob matches nothing rather than failing the listing
        return ""


def _summary(r: tuple[Any, ...]) -> RunSummary:
    """A run list row from the columns ``run_page`` selects, in their order."""
    success = None if r[4] is None else bool(r[4])
    return RunSummary(
        *r[:4], success, *r[5:11], r[11] or 0, r[12] or 0, r[13], r[14], bool(r[15]),
        bool(r[16]), r[17], r[18],
    )  # fmt: skip


def _moment(name: str, value: datetime | float | str) -> float:
    from workbench.store._store import _moment as moment

    try:
        return moment(name, value)
    except StoreError as exc:  # a bad argument, not a store that cannot be read
        raise ConfigError(str(exc).replace("list_executions", "run_page")) from None


class UIReads:
    """The run list page, its facets and daily costs, mixed into :class:`Store`."""

    def run_page(
        self: Store,
        *,
        pipeline_id: str | None = None,
        status: str | None = None,
        user_id: str | None = None,
        since: datetime | float | str | None = None,
        until: datetime | float | str | None = None,
        text: str | None = None,
        sort: str = "started_at",
        descending: bool = True,
        offset: int = 0,
        limit: int = 50,
    ) -> RunPage:
        """One page of the executions matching every filter given, sorted, with the total.

        ``text`` keeps the runs whose prompts (model call requests) or responses contain it,
        case-blind. ``sort`` is one of :data:`RUN_SORTS`; runs without a value sort last.
        Only the page's rows are read: a store of 100,000 runs answers as fast as one of 100.
        """
        if status is not None and status not in _STATUSES:
            raise ConfigError(f"status {status!r} is not one of {', '.join(_STATUSES)}")
        if sort not in _SORT_SQL:
            raise ConfigError(f"sort {sort!r} is not one of {', '.join(RUN_SORTS)}")
        if not 1 <= limit <= MAX_PAGE:
            raise ConfigError(f"limit {limit} is not between 1 and {MAX_PAGE}; page through more")
        if offset < 0:
            raise ConfigError(f"offset {offset} is negative; the first page starts at 0")
        self.flush()
        running = (
            "SELECT id, status, pid, host, proc_start FROM executions WHERE status = 'running'"
        )
        self._refresh_liveness(self._query(running))
        where: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("pipeline_id", pipeline_id),
            ("user_id", user_id),
            ("status", status),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            where.append("started_at >= ?")
            params.append(_moment("since", since))
        if until is not None:
            where.append("started_at < ?")
            params.append(_moment("until", until))
        if text:
            needle = text.lower()
            where.append(
                "(EXISTS (SELECT 1 FROM model_calls c WHERE c.execution_id = executions.id "
                "AND instr(lower(c.text), ?) > 0) OR EXISTS (SELECT 1 FROM model_calls c "
                "JOIN blobs b ON b.hash = c.request_hash WHERE c.execution_id = executions.id "
                "AND instr(wb_unpacked_text(b.codec, b.data), ?) > 0))"
            )
            params.extend((needle, needle))
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        direction = "DESC" if descending else "ASC"
        order = _SORT_SQL[sort]
        # Every run has a start, and without the NULL test SQLite walks the started_at index
        # (rowid is its last column) instead of sorting every matching run: the first page of
        # 100,000 runs in well under a millisecond of SQL rather than ~300 ms.
        nulls_last = "" if sort == "started_at" else f"{order} IS NULL, "
        total = self._ui_query(f"SELECT COUNT(*) FROM executions{clause}", params)[0][0]
        rows = self._ui_query(
            "SELECT id, pipeline_id, pipeline_version, status, success, user_id, environment, "
            "started_at, ended_at, duration_s, cost_usd, tokens_in, tokens_out, "
            "(SELECT COUNT(*) FROM model_calls c WHERE c.execution_id = executions.id), "
            "replay_of, sampled, debug, json_extract(error, '$.type'), "
            f"json_extract(error, '$.message') FROM executions{clause} "
            f"ORDER BY {nulls_last}{order} {direction}, rowid {direction} "
            f"LIMIT {int(limit)} OFFSET {int(offset)}",
            params,
        )
        runs = tuple(_summary(r) for r in rows)
        return RunPage(runs, total, offset, limit, sort, descending)

    def call_timings(self: Store, execution_id: str) -> list[CallTiming]:
        """An execution's model calls in recorded order, without their payloads (a trace of
        1,000 calls reads no blob)."""
        self.flush()
        rows = self._ui_query(
            "SELECT id, span_id, step_id, step_occurrence, provider, model, operation, "
            "status_code, streamed, started_at, latency_s, ttft_s, input_tokens, output_tokens, "
            "cost_usd, error IS NOT NULL OR stream_error IS NOT NULL OR status_code >= 400, "
            "chunks FROM model_calls WHERE execution_id = ? ORDER BY started_at, id",
            (execution_id,),
        )
        timings = []
        for r in rows:
            offsets: list[float] = []
            if r[8]:  # a stream's index: [[microseconds since the previous read, bytes], ...]
                micros = 0
                try:
                    for delta_us, _ in orjson.loads(r[16] or "[]"):
                        micros += delta_us
                        offsets.append(micros / 1_000_000)
                except (orjson.JSONDecodeError, TypeError, ValueError):
                    offsets = []  # a damaged index: the call is drawn without its ticks
            timings.append(CallTiming(*r[:8], bool(r[8]), *r[9:15], bool(r[15]), tuple(offsets)))
        return timings

    def run_facets(self: Store) -> RunFacets:
        """Every pipeline and every user the store has runs of, sorted."""
        self.flush()
        pipelines = self._ui_query(
            "SELECT DISTINCT pipeline_id FROM executions WHERE pipeline_id IS NOT NULL "
            "ORDER BY pipeline_id"
        )
        users = self._ui_query(
            "SELECT DISTINCT user_id FROM executions WHERE user_id IS NOT NULL ORDER BY user_id"
        )
        return RunFacets(tuple(r[0] for r in pipelines), tuple(r[0] for r in users))

    def has_execution(self: Store, execution_id: str) -> bool:
        """Whether the store holds an execution of this id (no record is read)."""
        self.flush()
        return bool(self._ui_query("SELECT 1 FROM executions WHERE id = ?", (execution_id,)))

    def daily_costs(
        self: Store,
        *,
        days: int = 30,
        end: date | None = None,
        by: str = "model",
        timezone: str = "UTC",
    ) -> DailyCosts:
        """What model calls cost on each of the ``days`` days up to ``end`` (today in
        ``timezone`` by default), per model, pipeline or user (``by``), from the cost ledger
        budgets count (replays left out)."""
        if by not in _GROUP_COLUMN:
            raise ConfigError(f"by {by!r} is not one of {', '.join(COST_GROUPS)}")
        if not 1 <= days <= 3660:
            raise ConfigError(f"days {days} is not between 1 and 3660")
        try:
            tz = ZoneInfo(timezone)
        except (ValueError, KeyError):
            raise ConfigError(
                f"timezone {timezone!r} is not a time zone; use an IANA name such as 'UTC'"
            ) from None
        last = end or datetime.now(tz).date()
        first = last - timedelta(days=days - 1)
        day_list = tuple(first + timedelta(days=i) for i in range(days))
        edges = [datetime(d.year, d.month, d.day, tzinfo=tz).timestamp() for d in day_list]
        after = datetime(last.year, last.month, last.day, tzinfo=tz) + timedelta(days=1)
        edges.append(after.timestamp())
        self.flush()
        column = _GROUP_COLUMN[by]
        rows = self._ui_query(
            f"SELECT CAST(started_at / {_QUARTER_S} AS INTEGER), {column}, "
            "COALESCE(SUM(cost_usd), 0.0), COUNT(*), SUM(cost_usd IS NULL) FROM cost_ledger "
            "WHERE started_at >= ? AND started_at < ? GROUP BY 1, 2",
            (edges[0], edges[-1]),
        )
        import bisect

        series: dict[str, list[float]] = {}
        calls = unpriced = 0
        for quarter, name, cost, count, unknown in rows:
            index = bisect.bisect_right(edges, quarter * _QUARTER_S) - 1
            if not 0 <= index < days:
                continue
            key = name or (_NO_USER if by == "user" else _UNKNOWN)
            series.setdefault(key, [0.0] * days)[index] += cost
            calls += count
            unpriced += unknown or 0
        ordered = sorted(series.items(), key=lambda item: (-sum(item[1]), item[0]))
        return DailyCosts(by, tz.key, day_list, {k: tuple(v) for k, v in ordered}, calls, unpriced)

    def spend_since(self: Store, start: float, *, by_user: bool = False) -> dict[str, float]:
        """Money spent since Unix time ``start`` (the ledger budgets count): ``{"": total}``,
        or per user with ``by_user`` (runs without a user under ``"(no user)"``)."""
        self.flush()
        if not by_user:
            row = self._ui_query(
                "SELECT COALESCE(SUM(cost_usd), 0.0) FROM cost_ledger WHERE started_at >= ?",
                (start,),
            )
            return {"": row[0][0]}
        rows = self._ui_query(
            "SELECT user_id, COALESCE(SUM(cost_usd), 0.0) FROM cost_ledger "
            "WHERE started_at >= ? GROUP BY user_id ORDER BY 2 DESC",
            (start,),
        )
        return {(user or _NO_USER): cost for user, cost in rows}

    def _ui_query(self: Store, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows as tuples, with the text-search function registered on the reader."""
        if self._closed:
            raise StoreError(f"store {self.path} is closed; open it again with Store(path)")
        with self._read_lock:
            reader = self._reader
            reader.row_factory = None
            try:
                # Cheap (a pointer set), and survives the reader being replaced after a fork.
                reader.create_function("wb_unpacked_text", 2, _unpacked_text, deterministic=True)
                return list(reader.execute(sql, params))
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"reading store {self.path} failed: {exc}") from exc
