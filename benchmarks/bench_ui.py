"""The web UI: the run list's first page over 100,000 runs, a large run's page to first paint in
Chromium, and the diff page of two 1,000-step runs.

What and how:

* **Run list** — a store of N = 100,000 executions (10,000 with ``--quick``), written by one bulk
  ``Store.import_rows`` (recording 100,000 runs would measure the recorder). Ours is the server
  time of ``GET /api/runs`` (the first page of 50, its total, newest first) from a real uvicorn
  on 127.0.0.1, over HTTP; the peer is raw ``sqlite3`` running the same two queries (page and
  count) on its own connection, the floor any server over this file has. Medians of rounds,
  alternating. Target: ≤ 100 ms. PostgreSQL likewise, on a cluster of its own, against the bare
  statement through psycopg.
* **Run page** — one execution *recorded for real* with 10,000 spans and 1,000 model calls
  (1,000 steps, each a call to the test model server through the openai SDK and nine nested
  spans; 1,000 spans and 100 calls with ``--quick``). Headless Chromium (Debian's, through
  Playwright) opens ``/runs/ID``; the Performance API gives the first contentful paint and the
  page's own ``waterfall-drawn`` mark (the trace read from ``/api/runs/ID`` and its rows
  drawn). Target: ≤ 500 ms to first paint; the waterfall row holds the same target. The peer
  row is ``Store.get_execution`` alone, the decoding every view of that run pays.
* **Diff page** — two recorded runs of 1,000 steps (100 with ``--quick``) whose results differ
  in 1% of the steps. Chromium opens ``/diff?a=..&b=..``; the ``diff-drawn`` mark says when the
  aligned steps and differences are on the page. Target: ≤ 1 s. The peer is
  ``compare_executions`` alone (the diff engine's own time, which the page includes).

Without chromium or playwright the browser rows say so and are not measured.
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import _common
import httpx
from _common import Row, fmt, median, rotated

import workbench
from workbench.store import Store
from workbench.store._sql import EXEC_COLUMNS
from workbench.testing import ModelServer

__all__ = ["main"]

LIST_TARGET_S = 0.100
PAINT_TARGET_S = 0.500
DIFF_TARGET_S = 1.0
KEY = "sk-test-not-a-real-key"


def _bulk_store(path: Path | str, n: int) -> Store:
    rng = random.Random(3)
    store = Store(path)
    rows = []
    for i in range(n):
        started = 1_700_000_000.0 + i * 3.0
        values = {
            "id": f"exec_{i:08x}",
            "pipeline_id": rng.choice(("research", "support", "triage", "summarise")),
            "pipeline_version": "1",
            "status": rng.choice(("completed",) * 9 + ("failed",)),
            "success": 1,
            "user_id": f"user{rng.randrange(200)}",
            "sampled": 1,
            "debug": 0,
            "started_at": started,
            "ended_at": started + 2.0,
            "duration_s": round(rng.uniform(0.2, 9), 3),
            "cost_usd": round(rng.uniform(0, 0.02), 6),
            "tokens_in": rng.randrange(2000),
            "tokens_out": rng.randrange(800),
            "trace_id": f"{i:032x}",
        }
        rows.append(tuple(values.get(c) for c in EXEC_COLUMNS))
    store.import_rows({"exec": rows}, [r[0] for r in rows])
    return store


_PAGE_SQL = (
    "SELECT id, pipeline_id, pipeline_version, status, success, user_id, environment, "
    "started_at, ended_at, duration_s, cost_usd, tokens_in, tokens_out, "
    "(SELECT COUNT(*) FROM model_calls c WHERE c.execution_id = executions.id), replay_of, "
    "sampled, debug, json_extract(error, '$.type'), json_extract(error, '$.message') "
    "FROM executions ORDER BY started_at DESC, rowid DESC LIMIT 50"
)


def _first_page_medians(
    store: Store, raw: Any, page_sql: str, n: int, rounds: int
) -> tuple[float, float]:
    """Medians, in alternating rounds, of the first page served over HTTP (ours) and of the bare
    page and count statements on ``raw``, a connection of the backend's own driver (the peer)."""
    from workbench.ui._serve import background_server

    times: dict[str, list[float]] = {"ours": [], "peer": []}
    with background_server(store) as url, httpx.Client(base_url=url) as http:
        assert http.get("/api/runs").json()["total"] == n  # warm: first read of the store

        def ours() -> None:
            answer = http.get("/api/runs")
            assert answer.status_code == 200 and len(answer.json()["runs"]) == 50

        def peer() -> None:
            raw.execute(page_sql).fetchall()
            raw.execute("SELECT COUNT(*) FROM executions").fetchone()

        work = {"ours": ours, "peer": peer}
        for index in range(rounds):
            for variant in rotated(list(work), index):
                start = time.perf_counter()
                work[variant]()
                times[variant].append(time.perf_counter() - start)
    return median(times["ours"]), median(times["peer"])


