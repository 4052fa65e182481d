"""Exports of a finished certification's scorecard to the tools users already keep results in:
MLflow (params, MLflow-safe metric keys, reports as artifacts), a Hugging Face model card's
``model-index``, and a RobustBench model-info record in RobustBench's own units.

Everything here reads a scorecard (``scorecard.json`` as ``submit --report`` writes it); only
:func:`log_to_mlflow` needs the optional ``mlflow`` extra.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

MLFLOW_KEY_MAP_ARTIFACT = "robustgate/metric_keys.json"
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. ]")


def mlflow_key(path: str) -> str:
    """A metric path as an MLflow key: ``@`` -> ``_at_``, ``/`` and any other character
    MLflow refuses -> ``_`` (``adversarial.robust_accuracy@8/255`` ->
    ``adversarial.robust_accuracy_at_8_255``)."""
    return _UNSAFE.sub("_", path.replace("@", "_at_").replace("/", "_"))


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def mlflow_metrics(card: dict[str, Any]) -> tuple[dict[str, float], dict[str, str]]:
    """(metrics under MLflow-safe keys, key -> original metric path). Non-numeric and
    non-finite values are left out; two paths that would share a key get suffixes."""
    metrics: dict[str, float] = {}
    mapping: dict[str, str] = {}
    for path in sorted(card.get("metrics", {})):
        value = _number(card["metrics"][path])
        if value is None:
            continue
        key, n = mlflow_key(path), 1
        while key in mapping:
            n += 1
            key = f"{mlflow_key(path)}_{n}"
        metrics[key], mapping[key] = value, path
    verdict_code = {"PASS": 0.0, "FAIL": 1.0, "INCONCLUSIVE": 2.0}.get(str(card.get("verdict")))
    if verdict_code is not None:
        metrics["robustgate.verdict_code"] = verdict_code
        mapping["robustgate.verdict_code"] = "verdict (0 PASS, 1 FAIL, 2 INCONCLUSIVE)"
    return metrics, mapping


def mlflow_params(card: dict[str, Any]) -> dict[str, str]:
    std, data = card.get("standard", {}), card.get("dataset", {})
    tool = card.get("tool", {})
    return {"robustgate.standard": f"{std.get('name')}@{std.get('version')}",
            "robustgate.standard_sha256": str(std.get("sha256")),
            "robustgate.model_sha256": str(card.get("model", {}).get("sha256")),
            "robustgate.dataset_sha256": str(data.get("sha256")),
            "robustgate.n_samples": str(data.get("n_samples")),
            "robustgate.seed": str(card.get("seed")),
            "robustgate.tool_version": str(tool.get("version"))}


def log_to_mlflow(card: dict[str, Any], *, reports: Path | None = None,
                  tracking_uri: str | None = None, experiment: str | None = None,
                  run_id: str | None = None, run_name: str | None = None) -> str:
    """Log the scorecard to an MLflow run (a new one, or ``run_id``); returns the run id."""
    try:
        import mlflow
    except ImportError as exc:
        raise RuntimeError("MLflow is not installed: pip install 'robustgate[mlflow]' "
                           "(or mlflow-skinny)") from exc
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    if experiment and not run_id:
        mlflow.set_experiment(experiment)
    metrics, mapping = mlflow_metrics(card)
    with mlflow.start_run(run_id=run_id, run_name=run_name) as run:
        mlflow.log_params(mlflow_params(card))
        mlflow.set_tags({"robustgate.verdict": str(card.get("verdict")),
                         "robustgate.standard": mlflow_params(card)["robustgate.standard"]})
        mlflow.log_metrics(metrics)
        mlflow.log_dict(mapping, MLFLOW_KEY_MAP_ARTIFACT)
        mlflow.log_dict(card, "robustgate/scorecard.json")
        if reports is not None:
            for path in sorted(reports.iterdir()):
                if path.is_file():
                    mlflow.log_artifact(str(path), artifact_path="robustgate")
        return run.info.run_id


# -- Hugging Face model card ----------------------------------------------------------------
def model_index(card: dict[str, Any], *, model_name: str, dataset_name: str,
                dataset_type: str = "", task_type: str = "image-classification",
                source_url: str = "") -> list[dict[str, Any]]:
    """The ``model-index`` entry of a Hugging Face model card: clean accuracy and robust
    accuracy per radius (fractions in [0, 1], as the scorecard states them)."""
    std = card.get("standard", {})
    norm = _norm(card)
    metrics: list[dict[str, Any]] = []
    clean = _number(card.get("metrics", {}).get("clean.accuracy"))
    if clean is not None:
        metrics.append({"type": "accuracy", "name": "Clean accuracy", "value": clean,
                        "verified": False})
    for path, value in sorted(card.get("metrics", {}).items()):
        m = re.fullmatch(r"adversarial\.robust_accuracy@(.+)", path)
        if m and _number(value) is not None:
            metrics.append({"type": "robust_accuracy",
                            "name": f"Robust accuracy ({norm}, eps={m.group(1)})",
                            "value": float(value), "args": {"norm": norm, "eps": m.group(1)},
                            "verified": False})
    result: dict[str, Any] = {
        "task": {"type": task_type},
        "dataset": {"name": dataset_name, "type": dataset_type or dataset_name},
        "metrics": metrics,
        "source": {"name": f"Robustgate ({std.get('name')} v{std.get('version')}: "
                           f"{card.get('verdict')})"},
    }
    if source_url:
        result["source"]["url"] = source_url
    return [{"name": model_name, "results": [result]}]


def update_model_card(text: str, index: list[dict[str, Any]]) -> str:
    """``text`` (a README.md, possibly with YAML front matter) with ``model-index`` set."""
    import yaml

    meta: dict[str, Any] = {}
    body = text
    if text.startswith("---\n"):
        end = text.find("\n---", 4)
        if end != -1:
            meta = yaml.safe_load(text[4:end]) or {}
            body = text[end + 4:].lstrip("\n")
    meta["model-index"] = index
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    return f"---\n{front}---\n\n{body}"


# -- RobustBench -------------------------------------------------------------------------------
def _norm(card: dict[str, Any]) -> str:
    threat = (card.get("robustbench") or {}).get("threat_model")
    if threat:
        return {"linf": "Linf", "l2": "L2", "l1": "L1"}.get(str(threat).lower(), str(threat))
    return "Linf"


def _pct(fraction: Any) -> str | None:
    value = _number(fraction)
    return None if value is None else f"{100.0 * value:.2f}"


def robustbench_record(card: dict[str, Any], *, name: str = "", dataset: str = "",
                       architecture: str = "", link: str = "", authors: str = "",
                       venue: str = "", additional_data: bool = False,
                       provenance: bool = False) -> dict[str, Any]:
    """A RobustBench model-info record (``model_info/<dataset>/<threat>/<name>.json``).

    RobustBench's units, not the scorecard's: ``clean_acc`` and ``autoattack_acc`` are
    percentages written as strings with two decimals ("91.08"); ``number_forward_passes`` is
    forward passes per prediction at inference (1 for a deterministic model; Robustgate
    refuses stochastic models), not the passes the attacks spent; ``eps`` is the standard's
    first radius as declared ("8/255"). ``autoattack_acc`` comes only from the standard
    AutoAttack run (``attacks: [autoattack-standard]``); without it it is null and the
    footnote says why. With ``provenance`` a ``robustgate`` key (not a RobustBench field) adds
    the battery's robust accuracy, the standard and the model hash.
    """
    rb = card.get("robustbench") or {}
    stochastic = bool(card.get("model", {}).get("stochastic", False))
    autoattack = _pct(rb.get("autoattack_acc"))
    footnote = "" if autoattack is not None else (
        "autoattack_acc not measured: the standard did not run standard AutoAttack "
        "(attacks: [autoattack-standard]) or its evidence was not trusted")
    record: dict[str, Any] = {
        "link": link, "name": name, "authors": authors,
        "additional_data": additional_data,
        "number_forward_passes": None if stochastic else 1,
        "dataset": dataset, "venue": venue, "architecture": architecture,
        "eps": rb.get("eps"), "clean_acc": _pct(rb.get("clean_acc")),
        "reported": "", "autoattack_acc": autoattack, "footnote": footnote,
    }
    if provenance:
        record["robustgate"] = {
            "threat_model": _norm(card),
            "robust_acc": _pct(rb.get("robust_acc")),
            "attack_forward_passes_total": rb.get("number_forward_passes"),
            "n_samples": card.get("dataset", {}).get("n_samples"),
            "standard": f"{card.get('standard', {}).get('name')}@"
                        f"{card.get('standard', {}).get('version')}",
            "model_sha256": card.get("model", {}).get("sha256"),
            "verdict": card.get("verdict"),
        }
    return record


def load_scorecard(path: Path) -> dict[str, Any]:
    """A scorecard from ``scorecard.json``, a report folder holding one, or a certificate."""
    if path.is_dir():
        path = path / "scorecard.json"
    doc = json.loads(path.read_text())
    if isinstance(doc, dict) and "signature" in doc and isinstance(doc.get("scorecard"), dict):
        return doc["scorecard"]
    if not isinstance(doc, dict) or "metrics" not in doc:
        raise ValueError(f"{path} is not a Robustgate scorecard")
    return doc
