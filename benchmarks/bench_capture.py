"""Capture overhead per model call: ``workbench.record`` against vcrpy, over calls not recorded.

What: the extra wall time a model call costs when it is recorded, in ms per call, at N = 100,
1,000 and 5,000 calls, and whether that cost stays flat as N grows; plus the time to the first
chunk of a streamed call with and without recording.

How: one process, one loopback :class:`workbench.testing.ModelServer` (no injected latency),
one ``openai.OpenAI`` client (``max_retries=0``) reused by every variant. Every call sends a
prompt never sent before (same length, so the same answer length), so neither the store's
content dedup nor the server's prompt cache makes a later variant cheaper. Three variants run
the same N calls:

* ``direct`` - not recorded. Capture is already installed (a warm-up recorded once), so this is
  a process that records some runs and not others: the patched send costs one contextvar read.
* ``ours`` - inside ``with workbench.record(...)`` on a fresh store file per run, timed until
  the ``with`` block exits, which includes the durable flush of every call.
* ``vcrpy`` (the peer) - inside ``vcr.VCR(record_mode="all").use_cassette(...)`` on a fresh
  cassette file per run, timed until the block exits, which includes writing the YAML.

vcrpy 9.x patches ``httpx2``'s transports (checked at run time: a call made through the SDK
inside a cassette must land in it), so all three variants drive the real SDK. Were it not so,
all three would post the same JSON with one ``httpx.Client`` instead, and the output says which.

The variants' order rotates each round; the overhead is taken per round against that round's
direct run, and the table shows the median over rounds. A vcrpy run longer than
``VCR_CAP_S`` is stopped and reported as skipped, not extrapolated.

Streamed: N = 100 streamed calls (server: 1 ms between SSE events) per variant and round; the
time to first chunk is from ``create(stream=True)`` to the first chunk the SDK yields. vcrpy
reads the whole response before handing it over, so its first chunk waits for the last.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _common
import httpx
import openai
import vcr
from _common import Row, Timing, fmt, median, rotated, timed

import workbench
from workbench.capture import install as install_capture
from workbench.testing import ModelServer

__all__ = ["main"]

MODEL = "gpt-4o-mini"
TARGET_MS = 0.3
FLAT_RATIO = 1.5
FLAT_NOISE_MS = 0.05  # below this, two overheads are the same within this machine's noise
VCR_CAP_S = 90.0
STREAM_CHUNK_DELAY_S = 0.001
VARIANTS = ("direct", "ours", "vcrpy")

_prompt_numbers = itertools.count()


def _prompt() -> str:
    return f"Question {next(_prompt_numbers):09d}: what do llamas eat in winter?"


@dataclass
class Driver:
    """Sends one chat completion the way the benchmark's variants all share."""

    via: str  # "SDK" or "httpx.Client", for the table
    label: str
    send: Callable[[str], object]
    stream_first: Callable[[str], float]  # seconds to the first chunk; drains the rest


def sdk_driver(client: openai.OpenAI) -> Driver:
    def send(prompt: str) -> object:
        return client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": prompt}]
        )

    def stream_first(prompt: str) -> float:
        start = time.perf_counter()
        stream = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": prompt}], stream=True
        )
        chunks = iter(stream)
        next(chunks)
        first = time.perf_counter() - start
        for _ in chunks:
            pass
        return first

    return Driver("SDK", "the openai SDK (httpx2)", send, stream_first)


def httpx_driver(client: httpx.Client, base_url: str) -> Driver:
    url = f"{base_url}/chat/completions"
    headers = {"authorization": "Bearer sk-test"}

    def send(prompt: str) -> object:
        response = client.post(
            url,
            headers=headers,
            json={"model": MODEL, "messages": [{"role": "user", "content": prompt}]},
        )
        response.raise_for_status()
        return response.json()

    def stream_first(prompt: str) -> float:
        start = time.perf_counter()
        body = {"model": MODEL, "messages": [{"role": "user", "content": prompt}], "stream": True}
        with client.stream("POST", url, headers=headers, json=body) as response:
            chunks = response.iter_bytes()
            next(chunks)
            first = time.perf_counter() - start
            for _ in chunks:
                pass
        return first

    return Driver(
        "httpx.Client",
        "one httpx.Client posting the same JSON (vcrpy does not patch httpx2)",
        send,
        stream_first,
    )


