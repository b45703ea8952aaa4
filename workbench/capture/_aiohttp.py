"""Capture for ``aiohttp``: ``ClientSession._request``, teeing the response's StreamReader.

aiohttp's ``StreamReader`` has ``__slots__``, so the tee is a class-level wrapper around
``_read_nowait_chunk`` (every read method ends there) that looks the reader up in a dict of
readers being recorded; readers of unrecorded responses pay one dict miss per read.

When the run's interceptor answers (a replay), nothing is sent: the session's own response
class is built around a real ``StreamReader`` fed the recorded chunks (at their offsets when
realtime), so every read method, ``raise_for_status`` and ``async with`` behave as aiohttp's.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import inspect
import time
import types
from http import HTTPStatus
from typing import Any

from workbench._http import decode_content
from workbench.capture._call import (
    PendingCall,
    RecordedAnswer,
    answer_chunks_async,
    answer_for,
    recorded_exception,
    rewritten_body,
    start_call,
)
from workbench.capture._guard import frame_to_capture, sent_below_async

__all__ = ["patch"]

_recorded: dict[int, tuple[Any, PendingCall]] = {}


def _forget_reader(key: int) -> None:
    _recorded.pop(key, None)


def _full_url(session: Any, str_or_url: Any, params: Any) -> str:
    """The URL aiohttp will request, query parameters included (they are part of the key)."""
    import yarl

    url = session._build_url(str_or_url) if hasattr(session, "_build_url") else str_or_url
    url = yarl.URL(str(url))
    if params:
        # Params aiohttp will refuse are its to report, with its own error.
        with contextlib.suppress(TypeError, ValueError):
            url = url.extend_query(params)
    return str(url)


class _NoConnection:
    """The protocol a replayed ``StreamReader`` believes it reads from: nothing to pause."""

    _reading_paused = False
    connected = True  # a realtime replay's reader waits for chunks still to come

    def pause_reading(self) -> None:
        pass

    def resume_reading(self, resume_parser: bool = True) -> None:
        pass


def _decoded(answer: RecordedAnswer, auto_decompress: bool) -> RecordedAnswer:
    """The answer as aiohttp would hand it over: an httpx-recorded body still carries its
    content-encoding, which a decompressing session undoes before the caller reads."""
    headers = dict(answer.headers)
    encoding = next((k for k in headers if k.lower() == "content-encoding"), None)
    if encoding is None or not auto_decompress:
        return answer
    body = decode_content(b"".join(data for _, data in answer.chunks), headers)
    del headers[encoding]
    last = answer.chunks[-1][0] if answer.chunks else 0.0
    return dataclasses.replace(answer, headers=list(headers.items()), chunks=[(last, body)])


async def _feed(reader: Any, answer: RecordedAnswer, started: float, aiohttp: Any) -> None:
    cut = False
    try:
        async for data in answer_chunks_async(answer, started):
            reader.feed_data(data)
        if answer.error is not None:  # the recorded stream was cut here: so is this one
            reader.set_exception(recorded_exception(answer.error, aiohttp.ClientPayloadError))
            cut = True
    finally:
        if not cut:
            reader.feed_eof()


def _replayed(
    aiohttp: types.ModuleType,
    session: Any,
    method: str,
    url: str,
    request_headers: dict[str, str],
    answer: RecordedAnswer,
    auto_decompress: bool,
) -> Any:
    """The session's response class for ``answer``, as if it had been received (no network)."""
    from multidict import CIMultiDict, CIMultiDictProxy
    from yarl import URL

    answer = _decoded(answer, auto_decompress)
    loop = asyncio.get_running_loop()
    target = URL(url)
    info = aiohttp.RequestInfo(
        target, method.upper(), CIMultiDictProxy(CIMultiDict(request_headers)), target
    )
    response_cls = getattr(session, "_response_class", aiohttp.ClientResponse)
    extra: dict[str, Any] = {}
    # aiohttp 3.14 requires ``stream_writer`` and reads its ``output_size`` when ``writer`` is
    # None (the request "was sent"); older versions do not take it.
    if "stream_writer" in inspect.signature(response_cls.__init__).parameters:
        extra["stream_writer"] = types.SimpleNamespace(output_size=0)
    response = response_cls(
        method.upper(),
        target,
        writer=None,
        continue100=None,
        timer=None,
        request_info=info,
        traces=[],
        loop=loop,
        session=session,
        **extra,
    )
    response.version = aiohttp.HttpVersion11
    response.status = answer.status_code
    try:
        response.reason = HTTPStatus(answer.status_code).phrase
    except ValueError:
        response.reason = ""
    headers = CIMultiDict(answer.headers)
    response._headers = CIMultiDictProxy(headers)
    response._raw_headers = tuple((k.encode(), v.encode()) for k, v in answer.headers)
    cookies = tuple(headers.getall("set-cookie", ()))
    if cookies:
        response._raw_cookie_headers = cookies
        with contextlib.suppress(Exception):  # a cookie it cannot parse is aiohttp's to skip
            session.cookie_jar.update_cookies_from_headers(cookies, response.url)
    size = sum(len(data) for _, data in answer.chunks)
    limit = max(getattr(session, "_read_bufsize", 2**16), size, 2**16)
    reader = aiohttp.StreamReader(_NoConnection(), limit, loop=loop)
    # Open until the end of the body, then closed, as a response read from a connection.
    response._closed = False
    reader.on_eof(response._response_eof)
    response.content = reader
    if answer.realtime:
        task = loop.create_task(_feed(reader, answer, time.perf_counter(), aiohttp))
        response.__dict__["_workbench_feeder"] = task
    else:
        for _, data in answer.chunks:
            reader.feed_data(data)
        reader.feed_eof()
    return response


