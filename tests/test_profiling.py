"""Trigger-based profilers: conditions, the watchdog, py-spy/in-process CPU, memray, yappi, CLI.

Every profile here is real: py-spy attaches to this very process (or, where the kernel refuses
ptrace, the in-process sampler runs and the profile says so), memray tracks the heap and yappi
the wall clock, and the profiles are read back from a real SQLite store.
"""

from __future__ import annotations

import asyncio
import json
import pstats
import re
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

import workbench
from workbench.cli import cli
from workbench.config import load_config
from workbench.exceptions import ConfigError, ProfileNotFoundError
from workbench.profiling import (
    Observation,
    Profile,
    ProfileSummary,
    parse_condition,
    parse_size,
    profile_executions,
)
from workbench.profiling._watchdog import watchdog_thread
from workbench.store import Store
from workbench.testing import ModelServer

KEY = "sk-test-profiling-0123456789abcdef"


# -- workloads (module level: the functions profiles must name) --------------------------------


def crunch(seconds: float) -> int:
    """Pure-Python CPU work for about ``seconds``."""
    total = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for i in range(2_000):
            total += i * i
    return total


def hoard(megabytes: int) -> list[bytearray]:
    """Allocate and keep ``megabytes`` MiB in 1 MiB blocks."""
    return [bytearray(1024 * 1024) for _ in range(megabytes)]


@workbench.pipeline
def crunch_pipeline(seconds: float, *, base_url: str) -> str:
    """CPU work around one model call (module level, so replay can import it)."""
    crunch(seconds)
    with openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0) as client:
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "profile me"}]
        )
    crunch(seconds)
    return reply.choices[0].message.content or ""


def _configure(**profiling: Any) -> None:
    """Write workbench.yaml in the test's working directory with this profiling section."""
    profiling.setdefault("check_interval", 0.01)
    Path("workbench.yaml").write_text(yaml.safe_dump({"profiling": profiling}))


def _only(execution: workbench.Execution, kind: str) -> Profile:
    found = [p for p in execution.profiles if p.kind == kind]
    assert len(found) == 1, execution.profiles
    return found[0]


def _names(profile: Profile) -> list[str]:
    return [stat.name for stat in profile.summary.top_functions]


# -- the condition grammar ------------------------------------------------------------------


def _seen(**values: Any) -> Observation:
    return Observation("exec_x", "p", **{"execution_time": 0.0, **values})


@pytest.mark.parametrize(
    ("text", "holds", "fails"),
    [
        ("execution_time > 60", {"execution_time": 60.5}, {"execution_time": 60.0}),
        ("execution_time > 60s", {"execution_time": 61}, {"execution_time": 59}),
        ("step_time >= 500ms", {"step_time": 0.5}, {"step_time": 0.499}),
        ("memory_usage > 1GB", {"memory_usage": 1024**3 + 1}, {"memory_usage": 1024**3}),
        ("memory_usage <= 512 KB", {"memory_usage": 512 * 1024}, {"memory_usage": 512 * 1024 + 1}),
        ("cpu_percent > 90%", {"cpu_percent": 95.0}, {"cpu_percent": 90.0}),
        ("cpu_percent != 0", {"cpu_percent": 1.0}, {"cpu_percent": 0.0}),
        ("step_time > 1 and cpu_percent > 50", {"step_time": 2, "cpu_percent": 60},
         {"step_time": 2, "cpu_percent": 40}),
        ("step_time > 1 or cpu_percent > 50 and memory_usage > 1MB", {"step_time": 2},
         {"cpu_percent": 60, "memory_usage": 10}),
    ],
)  # fmt: skip
def test_conditions_compare_quantities_with_units(
    text: str, holds: dict[str, Any], fails: dict[str, Any]
) -> None:
    """Each quantity compares with numbers in its units; 'and' binds tighter than 'or'."""
    condition = parse_condition(text)
    assert condition(_seen(**holds)) is True
    assert condition(_seen(**fails)) is False


def test_an_unobserved_quantity_makes_its_comparison_false() -> None:
    """step_time before any step ended (None) never satisfies a comparison."""
    assert parse_condition("step_time >= 0")(_seen()) is False


_FACTORS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "": 1}


@given(
    number=st.integers(min_value=0, max_value=10_000),
    unit=st.sampled_from(list(_FACTORS)),
    observed=st.integers(min_value=0, max_value=20_000 * 1024**3),
)
def test_memory_thresholds_are_powers_of_1024(number: int, unit: str, observed: int) -> None:
    """'memory_usage > N UNIT' holds exactly when more than N x 1024^k bytes are used."""
    condition = parse_condition(f"memory_usage > {number}{unit}")
    assert condition(_seen(memory_usage=observed)) is (observed > number * _FACTORS[unit])


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("latency > 5", "unknown quantity 'latency'"),
        ("memory_usage > 1s", "unit 's' does not fit memory_usage"),
        ("execution_time > 5GB", "unit 'GB' does not fit execution_time"),
        ("execution_time > 5 minutes", "unit 'minutes'"),
        ("__import__('os').system('true')", "is not a comparison"),
        ("execution_time > 5 and", "is not a comparison"),
        ("", "is empty"),
    ],
)
def test_text_outside_the_grammar_is_a_config_error(text: str, named: str) -> None:
    """Unknown names, wrong units and code are ConfigErrors naming the part; nothing is run."""
    with pytest.raises(ConfigError, match=named) as raised:
        parse_condition(text)
    assert (
        "execution_time" in str(raised.value)
        or "is empty" in str(raised.value)
        or ("use" in str(raised.value))
    )


