"""Model-call capture at the HTTP layer, with the real openai and anthropic SDKs over loopback."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from pathlib import Path

import aiohttp
import anthropic
import genai_prices
import httpx
import httpx2
import openai
import pytest
import requests

import workbench
from workbench.records import ModelCall
from workbench.store import Store
from workbench.testing import ModelServer

KEY = "sk-test-capture-0123456789abcdef"
MESSAGES = [{"role": "user", "content": "Tell me about llamas"}]


def _openai(server: ModelServer, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=server.openai_base_url, api_key=KEY, max_retries=0, default_headers=headers or None
    )


def _anthropic(server: ModelServer, **headers: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=server.anthropic_base_url,
        api_key=KEY,
        max_retries=0,
        default_headers=headers or None,
    )


def _calls(store: Store, execution_id: str) -> list[ModelCall]:
    return store.get_execution(execution_id).model_calls


def test_openai_chat_call_is_captured_with_tokens_and_cost(
    store: Store, model_server: ModelServer
) -> None:
    """An OpenAI SDK call inside an execution is one ModelCall with usage, cost and text."""
    client = _openai(model_server)
    with workbench.record("p", inputs={}, store=store) as run, workbench.step("ask"):
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    (call,) = _calls(store, run.id)
    usage = reply.usage
    assert usage is not None
    assert (call.provider, call.model, call.operation) == ("openai", reply.model, "chat")
    assert (call.input_tokens, call.output_tokens) == (usage.prompt_tokens, usage.completion_tokens)
    assert call.tokens_estimated is False
    assert call.text == reply.choices[0].message.content
    assert call.finish_reason == "stop" and call.status_code == 200
    assert (call.step_id, call.step_occurrence) == ("ask", 0)
    # The session's server remembers prompts: a test that sent this one before makes part of it
    # a cache read, which is priced at the cache rate.
    cached = usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else 0
    assert call.cache_read_tokens == (cached or 0)
    expected = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=usage.prompt_tokens,
            output_tokens=usage.completion_tokens,
            cache_read_tokens=cached or 0,
        ),
        "gpt-4o-mini",
        provider_id="openai",
    ).total_price
    assert call.cost_usd == pytest.approx(float(expected))
    assert call.request["body"]["messages"] == MESSAGES
    got = store.get_execution(run.id)
    assert got.tokens_in == usage.prompt_tokens and got.cost_usd == pytest.approx(call.cost_usd)


def test_openai_stream_keeps_every_chunk_and_the_assembled_message(
    store: Store, model_server: ModelServer
) -> None:
    """A streamed call records each SSE chunk with its offset, usage and the assembled text."""
    client = _openai(model_server)
    with workbench.record("p", inputs={}, store=store) as run:
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    (call,) = _calls(store, run.id)
    assert call.streamed and call.text == text
    assert len(call.chunks) > 2
    offsets = [c.offset_s for c in call.chunks]
    assert offsets == sorted(offsets)
    assert call.ttft_s == pytest.approx(offsets[0], abs=1e-5)
    assert call.latency_s is not None and call.latency_s >= offsets[-1]
    assert call.stream_error is None
    assert b"data: [DONE]" in call.body
    events = call.sse_events()
    assert events[-1][2] == "[DONE]" and len(events) >= len(call.chunks)
    assert [offset for offset, _, _ in events] == sorted(offset for offset, _, _ in events)
    assert call.output_tokens is not None and not call.tokens_estimated
    assert call.response["choices"][0]["message"]["content"] == text


def test_anthropic_sync_async_and_stream_are_captured(
    store: Store, model_server: ModelServer
) -> None:
    """The anthropic SDK's sync, async and streamed calls are all captured with usage."""
    client = _anthropic(model_server)

    async def main() -> str:
        async with (
            anthropic.AsyncAnthropic(
                base_url=model_server.anthropic_base_url, api_key=KEY, max_retries=0
            ) as aclient,
            workbench.record("p", inputs={}, store=store) as run,
        ):
            client.messages.create(
                model="claude-3-5-haiku-latest", max_tokens=50, messages=MESSAGES
            )
            await aclient.messages.create(
                model="claude-3-5-haiku-latest",
                max_tokens=50,
                messages=[{"role": "user", "content": "async"}],
            )
            async with aclient.messages.stream(
                model="claude-3-5-haiku-latest",
                max_tokens=50,
                messages=[{"role": "user", "content": "streamed"}],
            ) as stream:
                await stream.get_final_message()
            return run.id

    calls = _calls(store, asyncio.run(main()))
    assert [c.provider for c in calls] == ["anthropic"] * 3
    assert [c.streamed for c in calls] == [False, False, True]
    assert all(c.input_tokens and c.output_tokens for c in calls)
    assert all(c.finish_reason == "end_turn" for c in calls)
    assert all(c.cost_usd is not None and c.cost_usd > 0 for c in calls)


