"""Rendering recorded Python values as JSON bytes, and reading them back.

Values are rendered on the caller's thread, so a value mutated after it was recorded is recorded
as it was. Anything JSON cannot hold is rendered the way a person reading the run would want it:
dataclasses and pydantic models as their fields, sets as sorted lists, bytes as base64,
everything else as ``repr``.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from decimal import Decimal
from pathlib import PurePath
from typing import Any

import orjson

from workbench.types import JSON

__all__ = ["MAX_DEPTH", "decode", "encode", "to_jsonable", "too_deep"]

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def _default(value: Any) -> Any:
    if hasattr(value, "model_dump") and callable(value.model_dump):  # pydantic v2
        return value.model_dump(mode="json")
    if isinstance(value, (set, frozenset)):
        try:
            return sorted(value)
        except TypeError:
            return sorted(value, key=repr)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"__bytes__": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, BaseException):
        return {"__error__": type(value).__name__, "message": str(value)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, tuple):  # namedtuples that orjson refused
        return list(value)
    return repr(value)


def encode(value: JSON) -> bytes:
    """JSON bytes for ``value``; never raises: an odd value is rendered, a hopeless one named.

    Recording must not break the application it records, so a value that cannot be rendered
    at all (a circular structure, a ``__repr__`` that raises) becomes a placeholder string.
    """
    try:
        return orjson.dumps(value, default=_default, option=_OPTIONS)
    except (TypeError, orjson.JSONEncodeError):
        pass
    try:
        # orjson refuses ints past 64 bits and deep nesting; the stdlib copes with those.
        return json.dumps(value, default=_default, ensure_ascii=False).encode()
    except Exception as exc:
        return orjson.dumps(f"<unrecordable {type(value).__name__}: {type(exc).__name__}: {exc}>")


def decode(data: bytes) -> JSON:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def to_jsonable(value: Any) -> JSON:
    """``value`` as it will read back from the store."""
    return decode(encode(value))


#: orjson writes at most ~254 levels of nesting, and the walks over recorded JSON recurse once
#: per level: deeper JSON is treated as unreadable rather than kept and failing later.
MAX_DEPTH = 250


def too_deep(raw: bytes | str, value: JSON) -> bool:
    """Whether ``value`` (parsed from ``raw``) nests deeper than :data:`MAX_DEPTH`."""
    # Counting brackets (strings included) over-estimates the depth at C speed; only a body
    # with that many brackets pays for the exact walk.
    if isinstance(raw, str):
        brackets = raw.count("[") + raw.count("{")
    else:
        brackets = raw.count(b"[") + raw.count(b"{")
    return brackets > MAX_DEPTH and _depth(value, 0) > MAX_DEPTH


def _depth(value: JSON, level: int) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(item, level + 1) for item in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(item, level + 1) for item in value), default=level + 1)
    return level