def test_a_bad_condition_in_workbench_yaml_names_file_key_and_grammar() -> None:
    """workbench.yaml's condition is checked at load: the error names file, key and the fix."""
    _configure(triggers=[{"condition": "memory_usage > 3 parsecs"}])
    with pytest.raises(ConfigError) as raised:
        load_config()
    message = str(raised.value)
    assert "workbench.yaml" in message and "profiling.triggers.0.condition" in message
    assert "B, KB, MB, GB or TB" in message


@pytest.mark.parametrize(
    ("trigger", "types", "named"),
    [
        ({"condition": "execution_time > 1", "profile_type": "memory"}, ["cpu"],
         "profile_type 'memory' is not in types"),
        ({"condition": "execution_time > 1", "profile_type": ["memory", "async_io"]},
         ["memory", "async_io"], "memory and async_io cannot run together"),
        ({"condition": "execution_time > 1", "heap_dump": True}, ["cpu"],
         "heap_dump applies to memory profiles"),
        ({"condition": "execution_time > 1", "profile_type": "gpu"}, ["cpu"], "gpu"),
    ],
)  # fmt: skip
def test_triggers_that_do_not_fit_the_types_are_config_errors(
    trigger: dict[str, Any], types: list[str], named: str
) -> None:
    """A trigger naming a profiler not in types, or memray with yappi, is refused at load."""
    _configure(types=types, triggers=[trigger])
    with pytest.raises(ConfigError, match=named):
        load_config()


def test_profile_executions_refuses_bad_arguments_with_config_errors() -> None:
    """Python callers get the same ConfigErrors as workbench.yaml, not pydantic's errors."""
    with pytest.raises(ConfigError, match="unknown quantity 'vibes'"):
        profile_executions("cpu", trigger="vibes > 3")
    with pytest.raises(ConfigError, match="memory and async_io cannot run together"):
        profile_executions("memory", "async_io")


def test_sizes_parse_with_units() -> None:
    """'200 MB' and friends are bytes in powers of 1024; nonsense is a ConfigError."""
    assert parse_size("200 MB") == 200 * 1024**2
    assert parse_size("1.5GB") == int(1.5 * 1024**3)
    assert parse_size(4096) == 4096
    with pytest.raises(ConfigError, match="'lots' is not a size"):
        parse_size("lots")


# -- the watchdog -----------------------------------------------------------------------------


def test_watchdog_runs_only_while_a_profiled_execution_is_active(store: Store) -> None:
    """No thread without triggers or with profiling off; one during a watched run, none after."""
    earlier = watchdog_thread()
    if earlier is not None:  # an earlier test's watchdog, ending at its next wake-up
        earlier.join(timeout=10)
    _configure(enabled=False, triggers=[{"condition": "execution_time > 1h"}])
    with workbench.record("quiet", inputs={}, store=store):
        assert watchdog_thread() is None
    _configure(triggers=[])
    with workbench.record("quiet", inputs={}, store=store):
        assert watchdog_thread() is None
    _configure(triggers=[{"condition": "execution_time > 3600"}])
    with workbench.record("watched", inputs={}, store=store) as run:
        thread = watchdog_thread()
        assert thread is not None and thread.is_alive()
    thread.join(timeout=10)
    assert not thread.is_alive() and watchdog_thread() is None
    assert store.get_execution(run.id).profiles == []  # the trigger never held


def test_cpu_trigger_profiles_the_execution_and_stops_after_its_duration(store: Store) -> None:
    """execution_time > 150ms starts a CPU profile linked to the run; it names the hot function
    and ends after profile_duration, before the execution does."""
    _configure(
        types=["cpu"], triggers=[{"condition": "execution_time > 150ms", "profile_duration": 0.3}]
    )
    with workbench.record("hot", inputs={}, store=store) as run:
        crunch(0.8)
    execution = store.get_execution(run.id)
    profile = _only(execution, "cpu")
    assert profile.trigger == "execution_time > 150ms"
    assert Path(profile.path).is_file() and Path(profile.path).parent == Path.cwd() / "profiles"
    assert profile.summary.error is None and profile.summary.samples > 0
    assert "crunch" in _names(profile)
    assert profile.summary.observation["execution_time"] > 0.15
    assert profile.created_at < (execution.ended_at or 0)  # stopped at its deadline
    document = json.loads(Path(profile.path).read_text())
    assert document["profiles"] and document["shared"]["frames"]  # a speedscope file
    if profile.summary.sampler == "in-process":
        assert any("py-spy could not be used" in note for note in profile.summary.notes)
    else:
        assert profile.summary.sampler == "py-spy"


