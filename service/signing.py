"""The service's Ed25519 signing key: created on first start, kept with the data (mode 0600).

The key lives at ``$DATA_DIR/keys/signing-ed25519.pem`` (PKCS#8, unencrypted: whoever can read
the data folder can already rewrite the database). API and worker processes that share the data
folder share the key; creation is atomic, so two processes starting at once agree on one key.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from verifiers.certificate import (
    envelope,
    key_id,
    public_key_entry,
    raw_public_key,
    sign_scorecard,
)

log = logging.getLogger(__name__)

KEY_DIR = "keys"
KEY_FILE = "signing-ed25519.pem"


@dataclass(frozen=True)
class Signer:
    private_key: Ed25519PrivateKey
    path: Path

    @property
    def key_id(self) -> str:
        return key_id(raw_public_key(self.private_key.public_key()))

    def sign(self, scorecard: dict[str, Any], certification_id: str | None) -> dict[str, Any]:
        """The certificate's envelope (everything but the scorecard), to store beside it."""
        return envelope(sign_scorecard(scorecard, self.private_key,
                                       certification_id=certification_id))

    def keys_document(self) -> dict[str, Any]:
        """The body of ``GET /v1/keys``."""
        return {"keys": [public_key_entry(self.private_key.public_key())
                         | {"use": "certificate signing"}]}


def key_path(data_dir: Path) -> Path:
    return Path(data_dir) / KEY_DIR / KEY_FILE


def load_or_create_signer(data_dir: Path) -> Signer:
    path = key_path(data_dir)
    if not path.exists():
        _create(path)
    _tighten(path)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise RuntimeError(f"{path} does not hold an Ed25519 private key")
    return Signer(key, path)


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    # Written in full under a private name, then linked into place: link() refuses to replace
    # an existing file, so a process racing us keeps whichever key landed first.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
            log.info("created the signing key %s", path)
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)


def _tighten(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("signing key %s had mode %o; setting 0600", path, mode)
        path.chmod(0o600)