def _run_list(folder: Path, n: int, rounds: int) -> list[Row]:
    began = time.perf_counter()
    store = _bulk_store(folder / "list.db", n)
    print(f"  run list: {n:,} executions written in {time.perf_counter() - began:.1f}s", flush=True)
    raw = sqlite3.connect(store.path)
    try:
        ours_s, peer_s = _first_page_medians(store, raw, _PAGE_SQL, n, rounds)
    finally:
        raw.close()
        store.close()
    print(f"  run list first page: {ours_s * 1000:.1f} ms (raw sqlite3 {peer_s * 1000:.1f} ms)")
    return [
        Row(
            "ui",
            f"run list first page, {n:,} runs (GET /api/runs, SQLite)",
            fmt(ours_s * 1000, 1, " ms"),
            fmt(peer_s * 1000, 1, " ms") + " sqlite3",
            f"{ours_s / peer_s:.1f}x",
            "<= 100 ms",
            ours_s <= LIST_TARGET_S,
        ),
        *_run_list_postgres(n, rounds),
    ]


def _run_list_postgres(n: int, rounds: int) -> list[Row]:
    """The same first page served from a PostgreSQL store (a cluster of its own, unix
    socket), against the bare page statement through psycopg."""
    from workbench.testing._postgres import PostgresServer, find_postgres_bin

    if find_postgres_bin() is None:
        return [
            Row("ui", "run list first page, PostgreSQL", "-", "no initdb", "-", "<= 100 ms", None)
        ]
    import psycopg

    page = (
        "SELECT id, pipeline_id, status, user_id, started_at, duration_s, cost_usd, tokens_in, "
        "tokens_out, (SELECT COUNT(*) FROM model_calls c WHERE c.execution_id = e.id), "
        "replay_of, error FROM executions e ORDER BY started_at DESC LIMIT 50"
    )
    with PostgresServer() as server:
        url = server.url(server.new_database(), socket=True)
        began = time.perf_counter()
        store = _bulk_store(url, n)
        print(f"  run list (PostgreSQL): {n:,} written in {time.perf_counter() - began:.1f}s")
        try:
            with psycopg.connect(os.fspath(store.path)) as raw:
                ours_s, peer_s = _first_page_medians(store, raw, page, n, rounds)
        finally:
            store.close()
    print(
        f"  run list first page (PostgreSQL): {ours_s * 1000:.1f} ms "
        f"(psycopg {peer_s * 1000:.1f} ms)"
    )
    return [
        Row(
            "ui",
            f"run list first page, {n:,} runs (GET /api/runs, PostgreSQL)",
            fmt(ours_s * 1000, 1, " ms"),
            fmt(peer_s * 1000, 1, " ms") + " psycopg",
            f"{ours_s / peer_s:.1f}x",
            "<= 100 ms",
            ours_s <= LIST_TARGET_S,
        )
    ]


