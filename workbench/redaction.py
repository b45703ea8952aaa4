"""Keeping secrets out of recordings: values under sensitive names become ``[REDACTED]``.

Owns the list of names that are always secret and the walk that replaces their values; the
capture layer applies it to request headers and bodies, the recorder to parameters, results,
states and log fields. Matching is by field name, case-insensitive, at any depth.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from workbench._json import decode, encode

__all__ = [
    "ALWAYS_SENSITIVE",
    "REDACTED",
    "SENSITIVE_HEADERS",
    "encode_redacted",
    "redact_json",
    "sensitive_names",
]

REDACTED = "[REDACTED]"

#: Header names whose values are credentials in every HTTP API we know of.
SENSITIVE_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "cookie",
        "set-cookie",
        "x-goog-api-key",
    }
)

#: Field names treated as secret wherever they appear, on top of the configured ones.
ALWAYS_SENSITIVE = frozenset(
    {
        "api_key",
        "apikey",
        "api-key",
        "x-api-key",
        "authorization",
        "password",
        "secret",
        "access_token",
        "refresh_token",
        "client_secret",
    }
)


def sensitive_names(configured: Collection[str] = ()) -> frozenset[str]:
    return ALWAYS_SENSITIVE | {name.lower() for name in configured}


def redact_json(value: Any, sensitive: Collection[str]) -> Any:
    """A copy of ``value`` with every mapping entry named in ``sensitive`` redacted."""
    if isinstance(value, Mapping):
        return {
            key: REDACTED
            if isinstance(key, str) and key.lower() in sensitive
            else redact_json(item, sensitive)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact_json(item, sensitive) for item in value]
    return value


def encode_redacted(value: Any, sensitive: frozenset[str]) -> bytes:
    """JSON bytes of ``value`` with secrets redacted.

    The common case — no sensitive name anywhere in the bytes — costs one lower-casing scan
    instead of a walk of the whole value.
    """
    data = encode(value)
    lowered = data.lower()
    if not any(name.encode() in lowered for name in sensitive):
        return data
    return encode(redact_json(decode(data), sensitive))
