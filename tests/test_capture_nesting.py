"""A call that passes through several captured HTTP clients is recorded, and replayed, once.

litellm's default async transport is an httpx transport sending with aiohttp; the generic tests
build the same nesting by hand (httpx over aiohttp, httpx over requests), so the guard is held
to its promise without litellm too. Everything talks to a ModelServer on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping
from types import ModuleType
from typing import Any

import aiohttp
import httpx
import pytest
import requests

import workbench
from workbench.capture import install as install_capture
from workbench.debugging import RequestReplay
from workbench.records import ModelCall
from workbench.replay import ReplayResult
from workbench.store import Store
from workbench.testing import ModelServer

KEY = "sk-test-nesting-0123456789abcdef"
MODEL = "gpt-4o-mini"


# -- transports that send with another captured client, as litellm's does -------------------


class _AiohttpStream(httpx.AsyncByteStream):
    """An aiohttp response's body as an httpx stream, read as the caller reads it."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._response.content.iter_any():
            yield chunk

    async def aclose(self) -> None:
        self._response.release()


class _AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport that sends every request with aiohttp (litellm's default, in small)."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        response = await self._session.request(
            request.method, str(request.url), headers=dict(request.headers), data=request.content
        )
        return httpx.Response(
            response.status, headers=_decoded(response.headers), stream=_AiohttpStream(response)
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class _RequestsStream(httpx.SyncByteStream):
    """A requests response's body as an httpx stream."""

    def __init__(self, response: requests.Response) -> None:
        self._response = response

    def __iter__(self) -> Iterator[bytes]:
        yield from self._response.iter_content(chunk_size=None)

    def close(self) -> None:
        self._response.close()


class _RequestsTransport(httpx.BaseTransport):
    """An httpx transport that sends every request with requests."""

    def __init__(self) -> None:
        self._session = requests.Session()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._session.request(
            request.method,
            str(request.url),
            headers=dict(request.headers),
            data=request.read(),
            stream=True,
        )
        return httpx.Response(
            response.status_code,
            headers=_decoded(response.headers),
            stream=_RequestsStream(response),
        )

    def close(self) -> None:
        self._session.close()


def _decoded(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    """The headers without content-encoding: both clients undo it, httpx must not again."""
    return [(k, v) for k, v in headers.items() if k.lower() != "content-encoding"]


def _chat(question: str) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": question}]}


def _answer(response: httpx.Response) -> str:
    response.raise_for_status()
    return str(response.json()["choices"][0]["message"]["content"])


@workbench.pipeline
async def ask_over_aiohttp(question: str, *, base_url: str) -> str:
    """One chat call through httpx whose transport sends with aiohttp."""
    async with httpx.AsyncClient(transport=_AiohttpTransport()) as client:
        response = await client.post(
            f"{base_url}/chat/completions",
            json=_chat(question),
            headers={"authorization": f"Bearer {KEY}"},
        )
    return _answer(response)


@workbench.pipeline
def ask_over_requests(question: str, *, base_url: str) -> str:
    """One chat call through httpx whose transport sends with requests."""
    with httpx.Client(transport=_RequestsTransport()) as client:
        response = client.post(
            f"{base_url}/chat/completions",
            json=_chat(question),
            headers={"authorization": f"Bearer {KEY}"},
        )
    return _answer(response)


# -- litellm, with its real default transport -------------------------------------------------


@pytest.fixture
def aiohttp_sends(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URLs aiohttp's ClientSession is asked to request (counted at its own entry point,
    above workbench's capture, which still runs)."""
    # Capture first: installed later, it would patch over this counter, and undoing the
    # counter would then take workbench's patch away for the rest of the session.
    install_capture()
    urls: list[str] = []
    request = aiohttp.ClientSession._request

    async def counted(self: aiohttp.ClientSession, method: str, url: Any, **kwargs: Any) -> Any:
        urls.append(str(url))
        return await request(self, method, url, **kwargs)

    monkeypatch.setattr(aiohttp.ClientSession, "_request", counted)
    return urls


@workbench.pipeline
async def ask_litellm_async(question: str, *, base_url: str) -> str:
    """One ``litellm.acompletion`` (litellm's aiohttp transport under httpx)."""
    import litellm  # here, not at the top: after the fixture's offline settings

    reply = await litellm.acompletion(
        model=f"openai/{MODEL}",
        api_base=base_url,
        api_key=KEY,
        num_retries=0,
        messages=[{"role": "user", "content": question}],
    )
    return str(reply.choices[0].message.content)


@workbench.pipeline
def ask_litellm(question: str, *, base_url: str) -> str:
    """One ``litellm.completion``."""
    import litellm

    reply = litellm.completion(
        model=f"openai/{MODEL}",
        api_base=base_url,
        api_key=KEY,
        num_retries=0,
        messages=[{"role": "user", "content": question}],
    )
    return str(reply.choices[0].message.content)


async def _closing_litellm(call: Awaitable[str]) -> str:
    """``await call``, then close litellm's async clients while their event loop still runs."""
    from litellm.llms.custom_httpx.async_client_cleanup import close_litellm_async_clients

    try:
        return await call
    finally:
        await close_litellm_async_clients()


# -- what every nesting must give ---------------------------------------------------------------


def _recorded_once(store: Store, server: ModelServer, execution_id: str) -> ModelCall:
    """The execution's single call: occurrence 0, as many requests as the server saw, and the
    execution's tokens and cost those of that one call."""
    execution = store.get_execution(execution_id)
    assert server.request_count == 1
    (call,) = execution.model_calls
    assert (call.occurrence, call.status_code, call.provider) == (0, 200, "openai")
    assert call.input_tokens is not None and call.output_tokens is not None
    assert (execution.tokens_in, execution.tokens_out) == (call.input_tokens, call.output_tokens)
    assert call.cost_usd is not None
    assert execution.cost_usd == pytest.approx(call.cost_usd)
    return call


def _replayed_once(store: Store, execution_id: str, output: str) -> ReplayResult:
    """A faithful replay (server stopped) answers the one call once: no miss, nothing unused."""
    result = RequestReplay(store=store).replay_execution(execution_id)
    assert result.status == "completed" and result.output == output
    assert result.mismatches == [] and result.unused == []
    (call,) = result.model_calls
    assert call.occurrence == 0 and call.replayed
    return result


def test_litellm_acompletion_is_recorded_once_and_replays_clean(
    store: Store, offline_litellm: ModuleType, aiohttp_sends: list[str]
) -> None:
    """litellm.acompletion over its real aiohttp transport is one ModelCall, one request, tokens
    and cost not doubled, and its replay with the server stopped has no miss and no unused call."""
    with ModelServer() as server:
        base_url = server.openai_base_url
        with workbench.record("litellm", inputs={}, store=store) as run:
            answer = asyncio.run(
                _closing_litellm(ask_litellm_async("Tell me about llamas", base_url=base_url))
            )
        call = _recorded_once(store, server, run.id)
    # It did go through litellm's aiohttp transport: the nesting this test is about.
    assert aiohttp_sends == [f"{base_url}/chat/completions"]
    assert call.text == answer
    _replayed_once(store, run.id, answer)
    assert len(aiohttp_sends) == 1  # the replay answered above the transport: nothing sent


def test_litellm_completion_is_recorded_once_and_replays_clean(
    store: Store, offline_litellm: ModuleType
) -> None:
    """Sync litellm.completion is one ModelCall for one request, and replays offline cleanly."""
    with ModelServer() as server:
        with workbench.record("litellm", inputs={}, store=store) as run:
            answer = ask_litellm("Tell me about alpacas", base_url=server.openai_base_url)
        call = _recorded_once(store, server, run.id)
    assert call.text == answer
    _replayed_once(store, run.id, answer)


def test_httpx_transport_sending_with_aiohttp_records_one_call(store: Store) -> None:
    """An httpx transport that sends with aiohttp records one call, and replays it once."""
    with ModelServer() as server:
        with workbench.record("nested", inputs={}, store=store) as run:
            answer = asyncio.run(
                ask_over_aiohttp("Tell me about llamas", base_url=server.openai_base_url)
            )
        call = _recorded_once(store, server, run.id)
    assert call.text == answer
    _replayed_once(store, run.id, answer)


def test_httpx_transport_sending_with_requests_records_one_call(store: Store) -> None:
    """An httpx transport that sends with requests records one call, and replays it once."""
    with ModelServer() as server:
        with workbench.record("nested", inputs={}, store=store) as run:
            answer = ask_over_requests("Tell me about llamas", base_url=server.openai_base_url)
        call = _recorded_once(store, server, run.id)
    assert call.text == answer
    _replayed_once(store, run.id, answer)


def test_the_guard_ends_with_the_nested_send(store: Store, model_server: ModelServer) -> None:
    """After a nested call, a plain aiohttp call in the same task is still captured itself."""

    async def main() -> None:
        await ask_over_aiohttp("first", base_url=model_server.openai_base_url)
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{model_server.openai_base_url}/chat/completions",
                json=_chat("second"),
                headers={"authorization": f"Bearer {KEY}"},
            ) as response,
        ):
            await response.read()

    with workbench.record("nested", inputs={}, store=store) as run:
        asyncio.run(main())
    calls = store.get_execution(run.id).model_calls
    prompts = [c.request["body"]["messages"][0]["content"] for c in calls]
    assert sorted(prompts) == ["first", "second"]
    assert [c.occurrence for c in calls] == [0, 0]


def test_a_live_miss_under_a_nested_transport_is_asked_and_recorded_once(store: Store) -> None:
    """A replay miss sent live through nested clients is one mismatch and one recorded call."""
    with ModelServer() as server:
        with workbench.record("nested", inputs={}, store=store) as run:
            asyncio.run(ask_over_aiohttp("Tell me about llamas", base_url=server.openai_base_url))
        result = RequestReplay(store=store).replay_execution(
            run.id, modifications={"model": "gpt-4o"}, on_miss="live"
        )
        assert server.request_count == 2  # the recording's request, then the replay's miss
    assert result.status == "completed"
    assert len(result.mismatches) == 1 and len(result.unused) == 1
    (call,) = result.model_calls
    assert (call.occurrence, call.replayed, call.model) == (0, False, "gpt-4o")