class Variants:
    """Prepares the recording context of each variant on fresh files.

    A store is opened (schema created) before the clock starts: a process opens its store once,
    so that cost is not a per-call one. What is timed starts at ``with workbench.record``.
    """

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._runs = itertools.count()

    def prepare(self, variant: str) -> AbstractContextManager[Any]:
        run = next(self._runs)
        if variant == "ours":
            store = workbench.Store(self._folder / f"ours-{run}.db")
            return workbench.record("bench_capture", inputs={"run": run}, store=store)
        if variant == "vcrpy":
            recorder = vcr.VCR(record_mode="all")
            cassette: AbstractContextManager[Any] = recorder.use_cassette(
                str(self._folder / f"vcrpy-{run}.yaml")
            )
            return cassette
        return nullcontext()


def run_calls(
    variants: Variants,
    variant: str,
    send: Callable[[str], object],
    n: int,
    cap_s: float | None = None,
) -> Timing | None:
    """Time for ``n`` calls under ``variant`` (block exit included); ``None`` if capped."""
    prompts = [_prompt() for _ in range(n)]
    context = variants.prepare(variant)
    stopped = False

    def work() -> None:
        nonlocal stopped
        start = time.perf_counter()
        with context:
            for prompt in prompts:
                send(prompt)
                if cap_s is not None and time.perf_counter() - start > cap_s:
                    stopped = True
                    break

    timing = timed(work)
    return None if stopped else timing


def vcrpy_records(driver: Driver, folder: Path) -> bool:
    """Whether a call made through ``driver`` inside a vcrpy cassette lands in the cassette."""
    with vcr.VCR(record_mode="all").use_cassette(str(folder / "probe.yaml")) as cassette:
        driver.send(_prompt())
        return len(cassette) == 1


@dataclass
class SizeResult:
    n: int
    direct_ms: float
    ours_overhead_ms: float
    vcrpy_overhead_ms: float | None  # None: skipped at the cap
    rounds: int


def measure_size(
    driver: Driver, variants: Variants, server: ModelServer, n: int, rounds: int
) -> SizeResult:
    per_round: dict[str, list[Timing | None]] = {name: [] for name in VARIANTS}
    vcrpy_skipped = False
    for index in range(rounds):
        for variant in rotated(VARIANTS, index):
            if variant == "vcrpy" and vcrpy_skipped:
                per_round[variant].append(None)
                continue
            cap = VCR_CAP_S if variant == "vcrpy" else None
            timing = run_calls(variants, variant, driver.send, n, cap)
            server.reset()  # the server's request log would otherwise grow across runs
            if timing is None:
                vcrpy_skipped = True
            per_round[variant].append(timing)

    def overhead(variant: str, cpu: bool = False) -> float | None:
        # Paired with the direct run of the same round: both saw the same machine load.
        diffs: list[float] = []
        for timing, base in zip(per_round[variant], per_round["direct"], strict=True):
            if timing is None or base is None:
                return None
            spent = timing.cpu_s - base.cpu_s if cpu else timing.wall_s - base.wall_s
            diffs.append(spent / n * 1e3)
        return median(diffs)

    ours = overhead("ours")
    assert ours is not None
    direct = median(t.wall_s for t in per_round["direct"] if t is not None)
    result = SizeResult(n, direct / n * 1e3, ours, overhead("vcrpy"), rounds)
    vcrpy, vcrpy_cpu = overhead("vcrpy"), overhead("vcrpy", cpu=True)
    print(
        f"  N={n:>5}: direct {result.direct_ms:.3f} ms/call; overhead/call, wall "
        f"(CPU of all threads): ours {ours:+.3f} ({overhead('ours', cpu=True) or 0:+.3f}) ms, "
        f"vcrpy {fmt(vcrpy, 3)} ({fmt(vcrpy_cpu, 3)}) ms; {rounds} rounds",
        flush=True,
    )
    return result


def measure_stream(
    driver: Driver, variants: Variants, server: ModelServer, n: int, rounds: int
) -> dict[str, float]:
    """Median time to first chunk per variant, in ms, over every call of every round."""
    firsts: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for index in range(rounds):
        for variant in rotated(VARIANTS, index):
            prompts = [_prompt() for _ in range(n)]
            with variants.prepare(variant):
                firsts[variant].extend(driver.stream_first(prompt) for prompt in prompts)
            server.reset()
    return {name: median(values) * 1e3 for name, values in firsts.items()}


def _flat(small: float, large: float) -> tuple[float | None, bool]:
    ratio = large / small if small > 0 else None
    met = abs(large - small) <= FLAT_NOISE_MS or (ratio is not None and ratio <= FLAT_RATIO)
    return ratio, met


