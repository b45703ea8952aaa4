"""The recorder API: executions, steps, spans, states, logs and contextvar attribution."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

import workbench
from workbench.exceptions import RecordingError
from workbench.store import Store


def test_completed_execution_records_inputs_outputs_and_status(any_store: Store) -> None:
    """A block that ends normally is completed and successful, with inputs and outputs kept."""
    store = any_store
    with workbench.record(
        "p",
        inputs={"topic": "llamas"},
        user_id="u1",
        environment="test",
        metadata={"team": "a"},
        store=store,
    ) as run:
        run.outputs = {"answer": 42}
    got = store.get_execution(run.id)
    assert (got.status, got.success) == ("completed", True)
    assert got.inputs == {"topic": "llamas"}
    assert got.outputs == {"answer": 42}
    assert (got.user_id, got.environment, got.metadata) == ("u1", "test", {"team": "a"})
    assert got.duration_s is not None and got.duration_s >= 0
    assert got.spans[0].kind == "execution" and got.spans[0].trace_id == got.trace_id


def test_status_is_kept_apart_from_success(store: Store) -> None:
    """A run can complete and still be judged unsuccessful by the user."""
    with workbench.record("p", inputs={}, store=store) as run:
        run.success = False
    got = store.get_execution(run.id)
    assert (got.status, got.success) == ("completed", False)


def test_failed_execution_records_the_error_and_reraises(store: Store) -> None:
    """An exception fails the execution with type, message and traceback, and still propagates."""
    with pytest.raises(KeyError), workbench.record("p", inputs={}, store=store) as run:
        {}["missing"]
    got = store.get_execution(run.id)
    assert (got.status, got.success) == ("failed", False)
    assert got.error is not None and got.error.type == "KeyError"
    assert "missing" in got.error.message and "Traceback" in got.error.traceback


def test_async_record(store: Store) -> None:
    """`async with workbench.record(...)` records like the sync form."""

    async def main() -> str:
        async with workbench.record("p", inputs={}, store=store) as run:
            await asyncio.sleep(0)
            return run.id

    assert store.get_execution(asyncio.run(main())).status == "completed"


def test_step_records_parameters_result_and_timing(any_store: Store) -> None:
    """A decorated step keeps its bound arguments (defaults included), its result and timings."""
    store = any_store

    @workbench.step("fetch")
    def fetch(url: str, retries: int = 3) -> dict[str, str]:
        return {"url": url}

    with workbench.record("p", inputs={}, store=store) as run:
        assert fetch("http://x") == {"url": "http://x"}
    (step,) = store.get_execution(run.id).steps
    assert (step.step_id, step.occurrence, step.status) == ("fetch", 0, "completed")
    assert step.parameters == {"url": "http://x", "retries": 3}
    assert step.result == {"url": "http://x"}
    assert step.duration_s is not None and step.ended_at is not None


def test_bare_step_decorator_uses_the_function_name(store: Store) -> None:
    """`@workbench.step` without arguments names the step after the function."""

    @workbench.step
    def tokenize(text: str) -> list[str]:
        return text.split()

    with workbench.record("p", inputs={}, store=store) as run:
        tokenize("a b")
    assert [s.step_id for s in store.get_execution(run.id).steps] == ["tokenize"]


def test_step_error_is_recorded_then_reraised(store: Store) -> None:
    """A failing step records type, message and traceback, and the exception still propagates."""

    @workbench.step("parse")
    def parse() -> None:
        raise ValueError("bad json")

    with (
        pytest.raises(ValueError, match="bad json"),
        workbench.record("p", inputs={}, store=store) as run,
    ):
        parse()
    got = store.get_execution(run.id)
    (step,) = got.steps
    assert step.status == "failed"
    assert step.error is not None and step.error.type == "ValueError"
    assert step.error.message == "bad json" and "in parse" in step.error.traceback
    assert got.status == "failed"


def test_step_retries_are_counted(store: Store) -> None:
    """retries=N re-runs a failing step and records how many retries it took."""
    attempts = []

    @workbench.step("flaky", retries=3)
    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("try again")
        return "ok"

    with workbench.record("p", inputs={}, store=store) as run:
        assert flaky() == "ok"
    (step,) = store.get_execution(run.id).steps
    assert (step.retries, step.status, step.result) == (2, "completed", "ok")
    (span,) = [s for s in store.get_execution(run.id).spans if s.kind == "step"]
    assert [e["attempt"] for e in span.events] == [1, 2]


def test_repeated_steps_get_occurrences(store: Store) -> None:
    """Running the same step in a loop numbers its occurrences 0, 1, 2."""
    with workbench.record("p", inputs={}, store=store) as run:
        for i in range(3):
            with workbench.step("loop") as step:
                step.set_result(i)
    steps = store.get_execution(run.id).steps
    assert [(s.occurrence, s.result) for s in steps] == [(0, 0), (1, 1), (2, 2)]


def test_nested_steps_know_their_parent(store: Store) -> None:
    """A step inside a step records the outer one as its parent, and its span as parent span."""
    with workbench.record("p", inputs={}, store=store) as run:
        with workbench.step("outer"), workbench.step("inner"):
            pass
    got = store.get_execution(run.id)
    inner = next(s for s in got.steps if s.step_id == "inner")
    outer = next(s for s in got.steps if s.step_id == "outer")
    assert inner.parent_step_id == "outer"
    spans = {s.span_id: s for s in got.spans}
    assert spans[inner.span_id].parent_span_id == outer.span_id


def test_async_step(store: Store) -> None:
    """An async step records its awaited result."""

    @workbench.step("embed")
    async def embed(text: str) -> list[float]:
        await asyncio.sleep(0)
        return [0.5, float(len(text))]

    async def main() -> str:
        async with workbench.record("p", inputs={}, store=store) as run:
            await embed("abc")
            return run.id

    (step,) = store.get_execution(asyncio.run(main())).steps
    assert step.result == [0.5, 3.0]


def test_generator_step_records_items_and_only_its_own_work(store: Store) -> None:
    """A generator step records what it yielded; the consumer's work between items is not in it."""

    @workbench.step("chunks")
    def chunks() -> Iterator[int]:
        yield 1
        workbench.state("inside", True)
        yield 2

    with workbench.record("p", inputs={}, store=store) as run:
        for _ in chunks():
            workbench.state("consumer", True)
    got = store.get_execution(run.id)
    assert got.steps[0].result == [1, 2]
    assert {s.name: s.step_id for s in got.states} == {"inside": "chunks", "consumer": None}


