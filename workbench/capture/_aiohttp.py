"""Capture for ``aiohttp``: ``ClientSession._request``, teeing the response's StreamReader.

aiohttp's ``StreamReader`` has ``__slots__``, so the tee is a class-level wrapper around
``_read_nowait_chunk`` (every read method ends there) that looks the reader up in a dict of
readers being recorded; readers of unrecorded responses pay one dict miss per read.
"""

from __future__ import annotations

import types
from typing import Any

from workbench._context import current
from workbench.capture._call import PendingCall

__all__ = ["patch"]

_recorded: dict[int, PendingCall] = {}


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
        url = str(self._build_url(str_or_url)) if hasattr(self, "_build_url") else str(str_or_url)
        call = PendingCall(frame, method, url, list(headers.items()), body)
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
            _recorded[id(content)] = call
            response.__dict__["_workbench_reader"] = id(content)
        return response

    def _read_nowait_chunk(self: Any, n: int) -> bytes:
        data: bytes = original_chunk(self, n)
        if _recorded:
            call = _recorded.get(id(self))
            if call is not None:
                call.chunk(data)
                if self.at_eof():
                    del _recorded[id(self)]
                    call.finish()
        return data

    def _forget(response: Any) -> None:
        key = response.__dict__.get("_workbench_reader")
        if key is not None:
            call = _recorded.pop(key, None)
            if call is not None:
                call.finish()  # released early; the analysis tells a truncated stream

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
