"""Replay reproduces what the application saw when a call failed: a stream cut mid-way, an HTTP
error, a refused connection — live and replayed, the application gets the same outcome."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import openai
import pytest
import requests

import workbench
from workbench.debugging import RequestReplay
from workbench.store import Store

KEY = "sk-test-failures-0123456789abcdef"
MODEL = "gpt-4o-mini"


def _event(content: str) -> bytes:
    chunk = {
        "id": "chatcmpl-cut",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": MODEL,
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}],
    }
    data = f"data: {json.dumps(chunk)}\n\n".encode()
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


class FaultyServer:
    """A loopback HTTP server that fails the way real providers and proxies do.

    ``cut``: a 200 event stream whose connection closes after two events, with no end (the
    client reads an incomplete chunked body). ``error``: a 500 with an OpenAI-shaped error body.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/v1"
        self.requests = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn:
                self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(body) < length:
            body += conn.recv(65536)
        self.requests += 1
        if self.mode == "cut":
            conn.sendall(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\n\r\n" + _event("Hello") + _event(" wor")
            )
        else:
            error = json.dumps({"error": {"message": "upstream failed", "type": "server_error"}})
            conn.sendall(
                b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\n"
                b"x-should-retry: false\r\nconnection: close\r\n"
                + f"content-length: {len(error)}\r\n\r\n{error}".encode()
            )

    def close(self) -> None:
        self._sock.close()


@pytest.fixture
def store(tmp_path: Any) -> Iterator[Store]:
    with Store(tmp_path / "failures.db") as opened:
        yield opened


def _outcome(run: Any) -> dict[str, Any]:
    try:
        return {"text": run(), "error": None}
    except Exception as exc:  # what the application saw, as data both runs can be compared by
        return {"error": type(exc).__name__, "message": str(exc)[:60]}


@workbench.pipeline
def stream_answer(base_url: str) -> dict[str, Any]:
    """Streams one answer, and says what it got: the text so far and the failure, if any."""
    text: list[str] = []

    def read() -> str:
        with openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0) as client:
            stream = client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
            )
            for chunk in stream:
                text.append(chunk.choices[0].delta.content or "")
        return "".join(text)

    outcome = _outcome(read)
    return {**outcome, "received": "".join(text)}


@workbench.pipeline
def stream_or_fail(base_url: str) -> str:
    """Streams one answer and lets a cut stream fail the run."""
    with openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0) as client:
        stream = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        return "".join(chunk.choices[0].delta.content or "" for chunk in stream)


@workbench.pipeline
def ask_once(base_url: str) -> dict[str, Any]:
    """One plain completion, and what came of it."""

    def ask() -> str:
        with openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0) as client:
            reply = client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}]
            )
        return reply.choices[0].message.content or ""

    return _outcome(ask)


@workbench.pipeline
def get_with_requests(base_url: str) -> dict[str, Any]:
    """Reads a cut stream with ``requests``."""

    def read() -> str:
        body = json.dumps({"model": MODEL, "messages": [], "stream": True})
        response = requests.post(
            f"{base_url}/chat/completions",
            data=body,
            headers={"content-type": "application/json"},
            stream=True,
            timeout=10,
        )
        return b"".join(response.iter_content(chunk_size=None)).decode()

    return _outcome(read)


def _record(store: Store, pipeline: Any, base_url: str) -> tuple[str, Any]:
    with workbench.record(pipeline.__name__, inputs={}, store=store) as run:
        output = pipeline(base_url)
    return run.id, output


def _closed_port_url() -> str:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"  # nothing listens there any more: refused


@pytest.mark.parametrize("stubs", ["workbench", "vcrpy"])
def test_a_stream_cut_mid_way_replays_the_partial_chunks_then_the_same_failure(
    store: Store, stubs: str
) -> None:
    """Live, the application got two chunks and then a connection error; the replay (with
    either stubs, the server gone) gives it the same two chunks and the same error."""
    server = FaultyServer("cut")
    try:
        execution_id, live = _record(store, stream_answer, server.base_url)
    finally:
        server.close()
    assert live["received"] == "Hello wor" and live["error"] is not None, live
    recorded = store.get_execution(execution_id)
    assert recorded.model_calls[0].error is not None

    result = RequestReplay(store=store).replay_execution(
        execution_id, modifications={"stubs": stubs}
    )
    assert result.output == live
    replayed = store.get_execution(result.execution_id)
    assert replayed.model_calls[0].error is not None
    assert replayed.model_calls[0].error.type == recorded.model_calls[0].error.type


def test_a_run_failed_by_a_cut_stream_replays_as_failed(store: Store) -> None:
    """The cut stream failed the original run; its replay fails too, with the same error,
    instead of reading as completed with the partial text."""
    server = FaultyServer("cut")
    try:
        with (
            pytest.raises(openai.APIConnectionError) as live,
            workbench.record("stream_or_fail", inputs={}, store=store) as run,
        ):
            stream_or_fail(server.base_url)
    finally:
        server.close()
    assert store.get_execution(run.id).status == "failed"

    original = store.get_execution(run.id)
    assert original.status == "failed" and original.error is not None

    result = RequestReplay(store=store).replay_execution(run.id)
    assert result.status == "failed" and result.error is not None
    assert (result.error.type, result.error.message) == (original.error.type, str(live.value))
    # Under the SDK's wrapper, the transport error the recording saw, raised again.
    replayed = store.get_execution(result.execution_id)
    replayed_error, original_error = replayed.model_calls[0].error, original.model_calls[0].error
    assert replayed_error is not None and original_error is not None
    assert replayed_error.type == original_error.type


def test_an_http_error_replays_as_the_same_error(store: Store) -> None:
    """A 500 reached the application as the SDK's InternalServerError; so does its replay."""
    server = FaultyServer("error")
    try:
        execution_id, live = _record(store, ask_once, server.base_url)
    finally:
        server.close()
    assert live["error"] == "InternalServerError"
    result = RequestReplay(store=store).replay_execution(execution_id)
    assert result.output == live


def test_a_refused_connection_replays_as_the_same_failure(store: Store) -> None:
    """No server answered at all: the replay raises the same connection error (the SDK turns
    it into the same APIConnectionError) instead of reporting a request it cannot answer."""
    execution_id, live = _record(store, ask_once, _closed_port_url())
    assert live["error"] == "APIConnectionError"
    result = RequestReplay(store=store).replay_execution(execution_id)
    assert result.output == live
    assert result.mismatches == []


def test_a_cut_stream_read_with_requests_replays_the_same_failure(store: Store) -> None:
    """The same promise through ``requests``: the partial body, then the same error."""
    server = FaultyServer("cut")
    try:
        execution_id, live = _record(store, get_with_requests, server.base_url)
    finally:
        server.close()
    assert live["error"] is not None, live
    result = RequestReplay(store=store).replay_execution(execution_id)
    assert result.output == live