def test_py_spy_attaches_to_this_process(store: Store) -> None:
    """With py-spy installed and ptrace allowed, the CPU profile is py-spy's own."""
    _configure(types=["cpu"], cpu_sampler="auto", triggers=[{"condition": "execution_time >= 0"}])
    with workbench.record("hot", inputs={}, store=store) as run:
        crunch(0.4)
    profile = _only(store.get_execution(run.id), "cpu")
    if profile.summary.sampler != "py-spy":
        reasons = " ".join(profile.summary.notes)
        if "ptrace" in reasons or "Operation not permitted" in reasons or "ermission" in reasons:
            pytest.skip(f"the kernel refuses ptrace here: {reasons}")
        pytest.fail(f"py-spy was not used although ptrace was not refused: {reasons}")
    assert "crunch" in _names(profile)
    assert json.loads(Path(profile.path).read_text())["exporter"].startswith("py-spy")


def test_without_py_spy_the_in_process_sampler_profiles_and_says_so(store: Store) -> None:
    """A missing py-spy falls back to sampling sys._current_frames(); the notes say why."""
    _configure(
        types=["cpu"],
        py_spy_path=str(Path.cwd() / "no-py-spy-here"),
        triggers=[{"condition": "execution_time >= 0"}],
    )
    with workbench.record("hot", inputs={}, store=store) as run:
        crunch(0.4)
    profile = _only(store.get_execution(run.id), "cpu")
    assert profile.summary.sampler == "in-process"
    assert any("no py-spy executable" in note for note in profile.summary.notes)
    top = profile.summary.top_functions[0]
    assert (top.name, top.unit) == ("crunch", "s") and top.self_value > 0
    assert top.file == __file__
    assert not any("workbench-profiler" in name for name in _names(profile))


def test_required_py_spy_that_is_missing_leaves_an_error_and_a_complete_run(
    store: Store,
) -> None:
    """cpu_sampler: py-spy without py-spy: a ProfilerError on the profile, the run complete."""
    _configure(
        types=["cpu"],
        cpu_sampler="py-spy",
        py_spy_path="/nonexistent/py-spy",
        triggers=[{"condition": "execution_time >= 0"}],
    )
    with workbench.record("hot", inputs={}, store=store) as run:
        with workbench.step("work"):
            crunch(0.05)
    execution = store.get_execution(run.id)
    profile = _only(execution, "cpu")
    assert profile.path == "" and profile.summary.error is not None
    assert "no py-spy executable /nonexistent/py-spy" in profile.summary.error
    assert "pip install py-spy" in profile.summary.error
    assert execution.status == "completed" and [s.step_id for s in execution.steps] == ["work"]


def test_memory_trigger_keeps_the_high_water_mark_stacks(store: Store) -> None:
    """memory_usage > 1MB starts memray; heap_dump keeps the peak's top stacks and flame graph."""
    _configure(
        types=["memory"],
        triggers=[{"condition": "memory_usage > 1MB", "profile_type": "memory", "heap_dump": True}],
    )
    with workbench.record("fat", inputs={}, store=store) as run:
        kept = hoard(24)
    del kept
    profile = _only(store.get_execution(run.id), "memory")
    summary = profile.summary
    assert summary.sampler == "memray" and summary.error is None
    assert summary.peak_bytes is not None and summary.peak_bytes >= 24 * 1024**2
    assert summary.top_functions[0].unit == "B"
    assert summary.top_functions[0].self_value >= 24 * 1024**2
    biggest = summary.top_stacks[0]
    assert biggest.size >= 24 * 1024**2 and "hoard" in [f[0] for f in biggest.frames]
    assert Path(summary.artifacts["flamegraph"]).read_text().lstrip().startswith("<!DOCTYPE")
    assert profile.path == summary.artifacts["flamegraph"]
    assert any("before the profile started are not attributed" in n for n in summary.notes)
    assert summary.observation["memory_usage"] > 1024**2


def test_a_second_memory_tracker_is_refused_and_both_runs_complete(store: Store) -> None:
    """While one execution's memray runs, another's memory trigger gets a ProfilerError; both
    executions complete and keep their steps."""
    _configure(
        types=["memory"], triggers=[{"condition": "execution_time >= 0", "profile_type": "memory"}]
    )
    inner_id: list[str] = []

    def second() -> None:
        with workbench.record("second", inputs={}, store=store) as inner:
            with workbench.step("alloc"):
                hoard(1)
        inner_id.append(inner.id)

    with workbench.record("first", inputs={}, store=store) as outer:
        with workbench.step("alloc"):
            thread = threading.Thread(target=second)
            thread.start()
            thread.join()
    first, other = store.get_execution(outer.id), store.get_execution(inner_id[0])
    assert _only(first, "memory").summary.error is None
    refused = _only(other, "memory").summary.error
    assert refused is not None and "memory profiler (memray) is already running" in refused
    for execution in (first, other):
        assert execution.status == "completed" and [s.step_id for s in execution.steps] == ["alloc"]


