"""Capture for ``requests``: ``HTTPAdapter.send``, teeing ``response.raw.stream``.

requests reads every body (streamed or not) through ``raw.stream(..., decode_content=True)``,
so the copy is of the decoded bytes and the stored headers drop ``content-encoding``.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Any

from workbench._context import current
from workbench.capture._call import start_call

__all__ = ["patch"]


def patch(requests: types.ModuleType) -> None:
    adapter = requests.adapters.HTTPAdapter
    if getattr(adapter, "__workbench_patched__", False):
        return
    original_send = adapter.send

    def send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        frame = current.get()
        if frame is None or not frame.run.capture_enabled:
            return original_send(self, request, *args, **kwargs)
        body = request.body
        if isinstance(body, str):
            body = body.encode()
        elif not isinstance(body, (bytes, bytearray)):
            body = None  # a generator or file body: sent as is, not kept
        call = start_call(frame, request.method, request.url, list(request.headers.items()), body)
        if call is None:
            return original_send(self, request, *args, **kwargs)
        try:
            response = original_send(self, request, *args, **kwargs)
        except BaseException as exc:
            call.finish(error=exc)
            raise
        call.response(response.status_code, list(response.headers.items()), decoded=True)
        raw = response.raw
        raw_stream = raw.stream

        def stream(amt: int = 2**16, decode_content: bool | None = None) -> Iterator[bytes]:
            try:
                for chunk in raw_stream(amt, decode_content=decode_content):
                    call.chunk(chunk)
                    yield chunk
            except GeneratorExit:  # stopped early; the analysis tells a truncated stream
                call.finish()
                raise
            except BaseException as exc:
                call.finish(error=exc)
                raise
            call.finish()

        raw.stream = stream
        return response

    adapter.send = send
    adapter.__workbench_patched__ = True
