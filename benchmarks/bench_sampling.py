"""Sampled debug mode: what an unsampled execution costs, against no workbench and a sampled one.

What, in one run, the same work three ways:

* per step - a ``@workbench.step`` function called in a loop: no workbench at all (the plain
  function), inside an unsampled execution, inside a sampled (recorded) one — debug mode on,
  every feature kept. The unsampled step is measured twice: with no observer (the recorder's
  own cost: a context lookup and a plain call) and with the observers workbench loads by
  default (metrics, budgets, profiling triggers). With no budget and no trigger configured
  only the metrics listen, and they count a step as a tuple, folded into the metric families
  when read, so that metrics do not shrink with the rate. A sampled step is durable when it
  returns (a writer round-trip and a commit): its peer is the same step with debug mode off (the
  foundation's recorder), and a raw ``sqlite3`` INSERT + COMMIT is printed as the floor.
* per model call - the ``openai`` SDK asking the built-in test model server on 127.0.0.1: no
  execution, an unsampled one (observers still get tokens and cost), a sampled one.
* the rate - 100,000 real ``workbench.record`` blocks under ``debug.sampling.rate: 0.1``; the
  share that was recorded must be the configured rate within one percentage point. (Execution
  ids are random, so the share is a binomial draw: one standard deviation is 0.095 points,
  about 1% of the rate, at this N; the line printed says how many deviations off it is.)

Variants alternate inside each round and rounds repeat; the table shows medians.
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import _common
import openai
from _common import Row, fmt, median, rotated

import workbench
from workbench import _hooks
from workbench.testing import ModelServer

__all__ = ["main"]

STEP_TARGET_US = 1.0
#: A sampled step records what a step records with debug mode off: the same cost, within noise.
SAMPLED_TARGET = 1.2
RATE = 0.1
RATE_TOLERANCE = 0.01


def plain(i: int) -> int:
    return i


@workbench.step("work")
def step(i: int) -> int:
    return i


def per_call(fn: Callable[[int], object], n: int) -> float:
    """Microseconds per call of ``fn`` over ``n`` calls."""
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - start) / n * 1e6


def plain_steps(n: int) -> float:
    return per_call(plain, n)


def steps_in(sampled: bool | None, store: workbench.Store, n: int) -> float:
    """Steps in an execution: ``sampled`` forces the decision; ``None`` leaves it to the
    configuration (debug mode off: recorded, as without sampling)."""
    with workbench.record("bench_sampling", inputs={}, store=store, sampled=sampled):
        return per_call(step, n)


@contextlib.contextmanager
def configured(path: Path | None) -> Iterator[None]:
    """``WORKBENCH_CONFIG`` set to ``path`` (``None``: no configuration, debug mode off)."""
    before = os.environ.pop("WORKBENCH_CONFIG", None)
    if path is not None:
        os.environ["WORKBENCH_CONFIG"] = str(path)
    try:
        yield
    finally:
        os.environ.pop("WORKBENCH_CONFIG", None)
        if before is not None:
            os.environ["WORKBENCH_CONFIG"] = before


def sqlite_commit_us(folder: Path, n: int) -> float:
    conn = sqlite3.connect(folder / "floor.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE IF NOT EXISTS steps (id INTEGER, status TEXT)")
    start = time.perf_counter()
    for i in range(n):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO steps VALUES (?, ?)", (i, "completed"))
        conn.execute("COMMIT")
    seconds = time.perf_counter() - start
    conn.close()
    return seconds / n * 1e6


def calls_in(sampled: bool | None, store: workbench.Store, client: openai.OpenAI, n: int) -> float:
    def ask(i: int) -> object:
        return client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"question {i % 7}"}]
        )

    if sampled is None:
        return per_call(ask, n)
    with workbench.record("bench_sampling", inputs={}, store=store, sampled=sampled):
        us = per_call(ask, n)
    store.flush()  # the writer's analysis of each call is part of its cost
    return us


def measured_rate(config: Path, folder: Path, executions: int) -> tuple[float, float, float]:
    """(share recorded, µs per unsampled execution, µs per sampled one) under ``config``."""
    store = workbench.Store(folder / "rate.db")
    recorded = 0
    times = {True: 0.0, False: 0.0}
    with configured(config):
        for _ in range(executions):
            start = time.perf_counter()
            with workbench.record("rate", inputs={}, store=store) as run:
                pass
            times[run.recording] += time.perf_counter() - start
            recorded += run.recording
    stored = store.stats()["executions"]
    store.close()
    if stored != recorded:
        raise RuntimeError(f"{recorded} executions were sampled but {stored} are stored")
    unsampled_us = times[False] / max(1, executions - recorded) * 1e6
    sampled_us = times[True] / max(1, recorded) * 1e6
    return recorded / executions, unsampled_us, sampled_us


def main(quick: bool = False) -> list[Row]:
    step_n, step_rounds = (50_000, 3) if quick else (200_000, 5)
    durable_n = 200 if quick else 1_000
    call_n, call_rounds = (60, 2) if quick else (300, 3)
    executions = 20_000 if quick else 100_000
    results: dict[str, list[float]] = {}

    def keep(name: str, value: float) -> None:
        results.setdefault(name, []).append(value)

    with tempfile.TemporaryDirectory(prefix="bench-sampling-") as tmp, ModelServer() as server:
        folder = Path(tmp)
        debug_on = folder / "workbench.yaml"
        debug_on.write_text(f"debug:\n  enabled: true\n  sampling: {{rate: {RATE}}}\n")
        store = workbench.Store(folder / "bench.db")
        client = openai.OpenAI(base_url=server.openai_base_url, api_key="sk-b", max_retries=0)
        calls_in(True, store, client, 5)  # warm-up: imports, observers, the writer, the pool
        default_observers = _hooks.observers()

        # -- per step --------------------------------------------------------------------
        variants = ("nothing", "unsampled, no observer", "unsampled, default observers")
        for index in range(step_rounds):
            for variant in rotated(variants, index):
                if variant == "nothing":
                    keep("step nothing", plain_steps(step_n))
                    continue
                listening = variant.endswith("default observers")
                _hooks._observers = default_observers if listening else ()
                try:
                    with configured(debug_on):
                        keep(f"step {variant}", steps_in(False, store, step_n))
                finally:
                    _hooks._observers = default_observers
            for durable in rotated(("sampled", "debug off"), index):
                with configured(debug_on if durable == "sampled" else None):
                    sampled = True if durable == "sampled" else None
                    keep(f"step {durable}", steps_in(sampled, store, durable_n))
            keep("sqlite floor", sqlite_commit_us(folder, durable_n))

        # -- per model call --------------------------------------------------------------
        call_variants: tuple[bool | None, ...] = (None, False, True)
        for index in range(call_rounds):
            for sampled in rotated(call_variants, index):
                with configured(debug_on):
                    keep(f"call {sampled}", calls_in(sampled, store, client, call_n))
        store.close()

        rate, unsampled_exec_us, sampled_exec_us = measured_rate(debug_on, folder, executions)

    m = {name: median(values) for name, values in results.items()}
    nothing = m["step nothing"]
    over_bare = m["step unsampled, no observer"] - nothing
    over_observed = m["step unsampled, default observers"] - nothing
    observers = ", ".join(type(o).__name__ for o in default_observers) or "none"
    print(
        f"  per step: nothing {nothing:.3f} us; unsampled +{over_bare:.3f} us (no observer), "
        f"+{over_observed:.3f} us (observers: {observers}); sampled {m['step sampled']:.1f} us "
        f"(durable; debug off {m['step debug off']:.1f} us; raw sqlite3 commit "
        f"{m['sqlite floor']:.1f} us)",
        flush=True,
    )
    print(
        f"  per model call: no execution {m['call None']:.0f} us, unsampled "
        f"{m['call False']:.0f} us, sampled {m['call True']:.0f} us",
        flush=True,
    )
    sigma = math.sqrt(RATE * (1 - RATE) / executions)  # the binomial noise of random ids
    print(
        f"  rate: {rate:.4f} recorded of {executions:,} executions at rate {RATE}: off by "
        f"{abs(rate - RATE) * 100:.2f} points ({abs(rate - RATE) / RATE:.1%} relative, "
        f"{abs(rate - RATE) / sigma:.1f} standard deviations of a fair coin at that rate); an "
        f"empty execution costs {unsampled_exec_us:.0f} us unsampled, {sampled_exec_us:.0f} us "
        f"sampled",
        flush=True,
    )
    return [
        Row(
            "sampling",
            f"step, unsampled, recorder only (no observer), N={step_n:,} (peer: plain call)",
            f"+{fmt(over_bare, 3, ' us')}",
            fmt(nothing, 3, " us"),
            f"{m['step unsampled, no observer'] / nothing:.1f}x",
            f"<= +{STEP_TARGET_US} us",
            over_bare <= STEP_TARGET_US,
        ),
        Row(
            "sampling",
            "step, unsampled, default observers (metrics count it; no budget, no trigger)",
            f"+{fmt(over_observed, 3, ' us')}",
            fmt(nothing, 3, " us"),
            f"{m['step unsampled, default observers'] / nothing:.1f}x",
            f"<= +{STEP_TARGET_US} us",
            over_observed <= STEP_TARGET_US,
        ),
        Row(
            "sampling",
            f"step, sampled, durable at return, N={durable_n:,} (peer: debug mode off)",
            fmt(m["step sampled"], 1, " us"),
            fmt(m["step debug off"], 1, " us"),
            f"{m['step sampled'] / m['step debug off']:.2f}x",
            f"<= {SAMPLED_TARGET}x",
            m["step sampled"] / m["step debug off"] <= SAMPLED_TARGET,
        ),
        Row(
            "sampling",
            f"model call, unsampled, N={call_n} (peer: no execution)",
            fmt(m["call False"], 0, " us"),
            fmt(m["call None"], 0, " us"),
            f"{m['call False'] / m['call None']:.2f}x",
            "-",
            None,
        ),
        Row(
            "sampling",
            f"model call, sampled, N={call_n} (peer: no execution)",
            fmt(m["call True"], 0, " us"),
            fmt(m["call None"], 0, " us"),
            f"{m['call True'] / m['call None']:.2f}x",
            "-",
            None,
        ),
        Row(
            "sampling",
            f"share recorded of {executions:,} executions at rate {RATE}",
            f"{rate:.4f}",
            f"{RATE:.4f}",
            f"{rate / RATE:.3f}x",
            f"within {RATE_TOLERANCE * 100:.0f} point",
            abs(rate - RATE) <= RATE_TOLERANCE,
        ),
    ]


if __name__ == "__main__":
    _common.cli(__doc__ or "", main)