def test_anthropic_cache_tokens_follow_otel_semantics(
    store: Store, model_server: ModelServer
) -> None:
    """Input tokens include cache reads and writes, which are also reported on their own."""
    client = _anthropic(model_server)
    system = [
        {"type": "text", "text": "You are terse. " * 50, "cache_control": {"type": "ephemeral"}}
    ]
    with workbench.record("p", inputs={}, store=store) as run:
        first = client.messages.create(
            model="claude-3-5-haiku-latest", max_tokens=20, system=system, messages=MESSAGES
        )  # type: ignore[arg-type]
        second = client.messages.create(
            model="claude-3-5-haiku-latest", max_tokens=20, system=system, messages=MESSAGES
        )  # type: ignore[arg-type]
    a, b = _calls(store, run.id)
    assert a.cache_write_tokens == first.usage.cache_creation_input_tokens
    assert b.cache_read_tokens == second.usage.cache_read_input_tokens
    assert b.cache_read_tokens
    assert b.input_tokens == second.usage.input_tokens + b.cache_read_tokens
    assert (a.request_key, a.occurrence, b.occurrence) == (b.request_key, 0, 1)


def test_async_openai_and_httpx_clients_are_captured(
    store: Store, model_server: ModelServer
) -> None:
    """The async openai SDK (httpx2) and plain httpx and httpx2 clients are all captured."""
    body = {"model": "gpt-4o-mini", "messages": MESSAGES}
    url = f"{model_server.openai_base_url}/chat/completions"

    async def main() -> str:
        async with (
            openai.AsyncOpenAI(
                base_url=model_server.openai_base_url, api_key=KEY, max_retries=0
            ) as aclient,
            workbench.record("p", inputs={}, store=store) as run,
        ):
            await aclient.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            async with httpx.AsyncClient() as h1:
                (await h1.post(url, json=body)).raise_for_status()
            with httpx.Client() as h2:
                h2.post(url, json=body).raise_for_status()
            with httpx2.Client() as h3:
                h3.post(url, json=body).raise_for_status()
            return run.id

    calls = _calls(store, asyncio.run(main()))
    assert len(calls) == 4
    assert {c.provider for c in calls} == {"openai"}
    assert [c.occurrence for c in calls] == [0, 1, 2, 3]  # the same request four times


def test_requests_and_aiohttp_are_captured(store: Store, model_server: ModelServer) -> None:
    """Calls made with requests and aiohttp, streamed or not, are captured with their bodies."""
    url = f"{model_server.openai_base_url}/chat/completions"
    body = {"model": "gpt-4o-mini", "messages": MESSAGES}

    async def with_aiohttp() -> None:
        async with aiohttp.ClientSession() as session:
            async with session.post(url, json=body) as response:
                await response.json()
            async with session.post(url, json={**body, "stream": True}) as response:
                async for _ in response.content:
                    pass

    with workbench.record("p", inputs={}, store=store) as run:
        assert requests.post(url, json=body, timeout=10).json()["object"] == "chat.completion"
        with requests.post(url, json={**body, "stream": True}, stream=True, timeout=10) as r:
            lines = list(r.iter_lines())
        asyncio.run(with_aiohttp())
    calls = _calls(store, run.id)
    assert len(calls) == 4
    assert [c.streamed for c in calls] == [False, True, False, True]
    assert all(c.output_tokens for c in calls if not c.streamed)
    assert calls[1].text and calls[3].text == calls[1].text
    assert b"data: [DONE]" in b"\n".join(lines) and b"data: [DONE]" in calls[1].body


def test_calls_outside_an_execution_are_not_recorded(
    store: Store, model_server: ModelServer
) -> None:
    """A call made when no execution is running leaves nothing in the store."""
    client = _openai(model_server)
    with workbench.record("p", inputs={}, store=store):
        pass
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert store.stats()["model_calls"] == 0


