"""Size cap, gzip and zip-bundle support for uploaded model bytes.

A zip is a model bundle (verifiers.model.bundle): its graph is screened and its external data
inlined, so every later stage sees one self-contained model. Gzip decompression streams in
bounded chunks and stops at the cap, so a small gzip bomb is refused after at most
``max_bytes`` of output instead of exhausting memory.
"""

from __future__ import annotations

import zlib

from verifiers.errors import IntakeError
from verifiers.model.archive import ZIP_MAGIC
from verifiers.model.bundle import read_bundle
from verifiers.model.limits import IntakeLimits

GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20
_GZIP_WBITS = 16 + zlib.MAX_WBITS


def unpack(raw: bytes, max_bytes: int) -> tuple[bytes, str]:
    """(serialized self-contained ONNX, how it came: "" plain, "gzip" or "bundle");
    refuses anything over the cap."""
    if len(raw) > max_bytes:
        raise IntakeError(f"model file is {len(raw)} bytes, over the limit of {max_bytes} bytes")
    if raw.startswith(ZIP_MAGIC):
        return read_bundle(raw, IntakeLimits(max_bytes=max_bytes)), "bundle"
    if not raw.startswith(GZIP_MAGIC):
        return raw, ""
    return _gunzip(raw, max_bytes), "gzip"


def _gunzip(raw: bytes, max_bytes: int) -> bytes:
    out = bytearray()
    decoder = zlib.decompressobj(_GZIP_WBITS)
    pending = raw
    try:
        while True:
            chunk = decoder.decompress(pending, _CHUNK)
            out += chunk
            if len(out) > max_bytes:
                raise IntakeError(
                    f"gzip-compressed model expands beyond the limit of {max_bytes} bytes "
                    f"(ratio over {len(out) // max(len(raw), 1)}:1); refused as a possible zip bomb"
                )
            pending = decoder.unconsumed_tail
            if decoder.eof:
                rest = decoder.unused_data
                if not rest.strip(b"\0"):  # gzip allows zero padding after the last member
                    break
                if not rest.startswith(GZIP_MAGIC):
                    raise IntakeError("gzip-compressed model has trailing garbage after its data")
                decoder, pending = zlib.decompressobj(_GZIP_WBITS), rest
            elif not chunk and not pending:
                raise IntakeError("gzip-compressed model is truncated")
    except zlib.error as exc:
        raise IntakeError(f"gzip-compressed model is corrupt: {exc}") from exc
    if not out:
        raise IntakeError("gzip-compressed model is empty")
    return bytes(out)
