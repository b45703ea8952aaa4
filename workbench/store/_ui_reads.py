"""The reads the web UI needs that the record-level API does not give: a sorted, filtered page
of the run list with its total, the values to filter by, and money spent grouped by day.

Owns these queries and the typed records they return; :class:`Store` mixes :class:`UIReads`
in, so the UI (``workbench.ui``) reads through public methods only and no SQL sits above the
store. It does not render anything, and knows nothing of HTTP. Every query is a SQLAlchemy Core
statement over ``_tables`` run by ``Store._read``, so the UI reads a SQLite file and a
PostgreSQL database alike; the ledger's sums are ``_queries``' (``cost_groups``), not a second
way to add up the same rows.

Text search reads the prompts where the store keeps them (compressed request blobs). Neither
backend can unpack a zstd blob in SQL (PostgreSQL has no such function; SQLite only one we
register), so the store does it in Python: the distinct request blobs of the runs the other
filters keep are read 500 at a time and unpacked once each, and the page and its total are then
one query over the runs found. Memory stays bounded by the batch; time grows with the prompts
of the runs filtered, as the SQL function's did.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeAlias
from zoneinfo import ZoneInfo

import orjson

from workbench._json import decode
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
#: The run list's sort keys (``tokens`` is in and out together; insertion order breaks ties).
RUN_SORTS: tuple[str, ...] = (
    "started_at", "duration_s", "cost_usd", "tokens", "pipeline_id", "status", "user_id",
)  # fmt: skip
CostBy: TypeAlias = Literal["model", "pipeline", "user"]
COST_GROUPS: tuple[str, ...] = ("model", "pipeline", "user")
_GROUP_COLUMN = {"model": "model", "pipeline": "pipeline_id", "user": "user_id"}
_STATUSES = ("running", "completed", "failed", "interrupted")
#: The run list's largest page: a page is read and rendered at once.
MAX_PAGE = 500
#: Request blobs unpacked per read by text search (bounds its memory, not its reach).
_SEARCH_BATCH = 500
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
    """A blob's bytes as lower-case text, to search (the search is case-blind)."""
    if data is None:
        return ""
    try:
        return decompress(codec or 0, data).decode("utf-8", "replace").lower()
    except Exception:  # a damaged blob matches nothing rather than failing the listing
        return ""


def _error_field(text: str | None, field: str) -> str | None:
    """A field of a stored error (``ErrorInfo`` JSON), or None (none, or not readable)."""
    if not text:
        return None
    try:
        value = decode(text.encode())
    except ValueError:
        return None
    found = value.get(field) if isinstance(value, dict) else None
    return None if found is None else str(found)


