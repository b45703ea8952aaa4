"""The canonical form of an HTTP request and its replay key.

This module owns two pure functions of a request as sent — :func:`canonical_request` (what is
stored as ``ModelCall.request``, with every secret redacted by ``workbench.redaction``, whose
``redact_headers`` and ``redact_json`` it re-exports) and :func:`request_key` (what replay looks
the recorded response up by). It does not know about providers, responses, tokens or the store:
those belong to ``providers``, the capture layer and ``workbench.store``.

Everything here runs on the application's thread after every captured call, so it avoids
per-call regexes and pydantic and parses JSON with ``orjson`` once.

The replay key
--------------
``request_key`` hashes (blake2b, 16 bytes, hex) the method, the URL *path*, the sorted query and
the body. It leaves out:

* the scheme, host and port — a recording made against ``api.openai.com`` must answer the same
  call made against a local proxy or the built-in test server, and base URLs differ between
  environments while the request does not;
* all headers — they carry credentials, SDK versions and retry counters that change between
  runs without changing what was asked;
* *volatile fields*: request body fields named in ``volatile_fields``. A name with a dot
  (``metadata.request_id``) is a path from the body's root; where the path meets a list it
  applies to every element. A bare name (``user``) matches that key at any depth of the body,
  and also a query parameter or form field of that name. Volatile fields are removed, so
  "present with any value" and "absent" give the same key. The default set is empty: a key is
  sensitive to everything the caller did not opt out of (``capture.volatile_fields`` in
  workbench.yaml).

The key is computed from the *canonical* (already redacted) request, so that it can be
recomputed from what the store holds; a secret therefore never influences the key.

JSON bodies are compared as values: key order, whitespace and escaping (``"\\u00e9"`` vs
``"é"``) do not matter; everything else does — values, list order, unicode content and types.
Numbers are taken as ``orjson`` parses them: an integer and a float differ (``1`` ≠ ``1.0``),
floats compare by value (``1e2`` = ``100.0``), ``true`` ≠ ``1`` ≠ ``"1"``. ``stream`` stays in
the key: a streamed and a non-streamed call are different calls.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Collection, Iterable, Mapping
from typing import Any, TypeAlias
from urllib.parse import parse_qsl, urlsplit

import orjson

from workbench._json import too_deep
from workbench._sensitive import SensitiveNames
from workbench.exceptions import ConfigError
from workbench.redaction import (
    REDACTED,
    _normalise_name,
    _redact,
    _sensitive_set,
    redact_headers,
    redact_json,
    remember_secret,
)

__all__ = [
    "REDACTED",
    "canonical_request",
    "redact_headers",
    "redact_json",
    "request_key",
]

_JSON: TypeAlias = Any
_Headers: TypeAlias = Mapping[str, str] | Iterable[tuple[str, str]]

# Only in a query string: Google-style ``?key=...``. In a JSON body ``key`` is far too common
# (cache keys, dictionary keys) to redact.
_SENSITIVE_QUERY_ONLY = frozenset({"key"})

# Request headers worth keeping in the canonical request: they change what the provider does.
# Everything else (user-agent, SDK telemetry, retry counters, content-length) is noise.
_KEPT_HEADERS = frozenset(
    {
        "accept",
        "anthropic-beta",
        "anthropic-version",
        "content-type",
        "openai-beta",
        "openai-organization",
        "openai-project",
    }
)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_MULTIPART_BOUNDARY = b"workbench-boundary"


# --------------------------------------------------------------------------------------------
# Canonical request
# --------------------------------------------------------------------------------------------


def canonical_request(
    method: str,
    url: str,
    headers: _Headers,
    body: bytes | None,
    *,
    volatile_fields: Collection[str] = (),
    sensitive_fields: Collection[str] = (),
) -> dict[str, Any]:
    """The request as workbench stores it: plain JSON, normalised, with no secret in it.

    Returns ``{"method", "url", "path", "query", "headers", "body_format", "body",
    "volatile"}``:

    * ``url`` is ``scheme://host[:port]/path`` with the host lower-cased, default ports and any
      ``user:password@`` dropped, and no query or fragment;
    * ``query`` is the sorted list of ``[name, value]`` pairs;
    * ``headers`` keeps the few headers that change what a provider does (content-type,
      accept, anthropic-version, anthropic-beta, openai-beta, openai-organization,
      openai-project), plus credential headers as ``"[REDACTED]"`` so a reader can see that
      one was sent;
    * ``body_format`` is ``"json"``, ``"form"`` (urlencoded, body = sorted ``[name, value]``
      pairs), ``"text"`` (body = ``{"text": ...}``), ``"base64"`` (body = ``{"base64": ...}``)
      or ``None`` for no body. A body that looks like JSON but cannot be parsed, or is nested
      too deeply to walk, is ``"digest"`` (body = ``{"blake2b": ...}``): what cannot be
      redacted is not kept. Multipart boundaries, which clients pick at random, are
      replaced by a fixed one so that two uploads of the same file canonicalise alike;
    * ``volatile`` is the sorted ``volatile_fields``, so that :func:`request_key` of the
      stored request reproduces the key it was recorded under.

    Sensitive names (see :func:`redact_json`; in a query also ``key``) are redacted in the
    query, the form and the JSON body. Raises :class:`~workbench.exceptions.ConfigError` for a
    malformed volatile field.
    """
    volatile = _check_volatile(volatile_fields)
    sensitive = _sensitive_set(sensitive_fields)
    # Only a URL without a query is cached: a query may carry a credential (``?key=``).
    base, path, raw_query = _split_url(url) if "?" not in url else _split_url.__wrapped__(url)
    query_sensitive = sensitive | _SENSITIVE_QUERY_ONLY
    query = _pairs(raw_query, query_sensitive) if raw_query else []

    kept = _kept_headers(headers, sensitive)
    content_type = kept.get("content-type", "")
    body_format, parsed = _canonical_body(body, content_type, sensitive, query_sensitive)
    if "content-type" in kept and "multipart/" in content_type:
        kept["content-type"] = _fixed_boundary_content_type(content_type)

    return {
        "method": method.upper(),
        "url": base + path,
        "path": path,
        "query": query,
        "headers": kept,
        "body_format": body_format,
        "body": parsed,
        "volatile": sorted(volatile),
    }


def _kept_headers(headers: _Headers, sensitive: SensitiveNames) -> dict[str, str]:
    """The headers the canonical request keeps: :data:`_KEPT_HEADERS`, and credential headers
    as ``"[REDACTED]"``; what ``redact_headers`` gives, filtered to those.

    Only the kept headers are built (an SDK sends a dozen more on every request, telemetry and
    retry counters), each name judged once per configuration.
    """
    kept: dict[str, str] = {}
    joined = False
    items = headers.items() if isinstance(headers, Mapping) else headers
    verdicts = sensitive._verdicts.get  # inlined cache hit
    for raw_name, value in items:
        name = raw_name.lower()
        verdict = verdicts(name)
        if verdict is None:
            verdict = sensitive.verdict(name)
        if verdict and not sensitive.allows(value):
            remember_secret(value)
            kept[name] = REDACTED
        elif name in kept:  # repeated: joined, as redact_headers joins it
            kept[name] = f"{kept[name]}, {value}"
            joined = True
        elif name in _KEPT_HEADERS:
            kept[name] = value
    if joined:
        # A credential header joined with an allow-listed value of the same name is neither
        # a kept header nor exactly "[REDACTED]": redact_headers' result would not keep it.
        return {n: v for n, v in kept.items() if n in _KEPT_HEADERS or v is REDACTED}
    return kept


@functools.lru_cache(maxsize=512)
def _split_url(url: str) -> tuple[str, str, str]:
    """``(scheme://host[:port], path, raw query)`` of ``url``, normalised as documented above.

    Cached for URLs without a query: a pipeline sends its calls to a handful of URLs, and
    parsing one costs more than building the rest of the canonical URL.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # IPv6 literal: urlsplit strips the brackets, a URL needs them
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:  # a non-numeric port: keep the request readable rather than fail
        port = None
    netloc = host if port is None or _DEFAULT_PORTS.get(scheme) == port else f"{host}:{port}"
    return f"{scheme}://{netloc}", parts.path or "/", parts.query


def _pairs(encoded: str, sensitive: frozenset[str]) -> list[list[str]]:
    pairs = parse_qsl(encoded, keep_blank_values=True)
    kept = []
    for name, value in pairs:
        if _normalise_name(name) in sensitive:
            remember_secret(value)
            value = REDACTED
        kept.append([name, value])
    return sorted(kept)


def _canonical_body(
    body: bytes | None,
    content_type: str,
    sensitive: frozenset[str],
    form_sensitive: frozenset[str],
) -> tuple[str | None, _JSON]:
    if not body:
        return None, None
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type == "application/x-www-form-urlencoded":
        # A form is a query string in the body (OAuth token requests send secrets this way).
        return "form", _pairs(body.decode("utf-8", errors="replace"), form_sensitive)
    if media_type.startswith("multipart/"):
        body = _replace_boundary(body, content_type)
    else:
        # Only objects and arrays are taken as JSON: a bare scalar is more likely plain text.
        stripped = body.lstrip()
        if stripped[:1] in (b"{", b"["):
            try:
                value = orjson.loads(body)
            except orjson.JSONDecodeError:
                value = _UNREADABLE
            if value is _UNREADABLE or too_deep(body, value):
                # JSON we cannot walk cannot be redacted, so it is not kept: only its digest.
                return "digest", {"blake2b": hashlib.blake2b(body, digest_size=16).hexdigest()}
            return "json", _redact(value, sensitive)
    try:
        return "text", {"text": body.decode("utf-8")}
    except UnicodeDecodeError:
        return "base64", {"base64": base64.b64encode(body).decode("ascii")}


_UNREADABLE: Any = object()


def _boundary_of(content_type: str) -> bytes | None:
    for param in content_type.split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.lower() == "boundary" and value:
            return value.strip('"').encode("latin-1")
    return None


def _replace_boundary(body: bytes, content_type: str) -> bytes:
    boundary = _boundary_of(content_type)
    return body.replace(boundary, _MULTIPART_BOUNDARY) if boundary else body


def _fixed_boundary_content_type(content_type: str) -> str:
    boundary = _boundary_of(content_type)
    if boundary is None:
        return content_type
    return content_type.replace(boundary.decode("latin-1"), _MULTIPART_BOUNDARY.decode())


# --------------------------------------------------------------------------------------------
# Replay key
# --------------------------------------------------------------------------------------------


def request_key(canonical: Mapping[str, Any], *, volatile_fields: Collection[str] = ()) -> str:
    """The replay lookup key of a canonical request: 32 hex digits (blake2b, 16 bytes).

    Covers method, path, query and body (and the body's format); leaves out host, port,
    headers, and the volatile fields — those named here together with those recorded in
    ``canonical["volatile"]``. See the module docstring for the exact semantics.
    """
    volatile = _check_volatile(volatile_fields) | frozenset(canonical.get("volatile") or ())
    body = canonical.get("body")
    query = canonical.get("query") or []
    if volatile:
        bare = frozenset(name for name in volatile if "." not in name)
        paths = [name.split(".") for name in volatile if "." in name]
        body_format = canonical.get("body_format")
        if body_format == "json":
            body = _drop_volatile(body, bare, paths)
        elif body_format == "form" and bare:
            body = [pair for pair in body or () if pair[0] not in bare]
        if bare:
            query = [pair for pair in query if pair[0] not in bare]
    material = orjson.dumps(
        [
            canonical.get("method"),
            canonical.get("path"),
            query,
            canonical.get("body_format"),
            body,
        ],
        option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
    )
    return hashlib.blake2b(material, digest_size=16).hexdigest()


def _check_volatile(fields: Collection[str]) -> frozenset[str]:
    if isinstance(fields, str):
        raise ConfigError(
            f"volatile_fields must be a list of field names, not the string {fields!r}; "
            f"write [{fields!r}]"
        )
    for name in fields:
        if not isinstance(name, str) or not name or any(not part for part in name.split(".")):
            raise ConfigError(
                f"volatile field {name!r} is not a field name or dotted path; use e.g. "
                "'user' (any depth) or 'metadata.request_id' (from the body's root)"
            )
    return frozenset(fields)


def _drop_volatile(value: _JSON, bare: frozenset[str], paths: list[list[str]]) -> _JSON:
    if bare:
        value = _drop_bare(value, bare)
    for path in paths:
        value = _drop_path(value, path)
    return value


def _drop_bare(value: _JSON, bare: frozenset[str]) -> _JSON:
    if isinstance(value, dict):
        return {name: _drop_bare(item, bare) for name, item in value.items() if name not in bare}
    if isinstance(value, list):
        return [_drop_bare(item, bare) for item in value]
    return value


def _drop_path(value: _JSON, path: list[str]) -> _JSON:
    if isinstance(value, list):
        return [_drop_path(item, path) for item in value]
    if not isinstance(value, dict) or path[0] not in value:
        return value
    head, rest = path[0], path[1:]
    copy = dict(value)
    if rest:
        copy[head] = _drop_path(copy[head], rest)
    else:
        del copy[head]
    return copy


# --------------------------------------------------------------------------------------------
# Occurrences
# --------------------------------------------------------------------------------------------
