"""Safe extraction of an untrusted zip archive into a private directory.

A model bundle is a zip (``zip model.zip model.onnx model.onnx.data``). Every member is
checked from the central directory before any byte is written: a plain relative name
(no absolute path, drive letter, backslash or ``..``), a regular file (no symlink or device:
zip stores the Unix mode in ``external_attr``), no duplicate, no encryption, stored or
deflated only, and a compression ratio a real file can have. Sizes are then counted while
streaming, never trusted from the headers: extraction stops at the cap.
"""

from __future__ import annotations

import io
import os
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from verifiers.errors import IntakeError

ZIP_MAGIC = b"PK\x03\x04"
_CHUNK = 1 << 20
_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)


@dataclass(frozen=True)
class ArchiveLimits:
    max_members: int = 4096  # torch writes one file per tensor when asked to: ResNet-50 ~320
    max_total: int = 1 << 30  # bytes unpacked, all members together
    # Unpacked/packed ratio above which a member is refused as a bomb. Float weights deflate
    # about 1.1:1; a zero tensor can reach deflate's ~1000:1, so the ratio is judged only on
    # members over ``ratio_floor`` bytes (the total cap bounds the rest).
    max_ratio: int = 200
    ratio_floor: int = 1 << 20


def extract(raw: bytes, dest: Path, limits: ArchiveLimits) -> list[str]:
    """Unpack ``raw`` (zip bytes) into the empty private directory ``dest``; returns the
    member names written (directories excluded). Raises IntakeError on anything unsafe."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise IntakeError(f"model bundle is not a readable zip archive: {exc}") from exc
    with archive:
        members = _checked_members(archive.infolist(), limits)
        total = 0
        for info in members:
            total = _write_member(archive, info, dest, total, limits)
    return [info.filename for info in members]


def safe_name(name: str) -> PurePosixPath:
    """``name`` as a relative path that stays inside its directory, else IntakeError."""
    if not name or "\\" in name or "\0" in name or name.startswith("/") or (
            len(name) > 1 and name[1] == ":"):
        raise IntakeError(f"model bundle member {name[:200]!r} is not a plain relative path")
    path = PurePosixPath(name)
    if any(part in ("..", ".", "") for part in name.rstrip("/").split("/")):
        raise IntakeError(f"model bundle member {name[:200]!r} leaves the bundle (..) or "
                          "has an empty or '.' path component")
    return path


def _checked_members(infos: list[zipfile.ZipInfo],
                     limits: ArchiveLimits) -> list[zipfile.ZipInfo]:
    if len(infos) > limits.max_members:
        raise IntakeError(f"model bundle has {len(infos)} members, over the limit of "
                          f"{limits.max_members}")
    seen: set[str] = set()
    files = []
    declared = 0
    for info in infos:
        name = info.filename
        safe_name(name)
        key = name.rstrip("/").casefold()
        if key in seen:  # two members would land on one path (case-insensitive filesystems)
            raise IntakeError(f"model bundle lists {name[:200]!r} twice")
        seen.add(key)
        # Unix file type bits; 0 when the archiver recorded none (Windows, writestr).
        kind_bits = stat.S_IFMT(info.external_attr >> 16)
        if info.is_dir() and kind_bits in (0, stat.S_IFDIR):
            continue
        if kind_bits not in (0, stat.S_IFREG) or info.is_dir():
            kind = "a symlink" if kind_bits == stat.S_IFLNK else "not a regular file"
            raise IntakeError(f"model bundle member {name[:200]!r} is {kind}; only regular "
                              "files are accepted")
        if info.flag_bits & 0x1:
            raise IntakeError(f"model bundle member {name[:200]!r} is encrypted")
        if info.compress_type not in _METHODS:
            raise IntakeError(f"model bundle member {name[:200]!r} uses compression method "
                              f"{info.compress_type}; only stored and deflated are accepted")
        if info.file_size > limits.ratio_floor and \
                info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise IntakeError(f"model bundle member {name[:200]!r} expands "
                              f"{info.file_size // max(info.compress_size, 1)}:1, over "
                              f"{limits.max_ratio}:1; refused as a possible zip bomb")
        declared += info.file_size
        if declared > limits.max_total:
            raise IntakeError(f"model bundle unpacks to over {limits.max_total} bytes "
                              "(the model size limit)")
        files.append(info)
    return files


def _write_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path, total: int,
                  limits: ArchiveLimits) -> int:
    """Stream one member to ``dest``, counting what really comes out; the new total."""
    target = dest.joinpath(*PurePosixPath(info.filename).parts)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # O_EXCL|O_NOFOLLOW: never write through a link, never onto an existing file.
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    written = 0
    try:
        with os.fdopen(fd, "wb") as out, archive.open(info) as src:
            while chunk := src.read(_CHUNK):
                written += len(chunk)
                if written > info.file_size or total + written > limits.max_total:
                    raise IntakeError(f"model bundle member {info.filename[:200]!r} unpacks to "
                                      "more than its header declares, or past the size limit")
                out.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise IntakeError(f"model bundle member {info.filename[:200]!r} is corrupt: "
                          f"{exc}") from exc
    return total + written

