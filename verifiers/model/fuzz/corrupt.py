"""Byte-level corruption of serialized models: truncation, bit flips, splices, gzip damage.

Every choice comes from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import functools
import gzip
import zlib
from collections.abc import Callable

import numpy as np

Rng = np.random.Generator


def truncate(data: bytes, rng: Rng) -> bytes:
    return data[: int(rng.integers(0, max(len(data), 1)))]


def bit_flips(data: bytes, rng: Rng) -> bytes:
    buf = bytearray(data)
    for _ in range(int(rng.integers(1, 17))):
        pos = int(rng.integers(0, len(buf)))
        buf[pos] ^= 1 << int(rng.integers(0, 8))
    return bytes(buf)


def splice(data: bytes, rng: Rng) -> bytes:
    start = int(rng.integers(0, len(data)))
    size = int(rng.integers(1, 64))
    return data[:start] + rng.bytes(size) + data[start + size:]


def duplicate_slice(data: bytes, rng: Rng) -> bytes:
    a, b = sorted(int(v) for v in rng.integers(0, len(data), size=2))
    return data[:b] + data[a:b] + data[b:]


def gzipped(data: bytes, rng: Rng) -> bytes:
    packed = gzip.compress(data, mtime=0)
    choice = int(rng.integers(0, 3))
    if choice == 1:
        return packed[: int(rng.integers(2, len(packed)))]
    if choice == 2:
        return bit_flips(packed, rng)
    return packed


def gzip_bomb(data: bytes, rng: Rng) -> bytes:
    return _bomb(int(rng.integers(0, 2)))


@functools.cache
def _bomb(kind: int) -> bytes:
    """~300 MiB of zeros (or of a repeated model-like prefix) in ~300 KiB of gzip."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * (1 << 20) if kind == 0 else b"\x08\x07\x12\x07pytorch" * (1 << 16)
    out = [packer.compress(block) for _ in range(300)]
    return b"".join(out) + packer.flush()


def garbage(data: bytes, rng: Rng) -> bytes:
    return rng.bytes(int(rng.integers(0, 4096)))


BYTE_MUTATIONS: dict[str, Callable[[bytes, Rng], bytes]] = {
    "truncate": truncate, "bit_flips": bit_flips, "splice": splice,
    "duplicate_slice": duplicate_slice, "gzipped": gzipped, "gzip_bomb": gzip_bomb,
    "garbage": garbage,
}
