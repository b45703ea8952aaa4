"""Capture for ``requests``: ``HTTPAdapter.send``, teeing ``response.raw.stream``.

requests reads every body (streamed or not) through ``raw.stream(..., decode_content=True)``,
so the copy is of the decoded bytes and the stored headers drop ``content-encoding``.

When the run's interceptor answers (a replay), the adapter builds its ``Response`` around a
small urllib3-like ``raw`` whose ``stream`` yields the recorded chunks: nothing is sent.
"""

from __future__ import annotations

import dataclasses
import time
import types
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

from workbench._http import decode_content
from workbench.capture._call import (
    RecordedAnswer,
    answer_chunks,
    answer_for,
    recorded_exception,
    rewritten_body,
    start_call,
)
from workbench.capture._guard import frame_to_capture, sent_below

__all__ = ["patch"]


class _ReplayRaw:
    """Just enough of ``urllib3.HTTPResponse`` for ``requests`` to read a recorded answer."""

    def __init__(self, answer: RecordedAnswer) -> None:
        headers = dict(answer.headers)
        encoding = next((k for k in headers if k.lower() == "content-encoding"), None)
        if encoding is not None:
            # Recorded through httpx, still encoded; requests' readers expect decoded bytes.
            body = decode_content(b"".join(data for _, data in answer.chunks), headers)
            del headers[encoding]
            last = answer.chunks[-1][0] if answer.chunks else 0.0
            answer = dataclasses.replace(
                answer, headers=list(headers.items()), chunks=[(last, body)]
            )
        self._answer = answer
        self._started = time.perf_counter()
        self.status = answer.status_code
        self.headers = headers
        try:
            self.reason = HTTPStatus(answer.status_code).phrase
        except ValueError:
            self.reason = ""

    def stream(self, amt: int = 2**16, decode_content: bool | None = None) -> Iterator[bytes]:
        yield from answer_chunks(self._answer, self._started)
        if self._answer.error is not None:  # the recorded stream was cut here: so is this one
            import urllib3

            raise recorded_exception(self._answer.error, urllib3.exceptions.ProtocolError)

    def release_conn(self) -> None:
        pass

    def close(self) -> None:
        pass


def patch(requests: types.ModuleType) -> None:
    adapter = requests.adapters.HTTPAdapter
    if getattr(adapter, "__workbench_patched__", False):
        return
    original_send = adapter.send

    def send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        frame = frame_to_capture()
        if frame is None:
            return original_send(self, request, *args, **kwargs)
        body = request.body
        if isinstance(body, str):
            body = body.encode()
        elif not isinstance(body, (bytes, bytearray)):
            body = None  # a generator or file body: sent as is, not kept
        new = rewritten_body(frame, request.url, body)
        if new is not None:  # in place: the response's ``request`` is this object
            request.body = body = new
            request.headers["Content-Length"] = str(len(new))
        call = start_call(frame, request.method, request.url, list(request.headers.items()), body)
        if call is None:
            return original_send(self, request, *args, **kwargs)
        try:
            answer = answer_for(call)
            if answer is not None and answer.failed_before_response:
                assert answer.error is not None
                raise recorded_exception(answer.error, requests.exceptions.ConnectionError)
            if answer is None:
                response = sent_below(original_send, self, request, *args, **kwargs)
            else:
                response = self.build_response(request, _ReplayRaw(answer))
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
