"""docker-compose.yml (no Docker engine here) is checked against what the code expects."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from service.alive import start_touching
from service.cli import _parser
from service.config import load_settings
from tests.fixtures_service import clean_env

ROOT = Path(__file__).resolve().parents[1]


PASSWORD = "from-the-environment"


def _compose(env: dict[str, str] | None = None) -> dict:
    """The file as `docker compose` reads it: ${VAR:?message} from ``env``."""
    env = {"POSTGRES_PASSWORD": PASSWORD} if env is None else env
    text = (ROOT / "docker-compose.yml").read_text()

    def value(match: re.Match) -> str:
        name = match.group(1)
        if name not in env:
            raise KeyError(f"{name} is required: {match.group(2)}")
        return env[name]

    return yaml.safe_load(re.sub(r"\$\{(\w+):\?([^}]*)\}", value, text))


def test_no_database_password_is_written_in_the_file():
    assert "${POSTGRES_PASSWORD:?" in (ROOT / "docker-compose.yml").read_text()
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        _compose({})
    services = _compose()["services"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == PASSWORD
    assert f":{PASSWORD}@" in services["api"]["environment"]["ROBUSTGATE_DATABASE_URL"]


def test_redis_persists_and_the_image_runs_as_a_user():
    redis = _compose()["services"]["redis"]
    assert redis["command"][-2:] == ["--appendonly", "yes"]
    assert any(v.endswith(":/data") for v in redis["volumes"])
    lines = [line.split() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    users = [words[1] for words in lines if words and words[0] == "USER"]
    assert users and users[-1] not in ("root", "0")


def test_the_worker_health_check_does_not_import_the_app(tmp_path):
    check = _compose()["services"]["worker"]["healthcheck"]["test"]
    assert check == ["CMD", "python", "-m", "service.alive"]
    alive = tmp_path / "alive"
    env = clean_env() | {"ROBUSTGATE_WORKER_ALIVE_FILE": str(alive)}
    code = ("import sys, runpy; runpy.run_module('service.alive', run_name='__main__')")
    probe = [sys.executable, "-X", "importtime", "-c", code]
    first = subprocess.run(probe, env=env, capture_output=True, text=True, cwd=ROOT)
    assert first.returncode == 1  # no file yet: not alive
    start_touching(alive, every=60)
    second = subprocess.run(probe, env=env, capture_output=True, text=True, cwd=ROOT)
    assert second.returncode == 0, second.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in second.stderr.splitlines()}
    assert not imported & {"celery", "torch", "onnxruntime", "fastapi", "sqlalchemy"}


def test_services_and_health_checks():
    services = _compose()["services"]
    assert set(services) == {"api", "worker", "redis", "postgres"}
    for name, svc in services.items():
        assert "healthcheck" in svc, f"{name} has no health check"
    assert services["api"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["api"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["worker"]["depends_on"]["api"]["condition"] == "service_healthy"
    gpu = services["worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]


def test_environment_is_what_the_settings_read():
    compose = _compose()
    services = compose["services"]
    env = services["api"]["environment"]
    assert services["worker"]["environment"] == env, "api and worker must share settings"
    settings = load_settings({k: str(v) for k, v in env.items()})
    # Every variable compose sets is one the settings read (and read back unchanged).
    read = settings.as_env()
    assert {k: read[k] for k in env if k in read} == {k: str(v) for k, v in env.items()}
    pg = services["postgres"]["environment"]
    expected = (f"postgresql://{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}"
                f"@postgres:5432/{pg['POSTGRES_DB']}")
    assert settings.database_url == expected
    assert settings.broker_url.startswith("redis://redis:6379")
    assert not settings.embedded_broker


def test_commands_are_real_cli_invocations():
    services = _compose()["services"]
    api_cmd, worker_cmd = services["api"]["command"], services["worker"]["command"]
    assert api_cmd[0] == worker_cmd[0] == "robustgate"
    api_args = _parser().parse_args(api_cmd[1:])
    assert api_args.command == "serve" and api_args.workers == 0 and api_args.port == 8000
    assert f"{api_args.port}:{api_args.port}" in services["api"]["ports"]
    assert _parser().parse_args(worker_cmd[1:]).command == "worker"
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("service", "workers", "verifiers", "migrations", "standards"):
        assert f"COPY {package} {package}" in dockerfile
