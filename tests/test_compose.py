"""docker-compose.yml (no Docker engine here) is checked against what the code expects."""

from __future__ import annotations

from pathlib import Path

import yaml

from service.cli import _parser
from service.config import load_settings

ROOT = Path(__file__).resolve().parents[1]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


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