def test_concurrent_executions_get_exactly_their_own_calls(
    store: Store, model_server: ModelServer
) -> None:
    """Executions in threads and in asyncio tasks each record only the calls they made."""
    client = _openai(model_server)
    ids: dict[str, str] = {}

    def in_thread(tag: str) -> None:
        with workbench.record(tag, inputs={}, store=store) as run:
            for i in range(5):
                client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": f"{tag} {i}"}]
                )
        ids[tag] = run.id

    async def in_task(aclient: openai.AsyncOpenAI, tag: str) -> None:
        async with workbench.record(tag, inputs={}, store=store) as run:
            for i in range(5):
                await aclient.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": f"{tag} {i}"}]
                )
        ids[tag] = run.id

    async def tasks() -> None:
        async with openai.AsyncOpenAI(
            base_url=model_server.openai_base_url, api_key=KEY, max_retries=0
        ) as aclient:
            await asyncio.gather(*(in_task(aclient, f"task{i}") for i in range(3)))

    threads = [threading.Thread(target=in_thread, args=(f"thread{i}",)) for i in range(3)]
    threads.append(threading.Thread(target=lambda: asyncio.run(tasks())))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == 6
    for tag, execution_id in ids.items():
        prompts = sorted(
            c.request["body"]["messages"][0]["content"] for c in _calls(store, execution_id)
        )
        assert prompts == [f"{tag} {i}" for i in range(5)]


def test_provider_errors_are_the_sdks_own_and_recorded(
    store: Store, model_server: ModelServer
) -> None:
    """A 429 and a 500 raise the SDK's own errors and are recorded on the call and the step."""
    with workbench.record("p", inputs={}, store=store) as run:
        with pytest.raises(openai.RateLimitError), workbench.step("limited"):
            _openai(model_server, **{"x-workbench-fault": "429"}).chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES
            )
        with pytest.raises(anthropic.InternalServerError), workbench.step("broken"):
            _anthropic(model_server, **{"x-workbench-fault": "500"}).messages.create(
                model="claude-3-5-haiku-latest", max_tokens=5, messages=MESSAGES
            )
        reply = _openai(model_server).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES
        )
    got = store.get_execution(run.id)
    assert [c.status_code for c in got.model_calls] == [429, 500, 200]
    assert [c.cost_usd for c in got.model_calls][:2] == [None, None]
    # Failed calls are not billed: they leave the execution's cost known.
    assert got.cost_usd == pytest.approx(got.model_calls[2].cost_usd)
    assert reply.usage is not None
    assert got.model_calls[0].response_headers.get("retry-after")
    assert [s.error.type.rsplit(".", 1)[-1] for s in got.steps if s.error] == [
        "RateLimitError",
        "InternalServerError",
    ]


def test_malformed_stream_is_recorded_and_the_sdk_raises(
    store: Store, model_server: ModelServer
) -> None:
    """A broken SSE stream reaches the SDK as its error; the call keeps what arrived and why."""
    client = _openai(model_server, **{"x-workbench-fault": "malformed-sse"})
    with workbench.record("p", inputs={}, store=store) as run:
        with pytest.raises(Exception):  # noqa: B017 - whatever the SDK raises for it
            for _ in client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            ):
                pass
        workbench.state("after", "still recording")
    got = store.get_execution(run.id)
    (call,) = got.model_calls
    assert call.streamed and call.body
    assert call.stream_error is not None or call.error is not None
    assert [s.value for s in got.states] == ["still recording"]


