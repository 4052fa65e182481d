"""Arrays of an untrusted ``.npz`` file read from disk, not into memory.

An evaluation set of 10,000 ImageNet-size images is 6 GB of float32: it must be read in
batches (AutoAttack #32). ``np.load(mmap_mode="r")`` does not map members of an ``.npz``, so:

- a stored (uncompressed) member, what ``np.savez`` writes, is contiguous in the file: after
  its ``.npy`` header has been checked, it is mapped in place with ``np.memmap``;
- a deflated member (``np.savez_compressed``) is decompressed once, streamed and counted
  against the cap, into an unlinked temporary ``.npy`` that is then mapped.

Mapped pages are file-backed: the kernel can drop them at will, and :func:`row_blocks` drops
the ones it has read, so a scan over the whole set keeps its resident memory at one block.
"""

from __future__ import annotations

import math
import mmap
import os
import struct
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from verifiers.errors import DataError

# Rows per block are chosen so one block is about this many bytes.
BLOCK_BYTES = 16 * 1024 * 1024
_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # zip local file header, 30 bytes
_CHUNK = 1 << 20


def map_members(path: Path, names: set[str], what: str, max_decompressed: int,
                ) -> dict[str, np.ndarray]:
    """The ``.npy`` members of the ``.npz`` at ``path`` named in ``names`` (without ``.npy``)
    that it holds, as read-only arrays backed by disk. The zip's declared sizes are checked
    against ``max_decompressed`` and every header against its entry before any data is read.
    """
    out: dict[str, np.ndarray] = {}
    with open(path, "rb") as fp, zipfile.ZipFile(fp) as archive:
        entries = archive.infolist()
        total = sum(info.file_size for info in entries)
        if total > max_decompressed:
            raise DataError(f"{what} decompresses to {total} bytes, over the cap of "
                            f"{max_decompressed} bytes (ROBUSTGATE_MAX_DECOMPRESSED_BYTES)")
        for info in entries:
            name = info.filename[:-4] if info.filename.endswith(".npy") else None
            if name is None or name not in names or name in out:
                continue
            if info.flag_bits & 0x1:
                raise DataError(f"{what}: array {name!r} is encrypted")
            if info.compress_type == zipfile.ZIP_STORED:
                out[name] = _map_stored(fp, archive, info, path, what)
            else:
                out[name] = _map_deflated(archive, info, what)
    return out


def read_header(fp: BinaryIO, size: int, name: str, what: str
                ) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """(shape, fortran order, dtype, header length) of an ``.npy`` stream of ``size`` bytes;
    refuses object arrays (pickles) and a shape whose data the entry cannot hold."""
    fmt = np.lib.format
    start = fp.tell()
    major, _minor = fmt.read_magic(fp)
    reader = fmt.read_array_header_1_0 if major == 1 else fmt.read_array_header_2_0
    shape, fortran, dtype = reader(fp, max_header_size=1 << 16)
    header = fp.tell() - start
    if dtype.hasobject:
        raise DataError(f"{what}: array {name!r} holds Python objects, not readable without "
                        "unpickling (pickles are refused)")
    nbytes = math.prod(int(n) for n in shape) * dtype.itemsize
    if header + nbytes > size:
        raise DataError(f"{what}: array {name!r} declares shape {shape} ({nbytes} bytes) but "
                        f"its entry holds only {size - header} bytes")
    return tuple(int(n) for n in shape), bool(fortran), dtype, header


def _map_stored(fp: BinaryIO, archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path,
                what: str) -> np.ndarray:
    name = info.filename[:-4]
    with archive.open(info) as member:
        shape, fortran, dtype, header = read_header(member, info.file_size, name, what)
    # The member's data starts after its local header, whose extra field may differ from
    # the central directory's: read it from the file.
    fp.seek(info.header_offset)
    fields = _LOCAL_HEADER.unpack(fp.read(_LOCAL_HEADER.size))
    if fields[0] != b"PK\x03\x04":
        raise DataError(f"{what}: array {name!r} has a corrupt zip entry")
    data_start = info.header_offset + _LOCAL_HEADER.size + fields[9] + fields[10]
    if data_start + info.file_size > os.path.getsize(path):
        raise DataError(f"{what}: array {name!r} runs past the end of the file")
    return _memmap(path, dtype, shape, fortran, data_start + header)


