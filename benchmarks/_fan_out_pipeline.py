"""The pipeline ``bench_diff_concurrent`` records and replays: one step, k calls at once.

Its own module (not the benchmark script) because a replay re-imports its entrypoint by
``module:qualname`` and a script run as ``__main__`` has none; the benchmarks folder is on
``sys.path`` whenever a benchmark runs, so the entrypoint is ``_fan_out_pipeline:fan_out``.
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import openai

import workbench

__all__ = ["fan_out"]


@workbench.pipeline(name="bench_fan_out")
def fan_out(base_url: str, k: int, jitter_s: float) -> list[str]:
    """One step asking ``k`` distinct questions from a thread pool of ``k`` workers; each
    answer waits up to ``jitter_s`` on the server, so the calls finish in a random order."""

    def ask(index: int) -> str:
        latency = {"x-workbench-latency": f"{random.uniform(0, jitter_s):.4f}"}
        with openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0) as client:
            reply = client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": f"question {index} of {k}"}],
                extra_headers=latency,
            )
        return reply.choices[0].message.content or ""

    with workbench.step("fan_out"), ThreadPoolExecutor(k) as pool:
        return list(pool.map(workbench.carry_context(ask), range(k)))