@workbench.step("work")
def _work_step(index: int, client: Any, spans: int) -> str:
    for j in range(spans):
        with workbench.span(f"part-{j}", index=index):
            pass
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": f"item {index}"}]
    )
    return reply.choices[0].message.content or ""


def _large_run(store: Store, server: ModelServer, steps: int) -> str:
    import openai

    with (
        openai.OpenAI(base_url=server.openai_base_url, api_key=KEY, max_retries=0) as client,
        workbench.record("large", inputs={"steps": steps}, store=store) as run,
    ):
        for i in range(steps):
            _work_step(i, client, 9)
    return run.id


@workbench.step("item")
def _item(index: int, changed: bool) -> dict[str, Any]:
    answer = f"Answer {index}: llamas make {'coarse' if changed else 'fine'} fibre."
    return {"answer": answer, "sources": [f"doc-{index % 13}"]}


def _diff_run(store: Store, steps: int, differing: set[int], name: str) -> str:
    with workbench.record("many_steps", inputs={"n": steps}, store=store) as run:
        for i in range(steps):
            _item(i, name == "b" and i in differing)
    return run.id


def _cold_api_s(store: Store, path: str, rounds: int) -> float:
    """Median time of ``GET path`` from a new server each round (its decoded-run cache empty:
    what the first look at a run costs), the server warmed by one other request first."""
    from workbench.ui._serve import background_server

    times = []
    for _ in range(rounds):
        with background_server(store) as url, httpx.Client(base_url=url, timeout=60) as http:
            http.get("/api")  # a new server's first answer starts its thread pool: not timed
            start = time.perf_counter()
            assert http.get(path).status_code == 200
            times.append(time.perf_counter() - start)
    return median(times)