async def _raise_for_status(session: Any, response: Any, policy: Any) -> None:
    """What ``ClientSession._request`` does with ``raise_for_status`` once a response is in."""
    if policy is None:
        policy = getattr(session, "_raise_for_status", False)
    if callable(policy):
        await policy(response)
    elif policy:
        response.raise_for_status()


def patch(aiohttp: types.ModuleType) -> None:
    session_cls = aiohttp.ClientSession
    if getattr(session_cls, "__workbench_patched__", False):
        return
    reader_cls = aiohttp.StreamReader
    response_cls = aiohttp.ClientResponse
    original_request = session_cls._request
    original_chunk = reader_cls._read_nowait_chunk
    original_release = response_cls.release
    original_close = response_cls.close

    async def _request(self: Any, method: str, str_or_url: Any, **kwargs: Any) -> Any:
        frame = frame_to_capture()
        if frame is None:
            return await original_request(self, method, str_or_url, **kwargs)
        body: Any = kwargs.get("data")
        if kwargs.get("json") is not None:
            body = self._json_serialize(kwargs["json"])
        if isinstance(body, str):
            body = body.encode()
        elif not isinstance(body, (bytes, bytearray)):
            body = None
        headers = dict(self.headers)
        headers.update(kwargs.get("headers") or {})
        if kwargs.get("json") is not None:
            headers.setdefault("Content-Type", "application/json")
        url = _full_url(self, str_or_url, kwargs.get("params"))
        rewritten = rewritten_body(frame, url, body)
        if rewritten is not None:
            # Sent as bytes from here on; the content type ``json=`` would have set is kept.
            body = rewritten
            kwargs.pop("json", None)
            kwargs["data"] = rewritten
            kwargs["headers"] = headers
        call = start_call(frame, method, url, list(headers.items()), body)
        if call is None:
            return await original_request(self, method, str_or_url, **kwargs)
        auto_decompress = kwargs.get("auto_decompress")
        if auto_decompress is None:
            auto_decompress = getattr(self, "_auto_decompress", True)
        answer: RecordedAnswer | None = None
        try:
            answer = answer_for(call)
            if answer is not None and answer.failed_before_response:
                assert answer.error is not None
                raise recorded_exception(answer.error, aiohttp.ClientConnectionError)
            if answer is None:
                response = await sent_below_async(
                    original_request, self, method, str_or_url, **kwargs
                )
            else:
                response = _replayed(aiohttp, self, method, url, headers, answer, auto_decompress)
        except BaseException as exc:
            call.finish(error=exc)
            raise
        call.response(response.status, list(response.headers.items()), decoded=auto_decompress)
        content = response.content
        if content.at_eof():
            call.finish()
        else:
            key = id(content)
            # The entry holds the reader itself, so its id cannot be reused while recorded;
            # it goes when the call is finished, whoever finishes it (end, release, abandon).
            _recorded[key] = (content, call)
            call.on_done = functools.partial(_forget_reader, key)
            response.__dict__["_workbench_reader"] = content
        if answer is not None:
            await _raise_for_status(self, response, kwargs.get("raise_for_status"))
        return response

    def _read_nowait_chunk(self: Any, n: int) -> bytes:
        data: bytes = original_chunk(self, n)
        if _recorded:
            entry = _recorded.get(id(self))
            if entry is not None and entry[0] is self:
                call = entry[1]
                call.chunk(data)
                if self.at_eof():
                    call.finish()
        return data

    def _forget(response: Any) -> None:
        feeder = response.__dict__.get("_workbench_feeder")
        if feeder is not None:
            feeder.cancel()  # a realtime replay released before its end stops feeding
        reader = response.__dict__.get("_workbench_reader")
        if reader is not None:
            entry = _recorded.get(id(reader))
            if entry is not None and entry[0] is reader:
                entry[1].finish()  # released early; the analysis tells a truncated stream

    def release(self: Any) -> Any:
        _forget(self)
        return original_release(self)

    def close(self: Any) -> Any:
        _forget(self)
        return original_close(self)

    session_cls._request = _request
    reader_cls._read_nowait_chunk = _read_nowait_chunk
    response_cls.release = release
    response_cls.close = close
    session_cls.__workbench_patched__ = True
