"""Content-addressed, compressed blobs: how the store keeps each payload once.

A payload's hash is taken of its JSON bytes, so identical states, prompts and responses across
steps and executions are one row. Compression happens on the writer thread only.
"""

from __future__ import annotations

import hashlib
import threading

import zstandard

__all__ = ["blob_hash", "compress", "decompress"]

_RAW, _ZSTD = 0, 1
_COMPRESS_ABOVE = 96  # below this, zstd's frame header costs more than it saves


def blob_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


_local_compressor = zstandard.ZstdCompressor(level=3)


def compress(data: bytes) -> tuple[int, bytes]:
    """(codec, stored bytes). Only the writer thread calls this, so one compressor suffices."""
    if len(data) < _COMPRESS_ABOVE:
        return _RAW, data
    packed = _local_compressor.compress(data)
    return (_ZSTD, packed) if len(packed) < len(data) else (_RAW, data)


# A decompressor per thread: creating one costs ~8 µs, several times the decompression of a
# typical response, and one object must not be used by two threads at once.
_local = threading.local()


def decompress(codec: int, data: bytes) -> bytes:
    if codec == _RAW:
        return bytes(data)
    try:
        decompressor: zstandard.ZstdDecompressor = _local.decompressor
    except AttributeError:
        decompressor = _local.decompressor = zstandard.ZstdDecompressor()
    return decompressor.decompress(data)
