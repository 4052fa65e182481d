"""Commands that check claims: verify-certificate (signatures) and verify (VNN-LIB)."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from service.console import EXIT_ERROR, fail


def verify_certificate(args: argparse.Namespace) -> int:
    from verifiers import certificate as cert_mod

    for label, path in (("certificate", args.certificate), ("model", args.model)):
        if not path.is_file():
            return fail(f"{label} file not found: {path}")
    try:
        trusted = _trusted_keys(args)
    except (OSError, ValueError, RuntimeError) as exc:
        return fail(f"no trusted key: {exc}")
    accepted = args.accept_verdict or ["PASS"]
    try:
        cert = cert_mod.parse_certificate(args.certificate.read_bytes())
        ok = cert_mod.verify_certificate(cert, trusted)
        digest = cert_mod.check_model(ok, args.model.read_bytes())
    except cert_mod.CertificateError as exc:
        print(f"INVALID ({exc.part}): {exc}")
        return 1
    print(f"ok  signature: Ed25519, trusted key {ok.key_id[:16]}..., signed {ok.signed_at}")
    print(f"ok  model:     {args.model.name} sha256 {digest[:16]}... is the certified model")
    try:
        cert_mod.check_standard(ok, name=args.standard, sha256=args.standard_sha256,
                                require_builtin=args.require_builtin)
    except cert_mod.CertificateError as exc:
        print(f"INVALID ({exc.part}): {exc}")
        return 1
    print(f"ok  standard:  {ok.standard} sha256 {ok.standard_sha256[:16] or '?'}... "
          f"owner {ok.owner}")
    if ok.verdict not in accepted:
        print(f"INVALID (verdict): the certified verdict is {ok.verdict} against {ok.standard}; "
              f"accepted: {', '.join(accepted)}")
        return 1
    print(f"ok  verdict:   {ok.verdict} against {ok.standard}")
    print(f"VALID: {args.model.name} is certified {ok.verdict} "
          f"(certification {ok.certification_id})")
    return 0


def _trusted_keys(args: argparse.Namespace) -> list:
    from verifiers.certificate import load_public_keys

    if args.server:
        import httpx

        url = f"{args.server.rstrip('/')}/v1/keys"
        try:
            response = httpx.get(url, timeout=30)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise RuntimeError(f"cannot fetch {url}: {exc}") from exc
        return load_public_keys(response.text)
    source = Path(args.public_key)
    return load_public_keys(source.read_text() if source.is_file() else args.public_key)


def verify(args: argparse.Namespace) -> int:
    """Exit 0 when the property holds, 1 when violated (counterexample printed), 2 unknown."""
    from verifiers import DataError, IntakeError
    from verifiers.bounds import parse_vnnlib, verify_vnnlib
    from verifiers.model import load_model

    for label, path in (("model", args.model), ("property", args.property)):
        if not path.is_file():
            return fail(f"{label} file not found: {path}")
    raw, text = args.model.read_bytes(), args.property.read_text(errors="replace")
    try:
        load_model(raw)
        parse_vnnlib(text)
    except (IntakeError, DataError) as exc:
        return fail(str(exc))
    # The timeout is the command's: Python start-up, imports and the checks above count too.
    result = verify_vnnlib(raw, text, args.method, args.timeout,
                           started=time.monotonic() - _since_process_start())
    print(f"{result.status} ({result.decided_by or 'undecided'}, {result.seconds:.2f} s): "
          f"{result.reason}")
    record = {"status": result.status, "reason": result.reason, "decided_by": result.decided_by,
              "seconds": result.seconds,
              "counterexample": None if result.counterexample is None
              else result.counterexample.tolist(),
              "output": None if result.output is None else result.output.tolist()}
    if result.counterexample is not None:
        print(f"counterexample output: {record['output']}")
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(record, indent=2))
    return {"holds": 0, "violated": 1}.get(result.status, EXIT_ERROR)


def _since_process_start() -> float:
    """Seconds since this process started (Linux /proc; 0 where it cannot be read)."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0
