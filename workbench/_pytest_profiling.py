"""pytest markers for profiling, loaded by the ``workbench`` plugin (``pytest_plugins``).

``@pytest.mark.profile(cpu=True, memory=True)`` profiles every execution the test records (from
its first line, until it ends) and lists the profiles in the test's report and its
``user_properties``; ``@pytest.mark.max_memory("200 MB")`` tracks the test's heap with memray
and fails it, with the top allocating stacks of the test's own code, when the peak passes the
limit; pytest-memray's spelling, ``@pytest.mark.limit_memory("200 MB")``, works the same when
pytest-memray is not installed. When pytest-memray is installed and tracks the test (``--memray``,
or its own markers) it owns memray's one tracker: ``max_memory`` becomes its ``limit_memory``, and
``profile(memory=True)`` says to keep one of them. This module only
wires: the work is ``profile_executions`` and ``MemoryProfile``, imported when a marked test
runs, so unmarked tests pay nothing.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

__all__ = ["pytest_configure", "pytest_runtest_call"]


#: Frames of the machinery between pytest and the test (pytest, pluggy, this plugin, memray's
#: start-up thread): left out of a max_memory failure, which shows the test's own code.
_MACHINERY = ("/_pytest/", "/pluggy/", "/workbench/_pytest_profiling.py", "/threading.py")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "profile(cpu=True, memory=False, async_io=False, duration=None): profile the workbench "
        "executions this test records; the profiles are linked to them and listed in the report",
    )
    config.addinivalue_line(
        "markers",
        "max_memory(limit): fail the test when the peak of the heap it allocates (tracked by "
        "memray) exceeds limit, e.g. '200 MB'; the failure shows the top allocating stacks",
    )
    if not config.pluginmanager.hasplugin("memray_manager"):
        config.addinivalue_line(
            "markers", "limit_memory(limit): pytest-memray's spelling of max_memory(limit)"
        )


def _memray_tracks(item: pytest.Item) -> bool:
    """pytest-memray tracks this test (it then holds memray's one tracker of the process)."""
    config = item.config
    if not config.pluginmanager.hasplugin("memray_manager"):
        return False
    if any(item.iter_markers("limit_memory")) or any(item.iter_markers("limit_leaks")):
        return True
    return bool(config.getoption("memray", False) or config.getini("memray"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    profile = item.get_closest_marker("profile")
    limit = item.get_closest_marker("max_memory")
    if limit is None and not item.config.pluginmanager.hasplugin("memray_manager"):
        limit = item.get_closest_marker("limit_memory")
    if profile is None and limit is None:
        return (yield)
    kinds = _kinds(profile) if profile is not None else []
    if _memray_tracks(item):
        if "memory" in kinds:
            pytest.fail(
                f"{item.nodeid}: profile(memory=True) needs memray's one tracker per process, "
                f"which pytest-memray holds for this test (--memray or its markers); keep one of "
                f"them",
                pytrace=False,
            )
        # max_memory was handed to pytest-memray as limit_memory (pytest_runtest_setup)
        return (yield from _profiled(item, profile, kinds))
    if limit is not None and "memory" in kinds:
        pytest.fail(
            f"{item.nodeid}: max_memory and profile(memory=True) both need memray's one "
            f"tracker per process; keep one of them",
            pytrace=False,
        )
    if limit is None:
        return (yield from _profiled(item, profile, kinds))
    return (yield from _limited(item, limit, profile, kinds))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Under pytest-memray's tracking, max_memory is its limit_memory: one tracker, its report."""
    limit = item.get_closest_marker("max_memory")
    if limit is None or not item.config.pluginmanager.hasplugin("memray_manager"):
        return
    if item.get_closest_marker("limit_memory") is not None:
        raise pytest.UsageError(
            f"{item.nodeid}: max_memory and limit_memory both limit the heap; keep one"
        )
    if item.config.getoption("memray", False) or item.config.getini("memray"):
        item.add_marker(pytest.mark.limit_memory(*limit.args, **limit.kwargs))


def _kinds(marker: pytest.Mark) -> list[str]:
    unknown = set(marker.kwargs) - {"cpu", "memory", "async_io", "duration"}
    if marker.args or unknown:
        raise pytest.UsageError(
            f"@pytest.mark.profile takes cpu=, memory=, async_io= and duration= keywords, got "
            f"{marker.args or ''}{sorted(unknown) or ''}; e.g. "
            f"@pytest.mark.profile(cpu=True, memory=True)"
        )
    kinds = [k for k in ("cpu", "memory", "async_io") if marker.kwargs.get(k, k == "cpu")]
    return kinds or ["cpu"]


def _profiled(
    item: pytest.Item, marker: pytest.Mark | None, kinds: list[str]
) -> Generator[None, Any, Any]:
    if marker is None:
        return (yield)
    from workbench.profiling._session import profile_executions

    session = profile_executions(*kinds, duration=marker.kwargs.get("duration"))  # type: ignore[arg-type]
    with session:
        try:
            return (yield)
        finally:
            _report(item, session.profiles)


def _report(item: pytest.Item, profiles: list[Any]) -> None:
    if not profiles:
        item.add_report_section("call", "workbench profiles", "no execution was recorded")
        return
    lines = []
    for profile in profiles:
        summary = profile.summary
        if summary.error:
            lines.append(f"{profile.id} {profile.kind} of {profile.execution_id}: {summary.error}")
            continue
        lines.append(f"{profile.id} {profile.kind} of {profile.execution_id}: {profile.path}")
        for stat in summary.top_functions[:3]:
            lines.append(
                f"    {stat.name} ({stat.file}:{stat.line}) self {stat.self_value:g}{stat.unit}"
            )
    item.add_report_section("call", "workbench profiles", "\n".join(lines))
    item.user_properties.append(("workbench_profiles", [p.id for p in profiles]))


def _limited(
    item: pytest.Item, limit_marker: pytest.Mark, profile: pytest.Mark | None, kinds: list[str]
) -> Generator[None, Any, Any]:
    from workbench._conditions import parse_size
    from workbench.exceptions import WorkbenchError
    from workbench.profiling._memory import MemoryProfile
    from workbench.profiling._summary import format_bytes

    if len(limit_marker.args) != 1 or limit_marker.kwargs:
        raise pytest.UsageError(
            f"{item.nodeid}: @pytest.mark.max_memory takes one limit, e.g. "
            f"@pytest.mark.{limit_marker.name}('200 MB')"
        )
    try:
        limit = parse_size(limit_marker.args[0])
    except WorkbenchError as exc:
        raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.max_memory: {exc}") from None
    with tempfile.TemporaryDirectory(prefix="workbench-max-memory-") as folder:
        tracker = MemoryProfile(
            Path(folder) / "test.memray.bin", top=5, heap_dump=True, flamegraph=False
        )
        _start_elsewhere(tracker)
        try:
            result = yield from _profiled(item, profile, kinds)
        finally:
            summary = tracker.stop()
    peak = summary.peak_bytes or 0
    if peak > limit:
        stacks = "\n".join(
            f"  {format_bytes(stack.size)} in {stack.allocations} allocation(s):\n"
            + "\n".join(
                f"      {name} ({file}:{line})" for name, file, line in _own(stack.frames)[:6]
            )
            for stack in summary.top_stacks
        )
        pytest.fail(
            f"the test's heap peaked at {format_bytes(peak)}, over its max_memory of "
            f"{format_bytes(limit)}; the top allocating stacks at the peak:\n{stacks}",
            pytrace=False,
        )
    return result


def _own(frames: Any) -> list[tuple[str, str, int]]:
    """A stack's frames (innermost first) without pytest's, pluggy's and this plugin's."""
    return [frame for frame in frames if not any(part in frame[1] for part in _MACHINERY)]


def _start_elsewhere(tracker: Any) -> None:
    """Start memray from a thread of its own: started on the test's thread, deep in pytest's
    call stack, it would lose that thread's stacks as those calls return."""
    failure: list[BaseException] = []

    def start() -> None:
        try:
            tracker.start()
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=start, name="workbench-profiler-max-memory")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
