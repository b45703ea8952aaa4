"""Recorded runs the UI's tests look at: the example pipelines (Python and YAML), a run that
fails at a step, and a run a CPU profile fired in. Shared by test_ui.py and test_ui_browser.py.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

import workbench
from workbench.examples import research_assistant as ra
from workbench.pipelines import run_pipeline
from workbench.store import Store
from workbench.testing import ModelServer

EXAMPLE_YAML = Path(ra.__file__).with_name("research_assistant.yaml")


def record_python(
    store: Store, server: ModelServer, topic: str = "prompt caching", user: str | None = "ana"
) -> str:
    """The Python research assistant against the test model server."""
    with workbench.record(ra.PIPELINE_ID, inputs={}, store=store, user_id=user) as run:
        ra.research(
            topic,
            openai_base_url=server.openai_base_url,
            anthropic_base_url=server.anthropic_base_url,
        )
    return run.id


@contextmanager
def _environment(**values: str) -> Any:
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def record_yaml(store: Store, server: ModelServer, topic: str = "llamas") -> str:
    """The YAML twin of the research assistant, its SDKs pointed at the test model server."""
    with _environment(
        OPENAI_BASE_URL=server.openai_base_url,
        ANTHROPIC_BASE_URL=server.anthropic_base_url,
        OPENAI_API_KEY="sk-test-not-a-real-key",
        ANTHROPIC_API_KEY="sk-ant-test-not-a-real-key",
    ):
        result = run_pipeline(EXAMPLE_YAML, {"topic": topic}, store=store, user_id="bo")
    return result.execution_id


@workbench.step("explode")
def explode(reason: str) -> None:
    raise ValueError(f"cannot go on: {reason}")


def record_failing(store: Store) -> str:
    """A run whose step ``explode`` raises (the run fails with the step's traceback)."""
    try:
        with workbench.record("fragile", inputs={"reason": "no sources"}, store=store) as run:
            explode("no sources")
    except ValueError:
        pass
    return run.id


def crunch(seconds: float) -> int:
    """Pure-Python CPU work for about ``seconds`` (what the CPU profile must name)."""
    total = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for i in range(2_000):
            total += i * i
    return total


def record_profiled(store: Store, folder: Path) -> str:
    """A run a CPU profile fired in (``execution_time >= 0``), profiles written under
    ``folder``; the config is written there and read for this run only."""
    config = folder / "workbench.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "profiling": {
                    "check_interval": 0.01,
                    "types": ["cpu"],
                    "output_dir": str(folder / "profiles"),
                    "triggers": [{"condition": "execution_time >= 0", "profile_duration": 0.5}],
                }
            }
        )
    )
    with _environment(WORKBENCH_CONFIG=str(config)):
        with workbench.record("hot", inputs={}, store=store) as run:
            crunch(0.7)
    return run.id
