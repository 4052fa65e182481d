"""Certificates: Ed25519 over canonical JSON; any change to any byte of meaning fails.

The scorecard is a real one (tests.test_report_cli); keys are made here or by service.signing.
"""

from __future__ import annotations

import copy
import json
import multiprocessing
import stat
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service.signing import key_path, load_or_create_signer
from tests.test_report_cli import certified_run
from verifiers.certificate import (
    BadSignature,
    MalformedCertificate,
    ModelMismatch,
    UntrustedKey,
    assemble,
    canonical_json,
    check_model,
    envelope,
    load_public_keys,
    parse_certificate,
    public_key_entry,
    sign_scorecard,
    verify_certificate,
)


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def cert(key) -> dict[str, Any]:
    return sign_scorecard(copy.deepcopy(certified_run().card), key, certification_id="job-1")


def _leaves(value: Any, path: tuple = ()) -> Iterator[tuple]:
    if isinstance(value, dict):
        if not value:
            yield path
        for k, v in value.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(value, list):
        if not value:
            yield path
        for i, v in enumerate(value):
            yield from _leaves(v, (*path, i))
    else:
        yield path


def _get(doc: Any, path: tuple) -> Any:
    for k in path:
        doc = doc[k]
    return doc


def _set(doc: Any, path: tuple, value: Any) -> None:
    _get(doc, path[:-1])[path[-1]] = value


def _tampered(value: Any) -> list[Any]:
    """Changes of value and of type that a careless canonicalisation could let through."""
    if isinstance(value, bool):
        return [not value, int(value)]
    if isinstance(value, int):
        return [value + 1, float(value), str(value)]
    if isinstance(value, float):
        return [value * (1 + 1e-12) + 1e-300, str(value), None]
    if isinstance(value, str):
        return [value + " ", value.upper() if value != value.upper() else value + "x", None]
    if value is None:
        return [0, "", False]
    if isinstance(value, list):
        return [[*value, None]]
    return [{**value, "x": 1}]


def test_sign_verify_and_model_hash(cert, key):
    ok = verify_certificate(cert, [key.public_key()])
    assert ok.certification_id == "job-1" and ok.verdict == cert["scorecard"]["verdict"]
    assert check_model(ok, certified_run().model.read_bytes()) == ok.model_sha256
    with pytest.raises(ModelMismatch, match="not the certified model"):
        check_model(ok, certified_run().model.read_bytes() + b"\0")


def test_any_change_to_any_field_of_any_type_fails(cert, key):
    trusted = [key.public_key()]
    paths = list(_leaves(cert))
    assert len(paths) > 300  # the real scorecard: every leaf is tried
    kinds = {type(_get(cert, path)).__name__ for path in paths}
    forged = copy.deepcopy(cert)  # changed in place and put back: one copy, not one a field
    for path in paths:
        if path == ("signature",):
            continue
        for changed in _tampered(original := _get(cert, path)):
            _set(forged, path, changed)
            with pytest.raises((BadSignature, UntrustedKey, MalformedCertificate)):
                verify_certificate(forged, trusted)
            _set(forged, path, copy.deepcopy(original))
    assert {"bool", "int", "float", "str", "NoneType"} <= kinds
    for path in paths:  # removing a field, or renaming it
        parent = _get(forged, path[:-1])
        if path == ("signature",) or not isinstance(parent, dict):
            continue
        for rename in (False, True):
            order = list(parent)
            value = parent.pop(path[-1])
            if rename:
                parent[f"{path[-1]}_"] = value
            with pytest.raises((BadSignature, UntrustedKey, MalformedCertificate)):
                verify_certificate(forged, trusted)
            parent.pop(f"{path[-1]}_", None)
            parent[path[-1]] = value
            for k in order:  # key order as it was (canonical JSON sorts anyway)
                parent[k] = parent.pop(k)
    verify_certificate(forged, trusted)  # every change was put back: valid again


def test_flipping_any_single_bit_of_the_signature_fails(cert, key):
    import base64

    raw = bytearray(base64.b64decode(cert["signature"]))
    for i in range(0, len(raw) * 8, 37):
        flipped = bytearray(raw)
        flipped[i // 8] ^= 1 << (i % 8)
        forged = cert | {"signature": base64.b64encode(bytes(flipped)).decode()}
        with pytest.raises(BadSignature):
            verify_certificate(forged, [key.public_key()])


def test_layout_of_the_file_does_not_matter_its_content_does(cert, key):
    trusted = [key.public_key()]
    for text in (json.dumps(cert), json.dumps(cert, indent=4, sort_keys=True),
                 json.dumps(dict(reversed(list(cert.items()))), indent="\t", ensure_ascii=True)):
        assert verify_certificate(parse_certificate(text), trusted)
    assert canonical_json({"b": 1, "a": [1.0, "é"]}) == '{"a":[1.0,"é"],"b":1}'.encode()
    text = json.dumps(cert)
    with pytest.raises(MalformedCertificate, match="duplicate key"):
        parse_certificate(text[:-1] + ', "verdict": "PASS", "verdict": "FAIL"}')
    with pytest.raises(MalformedCertificate):
        parse_certificate(text.replace('"', "'", 1))
    with pytest.raises(ValueError, match="non-finite number at scorecard.seed"):
        sign_scorecard({"seed": float("nan"), "model": {}}, Ed25519PrivateKey.generate())


def test_only_trusted_keys_count(cert, key):
    other = Ed25519PrivateKey.generate()
    with pytest.raises(UntrustedKey, match="not a trusted key"):
        verify_certificate(cert, [other.public_key()])
    # Re-signed by someone else with their key embedded: valid maths, untrusted signer.
    forged = sign_scorecard(cert["scorecard"] | {"verdict": "PASS"}, other)
    with pytest.raises(UntrustedKey):
        verify_certificate(forged, [key.public_key()])
    # Keys load from PEM, from base64 and from the /v1/keys document alike.
    entry = public_key_entry(key.public_key())
    for text in (entry["public_key_pem"], entry["public_key"], json.dumps({"keys": [entry]})):
        assert verify_certificate(cert, load_public_keys(text))
    stored = envelope(cert)
    assert "scorecard" not in stored and assemble(stored, cert["scorecard"]) == cert


def _make_key(data_dir: str) -> str:
    from pathlib import Path

    return load_or_create_signer(Path(data_dir)).key_id


def test_service_key_is_created_once_private_and_shared(tmp_path):
    with multiprocessing.get_context("fork").Pool(4) as pool:
        ids = pool.map(_make_key, [str(tmp_path)] * 8)
    assert len(set(ids)) == 1  # racing processes agree on one key
    path = key_path(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left
    path.chmod(0o644)
    signer = load_or_create_signer(tmp_path)
    assert signer.key_id == ids[0] and stat.S_IMODE(path.stat().st_mode) == 0o600
    cert = assemble(signer.sign({"model": {"sha256": "0" * 64}, "verdict": "FAIL"}, "j"),
                    {"model": {"sha256": "0" * 64}, "verdict": "FAIL"})
    assert verify_certificate(cert, load_public_keys(json.dumps(signer.keys_document())))
