"""Comparing two executions: ``compare_executions`` against a plain DeepDiff of both documents.

What: two executions of N = 10,000 steps (1,000 with ``--quick``), each step with parameters, a
result and one model call (a chat request with a prompt, and the response text), the same in
both runs but for 1% of the steps, whose result and response text differ. Timings (durations,
latencies) differ everywhere, as in any two real runs. The records are built in memory with the
shape the store returns: recording 10,000 real model calls would measure the recorder instead.

How: ours is ``workbench.compare_executions(a, b)`` from the records, building its documents
included. The peer is ``DeepDiff`` (with the engine's options) of the two whole documents
already built — the same JSON the engine compares, handed to the peer for free. Both run in
this process, alternating inside each round; medians of the rounds are reported. The script
also checks that both find exactly the same differences, and fails if they do not.
"""

from __future__ import annotations

import random

import _common
from _common import Row, fmt, median, rotated, timed
from deepdiff import DeepDiff

from workbench import Execution, compare_executions
from workbench.diff._document import build_documents
from workbench.diff._engine import DEEPDIFF_OPTIONS, translate
from workbench.records import ModelCall, Step

__all__ = ["main", "synthetic_pair"]

TARGET_S = 0.5
TARGET_RATIO = 15.0


def _run(run_id: str, n: int, differing: set[int], rng: random.Random) -> Execution:
    steps, calls = [], []
    for i in range(n):
        changed = i in differing and run_id.endswith("b")
        answer = f"Answer {i}: llamas produce {'coarse' if changed else 'fine'} fibre, {i % 7} kg."
        started = 1000.0 + i
        steps.append(
            Step(
                run_id, f"step_{i % 50}", i // 50, f"span{i}", None, None,
                {"index": i, "query": f"What is known about fibre batch {i}?", "top_k": 3},
                {"answer": answer, "sources": [f"doc-{i % 13}", f"doc-{i % 17}"]},
                None, "completed", 0, started, started + 0.5, rng.uniform(0.1, 0.9),
            )
        )  # fmt: skip
        body = {
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "You are a concise research assistant."},
                {"role": "user", "content": f"What is known about fibre batch {i}?"},
            ],
            "max_tokens": 200,
        }
        request = {"method": "POST", "url": "http://127.0.0.1:1/v1/chat/completions",
                   "path": "/v1/chat/completions", "query": [], "headers": {},
                   "body_format": "json", "body": body}  # fmt: skip
        calls.append(
            ModelCall(
                f"call_{run_id}_{i}", run_id, f"span{i}", f"step_{i % 50}", i // 50, "openai",
                "gpt-4o-mini", "chat", request, 200, {}, {}, False, [], 20, 12, 0, 0, False,
                2e-5, None, rng.uniform(0.01, 0.2), "stop", answer, f"key{i}", 0, started + 0.1,
                None,
            )
        )  # fmt: skip
    return Execution(
        run_id, "bench_diff", "1", None, {"n": n}, {"steps": n}, "completed", True, None,
        None, None, False, False, 1000.0, 1000.0 + n, float(n), 2e-5 * n, 20 * n, 12 * n,
        None, {}, None, {}, "0" * 32, steps=steps, spans=[], model_calls=calls,
    )  # fmt: skip


def synthetic_pair(n: int, seed: int = 4) -> tuple[Execution, Execution]:
    """Two runs of ``n`` steps whose contents differ in 1% of the steps."""
    rng = random.Random(seed)
    differing = set(rng.sample(range(n), max(1, n // 100)))
    return _run("exec_bench_a", n, differing, rng), _run("exec_bench_b", n, differing, rng)


def main(quick: bool = False) -> list[Row]:
    n = 1_000 if quick else 10_000
    rounds = 2 if quick else 3
    a, b = synthetic_pair(n)
    doc_a, doc_b = build_documents(a, b)

    ours = compare_executions(a, b)
    plain = translate(DeepDiff(doc_a.content, doc_b.content, view="tree", **DEEPDIFF_OPTIONS),
                      doc_a, doc_b)  # fmt: skip

    def key(d: object) -> str:
        return repr(d)

    if sorted(map(key, ours.differences)) != sorted(map(key, plain)):
        raise RuntimeError("compare_executions and plain DeepDiff found different differences")
    print(f"  N={n}: both find the same {len(plain)} differences", flush=True)

    times: dict[str, list[float]] = {"ours": [], "deepdiff": []}
    work = {
        "ours": lambda: compare_executions(a, b),
        "deepdiff": lambda: DeepDiff(doc_a.content, doc_b.content, view="tree",
                                     **DEEPDIFF_OPTIONS),
    }  # fmt: skip
    for index in range(rounds):
        for variant in rotated(list(work), index):
            times[variant].append(timed(work[variant]).wall_s)
    ours_s, peer_s = median(times["ours"]), median(times["deepdiff"])
    ratio = peer_s / ours_s
    print(f"  compare: workbench {ours_s:.3f}s, plain DeepDiff {peer_s:.3f}s ({ratio:.1f}x)")
    return [
        Row(
            "diff",
            f"compare 2 runs of {n:,} steps, 1% differing (peer plain DeepDiff)",
            fmt(ours_s, 3, " s"),
            fmt(peer_s, 3, " s"),
            f"{ratio:.1f}x faster",
            f"< {TARGET_S} s, >= {TARGET_RATIO:.0f}x",
            ours_s < TARGET_S and ratio >= TARGET_RATIO,
        )
    ]


if __name__ == "__main__":
    _common.cli(__doc__ or "", main)
