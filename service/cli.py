"""The ``robustgate`` command line.

Exit codes for verdicts: 0 PASS, 1 FAIL, 2 INCONCLUSIVE or any error.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from service.commands import admin, catalog, exports, jobs, proofs
from service.console import fail

DEFAULT_SERVER = "http://127.0.0.1:8000"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.command != "serve" else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        return fail("interrupted")
    except Exception as exc:  # configuration and connection errors: one line, no traceback
        if (message := startup_error(exc)) is not None:
            return fail(message)
        # Anything else is a bug or a crash in a dependency, never a verdict: exit 2 (a CI
        # job reads 1 as FAIL), with the traceback for a bug report.
        logging.getLogger("robustgate").error("internal error", exc_info=exc)
        return fail(f"internal error (not a verdict): {type(exc).__name__}: {exc}"[:2000])


def startup_error(exc: BaseException) -> str | None:
    """A message for errors of the environment rather than of the program, else None."""
    from service.config import ConfigError

    if isinstance(exc, ConfigError):
        return str(exc)
    try:
        from sqlalchemy.exc import DBAPIError, OperationalError
    except ImportError:  # pragma: no cover
        return None
    if isinstance(exc, (OperationalError, DBAPIError)):
        from service.config import _hide_password

        lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        url = getattr(exc, "robustgate_url", None) or os.environ.get("ROBUSTGATE_DATABASE_URL")
        target = f" at {_hide_password(url)}" if url else ""
        return f"cannot use the database{target}: {lines[0] if lines else type(exc).__name__}"
    return None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="robustgate", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"robustgate {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="start the API and worker(s)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--workers", type=int, default=1, help="worker processes to start (0: none)")
    s.add_argument("--api-processes", type=int,
                   default=os.environ.get("ROBUSTGATE_API_PROCESSES") or "1",
                   help="API processes answering on the port (default 1, or "
                        "ROBUSTGATE_API_PROCESSES); about one per core the API may use")
    s.add_argument("--access-log", action="store_true",
                   help="log every request (off by default: a proxy in front usually does)")
    s.set_defaults(handler=admin.serve)

    w = sub.add_parser("worker", help="start a worker alone")
    w.add_argument("--concurrency", type=int, default=1)
    w.add_argument("--queues", default="cpu,gpu",
                   help="which queues to consume: cpu (planning), gpu (attack and finish "
                        "shards), or both (default cpu,gpu)")
    w.add_argument("--device", default=None,
                   help="the one device this worker runs jobs on: auto, cpu, cuda, cuda:N "
                        "(default: ROBUSTGATE_DEVICE, else auto)")
    w.set_defaults(handler=admin.worker)

    m = sub.add_parser("migrate", help="bring the database schema up to date")
    m.add_argument("--revision", default="head")
    m.add_argument("--downgrade", action="store_true")
    m.set_defaults(handler=admin.migrate)

    t = sub.add_parser("token", help="API tokens")
    tsub = t.add_subparsers(dest="token_command", required=True)
    tc = tsub.add_parser("create", help="create a token for a tenant (created if new)")
    tc.add_argument("--tenant", help="the tenant (required unless --admin)")
    tc.add_argument("--admin", action="store_true",
                    help="an admin token: may create, list and revoke tokens (/v1/tokens)")
    tc.add_argument("--name", default="", help="what the token is for")
    tc.add_argument("--expires-in-days", type=float, metavar="DAYS")
    tc.add_argument("--init", action="store_true",
                    help="create the database if it does not exist yet (by default a missing "
                         "database is an error: a token in a new database is useless to a "
                         "server using another)")
    tc.set_defaults(handler=admin.token_create)

    for name, helptext in (("submit", "submit to a server (for CI)"),
                           ("certify", "run the same pipeline in-process, no server")):
        c = sub.add_parser(name, help=helptext)
        c.add_argument("model", type=Path,
                       help="ONNX model: .onnx, gzip, or a .zip bundle of the graph and its "
                            "external data files")
        c.add_argument("--data", type=Path, required=True, help="evaluation set .npz (x, y)")
        c.add_argument("--standard", required=True,
                       help="standard name" + (" or YAML file" if name == "certify" else ""))
        c.add_argument("--seed", type=int, default=0)
        c.add_argument("--input-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                       help="the input range, for a standard that declares no input domain")
        c.add_argument("--mean", type=_numbers, metavar="M[,M,...]",
                       help="how the model's inputs map to the standard's units: standard "
                            "units = x * std + mean (one value, or one per channel)")
        c.add_argument("--std", type=_numbers, metavar="S[,S,...]", help="see --mean")
        c.add_argument("--ood", type=Path, help="your own OOD inputs: .npz with x")
        c.add_argument("--junit", type=Path, help="write JUnit XML here")
        c.add_argument("--json", type=Path, dest="json_out", help="write the scorecard here")
        c.add_argument("--report", type=Path, metavar="DIR",
                       help="write report.{html,md,xml,svg} and scorecard.json here"
                            + (" (and certificate.json; implies --wait)"
                               if name == "submit" else ""))
        if name == "submit":
            c.add_argument("--server", default=os.environ.get("ROBUSTGATE_SERVER",
                                                              DEFAULT_SERVER))
            c.add_argument("--token", default=os.environ.get("ROBUSTGATE_TOKEN"))
            c.add_argument("--wait", action="store_true", help="poll until the verdict")
            c.add_argument("--timeout", type=float, default=3600.0)
            c.set_defaults(handler=jobs.submit)
        else:
            c.add_argument("--device", default=os.environ.get("ROBUSTGATE_DEVICE", "auto"),
                           help="where tensors live: auto (a GPU when there is one), cpu, cuda, "
                                "cuda:N")
            c.set_defaults(handler=jobs.certify)

    v = sub.add_parser("verify-certificate",
                       help="check a certificate's signature and that MODEL is the certified one",
                       description="Offline check of a certificate: the signature against a "
                                   "trusted key, the model's sha256, the verdict. Exit 0 valid, "
                                   "1 invalid, 2 usage error.")
    v.add_argument("certificate", type=Path)
    v.add_argument("--model", type=Path, required=True, help="the ONNX file about to ship")
    key = v.add_mutually_exclusive_group(required=True)
    key.add_argument("--public-key", metavar="KEY",
                     help="trusted key: a file (PEM, base64 raw key, or saved GET /v1/keys) "
                          "or the base64 raw key itself")
    key.add_argument("--server", help="fetch the trusted keys from this server's /v1/keys")
    v.add_argument("--accept-verdict", action="append", choices=["PASS", "FAIL", "INCONCLUSIVE"],
                   help="verdicts that count as valid (default: PASS only; repeatable)")
    v.add_argument("--standard", help="also require the certificate to be for this standard")
    v.add_argument("--standard-sha256", metavar="HEX",
                   help="also require the standard's document to have this sha256")
    v.add_argument("--require-builtin", action="store_true",
                   help="also require a built-in standard (not a tenant's own upload)")
    v.set_defaults(handler=proofs.verify_certificate)

    v = sub.add_parser("verify", help="decide a VNN-LIB property on a model, in-process")
    v.add_argument("model", type=Path)
    v.add_argument("property", type=Path, help="VNN-LIB 1.0 file")
    v.add_argument("--method", default="alpha-crown", choices=["ibp", "crown", "alpha-crown"])
    v.add_argument("--timeout", type=float, default=60.0)
    v.add_argument("--json", type=Path, dest="json_out", help="write the result here")
    v.set_defaults(handler=proofs.verify)

    st = sub.add_parser("status", help="show a certification")
    st.add_argument("id")
    st.add_argument("--server", default=os.environ.get("ROBUSTGATE_SERVER", DEFAULT_SERVER))
    st.add_argument("--token", default=os.environ.get("ROBUSTGATE_TOKEN"))
    st.set_defaults(handler=jobs.status)

    sd = sub.add_parser("standards", help="the built-in standards: list, show, lint a file")
    ssub = sd.add_subparsers(dest="standards_command", required=True)
    sl = ssub.add_parser("list", help="the built-in standards (or a server's, with --server)")
    sl.add_argument("--server", help="list this server's standards instead")
    sl.add_argument("--token", default=os.environ.get("ROBUSTGATE_TOKEN"),
                    help="with --server: also your own standards")
    sl.set_defaults(handler=catalog.standards_list)
    ss = ssub.add_parser("show", help="print a built-in standard's YAML: NAME or NAME@VERSION")
    ss.add_argument("name")
    ss.set_defaults(handler=catalog.standards_show)
    sn = ssub.add_parser("lint", help="check a standard's YAML file against the catalogue "
                                      "(exit 0 ok, 1 refused, 2 unreadable)")
    sn.add_argument("file", type=Path)
    sn.set_defaults(handler=catalog.standards_lint)

    mt = sub.add_parser("metrics", help="the metric catalogue: every path a criterion can name")
    mt.add_argument("--json", action="store_true", help="as JSON (what GET /v1/metrics serves)")
    mt.set_defaults(handler=catalog.metrics)

    exports.add_parser(sub)

    d = sub.add_parser("demo", help="start an embedded service, certify the example, stop")
    d.add_argument("--data-dir", type=Path, help="keep the service's data here")
    d.set_defaults(handler=admin.demo)
    return p


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("robustgate")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _numbers(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}")\
            from None


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["main"]
