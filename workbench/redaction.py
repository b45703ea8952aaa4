"""Keeping secrets out of recordings: values under sensitive names become ``[REDACTED]``.

The one home of what counts as a secret and of the walks that replace it. The capture layer
applies it to request headers, queries and bodies (through ``capture.canonical``) and to response
headers; the recorder to parameters, results, states and log fields. A name is sensitive when,
lower-cased and with ``-`` read as ``_``, it is one of the built-in credential names or one of the
configured ``capture.sensitive_fields``; matching is at any depth.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Collection, Iterable, Mapping
from typing import Any, TypeAlias

from workbench._json import decode, encode

__all__ = [
    "REDACTED",
    "SENSITIVE_HEADERS",
    "encode_redacted",
    "forget_secrets",
    "redact_headers",
    "redact_json",
    "remember_environment",
    "remember_secret",
    "scrub_bytes",
    "scrub_json",
    "scrub_text",
    "sensitive_names",
]

_JSON: TypeAlias = Any
_Headers: TypeAlias = Mapping[str, str] | Iterable[tuple[str, str]]

#: What a secret value is replaced by.
REDACTED = "[REDACTED]"

# Names are compared after lower-casing and turning "-" into "_", so that ``X-Api-Key``,
# ``x_api_key`` and ``X-API-KEY`` are one name.
_SENSITIVE_NAMES = frozenset(
    {
        "authorization",
        "proxy_authorization",
        "x_api_key",
        "api_key",
        "apikey",
        "cookie",
        "set_cookie",
        "x_goog_api_key",
        "access_token",
        "refresh_token",
        "client_secret",
        "secret",
        "password",
    }
)


def _normalise_name(name: str) -> str:
    return name.lower().replace("-", "_")


# The capture layer passes the same configured names with every call: build their set once.
_sensitive_sets: dict[frozenset[str], frozenset[str]] = {}


def _sensitive_set(extra: Collection[str]) -> frozenset[str]:
    if not extra:
        return _SENSITIVE_NAMES
    names = extra if isinstance(extra, frozenset) else frozenset(extra)
    found = _sensitive_sets.get(names)
    if found is None:
        found = _SENSITIVE_NAMES | {_normalise_name(name) for name in names}
        if len(_sensitive_sets) < 64:
            _sensitive_sets[names] = found
    return found


# --------------------------------------------------------------------------------------------
# Redaction
# --------------------------------------------------------------------------------------------


def redact_headers(headers: _Headers, sensitive_fields: Collection[str] = ()) -> dict[str, str]:
    """All headers, names lower-cased, with the values of credential headers replaced.

    Repeated headers are joined with ``", "`` as HTTP allows. Credential headers are
    ``authorization``, ``proxy-authorization``, ``x-api-key``, ``api-key``, ``x-goog-api-key``,
    ``cookie``, ``set-cookie``, the secret names of :func:`redact_json`, and any name in
    ``sensitive_fields`` (case-insensitive, ``-`` = ``_``).
    """
    return _redact_headers(headers, _sensitive_set(sensitive_fields))


def _redact_headers(headers: _Headers, sensitive: frozenset[str]) -> dict[str, str]:
    result: dict[str, str] = {}
    items = headers.items() if isinstance(headers, Mapping) else headers
    known = _normalised_names.get  # inlined cache hit: a dozen headers on every request
    for raw_name, value in items:
        name = raw_name.lower()
        if (known(name) or _normalise_name_cached(name)) in sensitive:
            remember_secret(value)
            result[name] = REDACTED
        elif name in result:
            result[name] = f"{result[name]}, {value}"
        else:
            result[name] = value
    return result


def redact_json(value: _JSON, sensitive_fields: Collection[str] = ()) -> _JSON:
    """``value`` with every object member whose name is sensitive replaced by ``"[REDACTED]"``.

    Walks mappings, lists and tuples at any depth. A name is sensitive when it is (lower-cased,
    ``-`` read as ``_``) one of ``api_key``, ``apikey``, ``access_token``, ``refresh_token``,
    ``client_secret``, ``secret``, ``password``, a credential header name, or in
    ``sensitive_fields``. The whole value is
    replaced, whatever its type. The input is never modified; parts without secrets are shared
    with it rather than copied.
    """
    return _redact(value, _sensitive_set(sensitive_fields))


# Member names seen before, normalised: a dict lookup is several times cheaper than
# ``lower().replace()``, and the same few names ("role", "content") recur in every request.
# Bounded, because user JSON may be keyed by ids.
_normalised_names: dict[str, str] = {}
_LEAVES = (str, int, float, bool, type(None))


def _normalise_name_cached(name: str) -> str:
    normalised = _normalised_names.get(name)
    if normalised is None:
        normalised = _normalise_name(name)
        if len(_normalised_names) < 4096:
            _normalised_names[name] = normalised
    return normalised


def _redact(value: _JSON, sensitive: frozenset[str]) -> _JSON:
    if isinstance(value, Mapping):
        changed: dict[Any, Any] | None = None
        for name, item in value.items():
            if isinstance(name, str) and _normalise_name_cached(name) in sensitive:
                if isinstance(item, str):
                    remember_secret(item)
                new_item: Any = REDACTED
            elif type(item) in _LEAVES:
                continue
            else:
                new_item = _redact(item, sensitive)
                if new_item is item:
                    continue
            if changed is None:
                changed = dict(value)
            changed[name] = new_item
        return value if changed is None else changed
    if isinstance(value, list | tuple):
        out: list[Any] | None = None
        for index, item in enumerate(value):
            if type(item) in _LEAVES:
                continue
            new_item = _redact(item, sensitive)
            if new_item is not item:
                if out is None:
                    out = list(value)
                out[index] = new_item
        if out is None:
            return value
        return out if isinstance(value, list) else tuple(out)
    return value


#: Credential header names, as they appear on the wire.
SENSITIVE_HEADERS = frozenset(name.replace("_", "-") for name in _SENSITIVE_NAMES)


def sensitive_names(configured: Collection[str] = ()) -> frozenset[str]:
    """The built-in secret names plus ``configured``, normalised (lower case, ``_`` for ``-``)."""
    return _sensitive_set(frozenset(configured))


def encode_redacted(value: Any, sensitive: frozenset[str]) -> bytes:
    """JSON bytes of ``value``, secrets redacted (``sensitive`` from :func:`sensitive_names`).

    Values under sensitive names are redacted, and any secret value seen before anywhere (see
    :func:`remember_secret`) is scrubbed from the bytes. The common case — no sensitive name in
    the bytes — costs one normalising scan of the rendered bytes instead of a walk of the value.
    """
    data = encode(value)
    if _may_name_a_secret(data, sensitive):
        data = encode(_redact(decode(data), sensitive))
    return scrub_json(data)


def _may_name_a_secret(data: bytes, sensitive: frozenset[str]) -> bool:
    # Names are normalised (lower case, "_" for "-"); so are the bytes, which can only make the
    # test say "maybe" more often. A non-ASCII name cannot be matched on bytes: always walk.
    normalised = data.lower().replace(b"-", b"_")
    return any(not name.isascii() or name.encode() in normalised for name in sensitive)


# -- secret values seen, scrubbed wherever they turn up -----------------------------------------
#
# Redacting by name cannot catch a key that reappears in an error message, a traceback, a log
# line or a URL. So every value redacted by name is remembered, and every text workbench writes
# is scrubbed of the values remembered so far.

_MIN_SECRET = 8  # shorter values would scrub ordinary words
_known: frozenset[bytes] = frozenset()
_known_in_json: frozenset[bytes] = frozenset()
_known_lock = threading.Lock()
_SECRET_ENV = re.compile(r"(API_?KEY|TOKEN|SECRET|PASSWORD|PASSWD)$")
_URL_SECRET = re.compile(
    r"(?i)([?&](?:key|api_key|apikey|api-key|access_token|token|secret|password)=)[^&\s\"'#]+"
)


def remember_secret(value: str) -> None:
    """Scrub ``value`` (and, for ``Bearer x``, ``x``) from everything recorded from now on."""
    global _known, _known_in_json
    if not isinstance(value, str):
        return
    candidates = {value.strip()}
    scheme, _, credential = value.strip().partition(" ")
    if credential and scheme.lower() in ("bearer", "basic", "token"):
        candidates.add(credential.strip())
    # A credential has letters; a run of digits would scrub ordinary numbers.
    new = {c.encode() for c in candidates if len(c) >= _MIN_SECRET and not c.isdigit()} - _known
    if new:
        # As they appear inside JSON strings too (quotes, backslashes, control characters
        # escaped), so that scrub_json finds them in rendered bytes.
        in_json = {encode(secret.decode())[1:-1] for secret in new}
        with _known_lock:
            _known = _known | new
            _known_in_json = _known_in_json | new | in_json


def scrub_json(data: bytes) -> bytes:
    """JSON bytes with remembered secrets (and URL-query credentials) scrubbed from its strings.

    Only strings are touched, so the result stays valid JSON whatever a secret looks like.
    """
    known = _known_in_json
    if not (known and any(secret in data for secret in known)) and not (
        b"=" in data and _URL_SECRET.search(data.decode(errors="replace"))
    ):
        return data
    return encode(_scrub_strings(decode(data)))


def _scrub_strings(value: Any) -> Any:
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {
            scrub_text(k) if isinstance(k, str) else k: _scrub_strings(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_scrub_strings(item) for item in value]
    return value


def has_known_secrets() -> bool:
    return bool(_known_in_json)


def forget_secrets() -> None:
    """Forget every remembered secret value (for tests that need a clean slate)."""
    global _known, _known_in_json
    with _known_lock:
        _known = _known_in_json = frozenset()


def scrub_bytes(data: bytes) -> bytes:
    """Raw bytes (a response body as received) with every remembered secret replaced."""
    for secret in _known:
        if secret in data:
            data = data.replace(secret, _REDACTED_BYTES)
    return data


def scrub_text(text: str) -> str:
    """``text`` scrubbed of remembered secrets and of credentials in URL queries."""
    if _known:
        text = scrub_bytes(text.encode()).decode()
    if "=" in text:
        text = _URL_SECRET.sub(r"\1" + REDACTED, text)
    return text


_REDACTED_BYTES = REDACTED.encode()


def remember_environment() -> None:
    # API keys handed to SDKs through the environment may show up in errors before any request
    # carrying them has been redacted by name.
    for name, value in os.environ.items():
        if _SECRET_ENV.search(name.upper()):
            remember_secret(value)


remember_environment()
