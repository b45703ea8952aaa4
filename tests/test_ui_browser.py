"""The web UI in a real headless Chromium (Debian's ``chromium``, driven by Playwright with
``executable_path``; no browser is downloaded): the example pipelines are recorded, then each
page is opened, read and clicked as a person would, with no console error on any page.
Screenshots of each page go to ``test-artifacts/ui/`` (git-ignored).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _ui_runs import record_failing, record_profiled, record_python, record_yaml

from workbench.store import Store
from workbench.testing import ModelServer, fresh_store

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip(
        "Debian's chromium is not installed (apt-get install chromium; .ci/run installs it)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
)
pytest.importorskip("starlette", reason="the ui extra is not installed")

from workbench.ui._serve import background_server  # noqa: E402 - after the skips


@pytest.fixture(scope="module")
def runs(
    model_server: ModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Store, dict[str, str]]]:
    """A store with the example recorded (Python twice, YAML once), a failed run and a run a
    CPU profile fired in."""
    with fresh_store() as store:
        folder = tmp_path_factory.mktemp("ui-browser")
        ids = {
            "caching": record_python(store, model_server, "prompt caching", user="ana"),
            "alpacas": record_python(store, model_server, "alpacas and their fibre", user="cy"),
            "yaml": record_yaml(store, model_server, "llamas"),
            "failed": record_failing(store),
            "profiled": record_profiled(store, folder),
        }
        store.flush()
        yield store, ids


@pytest.fixture(scope="module")
def base_url(runs: tuple[Store, dict[str, str]]) -> Iterator[str]:
    with background_server(runs[0]) as url:
        yield url


@pytest.fixture(scope="module")
def browser(runs: tuple[Store, dict[str, str]]) -> Iterator[Any]:
    # After the recordings: Playwright's sync API keeps an event loop running in this thread,
    # and a YAML pipeline run refuses to block one.
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def artifacts(request: pytest.FixtureRequest) -> Path:
    folder = Path(request.config.rootpath) / "test-artifacts" / "ui"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Tab:
    """A page of the browser, its console errors, and screenshots named after the page."""

    def __init__(self, page: Any, base_url: str, artifacts: Path) -> None:
        self.page = page
        self.base_url = base_url
        self.artifacts = artifacts
        self.errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

    def open(self, path: str) -> Any:
        answer = self.page.goto(self.base_url + path)
        self.page.wait_for_load_state("networkidle")
        return answer

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.artifacts / f"{name}.png"), full_page=True)


@pytest.fixture
def tab(browser: Any, base_url: str, artifacts: Path) -> Iterator[Tab]:
    """A fresh browser page; the test fails if any page it opened logged a console error."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    opened = Tab(page, base_url, artifacts)
    yield opened
    context.close()
    assert opened.errors == [], opened.errors


def _trace_rows(tab: Tab) -> list[dict[str, str]]:
    tab.page.wait_for_selector(".wf-row")
    return tab.page.eval_on_selector_all(
        ".wf-row",
        "rows => rows.map(r => ({key: r.dataset.key, kind: r.dataset.kind, "
        "depth: r.dataset.depth, parent: r.dataset.parent, name: r.dataset.name}))",
    )


def test_run_list_shows_the_recorded_runs_and_filters_them(
    tab: Tab, runs: tuple[Store, dict[str, str]]
) -> None:
    """The run list has a row per recorded run; choosing a user keeps that user's run."""
    store, ids = runs
    tab.open("/runs")
    tab.page.wait_for_selector("tr.run-row")
    total = store.run_page().total
    assert tab.page.locator("tr.run-row").count() == total
    assert tab.page.locator("#range").inner_text() == f"1–{total} of {total}"
    tab.shot("runs")
    tab.page.select_option("select[name=user]", "cy")
    # Locator waits, not wait_for_function: the pages' CSP forbids the eval it polls with.
    sync_api.expect(tab.page.locator("tr.run-row")).to_have_count(1)
    assert tab.page.locator("tr.run-row").get_attribute("data-id") == ids["alpacas"]


