"""Replay cost per model call: ``RequestReplay.replay_execution`` against vcrpy and the floor.

What: the wall time of replaying a recording of N distinct chat completions, in ms per call, at
N = 100, 1,000 and 10,000 (``--quick``: 100 and 1,000); whether that stays flat as N grows; and
the time to open the largest recording (load it and build what answers from it).

How: one process, the real ``openai`` SDK (which sends through ``httpx2``), one loopback
:class:`workbench.testing.ModelServer` (no injected latency) for recording only. For each N the
same N calls (distinct prompts of one length, one client reused; :mod:`_replay_pipeline`) are
recorded three times: by workbench, as the ``@workbench.pipeline`` entrypoint
``_replay_pipeline:ask_model`` run inside ``workbench.record`` into a store of its own; by
vcrpy (``record_mode="all"`` into a fresh YAML cassette); and into a dict of raw request body ->
response for the floor. The server is then stopped (its request log emptied first), and each
round runs four variants, in rotating order, each making the same N calls:

* ``ours`` - ``RequestReplay(store=store).replay_execution(recorded_id)``, timed whole: loading
  the recording, re-importing and running the entrypoint (client construction included), and
  recording the replay itself as a new execution (until it is in the store). Each replay is
  checked after its timing (reading it back is not part of replaying): completed, no
  mismatch, N calls answered, the recorded output.
* ``ours_vcrpy_stubs`` - the same replay with ``modifications={"stubs": "vcrpy"}``: vcrpy's
  own stubs patched in, answering from a ``WorkbenchCassette`` (workbench's indexed lookup
  under vcrpy's patching).
* ``vcrpy`` (the peer) - ``with vcr.VCR(record_mode="none", match_on=(..., "body"))
  .use_cassette(path)`` around the same loop with a new client; the cassette load is inside the
  timing, as ours is. Matching on the body is what makes vcrpy answer each request with *its*
  response, as ours does by request key (vcrpy's default matchers ignore the body). vcrpy scans
  every interaction per request, so its total grows with N²: a run whose extrapolation (total
  at the previous N x (N / previous N)²) exceeds ``VCR_CAP_S`` is reported as skipped.
* ``floor`` - the same loop over a client built as the recorded code builds it
  (``openai.OpenAI(base_url=..., api_key=..., max_retries=0)``, so the same SSL context and
  connection pool are set up as in ours and vcrpy's), whose ``httpx2.HTTPTransport`` answers
  from the dict by the raw request body instead of sending: no workbench (capture is
  installed in the process, so its patched send costs one contextvar read), no vcrpy, no
  network.

No network during replays: the server is stopped, so a request that escaped would fail the
replay, and its request log is asserted still empty afterwards.

Open a recording, at the largest N: ours is ``store.get_execution(id, model_calls=False)``,
``store.recorded_responses(id)`` and ``workbench.replay._index.RecordedCalls`` over them (what
``replay_execution`` does before running anything; the full call records are read only on a
miss); the peer is ``vcr.cassette.Cassette.load(path=...)``. The script also
cProfiles one replay at N = 1,000 and prints the functions inside ``workbench/`` with the most
self time (the profiler sees the calling thread only, not the store's writer thread).

Medians over rounds (5 at 100, 3 at 1,000, 2 at 10,000; ``--quick``: 3 and 2).
"""

from __future__ import annotations

import cProfile
import functools
import itertools
import pstats
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import _common
import httpx2
import openai
import vcr
from _common import Row, Timing, fmt, median, rotated, timed
from _replay_pipeline import ask_all, ask_model
from vcr.cassette import Cassette

import workbench
from workbench.replay import ReplayResult, RequestReplay
from workbench.replay._index import RecordedCalls
from workbench.testing import ModelServer

__all__ = ["main"]

TARGET_FLOOR_RATIO = 1.1
FLAT_RATIO = 1.5
FLAT_NOISE_MS = 0.05  # below this, two per-call costs are the same within this machine's noise
VCR_CAP_S = 60.0
VCR_MATCH_ON = ("method", "scheme", "host", "port", "path", "query", "body")
VARIANTS = ("ours", "ours_vcrpy_stubs", "vcrpy", "floor")
PROFILE_N = 1_000
PROFILE_TOP = 8
OPEN_VCR_BUDGET_S = 5.0

# Connection-level headers: MockTransport's response recomputes them.
_HOP_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})
_seeds = itertools.count()
_replays: list[ReplayResult] = []  # ours, timed but not yet checked

Answers = dict[bytes, tuple[int, list[tuple[str, str]], bytes]]