@pytest.mark.parametrize(
    ("platform", "memray_importable", "named"),
    [
        ("win32", True, "Linux and macOS only, not on win32"),
        (sys.platform, False, "pip install 'pipeline-workbench[profiling]'"),
    ],
)
def test_memory_profiles_without_memray_say_why_and_the_run_completes(
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
    platform: str,
    memray_importable: bool,
    named: str,
) -> None:
    """memray on an unsupported platform, or not installed: a ProfilerError on the profile."""
    _configure(types=["memory"], triggers=[{"condition": "execution_time >= 0"}])
    monkeypatch.setattr(sys, "platform", platform)
    if not memray_importable:
        monkeypatch.setitem(sys.modules, "memray", None)  # import memray raises ImportError
    with workbench.record("fat", inputs={}, store=store) as run:
        hoard(1)
    execution = store.get_execution(run.id)
    error = _only(execution, "memory").summary.error
    assert error is not None and named in error
    assert execution.status == "completed"


def test_memray_and_yappi_never_run_together(store: Store) -> None:
    """Memory and async triggers firing at once: the second is refused with the reason."""
    _configure(
        types=["memory", "async_io"],
        triggers=[
            {"condition": "execution_time >= 0", "profile_type": "memory"},
            {"condition": "execution_time >= 0", "profile_type": "async_io"},
        ],
    )
    with workbench.record("both", inputs={}, store=store) as run:
        hoard(1)
    execution = store.get_execution(run.id)
    assert _only(execution, "memory").summary.error is None
    refused = _only(execution, "async").summary.error
    assert refused is not None and "share one interpreter hook" in refused


def test_an_unwritable_profiles_folder_is_named_and_the_run_completes(store: Store) -> None:
    """output_dir under a plain file cannot be created: the ProfilerError names the folder."""
    Path("occupied").write_text("a file, not a folder")
    _configure(
        types=["cpu"],
        output_dir="occupied/profiles",
        triggers=[{"condition": "execution_time >= 0"}],
    )
    with workbench.record("hot", inputs={}, store=store) as run:
        crunch(0.02)
    execution = store.get_execution(run.id)
    error = _only(execution, "cpu").summary.error
    assert error is not None and "occupied/profiles" in error and "output_dir" in error
    assert execution.status == "completed"


async def _chat_twice(base_url: str) -> str:
    async with openai.AsyncOpenAI(base_url=base_url, api_key=KEY, max_retries=0) as client:
        replies = await asyncio.gather(
            *(
                client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": f"q{i}"}]
                )
                for i in range(2)
            )
        )
    await asyncio.sleep(0.02)
    return " ".join(r.choices[0].message.content or "" for r in replies)


def test_async_profile_is_wall_clock_per_coroutine(store: Store, model_server: ModelServer) -> None:
    """yappi's wall clock sees the awaiting coroutine; its stats load as a pstat file."""
    _configure(types=["async_io"], triggers=[{"condition": "execution_time >= 0"}])

    async def main() -> None:
        async with workbench.record("async", inputs={}, store=store) as run:
            await _chat_twice(model_server.openai_base_url)
        ids.append(run.id)

    ids: list[str] = []
    asyncio.run(main())
    profile = _only(store.get_execution(ids[0]), "async")
    assert profile.summary.sampler == "yappi" and profile.summary.error is None
    chat = [s for s in profile.summary.top_functions if s.name == "_chat_twice"]
    assert chat and chat[0].total_value > 0 and chat[0].count >= 1
    totals = [s.total_value for s in profile.summary.top_functions]
    assert totals == sorted(totals, reverse=True)
    stats = pstats.Stats(profile.path)
    assert any(name == "_chat_twice" for (_, _, name) in stats.stats)  # type: ignore[attr-defined]


def test_step_time_and_callable_triggers(store: Store) -> None:
    """'step_time > 50ms' fires after a slow step; a callable sees the same Observation."""
    seen: list[Observation] = []

    def slow_step_seen(observation: Observation) -> bool:
        seen.append(observation)
        return observation.step_time is not None and observation.step_time > 0.05

    for trigger in ("step_time > 50ms", slow_step_seen):
        with profile_executions("cpu", trigger=trigger, check_interval=0.01) as session:
            with workbench.record("steps", inputs={}, store=store) as run:
                with workbench.step("quick"):
                    pass
                with workbench.step("slow"):
                    time.sleep(0.08)
                crunch(0.2)
        (profile,) = session.profiles
        assert profile.execution_id == run.id
        assert profile.summary.observation["step_time"] > 0.05
    assert profile.trigger == f"callable {__name__}.{slow_step_seen.__qualname__}"
    assert seen[0].execution_id == run.id and seen[0].pipeline_id == "steps"


def test_step_time_fires_while_the_slow_step_is_still_running(store: Store) -> None:
    """'step_time > 50ms' starts the profiler inside a step that is still running, so the
    profile sees that step's own work."""
    with profile_executions("cpu", trigger="step_time > 50ms", check_interval=0.01) as session:
        with workbench.record("steps", inputs={}, store=store) as run:
            with workbench.step("slow"):
                # The only work of the run, all of it inside the step; long enough that a
                # profiler started late on a loaded machine still samples it.
                crunch(1.0)
    (profile,) = session.profiles
    assert profile.execution_id == run.id
    assert 0.05 < profile.summary.observation["step_time"] < 1.0
    assert any(f.name == "crunch" for f in profile.summary.top_functions)


