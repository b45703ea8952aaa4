"""The built-in test model server: real HTTP/1.1 on 127.0.0.1, speaking every provider's API.

Owns the server's lifecycle (:class:`ModelServer`), the HTTP handling (keep-alive connections,
chunked SSE flushed event by event), routing a request to a provider dialect, injected latency
and faults, and the log of received requests. Does not own the providers' JSON and SSE shapes
(``_openai`` routes to ``_chat``, ``_responses``, ``_embeddings`` and ``_media``;
``_anthropic``; ``_natives`` for Gemini, Ollama, Cohere and Bedrock), what the
model decides to reply (``_reply``, ``_schema``) nor what the answers say and how tokens are
counted (``_answers``).

Per-request behaviour is chosen by headers, so concurrent tests sharing a server do not interfere:

- ``x-workbench-latency: 0.2`` — seconds before the response (or its first SSE event);
- ``x-workbench-chunk-delay: 0.05`` — seconds between consecutive SSE events;
- ``x-workbench-fault: 429 | 500 | malformed-sse`` — answer with that fault instead.

Code that cannot set headers uses the server-wide defaults (``latency_s``, ``chunk_delay_s``) and
:meth:`ModelServer.fail_next`.
"""

from __future__ import annotations

import contextlib
import math
import secrets
import socket
import socketserver
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Literal, Self

import orjson

from workbench.exceptions import TestServerError
from workbench.testmodel._answers import PromptCache
from workbench.testmodel._anthropic import ANTHROPIC
from workbench.testmodel._natives import NATIVE_DIALECTS
from workbench.testmodel._openai import OPENAI
from workbench.testmodel._protocol import (
    CallContext,
    Dialect,
    Endpoint,
    InvalidRequest,
    JsonObject,
    JsonReply,
    StreamReply,
)

ModelServerFault = Literal["429", "500", "malformed-sse"]
"""A fault the server can inject: an HTTP 429 or 500 error, or an SSE stream that breaks mid-way."""

_FAULTS: dict[str, ModelServerFault] = {
    "429": "429",
    "500": "500",
    "malformed-sse": "malformed-sse",
}
_ALLOWED_FAULTS = "'429', '500' or 'malformed-sse'"

_HOST = "127.0.0.1"
# serve_forever checks for shutdown this often; it bounds how long stop() takes.
_POLL_INTERVAL_S = 0.05
_RETRY_AFTER_S = "1"
_RETRY_AFTER_MS = "20"  # both SDKs prefer this header, so code that retries waits 20 ms, not 1 s


@dataclass(frozen=True)
class ReceivedRequest:
    """One HTTP request as the server received it, kept for tests to assert on."""

    method: str
    path: str  # without the query string
    headers: Mapping[str, str]  # names lower-cased
    body: Any  # the parsed JSON body; None when there was none or it was not JSON


@dataclass(frozen=True)
class _Timing:
    latency_s: float
    chunk_delay_s: float


