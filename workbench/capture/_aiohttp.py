"""Capture for ``aiohttp``: ``ClientSession._request``, teeing the response's StreamReader.

aiohttp's ``StreamReader`` has ``__slots__``, so the tee is a class-level wrapper around
``_read_nowait_chunk`` (every read method ends there) that looks the reader up in a dict of
readers being recorded; readers of unrecorded responses pay one dict miss per read.
"""

from __future__ import annotations

import contextlib
import functools
import types
from typing import Any

from workbench._context import current
from workbench.capture._call import PendingCall, start_call

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
        frame = current.get()
        if frame is None or not frame.run.capture_enabled:
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
        call = start_call(frame, method, url, list(headers.items()), body)
        if call is None:
            return await original_request(self, method, str_or_url, **kwargs)
        try:
            response = await original_request(self, method, str_or_url, **kwargs)
        except BaseException as exc:
            call.finish(error=exc)
            raise
        call.response(
            response.status,
            list(response.headers.items()),
            decoded=getattr(self, "_auto_decompress", True),
        )
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