def test_a_trigger_that_raises_is_switched_off_and_the_run_completes(store: Store) -> None:
    """A callable that raises is logged once and never fires; the execution is unaffected."""

    def broken(observation: Observation) -> bool:
        raise ValueError("no")

    with profile_executions("cpu", trigger=broken, check_interval=0.01) as session:
        with workbench.record("steps", inputs={}, store=store) as run:
            time.sleep(0.05)
    assert session.profiles == [] and store.get_execution(run.id).status == "completed"


def test_profile_summary_reads_back_typed(store: Store) -> None:
    """get_profile and the execution's profiles return the same typed summary."""
    with profile_executions("cpu") as session:
        with workbench.record("hot", inputs={}, store=store) as run:
            crunch(0.1)
    (recorded,) = session.profiles
    stored = store.get_profile(recorded.id)
    assert stored == recorded == store.get_execution(run.id).profiles[0]
    assert isinstance(stored.summary, ProfileSummary)
    assert ProfileSummary.from_json(json.loads(json.dumps(_plain(stored.summary)))) == (
        stored.summary
    )
    with pytest.raises(ProfileNotFoundError, match="no profile 'prof_nope'"):
        store.get_profile("prof_nope")


def _plain(summary: ProfileSummary) -> Any:
    import dataclasses

    return dataclasses.asdict(summary)


# -- the CLI ----------------------------------------------------------------------------------


def _profile(*args: str) -> Any:
    """``workbench profile ARGS`` through click, as a user types it."""
    return CliRunner().invoke(cli, ["profile", *args], catch_exceptions=False)


def _flat(output: str) -> str:
    """The output with rich's line wrapping undone, so that long paths read whole."""
    return output.replace("\n", "")


def _top_row(output: str) -> list[str]:
    """The cells of the first row of the printed top-functions table."""
    cells = output[output.index("top functions") :].split("│")[1:6]
    return [cell.strip() for cell in cells]


def _artefact(folder: Path, suffix: str) -> Path:
    (found,) = [p for p in folder.iterdir() if p.name.endswith(suffix)]
    return found


_PLAIN_CPU_SCRIPT = """
import sys, time

def burn_cpu_hot(seconds):
    total, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        for i in range(2_000):
            total += i * i
    return total

burn_cpu_hot(float(sys.argv[1]))
print("script finished", flush=True)
sys.exit(int(sys.argv[2]))
"""


def test_profile_command_profiles_a_plain_cpu_script(tmp_path: Path) -> None:
    """A CPU-bound script that never imports workbench is profiled whole: the speedscope file
    names its hot function, and the output gives the path, the top functions and how to open it;
    the exit code is the script's."""
    script = tmp_path / "plain.py"
    script.write_text(_PLAIN_CPU_SCRIPT)
    result = _profile("--cpu", "--duration", "3", "--", sys.executable, str(script), "0.8", "4")
    assert result.exit_code == 4, result.output
    speedscope = _artefact(tmp_path / "profiles", ".speedscope.json")
    frames = json.loads(speedscope.read_text())["shared"]["frames"]
    assert "burn_cpu_hot" in [frame["name"] for frame in frames]
    output = _flat(result.output)
    assert str(speedscope) in output and "top functions" in output
    assert _top_row(output)[0] == "burn_cpu_hot"  # the most self time
    assert f"speedscope {speedscope}" in output  # the command that opens it
    assert "no profile was recorded" not in output


def test_profile_command_prints_a_long_path_whole_on_a_narrow_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 80 columns a profile path longer than the line is printed on one line, whole (never
    cut with "…"), and so is the command that opens it."""
    folder = tmp_path / ("a_rather_long_project_folder_name_" * 3)
    folder.mkdir()
    monkeypatch.chdir(folder)
    script = folder / "plain.py"
    script.write_text(_PLAIN_CPU_SCRIPT)
    result = CliRunner().invoke(
        cli,
        ["profile", "--cpu", "--", sys.executable, str(script), "0.3", "0"],
        env={"COLUMNS": "80"},
    )
    assert result.exit_code == 0, result.output
    speedscope = _artefact(folder / "profiles", ".speedscope.json")
    assert len(str(speedscope)) > 80
    lines = result.output.splitlines()
    assert any(line.split() == ["file", str(speedscope)] for line in lines), result.output
    assert any(f"speedscope {speedscope}" in line for line in lines), result.output
    assert "…" not in result.output.split("top functions")[0]


def test_profile_command_json_prints_the_profiles(tmp_path: Path) -> None:
    """`workbench profile --json -- CMD` prints the command, its exit code and each profile
    as `profile show --json` does (the hot function first), and nothing else on stdout."""
    script = tmp_path / "plain.py"
    script.write_text(_PLAIN_CPU_SCRIPT)
    result = CliRunner().invoke(
        cli, ["profile", "--cpu", "--json", "--", sys.executable, str(script), "0.8", "0"]
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["exit_code"] == 0 and printed["command"][-3:] == [str(script), "0.8", "0"]
    (profile,) = printed["profiles"]
    assert (
        profile["kind"] == "cpu"
        and profile["summary"]["top_functions"][0]["name"] == "burn_cpu_hot"
    )


def test_profile_command_that_profiled_nothing_fails_and_says_so(tmp_path: Path) -> None:
    """A command with nothing to profile (not a Python program) exits 1, as `py-spy record`
    does with no stack counts, saying nothing was profiled; a failed command keeps its code."""
    result = _profile("--cpu", "--", shutil.which("true") or "/bin/true")
    assert result.exit_code == 1, result.output
    assert "nothing was profiled" in _flat(result.output)
    failed = _profile("--cpu", "--", sys.executable, "-c", "raise SystemExit(3)")
    assert failed.exit_code == 3, failed.output


@pytest.mark.parametrize("py_spy", ["missing", "refused"])
def test_profile_command_without_py_spy_samples_in_process_and_says_why(
    tmp_path: Path, py_spy: str
) -> None:
    """No py-spy, or one that cannot attach (a py-spy that fails as ptrace refusal makes it):
    the command samples itself, names the hot function, and the note gives py-spy's reason."""
    executable = tmp_path / "py-spy"
    if py_spy == "refused":
        executable.write_text("#!/bin/sh\necho 'Error: Operation not permitted (os error 1)' >&2\n")
        executable.chmod(0o755)
    _configure(py_spy_path=str(executable))
    script = tmp_path / "plain.py"
    script.write_text(_PLAIN_CPU_SCRIPT)
    result = _profile("--cpu", "--", sys.executable, str(script), "0.6", "0")
    assert result.exit_code == 0, result.output
    output = _flat(result.output)
    assert "cpu (in-process)" in output and _top_row(output)[0] == "burn_cpu_hot"
    reason = "no py-spy executable" if py_spy == "missing" else "Operation not permitted"
    assert "note: py-spy could not be used" in output and reason in output
    _artefact(tmp_path / "profiles", ".speedscope.json")


