"""Capture for httpx and httpx2 (the ``openai`` 3.x and ``anthropic`` SDKs send through httpx2).

Patches ``Client._send_single_request`` and ``AsyncClient._send_single_request`` — the one place
every request passes whatever transport the client uses — and tees the response stream: the
caller gets each chunk the moment it arrives, and the recorder keeps a copy with its time offset.
Outside an execution the patched method costs one contextvar read.

When the run has an interceptor (a replay) and it answers, no request is sent: the response is
the module's own ``Response`` over a stream of the recorded chunks, teed like a real one.
"""

from __future__ import annotations

import datetime
import time
import types
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any

from workbench.capture._call import (
    PendingCall,
    RecordedAnswer,
    answer_chunks,
    answer_chunks_async,
    answer_for,
    recorded_exception,
    rewritten_body,
    start_call,
)
from workbench.capture._guard import frame_to_capture, sent_below, sent_below_async

__all__ = ["patch"]


def _request_body(request: Any) -> bytes | None:
    try:
        content = request.content
    except Exception:  # a streaming request body that was never read: nothing to keep
        return None
    return bytes(content) if content else None


def _header_items(headers: Any) -> list[tuple[str, str]]:
    """The request's headers as ``multi_items()`` gives them, but with the headers' encoding
    looked up once rather than twice per header (a property that loops): the canonical request
    lower-cases the names itself, so the raw ones do."""
    encoding = headers.encoding
    return [(name.decode(encoding), value.decode(encoding)) for name, value in headers.raw]


def _rewrite(module: types.ModuleType, frame: Any, request: Any, url: str) -> bytes | None:
    """The request's body, after the run's interceptor has had its say (the request is
    changed in place: the client and the response keep referring to the same object)."""
    body = _request_body(request)
    new = rewritten_body(frame, url, body)
    if new is None:
        return body
    request.headers["Content-Length"] = str(len(new))
    request.stream = module.ByteStream(new)
    request._content = new
    return new


def _set_elapsed(response: weakref.ref[Any] | None, started: float) -> None:
    found = None if response is None else response()
    if found is not None:
        found.elapsed = datetime.timedelta(seconds=time.perf_counter() - started)


