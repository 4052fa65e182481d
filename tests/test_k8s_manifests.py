"""deploy/k8s is validated against the Kubernetes schemas and against the code it runs."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from service.cli import _parser
from service.config import load_settings

K8S = Path(__file__).resolve().parents[1] / "deploy" / "k8s"
CORE_KINDS = {"Deployment", "Service", "ConfigMap", "PersistentVolumeClaim"}


def _documents() -> list[dict]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def _by(kind: str, name: str) -> dict:
    return next(d for d in _documents() if d["kind"] == kind and d["metadata"]["name"] == name)


@pytest.mark.parametrize("doc", [d for d in _documents() if d["kind"] in CORE_KINDS],
                         ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_core_resources_match_the_kubernetes_schema(doc):
    kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_workers_get_a_gpu_and_commands_are_real():
    api = _by("Deployment", "robustgate-api")["spec"]["template"]["spec"]["containers"][0]
    worker = _by("Deployment", "robustgate-worker")["spec"]["template"]["spec"]["containers"][0]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert _parser().parse_args(api["command"][1:]).command == "serve"
    assert _parser().parse_args(worker["command"][1:]).command == "worker"
    config = _by("ConfigMap", "robustgate-config")["data"]
    settings = load_settings(config | {"ROBUSTGATE_DATABASE_URL": "postgresql://x@db/x"})
    assert {k: v for k, v in settings.as_env().items() if k in config} == config


def test_keda_scales_workers_on_the_celery_queue():
    scaled = _by("ScaledObject", "robustgate-worker")
    config = _by("ConfigMap", "robustgate-config")["data"]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"]["name"] == "robustgate-worker"
    settings = load_settings(config | {"ROBUSTGATE_DATABASE_URL": "postgresql://x@db/x"})
    triggers = scaled["spec"]["triggers"]
    assert {t["type"] for t in triggers} == {"redis"}
    # The lists KEDA watches are the gpu queue the shards wait in, at its priority levels
    # (kombu's Redis transport: "<queue>" for priority 0, "<queue>:<n>" for the others).
    lists = [t["metadata"]["listName"] for t in triggers]
    assert lists[0] == settings.gpu_queue
    assert all(name.split(":")[0] == settings.gpu_queue for name in lists)
    for trigger in triggers:
        assert config["ROBUSTGATE_BROKER_URL"].startswith(
            f"redis://{trigger['metadata']['address']}")


def test_liveness_does_not_need_the_database_and_pods_run_as_a_user():
    spec = _by("Deployment", "robustgate-api")["spec"]["template"]["spec"]
    api = spec["containers"][0]
    assert api["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/livez"
    for name in ("robustgate-api", "robustgate-worker"):
        context = _by("Deployment", name)["spec"]["template"]["spec"]["securityContext"]
        assert context["runAsNonRoot"] is True and context["runAsUser"] != 0
    worker = _by("Deployment", "robustgate-worker")["spec"]["template"]["spec"]
    assert worker["containers"][0]["livenessProbe"]["exec"]["command"] == [
        "python", "-m", "service.alive"]
    redis = _by("Deployment", "robustgate-redis")["spec"]["template"]["spec"]
    assert redis["containers"][0]["args"] == ["--appendonly", "yes"]
    assert redis["volumes"][0]["persistentVolumeClaim"]["claimName"] == "robustgate-redis-data"
    assert "password" not in (K8S / "config.yaml").read_text().lower().replace(
        "carries a password", "")
