"""``robustgate-client``: submit, status, wait, scorecard, reports, verify-certificate.

Exit codes as the full ``robustgate`` CLI: verdicts 0 PASS, 1 FAIL, 2 INCONCLUSIVE or any
error; verify-certificate 0 valid, 1 invalid, 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from robustgate_client import __version__
from robustgate_client.api import (
    EXIT_CODES,
    EXIT_ERROR,
    Certification,
    Client,
    RobustgateError,
)
from robustgate_client.render import junit_from_server, summary

DEFAULT_SERVER = "http://127.0.0.1:8000"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except RobustgateError as exc:
        return fail(str(exc))
    except OSError as exc:
        return fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))
    except KeyboardInterrupt:
        return fail("interrupted")
    except Exception as exc:  # a bug is never a verdict: exit 2, not Python's 1
        import traceback

        traceback.print_exc()
        return fail(f"internal error (not a verdict): {type(exc).__name__}: {exc}"[:2000])


def fail(message: str) -> int:
    sys.stderr.write(f"robustgate-client: error: {message}\n")
    return EXIT_ERROR


def _client(args: argparse.Namespace) -> Client:
    if not args.token:
        raise RobustgateError("no API token: pass --token or set ROBUSTGATE_TOKEN")
    return Client(args.server, args.token)


def _progress(job: dict[str, Any], last: list[Any] = [None]) -> None:  # noqa: B006
    key = (job["status"], job.get("stage", ""))
    if key != last[0]:
        print(f"[{job.get('progress', 0.0) * 100:5.1f}%] {key[0]:<9} {key[1]}", file=sys.stderr)
        last[0] = key


def _finish(cert: Certification, args: argparse.Namespace) -> int:
    result = cert.wait(timeout=args.timeout, poll=args.poll, on_progress=_progress)
    if args.report is not None:
        cert.download_reports(args.report)
        print(f"reports written to {args.report}", file=sys.stderr)
    if args.junit is not None:
        junit_from_server(cert.client, cert.id, args.junit)
    if args.json_out is not None:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(result.scorecard, indent=2, sort_keys=True))
    sys.stdout.write(summary(result.scorecard))
    print(f"certification {cert.id}", file=sys.stderr)
    return result.exit_code


def submit(args: argparse.Namespace) -> int:
    for label, path in (("model", args.model), ("evaluation set", args.data),
                        ("OOD set", args.ood)):
        if path is not None and not path.is_file():
            return fail(f"{label} file not found: {path}")
    wait = args.wait or args.report is not None or args.junit is not None \
        or args.json_out is not None
    with _client(args) as client:
        cert = client.submit(args.model, args.data, args.standard, seed=args.seed,
                             input_range=tuple(args.input_range) if args.input_range else None,
                             mean=args.mean, std=args.std, ood=args.ood)
        print(f"submitted {cert.id} ({cert.status}{', reused' if cert.reused else ''})",
              file=sys.stderr)
        if args.id_file is not None:
            args.id_file.write_text(cert.id + "\n")
        if not wait:
            print(cert.id)
            return 0
        return _finish(cert, args)


def wait(args: argparse.Namespace) -> int:
    with _client(args) as client:
        return _finish(client.certification(args.id), args)


def status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        print(json.dumps(client.status(args.id), indent=2))
    return 0


def scorecard(args: argparse.Namespace) -> int:
    with _client(args) as client:
        card = client.scorecard(args.id)
    text = json.dumps(card, indent=2, sort_keys=True)
    if args.output is not None:
        args.output.write_text(text)
    else:
        print(text)
    return EXIT_CODES.get(str(card.get("verdict")), EXIT_ERROR)


def reports(args: argparse.Namespace) -> int:
    with _client(args) as client:
        written = client.download_reports(args.id, args.folder)
    for path in written:
        print(path)
    return 0


def verify_certificate(args: argparse.Namespace) -> int:
    from robustgate_client import certificate as cm

    for label, path in (("certificate", args.certificate), ("model", args.model)):
        if not path.is_file():
            return fail(f"{label} file not found: {path}")
    try:
        if args.server:
            with Client(args.server) as client:
                trusted = cm.load_public_keys(json.dumps(client.keys()))
        else:
            source = Path(args.public_key)
            trusted = cm.load_public_keys(source.read_text() if source.is_file()
                                          else args.public_key)
    except (OSError, ValueError, RobustgateError) as exc:
        return fail(f"no trusted key: {exc}")
    try:
        ok = cm.verify_file(str(args.certificate), str(args.model), trusted,
                            standard=args.standard, standard_sha256=args.standard_sha256,
                            require_builtin=args.require_builtin,
                            accept=args.accept_verdict or ["PASS"])
    except cm.CertificateError as exc:
        print(f"INVALID ({exc.part}): {exc}")
        return 1
    print(f"ok  signature: Ed25519, trusted key {ok.key_id[:16]}..., signed {ok.signed_at}")
    print(f"ok  model:     {args.model.name} sha256 {ok.model_sha256[:16]}... is the "
          "certified model")
    print(f"ok  standard:  {ok.standard} sha256 {ok.standard_sha256[:16] or '?'}... "
          f"owner {ok.owner}")
    print(f"ok  verdict:   {ok.verdict} against {ok.standard}")
    print(f"VALID: {args.model.name} is certified {ok.verdict} "
          f"(certification {ok.certification_id})")
    return 0


def _numbers(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") \
            from None


def _server_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", default=os.environ.get("ROBUSTGATE_SERVER", DEFAULT_SERVER),
                   help="server URL (default $ROBUSTGATE_SERVER or %(default)s)")
    p.add_argument("--token", default=os.environ.get("ROBUSTGATE_TOKEN"),
                   help="API token (default $ROBUSTGATE_TOKEN)")


def _wait_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait")
    p.add_argument("--poll", type=float, default=1.0, help="seconds between polls")
    p.add_argument("--junit", type=Path, help="write JUnit XML here (one case per criterion)")
    p.add_argument("--json", type=Path, dest="json_out", help="write the scorecard here")
    p.add_argument("--report", type=Path, metavar="DIR",
                   help="write report.{html,md,xml,svg}, scorecard.json, certificate.json")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="robustgate-client", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"robustgate-client {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("submit", help="upload a model for certification")
    s.add_argument("model", type=Path)
    s.add_argument("--data", type=Path, required=True, help="evaluation set .npz (x, y)")
    s.add_argument("--standard", required=True, help="NAME or NAME@VERSION")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--input-range", type=float, nargs=2, metavar=("LOW", "HIGH"))
    s.add_argument("--mean", type=_numbers, metavar="M[,M,...]")
    s.add_argument("--std", type=_numbers, metavar="S[,S,...]")
    s.add_argument("--ood", type=Path, help="your own OOD inputs: .npz with x")
    s.add_argument("--wait", action="store_true",
                   help="poll until the verdict and exit with it (implied by --junit, --json, "
                        "--report)")
    s.add_argument("--id-file", type=Path, help="write the certification id here")
    _server_args(s)
    _wait_args(s)
    s.set_defaults(handler=submit)

    w = sub.add_parser("wait", help="wait for a certification; exit with its verdict")
    w.add_argument("id")
    _server_args(w)
    _wait_args(w)
    w.set_defaults(handler=wait)

    st = sub.add_parser("status", help="a certification's status (JSON)")
    st.add_argument("id")
    _server_args(st)
    st.set_defaults(handler=status)

    sc = sub.add_parser("scorecard", help="print the scorecard (JSON); exit with the verdict")
    sc.add_argument("id")
    sc.add_argument("-o", "--output", type=Path, help="write it here instead of stdout")
    _server_args(sc)
    sc.set_defaults(handler=scorecard)

    r = sub.add_parser("reports", help="download the reports, scorecard and certificate")
    r.add_argument("id")
    r.add_argument("folder", type=Path)
    _server_args(r)
    r.set_defaults(handler=reports)

    v = sub.add_parser("verify-certificate",
                       help="offline check: signature, model sha256, standard, verdict",
                       description="Exit 0 valid, 1 invalid, 2 usage error.")
    v.add_argument("certificate", type=Path)
    v.add_argument("--model", type=Path, required=True, help="the ONNX file about to ship")
    key = v.add_mutually_exclusive_group(required=True)
    key.add_argument("--public-key", metavar="KEY",
                     help="trusted key: a file (PEM, base64 raw key, or saved GET /v1/keys) "
                          "or the base64 raw key itself")
    key.add_argument("--server", help="fetch the trusted keys from this server's /v1/keys")
    v.add_argument("--accept-verdict", action="append",
                   choices=["PASS", "FAIL", "INCONCLUSIVE"],
                   help="verdicts that count as valid (default: PASS only; repeatable)")
    v.add_argument("--standard", help="also require the certificate to be for this standard")
    v.add_argument("--standard-sha256", metavar="HEX",
                   help="also require the standard's document to have this sha256")
    v.add_argument("--require-builtin", action="store_true",
                   help="also require a built-in standard (not a tenant's own upload)")
    v.set_defaults(handler=verify_certificate)
    return p


if __name__ == "__main__":
    sys.exit(main())