def _checked_seconds(value: object, name: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise TestServerError(
            f"{name}={value!r} is not a delay: expected a finite number of seconds >= 0, "
            f"like 0.05; pass 0 for no delay"
        )
    return float(value)


def _checked_port(port: object) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise TestServerError(
            f"port={port!r} is not a TCP port: expected an int from 0 to 65535; "
            f"pass port=0 to get a free port"
        )
    return port


class ModelServer:
    """A fake OpenAI + Anthropic model server on 127.0.0.1 for tests and benchmarks.

    Answers are deterministic (see ``workbench.testmodel._answers``), prompt caching is reported
    from this instance's history, and latency and faults are injectable per request by header or
    server-wide. Use as a context manager, or ``start()`` and ``stop()``::

        with ModelServer() as server:
            client = openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test")
    """

    FAULT_HEADER: ClassVar[str] = "x-workbench-fault"
    LATENCY_HEADER: ClassVar[str] = "x-workbench-latency"
    CHUNK_DELAY_HEADER: ClassVar[str] = "x-workbench-chunk-delay"

    def __init__(
        self, *, port: int = 0, latency_s: float = 0.0, chunk_delay_s: float = 0.0
    ) -> None:
        self._requested_port = _checked_port(port)
        self._latency_s = _checked_seconds(latency_s, "latency_s")
        self._chunk_delay_s = _checked_seconds(chunk_delay_s, "chunk_delay_s")
        self._lock = threading.Lock()
        self._requests: list[ReceivedRequest] = []
        self._calls = 0  # never reset, so response ids stay unique across reset()
        self._pending_faults: deque[ModelServerFault] = deque()
        self._cache = PromptCache()
        # Distinguishes ids from different server instances writing into one store.
        self._id_prefix = secrets.token_hex(4)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        """Listen on 127.0.0.1 and serve from daemon threads; returns the server itself."""
        if self._httpd is not None:
            raise TestServerError(
                f"ModelServer.start(): already running at {self.url}; call stop() first"
            )
        try:
            httpd = _HTTPServer(self, self._requested_port)
        except OSError as exc:
            raise TestServerError(
                f"ModelServer(port={self._requested_port}) cannot listen on "
                f"{_HOST}:{self._requested_port} ({exc.strerror or exc}); "
                f"pass another port, or port=0 for a free one"
            ) from exc
        thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL_S},
            name=f"workbench-model-server-{httpd.server_port}",
            daemon=True,
        )
        thread.start()
        self._httpd, self._thread = httpd, thread
        return self

    def stop(self) -> None:
        """Stop listening and close open keep-alive connections; safe to call twice."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._httpd = self._thread = None
        httpd.shutdown()
        httpd.server_close()
        # Pooled client connections would otherwise keep being answered by a stopped server.
        httpd.close_connections()
        thread.join()

    def __enter__(self) -> Self:
        return self if self.running else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<ModelServer {self.url if self.running else 'stopped'}>"

    # -- addresses -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the server is listening."""
        return self._httpd is not None

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        if self._httpd is None:
            raise TestServerError(
                "ModelServer has no address: it is not running; call start() first, "
                "or use it as `with ModelServer() as server:`"
            )
        return self._httpd.server_port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{_HOST}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """The ``base_url`` for ``openai.OpenAI``: the URL plus ``/v1``."""
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """The ``base_url`` for ``anthropic.Anthropic``: the URL itself."""
        return self.url

    # -- behaviour -------------------------------------------------------------------------

    @property
    def latency_s(self) -> float:
        """Seconds before each response (or its first SSE event) unless a header says otherwise."""
        return self._latency_s

    @latency_s.setter
    def latency_s(self, value: float) -> None:
        self._latency_s = _checked_seconds(value, "latency_s")

    @property
    def chunk_delay_s(self) -> float:
        """Seconds between consecutive SSE events unless a header says otherwise."""
        return self._chunk_delay_s

    @chunk_delay_s.setter
    def chunk_delay_s(self, value: float) -> None:
        self._chunk_delay_s = _checked_seconds(value, "chunk_delay_s")

    def fail_next(self, fault: ModelServerFault | int, count: int = 1) -> None:
        """Answer the next ``count`` model calls (POST requests) with ``fault``.

        For code that cannot set the ``x-workbench-fault`` header. A header fault on a request
        takes precedence and leaves the queue alone. ``malformed-sse`` on a non-streaming call
        sends a truncated JSON body instead.
        """
        name = _FAULTS.get(str(fault).strip().lower())
        if name is None:
            raise TestServerError(
                f"fail_next(fault={fault!r}): unknown fault; allowed: {_ALLOWED_FAULTS}"
            )
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise TestServerError(
                f"fail_next(count={count!r}): expected an int of at least 1; "
                f"to clear queued faults call reset()"
            )
        with self._lock:
            self._pending_faults.extend([name] * count)

    def reset(self) -> None:
        """Forget received requests, queued faults and the prompt cache."""
        with self._lock:
            self._requests.clear()
            self._pending_faults.clear()
        self._cache.clear()

    # -- what was received -----------------------------------------------------------------

    @property
    def requests(self) -> list[ReceivedRequest]:
        """A snapshot of the requests received since start or the last reset(), oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        """How many requests were received since start or the last reset()."""
        with self._lock:
            return len(self._requests)

    # -- used by the request handler -------------------------------------------------------

    def _record(self, request: ReceivedRequest) -> int:
        with self._lock:
            self._requests.append(request)
            self._calls += 1
            return self._calls

    def _timing(self, headers: Mapping[str, str]) -> _Timing:
        return _Timing(
            _header_seconds(headers, self.LATENCY_HEADER, self._latency_s),
            _header_seconds(headers, self.CHUNK_DELAY_HEADER, self._chunk_delay_s),
        )

    def _take_fault(self, headers: Mapping[str, str]) -> ModelServerFault | None:
        value = headers.get(self.FAULT_HEADER)
        if value is not None:
            fault = _FAULTS.get(value.strip().lower())
            if fault is None:
                raise InvalidRequest(
                    f"{self.FAULT_HEADER} header is {value!r}: allowed values are "
                    f"{_ALLOWED_FAULTS}; drop the header for a normal answer"
                )
            return fault
        if not self._pending_faults:  # lock-free fast path for the usual empty queue
            return None
        with self._lock:
            return self._pending_faults.popleft() if self._pending_faults else None

    def _context(
        self, number: int, path: str = "", query: str = "", raw: bytes = b"", content_type: str = ""
    ) -> CallContext:
        return CallContext(
            call_id=f"{self._id_prefix}{number:08d}",
            created=int(time.time()),
            cache=self._cache,
            path=path,
            query=query,
            raw_body=raw,
            content_type=content_type,
        )


def _header_seconds(headers: Mapping[str, str], name: str, default: float) -> float:
    value = headers.get(name)
    if value is None:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        raise InvalidRequest(
            f"{name} header is {value!r}: expected seconds as a number >= 0, like 0.25"
        )
    return seconds


def _route(method: str, path: str, headers: Mapping[str, str]) -> tuple[Dialect, Endpoint | None]:
    """The dialect and endpoint for a request; both dialects serve ``GET /v1/models``.

    The Anthropic SDK always sends ``anthropic-version`` and the OpenAI SDK never does, so that
    header decides which dialect answers a path both know, and the shape of a 404.
    """
    first = (ANTHROPIC, OPENAI) if "anthropic-version" in headers else (OPENAI, ANTHROPIC)
    dialects = (*first, *NATIVE_DIALECTS)
    for dialect in dialects:
        endpoint = dialect.endpoints.get((method, path))
        if endpoint is not None:
            return dialect, endpoint
        for verb, pattern, patterned in dialect.patterns:
            if verb == method and pattern.search(path):
                return dialect, patterned
    return dialects[0], None


def _unknown_url(owner: ModelServer, method: str, path: str, dialect: Dialect) -> str:
    """A 404's message: the usual cause is a base URL missing ``/v1`` (OpenAI) or with one
    too many (Anthropic), so it names the base URL each SDK needs, the caller's first."""
    urls = {
        "openai": f"OPENAI_BASE_URL={owner.openai_base_url}",
        "anthropic": f"ANTHROPIC_BASE_URL={owner.anthropic_base_url}",
    }
    first = urls.pop(dialect.name, None)
    advice = ", ".join(url for url in (first, *urls.values()) if url is not None)
    return (
        f"Unknown request URL: {method} {path}. This is workbench's test model server; point "
        f"the SDKs at their base URLs: {advice} (base_url= in code)"
    )