def _summary(row: Any) -> RunSummary:
    """A run list row from the columns ``run_page`` selects."""
    return RunSummary(
        id=row["id"],
        pipeline_id=row["pipeline_id"],
        pipeline_version=row["pipeline_version"],
        status=row["status"],
        success=None if row["success"] is None else bool(row["success"]),
        user_id=row["user_id"],
        environment=row["environment"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        duration_s=row["duration_s"],
        cost_usd=row["cost_usd"],
        tokens_in=row["tokens_in"] or 0,
        tokens_out=row["tokens_out"] or 0,
        model_calls=int(row["model_calls"]),
        replay_of=row["replay_of"],
        sampled=bool(row["sampled"]),
        debug=bool(row["debug"]),
        error_type=_error_field(row["error"], "type"),
        error_message=_error_field(row["error"], "message"),
    )


def _moment(name: str, value: datetime | float | str) -> float:
    from workbench.store._store import _moment as moment

    try:
        return moment(name, value)
    except StoreError as exc:  # a bad argument, not a store that cannot be read
        raise ConfigError(str(exc).replace("list_executions", "run_page")) from None


def _sa() -> Any:
    import sqlalchemy

    return sqlalchemy


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
        if sort not in RUN_SORTS:
            raise ConfigError(f"sort {sort!r} is not one of {', '.join(RUN_SORTS)}")
        if not 1 <= limit <= MAX_PAGE:
            raise ConfigError(f"limit {limit} is not between 1 and {MAX_PAGE}; page through more")
        if offset < 0:
            raise ConfigError(f"offset {offset} is negative; the first page starts at 0")
        sa = _sa()
        self.flush()
        executions = self._table("executions")
        calls = self._table("model_calls")
        c = executions.c
        self._refresh_liveness(self._rows("executions", c.status == "running"))
        where: list[Any] = [
            c[column] == value
            for column, value in (
                ("pipeline_id", pipeline_id),
                ("user_id", user_id),
                ("status", status),
            )
            if value is not None
        ]
        if since is not None:
            where.append(c.started_at >= _moment("since", since))
        if until is not None:
            where.append(c.started_at < _moment("until", until))
        if text:
            found = self._runs_with_text(where, text.lower())
            # Inline literals, not one bound parameter an id: a search that matches 50,000
            # runs stays under SQLite's limit on parameters.
            where.append(
                c.id.in_(sa.bindparam("found", sorted(found), expanding=True, literal_execute=True))
            )
        counted = sa.select(sa.func.count()).select_from(executions).where(*where)
        ((total,),) = self._read(counted, mappings=False)
        order: Any = {
            "tokens": sa.func.coalesce(c.tokens_in, 0) + sa.func.coalesce(c.tokens_out, 0)
        }.get(sort, c.get(sort))
        direction = sa.desc if descending else sa.asc
        # Every run has a start, and without the NULL test SQLite walks the started_at index
        # (rowid is its last column) instead of sorting every matching run: the first page of
        # 100,000 runs in well under a millisecond of SQL rather than ~300 ms.
        nulls_last = [] if sort == "started_at" else [order.is_(None)]
        call_count = (
            sa.select(sa.func.count())
            .where(calls.c.execution_id == c.id)
            .correlate(executions)
            .scalar_subquery()
        )
        statement = (
            sa.select(
                *(c[name] for name in _PAGE_COLUMNS),
                call_count.label("model_calls"),
            )
            .where(*where)
            .order_by(*nulls_last, direction(order), direction(self._insertion_order()))
            .limit(int(limit))
            .offset(int(offset))
        )
        runs = tuple(_summary(row) for row in self._read(statement))
        return RunPage(runs, int(total), offset, limit, sort, descending)

    def _runs_with_text(self: Store, where: list[Any], needle: str) -> set[str]:
        """The ids of the runs kept by ``where`` whose calls' text or request holds
        ``needle`` (lower case)."""
        sa = _sa()
        executions = self._table("executions")
        calls = self._table("model_calls")
        kept = sa.select(executions.c.id).where(*where)
        # The response text is a column: searched in SQL (lower() on both sides: the search
        # is case-blind on both backends; LIKE is not on PostgreSQL).
        found = {
            row[0]
            for row in self._read(
                sa.select(calls.c.execution_id)
                .where(
                    calls.c.execution_id.in_(kept),
                    sa.func.lower(calls.c.text).contains(needle, autoescape=True),
                )
                .distinct(),
                mappings=False,
            )
        }
        # The prompts are compressed blobs: each distinct one of the runs not found yet is
        # read and unpacked once, a batch at a time.
        owners: dict[str, set[str]] = {}
        for execution_id, digest in self._read(
            sa.select(calls.c.execution_id, calls.c.request_hash)
            .where(calls.c.execution_id.in_(kept), calls.c.request_hash.is_not(None))
            .distinct(),
            mappings=False,
        ):
            if execution_id not in found:
                owners.setdefault(digest, set()).add(execution_id)
        for digest in self._blobs_holding(sorted(owners), needle):
            found |= owners[digest]
        return found

    def _blobs_holding(self: Store, hashes: list[str], needle: str) -> Iterator[str]:
        """Those of ``hashes`` whose blob, unpacked, holds ``needle`` (case-blind)."""
        sa = _sa()
        blobs = self._table("blobs")
        for i in range(0, len(hashes), _SEARCH_BATCH):
            chunk = hashes[i : i + _SEARCH_BATCH]
            for digest, codec, data in self._read(
                sa.select(blobs.c.hash, blobs.c.codec, blobs.c.data).where(blobs.c.hash.in_(chunk)),
                mappings=False,
            ):
                if needle in _unpacked_text(codec, data):
                    yield digest

    def call_timings(self: Store, execution_id: str) -> list[CallTiming]:
        """An execution's model calls in recorded order, without their payloads (a trace of
        1,000 calls reads no blob)."""
        sa = _sa()
        self.flush()
        c = self._table("model_calls").c
        failed = sa.or_(c.error.is_not(None), c.stream_error.is_not(None), c.status_code >= 400)
        rows = self._read(
            sa.select(*(c[name] for name in _TIMING_COLUMNS), failed.label("failed"), c.chunks)
            .where(c.execution_id == execution_id)
            .order_by(c.started_at, c.id)
        )
        timings = []
        for r in rows:
            offsets: list[float] = []
            if r["streamed"]:  # a stream's index: [[microseconds since the previous read, bytes]]
                micros = 0
                try:
                    for delta_us, _ in orjson.loads(r["chunks"] or "[]"):
                        micros += delta_us
                        offsets.append(micros / 1_000_000)
                except (orjson.JSONDecodeError, TypeError, ValueError):
                    offsets = []  # a damaged index: the call is drawn without its ticks
            fields = {name: r[name] for name in _TIMING_COLUMNS}
            fields["streamed"] = bool(fields["streamed"])
            timings.append(
                CallTiming(**fields, failed=bool(r["failed"]), chunk_offsets=tuple(offsets))
            )
        return timings

    def run_facets(self: Store) -> RunFacets:
        """Every pipeline and every user the store has runs of, sorted."""
        sa = _sa()
        self.flush()
        c = self._table("executions").c

        def distinct(column: Any) -> tuple[str, ...]:
            statement = sa.select(column).where(column.is_not(None)).distinct().order_by(column)
            return tuple(row[0] for row in self._read(statement, mappings=False))

        return RunFacets(distinct(c.pipeline_id), distinct(c.user_id))

    def has_execution(self: Store, execution_id: str) -> bool:
        """Whether the store holds an execution of this id (no record is read)."""
        sa = _sa()
        self.flush()
        c = self._table("executions").c
        return bool(self._read(sa.select(c.id).where(c.id == execution_id), mappings=False))

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
        series: dict[str, list[float]] = {}
        calls = unpriced = 0
        # One ledger sum a day, cut at the time zone's midnights (the cost report's way).
        for index in range(days):
            for group in self.cost_groups(since=edges[index], until=edges[index + 1]):
                name = getattr(group, column)
                key = name or (_NO_USER if by == "user" else _UNKNOWN)
                series.setdefault(key, [0.0] * days)[index] += group.cost_usd
                calls += group.calls
                unpriced += group.unpriced_calls
        ordered = sorted(series.items(), key=lambda item: (-sum(item[1]), item[0]))
        return DailyCosts(by, tz.key, day_list, {k: tuple(v) for k, v in ordered}, calls, unpriced)

    def spend_since(self: Store, start: float, *, by_user: bool = False) -> dict[str, float]:
        """Money spent since Unix time ``start`` (the ledger budgets count): ``{"": total}``,
        or per user with ``by_user`` (runs without a user under ``"(no user)"``)."""
        self.flush()
        spent: dict[str, float] = {}
        for group in self.cost_groups(since=start, until=math.inf):
            key = (group.user_id or _NO_USER) if by_user else ""
            spent[key] = spent.get(key, 0.0) + group.cost_usd
        if not by_user:
            return {"": spent.get("", 0.0)}
        return dict(sorted(spent.items(), key=lambda item: -item[1]))


#: The executions' columns a run list row shows (with its calls counted, and its error).
_PAGE_COLUMNS = (
    "id", "pipeline_id", "pipeline_version", "status", "success", "user_id", "environment",
    "started_at", "ended_at", "duration_s", "cost_usd", "tokens_in", "tokens_out", "replay_of",
    "sampled", "debug", "error",
)  # fmt: skip
#: The model calls' columns a trace draws, as :class:`CallTiming` names them.
_TIMING_COLUMNS = (
    "id", "span_id", "step_id", "step_occurrence", "provider", "model", "operation",
    "status_code", "streamed", "started_at", "latency_s", "ttft_s", "input_tokens",
    "output_tokens", "cost_usd",
)  # fmt: skip