class _TeeTransport(httpx2.BaseTransport):
    """Sends for real and keeps each response by its request's raw body, for the floor."""

    def __init__(self, answers: Answers) -> None:
        self._inner = httpx2.HTTPTransport()
        self._answers = answers

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        response = self._inner.handle_request(request)
        content = response.read()
        headers = [(k, v) for k, v in response.headers.multi_items() if k not in _HOP_HEADERS]
        self._answers[request.content] = (response.status_code, headers, content)
        return httpx2.Response(response.status_code, headers=headers, content=content)

    def close(self) -> None:
        self._inner.close()


@dataclass
class Recording:
    """One N's three recordings of the same calls."""

    n: int
    seed: str
    base_url: str  # of the (by then stopped) server the calls were recorded against
    store: workbench.Store
    execution_id: str
    output: int
    cassette: Path
    answers: Answers = field(default_factory=dict)


def record_all(folder: Path, server: ModelServer, n: int) -> Recording:
    """Record the same ``n`` calls with workbench, with vcrpy, and into the floor's dict."""
    seed = f"s{next(_seeds)}"
    base_url = server.openai_base_url
    store = workbench.Store(folder / f"replay-{n}.db")
    started = time.perf_counter()
    with workbench.record("bench_replay", inputs={}, store=store) as run:
        output = ask_model(base_url, seed, n)
    ours_s = time.perf_counter() - started

    cassette = folder / f"vcrpy-{n}.yaml"
    started = time.perf_counter()
    # Recording with vcrpy's default matchers: with the body matcher, record_mode="all" scans
    # (and difflib-diffs) every earlier interaction per request. The file is the same either way.
    with (
        vcr.VCR(record_mode="all").use_cassette(str(cassette)) as recorded,
        openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0) as client,
    ):
        ask_all(client, seed, n)
        if len(recorded) != n:
            raise RuntimeError(
                f"vcrpy recorded {len(recorded)} of {n} calls made through the openai SDK: "
                f"this vcrpy does not patch httpx2, so it cannot be the peer here"
            )
    vcrpy_s = time.perf_counter() - started

    answers: Answers = {}
    with openai.OpenAI(
        base_url=base_url,
        api_key="sk-test",
        max_retries=0,
        http_client=httpx2.Client(transport=_TeeTransport(answers)),
    ) as client:
        ask_all(client, seed, n)
    if len(answers) != n:
        raise RuntimeError(f"the floor's dict holds {len(answers)} answers for {n} calls")
    print(
        f"  N={n:>6,}: recorded in {ours_s:.1f}s (workbench), {vcrpy_s:.1f}s (vcrpy)",
        flush=True,
    )
    return Recording(n, seed, base_url, store, run.id, output, cassette, answers)


def replay_ours(recording: Recording, stubs: str = "workbench") -> None:
    result = RequestReplay(store=recording.store).replay_execution(
        recording.execution_id, modifications={"stubs": stubs}
    )
    _replays.append(result)


def check_replays(recording: Recording) -> None:
    """Each replay timed so far went right (checked after its timing: reading a replay back
    from the store is not part of replaying it)."""
    for result in _replays:
        problems = []
        if result.status != "completed" or result.mismatches:
            problems.append(f"status {result.status}, {len(result.mismatches)} mismatches")
        if len(result.model_calls) != recording.n or result.output != recording.output:
            problems.append(f"{len(result.model_calls)} calls, output {result.output!r}")
        if problems:
            raise RuntimeError(f"replay of {recording.execution_id} went wrong: {problems}")
    _replays.clear()


def replay_vcrpy(recording: Recording) -> None:
    playback = vcr.VCR(record_mode="none", match_on=VCR_MATCH_ON)
    with (
        playback.use_cassette(str(recording.cassette)),
        openai.OpenAI(base_url=recording.base_url, api_key="sk-test", max_retries=0) as client,
    ):
        ask_all(client, recording.seed, recording.n)


def replay_floor(recording: Recording) -> None:
    answers = recording.answers

    def answer(transport: httpx2.HTTPTransport, request: httpx2.Request) -> httpx2.Response:
        status, headers, content = answers[request.content]
        return httpx2.Response(status, headers=headers, content=content)

    # The client is built exactly as the recorded code builds it (as ours and vcrpy's are):
    # only its transport's answer is swapped for the dict lookup.
    sending = httpx2.HTTPTransport.handle_request
    httpx2.HTTPTransport.handle_request = answer  # type: ignore[method-assign]
    try:
        with openai.OpenAI(base_url=recording.base_url, api_key="sk-test", max_retries=0) as client:
            ask_all(client, recording.seed, recording.n)
    finally:
        httpx2.HTTPTransport.handle_request = sending  # type: ignore[method-assign]


