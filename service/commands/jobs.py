"""Certification commands for users and CI: submit, certify, status."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from service.console import ProgressBar, emit_results, fail


def _check_inputs(args: argparse.Namespace) -> str | None:
    for label, path in (("model", args.model), ("evaluation set", args.data),
                        ("OOD set", args.ood)):
        if path is not None and not path.is_file():
            return f"{label} file not found: {path}"
    return None


def submit(args: argparse.Namespace) -> int:
    from service.client import Client, ClientError

    if problem := _check_inputs(args):
        return fail(problem)
    if not args.token:
        return fail("no API token: pass --token or set ROBUSTGATE_TOKEN")
    args.wait = args.wait or args.report is not None  # a report needs the verdict
    try:
        with Client(args.server, args.token) as client:
            job = client.submit(args.model, args.data, args.standard, seed=args.seed,
                                input_range=tuple(args.input_range) if args.input_range else None,
                                ood=args.ood, mean=args.mean, std=args.std)
            print(f"submitted {job['id']} ({job['status']})", file=sys.stderr)
            if not args.wait:
                print(job["id"])
                return 0
            job = client.wait(job["id"], ProgressBar().update, timeout=args.timeout)
            if job["status"] != "succeeded":
                return fail(f"certification {job['id']} {job['status']}: {job.get('error')}")
            card = client.scorecard(job["id"])
            if args.report is not None:
                _download_reports(client, job["id"], args.report, card)
    except ClientError as exc:
        return fail(str(exc))
    return emit_results(card, args.junit, args.json_out)


def _download_reports(client, job_id: str, folder: Path, card: dict) -> None:
    """The server's renderings, the scorecard and the certificate, into ``folder``."""
    from service.client import ClientError

    folder.mkdir(parents=True, exist_ok=True)
    for ext in ("html", "md", "xml", "svg"):
        (folder / f"report.{ext}").write_bytes(client.report(job_id, ext))
    (folder / "scorecard.json").write_text(json.dumps(card, indent=2, sort_keys=True))
    try:  # the confirmed adversarial examples (404 when the scorecard keeps none)
        (folder / "adversarial.npz").write_bytes(client.adversarial(job_id))
    except ClientError as exc:
        if exc.status != 404:
            raise
    try:
        certificate = client.certificate(job_id)
    except ClientError as exc:
        if exc.status != 409:
            raise
        print(f"robustgate: warning: no certificate: {exc}", file=sys.stderr)
        return
    (folder / "certificate.json").write_text(
        json.dumps(certificate, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
        encoding="utf-8")
    print(f"reports and certificate written to {folder}", file=sys.stderr)


def certify(args: argparse.Namespace) -> int:
    from verifiers import VerifierError, certify, get_builtin, load_eval_set, parse_standard
    from verifiers.ood import load_ood_x
    from verifiers.units import parse_mapping

    if problem := _check_inputs(args):
        return fail(problem)
    bar = ProgressBar()
    try:
        # In-process runs also take a standard's YAML file (for drafting one).
        std_path = Path(args.standard)
        standard = (parse_standard(std_path.read_text()) if std_path.suffix in (".yaml", ".yml")
                    and std_path.is_file() else get_builtin(args.standard))
        card = certify(args.model.read_bytes(), load_eval_set(args.data), standard,
                       seed=args.seed,
                       input_range=tuple(args.input_range) if args.input_range else (None, None),
                       ood_x=load_ood_x(args.ood) if args.ood is not None else None,
                       mapping=parse_mapping(args.mean, args.std), device=args.device,
                       progress=lambda f, stage: bar.update(
                           {"status": "running", "stage": stage, "progress": f}))
    except VerifierError as exc:
        return fail(str(exc))
    bar.update({"status": "succeeded", "stage": "done", "progress": 1.0})
    if args.report is not None:
        from verifiers.report import write_reports

        write_reports(args.report, card)
        print(f"reports written to {args.report} (in-process runs are not signed)",
              file=sys.stderr)
    return emit_results(card, args.junit, args.json_out)


def status(args: argparse.Namespace) -> int:
    from service.client import Client, ClientError

    try:
        with Client(args.server, args.token) as client:
            print(json.dumps(client.get(args.id), indent=2))
    except ClientError as exc:
        return fail(str(exc))
    return 0
