"""Content-addressed blob storage on a local folder (sha256 -> file).

Uploads are streamed in chunks to a temporary file while hashed and size-capped, then moved
into place only after validation, so a refused upload leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

CHUNK = 1024 * 1024


class TooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"upload exceeds the size limit of {limit} bytes")
        self.limit = limit


@dataclass(frozen=True)
class Staged:
    """An upload written to a temporary file, not yet in the store."""

    path: Path
    sha256: str
    size: int

    def read_bytes(self) -> bytes:
        return self.path.read_bytes()

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)

    def stage(self, stream: BinaryIO, max_bytes: int) -> Staged:
        digest = hashlib.sha256()
        size = 0
        fd, name = tempfile.mkstemp(dir=self._tmp, prefix="upload-")
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise TooLarge(max_bytes)
                    digest.update(chunk)
                    out.write(chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return Staged(path=path, sha256=digest.hexdigest(), size=size)

    def key_for(self, sha256: str) -> str:
        return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"

    def path_of(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"storage key {key!r} escapes the store")
        return path

    def commit(self, staged: Staged) -> str:
        """Move a staged upload into place; identical content is stored once."""
        key = self.key_for(staged.sha256)
        dest = self.path_of(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            staged.discard()
        else:
            os.replace(staged.path, dest)
        return key

    def delete(self, key: str) -> None:
        self.path_of(key).unlink(missing_ok=True)

    def read(self, key: str) -> bytes:
        return self.path_of(key).read_bytes()

    def staged_count(self) -> int:
        return sum(1 for _ in self._tmp.iterdir())

    def blob_count(self) -> int:
        return sum(1 for p in self.root.rglob("*") if p.is_file() and self._tmp not in p.parents)
