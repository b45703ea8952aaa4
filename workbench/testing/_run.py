"""What a test ran, recorded: :class:`TestRun`, the object behind the ``workbench_run`` fixture.

Owns recording a test body as one execution (named after the test's node id) plus every
execution the body starts inside it, serving their model calls from a :class:`Cassette` when
the record mode or ``@pytest.mark.replay`` says so, and answering the questions a test asks —
``cost_usd``, ``tokens``, ``model_calls``, ``steps``, ``duration_s``, ``latency`` —
from what is recorded so far. :func:`plan_run` turns a record mode into a cassette. The pytest
wiring is in ``workbench.pytest_plugin``; nothing here imports pytest.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from workbench import _hooks
from workbench.diff import compare_executions
from workbench.exceptions import ConfigError, ExecutionNotFoundError
from workbench.recorder import LiveExecution, record
from workbench.records import Execution, ModelCall, Step
from workbench.store import Store
from workbench.testing._budgets import Budget, BudgetCheck, check_budget
from workbench.testing._cassette import (
    META,
    Cassette,
    latest_recording,
    load_recording,
    recorded_runs,
)
from workbench.testing._summary import Latency, RunSummary, Tokens

__all__ = ["RunPlan", "TestRun", "plan_run"]

_FIX = (
    "record it with --workbench-record-mode=once (or new, to add calls; rewrite, to record "
    "everything again) and commit the recordings file"
)


@dataclass(frozen=True)
class RunPlan:
    """What a test's run does with recordings: where its model calls are answered from, and
    whether the run becomes the test's recording (replacing ``replaces``, its earlier runs)."""

    cassette: Cassette
    recording: bool
    replaces: tuple[str, ...] = ()


def plan_run(
    store: Store | None,
    nodeid: str,
    record_mode: str,
    *,
    location: str | None = None,
    replay_id: str | None = None,
    replay_stores: Sequence[Store] = (),
    block_network: bool = False,
    allowed_hosts: Iterable[str] = (),
    disabled: bool = False,
) -> RunPlan:
    """How a test's run uses the recordings in ``store`` (``None``: no recordings file yet,
    at ``location``).

    ``replay_id`` (``@pytest.mark.replay``) serves that execution's calls, looked up in
    ``store`` then ``replay_stores``, whatever the record mode. ``disabled``
    (``--disable-recording``) sends every call for real and records nothing as the test's.
    """
    options: dict[str, Any] = {"block_network": block_network, "allowed_hosts": allowed_hosts}
    stores = [candidate for candidate in (store, *replay_stores) if candidate is not None]
    if replay_id is not None:
        for candidate in stores:
            try:
                replayed = load_recording(candidate, replay_id)
            except ExecutionNotFoundError:
                continue
            why = f"@pytest.mark.replay({replay_id!r}) answers calls from that execution only"
            return RunPlan(Cassette(replayed, on_miss="refuse", why=why, **options), False)
        searched = ", ".join(str(s.path) for s in stores) or "no store"
        raise ExecutionNotFoundError(
            f"@pytest.mark.replay({replay_id!r}): no such execution in {searched}; give the "
            f"store with @pytest.mark.replay({replay_id!r}, store='path/to/workbench.db'), "
            f"or list executions with `workbench runs list`"
        )
    if disabled:
        why = "recording is disabled (--disable-recording)"
        return RunPlan(Cassette(None, on_miss="live", why=why, **options), False)
    earlier = tuple(recorded_runs(store, nodeid)) if store is not None else ()
    if record_mode in ("all", "rewrite"):
        why = f"record mode {record_mode!r} records every call again"
        return RunPlan(Cassette(None, on_miss="live", why=why, **options), True, earlier)
    found = latest_recording(store, nodeid) if store is not None else None
    recording = load_recording(store, found.id) if store is not None and found else None
    if record_mode == "new":
        why = "record mode 'new' replays recorded calls and records new ones"
        return RunPlan(Cassette(recording, on_miss="live", why=why, **options), True, earlier)
    if record_mode == "once" and recording is None:
        why = "record mode 'once' records a test that has no recording"
        return RunPlan(Cassette(None, on_miss="live", why=why, **options), True, earlier)
    if recording is None:
        where = store.path if store is not None else location
        why = f"record mode {record_mode!r}, and the test has no recording in {where}; {_FIX}"
    else:
        why = (
            f"record mode {record_mode!r} answers only from the test's recording "
            f"{recording.execution_id}; record the new calls with --workbench-record-mode=new, "
            f"or everything again with --workbench-record-mode=rewrite"
        )
    return RunPlan(Cassette(recording, on_miss="refuse", why=why, **options), False)


