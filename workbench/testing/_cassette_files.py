"""vcrpy / pytest-recording cassette files turned into workbench recordings, and back.

Owns reading a cassette (vcrpy's own deserializer, so every cassette vcrpy reads is read
alike), where its recording goes (a pytest-recording cassette,
``<dir>/cassettes/<module>/<test>.yaml``, becomes the recording of test
``<dir>/<module>.py::<test>`` in ``<dir>/recordings/<module>.db``, where the pytest plugin
looks; any other cassette an execution named after the file), and writing a recording's calls
as a cassette vcrpy plays.

An imported cassette is *recorded*, not converted: each interaction's request is sent through
httpx inside an execution whose interceptor answers it with the cassette's response, so the
capture layer canonicalises, redacts, keys, analyses and prices it exactly as a live call
(the cassette keeps no timing: its calls take no time). A cassette's credentials (vcrpy keeps
``Authorization`` unless filtered) are redacted on the way in like any request's.
"""

from __future__ import annotations

import http
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from workbench._context import Frame
from workbench.capture._call import PendingCall, RecordedAnswer
from workbench.exceptions import ConfigError
from workbench.recorder import record
from workbench.records import ModelCall
from workbench.store import Store, open_store
from workbench.testing._cassette import META, RECORDINGS_DIR, load_recording, recorded_runs

__all__ = [
    "ImportedCassette",
    "cassette_target",
    "export_cassette",
    "import_cassette",
]


@dataclass(frozen=True)
class ImportedCassette:
    """One cassette imported: where from, the execution it became, in which store."""

    path: Path
    execution_id: str
    name: str
    store: Path
    calls: int


def cassette_target(path: Path, root: Path | None = None) -> tuple[str, Path | None]:
    """The recording a cassette becomes: the test node id and its module's recordings store
    for a pytest-recording cassette (node ids relative to ``root``, the working directory by
    default), else the file's stem and ``None`` (the caller's store)."""
    path = path.resolve()
    module, folder = path.parent, path.parent.parent
    if folder.name != "cassettes" or path.suffix not in (".yaml", ".yml"):
        return path.stem, None
    tests = folder.parent
    base = (root or Path.cwd()).resolve()
    try:
        where = tests.relative_to(base).as_posix()
    except ValueError:
        where = tests.as_posix()
    prefix = "" if where == "." else f"{where}/"
    # pytest-recording names a method's cassette "Class.test": its node id is Class::test.
    test = "::".join(path.stem.split(".", 1)) if "." in path.stem else path.stem
    return (
        f"{prefix}{module.name}.py::{test}",
        tests / RECORDINGS_DIR / f"{module.name}.db",
    )


class _Answers:
    """The interceptor of an import: the n-th request gets the cassette's n-th response."""

    def __init__(self, responses: list[dict[str, Any]]) -> None:
        self._left = deque(responses)
        self._lock = threading.Lock()

    def rewrite(self, frame: Frame, url: str, body: bytes) -> bytes | None:
        return None

    def answer(self, call: PendingCall) -> RecordedAnswer | None:
        with self._lock:
            response = self._left.popleft()
        headers = [
            (str(name), str(value))
            for name, values in (response.get("headers") or {}).items()
            for value in (values if isinstance(values, list) else [values])
        ]
        body = (response.get("body") or {}).get("string") or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        return RecordedAnswer(int(response["status"]["code"]), headers, [(0.0, body)])


def _read(path: Path) -> tuple[list[Any], list[dict[str, Any]]]:
    from workbench.replay._vcr import require_vcrpy

    require_vcrpy()
    from vcr.serialize import deserialize
    from vcr.serializers import yamlserializer

    try:
        loaded = deserialize(path.read_text(encoding="utf-8"), yamlserializer)
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"cannot read cassette {path}: {type(exc).__name__}: {exc}; give a vcrpy or "
            f"pytest-recording YAML cassette"
        ) from exc
    except Exception as exc:  # yaml's errors: the cassette is not YAML vcrpy reads
        raise ConfigError(f"cannot read cassette {path}: {exc}") from exc
    return list(loaded[0]), list(loaded[1])


def import_cassette(
    path: Path, *, store: Store | None = None, root: Path | None = None
) -> ImportedCassette:
    """Record cassette ``path`` as a recording (see :func:`cassette_target`), replacing the
    test's earlier recording; ``store`` overrides where it goes."""
    import httpx

    requests, responses = _read(path)
    name, default = cassette_target(path, root)
    if store is None:
        store = open_store(default)  # None: the default store, as every command
    earlier = recorded_runs(store, name)
    meta = {
        "nodeid": name,
        "record_mode": "imported",
        "recording": True,
        "replayed_from": None,
        "executions": [],
        "cassette": str(path),
    }
    with record(name, inputs={}, store=store, metadata={META: meta}, sampled=True) as run:
        run.interceptor = _Answers(responses)
        with httpx.Client() as client:
            for request in requests:
                headers = [(str(k), str(v)) for k, v in request.headers.items()]
                client.request(
                    request.method, request.uri, headers=headers, content=request.body_bytes
                ).read()
    store.delete_executions(earlier)
    return ImportedCassette(path, run.id, name, store.path, len(requests))


def _request_body(call: ModelCall) -> bytes | None:
    request = call.request if isinstance(call.request, dict) else {}
    body, kind = request.get("body"), request.get("body_format")
    if kind == "json":
        import orjson

        return orjson.dumps(body)
    if kind == "text" and isinstance(body, dict):
        return str(body.get("text", "")).encode("utf-8")
    if kind == "base64" and isinstance(body, dict):
        import base64

        return base64.b64decode(body.get("base64", ""))
    if kind == "form" and isinstance(body, list):
        return urlencode([tuple(pair) for pair in body]).encode("ascii")
    return None  # no body, or one kept only as a digest


def export_cassette(store: Store, execution_id: str, path: Path) -> int:
    """Write the model calls of execution ``execution_id`` (and, for a test's recording, of
    the executions it started) as a vcrpy cassette at ``path``; how many interactions."""
    from workbench.replay._vcr import require_vcrpy

    require_vcrpy()
    from vcr.request import Request
    from vcr.serialize import serialize
    from vcr.serializers import yamlserializer

    recording = load_recording(store, execution_id)
    requests, responses = [], []
    for call in recording.calls:
        if call.status_code is None:
            continue  # a transport error: no response for a cassette to hold
        request = call.request if isinstance(call.request, dict) else {}
        query = request.get("query") or []
        uri = str(request.get("url", "")) + (f"?{urlencode(query)}" if query else "")
        headers = {str(k): str(v) for k, v in (request.get("headers") or {}).items()}
        requests.append(Request(request.get("method", "POST"), uri, _request_body(call), headers))
        try:
            reason = http.HTTPStatus(call.status_code).phrase
        except ValueError:
            reason = ""
        responses.append(
            {
                "status": {"code": call.status_code, "message": reason},
                "headers": {name: [value] for name, value in call.response_headers.items()},
                "body": {"string": call.body},
            }
        )
    if not requests:
        raise ConfigError(f"execution {execution_id} has no answered model call to export")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        serialize({"requests": requests, "responses": responses}, yamlserializer),
        encoding="utf-8",
    )
    return len(requests)