def test_unknown_model_has_unknown_cost_and_a_warning(
    store: Store, model_server: ModelServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A model with no known price gets cost None (never 0) and a logged warning."""
    caplog.set_level(logging.WARNING, logger="workbench.pricing")
    with workbench.record("p", inputs={}, store=store) as run:
        _openai(model_server).chat.completions.create(model="my-finetune-xyz", messages=MESSAGES)
    (call,) = _calls(store, run.id)
    assert call.cost_usd is None and call.output_tokens
    assert store.get_execution(run.id).cost_usd is None
    assert any("my-finetune-xyz" in r.getMessage() for r in caplog.records)


def test_price_overrides_from_workbench_yaml(tmp_path: Path, model_server: ModelServer) -> None:
    """cost_tracking.providers.<p>.models.<m> prices in workbench.yaml win over genai-prices."""
    (tmp_path / "workbench.yaml").write_text(
        "cost_tracking:\n  providers:\n    openai:\n      models:\n        gpt-4o-mini:\n"
        "          input_cost_per_1k: 1.0\n          output_cost_per_1k: 2.0\n"
    )
    with Store(tmp_path / "o.db") as store:
        with workbench.record("p", inputs={}, store=store) as run:
            reply = _openai(model_server).chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES
            )
        (call,) = _calls(store, run.id)
    assert reply.usage is not None
    assert call.cost_usd == pytest.approx(
        reply.usage.prompt_tokens / 1000 * 1.0 + reply.usage.completion_tokens / 1000 * 2.0
    )


def test_no_secret_reaches_the_store_files(
    tmp_path: Path, model_server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After recording with a real-looking API key set, its bytes are nowhere in the files.

    The key travels in headers, a query, a body field, metadata, a pipeline argument, a span
    attribute, an error message, a log message and fields, and a state.
    """
    secret = "sk-proj-REALKEY-" + "Zq7" * 16
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    monkeypatch.setenv("ANTHROPIC_API_KEY", secret)
    (tmp_path / "workbench.yaml").write_text("capture:\n  sensitive_fields: [session_token]\n")
    path = tmp_path / "secret.db"
    store = Store(path)

    @workbench.pipeline
    def ask(question: str, api_key: str) -> str:
        reply = openai.OpenAI(
            base_url=model_server.openai_base_url, max_retries=0
        ).chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": question}],
            extra_query={"api_key": secret},
            extra_body={"metadata": {"session_token": secret}},
        )
        return reply.choices[0].message.content or ""

    with workbench.record(
        "p", inputs={"session_token": secret}, metadata={"password": secret}, store=store
    ) as run:
        logging.getLogger("app").warning(  # before any request has shown the key
            "calling with %s", secret, extra={"session_token": secret}
        )
        ask("What is a llama?", api_key=secret)
        anthropic.Anthropic(base_url=model_server.anthropic_base_url).messages.create(
            model="claude-3-5-haiku-latest", max_tokens=5, messages=MESSAGES
        )
        workbench.state("cfg", {"session_token": secret})
        with workbench.span("auth", api_key=secret, note=f"using {secret}"):
            pass
        with pytest.raises(ValueError), workbench.step("fails"):
            raise ValueError(f"the key {secret} was refused")
    got = store.get_execution(run.id)
    assert len(got.model_calls) == 2 and len(got.logs) >= 1
    store.flush()
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("secret.db")}
    assert "secret.db-wal" in files  # scanned while the store is open, the WAL included
    for name, data in files.items():
        assert secret.encode() not in data, name
    # Compressed blobs would hide the bytes from a file scan: read every blob back too.
    for row in store._query("SELECT hash FROM blobs"):
        assert secret not in str(store.blob_value(row["hash"]))
    store.close()


def test_recording_does_not_delay_the_first_chunk(store: Store) -> None:
    """Time to first chunk is the same with and without recording when later chunks are slow."""
    with ModelServer(chunk_delay_s=0.3) as server:
        client = _openai(server)

        def first_chunk_after() -> float:
            start = time.perf_counter()
            stream = client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            )
            next(iter(stream))
            elapsed = time.perf_counter() - start
            stream.close()
            return elapsed

        plain = first_chunk_after()
        with workbench.record("p", inputs={}, store=store):
            recorded = first_chunk_after()
    # Later chunks come 0.3 s apart: a recorder that buffered the stream would take >= 0.3 s.
    assert plain < 0.25 and recorded < 0.25, (plain, recorded)


def test_connection_errors_are_recorded(store: Store) -> None:
    """A call to a port nobody listens on records the SDK's connection error on the call."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0)
    with workbench.record("p", inputs={}, store=store) as run:
        with pytest.raises(openai.APIConnectionError):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    (call,) = _calls(store, run.id)
    assert call.status_code is None and call.error is not None
    assert "ConnectError" in call.error.type


def test_aiohttp_query_parameters_are_part_of_the_request(
    store: Store, model_server: ModelServer
) -> None:
    """Two aiohttp calls differing only in params= are two different requests, not repeats."""
    url = f"{model_server.openai_base_url}/chat/completions"
    body = {"model": "gpt-4o-mini", "messages": MESSAGES}

    async def calls() -> None:
        async with aiohttp.ClientSession() as session:
            for page in ("1", "2"):
                async with session.post(url, json=body, params={"page": page}) as response:
                    await response.read()

    with workbench.record("p", inputs={}, store=store) as run:
        asyncio.run(calls())
    first, second = _calls(store, run.id)
    assert first.request["query"] == [["page", "1"]]
    assert first.request_key != second.request_key
    assert (first.occurrence, second.occurrence) == (0, 0)


def test_a_request_that_cannot_be_captured_is_still_sent(
    store: Store, model_server: ModelServer, caplog: pytest.LogCaptureFixture
) -> None:
    """If capturing a request fails, the call goes out unrecorded and the failure is logged."""
    with workbench.record("p", inputs={}, store=store) as run:
        run.volatile_fields = ("metadata..id",)  # malformed: canonicalisation refuses it
        reply = _openai(model_server).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES
        )
    assert reply.choices[0].message.content
    assert _calls(store, run.id) == []
    assert any("sent unrecorded" in r.getMessage() for r in caplog.records)
