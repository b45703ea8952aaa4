"""Export and import of recorded executions as JSON files: executions/s, and the round trip.

What: N = 1,000 executions (quick: 200), each with one step, one state and one OpenAI chat
completion through the real ``openai`` SDK against a loopback
:class:`workbench.testing.ModelServer` (every other one streamed), recorded in a store.

How: ``export_executions`` of the whole store into a folder (one canonical JSON file per
execution), ``import_executions`` of that folder into a new store, and an export of that store
again; the round trip holds when both folders are byte for byte the same. Each direction is
timed (median of three rounds, a fresh target store per import). The peer is what
pytest-recording does per test with vcrpy: ``vcr.serialize.serialize`` of each execution's
interaction into YAML (against our export), and ``deserialize`` of it back (against our
import), with vcrpy's own serializer, from and to memory, where ours reads each execution from
the store (and scrubs it) or writes it there; the ratio is our time over vcrpy's.
"""

from __future__ import annotations

import filecmp
import http
import tempfile
import time
from pathlib import Path

import _common
import openai
from _common import Row, fmt, median

import workbench
from workbench.store._export import export_executions, import_executions
from workbench.testing import ModelServer

__all__ = ["main"]

ROUNDS = 3


def _record(store: workbench.Store, server: ModelServer, n: int) -> None:
    with openai.OpenAI(base_url=server.openai_base_url, api_key="sk-t", max_retries=0) as client:
        for i in range(n):
            with workbench.record("bench_export", inputs={"i": i}, store=store):
                with workbench.step("ask", parameters={"i": i}):
                    messages = [{"role": "user", "content": f"question {i:05d}"}]
                    if i % 2:
                        for _ in client.chat.completions.create(
                            model="gpt-4o-mini", messages=messages, stream=True
                        ):
                            pass
                    else:
                        client.chat.completions.create(model="gpt-4o-mini", messages=messages)
                    workbench.state("seen", {"i": i, "note": "x" * 200})


def _vcr_cassettes(store: workbench.Store) -> list[dict[str, list[object]]]:
    from vcr.request import Request

    cassettes = []
    for listed in store.list_executions(limit=None):
        requests, responses = [], []
        for call in store.get_execution(listed.id).model_calls:
            request = call.request if isinstance(call.request, dict) else {}
            requests.append(Request("POST", str(request.get("url")), b"{}", {}))
            responses.append(
                {
                    "status": {"code": call.status_code, "message": http.HTTPStatus(200).phrase},
                    "headers": {k: [v] for k, v in call.response_headers.items()},
                    "body": {"string": call.body},
                }
            )
        cassettes.append({"requests": requests, "responses": responses})
    return cassettes


def _same(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.glob("*.json"))
    if names != sorted(p.name for p in b.glob("*.json")):
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    return not mismatch and not errors


def main(quick: bool = False) -> list[Row]:
    from vcr.serialize import deserialize, serialize
    from vcr.serializers import yamlserializer

    n = 200 if quick else 1_000
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp, ModelServer() as server:
        folder = Path(tmp)
        store = workbench.Store(folder / "source.db")
        _record(store, server, n)
        cassettes = _vcr_cassettes(store)

        exports, imports, peer_out, peer_in = [], [], [], []
        for r in range(ROUNDS):
            began = time.perf_counter()
            export_executions(store, folder / f"out{r}")
            exports.append(time.perf_counter() - began)
            target = workbench.Store(folder / f"copy{r}.db")
            began = time.perf_counter()
            import_executions(target, folder / f"out{r}")
            imports.append(time.perf_counter() - began)
            if r == 0:
                export_executions(target, folder / "again")
                identical = _same(folder / "out0", folder / "again")
            target.close()
            began = time.perf_counter()
            texts = [serialize(c, yamlserializer) for c in cassettes]
            peer_out.append(time.perf_counter() - began)
            began = time.perf_counter()
            for text in texts:
                deserialize(text, yamlserializer)
            peer_in.append(time.perf_counter() - began)
        store.close()

    out_rate, in_rate = n / median(exports), n / median(imports)
    vcr_out, vcr_in = n / median(peer_out), n / median(peer_in)
    print(
        f"  export {out_rate:,.0f}/s, import {in_rate:,.0f}/s (vcrpy YAML {vcr_out:,.0f}/s out, "
        f"{vcr_in:,.0f}/s in); round trip byte-identical: {identical}",
        flush=True,
    )
    return [
        Row(
            "export",
            f"store export, executions/s, N={n} (peer vcrpy YAML serialize)",
            fmt(out_rate, 0, "/s"),
            fmt(vcr_out, 0, "/s"),
            f"{vcr_out / out_rate:.2f}x",
            "-",
            None,
        ),
        Row(
            "export",
            f"store import, executions/s, N={n} (peer vcrpy YAML deserialize)",
            fmt(in_rate, 0, "/s"),
            fmt(vcr_in, 0, "/s"),
            f"{vcr_in / in_rate:.2f}x",
            "-",
            None,
        ),
        Row(
            "export",
            "export -> import -> export gives byte-identical files",
            "yes" if identical else "no",
            "-",
            "-",
            "identical",
            identical,
        ),
    ]


if __name__ == "__main__":
    _common.cli(__doc__ or "", main)
