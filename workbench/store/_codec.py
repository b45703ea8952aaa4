"""Content-addressed, compressed blobs: how the store keeps each payload once.

A payload's hash is taken of its JSON bytes, so identical states, prompts and responses across
steps and executions are one row. Compression happens on the writer thread only. The hashes a
process has stored are remembered, so a repeated payload is not queued again, in a bounded
memory (:class:`KnownBlobs`): a hash it forgot costs one ``INSERT OR IGNORE``, not a wrong row.
"""

from __future__ import annotations

import hashlib
import threading

import zstandard

__all__ = ["KNOWN_BLOBS", "KnownBlobs", "blob_hash", "compress", "decompress"]

_RAW, _ZSTD = 0, 1
_COMPRESS_ABOVE = 96  # below this, zstd's frame header costs more than it saves


def blob_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


#: The most blob hashes a store remembers as written (about 100 bytes each).
KNOWN_BLOBS = 50_000


class KnownBlobs:
    """The hashes of blobs this process has queued, the most recent :data:`KNOWN_BLOBS` of them.

    Two generations of sets: when the young one is full, it becomes the old one and the old one
    is forgotten, so what was seen lately (the prompt of every call, the state of every step)
    stays known at the cost of a set lookup or two, with no lock and no per-entry bookkeeping.
    Read by recording threads and updated by the writer, each operation is atomic under the GIL;
    a race only forgets a hash early, which writes its blob once more.
    """

    __slots__ = ("_half", "_old", "_young")

    def __init__(self, limit: int = KNOWN_BLOBS) -> None:
        self._half = max(1, limit // 2)
        self._young: set[str] = set()
        self._old: set[str] = set()

    def __contains__(self, digest: object) -> bool:
        return digest in self._young or digest in self._old

    def __len__(self) -> int:
        return len(self._young) + len(self._old)

    def add(self, digest: str) -> None:
        young = self._young
        young.add(digest)
        if len(young) >= self._half:
            self._old, self._young = young, set()

    def discard(self, digest: str) -> None:
        self._young.discard(digest)
        self._old.discard(digest)


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
