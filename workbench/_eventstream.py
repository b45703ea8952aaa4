"""The AWS event-stream framing (``application/vnd.amazon.eventstream``), read and written.

Owns decoding a complete binary event stream into :class:`AwsEvent` values — each message is
a prelude (total length, headers length, prelude CRC32), typed headers, a payload and a
message CRC32 — and :func:`encode_event`, its inverse, for the test model server. Does not
know what Bedrock's events mean (``workbench.providers._bedrock`` reads them;
``workbench.testmodel`` writes them).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

__all__ = ["AwsEvent", "decode_events", "encode_event"]

_PRELUDE = 12
_CRC = 4
# Fixed sizes of header value types 2-5, 8 and 9 (byte, short, int, long, timestamp, uuid);
# 0 and 1 are true and false with no value; 6 and 7 (bytes, string) carry a 2-byte length.
_FIXED = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}


@dataclass(frozen=True, slots=True)
class AwsEvent:
    """One message of an event stream: its string headers and its payload bytes."""

    headers: dict[str, str]
    payload: bytes


def decode_events(body: bytes) -> tuple[list[AwsEvent], list[str]]:
    """The messages of ``body`` and what was wrong with it (a CRC mismatch, a cut message)."""
    events: list[AwsEvent] = []
    errors: list[str] = []
    offset = 0
    while offset < len(body):
        if len(body) - offset < _PRELUDE + _CRC:
            errors.append("event stream ended in the middle of a message")
            break
        total, headers_length, prelude_crc = struct.unpack_from(">III", body, offset)
        if zlib.crc32(body[offset : offset + 8]) != prelude_crc:
            errors.append(f"event stream message {len(events) + 1} has a bad prelude CRC")
            break
        end = offset + total
        if total < _PRELUDE + _CRC + headers_length or end > len(body):
            errors.append("event stream ended in the middle of a message")
            break
        (message_crc,) = struct.unpack_from(">I", body, end - _CRC)
        if zlib.crc32(body[offset : end - _CRC]) != message_crc:
            errors.append(f"event stream message {len(events) + 1} has a bad CRC")
        start = offset + _PRELUDE
        headers = _headers(body[start : start + headers_length])
        events.append(AwsEvent(headers, body[start + headers_length : end - _CRC]))
        offset = end
    return events, errors


def _headers(raw: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    offset = 0
    while offset < len(raw):
        name_length = raw[offset]
        name = raw[offset + 1 : offset + 1 + name_length].decode("utf-8", "replace")
        offset += 1 + name_length
        kind = raw[offset]
        offset += 1
        if kind in (6, 7):
            (length,) = struct.unpack_from(">H", raw, offset)
            value = raw[offset + 2 : offset + 2 + length]
            offset += 2 + length
            if kind == 7:
                headers[name] = value.decode("utf-8", "replace")
        elif kind in _FIXED:
            offset += _FIXED[kind]
        else:  # an unknown type: its size is unknown, so the rest cannot be read
            break
    return headers


def encode_event(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message with string headers, as AWS services send them."""
    raw_headers = b"".join(
        bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(value)) + value
        for name, value in ((name, value.encode()) for name, value in headers.items())
    )
    total = _PRELUDE + len(raw_headers) + len(payload) + _CRC
    prelude = struct.pack(">II", total, len(raw_headers))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + raw_headers + payload
    return message + struct.pack(">I", zlib.crc32(message))