def test_profile_duration_ends_the_profile_not_the_command(tmp_path: Path) -> None:
    """--duration 1 on a 2.5 s script: the profile covers about a second, the script runs on to
    its end and its exit code is kept."""
    marker = tmp_path / "done"
    script = tmp_path / "plain.py"
    script.write_text(
        _PLAIN_CPU_SCRIPT.replace("sys.exit(", f"open({str(marker)!r}, 'w').close()\nsys.exit(")
    )
    started = time.perf_counter()
    result = _profile("--duration", "1", "--", sys.executable, str(script), "2.5", "0")
    assert result.exit_code == 0, result.output
    assert time.perf_counter() - started >= 2.5 and marker.exists()
    speedscope = _artefact(tmp_path / "profiles", ".speedscope.json")
    document = json.loads(speedscope.read_text())
    profiled = max(p["endValue"] - p["startValue"] for p in document["profiles"])
    assert 0.5 < profiled < 2.0, profiled


_PLAIN_MEMORY_SCRIPT = """
import time

def hoard_memory_hot(megabytes):
    kept = []
    for _ in range(megabytes):
        kept.append(bytearray(1024 * 1024))
    return kept

kept = hoard_memory_hot(40)
time.sleep(0.05)
"""


def test_profile_command_memory_profiles_a_plain_script(tmp_path: Path) -> None:
    """--memory runs the script under memray from its first line: a flame graph HTML and a
    summary whose largest allocator is the script's hot function, with the peak."""
    script = tmp_path / "hoard.py"
    script.write_text(_PLAIN_MEMORY_SCRIPT)
    result = _profile("--memory", "--", sys.executable, str(script))
    assert result.exit_code == 0, result.output
    html = _artefact(tmp_path / "profiles", ".flamegraph.html")
    assert html.read_text().lstrip().startswith("<!DOCTYPE")
    assert "hoard_memory_hot" in html.read_text()
    output = _flat(result.output)
    assert str(html) in output and re.search(r"peak\s+40\.\d MiB", output), output
    name, _, own, _, _ = _top_row(output)  # the largest allocator
    assert name == "hoard_memory_hot" and own.startswith("40.")
    assert f"python -m webbrowser -t {html.as_uri()}" in output


_PLAIN_ASYNC_SCRIPT = """
import asyncio

async def wait_for_io_hot(i):
    await asyncio.sleep(0.2)
    return i

async def main():
    return await asyncio.gather(*(wait_for_io_hot(i) for i in range(3)))

asyncio.run(main())
"""


def test_profile_command_async_profiles_a_plain_script(tmp_path: Path) -> None:
    """--async runs the script under yappi's wall clock: a pstat file that pstats loads, with
    the awaiting coroutine at the top by total time."""
    script = tmp_path / "waits.py"
    script.write_text(_PLAIN_ASYNC_SCRIPT)
    result = _profile("--async", "--", sys.executable, str(script))
    assert result.exit_code == 0, result.output
    pstat = _artefact(tmp_path / "profiles", ".pstat")
    stats = pstats.Stats(str(pstat)).stats  # type: ignore[attr-defined]
    totals = {name: ct for (_, _, name), (_, _, _, ct, _) in stats.items()}
    assert totals["wait_for_io_hot"] >= 0.5  # three coroutines awaiting 0.2 s each
    output = _flat(result.output)
    assert str(pstat) in output and f"python -m pstats {pstat}" in output
    assert _top_row(output)[0] == "wait_for_io_hot"  # the most wall time, awaiting


