"""Bytes on disk per recorded model call: a workbench store against a vcrpy YAML cassette.

What: N = 500 distinct OpenAI chat completions through the real ``openai`` SDK (every other
one streamed) against a loopback :class:`workbench.testing.ModelServer`, recorded once by
workbench and once by vcrpy; the same prompts, in the same order, with the server reset in
between so both see the same answers.

How: for workbench, the growth of ``store.stats()["bytes"]`` (database file plus its -wal)
from the freshly created store to the end of the execution, each measured after
``PRAGMA wal_checkpoint(TRUNCATE)`` on a separate ``sqlite3`` connection, so the figure is the
database file itself. For the peer, vcrpy (``record_mode="all"``), the size of the YAML
cassette it writes. Both are divided by N. Sizes do not depend on machine load: one round.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path

import _common
import openai
import vcr
from _common import Row, fmt
from openai.types.chat import ChatCompletionMessageParam

import workbench
from workbench.testing import ModelServer

__all__ = ["main"]

MODEL = "gpt-4o-mini"
TARGET_RATIO = 0.5


def checkpointed_bytes(store: workbench.Store) -> int:
    """The store's size with its write-ahead log folded into the database file."""
    store.flush()
    conn = sqlite3.connect(store.path)
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        conn.close()
    if busy:
        raise RuntimeError(f"could not checkpoint {store.path}: a connection held it busy")
    return store.stats()["bytes"]


def make_call(client: openai.OpenAI) -> Callable[[int, str], None]:
    def call(index: int, prompt: str) -> None:
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": "You are a concise research assistant."},
            {"role": "user", "content": prompt},
        ]
        if index % 2:
            stream = client.chat.completions.create(
                model=MODEL,
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
            )
            for _ in stream:
                pass
        else:
            client.chat.completions.create(model=MODEL, messages=messages)

    return call


def main(quick: bool = False) -> list[Row]:
    n = 100 if quick else 500
    prompts = [f"Question {i:06d}: summarise what is known about llama fibre." for i in range(n)]
    with (
        tempfile.TemporaryDirectory(prefix="bench-bytes-") as tmp,
        ModelServer() as server,
        openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0) as client,
    ):
        folder = Path(tmp)
        call = make_call(client)

        store = workbench.Store(folder / "workbench.db")
        before = checkpointed_bytes(store)
        with workbench.record("bench_bytes", inputs={"n": n}, store=store) as run:
            for index, prompt in enumerate(prompts):
                call(index, prompt)
        after = checkpointed_bytes(store)
        recorded = len(store.get_execution(run.id).model_calls)
        store.close()
        if recorded != n:
            raise RuntimeError(f"workbench recorded {recorded} model calls, expected {n}")

        server.reset()
        cassette_path = folder / "cassette.yaml"
        with vcr.VCR(record_mode="all").use_cassette(str(cassette_path)) as cassette:
            for index, prompt in enumerate(prompts):
                call(index, prompt)
            if len(cassette) != n:
                raise RuntimeError(f"vcrpy recorded {len(cassette)} calls, expected {n}")
        cassette_bytes = cassette_path.stat().st_size

    ours = (after - before) / n
    peer = cassette_bytes / n
    print(
        f"  bytes/call: workbench {ours:,.0f} (store grew {after - before:,} bytes), "
        f"vcrpy YAML {peer:,.0f} ({cassette_bytes:,} bytes)",
        flush=True,
    )
    return [
        Row(
            "bytes",
            f"bytes/model call, N={n} (half streamed; peer vcrpy YAML cassette)",
            fmt(ours, 0, " B"),
            fmt(peer, 0, " B"),
            f"{ours / peer:.2f}x",
            f"<= {TARGET_RATIO}x",
            ours / peer <= TARGET_RATIO,
        )
    ]


if __name__ == "__main__":
    _common.cli(__doc__ or "", main)
