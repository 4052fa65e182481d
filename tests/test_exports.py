"""`robustgate export mlflow|model-card|robustbench` on a real scorecard (the in-process run of
tests.test_report_cli): MLflow-safe keys with the mapping kept, a model card's model-index,
RobustBench's fields in RobustBench's units."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import yaml

from service.exports import mlflow_key, mlflow_metrics, robustbench_record, update_model_card
from tests.fixtures_service import clean_env
from tests.test_report_cli import certified_run

MLFLOW_KEY = re.compile(r"^[A-Za-z0-9_\-. /]+$")  # MLflow's accepted characters


def _cli(*args: str, cwd=None, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service.cli", "export", *args],
                          capture_output=True, text=True, env=clean_env() | env, cwd=cwd,
                          timeout=300)


def test_metric_keys_are_mlflow_safe_and_mapped_back():
    assert mlflow_key("adversarial.robust_accuracy@8/255") == \
        "adversarial.robust_accuracy_at_8_255"
    assert mlflow_key("ood.user.fpr@95.msp") == "ood.user.fpr_at_95.msp"
    card = certified_run().card
    metrics, mapping = mlflow_metrics(card)
    assert all(MLFLOW_KEY.match(k) and "@" not in k and "/" not in k for k in metrics)
    assert set(metrics) == set(mapping)
    for key, path in mapping.items():
        if path in card["metrics"]:
            assert metrics[key] == float(card["metrics"][path])
    assert "adversarial.robust_accuracy_at_0.1" in metrics


def test_robustbench_record_uses_robustbench_units():
    card = certified_run().card
    out = _cli("robustbench", str(certified_run().folder), "--name", "digits-cnn",
               "--dataset", "digits")
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert set(record) == {"link", "name", "authors", "additional_data",
                           "number_forward_passes", "dataset", "venue", "architecture", "eps",
                           "clean_acc", "reported", "autoattack_acc", "footnote"}
    assert record["clean_acc"] == f"{100 * card['metrics']['clean.accuracy']:.2f}"
    assert float(record["clean_acc"]) > 1.0          # a percentage, not a fraction
    assert record["number_forward_passes"] == 1      # per prediction, not per job
    assert record["eps"] == card["robustbench"]["eps"]
    # No standard AutoAttack in this run: null with the reason, never the battery's figure.
    assert record["autoattack_acc"] is None and "autoattack" in record["footnote"]
    with_aa = dict(card, robustbench=dict(card["robustbench"], autoattack_acc=0.6672))
    assert robustbench_record(with_aa)["autoattack_acc"] == "66.72"
    prov = robustbench_record(card, provenance=True)["robustgate"]
    assert prov["attack_forward_passes_total"] == card["robustbench"]["number_forward_passes"]


def test_model_card_model_index(tmp_path):
    run = certified_run()
    out = _cli("model-card", str(run.folder / "scorecard.json"), "--model-name", "digits-cnn",
               "--dataset-name", "sklearn digits")
    assert out.returncode == 0, out.stderr
    entry = yaml.safe_load(out.stdout)["model-index"][0]
    result = entry["results"][0]
    assert entry["name"] == "digits-cnn" and result["task"]["type"] == "image-classification"
    types = [m["type"] for m in result["metrics"]]
    assert types[0] == "accuracy" and types.count("robust_accuracy") == 3
    card_file = tmp_path / "README.md"
    card_file.write_text("---\nlicense: mit\n---\n\n# My model\n")
    assert _cli("model-card", str(run.folder), "--model-name", "m", "--dataset-name", "d",
                "--update", str(card_file)).returncode == 0
    text = card_file.read_text()
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["license"] == "mit" and meta["model-index"][0]["name"] == "m"
    assert text.rstrip().endswith("# My model")
    assert update_model_card(text, meta["model-index"]) == text   # idempotent


def test_export_mlflow_to_a_local_store(tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    run = certified_run()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = _cli("mlflow", str(run.folder), "--tracking-uri", uri, "--experiment", "gate",
               cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    run_id = out.stdout.strip().splitlines()[-1]
    logged = MlflowClient(tracking_uri=uri).get_run(run_id)
    params = logged.data.params
    assert params["robustgate.model_sha256"] == run.card["model"]["sha256"]
    assert params["robustgate.standard"] == "report-test@1" and params["robustgate.seed"] == "0"
    assert logged.data.metrics["clean.accuracy"] == run.card["metrics"]["clean.accuracy"]
    assert "adversarial.robust_accuracy_at_0.1" in logged.data.metrics
    assert logged.data.tags["robustgate.verdict"] == run.card["verdict"]
    artifacts = {a.path for a in MlflowClient(tracking_uri=uri).list_artifacts(
        run_id, "robustgate")}
    assert {"robustgate/metric_keys.json", "robustgate/report.html",
            "robustgate/scorecard.json"} <= artifacts


def test_export_errors_are_one_line(tmp_path):
    out = _cli("robustbench", str(tmp_path / "missing.json"))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "cannot read the scorecard" in out.stderr
