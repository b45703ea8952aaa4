"""vcrpy's stubs answering from a recorded execution: :class:`WorkbenchCassette`.

vcrpy owns the patching — its stubs for the httpx/httpx2 transports, requests/urllib3,
aiohttp and the rest — and this module owns what sits under them: a cassette whose lookup is
workbench's, the request key of the canonical request plus its occurrence (a dict hit), not
vcrpy's scan of every interaction with its matchers (which, with the body matcher, builds a
difflib diff per non-matching entry). So a recorded execution serves any code vcrpy can stub,
inside or outside a replay, with no cassette file.

Used two ways: ``RequestReplay().replay_execution(id, modifications={"stubs": "vcrpy"})``, and
standalone as a context manager around any code (``with vcr_cassette(store, id): ...``).

What vcrpy's stubs cannot do: they hand a response body over in one piece, so a stream arrives
as one chunk and ``realtime`` timing is not possible. The default replay answers at
workbench's own patch point instead and keeps the original chunking and timing.
"""

from __future__ import annotations

import contextlib
import http
import itertools
import threading
from collections.abc import Iterator
from typing import Any

from workbench.capture.canonical import canonical_request, request_key
from workbench.config import load_config
from workbench.exceptions import ConfigError
from workbench.redaction import sensitive_names
from workbench.replay._index import RecordedCalls, request_diff, request_summary
from workbench.store import RecordedResponse, Store

__all__ = ["WorkbenchCassette", "require_vcrpy", "stubs_installed", "vcr_cassette"]

try:  # vcrpy is optional: only this way of replaying needs it
    from vcr.cassette import Cassette as _VcrCassette
    from vcr.errors import UnhandledHTTPRequestError
    from vcr.patch import CassettePatcherBuilder
    from vcr.record_mode import RecordMode
except ImportError:  # pragma: no cover - exercised only where vcrpy is absent
    _VcrCassette = object
    _MISSING_VCRPY = True
else:
    _MISSING_VCRPY = False

_KEY_ATTRIBUTE = "_workbench_lookup"


def require_vcrpy() -> None:
    if _MISSING_VCRPY:
        raise ConfigError(
            "replaying through vcrpy's stubs needs vcrpy, which is not installed; install it "
            "with `pip install 'pipeline-workbench[vcr]'`, or replay without "
            "modifications['stubs'] (workbench's own stubs need nothing more)"
        )


