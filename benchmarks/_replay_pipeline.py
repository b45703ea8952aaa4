"""The pipeline ``bench_replay`` records and replays: N chat completions through one client.

It lives in its own module, not in ``bench_replay``, because a replay re-imports its entrypoint
by ``module:qualname``, and a script run as ``__main__`` has no stable module name. The
benchmarks folder is on ``sys.path`` whenever a benchmark runs (it is the script's folder), so
the recorded entrypoint is ``_replay_pipeline:ask_model``.

:func:`ask_all` is the loop itself; every variant of the benchmark (ours, vcrpy, the floor)
runs it, so they differ only in what answers the SDK.
"""

from __future__ import annotations

import openai

import workbench

__all__ = ["MODEL", "ask_all", "ask_model", "prompt"]

MODEL = "gpt-4o-mini"


def prompt(seed: str, index: int) -> str:
    """The ``index``-th question of a recording: distinct, and all of the same length."""
    return f"Replay {seed} question {index:06d}: what do llamas eat in winter?"


def ask_all(client: openai.OpenAI, seed: str, n: int) -> int:
    """Send the recording's ``n`` chat completions; the total length of the answers."""
    total = 0
    for index in range(n):
        completion = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": prompt(seed, index)}]
        )
        total += len(completion.choices[0].message.content or "")
    return total


@workbench.pipeline(name="bench_replay")
def ask_model(base_url: str, seed: str, n: int) -> int:
    """The recorded entrypoint: one client, ``n`` calls (replayed by ``module:qualname``)."""
    with openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0) as client:
        return ask_all(client, seed, n)
