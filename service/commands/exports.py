"""``robustgate export mlflow|model-card|robustbench``: a scorecard into other tools."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from service.console import fail


def _card(args: argparse.Namespace) -> dict | None:
    from service.exports import load_scorecard

    try:
        return load_scorecard(args.scorecard)
    except (OSError, ValueError) as exc:
        fail(f"cannot read the scorecard: {exc}")
        return None


def mlflow(args: argparse.Namespace) -> int:
    from service.exports import log_to_mlflow

    if (card := _card(args)) is None:
        return 2
    reports = args.reports or (args.scorecard if args.scorecard.is_dir() else None)
    try:
        run_id = log_to_mlflow(card, reports=reports, tracking_uri=args.tracking_uri,
                               experiment=args.experiment, run_id=args.run_id,
                               run_name=args.run_name)
    except RuntimeError as exc:
        return fail(str(exc))
    print(run_id)
    return 0


def model_card(args: argparse.Namespace) -> int:
    import yaml

    from service.exports import model_index, update_model_card

    if (card := _card(args)) is None:
        return 2
    index = model_index(card, model_name=args.model_name, dataset_name=args.dataset_name,
                        dataset_type=args.dataset_type, task_type=args.task,
                        source_url=args.source_url)
    if args.update is not None:
        text = args.update.read_text() if args.update.is_file() else ""
        args.update.write_text(update_model_card(text, index))
        print(f"model-index written to {args.update}", file=sys.stderr)
    else:
        sys.stdout.write(yaml.safe_dump({"model-index": index}, sort_keys=False))
    return 0


def robustbench(args: argparse.Namespace) -> int:
    from service.exports import robustbench_record

    if (card := _card(args)) is None:
        return 2
    record = robustbench_record(card, name=args.name, dataset=args.dataset,
                                architecture=args.architecture, link=args.link,
                                authors=args.authors, venue=args.venue,
                                additional_data=args.additional_data,
                                provenance=args.provenance)
    text = json.dumps(record, indent=2) + "\n"
    if args.output is not None:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    if record["autoattack_acc"] is None:
        print(f"robustgate: warning: {record['footnote']}", file=sys.stderr)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("export", help="a scorecard into MLflow, a model card, RobustBench")
    esub = e.add_subparsers(dest="export_command", required=True)

    def scorecard_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("scorecard", type=Path,
                       help="scorecard.json, a --report folder, or a certificate.json")

    m = esub.add_parser("mlflow", help="log params, metrics (MLflow-safe keys) and reports")
    scorecard_arg(m)
    m.add_argument("--reports", type=Path, help="folder of reports to log as artifacts")
    m.add_argument("--tracking-uri", help="default: $MLFLOW_TRACKING_URI")
    m.add_argument("--experiment")
    m.add_argument("--run-id", help="log into this existing run")
    m.add_argument("--run-name")
    m.set_defaults(handler=mlflow)

    c = esub.add_parser("model-card", help="Hugging Face model-index YAML")
    scorecard_arg(c)
    c.add_argument("--model-name", required=True)
    c.add_argument("--dataset-name", required=True)
    c.add_argument("--dataset-type", default="")
    c.add_argument("--task", default="image-classification")
    c.add_argument("--source-url", default="", help="e.g. the HTML report's URL")
    c.add_argument("--update", type=Path, metavar="README.md",
                   help="set model-index in this card's front matter instead of printing")
    c.set_defaults(handler=model_card)

    r = esub.add_parser("robustbench", help="RobustBench model-info JSON (its fields, units)")
    scorecard_arg(r)
    for flag in ("name", "dataset", "architecture", "link", "authors", "venue"):
        r.add_argument(f"--{flag}", default="")
    r.add_argument("--additional-data", action="store_true")
    r.add_argument("--provenance", action="store_true",
                   help="add a 'robustgate' key (not a RobustBench field): battery robust "
                        "accuracy, standard, model sha256")
    r.add_argument("-o", "--output", type=Path)
    r.set_defaults(handler=robustbench)