REPLAYS: dict[str, Callable[[Recording], None]] = {
    "ours": replay_ours,
    "ours_vcrpy_stubs": functools.partial(replay_ours, stubs="vcrpy"),
    "vcrpy": replay_vcrpy,
    "floor": replay_floor,
}


@dataclass
class SizeResult:
    n: int
    ms: dict[str, float | None]  # median ms/call per variant; None: vcrpy skipped
    vcrpy_total_s: float | None  # median whole vcrpy run, for the next N's extrapolation
    vcrpy_skip_note: str = ""


def measure_size(recording: Recording, rounds: int, vcrpy_estimate_s: float | None) -> SizeResult:
    n = recording.n
    skip_vcrpy = vcrpy_estimate_s is not None and vcrpy_estimate_s > VCR_CAP_S
    timings: dict[str, list[Timing]] = {name: [] for name in VARIANTS}
    for index in range(rounds):
        for variant in rotated(VARIANTS, index):
            if variant == "vcrpy" and skip_vcrpy:
                continue
            timings[variant].append(timed(functools.partial(REPLAYS[variant], recording)))
            check_replays(recording)

    def per_call(variant: str) -> float | None:
        runs = timings[variant]
        return median(t.wall_s for t in runs) / n * 1e3 if runs else None

    ms = {variant: per_call(variant) for variant in VARIANTS}
    vcrpy_total = median(t.wall_s for t in timings["vcrpy"]) if timings["vcrpy"] else None
    note = f"skipped (>{VCR_CAP_S:.0f} s)" if skip_vcrpy else ""
    estimate = ""
    if skip_vcrpy and vcrpy_estimate_s is not None and vcrpy_estimate_s != float("inf"):
        estimate = f", ~{vcrpy_estimate_s:,.0f} s extrapolated"
    print(
        f"  N={n:>6,}: ms/call ours {fmt(ms['ours'])}, ours through vcrpy's stubs "
        f"{fmt(ms['ours_vcrpy_stubs'])}, floor {fmt(ms['floor'])}, vcrpy "
        f"{fmt(ms['vcrpy']) if not skip_vcrpy else note}{estimate}; {rounds} rounds",
        flush=True,
    )
    return SizeResult(n, ms, vcrpy_total, note)


@dataclass
class OpenResult:
    n: int
    ours_s: float
    load_s: float  # of which store.get_execution
    vcrpy_s: float | None


def measure_open(recording: Recording, rounds: int) -> OpenResult:
    """Loading the recording and indexing its calls, ours against vcrpy's ``Cassette.load``
    (run again only while its loads so far took under ``OPEN_VCR_BUDGET_S``)."""
    ours: list[float] = []
    loads: list[float] = []
    vcrpy: list[float] = []
    for index in range(rounds):
        for variant in rotated(("ours", "vcrpy"), index):
            if variant == "ours":
                started = time.perf_counter()
                store, execution_id = recording.store, recording.execution_id
                store.get_execution(execution_id, model_calls=False)
                responses = store.recorded_responses(execution_id)
                loaded = time.perf_counter()
                index_ = RecordedCalls(responses, list)  # full calls: read only on a miss
                ours.append(time.perf_counter() - started)
                loads.append(loaded - started)
                assert len(index_) == recording.n
            elif sum(vcrpy) < OPEN_VCR_BUDGET_S:
                started = time.perf_counter()
                cassette = Cassette.load(path=str(recording.cassette), match_on=VCR_MATCH_ON)
                vcrpy.append(time.perf_counter() - started)
                assert len(cassette) == recording.n
    result = OpenResult(recording.n, median(ours), median(loads), median(vcrpy) if vcrpy else None)
    print(
        f"  open N={recording.n:,}: ours {result.ours_s * 1e3:.1f} ms (get_execution "
        f"{result.load_s * 1e3:.1f} ms + index), vcrpy Cassette.load {fmt(result.vcrpy_s, 2)} s",
        flush=True,
    )
    return result


def profile_replay(recording: Recording) -> None:
    """Print the functions inside ``workbench/`` with the most self time in one replay."""
    profiler = cProfile.Profile()
    profiler.runcall(replay_ours, recording)
    check_replays(recording)
    stats = pstats.Stats(profiler)
    total = sum(row[2] for row in stats.stats.values())  # type: ignore[attr-defined]
    ours = [
        (tottime, calls, f"{Path(file).relative_to(_common.ROOT)}:{line}({name})")
        for (file, line, name), (_, calls, tottime, _, _) in stats.stats.items()  # type: ignore[attr-defined]
        if file.startswith(str(_common.ROOT / "workbench"))
    ]
    ours.sort(reverse=True)
    inside = sum(t for t, _, _ in ours)
    print(
        f"  profile of one replay at N={recording.n:,}: {total:.2f} s profiled self time, "
        f"{inside:.2f} s of it inside workbench/; top self time there:",
        flush=True,
    )
    for tottime, calls, where in ours[:PROFILE_TOP]:
        print(f"    {tottime * 1e3:8.1f} ms {calls:>7,} calls  {where}", flush=True)