def test_waterfall_shows_every_step_and_model_call_nested(
    tab: Tab, runs: tuple[Store, dict[str, str]]
) -> None:
    """A run's waterfall: the execution, each step under it, each model call under the step
    that made it, one row each."""
    store, ids = runs
    tab.open("/runs")
    tab.page.click(f"tr.run-row[data-id='{ids['caching']}'] a")
    tab.page.wait_for_url(re.compile(rf"/runs/{ids['caching']}$"))
    rows = _trace_rows(tab)
    run = store.get_execution(ids["caching"])
    assert [r["kind"] for r in rows].count("step") == len(run.steps)
    assert [r["kind"] for r in rows].count("model_call") == len(run.model_calls)
    by_key = {r["key"]: r for r in rows}
    assert rows[0]["kind"] == "execution" and rows[0]["depth"] == "0"
    for row in rows:
        if row["kind"] == "step":
            assert row["depth"] == "1" and row["parent"] == "execution"
        if row["kind"] == "model_call":
            parent = by_key[row["parent"]]
            assert parent["kind"] == "step" and row["depth"] == "2"
    steps_with_calls = [by_key[r["parent"]]["name"] for r in rows if r["kind"] == "model_call"]
    assert steps_with_calls == [c.step_id for c in run.model_calls]
    tab.shot("run")


def test_model_call_opens_as_a_chat_with_its_stream(
    tab: Tab, runs: tuple[Store, dict[str, str]]
) -> None:
    """Clicking the draft's model call shows its system and user messages, the assistant's
    answer and the SSE events with their offsets."""
    _, ids = runs
    tab.open(f"/runs/{ids['caching']}")
    rows = _trace_rows(tab)
    names = {r["key"]: r["name"] for r in rows}
    draft_call = next(
        r["key"] for r in rows if r["kind"] == "model_call" and names[r["parent"]] == "draft"
    )
    tab.page.click(f".wf-row[data-key='{draft_call}']")
    tab.page.wait_for_selector("#call-view")
    assert tab.page.locator("#chat .msg.role-system").count() == 1
    assert "prompt caching" in tab.page.locator("#chat .msg.role-user").inner_text()
    assert tab.page.locator("#response .msg.role-assistant").inner_text().strip()
    assert tab.page.locator("#sse tr").count() > 4
    tab.shot("model-call")


def test_failed_step_opens_with_its_error_and_traceback(
    tab: Tab, runs: tuple[Store, dict[str, str]]
) -> None:
    """Clicking a failed step shows its parameters, the error and its traceback."""
    _, ids = runs
    tab.open(f"/runs/{ids['failed']}")
    rows = _trace_rows(tab)
    step = next(r["key"] for r in rows if r["kind"] == "step")
    tab.page.click(f".wf-row[data-key='{step}']")
    view = tab.page.wait_for_selector("#step-view")
    text = view.inner_text()
    assert "ValueError" in text and "cannot go on: no sources" in text and "Traceback" in text
    tab.shot("failed-step")


def test_replay_started_from_the_page_appears_and_its_diff_shows_the_change(
    tab: Tab, runs: tuple[Store, dict[str, str]]
) -> None:
    """Replay with… a new system prompt for draft: the replay opens, is in the run list, and
    its diff highlights draft as the first divergent step with the inserted words."""
    store, ids = runs
    original = ids["alpacas"]
    tab.open(f"/runs/{original}")
    tab.page.click("#replay-with summary")
    tab.page.select_option("select[name=prompt_step]", "draft")
    tab.page.fill("textarea[name=system]", "Be kinder to alpacas.")
    tab.page.select_option("select[name=on_miss]", "test-model")
    tab.page.click("#replay-with-start")
    tab.page.wait_for_url(re.compile(rf"/runs/(?!{original}$)exec_[0-9a-f]+$"), timeout=30_000)
    replay_id = tab.page.url.rsplit("/", 1)[1]
    assert replay_id != original
    tab.page.wait_for_load_state("networkidle")
    assert store.get_execution(replay_id).replay_of == original
    tab.shot("replay")

    tab.open("/runs")
    row = tab.page.wait_for_selector(f"tr.run-row[data-id='{replay_id}']")
    assert original in row.inner_text()

    tab.open(f"/runs/{replay_id}")
    tab.page.click("#compare summary")
    tab.page.click("a.compare-link")
    tab.page.wait_for_url(re.compile(r"/diff\?"))
    first = tab.page.wait_for_selector("#diff-steps tr.first-divergent")
    assert first.get_attribute("data-step") == "draft#0"
    assert tab.page.locator("#first-divergent").inner_text() == "draft#0"
    inserted = tab.page.locator("[id='step-draft#0'] ins").all_inner_texts()
    assert any("kinder" in text for text in inserted)
    assert tab.page.locator("[id='step-draft#0'] del").count() > 0
    tab.shot("diff")