def patch(module: types.ModuleType) -> None:
    """Install capture on one httpx-compatible module (``httpx`` or ``httpx2``)."""
    if getattr(module, "__workbench_patched__", False):
        return
    sync_base, async_base = module.SyncByteStream, module.AsyncByteStream

    class SyncTee(sync_base):  # type: ignore[misc, valid-type]
        def __init__(self, inner: Any, call: PendingCall) -> None:
            self._inner = inner
            self._call = call

        @property
        def elapsed(self) -> Any:
            # httpx2 reads a response's ``elapsed`` from its stream (its own bound stream,
            # which this tee wraps), where httpx sets it on the response.
            return getattr(self._inner, "elapsed", None)

        def __iter__(self) -> Iterator[bytes]:
            call = self._call
            try:
                for chunk in self._inner:
                    call.chunk(chunk)
                    yield chunk
                if call.replay_error is not None:  # the recorded stream was cut here
                    raise recorded_exception(call.replay_error, module.RemoteProtocolError)
            except GeneratorExit:  # the caller stopped early (an SDK does after [DONE])
                call.finish()
                raise
            except BaseException as exc:
                call.finish(error=exc)
                raise
            call.finish()

        def close(self) -> None:
            try:
                self._inner.close()
            finally:
                # Closed before the end is normal (SDKs stop at [DONE]); a stream that really
                # was cut short is told apart by the provider analysis of what arrived.
                self._call.finish()

    class AsyncTee(async_base):  # type: ignore[misc, valid-type]
        def __init__(self, inner: Any, call: PendingCall) -> None:
            self._inner = inner
            self._call = call

        @property
        def elapsed(self) -> Any:
            # httpx2 reads a response's ``elapsed`` from its stream (its own bound stream,
            # which this tee wraps), where httpx sets it on the response.
            return getattr(self._inner, "elapsed", None)

        async def __aiter__(self) -> AsyncIterator[bytes]:
            call = self._call
            try:
                async for chunk in self._inner:
                    call.chunk(chunk)
                    yield chunk
                if call.replay_error is not None:  # the recorded stream was cut here
                    raise recorded_exception(call.replay_error, module.RemoteProtocolError)
            except GeneratorExit:  # the caller stopped early (an SDK does after [DONE])
                call.finish()
                raise
            except BaseException as exc:
                call.finish(error=exc)
                raise
            call.finish()

        async def aclose(self) -> None:
            try:
                await self._inner.aclose()
            finally:
                # Closed before the end is normal (SDKs stop at [DONE]); a stream that really
                # was cut short is told apart by the provider analysis of what arrived.
                self._call.finish()

    class ReplayStream(SyncTee):
        """A recorded answer served as the response stream, teed into ``call`` as it is read.

        One pass over the body, however often the stream is iterated: SDKs drain a response
        again after its end, and a network stream has nothing left by then.
        """

        def __init__(self, answer: RecordedAnswer, call: PendingCall) -> None:
            self._started = time.perf_counter()
            super().__init__(answer_chunks(answer, self._started), call)
            self.response: weakref.ref[Any] | None = None

        def close(self) -> None:
            # What httpx's own bound stream does: SDKs may read ``response.elapsed``.
            _set_elapsed(self.response, self._started)
            super().close()

    class AsyncReplayStream(AsyncTee):
        """:class:`ReplayStream` for async clients."""

        def __init__(self, answer: RecordedAnswer, call: PendingCall) -> None:
            self._started = time.perf_counter()
            super().__init__(answer_chunks_async(answer, self._started), call)
            self.response: weakref.ref[Any] | None = None

        async def aclose(self) -> None:
            _set_elapsed(self.response, self._started)
            await super().aclose()

    def replayed(client: Any, request: Any, answer: RecordedAnswer, stream: Any) -> Any:
        """The response the client would have returned, built from ``answer`` (no network)."""
        response = module.Response(
            answer.status_code, headers=answer.headers, stream=stream, request=request
        )
        # A weak reference: the response holds the stream, and a cycle of the two (with the
        # request, headers and the call they lead to) per replayed call was freed only by the
        # cyclic collector, which then ran every ~25 calls and, as a long replay's survivors
        # piled up, made full collections whose cost grows with the recording.
        stream.response = weakref.ref(response)
        client.cookies.extract_cookies(response)
        response.default_encoding = client._default_encoding
        return response

    def _failure(answer: RecordedAnswer) -> Exception:
        """What the recorded call raised instead of answering (a refused connection...)."""
        assert answer.error is not None
        return recorded_exception(answer.error, module.ConnectError)

    sync_send = module.Client._send_single_request
    async_send = module.AsyncClient._send_single_request

    def _send_single_request(self: Any, request: Any) -> Any:
        frame = frame_to_capture()
        if frame is None:
            return sync_send(self, request)
        url = str(request.url)  # httpx builds the string anew on each str()
        call = start_call(
            frame,
            request.method,
            url,
            _header_items(request.headers),
            _rewrite(module, frame, request, url),
        )
        if call is None:
            return sync_send(self, request)
        try:
            answer = answer_for(call)
            if answer is not None and answer.failed_before_response:
                raise _failure(answer)
            if answer is None:
                response = sent_below(sync_send, self, request)
            else:
                response = replayed(self, request, answer, ReplayStream(answer, call))
                call.response(answer.status_code, answer.headers)
                return response
        except BaseException as exc:
            call.finish(error=exc)
            raise
        call.response(response.status_code, response.headers.multi_items())
        response.stream = SyncTee(response.stream, call)
        return response

    async def _async_send_single_request(self: Any, request: Any) -> Any:
        frame = frame_to_capture()
        if frame is None:
            return await async_send(self, request)
        url = str(request.url)  # httpx builds the string anew on each str()
        call = start_call(
            frame,
            request.method,
            url,
            _header_items(request.headers),
            _rewrite(module, frame, request, url),
        )
        if call is None:
            return await async_send(self, request)
        try:
            answer = answer_for(call)
            if answer is not None and answer.failed_before_response:
                raise _failure(answer)
            if answer is None:
                response = await sent_below_async(async_send, self, request)
            else:
                response = replayed(self, request, answer, AsyncReplayStream(answer, call))
                call.response(answer.status_code, answer.headers)
                return response
        except BaseException as exc:
            call.finish(error=exc)
            raise
        call.response(response.status_code, response.headers.multi_items())
        response.stream = AsyncTee(response.stream, call)
        return response

    module.Client._send_single_request = _send_single_request
    module.AsyncClient._send_single_request = _async_send_single_request
    module.__workbench_patched__ = True  # type: ignore[attr-defined]