def test_async_generator_step(store: Store) -> None:
    """An async generator step records what it yielded."""

    @workbench.step("stream")
    async def stream() -> AsyncIterator[str]:
        for token in ("a", "b"):
            await asyncio.sleep(0)
            yield token

    async def main() -> str:
        async with workbench.record("p", inputs={}, store=store) as run:
            assert [t async for t in stream()] == ["a", "b"]
            return run.id

    assert store.get_execution(asyncio.run(main())).steps[0].result == ["a", "b"]


def test_steps_outside_an_execution_run_unrecorded(store: Store) -> None:
    """Outside any execution a decorated step (sync, async, generator, async generator) is
    just its function: same result, its retries, its exception; a span and a state record
    nothing; and nothing reaches the store."""
    attempts: list[int] = []

    @workbench.step("lonely", retries=1, backoff_s=0)
    def lonely(x: int) -> int:
        attempts.append(x)
        if len(attempts) == 1:
            raise RuntimeError("first attempt")
        return x * 2

    @workbench.step("alone")
    async def alone(x: int) -> int:
        return x + 1

    @workbench.step("items")
    def items(n: int) -> Iterator[int]:
        got = yield 0
        yield from range(1, n + (got or 0))

    @workbench.step("aitems")
    async def aitems(n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    @workbench.step("broken")
    def broken() -> None:
        raise KeyError("k")

    async def collect() -> list[int]:
        return [i async for i in aitems(3)]

    assert lonely(21) == 42 and attempts == [21, 21]
    assert asyncio.run(alone(1)) == 2
    generator = items(3)
    assert next(generator) == 0 and generator.send(1) == 1 and list(generator) == [2, 3]
    assert asyncio.run(collect()) == [0, 1, 2]
    with pytest.raises(KeyError):
        broken()
    with workbench.span("s", k=1) as span:
        span.set_attribute("more", 2)
    assert workbench.state("x", 1) == ""
    assert store.stats()["executions"] == 0


def test_a_step_block_outside_an_execution_says_why_it_needs_one() -> None:
    """A `with workbench.step(...)` block has no run to belong to: RecordingError naming the
    step, why, and both ways out."""
    with pytest.raises(RecordingError, match=r"step\('lonely'\).*outside an execution") as info:
        with workbench.step("lonely"):
            pass
    assert "workbench.record" in str(info.value) and "@workbench.step" in str(info.value)


def test_span_attributes_events_and_errors(store: Store) -> None:
    """A span keeps attributes, events and an exception event, parented to the current step."""
    with workbench.record("p", inputs={}, store=store) as run, workbench.step("rank"):
        with workbench.span("rerank", k=5) as span:
            span.add_event("cache_miss", key="q1")
        with pytest.raises(RuntimeError), workbench.span("boom"):
            raise RuntimeError("x")
    spans = {s.name: s for s in store.get_execution(run.id).spans}
    assert spans["rerank"].attributes == {"k": 5}
    assert spans["rerank"].events[0]["name"] == "cache_miss"
    assert spans["rerank"].parent_span_id == spans["rank"].span_id
    assert spans["boom"].status == "error"
    assert spans["boom"].events[0]["exception.type"] == "RuntimeError"


def test_state_is_recorded_as_it_was(store: Store) -> None:
    """A state mutated after recording keeps the value it had when recorded."""
    docs = ["a"]
    with workbench.record("p", inputs={}, store=store) as run:
        workbench.state("docs", docs)
        docs.append("b")
        workbench.state("docs", docs)
    assert [s.value for s in store.get_execution(run.id).states] == [["a"], ["a", "b"]]


def test_logging_inside_an_execution_is_captured_with_ids(any_store: Store) -> None:
    """Standard logging records land on the execution with trace, span and step ids and extras."""
    store = any_store
    logger = logging.getLogger("app.test")
    logger.setLevel(logging.INFO)
    logger.info("before any execution")
    with workbench.record("p", inputs={}, store=store) as run, workbench.step("s"):
        logger.info("hello %s", "world", extra={"doc_id": 7, "password": "hunter2"})
    got = store.get_execution(run.id)
    (log,) = [record for record in got.logs if record.logger == "app.test"]
    assert (log.message, log.level, log.step_id) == ("hello world", "INFO", "s")
    assert log.trace_id == got.trace_id and log.span_id == got.steps[0].span_id
    assert log.fields == {"doc_id": 7, "password": "[REDACTED]"}


def test_secrets_in_parameters_and_states_are_redacted(any_store: Store) -> None:
    """Values under sensitive names are redacted in step parameters and states before writing."""
    store = any_store

    @workbench.step("call")
    def call(prompt: str, api_key: str) -> None:
        workbench.state("config", {"nested": {"Authorization": "Bearer abc"}})

    with workbench.record("p", inputs={}, store=store) as run:
        call("hi", api_key="sk-live-123")
    got = store.get_execution(run.id)
    assert got.steps[0].parameters == {"prompt": "hi", "api_key": "[REDACTED]"}
    assert got.states[0].value == {"nested": {"Authorization": "[REDACTED]"}}


def test_pipeline_outside_an_execution_starts_one(store: Store) -> None:
    """A @pipeline called on its own records an execution named after it, inputs and output."""

    @workbench.pipeline(store=store)
    def summarise(text: str, limit: int = 10) -> str:
        return text[:limit]

    assert summarise("hello world", limit=5) == "hello"
    (got,) = store.list_executions(pipeline_id="summarise")
    assert got.inputs == {"text": "hello world", "limit": 5}
    assert got.outputs == "hello"
    assert (
        got.entrypoint
        == f"{__name__}:test_pipeline_outside_an_execution_starts_one.<locals>.summarise"
    )


def test_pipeline_inside_record_marks_that_execution(store: Store) -> None:
    """Called inside record(...), @pipeline marks the entrypoint on that execution."""

    @workbench.pipeline
    async def research(topic: str) -> str:
        return topic.upper()

    async def main() -> str:
        async with workbench.record("research", inputs={"topic": "x"}, store=store) as run:
            await research("x")
            return run.id

    got = store.get_execution(asyncio.run(main()))
    assert got.entrypoint is not None and got.entrypoint.endswith("research")
    assert got.outputs == "X"
    assert got.metadata["entrypoint_arguments"] == {"topic": "x"}


def test_gathered_tasks_land_on_their_own_steps(any_store: Store) -> None:
    """Work in asyncio.gather and create_task is attributed to the step that started it."""
    store = any_store

    async def work(name: str) -> None:
        async with workbench.step(name):
            await asyncio.sleep(0.01)
            workbench.state("who", name)

    async def main() -> str:
        async with workbench.record("p", inputs={}, store=store) as run:
            task = asyncio.create_task(work("t0"))
            await asyncio.gather(*(work(f"g{i}") for i in range(5)))
            await task
            return run.id

    got = store.get_execution(asyncio.run(main()))
    assert {s.step_id: s.value for s in got.states} == {
        n: n for n in ["t0", "g0", "g1", "g2", "g3", "g4"]
    }


def test_threads_with_copied_context_land_on_the_right_execution(any_store: Store) -> None:
    """Two concurrent executions each get exactly their own states from their thread pools."""
    store = any_store

    def work(tag: str, i: int) -> None:
        workbench.state("item", f"{tag}-{i}")

    def run_one(tag: str) -> str:
        with workbench.record(tag, inputs={}, store=store) as run, ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(contextvars.copy_context().run, work, tag, i) for i in range(10)]
            futures += [pool.submit(workbench.carry_context(work), tag, i + 10) for i in range(10)]
            for future in futures:
                future.result()
        return run.id

    results: dict[str, str] = {}
    threads = [
        threading.Thread(target=lambda t=t: results.__setitem__(t, run_one(t))) for t in ("a", "b")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for tag, execution_id in results.items():
        values = sorted(s.value for s in store.get_execution(execution_id).states)
        assert values == sorted(f"{tag}-{i}" for i in range(20))


def test_thread_without_context_is_not_attributed(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A plain thread does not inherit the execution: its step runs unrecorded, with one
    warning naming the step and workbench.carry_context."""

    @workbench.step("threaded")
    def threaded() -> int:
        return 1

    results: list[int] = []
    with workbench.record("p", inputs={}, store=store) as run:
        threads = [threading.Thread(target=lambda: results.append(threaded())) for _ in "ab"]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert results == [1, 1] and store.get_execution(run.id).steps == []
    warned = [r.getMessage() for r in caplog.records if "'threaded'" in r.getMessage()]
    assert len(warned) == 1 and "carry_context" in warned[0]


def test_bad_pipeline_id_is_refused(store: Store) -> None:
    """An empty pipeline id is refused with RecordingError before anything is written."""
    with (
        pytest.raises(RecordingError, match="pipeline_id"),
        workbench.record("", inputs={}, store=store),
    ):
        pass
    assert store.list_executions() == []


def test_pipeline_version_marks_an_outer_execution(store: Store) -> None:
    """@pipeline(version=...) called inside record(...) sets the execution's pipeline version."""

    @workbench.pipeline(version="7")
    def answer() -> int:
        return 42

    with workbench.record("outer", inputs={}, store=store) as run:
        answer()
    assert store.get_execution(run.id).pipeline_version == "7"


def test_span_attributes_are_recorded_as_they_were(store: Store) -> None:
    """A list passed as a span attribute and changed after the span ends keeps its old value."""
    docs = ["a"]
    with workbench.record("p", inputs={}, store=store) as run:
        with workbench.span("retrieve", docs=docs):
            pass
        docs.append("b")
    (span,) = [s for s in store.get_execution(run.id).spans if s.name == "retrieve"]
    assert span.attributes == {"docs": ["a"]}


def test_a_flood_of_spans_is_all_stored(any_store: Store) -> None:
    """Tens of thousands of spans in a tight loop are all written by the execution's end."""
    store = any_store
    with workbench.record("p", inputs={}, store=store) as run:
        for i in range(30_000):
            with workbench.span("tick", i=i):
                pass
    spans = [s for s in store.get_execution(run.id).spans if s.name == "tick"]
    assert sorted(s.attributes["i"] for s in spans) == list(range(30_000))


def test_one_step_object_shared_by_concurrent_tasks(store: Store) -> None:
    """A module-level step object entered by gathered tasks finishes each task's own step."""
    ask = workbench.step("ask")

    async def task(n: int) -> None:
        async with ask as active:
            await asyncio.sleep(0.02 if n == 0 else 0.01)
            if n == 1:
                raise ValueError("task 1 failed")
            active.set_result(n)

    async def main() -> str:
        async with workbench.record("p", inputs={}, store=store) as run:
            await asyncio.gather(task(0), task(1), return_exceptions=True)
            return run.id

    steps = store.get_execution(asyncio.run(main())).steps
    by_result = {(s.status, s.result, s.error.message if s.error else None) for s in steps}
    assert by_result == {("completed", 0, None), ("failed", None, "task 1 failed")}


def test_generator_step_forwards_thrown_exceptions(store: Store) -> None:
    """throw() reaches the step's generator body, whose handler runs and whose step finishes."""
    handled = []

    @workbench.step("gen")
    def gen() -> Iterator[int]:
        try:
            yield 1
            yield 2
        except KeyError:
            handled.append(True)
            yield 99

    with workbench.record("p", inputs={}, store=store) as run:
        g = gen()
        assert next(g) == 1
        assert g.throw(KeyError("x")) == 99
        g.close()
    (step,) = store.get_execution(run.id).steps
    assert handled == [True]
    assert (step.status, step.result) == ("completed", [1, 99])


def test_pipeline_refuses_generator_functions() -> None:
    """@pipeline on a generator function is refused with the fix, not recorded half-way."""
    with pytest.raises(RecordingError, match="generator function"):

        @workbench.pipeline
        def stream() -> Iterator[int]:
            yield 1


def test_recording_leaves_the_applications_logging_alone(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    """After recording, an unconfigured warning still reaches stderr through logging.lastResort."""
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers.clear()  # an application that never configured logging
    try:
        with workbench.record("p", inputs={}, store=store) as run:
            logging.getLogger("app.plain").warning("disk almost full")
        assert root.handlers == []
        assert "disk almost full" in capsys.readouterr().err
    finally:
        root.handlers[:] = saved
    assert [r.message for r in store.get_execution(run.id).logs] == ["disk almost full"]


def test_unrecordable_values_do_not_break_the_step(store: Store) -> None:
    """A circular argument and a raising __repr__ are recorded as placeholders; the step runs."""

    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("no repr for you")

    loop: dict[str, object] = {}
    loop["self"] = loop

    @workbench.step("odd")
    def odd(a: object, b: object) -> str:
        return "ran"

    with workbench.record("p", inputs={}, store=store) as run:
        assert odd(loop, Hostile()) == "ran"
    (step,) = store.get_execution(run.id).steps
    assert step.result == "ran" and "unrecordable" in str(step.parameters)


def test_request_occurrences_are_exact_under_threads(store: Store) -> None:
    """Identical requests numbered from many threads get each occurrence exactly once."""
    with workbench.record("p", inputs={}, store=store) as run:
        with ThreadPoolExecutor(8) as pool:
            numbers = list(pool.map(lambda _: run.next_request_occurrence("k"), range(2_000)))
    assert sorted(numbers) == list(range(2_000))


def test_retries_on_a_generator_step_are_refused() -> None:
    """retries= on a generator step is refused at decoration, with what to do instead."""
    with pytest.raises(RecordingError, match="cannot re-run the generator function"):

        @workbench.step("items", retries=2)
        def items() -> Iterator[int]:
            yield 1


def test_retries_on_a_with_block_are_refused(store: Store) -> None:
    """retries= on a `with` step is refused: a block cannot be re-run."""
    with workbench.record("p", inputs={}, store=store):
        with pytest.raises(RecordingError, match="not on a `with` block"):
            with workbench.step("block", retries=1):
                pass