def test_cost_chart_draws_each_models_cost_of_the_day(
    tab: Tab, runs: tuple[Store, dict[str, str]]
) -> None:
    """The cost page's chart has a bar for each model called today; by user, one per user."""
    tab.open("/costs")
    tab.page.wait_for_selector("#cost-chart rect.bar")
    names = set(
        tab.page.eval_on_selector_all("#cost-chart rect.bar", "b => b.map(r => r.dataset.name)")
    )
    assert names == {"gpt-4o-mini", "claude-3-5-haiku-latest"}
    tab.shot("costs")
    tab.page.select_option("select[name=by]", "user")
    tab.page.wait_for_selector("#cost-chart rect.bar[data-name='cy']")
    users = set(
        tab.page.eval_on_selector_all("#cost-chart rect.bar", "b => b.map(r => r.dataset.name)")
    )
    assert {"ana", "bo", "cy"} <= users


def test_cpu_profile_opens_as_a_flame_graph(tab: Tab, runs: tuple[Store, dict[str, str]]) -> None:
    """From the profiled run, its CPU profile opens as a flame graph naming the hot function,
    with the top functions table."""
    _, ids = runs
    tab.open(f"/runs/{ids['profiled']}")
    tab.page.click("#profiles a")
    tab.page.wait_for_url(re.compile(r"/profiles/"))
    tab.page.wait_for_selector("#flame g.frame")
    frames = tab.page.eval_on_selector_all("#flame g.frame", "g => g.map(f => f.dataset.name)")
    assert "crunch" in frames
    assert "crunch" in tab.page.locator("#functions").inner_text()
    tab.shot("profile")


def test_experiments_page_says_there_are_none(tab: Tab) -> None:
    """The experiments page renders its empty state."""
    tab.open("/experiments")
    assert "No experiments" in tab.page.wait_for_selector("#no-experiments").inner_text()
    tab.shot("experiments")


def test_experiment_lists_its_changed_runs_and_each_opens_its_diff(
    tab: Tab, runs: tuple[Store, dict[str, str]]
) -> None:
    """After an experiment that changes the critique step, the experiments page lists both
    runs as changed at critique#0, and a run's diff link opens its highlighted diff (after
    the empty-state test: this module's store is shared, in file order)."""
    from workbench.debugging import RequestReplay

    store, ids = runs
    RequestReplay(store).replay_many(
        [ids["caching"], ids["alpacas"]],
        modifications={"step_outputs": {"critique": "Looks fine."}},
        engine="inline",
        name="terse critique",
    )
    store.flush()
    tab.open("/experiments")
    rows = tab.page.locator("table.changed-runs tr").all_inner_texts()[1:]
    assert len(rows) == 2 and all("critique#0" in row for row in rows), rows
    tab.shot("experiments")
    tab.page.locator("a.open-diff").first.click()
    tab.page.wait_for_url(re.compile(r"/diff\?"))
    first = tab.page.wait_for_selector("#diff-steps tr.first-divergent")
    assert first.get_attribute("data-step") == "critique#0"


def test_unknown_run_is_a_404_page_naming_it(tab: Tab) -> None:
    """An unknown run id is a 404 page that names the id."""
    answer = tab.open("/runs/exec_nowhere")
    assert answer.status == 404
    assert tab.page.locator("h1").first.inner_text() == "Not found"
    assert "exec_nowhere" in tab.page.locator("p.message").inner_text()
    tab.shot("not-found")
    # The browser reports the page's own 404 status as a console error; nothing else may fail.
    tab.errors[:] = [e for e in tab.errors if "404" not in e]