def _corrupt(event: bytes) -> bytes:
    """The event with its JSON cut in half, so a client's JSON parser fails on it."""
    head, marker, data = event.partition(b"data: ")
    data = data.rstrip(b"\n")
    return head + marker + data[: len(data) // 2] + b"\n\n"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked responses
    # SSE events are small writes; Nagle would hold each until the client ACKs the last one.
    disable_nagle_algorithm = True
    server: _HTTPServer
    # Set per request by _answer() before anything is sent.
    _dialect: Dialect
    _request_id: str
    _raw: bytes
    _query: str

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: a stderr line per request would dominate a 5,000-call benchmark."""

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        owner = self.server.owner
        path, _, query = self.path.partition("?")
        headers = {name.lower(): value for name, value in self.headers.items()}
        raw = self._read_body(headers)
        body: Any = None
        if raw:
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                body = None
        number = owner._record(ReceivedRequest(self.command, path, headers, body))
        self._dialect, endpoint = _route(self.command, path, headers)
        self._request_id = f"{self._dialect.request_id_prefix}{owner._id_prefix}{number:08d}"
        self._raw, self._query = raw, query
        try:
            self._respond(owner, endpoint, path, headers, body, number)
        except (ConnectionError, TimeoutError):
            self.close_connection = True  # the client left mid-response; nothing to tell it

    def _respond(
        self,
        owner: ModelServer,
        endpoint: Endpoint | None,
        path: str,
        headers: Mapping[str, str],
        body: Any,
        number: int,
    ) -> None:
        if endpoint is None:
            return self._fail(404, _unknown_url(owner, self.command, path, self._dialect))
        multipart = headers.get("content-type", "").startswith("multipart/")
        if self.command == "POST" and not isinstance(body, dict) and not multipart:
            return self._fail(
                400,
                "The request body is not a JSON object; send a JSON object with "
                "content-type: application/json",
            )
        try:
            timing = owner._timing(headers)
            fault = owner._take_fault(headers) if self.command == "POST" else None
        except InvalidRequest as exc:
            return self._fail(400, str(exc))
        if timing.latency_s:
            time.sleep(timing.latency_s)
        if fault == "429":
            return self._fail(
                429,
                "Rate limit reached (fault injected by the workbench test server)",
                (("retry-after", _RETRY_AFTER_S), ("retry-after-ms", _RETRY_AFTER_MS)),
            )
        if fault == "500":
            return self._fail(
                500, "The server had an error (fault injected by the workbench test server)"
            )
        try:
            context = owner._context(
                number, path, self._query, self._raw, headers.get("content-type", "")
            )
            reply = endpoint(body or {}, context)
        except InvalidRequest as exc:
            return self._fail(400, str(exc))
        except Exception as exc:  # a bug here must reach the test as a response, not hang it
            return self._fail(500, f"workbench test server bug: {exc!r}")
        malformed = fault == "malformed-sse"
        if isinstance(reply, JsonReply):
            return self._send_json(200, reply.payload, truncate=malformed)
        self._stream(reply, timing.chunk_delay_s, malformed=malformed)

    def _fail(self, status: int, message: str, extra: tuple[tuple[str, str], ...] = ()) -> None:
        self._send_json(status, self._dialect.error_payload(status, message), extra)

    def _read_body(self, headers: Mapping[str, str]) -> bytes:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            parts = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailer fields
            return b"".join(parts)
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            self.close_connection = True  # cannot tell where the next request starts
            return b""
        return self.rfile.read(length) if length > 0 else b""

    def _head(self, status: int, headers: list[tuple[str, str]]) -> bytes:
        # Written by hand rather than send_response(): one buffer, no Server/Date formatting.
        lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"]
        lines += [f"{name}: {value}" for name, value in headers]
        if self.close_connection:
            lines.append("connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _send_json(
        self,
        status: int,
        payload: JsonObject | list[Any],
        extra: tuple[tuple[str, str], ...] = (),
        *,
        truncate: bool = False,
    ) -> None:
        data = orjson.dumps(payload)
        if truncate:
            data = data[: len(data) // 2]
        head = self._head(
            status,
            [
                ("content-type", "application/json"),
                ("content-length", str(len(data))),
                (self._dialect.request_id_header, self._request_id),
                *extra,
            ],
        )
        self.wfile.write(head + data)

    def _stream(self, reply: StreamReply, chunk_delay_s: float, *, malformed: bool) -> None:
        events = reply.events
        if malformed:
            events = (*events[: reply.break_at], _corrupt(events[reply.break_at]))
            # Ending the connection without the last chunk is what makes the stream break.
            self.close_connection = True
        head = self._head(
            200,
            [
                ("content-type", reply.content_type),
                ("cache-control", "no-cache"),
                ("transfer-encoding", "chunked"),
                (self._dialect.request_id_header, self._request_id),
            ],
        )
        last = len(events) - 1
        for index, event in enumerate(events):
            # One chunk per event, written straight to the socket, so each leaves immediately.
            chunk = b"%x\r\n%s\r\n" % (len(event), event)
            if index == 0:
                chunk = head + chunk
            elif chunk_delay_s:
                time.sleep(chunk_delay_s)
            if index == last and not malformed:
                chunk += b"0\r\n\r\n"
            self.wfile.write(chunk)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # Load tests open many connections at once; the default backlog of 5 would drop some.
    request_queue_size = 1024

    def __init__(self, owner: ModelServer, port: int) -> None:
        self.owner = owner
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__((_HOST, port), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, a DNS call that can stall for seconds.
        socketserver.TCPServer.server_bind(self)
        self.server_name = _HOST
        self.server_port = self.socket.getsockname()[1]

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up between requests is routine for a load test, not worth a traceback.
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)
