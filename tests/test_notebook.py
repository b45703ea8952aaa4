"""Notebook views: Execution, ModelCall and Step render as compact HTML."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import openai

import workbench
from workbench.debugging import RequestReplay
from workbench.testing import ModelServer


def _recorded(tmp_path: Path, server: ModelServer) -> workbench.Store:
    store = workbench.Store(tmp_path / "views.db")
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)
    with workbench.record("viewed", inputs={"essay": "x" * 500}, store=store) as run:
        with workbench.step("ask"):
            client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "<b>hello</b>"},
                ],
            )
        run.outputs = "done"
    store.flush()
    return store


@workbench.pipeline
def ask(base_url: str) -> str:
    """A one-call pipeline (module level, so replay can import it)."""
    with openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0) as client:
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    return reply.choices[0].message.content or ""


def test_execution_model_call_and_step_render_tables_bubbles_and_collapsed_values(
    tmp_path: Path, model_server: ModelServer
) -> None:
    """An execution shows a table with its cost and steps, its prompt as chat bubbles (escaped),
    and a long input collapsed in a <details>; a model call and a step render on their own."""
    store = _recorded(tmp_path, model_server)
    [listed] = store.list_executions()
    execution = store.get_execution(listed.id)
    page = execution._repr_html_()
    assert "<table>" in page and "viewed" in page and execution.id in page
    assert "class='bubble user'" in page and "&lt;b&gt;hello&lt;/b&gt;" in page
    assert "<b>hello</b>" not in page
    assert "<details><summary><code>{" in page and "characters)</summary>" in page
    call = execution.model_calls[0]._repr_html_()
    assert "class='bubble system'" in call and "gpt-4o-mini" in call and "cost" in call
    step = execution.steps[0]._repr_html_()
    assert ("<b>ask</b>" in step and "completed" in step) or "ok" in step
    store.close()


def test_list_executions_renders_one_row_per_execution_and_names_damaged_ids(
    tmp_path: Path, model_server: ModelServer
) -> None:
    """``list_executions()`` in a notebook is a table with one row per run and its cost, and a
    run whose record could not be read is named under the table, not dropped silently."""
    store = _recorded(tmp_path, model_server)
    listed = store.list_executions()
    listed.damaged["deadbeef"] = "its inputs are not valid JSON"
    page = listed._repr_html_()
    assert page.count("<tr><td><code>") == 1 and listed[0].id in page
    assert "viewed" in page and "1 execution(s)" in page
    assert "damaged: <code>deadbeef</code> its inputs are not valid JSON" in page
    store.close()


def test_a_replay_costs_nothing_and_small_costs_keep_their_digits(
    tmp_path: Path, model_server: ModelServer
) -> None:
    """In a notebook, as in `workbench runs list`, a replay's cost reads "$0 (replay)" and a
    call's cost has significant digits (`$0.0000021`), not six fixed places."""
    store = workbench.Store(tmp_path / "replayed.db")
    with workbench.record("asked", inputs={}, store=store) as run:
        ask(model_server.openai_base_url)
    result = RequestReplay(store).replay_execution(run.id)
    store.flush()
    replay = store.get_execution(result.execution_id)
    assert "$0 (replay)" in replay._repr_html_()
    assert "$0 (replay)" in replay.model_calls[0]._repr_html_()
    listed = store.list_executions()._repr_html_()
    assert listed.count("$0 (replay)") == 1
    cheap = dataclasses.replace(replay.model_calls[0], cost_usd=0.0000021, replayed=False)
    assert "$0.0000021" in cheap._repr_html_()
    store.close()