def _map_deflated(archive: zipfile.ZipFile, info: zipfile.ZipInfo, what: str) -> np.ndarray:
    name = info.filename[:-4]
    with archive.open(info) as member:
        shape, fortran, dtype, header = read_header(member, info.file_size, name, what)
        # Unlinked at once: the mapping keeps the data, nothing is left behind on any exit.
        with tempfile.NamedTemporaryFile(prefix="robustgate-npz-", suffix=".npy") as tmp:
            written = 0
            while chunk := member.read(_CHUNK):
                written += len(chunk)
                if written > info.file_size - header:
                    raise DataError(f"{what}: array {name!r} decompresses past its declared "
                                    f"size of {info.file_size} bytes")
                tmp.write(chunk)
            tmp.flush()
            return _memmap(Path(tmp.name), dtype, shape, fortran, 0)


def _memmap(path: Path, dtype: np.dtype, shape: tuple[int, ...], fortran: bool,
            offset: int) -> np.ndarray:
    if math.prod(shape) == 0:  # mmap cannot map zero bytes
        return np.empty(shape, dtype=dtype, order="F" if fortran else "C")
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape,
                     order="F" if fortran else "C")


def block_rows(x: np.ndarray, block_bytes: int | None = None) -> int:
    """Rows of ``x`` in about ``block_bytes`` (default BLOCK_BYTES), at least one."""
    row = max(1, math.prod(x.shape[1:]) * x.dtype.itemsize)
    return max(1, (block_bytes or BLOCK_BYTES) // row)


def row_blocks(x: np.ndarray, block_bytes: int | None = None) -> Iterator[np.ndarray]:
    """Consecutive row slices of ``x`` of about ``block_bytes``; for a memory-mapped ``x`` the
    pages of each block are dropped from this process once the next one is asked for."""
    step = block_rows(x, block_bytes)
    for lo in range(0, len(x), step):
        yield x[lo:lo + step]
        release(x)


def release(x: np.ndarray) -> None:
    """Drop the resident pages of a read-only mapped ``x`` (no-op for an in-memory array):
    they are file-backed, a later read faults them in again from the page cache."""
    mapped = getattr(x, "_mmap", None)
    if isinstance(mapped, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
        mapped.madvise(mmap.MADV_DONTNEED)


def is_mapped(x: np.ndarray) -> bool:
    return isinstance(getattr(x, "_mmap", None), mmap.mmap)


def map_blocks(x: np.ndarray, fn: Callable[[np.ndarray], np.ndarray],
               dtype: np.dtype | type = np.float32) -> np.ndarray:
    """``fn`` (elementwise, shape-preserving) applied block by block. A mapped ``x`` gives a
    mapped result in an unlinked temporary file, so a 6 GB set never sits in memory."""
    if not is_mapped(x):
        return np.ascontiguousarray(fn(x), dtype=dtype)
    with tempfile.NamedTemporaryFile(prefix="robustgate-rows-", suffix=".bin") as tmp:
        out = np.memmap(tmp.name, dtype=dtype, mode="w+", shape=x.shape)
        step = block_rows(x)
        for lo in range(0, len(x), step):
            out[lo:lo + step] = fn(np.asarray(x[lo:lo + step]))
            out.flush()
            release(x)
            release(out)
        del out
        return np.memmap(tmp.name, dtype=dtype, mode="r", shape=x.shape)


def mean_std(x: np.ndarray) -> tuple[float, float]:
    """(mean, std) of every value of ``x``. An array within one block gives exactly
    ``x.mean(), x.std()``; a larger one is combined block by block in float64 (Chan et al.),
    never through a whole-array temporary."""
    if x.nbytes <= BLOCK_BYTES:
        return float(x.mean()), float(x.std())
    count, mean, m2 = 0, 0.0, 0.0
    for block in row_blocks(x):
        b = np.asarray(block, dtype=np.float64)
        n, b_mean = b.size, float(b.mean())
        b_m2 = float(np.square(b - b_mean).sum())
        delta = b_mean - mean
        total = count + n
        mean += delta * n / total
        m2 += b_m2 + delta * delta * count * n / total
        count = total
    return mean, math.sqrt(m2 / count)
