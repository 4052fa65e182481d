"""Signed certificates: a scorecard, an Ed25519 signature, and the key that made it.

A certificate (``certificate_version`` 1) is a JSON object::

    {"certificate_version": 1, "algorithm": "Ed25519",
     "canonicalization": "robustgate-json-1", "key_id": "<sha256 hex of the raw public key>",
     "public_key": "<base64 of the 32-byte raw public key>", "signed_at": "2026-...Z",
     "certification_id": "<id or null>", "scorecard": {...}, "signature": "<base64, 64 bytes>"}

The signature covers every field but ``signature`` itself: the message is ``DOMAIN`` followed
by the canonical JSON encoding of that object (keys sorted at every level, no whitespace,
UTF-8, non-ASCII characters unescaped, numbers as Python's shortest round-trip repr, NaN and
infinities refused). Verification re-encodes the parsed JSON, so indentation or key order in
the file does not matter, while any change of a value, a type (1 vs 1.0) or a key does.

The embedded ``public_key`` is not a trust anchor: :func:`verify_certificate` checks the
signature against keys the caller trusts (the service's ``GET /v1/keys``, fetched once and
pinned, or a key file).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from verifiers.errors import VerifierError

CERTIFICATE_VERSION = 1
ALGORITHM = "Ed25519"
CANONICALIZATION = "robustgate-json-1"
# Domain separation: a signature over a certificate can never be replayed as another message.
DOMAIN = b"robustgate-certificate-v1\n"
_ENVELOPE = ("certificate_version", "algorithm", "canonicalization", "key_id", "public_key",
             "signed_at", "certification_id", "signature")


class CertificateError(VerifierError):
    """A certificate failed verification; ``part`` names what failed."""

    part = "certificate"


class MalformedCertificate(CertificateError):
    part = "format"


class UntrustedKey(CertificateError):
    part = "key"


class BadSignature(CertificateError):
    part = "signature"


class ModelMismatch(CertificateError):
    part = "model"


class StandardMismatch(CertificateError):
    part = "standard"


def canonical_json(value: Any) -> bytes:
    """The byte string that is signed: sorted keys, no whitespace, UTF-8."""
    bad = _non_finite_path(value, "")
    if bad is not None:
        raise ValueError(f"not JSON-representable: non-finite number at {bad or '<root>'}")
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def _non_finite_path(value: Any, path: str) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return path
    items: Iterable[tuple[Any, Any]] = ()
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    for key, item in items:
        found = _non_finite_path(item, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(raw: bytes) -> str:
    """A key's id: sha256 of its 32 raw bytes, hex."""
    return hashlib.sha256(raw).hexdigest()


def signed_message(certificate: dict[str, Any]) -> bytes:
    return DOMAIN + canonical_json({k: v for k, v in certificate.items() if k != "signature"})


