"""Cost budgets that act: ``cost_tracking.budgets`` checked before every model call is sent.

Owns reading the spend of a store across processes, comparing it with the budgets
(``daily_limit``, ``monthly_limit``, ``per_user_limit`` — per user per day) and acting on the
highest ``cost_tracking.alerts`` threshold reached:

* ``warn`` — a ``workbench.budget`` log record (also kept in the execution's logs) and a
  :class:`BudgetAlert` to every listener added with :func:`on_budget_alert`; once per budget,
  threshold and period in each process;
* ``throttle`` — the call waits ``delay_s``, times ``backoff_multiplier`` for each further
  throttled call of the period, up to ``max_delay_s`` (it blocks the calling thread: in async
  code, the event loop), and ``task_queue_size`` counts the calls waiting;
* ``stop`` — the call raises :class:`~workbench.exceptions.BudgetExceededError` before it is
  sent; the recorder keeps the call with that error, so the execution says why.

Spend is the store's ``cost_ledger`` (one row per priced call, appended by a trigger in the
transaction that records the call): each process keeps running totals and reads only the rows
added since its last check, so a check costs microseconds whatever the store holds. With a
budget that can throttle or stop, each call is written to the store as it ends, on the
caller's thread (one small commit, a fraction of a millisecond), instead of up to a second
later by the writer thread; so every worker sees every other's spend before its next call, and
with N workers at most one call per worker starts past ``stop`` — the one each had in flight
when the budget was spent. (aiohttp calls are written at the worker's next call instead.)

Replays cost nothing: their answered calls never reach the check, and the ledger leaves out
calls of executions with ``replay_of`` (also those a replay sent live). Calls whose price is
unknown count as zero.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from workbench import _hooks
from workbench._money import usd
from workbench.exceptions import BudgetExceededError, StoreError

if TYPE_CHECKING:
    from workbench.config import BudgetAlertConfig, CostTrackingConfig, WorkbenchConfig
    from workbench.store import Store

__all__ = [
    "BudgetAlert",
    "BudgetGuard",
    "Ledger",
    "observer",
    "on_budget_alert",
    "period_bounds",
]

log = logging.getLogger("workbench.budget")

_ACTIONS = ("warn", "throttle", "stop")


@dataclass(frozen=True)
class BudgetAlert:
    """A budget reached one of its ``cost_tracking.alerts`` thresholds."""

    budget: str  #: ``daily``, ``monthly`` or ``per_user``
    action: str  #: ``warn``, ``throttle`` or ``stop``
    threshold: float  #: the fraction of the limit the alert is set at
    spent_usd: float
    limit_usd: float
    user_id: str | None  #: the user, for a per-user budget
    execution_id: str | None  #: the execution whose model call found the budget spent
    pipeline_id: str | None
    period_start: float  #: when the budget's day or month began (Unix time)
    delay_s: float | None = None  #: how long a throttled call waits
    at: float = field(default_factory=time.time)

    @property
    def ratio(self) -> float:
        return self.spent_usd / self.limit_usd

    @property
    def labels(self) -> dict[str, str]:
        """Labels for alert routing (``alerting.routes[].match``): ``alert_type: cost`` & co."""
        return {
            "alertname": f"budget_{self.budget}_{self.action}",
            "alert_type": "cost",
            "severity": "critical" if self.action == "stop" else "warning",
            "budget": self.budget,
            "action": self.action,
        }

    @property
    def message(self) -> str:
        whose = f" of user {self.user_id!r}" if self.user_id is not None else ""
        text = (
            f"{self.budget} budget{whose}: {usd(self.spent_usd)} spent of {usd(self.limit_usd)} "
            f"({self.ratio:.0%}), at or past the {self.threshold:.0%} alert ({self.action})"
        )
        if self.delay_s is not None:
            text += f"; model calls wait {self.delay_s:.2f}s"
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "budget": self.budget,
            "action": self.action,
            "threshold": self.threshold,
            "spent_usd": self.spent_usd,
            "limit_usd": self.limit_usd,
            "user_id": self.user_id,
            "execution_id": self.execution_id,
            "pipeline_id": self.pipeline_id,
            "period_start": self.period_start,
            "delay_s": self.delay_s,
            "at": self.at,
            "labels": self.labels,
        }


_listeners: list[Callable[[BudgetAlert], None]] = []


def on_budget_alert(callback: Callable[[BudgetAlert], None]) -> Callable[[], None]:
    """Call ``callback`` with each :class:`BudgetAlert`; returns a function that stops it.

    Called on the thread of the model call that found the budget reached: keep it short. An
    exception in it is logged and ignored.
    """
    _listeners.append(callback)
    return lambda: _listeners.remove(callback) if callback in _listeners else None


def period_bounds(now: float, tz: ZoneInfo) -> tuple[float, float, float]:
    """``(day_start, day_end, month_start)`` of the day containing ``now``, in ``tz``."""
    local = datetime.fromtimestamp(now, tz)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    # Aware arithmetic is wall-clock arithmetic: the next midnight even across a DST change.
    tomorrow = day + timedelta(days=1)
    month = day.replace(day=1)
    return day.timestamp(), tomorrow.timestamp(), month.timestamp()


_MAX_LEDGERS = 8


class Ledger:
    """This process's running totals of one store's ``cost_ledger``, read incrementally
    through the store's ledger queries (``Store.ledger_snapshot``, ``Store.ledger_since``)."""

    def __init__(self, path: str, tz: ZoneInfo) -> None:
        self.path = path
        self.tz = tz
        self._lock = threading.Lock()
        self._store: Store | None = None
        self.day_start = self.day_end = self.month_start = 0.0
        self.seq = 0
        self.day_total = 0.0
        self.month_total = 0.0
        self.user_day: dict[str, float] = {}

    def _reader(self, store: Store | None) -> Store:
        if store is not None:
            return store
        if self._store is None:
            from workbench.store import Store

            self._store = Store(self.path)  # this ledger's own, closed by close()
        return self._store

    def totals(
        self, user_id: str | None, now: float, store: Store | None = None
    ) -> tuple[float, float, float | None]:
        """``(today, this month, this user today)`` in US dollars, up to date with the store
        (``store``, the run's, when given; else the process's shared store for the path)."""
        with self._lock:
            reader = self._reader(store)
            try:
                if now >= self.day_end or now < self.day_start:
                    self._reload(reader, now)
                else:
                    self._advance(reader)
                user = None
                if user_id is not None:
                    user = self.user_day.get(user_id)
                    if user is None:
                        user = self.user_day[user_id] = reader.ledger_user_total(
                            user_id, since=self.day_start, up_to_seq=self.seq
                        )
            except StoreError as exc:
                raise StoreError(f"{exc}; budgets need a readable store") from exc
            return self.day_total, self.month_total, user

    def _reload(self, store: Store, now: float) -> None:
        self.day_start, self.day_end, self.month_start = period_bounds(now, self.tz)
        snapshot = store.ledger_snapshot(since=self.month_start, recent_since=self.day_start)
        self.seq = snapshot.seq
        self.month_total, self.day_total = snapshot.since_usd, snapshot.recent_usd
        self.user_day = {}

    def _advance(self, store: Store) -> None:
        for entry in store.ledger_since(self.seq):
            if entry.seq > self.seq:
                self.seq = entry.seq
            cost, started_at = entry.cost_usd, entry.started_at
            if not cost or started_at is None or started_at < self.month_start:
                continue
            self.month_total += cost
            if started_at >= self.day_start:
                self.day_total += cost
                user_id = entry.user_id
                if user_id is not None and user_id in self.user_day:
                    self.user_day[user_id] += cost

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
            self._store = None
            self.day_end = 0.0  # a ledger used again reads its totals again