_RECORDING_SCRIPT = """
import sys, time, workbench

def spin(seconds):
    total, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        total += sum(range(1000))
    return total

for name in ("first", "second"):
    with workbench.record(name, inputs={}) as run:
        spin(float(sys.argv[2]) if len(sys.argv) > 2 else 0.3)
    print("recorded", run.id, flush=True)
sys.exit(int(sys.argv[1]))
"""


def test_profile_command_links_the_profile_to_every_execution(tmp_path: Path) -> None:
    """A script that records two executions gets the one CPU profile of the command linked to
    each of them in the store; `profile show` reads it back; the exit code is the script's."""
    script = tmp_path / "spin.py"
    script.write_text(_RECORDING_SCRIPT)
    db = tmp_path / "runs.db"
    result = _profile("--cpu", "--db", str(db), "--", sys.executable, str(script), "3")
    assert result.exit_code == 3, result.output
    with Store(db) as store:
        executions = store.list_executions()
        profiles = [p for e in executions for p in store.get_execution(e.id).profiles]
    assert sorted(e.pipeline_id for e in executions) == ["first", "second"]
    assert sorted(p.execution_id or "" for p in profiles) == sorted(e.id for e in executions)
    assert len({p.path for p in profiles}) == 1 and Path(profiles[0].path).is_file()
    assert all(p.kind == "cpu" and "spin" in _names(p) for p in profiles)
    output = _flat(result.output)
    assert profiles[0].path in output and all(p.id in output for p in profiles)
    shown = CliRunner().invoke(cli, ["profile", "show", profiles[0].id, "--db", str(db)])
    assert shown.exit_code == 0 and "spin" in shown.output and profiles[0].id in shown.output
    as_json = CliRunner().invoke(
        cli, ["profile", "show", profiles[0].id, "--db", str(db), "--json"]
    )
    # Among the top, not necessarily first: on a loaded machine importing workbench can take
    # as long as the spin, and py-spy samples wall-clock time.
    top = json.loads(as_json.output)["summary"]["top_functions"]
    assert "spin" in [f["name"] for f in top]


def test_profile_with_a_trigger_profiles_the_executions_it_holds_in(tmp_path: Path) -> None:
    """--trigger keeps per-execution profiles: started inside the execution when it holds."""
    script = tmp_path / "spin.py"
    script.write_text(_RECORDING_SCRIPT)
    db = tmp_path / "runs.db"
    result = _profile(
        "--trigger",
        "execution_time > 50ms",
        "--db",
        str(db),
        "--",
        sys.executable,
        str(script),
        "0",
        "1.0",
    )  # fmt: skip  (spins long enough to be sampled after a loaded machine's late start)
    assert result.exit_code == 0, result.output
    assert "cpu profile started for exec_" in result.output
    with Store(db) as store:
        for execution in store.list_executions():
            (profile,) = store.get_execution(execution.id).profiles
            assert profile.trigger == "execution_time > 50ms" and "spin" in _names(profile)


_EVENT_WRITER = """
import json, os, sys
with open(os.environ["WORKBENCH_PROFILE_EVENTS"], "a") as file:
    for line in ({"event": "started", "db": os.environ["WORKBENCH_DB"]}, {"event": "ended"}):
        file.write(json.dumps(line) + "\\n")
    file.write('{"event": "half')  # a line still being written is not an event yet
sys.exit(3)
"""


def test_triggered_command_hands_the_child_its_settings_and_reads_its_events(
    tmp_path: Path,
) -> None:
    """TriggeredCommand runs CMD with the store in WORKBENCH_DB, returns each whole event
    line CMD appends once (a half-written line waits), and CMD's exit code."""
    from workbench.config import ProfilingConfig
    from workbench.profiling._triggered import TriggeredCommand

    script = tmp_path / "events.py"
    script.write_text(_EVENT_WRITER)
    db = tmp_path / "runs.db"
    with TriggeredCommand(
        [sys.executable, str(script)], settings=ProfilingConfig(enabled=True), db=db
    ) as run:
        while (code := run.wait(0.1)) is None:
            pass
        events = run.events()
        assert run.events() == []
    assert code == 3
    assert events == [{"event": "started", "db": str(db.absolute())}, {"event": "ended"}]


