"""workbench's pytest plugin: cost, token and latency budgets, record modes, replay, a summary.

Registered through the ``pytest11`` entry point ``workbench``, so it is active wherever
workbench is installed. It only wires pytest to ``workbench.testing``, which does the work and
needs no pytest: markers are declared in ``pytest_configure``, options live under
``parser.getgroup("workbench")``, and workbench itself is imported inside the fixtures and hooks
(a test suite that does not use them pays one marker lookup per test).

* ``workbench_run`` records the test body (and every execution it starts) and exposes
  ``cost_usd``, ``tokens``, ``model_calls``, ``steps``, ``duration_s``, ``latency.p50/.p95/.p99``
  (model calls; ``latency.steps`` over steps; ``latency.total``) and ``assert_matches(id)``.
* ``@pytest.mark.max_cost(usd)``, ``max_tokens(n)``, ``max_latency(p95=, p99=, p50=, total=)``
  fail the test with the measured value, the limit and the costliest or slowest calls;
  ``@pytest.mark.replay("exec_...")`` answers the test's model calls from that execution;
  ``@pytest.mark.workbench(record_mode=, block_network=, allowed_hosts=)`` sets one test.
* ``--workbench-record-mode=none|once|new|all|rewrite`` (default ``none`` when ``CI`` is set,
  else ``once``), ``--disable-recording``, ``--workbench-block-network``,
  ``--workbench-allowed-hosts``, ``--workbench-store``.
* Recordings persist beside the tests, one store per test module,
  ``<test dir>/recordings/<module>.db`` (as pytest-recording keeps its cassettes in
  ``cassettes/<module>/``), or in one store for all (``--workbench-store``). A run that only
  replays writes nothing there: its executions go to a temporary store.
* ``workbench_store``: where the test's executions are recorded: a temporary store per test
  (a new recording is copied into the recordings when the test has run; one without model
  calls is not kept), or, for tests without ``workbench_run``, ``--workbench-store``'s.
* ``workbench_config``: override it to change workbench's configuration for tests (a mapping
  shaped like ``workbench.yaml``). Precedence: marker > command line > fixture > workbench.yaml.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

if TYPE_CHECKING:
    from workbench.store import Store
    from workbench.testing._budgets import Budget  # noqa: F401 - named in a StashKey
    from workbench.testing._network import NetworkGuard  # noqa: F401 - named in a StashKey
    from workbench.testing._report import SessionReport
    from workbench.testing._run import RunPlan, TestRun
    from workbench.testing._settings import TestSettings

__all__ = ["MARKERS"]

# The one ``pytest11`` entry point: the profiling markers and the xdist merge of the summary ride
# on it, so ``-p no:workbench`` turns every part of the plugin off.
pytest_plugins = [
    "workbench._pytest_experiments",
    "workbench._pytest_profiling",
    "workbench._pytest_summary",
]

#: The markers this plugin declares, with the help ``pytest --markers`` shows.
MARKERS: dict[str, str] = {
    "max_cost": "max_cost(usd): fail the test if its model calls cost more than usd US dollars "
    "(an unknown price fails it too).",
    "max_tokens": "max_tokens(n): fail the test if its model calls use more than n tokens "
    "(input + output).",
    "max_latency": "max_latency(p50=, p95=, p99=, total=): fail the test if a model-call latency "
    "percentile, or the test body's total time, exceeds these seconds (under replay: the "
    "recorded latencies).",
    "replay": "replay(execution_id, store=None): answer the test's model calls from a recorded "
    "execution; a call it has no answer for fails the test.",
    "workbench": "workbench(record_mode=, block_network=, allowed_hosts=): this test's workbench "
    "settings (override the command line and workbench.yaml).",
}
_RUN_MARKERS = ("max_cost", "max_tokens", "max_latency", "replay", "workbench")


@dataclass
class _Session:
    """The plugin's state for one pytest session."""

    cli: dict[str, Any]
    invocation_dir: Path
    report: SessionReport | None = None
    shared: dict[str, Store] | None = None
    block_everywhere: bool = False
    #: workbench.yaml sets a budget in its pytest section: every test is held to it.
    record_everywhere: bool = False
    recording_disabled: bool = False

    def shared_store(self, path: str) -> Store:
        from workbench.store import open_store

        if self.shared is None:
            self.shared = {}
        store = self.shared.get(path)
        if store is None or store._closed:
            store = self.shared[path] = open_store(path)
        return store