class WorkbenchCassette(_VcrCassette):  # type: ignore[misc]
    """A vcrpy cassette over one recorded execution's model calls.

    ``live=True`` lets requests without a recorded answer through to the network (vcrpy's
    ``new_episodes``); otherwise they fail as vcrpy's do, with workbench's nearest recorded
    request and a diff in the message. Nothing is ever written: a replay records itself.
    """

    def __init__(
        self,
        recorded: RecordedCalls,
        *,
        name: str = "workbench",
        live: bool = False,
        volatile_fields: tuple[str, ...] | None = None,
        sensitive_fields: tuple[str, ...] | None = None,
    ) -> None:
        require_vcrpy()
        super().__init__(
            path=name, record_mode=RecordMode.NEW_EPISODES if live else RecordMode.NONE
        )
        config = load_config().capture
        self._recorded = recorded
        self._volatile = tuple(
            config.volatile_fields if volatile_fields is None else volatile_fields
        )
        self._sensitive = sensitive_names(
            config.sensitive_fields if sensitive_fields is None else sensitive_fields
        )
        self._counts: dict[str, Iterator[int]] = {}
        self._lock = threading.Lock()
        #: Recorded calls vcrpy's stubs played, in the order they were asked for.
        self.played: list[RecordedResponse] = []

    def __len__(self) -> int:
        return len(self._recorded)

    def __contains__(self, request: Any) -> bool:
        return self._lookup(request)[1] is not None

    # -- what vcrpy's stubs call ------------------------------------------------------------

    def can_play_response_for(self, request: Any) -> bool:
        return self._lookup(request)[1] is not None

    def play_response(self, request: Any) -> dict[str, Any]:
        canonical, found = self._lookup(request)
        if found is None or found.status_code is None:
            raise UnhandledHTTPRequestError(self._miss_message(canonical))
        with self._lock:
            self.played.append(found)
            self.play_counts[found.call_id] += 1
        try:
            reason = http.HTTPStatus(found.status_code).phrase
        except ValueError:
            reason = ""
        return {
            "status": {"code": found.status_code, "message": reason},
            "headers": {name: [value] for name, value in found.headers.items()},
            "body": {"string": found.body},
        }

    def append(self, request: Any, response: Any) -> None:
        """A request sent live (``live=True``) is recorded by the replay, not by a cassette."""

    def responses_of(self, request: Any) -> list[dict[str, Any]]:
        return [self.play_response(request)]

    def find_requests_with_most_matches(self, request: Any) -> list[Any]:
        return []

    def _save(self, force: bool = False) -> None:
        """Nothing to save: the recording is the store's."""

    # -- the lookup -------------------------------------------------------------------------

    def _lookup(self, request: Any) -> tuple[dict[str, Any], RecordedResponse | None]:
        """The request's canonical form and recorded answer, worked out once per request
        (vcrpy asks ``can_play_response_for`` and then ``play_response`` for one request);
        the n-th identical request takes the n-th occurrence, answered or not."""
        cached = getattr(request, _KEY_ATTRIBUTE, None)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        body = request.body
        if isinstance(body, str):
            body = body.encode()
        canonical = canonical_request(
            request.method,
            request.uri,
            dict(request.headers),
            body,
            volatile_fields=self._volatile,
            sensitive_fields=self._sensitive,
        )
        key = request_key(canonical)
        with self._lock:
            counter = self._counts.setdefault(key, itertools.count())
        result = (canonical, self._recorded.get(key, next(counter)))
        setattr(request, _KEY_ATTRIBUTE, result)
        return result

    def _miss_message(self, canonical: dict[str, Any]) -> str:
        nearest = self._recorded.nearest(canonical)
        lines = [
            f"the recording has no answer for {request_summary(canonical)}",
            "  nearest recorded request: "
            + (
                "(none with this method and path)"
                if nearest is None
                else request_summary(nearest.request)
            ),
        ]
        if nearest is not None:
            lines.append(request_diff(nearest.request, canonical))
        return "\n".join(lines)


@contextlib.contextmanager
def stubs_installed(cassette: WorkbenchCassette) -> Iterator[WorkbenchCassette]:
    """vcrpy's stubs patched in, answering from ``cassette``, for the duration."""
    require_vcrpy()
    with contextlib.ExitStack() as patches:
        for patcher in CassettePatcherBuilder(cassette).build():
            patches.enter_context(patcher)
        yield cassette


@contextlib.contextmanager
def vcr_cassette(
    store: Store, execution_id: str, *, live: bool = False
) -> Iterator[WorkbenchCassette]:
    """Answer HTTP calls made inside the block from a recorded execution, through vcrpy's stubs.

    >>> with vcr_cassette(store, "exec_12345") as cassette:
    ...     client.chat.completions.create(...)   # served from the recording
    >>> len(cassette.played)

    A request the recording has no answer for raises vcrpy's
    ``CannotOverwriteExistingCassetteException`` (or, with ``live=True``, is sent for real).
    Raises
    :class:`~workbench.exceptions.ExecutionNotFoundError` for an unknown id.
    """
    store.get_execution(execution_id, model_calls=False)  # unknown id: a clear error first
    recorded = RecordedCalls(
        store.recorded_responses(execution_id),
        lambda: store.get_execution(execution_id).model_calls,
    )
    cassette = WorkbenchCassette(recorded, name=f"{store.path}#{execution_id}", live=live)
    with stubs_installed(cassette):
        yield cassette