def _browser_times(store: Store, path: str, mark: str, rounds: int) -> tuple[float, float]:
    """Median first contentful paint and ``mark`` (seconds after navigation start) of ``path``
    in headless Chromium, each round from a new server (nothing of the run decoded yet); prints
    when the page's /api/ answer had arrived, to tell server time from drawing."""
    from playwright.sync_api import sync_playwright

    from workbench.ui._serve import background_server

    paints, marks, answers = [], [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"))
        try:
            for _ in range(rounds + 1):  # the first opening warms the browser itself
                with background_server(store) as url:
                    httpx.get(url + "/api")  # the new server's thread pool started, as above
                    page = browser.new_page(viewport={"width": 1400, "height": 900})
                    page.goto(url + path)
                    page.wait_for_selector(
                        ".wf-row" if mark == "waterfall-drawn" else "#diff-steps"
                    )
                    page.wait_for_timeout(50)
                    paint, drawn, answered = page.evaluate(
                        "mark => [performance.getEntriesByName('first-contentful-paint')[0]"
                        "?.startTime ?? null, performance.getEntriesByName(mark)[0]?.startTime,"
                        " Math.max(...performance.getEntriesByType('resource')"
                        ".filter(r => r.name.includes('/api/')).map(r => r.responseEnd))]",
                        mark,
                    )
                    answers.append(answered / 1000)
                    page.close()
                paints.append(paint / 1000 if paint is not None else float("nan"))
                marks.append(drawn / 1000)
        finally:
            browser.close()
    answered_ms = statistics.median(answers[1:]) * 1000
    print(
        f"  {path.split('?')[0]}: its /api/ answer in {answered_ms:.0f} ms after navigation start"
    )
    return statistics.median(paints[1:]), statistics.median(marks[1:])


def _pages(folder: Path, quick: bool, rounds: int) -> list[Row]:
    from workbench.diff import compare_executions

    steps = 100 if quick else 1_000
    diff_steps = 100 if quick else 1_000
    have_browser = shutil.which("chromium") is not None
    try:
        import playwright  # noqa: F401
    except ImportError:
        have_browser = False
    rows: list[Row] = []
    with Store(folder / "pages.db") as store, ModelServer() as server:
        began = time.perf_counter()
        large = _large_run(store, server, steps)
        execution = store.get_execution(large)
        print(
            f"  run page: recorded {len(execution.spans):,} spans, "
            f"{len(execution.model_calls):,} model calls in {time.perf_counter() - began:.1f}s",
            flush=True,
        )
        differing = set(random.Random(5).sample(range(diff_steps), max(1, diff_steps // 100)))
        a = _diff_run(store, diff_steps, differing, "a")
        b = _diff_run(store, diff_steps, differing, "b")
        store.flush()
        decode_s = median(
            _common.timed(lambda: store.get_execution(large)).wall_s for _ in range(rounds)
        )
        engine_s = median(
            _common.timed(lambda: compare_executions(a, b, store=store)).wall_s
            for _ in range(rounds)
        )
        api_s = _cold_api_s(store, f"/api/runs/{large}", rounds)
        diff_api_s = _cold_api_s(store, f"/api/diff?a={a}&b={b}", rounds)
        if have_browser:
            paint_s, drawn_s = _browser_times(store, f"/runs/{large}", "waterfall-drawn", rounds)
            _, diff_s = _browser_times(store, f"/diff?a={a}&b={b}", "diff-drawn", rounds)
    spans, calls = len(execution.spans), len(execution.model_calls)
    size = f"{spans:,} spans, {calls:,} calls"
    print(f"  run page API {api_s * 1000:.0f} ms (get_execution {decode_s * 1000:.0f} ms)")
    rows.append(
        Row("ui", f"run page API, {size}", fmt(api_s * 1000, 0, " ms"),
            fmt(decode_s * 1000, 0, " ms") + " get_execution", f"{api_s / decode_s:.1f}x",
            "-", None)
    )  # fmt: skip
    rows.append(
        Row("ui", f"diff API, two {diff_steps:,}-step runs", fmt(diff_api_s * 1000, 0, " ms"),
            fmt(engine_s * 1000, 0, " ms") + " compare_executions",
            f"{diff_api_s / engine_s:.1f}x", "-", None)
    )  # fmt: skip
    if not have_browser:
        reason = "not measured: no chromium or playwright"
        rows.append(Row("ui", f"run page first paint, {size}", reason, "-", "-", "<= 500 ms", None))
        rows.append(Row("ui", "diff page drawn", reason, "-", "-", "<= 1 s", None))
        return rows
    print(
        f"  Chromium: run page first paint {paint_s * 1000:.0f} ms, waterfall drawn "
        f"{drawn_s * 1000:.0f} ms; diff page drawn {diff_s * 1000:.0f} ms"
    )
    rows += [
        Row("ui", f"run page first contentful paint (Chromium), {size}",
            fmt(paint_s * 1000, 0, " ms"), "-", "-", "<= 500 ms", paint_s <= PAINT_TARGET_S),
        Row("ui", f"run page waterfall drawn (Chromium), {size}", fmt(drawn_s * 1000, 0, " ms"),
            fmt(api_s * 1000, 0, " ms") + " API", "-", "<= 500 ms", drawn_s <= PAINT_TARGET_S),
        Row("ui", f"diff page drawn (Chromium), two {diff_steps:,}-step runs",
            fmt(diff_s * 1000, 0, " ms"), fmt(engine_s * 1000, 0, " ms") + " engine",
            f"{diff_s / engine_s:.1f}x", "<= 1 s", diff_s <= DIFF_TARGET_S),
    ]  # fmt: skip
    return rows


def main(quick: bool = False) -> list[Row]:
    n = 10_000 if quick else 100_000
    rounds = 3 if quick else 7
    with tempfile.TemporaryDirectory(prefix="bench-ui-") as folder:
        rows = _run_list(Path(folder), n, rounds)
        rows += _pages(Path(folder), quick, 3 if quick else 5)
    return rows


if __name__ == "__main__":
    _common.cli(__doc__ or "", main)