@dataclass(frozen=True)
class _Setup:
    settings: TestSettings
    config_file: str | None  # a workbench.yaml for the test, when the fixture changed sections
    project_store: Path | None  # the project's own store, searched for replay ids


@dataclass(frozen=True)
class _Plan:
    """What ``workbench_run`` does with the test's recordings, decided once per test."""

    plan: RunPlan
    path: Path  # the recordings store's file
    recordings: Store | None  # that store, if the file exists
    search: list[Store]  # other stores holding executions the test may name
    replay_id: str | None  # @pytest.mark.replay's execution


_SESSION = pytest.StashKey[_Session]()
_RUN = pytest.StashKey["TestRun"]()
_BUDGET = pytest.StashKey["Budget"]()
_GUARD = pytest.StashKey["NetworkGuard | None"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("workbench", "workbench: model-call budgets, recording and replay")
    group.addoption(
        "--workbench-record-mode",
        choices=("none", "once", "new", "all", "rewrite"),
        default=None,
        help="how tests using workbench get model answers: none (only from the test's "
        "recording), once (record a test that has no recording, else replay), new (replay, "
        "and record calls the recording lacks), all or rewrite (record everything again); "
        "a new recording replaces the test's old one. Default: none when the CI environment "
        "variable is set, once otherwise.",
    )
    disable = ["--workbench-disable-recording"]
    if not _pytest_recording_installed():
        disable.insert(0, "--disable-recording")  # pytest-recording's spelling, if free
    group.addoption(
        *disable,
        action="store_true",
        default=False,
        dest="workbench_disable_recording",
        help="send every model call for real and keep no recording (recordings are neither "
        "read nor written; @pytest.mark.replay still answers)",
    )
    group.addoption(
        "--workbench-block-network",
        action="store_true",
        default=None,
        help="fail any connection that would leave this machine (loopback stays allowed)",
    )
    group.addoption(
        "--workbench-allowed-hosts",
        default=None,
        metavar="HOSTS",
        help="comma-separated hosts still reachable under --workbench-block-network",
    )
    group.addoption(
        "--workbench-store",
        default=None,
        metavar="PATH",
        help="one store for every test's recording; default: recordings/<module>.db beside "
        "each test module",
    )


def _is_url(store: str) -> bool:
    """Whether a store is given as a URL (``postgresql://``, ``sqlite:///``), not a path."""
    return re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]+:", store) is not None  # 2+ letters: not C:\