def sign_scorecard(scorecard: dict[str, Any], private_key: Ed25519PrivateKey, *,
                   certification_id: str | None = None,
                   signed_at: datetime | None = None) -> dict[str, Any]:
    """The certificate for ``scorecard``. Raises ValueError if it is not canonical JSON."""
    raw = raw_public_key(private_key.public_key())
    when = (signed_at or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    cert: dict[str, Any] = {
        "certificate_version": CERTIFICATE_VERSION, "algorithm": ALGORITHM,
        "canonicalization": CANONICALIZATION, "key_id": key_id(raw),
        "public_key": base64.b64encode(raw).decode("ascii"),
        "signed_at": when.isoformat().replace("+00:00", "Z"),
        "certification_id": certification_id, "scorecard": scorecard,
    }
    cert["signature"] = base64.b64encode(private_key.sign(signed_message(cert))).decode("ascii")
    return cert


def envelope(certificate: dict[str, Any]) -> dict[str, Any]:
    """The certificate without its scorecard (what the service stores beside the scorecard)."""
    return {k: v for k, v in certificate.items() if k != "scorecard"}


def assemble(stored_envelope: dict[str, Any], scorecard: dict[str, Any]) -> dict[str, Any]:
    return {**stored_envelope, "scorecard": scorecard}


@dataclass(frozen=True)
class Verified:
    """What a valid certificate states."""

    key_id: str
    signed_at: str
    certification_id: str | None
    model_sha256: str
    verdict: str
    standard_name: str
    standard_version: Any
    standard_sha256: str = ""
    # "builtin", or "tenant:<name>" for a tenant's own upload; None in certificates signed
    # before the owner was recorded.
    standard_owner: str | None = None

    @property
    def standard(self) -> str:
        return f"{self.standard_name} v{self.standard_version}"

    @property
    def owner(self) -> str:
        if self.standard_owner == "builtin":
            return "built-in"
        if self.standard_owner:
            return f"tenant {self.standard_owner.partition(':')[2] or '?'}"
        return "not stated (certificate predates owner records)"


def _b64(value: Any, field: str, size: int) -> bytes:
    if not isinstance(value, str):
        raise MalformedCertificate(f"field {field!r} must be a base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedCertificate(f"field {field!r} is not valid base64") from exc
    if len(raw) != size:
        raise MalformedCertificate(f"field {field!r} must decode to {size} bytes, not {len(raw)}")
    return raw


def _check_format(cert: Any) -> dict[str, Any]:
    if not isinstance(cert, dict):
        raise MalformedCertificate("a certificate is a JSON object")
    missing = [k for k in (*_ENVELOPE, "scorecard") if k not in cert]
    if missing:
        raise MalformedCertificate(f"missing field(s): {', '.join(missing)}")
    if cert["certificate_version"] != CERTIFICATE_VERSION:
        raise MalformedCertificate(
            f"certificate_version {cert['certificate_version']!r} is not supported "
            f"(this tool reads version {CERTIFICATE_VERSION})")
    if cert["algorithm"] != ALGORITHM or cert["canonicalization"] != CANONICALIZATION:
        raise MalformedCertificate(f"unsupported algorithm/canonicalization "
                                   f"{cert['algorithm']!r}/{cert['canonicalization']!r}")
    card = cert["scorecard"]
    if not isinstance(card, dict) or not isinstance(card.get("model"), dict):
        raise MalformedCertificate("the scorecard must be an object with a model section")
    return card


def verify_certificate(cert: Any, trusted: Iterable[Ed25519PublicKey]) -> Verified:
    """Check the format, that the signing key is trusted, and the signature.

    Raises a :class:`CertificateError` subclass naming the part that failed.
    """
    card = _check_format(cert)
    raw = _b64(cert["public_key"], "public_key", 32)
    if key_id(raw) != cert["key_id"]:
        raise UntrustedKey("key_id is not the sha256 of the embedded public key")
    trusted_ids = {key_id(raw_public_key(k)) for k in trusted}
    if not trusted_ids:
        raise UntrustedKey("no trusted public key was given")
    if cert["key_id"] not in trusted_ids:
        shown = ", ".join(sorted(i[:16] + "..." for i in trusted_ids))
        raise UntrustedKey(f"signed by key {cert['key_id'][:16]}..., which is not a trusted "
                           f"key (trusted: {shown})")
    signature = _b64(cert["signature"], "signature", 64)
    try:
        message = signed_message(cert)
    except ValueError as exc:
        raise MalformedCertificate(str(exc)) from exc
    try:
        Ed25519PublicKey.from_public_bytes(raw).verify(signature, message)
    except InvalidSignature as exc:
        raise BadSignature("the signature does not match the certificate's contents: the "
                           "scorecard or a signed field was altered after signing") from exc
    std = card.get("standard") or {}
    return Verified(key_id=cert["key_id"], signed_at=str(cert["signed_at"]),
                    certification_id=cert["certification_id"],
                    model_sha256=str(card["model"].get("sha256")),
                    verdict=str(card.get("verdict")), standard_name=str(std.get("name")),
                    standard_version=std.get("version"),
                    standard_sha256=str(std.get("sha256") or ""),
                    standard_owner=std.get("owner") if isinstance(std.get("owner"), str)
                    else None)


def check_standard(verified: Verified, *, name: str | None = None, sha256: str | None = None,
                   require_builtin: bool = False) -> None:
    """The standard the certificate names is the one required, else StandardMismatch: a
    tenant's look-alike standard (its own thresholds) must not pass for a built-in."""
    if name and verified.standard_name != name:
        raise StandardMismatch(f"certified against {verified.standard}, not {name}")
    if sha256 and verified.standard_sha256.lower() != sha256.strip().lower():
        raise StandardMismatch(f"certified against {verified.standard} with sha256 "
                               f"{verified.standard_sha256 or '?'}, not {sha256.strip()}")
    if require_builtin and verified.standard_owner != "builtin":
        raise StandardMismatch(f"certified against {verified.standard}, whose owner is "
                               f"{verified.owner}, not a built-in standard")


def check_model(verified: Verified, model_bytes: bytes) -> str:
    """The model's sha256, if it is the certified one; else :class:`ModelMismatch`."""
    digest = hashlib.sha256(model_bytes).hexdigest()
    if digest != verified.model_sha256:
        raise ModelMismatch(f"the model's sha256 {digest} is not the certified model's "
                            f"{verified.model_sha256}")
    return digest


def parse_certificate(text: str | bytes) -> dict[str, Any]:
    """Parse a certificate file; duplicate keys are refused (parsers disagree on which wins)."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                raise MalformedCertificate(f"duplicate key {key!r} in the certificate")
            seen[key] = value
        return seen

    try:
        cert = json.loads(text, object_pairs_hook=no_duplicates)
    except (ValueError, UnicodeDecodeError) as exc:  # MalformedCertificate passes through
        raise MalformedCertificate(f"the certificate is not valid JSON: {exc}") from exc
    if not isinstance(cert, dict):
        raise MalformedCertificate("a certificate is a JSON object")
    return cert


def load_public_keys(text: str) -> list[Ed25519PublicKey]:
    """Trusted keys from a PEM public key, a base64 raw key, or a ``GET /v1/keys`` document."""
    stripped = text.strip()
    if stripped.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(stripped.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("the PEM key is not an Ed25519 public key")
        return [key]
    if stripped.startswith("{"):
        doc = json.loads(stripped)
        entries = doc.get("keys", []) if isinstance(doc, dict) else []
        keys = [Ed25519PublicKey.from_public_bytes(_b64(e.get("public_key"), "public_key", 32))
                for e in entries if isinstance(e, dict) and e.get("algorithm") == ALGORITHM]
        if not keys:
            raise ValueError("the key document lists no Ed25519 key")
        return keys
    try:
        return [Ed25519PublicKey.from_public_bytes(_b64(stripped, "public_key", 32))]
    except MalformedCertificate as exc:
        raise ValueError("not a PEM key, a base64 raw Ed25519 key or a /v1/keys document") \
            from exc


def public_key_entry(key: Ed25519PublicKey) -> dict[str, str]:
    """One key as ``GET /v1/keys`` lists it."""
    raw = raw_public_key(key)
    pem = key.public_bytes(serialization.Encoding.PEM,
                           serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")
    return {"key_id": key_id(raw), "algorithm": ALGORITHM,
            "public_key": base64.b64encode(raw).decode("ascii"), "public_key_pem": pem}