def _ratio(ours: float, peer: float | None) -> str:
    if peer is None or peer <= 0:
        return "-"
    return f"{ours / peer:.2f}x"


def main(quick: bool = False) -> list[Row]:
    sizes = ((100, 2), (1_000, 2)) if quick else ((100, 5), (1_000, 5), (5_000, 3))
    stream_n, stream_rounds = (50, 2) if quick else (100, 5)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-capture-") as tmp:
        folder = Path(tmp)
        variants = Variants(folder)
        with (
            ModelServer() as server,
            openai.OpenAI(
                base_url=server.openai_base_url, api_key="sk-test", max_retries=0
            ) as client,
            httpx.Client() as plain,
        ):
            install_capture()
            driver = sdk_driver(client)
            if not vcrpy_records(driver, folder):
                driver = httpx_driver(plain, server.openai_base_url)
                if not vcrpy_records(driver, folder):
                    raise RuntimeError("vcrpy records neither httpx2 nor httpx calls here")
            print(f"capture: calls made through {driver.label}", flush=True)
            for variant in VARIANTS:  # warm-up: imports, pools, the SDK's lazy paths
                run_calls(variants, variant, driver.send, 50)
            server.reset()
            results = [measure_size(driver, variants, server, n, r) for n, r in sizes]

        with (
            ModelServer(chunk_delay_s=STREAM_CHUNK_DELAY_S) as server,
            openai.OpenAI(
                base_url=server.openai_base_url, api_key="sk-test", max_retries=0
            ) as client,
            httpx.Client() as plain,
        ):
            driver = (
                sdk_driver(client)
                if driver.via == "SDK"
                else httpx_driver(plain, server.openai_base_url)
            )
            firsts = measure_stream(driver, variants, server, stream_n, stream_rounds)
            print(
                f"  streamed N={stream_n}: first chunk direct {firsts['direct']:.3f}, ours "
                f"{firsts['ours']:.3f}, vcrpy {firsts['vcrpy']:.3f} ms",
                flush=True,
            )

    via = driver.via
    for result in results:
        peer = (
            "skipped (>" + f"{VCR_CAP_S:.0f}s)"
            if result.vcrpy_overhead_ms is None
            else fmt(result.vcrpy_overhead_ms, 3, " ms")
        )
        rows.append(
            Row(
                "capture",
                f"overhead/call over direct, N={result.n:,} ({via}; peer vcrpy)",
                fmt(result.ours_overhead_ms, 3, " ms"),
                peer,
                _ratio(result.ours_overhead_ms, result.vcrpy_overhead_ms),
                f"<= +{TARGET_MS} ms",
                result.ours_overhead_ms <= TARGET_MS,
            )
        )
    middle = results[len(results) // 2]
    rows.append(
        Row(
            "capture",
            f"direct call, no recording, N={middle.n:,} (baseline)",
            fmt(middle.direct_ms, 3, " ms"),
            "-",
            "-",
            "-",
            None,
        )
    )
    first, last = results[0], results[-1]
    ours_flat, ours_met = _flat(first.ours_overhead_ms, last.ours_overhead_ms)
    peer_flat = None
    if first.vcrpy_overhead_ms is not None and last.vcrpy_overhead_ms is not None:
        peer_flat, _ = _flat(first.vcrpy_overhead_ms, last.vcrpy_overhead_ms)
    rows.append(
        Row(
            "capture",
            f"flat in N: overhead at N={last.n:,} / at N={first.n:,}",
            fmt(ours_flat, 2, "x"),
            fmt(peer_flat, 2, "x"),
            "-",
            f"<= {FLAT_RATIO}x or within {FLAT_NOISE_MS} ms",
            ours_met,
        )
    )
    ours_ttft = firsts["ours"] - firsts["direct"]
    peer_ttft = firsts["vcrpy"] - firsts["direct"]
    rows.append(
        Row(
            "capture",
            f"streamed: first-chunk delay over direct ({fmt(firsts['direct'], 2)} ms), "
            f"N={stream_n}",
            fmt(ours_ttft, 3, " ms"),
            fmt(peer_ttft, 3, " ms"),
            _ratio(ours_ttft, peer_ttft),
            f"<= +{TARGET_MS} ms",
            ours_ttft <= TARGET_MS,
        )
    )
    return rows


if __name__ == "__main__":
    _common.cli(__doc__ or "", main)