def _anchored(folder: Path, store: str) -> str:
    """A store's file path relative to ``folder`` made absolute; a URL left as given, a
    database being no file in ``folder``."""
    return store if _is_url(store) else str(folder / store)


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    invocation = Path(config.invocation_params.dir)
    store = config.getoption("workbench_store", None)
    hosts = config.getoption("workbench_allowed_hosts", None)
    cli = {
        "record_mode": config.getoption("workbench_record_mode", None),
        "block_network": config.getoption("workbench_block_network", None),
        "allowed_hosts": [h.strip() for h in hosts.split(",") if h.strip()] if hosts else None,
        "store": _anchored(invocation, store) if store else None,
    }
    # pytest-recording's --disable-recording means the same: no recording read or written.
    disabled = bool(config.getoption("workbench_disable_recording", False)) or bool(
        config.getoption("disable_recording", False)
    )
    config.stash[_SESSION] = _Session(
        cli,
        invocation,
        block_everywhere=bool(cli["block_network"]),
        record_everywhere=_file_sets_budgets(),
        recording_disabled=disabled,
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(_SESSION, None)
    if session is not None and session.shared:
        for store in session.shared.values():
            store.close()


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def workbench_config() -> dict[str, Any]:
    """workbench's configuration for the tests that see this fixture: override it.

    Return a mapping shaped like ``workbench.yaml``, merged over that file section by section:
    ``{"pytest": {"record_mode": "none", "max_cost": 0.05}}`` sets the plugin's defaults,
    ``{"cost_tracking": {...}}`` prices for the test's recordings. Markers and command-line
    options win over it.
    """
    return {}


@pytest.fixture
def _workbench_setup(request: pytest.FixtureRequest, workbench_config: Any) -> Iterator[_Setup]:
    from workbench.config import load_config
    from workbench.exceptions import ConfigError
    from workbench.store import resolve_store_path
    from workbench.testing._settings import marker_settings, resolve_settings, validated_config

    session = request.config.stash[_SESSION]
    markers: dict[str, Any] = {}
    try:
        base = load_config()
        project_store = resolve_store_path()
        config = validated_config(base, workbench_config, "the workbench_config fixture")
        for name in ("max_cost", "max_tokens", "max_latency", "workbench"):
            marker = request.node.get_closest_marker(name)
            if marker is not None:
                markers.update(marker_settings(name, marker.args, dict(marker.kwargs)))
        section = config.pytest
        if section.store:
            folder = Path(config.source).parent if config.source else Path.cwd()
            section = section.model_copy(update={"store": _anchored(folder, section.store)})
        settings = resolve_settings(file=section, fixture=None, cli=session.cli, markers=markers)
    except ConfigError as exc:
        _fail_setup(exc)
    changed = set(workbench_config) - {"pytest"} if isinstance(workbench_config, dict) else set()
    if not changed:
        yield _Setup(settings, None, project_store)
        return
    folder = Path(tempfile.mkdtemp(prefix="workbench-config-"))
    try:
        yield _Setup(settings, _write_config(config, folder), project_store)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def _workbench_plan(request: pytest.FixtureRequest, _workbench_setup: _Setup) -> Iterator[_Plan]:
    from workbench.exceptions import WorkbenchError
    from workbench.store import open_store
    from workbench.testing._run import plan_run

    session = request.config.stash[_SESSION]
    settings = _workbench_setup.settings
    node = request.node
    path = _recordings_path(node, settings.store)
    # Read if it exists; created only when a recording with model calls is kept in it.
    recordings = session.shared_store(str(path)) if path.exists() else None
    search: list[Store] = []
    project = _workbench_setup.project_store
    if project is not None and project.exists() and project.resolve() != path.resolve():
        search.append(open_store(project))
    replay = node.get_closest_marker("replay")
    try:
        replay_id = None
        if replay is not None:
            replay_id, where = _replay_marker(replay)
            if where is not None:
                search.insert(0, open_store(where))
        plan = plan_run(
            None if session.recording_disabled else recordings,
            node.nodeid,
            settings.record_mode,
            location=str(path),
            replay_id=replay_id,
            replay_stores=search,
            block_network=settings.block_network,
            allowed_hosts=settings.allowed_hosts,
            disabled=session.recording_disabled,
        )
    except WorkbenchError as exc:
        _fail_setup(exc)
    if plan.recording and settings.record_mode == "rewrite" and recordings is not None:
        recordings.delete_executions(plan.replaces)  # as pytest-recording: gone before the run
    yield _Plan(plan, path, recordings, search, replay_id)


@pytest.fixture
def workbench_store(request: pytest.FixtureRequest, _workbench_setup: _Setup) -> Iterator[Store]:
    """The store the test's executions are recorded in: a new temporary one per test (a
    recording is copied into the test module's recordings once the test has run), or, for a
    test without ``workbench_run``, the session's shared one (``--workbench-store PATH`` or
    ``pytest.store`` in workbench.yaml). While the test runs it is also the default store
    (``WORKBENCH_DB``)."""
    from workbench.store import open_store

    session = request.config.stash[_SESSION]
    path = _workbench_setup.settings.store
    folder = None
    if path is not None and not _uses_run(request, session):
        store = session.shared_store(path)
    else:
        # A test's run goes to the recordings only when it is one, whole and with model calls
        # (see _keep_recording): a run that only replays leaves them byte for byte as they are.
        folder = Path(tempfile.mkdtemp(prefix="workbench-test-"))
        store = open_store(folder / "workbench.db")
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("WORKBENCH_DB", store.location)  # str() masks a password
            yield store
    finally:
        if folder is not None:
            store.close()
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def workbench_run(
    request: pytest.FixtureRequest,
    workbench_store: Store,
    _workbench_setup: _Setup,
    _workbench_plan: _Plan,
) -> Iterator[TestRun]:
    """The test body, recorded: ``cost_usd``, ``tokens``, ``model_calls``, ``steps``,
    ``duration_s``, ``latency`` (``.p50``/``.p95``/``.p99``), ``assert_matches(id)``."""
    from workbench.testing._network import NetworkGuard
    from workbench.testing._run import TestRun

    settings = _workbench_setup.settings
    node = request.node
    plan = _workbench_plan.plan
    recordings = _workbench_plan.recordings
    search = list(_workbench_plan.search)
    if recordings is not None:
        search.insert(0, recordings)  # assert_matches finds the recorded executions there
    run = TestRun(
        node.nodeid,
        store=workbench_store,
        cassette=plan.cassette,
        recording=plan.recording,
        record_mode=None if _workbench_plan.replay_id else settings.record_mode,
        search_stores=search,
    )
    guard = NetworkGuard(settings.allowed_hosts) if settings.block_network else None
    node.stash[_RUN] = run
    node.stash[_BUDGET] = settings.budget
    node.stash[_GUARD] = guard
    with pytest.MonkeyPatch.context() as patch:
        if _workbench_setup.config_file is not None:
            patch.setenv("WORKBENCH_CONFIG", _workbench_setup.config_file)
        with guard if guard is not None else contextlib.nullcontext():
            yield run
    if run.running:  # the body never ran to its end under the call hook
        run.stop(None)
    if plan.recording:
        _keep_recording(request.config.stash[_SESSION], _workbench_plan, run)


@pytest.fixture(autouse=True)
def _workbench_autouse(request: pytest.FixtureRequest) -> Iterator[None]:
    """Sets up ``workbench_run`` for tests with a workbench marker (for every test when
    workbench.yaml's ``pytest`` section sets a budget); blocks the network for every test under
    ``--workbench-block-network``."""
    node = request.node
    session = request.config.stash.get(_SESSION, None)
    if (session is not None and session.record_everywhere) or any(
        node.get_closest_marker(name) is not None for name in _RUN_MARKERS
    ):
        request.getfixturevalue("workbench_run")
        yield
        return
    if session is None or not session.block_everywhere or "workbench_run" in request.fixturenames:
        yield
        return
    from workbench.testing._network import NetworkGuard

    with NetworkGuard(session.cli["allowed_hosts"] or ()):
        yield


# -- hooks -------------------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    """Record the test body as one execution, then hold it to its budgets."""
    run = item.stash.get(_RUN, None)
    if run is None:
        return (yield)
    from workbench.testing._budgets import failure_message

    run.start()
    failure: BaseException | None = None
    result: Any = None
    try:
        result = yield
    except BaseException as exc:
        failure = exc
    run.stop(failure)
    checks = [] if failure is not None else run.check_budget(item.stash[_BUDGET])
    _report(item, run, checks)
    # A refused call fails the test even if its code carried on; it also explains a failure
    # better than the SDK's 400 does, so it replaces that (outside the except: no chaining).
    problem = _problems(item, run) or failure_message(checks)
    if problem is not None:
        pytest.fail(problem, pytrace=False)
    if failure is not None:
        raise failure
    return result


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    from workbench._pytest_summary import is_xdist_worker

    session = config.stash.get(_SESSION, None)
    if session is None or session.report is None or is_xdist_worker(config):
        return  # a worker's tests are summed up by the controller (workbench._pytest_summary)
    lines = session.report.lines()
    if lines:
        terminalreporter.write_sep("-", "workbench")
        for line in lines:
            terminalreporter.write_line(line)


# -- helpers -----------------------------------------------------------------------------------


def _pytest_recording_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("pytest_recording") is not None


def _keep_recording(session: _Session, planned: _Plan, run: TestRun) -> None:
    """Copy the test's new recording into its recordings store, replacing the old one (one
    recording per test, as a cassette). A run without model calls keeps nothing (as vcrpy
    writes no empty cassette), but still replaces: the test no longer calls a model."""
    from workbench.store._export import copy_executions

    executions = run.executions
    replaces = planned.plan.replaces
    if not run.model_calls and not replaces:
        return
    recordings = planned.recordings or session.shared_store(str(planned.path))
    if run.model_calls:
        # An execution the test recorded into a store of its own choosing stays there (a
        # recording serves the calls of those in its store only, see load_recording).
        ids = [execution.id for execution in executions]
        copy_executions(run.store, recordings, ids, skip_missing=True)
    if replaces:
        recordings.delete_executions(replaces)


def _uses_run(request: pytest.FixtureRequest, session: _Session) -> bool:
    """The test records its body (``workbench_run``), asked for or set up by a marker."""
    node = request.node
    return (
        "workbench_run" in request.fixturenames
        or session.record_everywhere
        or any(node.get_closest_marker(name) is not None for name in _RUN_MARKERS)
    )


def _recordings_path(node: pytest.Item, shared: str | None) -> Path:
    """Where the test's recordings live: the shared store, else ``recordings/<module>.db``
    beside the test module."""
    if shared is not None:
        return Path(shared)
    from workbench.testing._cassette import RECORDINGS_DIR

    module = Path(str(node.path))
    return module.parent / RECORDINGS_DIR / f"{module.stem}.db"


def _report(item: pytest.Item, run: TestRun, checks: list[Any]) -> None:
    from workbench.testing._report import SessionReport, TestReport

    session = item.config.stash[_SESSION]
    if session.report is None:
        session.report = SessionReport()
    session.report.add(TestReport.of(item.nodeid, run.summary(), checks))


def _problems(item: pytest.Item, run: TestRun) -> str | None:
    guard = item.stash.get(_GUARD, None)
    blocked = (
        f"workbench blocked connection(s) off this machine: {', '.join(guard.blocked)} "
        f"(--workbench-block-network); answer them from a recording or allow the host with "
        f"--workbench-allowed-hosts"
        if guard is not None and guard.blocked
        else None
    )
    parts = [part for part in (run.problems(), blocked, run.mismatches()) if part]
    return "\n\n".join(parts) if parts else None


def _fail_setup(exc: BaseException) -> NoReturn:
    """Fail the test's setup with the error's message alone: it names what to fix."""
    failed = pytest.fail.Exception(str(exc), pytrace=False)
    failed.__suppress_context__ = True
    raise failed


def _file_sets_budgets() -> bool:
    """workbench.yaml (as the session starts) gives every test a budget."""
    # The common case, no file, costs a stat rather than the configuration models' import
    # (workbench.config looks in the same two places: WORKBENCH_CONFIG, then ./workbench.yaml).
    if not os.environ.get("WORKBENCH_CONFIG") and not os.path.isfile("workbench.yaml"):
        return False
    from workbench.config import load_config
    from workbench.exceptions import ConfigError

    try:
        section = load_config().pytest
    except ConfigError:
        return False  # said again, with the file and key, by the tests that use workbench
    return any(v is not None for v in (section.max_cost, section.max_tokens, section.max_latency))


def _replay_marker(marker: pytest.Mark) -> tuple[str, str | None]:
    from workbench.exceptions import ConfigError

    args, kwargs = marker.args, dict(marker.kwargs)
    store = kwargs.pop("store", None)
    if len(args) != 1 or not isinstance(args[0], str) or kwargs:
        raise ConfigError(
            f"@pytest.mark.replay takes one execution id and an optional store, e.g. "
            f"@pytest.mark.replay('exec_0123abcd', store='recordings/workbench.db'); got "
            f"args={args!r} kwargs={dict(marker.kwargs)!r}"
        )
    if store is not None and not _is_url(store) and not Path(store).is_file():
        raise ConfigError(
            f"@pytest.mark.replay({args[0]!r}, store={store!r}): no such file; give the path "
            f"of the workbench.db that holds the execution"
        )
    return args[0], None if store is None else str(store)


def _write_config(config: Any, folder: Path) -> str:
    """The test's merged configuration as a workbench.yaml (paths made absolute first)."""
    import yaml

    data = config.model_dump(exclude_unset=True, by_alias=True, mode="json")
    source = Path(config.source).parent if config.source else Path.cwd()
    store = data.get("store")
    if isinstance(store, dict) and store.get("path") and not os.path.isabs(store["path"]):
        store["path"] = str(source / store["path"])
    profiling = data.get("profiling")
    if isinstance(profiling, dict) and profiling.get("output_dir"):
        profiling["output_dir"] = str(source / profiling["output_dir"])
    file = folder / "workbench.yaml"
    file.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return str(file)