def _ratio(ours: float | None, peer: float | None) -> str:
    if ours is None or peer is None or peer <= 0:
        return "-"
    return f"{ours / peer:.2f}x"


def _rows(results: list[SizeResult], opened: OpenResult) -> list[Row]:
    rows: list[Row] = []
    for result in results:
        ours, floor, vcrpy = result.ms["ours"], result.ms["floor"], result.ms["vcrpy"]
        assert ours is not None and floor is not None
        rows.append(
            Row(
                "replay",
                f"replay/call, N={result.n:,} (openai SDK; peer the floor: transport + dict)",
                fmt(ours, 3, " ms"),
                fmt(floor, 3, " ms"),
                _ratio(ours, floor),
                f"<= {TARGET_FLOOR_RATIO}x",
                ours / floor <= TARGET_FLOOR_RATIO,
            )
        )
        stubbed = result.ms["ours_vcrpy_stubs"]
        assert stubbed is not None
        rows.append(
            Row(
                "replay",
                f"replay/call through vcrpy's stubs, N={result.n:,} (peer the floor)",
                fmt(stubbed, 3, " ms"),
                fmt(floor, 3, " ms"),
                _ratio(stubbed, floor),
                "-",
                None,
            )
        )
        rows.append(
            Row(
                "replay",
                f"replay/call, N={result.n:,} (peer vcrpy, body matcher)",
                fmt(ours, 3, " ms"),
                result.vcrpy_skip_note or fmt(vcrpy, 3, " ms"),
                _ratio(ours, vcrpy),
                "-",
                None,
            )
        )
    first, last = results[0], results[-1]
    small, large = first.ms["ours"], last.ms["ours"]
    assert small is not None and large is not None
    ratio = large / small
    peer_small, peer_large = first.ms["vcrpy"], last.ms["vcrpy"]
    peer_flat = peer_large / peer_small if peer_small and peer_large else None
    rows.append(
        Row(
            "replay",
            f"flat in N: ms/call at N={last.n:,} / at N={first.n:,}",
            fmt(ratio, 2, "x"),
            fmt(peer_flat, 2, "x"),
            "-",
            f"<= {FLAT_RATIO}x or within {FLAT_NOISE_MS} ms",
            ratio <= FLAT_RATIO or abs(large - small) <= FLAT_NOISE_MS,
        )
    )
    rows.append(
        Row(
            "replay",
            f"open a recording of N={opened.n:,} (responses + index; peer Cassette.load)",
            fmt(opened.ours_s, 3, " s"),
            fmt(opened.vcrpy_s, 3, " s"),
            _ratio(opened.ours_s, opened.vcrpy_s),
            "-",
            None,
        )
    )
    return rows


def main(quick: bool = False) -> list[Row]:
    sizes = ((100, 3), (1_000, 2)) if quick else ((100, 5), (1_000, 3), (10_000, 2))
    results: list[SizeResult] = []
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        folder = Path(tmp)
        with ModelServer() as server:
            recordings = [record_all(folder, server, n) for n, _ in sizes]
            warm = record_all(folder, server, 20)
            server.reset()
        assert not server.running
        print(f"replay: calls made through the openai SDK {openai.__version__}", flush=True)
        try:
            for variant in VARIANTS:  # warm-up: imports, the SDK's lazy paths
                REPLAYS[variant](warm)
            check_replays(warm)
            previous: SizeResult | None = None
            for recording, (n, rounds) in zip(recordings, sizes, strict=True):
                estimate = None
                if previous is not None and previous.vcrpy_total_s is not None:
                    estimate = previous.vcrpy_total_s * (n / previous.n) ** 2
                elif previous is not None:
                    estimate = float("inf")  # skipped at a smaller N already
                previous = measure_size(recording, rounds, estimate)
                results.append(previous)
            largest = recordings[-1]
            opened = measure_open(largest, 3)
            profiled = next(r for r in recordings if r.n == PROFILE_N)
            profile_replay(profiled)
            # The server was stopped before the first replay; nothing may have reached it.
            assert server.request_count == 0, "a replay sent a request to the model server"
        finally:
            for recording in [*recordings, warm]:
                recording.store.close()
    return _rows(results, opened)


if __name__ == "__main__":
    _common.cli(__doc__ or "", main)