class TestRun(_hooks.Observer):
    """The executions one test runs, recorded, and what they cost and how long they took.

    >>> def test_summary(workbench_run):
    ...     summarise("a long text")
    ...     assert workbench_run.cost_usd < 0.01
    ...     assert workbench_run.latency.p95 < 2      # seconds, over the model calls

    Values are read from the store each time they are asked for (what is recorded so far);
    once the test body has ended they are fixed. Calls answered from a recording count with
    their recorded latency and cost.
    """

    __test__ = False  # not a pytest test class despite the name

    def __init__(
        self,
        name: str,
        *,
        store: Store,
        cassette: Cassette | None = None,
        recording: bool = False,
        record_mode: str | None = None,
        search_stores: Sequence[Store] = (),
    ) -> None:
        self.name = name
        self.store = store
        self.cassette = cassette
        self.recording = recording
        self.record_mode = record_mode
        self._search = tuple(search_stores)
        self._record: record | None = None
        self._root: LiveExecution | None = None
        self._nested: list[LiveExecution] = []
        self._final: RunSummary | None = None
        #: ``assert_matches`` calls made while the test body's own execution was open: they
        #: are compared when it has ended (see :meth:`mismatches`).
        self._deferred: list[tuple[Execution, str | Iterable[str]]] = []
        self._mismatches: list[str] = []

    def __repr__(self) -> str:
        state = "running" if self.running else ("done" if self._final else "not started")
        return f"<TestRun {self.name!r} {state}>"

    # -- life ------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._root is not None and self._final is None

    @property
    def execution_id(self) -> str | None:
        """The id of the execution recording the test body (``None`` before it starts)."""
        return self._root.id if self._root is not None else None

    def start(self) -> None:
        """Start recording: everything the current context runs belongs to the test."""
        cassette = self.cassette
        meta = {
            "nodeid": self.name,
            "record_mode": self.record_mode,
            "recording": self.recording,
            "replayed_from": cassette.recording_id if cassette is not None else None,
        }
        # A test is always recorded, whatever debug mode's sampling says for production.
        self._record = record(
            self.name, inputs={}, store=self.store, metadata={META: meta}, sampled=True
        )
        _hooks.add_observer(self)
        try:
            self._root = self._record.__enter__()
        except BaseException:
            _hooks.remove_observer(self)
            raise
        self._root.interceptor = cassette

    def stop(self, exc: BaseException | None = None) -> RunSummary:
        """End the test's execution (``exc``: what the test body raised) and fix the values."""
        root, entered = self._root, self._record
        if root is None or entered is None:
            raise ConfigError(f"test run {self.name!r} was never started")
        if self._final is not None:
            return self._final
        meta = root.metadata[META]
        meta["executions"] = [run.id for run in self._nested if run.recording]
        if self.cassette is not None and self.cassette.answered:
            meta["latencies"] = dict(self.cassette.answered)
        try:
            entered.__exit__(
                type(exc) if exc is not None else None,
                exc,
                exc.__traceback__ if exc is not None else None,
            )
        finally:
            _hooks.remove_observer(self)
        self._final = self._summarise()
        if exc is None:
            self._check_deferred()
        return self._final

    def execution_started(self, run: Any) -> None:
        """An execution started inside the test: it belongs to the test, and is answered from
        the same recording (unless it brings its own answers, as a replay does)."""
        if self._root is None or run is self._root or self._final is not None:
            return
        self._nested.append(run)
        if run.interceptor is None and self.cassette is not None:
            run.interceptor = self.cassette

    # -- what a test asks ------------------------------------------------------------------

    def summary(self) -> RunSummary:
        """Everything added up: fixed once the test body ended, read afresh before."""
        return self._final if self._final is not None else self._summarise()

    @property
    def cost_usd(self) -> float | None:
        """US dollars; ``None`` if a call's price is unknown (``summary().unpriced_calls``)."""
        return self.summary().cost_usd

    @property
    def tokens(self) -> Tokens:
        return self.summary().tokens

    @property
    def model_calls(self) -> list[ModelCall]:
        return self.summary().model_calls

    @property
    def steps(self) -> list[Step]:
        return self.summary().steps

    @property
    def duration_s(self) -> float:
        """Wall time of the test body (so far)."""
        return self.summary().duration_s

    @property
    def latency(self) -> Latency:
        """``.p50``/``.p95``/``.p99`` over model calls, ``.steps.p95`` over steps, ``.total``."""
        return self.summary().latency

    @property
    def executions(self) -> list[Execution]:
        return list(self.summary().executions)

    def check_budget(self, budget: Budget) -> list[BudgetCheck]:
        return check_budget(self.summary(), budget)

    def problems(self) -> str | None:
        """Calls the cassette refused (no recorded answer, or off the machine), if any."""
        return self.cassette.problems() if self.cassette is not None else None

    def assert_matches(
        self, recorded_id: str, *, ignore: str | Iterable[str] = (), store: Store | None = None
    ) -> None:
        """Fail (``AssertionError``) with the diff engine's rendering if this test's run differs
        from execution ``recorded_id`` in content (outputs, steps, prompts, answers, states).

        The execution compared is the one the test started with the same pipeline id as the
        recorded one, else the only one it started, else the test body's own, under the
        recorded pipeline's id — compared when the body has ended, with everything it did
        after this call too, so the test fails then. Cost and time never fail it.
        """
        recorded = self._find(recorded_id, store)
        chosen = self._finished_nested(recorded)
        if chosen is None and self.running:
            # The test body's own execution is still open: its later steps and calls, its
            # outputs and its totals are not there yet. Compared when the body has ended; the
            # plugin then fails the test with the same message.
            self._deferred.append((recorded, ignore))
            return
        message = self._differs(recorded, chosen or self._own(recorded), ignore)
        if message is not None:
            raise AssertionError(message)

    def mismatches(self) -> str | None:
        """What the deferred ``assert_matches`` calls found once the body ended, if anything."""
        return "\n\n".join(self._mismatches) if self._mismatches else None

    def _check_deferred(self) -> None:
        for recorded, ignore in self._deferred:
            message = self._differs(recorded, self._own(recorded), ignore)
            if message is not None:
                self._mismatches.append(message)
        self._deferred.clear()

    @staticmethod
    def _differs(
        recorded: Execution, current: Execution, ignore: str | Iterable[str]
    ) -> str | None:
        diff = compare_executions(recorded, current, ignore=ignore)
        if not diff:
            return None
        return (
            f"this test's run ({current.id}) differs from recorded execution "
            f"{recorded.id}:\n{_render(diff)}"
        )

    # -- inside ----------------------------------------------------------------------------

    def _runs(self) -> list[LiveExecution]:
        runs = [self._root, *self._nested] if self._root is not None else []
        return [run for run in runs if run is not None and run.recording]

    def _summarise(self) -> RunSummary:
        executions = [run.store.get_execution(run.id) for run in self._runs()]
        cassette = self.cassette
        return RunSummary.of(
            executions,
            recorded_latency_s=cassette.answered if cassette is not None else None,
            recorded_duration_s=cassette.duration_s if cassette is not None else None,
            recording_id=cassette.recording_id if cassette is not None else None,
        )

    def _find(self, recorded_id: str, store: Store | None) -> Execution:
        stores = [store] if store is not None else [self.store, *self._search]
        for candidate in stores:
            try:
                return candidate.get_execution(recorded_id)
            except ExecutionNotFoundError:
                continue
        raise ExecutionNotFoundError(
            f"assert_matches: no execution {recorded_id!r} in "
            f"{', '.join(str(s.path) for s in stores)}; pass store= the store that holds it"
        )

    def _finished_nested(self, recorded: Execution) -> Execution | None:
        """The ended execution the test started with the recorded one's pipeline id, else the
        only one it started."""
        nested = [run for run in self._nested if run.recording and run.status != "running"]
        same = [run for run in nested if run.pipeline_id == recorded.pipeline_id]
        if same:
            chosen: LiveExecution | None = same[-1]
        elif len(nested) == 1:
            chosen = nested[0]
        else:
            chosen = None
        return chosen.store.get_execution(chosen.id) if chosen is not None else None

    def _own(self, recorded: Execution) -> Execution:
        """The test body's ended execution, under the recorded pipeline's id."""
        root = self._root
        if root is None:
            raise ConfigError("assert_matches: the test has not started recording yet")
        execution = root.store.get_execution(root.id)
        return dataclasses.replace(execution, pipeline_id=recorded.pipeline_id)


def _render(diff: Any) -> str:
    from rich.console import Console

    console = Console(file=io.StringIO(), width=120, color_system=None, highlight=False)
    console.print(diff)
    return console.file.getvalue()  # type: ignore[attr-defined,no-any-return]