@dataclass(frozen=True)
class _Policy:
    """A ``cost_tracking`` section made ready for the check."""

    budgets: tuple[tuple[str, float], ...]  # (budget, limit); per_user last
    alerts: tuple[BudgetAlertConfig, ...]  # highest threshold first
    acting: float  # the lowest threshold that throttles or stops
    tz: ZoneInfo

    @classmethod
    def of(cls, section: CostTrackingConfig) -> _Policy | None:
        if not section.enabled:
            return None
        limits = section.budgets
        budgets = tuple(
            (name, limit)
            for name, limit in (
                ("daily", limits.daily_limit),
                ("monthly", limits.monthly_limit),
                ("per_user", limits.per_user_limit),
            )
            if limit is not None
        )
        if not budgets:
            return None
        from workbench.config import BudgetAlertConfig

        alerts = tuple(section.alerts) or (BudgetAlertConfig(threshold=1.0, action="stop"),)
        acting = min((a.threshold for a in alerts if a.action != "warn"), default=float("inf"))
        ordered = tuple(sorted(alerts, key=lambda a: (-a.threshold, _ACTIONS.index(a.action))))
        return cls(budgets, ordered, acting, ZoneInfo(section.timezone))


class _Calls:
    """This process's model calls to one store: sent, and finished (priced on the writer)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started = 0
        self.finished = 0
        self.written = 0  # finished calls known to be committed (after our last flush)
        self.max_cost: float | None = None  # the dearest call seen (unknown prices as 0)


class BudgetGuard(_hooks.Observer):
    """The observer that checks budgets before each live model call (``_hooks.BUILTIN``)."""

    def __init__(self) -> None:
        self._policies: dict[int, tuple[Any, _Policy | None]] = {}
        self._ledgers: dict[tuple[str, str], Ledger] = {}
        self._calls: dict[str, _Calls] = {}
        self._alerted: set[tuple[Any, ...]] = set()
        self._throttled: dict[tuple[Any, ...], int] = {}
        self._lock = threading.Lock()
        #: How a throttled call waits (a test may replace it to observe the delay).
        self.sleep: Callable[[float], None] = time.sleep

    # -- the hook --------------------------------------------------------------------------

    def wants_model_calls(self, run: Any) -> bool:
        # A run whose configuration sets no budget has nothing to check or count.
        return self._policy(run.config) is not None

    def model_call_starting(self, run: Any, method: str, url: str, canonical: Any) -> None:
        policy = self._policy(run.config)
        if policy is None or run.replay_of is not None:
            return
        acting = self.check(run, policy)
        calls = self._calls_of(run.store.path)
        with calls.lock:
            calls.started += 1
        if acting:
            _write_at_end(run, canonical)

    def model_call_finished(self, event: _hooks.ModelCallEvent) -> None:
        if event.replayed:
            return
        calls = self._calls.get(str(event.run.store.path))
        if calls is None:
            return
        cost = event.cost_usd or 0.0
        with calls.lock:
            calls.finished += 1
            if calls.max_cost is None or cost > calls.max_cost:
                calls.max_cost = cost

    # -- the check -------------------------------------------------------------------------

    def check(self, run: Any, policy: _Policy) -> bool:
        """Act on the highest alert any budget has reached: wait, raise, or warn.

        Returns whether a budget can throttle or stop (then the call is written as soon as it
        ends, so that the other workers see it before their next call).
        """
        throttled = False
        while True:
            reached, acting = self._reached(run, policy)
            stop = next((r for r in reached if r[2].action == "stop"), None)
            if stop is not None:
                budget, spent, alert, limit, period = stop
                self._alert(run, budget, alert, spent, limit, period)
                whose = f" of user {run.user_id!r}" if budget == "per_user" else ""
                raise BudgetExceededError(
                    f"the {budget} budget{whose} is spent: {usd(spent)} of "
                    f"{usd(limit)} ({spent / limit:.0%}, stop at {alert.threshold:.0%}); the "
                    f"model call was not sent. Raise cost_tracking.budgets."
                    f"{budget}_limit in workbench.yaml, or wait for the next "
                    f"{'month' if budget == 'monthly' else 'day'}",
                    budget=budget,
                    spent_usd=spent,
                    limit_usd=limit,
                    user_id=run.user_id if budget == "per_user" else None,
                )
            throttle = next((r for r in reached if r[2].action == "throttle"), None)
            for budget, spent, alert, limit, period in reached:
                if alert.action == "warn":
                    self._alert(run, budget, alert, spent, limit, period)
            if throttle is None or throttled:
                return acting
            budget, spent, alert, limit, period = throttle
            user = run.user_id if budget == "per_user" else None
            key = (str(run.store.path), budget, limit, period, user)
            count = self._throttled.get(key, 0)
            self._throttled[key] = count + 1
            delay = min(alert.max_delay_s, alert.delay_s * alert.backoff_multiplier**count)
            self._alert(run, budget, alert, spent, limit, period, delay)
            self._wait(run, delay)
            throttled = True  # look again once: the budget may have been spent meanwhile

    def _reached(
        self, run: Any, policy: _Policy
    ) -> tuple[list[tuple[str, float, BudgetAlertConfig, float, float]], bool]:
        """For each budget at or past an alert: ``(budget, spent, alert, limit, period)``,
        the highest alert only; and whether a budget can throttle or stop."""
        store = run.store
        ledger = self._ledger(str(store.path), policy.tz)
        calls = self._calls_of(store.path)
        day, month, user = ledger.totals(run.user_id, time.time(), store)
        acting = policy.acting != float("inf")
        if acting:
            dearest = calls.max_cost
            spends = {"daily": day, "monthly": month, "per_user": user}
            gaps = [
                policy.acting * limit - (spends[budget] or 0.0)
                for budget, limit in policy.budgets
                if budget != "per_user" or user is not None
            ]
            pending = calls.started - calls.written
            guess = pending * dearest if dearest is not None else float("inf")
            if pending > 0 and any(gap <= guess for gap in gaps):
                # Our own finished calls may not be in the store yet: write them first, so
                # that this worker never sends a second call past the line.
                finished = calls.finished
                store.flush(strict=False)
                calls.written = max(calls.written, finished)
                day, month, user = ledger.totals(run.user_id, time.time(), store)
        reached = []
        for budget, limit in policy.budgets:
            if budget == "daily":
                spent, period = day, ledger.day_start
            elif budget == "monthly":
                spent, period = month, ledger.month_start
            elif user is not None:
                spent, period = user, ledger.day_start
            else:
                continue  # a per-user budget does not apply to a run without a user
            for alert in policy.alerts:
                if spent >= alert.threshold * limit:
                    reached.append((budget, spent, alert, limit, period))
                    break
        return reached, acting

    def _wait(self, run: Any, delay: float) -> None:
        from workbench.monitoring.prometheus._builtin import builtin_metrics

        queue = builtin_metrics().task_queue.labels(run.pipeline_id)
        queue.inc()
        try:
            self.sleep(delay)
        finally:
            queue.dec()

    def _alert(
        self,
        run: Any,
        budget: str,
        alert: BudgetAlertConfig,
        spent: float,
        limit: float,
        period: float,
        delay: float | None = None,
    ) -> None:
        user = run.user_id if budget == "per_user" else None
        key = (str(run.store.path), budget, limit, alert.threshold, alert.action, period, user)
        if delay is None:  # a throttle speaks at each wait, since each one is longer
            if key in self._alerted:
                return
            self._alerted.add(key)
        event = BudgetAlert(
            budget=budget,
            action=alert.action,
            threshold=alert.threshold,
            spent_usd=spent,
            limit_usd=limit,
            user_id=user,
            execution_id=run.id,
            pipeline_id=run.pipeline_id,
            period_start=period,
            delay_s=delay,
        )
        level = logging.ERROR if alert.action == "stop" else logging.WARNING
        log.log(
            level,
            "workbench budget alert: %s",
            event.message,
            extra={"budget_alert": event.to_json()},
        )
        _keep_in_execution(run, level, event)
        for listener in list(_listeners):
            try:
                listener(event)
            except Exception:
                log.exception("a budget alert listener failed")

    # -- per config, per store -------------------------------------------------------------

    def _policy(self, config: WorkbenchConfig) -> _Policy | None:
        cached = self._policies.get(id(config))
        if cached is not None and cached[0] is config:
            return cached[1]
        policy = _Policy.of(config.cost_tracking)
        with self._lock:
            self._policies[id(config)] = (config, policy)
        return policy

    def _ledger(self, path: str, tz: ZoneInfo) -> Ledger:
        key = (path, tz.key)
        ledger = self._ledgers.get(key)
        if ledger is None:
            with self._lock:
                ledger = self._ledgers.get(key)
                if ledger is None:
                    ledger = self._ledgers[key] = Ledger(path, tz)
                    # A test suite opens a store per test: keep the connections of the few
                    # stores in use, not one per store ever seen (a closed ledger reconnects).
                    while len(self._ledgers) > _MAX_LEDGERS:
                        self._ledgers.pop(next(iter(self._ledgers))).close()
        return ledger

    def _calls_of(self, path: Any) -> _Calls:
        key = str(path)
        calls = self._calls.get(key)
        if calls is None:
            with self._lock:
                calls = self._calls.setdefault(key, _Calls())
        return calls


def _write_at_end(run: Any, canonical: Any) -> None:
    """Make the call being sent write itself to the store when it ends, on the caller's thread.

    The recorder writes a finished call on its writer thread, up to a second later; with a
    budget that throttles or stops, the other workers must see it before their next call, or
    they could send many calls past the line meanwhile. The call is found among the run's open
    calls by its canonical request (the object this hook was given); a client whose capture
    uses ``on_done`` itself (aiohttp) keeps the usual timing, and the call is then written at
    this worker's next call.
    """
    try:
        with run._lock:
            pending = [call for call in run._open_calls if call.canonical is canonical]
        store = run.store
        for call in pending:
            previous = call.on_done

            def written_now(previous: Callable[[], None] | None = previous) -> None:
                if previous is not None:
                    previous()
                store.flush(strict=False)

            call.on_done = written_now
    except AttributeError:  # the recorder's internals changed: the next call writes it
        log.debug("workbench could not ask a model call to be written when it ends")


def _keep_in_execution(run: Any, level: int, alert: BudgetAlert) -> None:
    """The alert as a log record of the execution (``workbench.*`` loggers are not captured);
    an execution debug mode did not sample keeps no row, this one included."""
    if not run.recording:
        return
    from workbench._context import current

    frame = current.get()
    step = frame.step if frame is not None and frame.run is run else None
    try:
        run.store.put(
            "log",
            (
                run.id,
                run.trace_id,
                frame.span_id if frame is not None and frame.run is run else run.root_span_id,
                step.step_id if step is not None else None,
                logging.getLevelName(level),
                log.name,
                f"budget alert: {alert.message}",
                run.json_text({"budget_alert": alert.to_json()}),
                alert.at,
            ),
        )
    except Exception:  # the alert was logged and delivered; keeping a copy must not stop it
        log.exception("workbench could not keep a budget alert in execution %s", run.id)


_guard: BudgetGuard | None = None


def observer(config: WorkbenchConfig) -> _hooks.Observer:
    """``_hooks.BUILTIN`` factory. Always installed: each call reads its own run's config (a
    process without budgets pays one dictionary lookup per model call)."""
    global _guard
    if _guard is None:
        _guard = BudgetGuard()
    return _guard