def test_profile_with_a_trigger_names_a_command_that_cannot_run() -> None:
    """--trigger with a command that does not exist: one error line naming it, exit 2."""
    result = _profile("--trigger", "execution_time > 1s", "--", "no-such-command-here")
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: cannot run 'no-such-command-here'"), result.output


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ([], "give the command to profile after --"),
        (["--", ""], "give the command to profile after --"),
        (["--memory", "--async", "--", "true"], "--memory and --async cannot run together"),
        (["--", "no-such-command-here", "x.py"], "cannot run 'no-such-command-here'"),
        (["--", "./missing.py"], "cannot run './missing.py'"),
        (["--trigger", "vibes > 3", "--", "true"], "--trigger: trigger condition 'vibes > 3'"),
    ],
)
def test_profile_command_bad_input_is_one_error_line(args: list[str], named: str) -> None:
    """No command, memray with yappi, a command that does not exist and a bad trigger: one
    `error:` line naming the input and the fix, exit code 2, nothing started."""
    result = _profile(*args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[0].startswith("error: ") and named in result.output, result.output
    assert "e.g." in result.output or "use" in result.output or "check" in result.output
    assert not Path("profiles").exists()


def test_profile_show_of_an_unknown_id_is_one_error_line(tmp_path: Path) -> None:
    """`profile show` of an id the store does not hold names it."""
    db = tmp_path / "runs.db"
    Store(db).close()
    unknown = CliRunner().invoke(cli, ["profile", "show", "prof_nope", "--db", str(db)])
    assert unknown.exit_code == 2 and "error: no profile 'prof_nope'" in unknown.output


def test_profile_run_replays_a_recorded_execution_with_profiling(
    store: Store, model_server: ModelServer
) -> None:
    """`workbench profile run ID` re-runs the execution from its recording, profiled."""
    with workbench.record("crunch", inputs={}, store=store) as run:
        crunch_pipeline(0.15, base_url=model_server.openai_base_url)
    result = CliRunner().invoke(cli, ["profile", "run", run.id, "--db", str(store.path)])
    assert result.exit_code == 0, result.output
    replays = [e for e in store.list_executions() if e.replay_of == run.id]
    (replay,) = replays
    (profile,) = store.get_execution(replay.id).profiles
    assert profile.kind == "cpu" and "crunch" in _names(profile)
    assert f"replay {replay.id} of {run.id}: completed" in result.output
    assert profile.id in result.output


# -- the pytest markers -----------------------------------------------------------------------

_MARKED_TESTS = """
import pytest, workbench

def hoard(megabytes):
    return [bytearray(1024 * 1024) for _ in range(megabytes)]

def spin(n):
    return sum(i * i for i in range(n))

@pytest.mark.profile(cpu=True)
def test_profiled():
    with workbench.record("marked", inputs={}, store="runs.db"):
        spin(300_000)

@pytest.mark.max_memory("4 MB")
def test_too_hungry():
    kept = hoard(12)
    assert kept

@pytest.mark.max_memory("1 GB")
def test_modest():
    kept = hoard(2)
    assert kept
"""


def test_pytest_markers_profile_and_limit_memory(tmp_path: Path) -> None:
    """profile(cpu=True) lists the test's profile; max_memory fails a test over its limit with
    the stack that allocated, and passes one under it."""
    (tmp_path / "test_marked.py").write_text(textwrap.dedent(_MARKED_TESTS))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-rP",
            "-q",
            "--strict-markers",
            "test_marked.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = done.stdout + done.stderr
    assert "1 failed, 2 passed" in out, out
    assert "workbench profiles" in out and " cpu of exec_" in out
    assert "test_too_hungry" in out and "over its max_memory of 4.0 MiB" in out
    assert "hoard (" in out and "test_marked.py" in out


_LIMITED_TESTS = """
import pytest

def hoard(megabytes):
    return [bytearray(1024 * 1024) for _ in range(megabytes)]

@pytest.mark.{marker}("4 MB")
def test_too_hungry():
    kept = hoard(12)
    assert kept

@pytest.mark.{marker}("1 GB")
def test_modest():
    kept = hoard(2)
    assert kept
"""


def _run_limited(tmp_path: Path, marker: str, *args: str) -> str:
    (tmp_path / "test_limited.py").write_text(textwrap.dedent(_LIMITED_TESTS.format(marker=marker)))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--strict-markers", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.stdout + done.stderr


def test_limit_memory_spelling_and_frames_of_the_tests_own_code(tmp_path: Path) -> None:
    """Without pytest-memray, its limit_memory spelling works as max_memory, and the failure
    lists the test's own frames, none of pytest's or pluggy's."""
    out = _run_limited(tmp_path, "limit_memory", "-p", "no:memray")
    assert "1 failed, 1 passed" in out, out
    assert "over its max_memory of 4.0 MiB" in out and "hoard (" in out
    assert "pluggy" not in out and "_pytest" not in out


def test_max_memory_under_pytest_memray_is_its_limit_memory(tmp_path: Path) -> None:
    """With pytest-memray's --memray, max_memory hands its limit to pytest-memray's tracker (one
    tracker per process): the test over it fails with pytest-memray's report, no raw error."""
    pytest.importorskip("pytest_memray")
    out = _run_limited(tmp_path, "max_memory", "--memray")
    assert "1 failed, 1 passed" in out, out
    assert "Test was limited to 4.0MiB" in out
    assert "Tracker" not in out  # memray's "only one Tracker instance" error


def test_an_execution_in_a_postgresql_store_is_announced_by_its_whole_url(
    tmp_path: Path, postgres_url: str, postgres_store: Store
) -> None:
    """Under ``workbench profile`` an execution recorded into PostgreSQL is announced with
    the URL as given (not made a file path, not masked), so the parent opens that database."""
    from workbench.profiling._link import ExecutionAnnouncer

    report = tmp_path / "report.jsonl"
    with workbench.record("announced", inputs={}, store=postgres_store) as run:
        ExecutionAnnouncer(str(report)).execution_started(run)
    (line,) = [json.loads(text) for text in report.read_text().splitlines()]
    assert line["store"] == postgres_url
    with Store(line["store"]) as opened:
        assert opened.get_execution(line["execution_id"]).pipeline_id == "announced"
