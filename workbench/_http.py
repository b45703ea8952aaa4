"""Small HTTP helpers shared by the capture layer and the store's read path."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Mapping
from typing import Any

from workbench._json import decode, too_deep

__all__ = ["body_json", "decode_content"]


def decode_content(body: bytes, headers: Mapping[str, str]) -> bytes:
    """``body`` with its ``content-encoding`` undone (gzip, deflate, br, zstd)."""
    encoding = headers.get("content-encoding", "").strip().lower()
    if not encoding or encoding == "identity" or not body:
        return body
    try:
        if encoding == "gzip":
            return gzip.decompress(body)
        if encoding == "deflate":
            try:
                return zlib.decompress(body)
            except zlib.error:
                return zlib.decompress(body, -zlib.MAX_WBITS)
        if encoding == "br":
            import brotli

            return bytes(brotli.decompress(body))
        if encoding == "zstd":
            import zstandard

            return zstandard.ZstdDecompressor().decompressobj().decompress(body)
    except Exception:  # an undecodable body is analysed as it is, and marked by analyse()
        return body
    return body


def body_json(body: bytes, headers: Mapping[str, str]) -> Any:
    """The JSON of a stored response body, or ``None`` if it is not JSON, or is JSON nested
    deeper than ``MAX_DEPTH`` (no JSON writer or walk of the workbench would take it)."""
    content = decode_content(body, headers)
    try:
        value = decode(content)
    except (ValueError, RecursionError):
        return None
    return None if too_deep(content, value) else value
