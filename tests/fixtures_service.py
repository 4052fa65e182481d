"""Fixtures that start the real service: embedded default and production shape.

Servers run as real subprocesses (``python -m service.cli serve``) with a real Celery worker;
production-shape runs use the PostgreSQL and Redis servers on loopback.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
import pytest
import redis

from service.config import Settings, load_settings
from service.demo import free_port, wait_healthy
from service.serve import stop

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379"


@dataclass
class ServerHandle:
    url: str
    settings: Settings
    env: dict[str, str]
    proc: subprocess.Popen
    log_path: Path

    def cli(self, *args: str, check: bool = True, timeout: float = 300) -> \
            subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "service.cli", *args], env=self.env,
                              capture_output=True, text=True, check=check, timeout=timeout)

    def token(self, tenant: str) -> str:
        return self.cli("token", "create", "--tenant", tenant).stdout.strip()

    def parts(self, job_id: str) -> dict[str, str]:
        """The job's parts and their states, from the database: what a worker has really
        taken (the status's stage says "attacks" as soon as the plan is sent, before any
        worker takes a shard)."""
        from sqlalchemy import create_engine, text

        from service.db.engine import normalise_url

        engine = create_engine(normalise_url(self.settings.database_url))
        try:
            with engine.connect() as conn:
                return dict(conn.execute(text("SELECT part, state FROM certification_parts "
                                              "WHERE job_id = :i"), {"i": job_id}).all())
        finally:
            engine.dispose()

    def wait_for_part(self, client, job_id: str, part: str, timeout: float = 180) -> None:
        """Until a worker runs ``part`` of the job (the job must stay queued or running)."""
        deadline = time.monotonic() + timeout
        while self.parts(job_id).get(part) != "running":
            state = client.get(job_id)
            assert state["status"] in ("queued", "running"), state
            assert time.monotonic() < deadline, (state, self.parts(job_id))
            time.sleep(0.05)


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ROBUSTGATE_")}


def start_server(settings: Settings, workers: int = 1, attempts: int = 3,
                 serve_args: tuple[str, ...] = ()) -> ServerHandle:
    """Start ``service.cli serve`` on a free port and wait until it answers.

    ``free_port`` only finds a port that was free a moment ago: on a shared machine another
    process can take it before the server binds. The server then exits ("address already in
    use") and is started again on another port, up to ``attempts`` times.
    """
    env = clean_env() | settings.as_env()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, attempts + 1):
        port = free_port()
        log_path = settings.data_dir / f"server-{port}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--port",
                                     str(port), "--workers", str(workers), *serve_args],
                                    env=env,
                                    stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, proc)
            if proc.poll() is None:  # healthy, and not another process's server on the port
                return ServerHandle(url=url, settings=settings, env=env, proc=proc,
                                    log_path=log_path)
        except RuntimeError:
            pass
        stop([proc])
        text = log_path.read_text(errors="replace")
        if "already in use" not in text.lower() or attempt == attempts:
            raise RuntimeError(f"server failed to start:\n{text[-3000:]}")
    raise AssertionError("unreachable")


def child_processes(pid: int, marker: bytes) -> list[int]:
    """Direct children of ``pid`` whose command line holds ``marker`` (Linux /proc): a
    server's Celery workers (b"celery") or the API processes uvicorn spawned
    (b"spawn_main"), not the helpers beside them (the upload validator's fork server,
    multiprocessing's resource tracker)."""
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass
    return [child for child in found if marker in _cmdline(child)]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def embedded_settings(data_dir: Path, **overrides: str) -> Settings:
    return load_settings(clean_env() | {"ROBUSTGATE_DATA_DIR": str(data_dir), **overrides})


def in_process_api(settings: Settings, tenant: str, **create_app_options):
    """(TestClient authenticated as a new token of ``tenant``, the app's Services): the API
    in this process on a migrated database, for tests that need no server process."""
    from fastapi.testclient import TestClient

    from service.api import create_app
    from service.auth import create_token
    from service.db.migrate import upgrade

    upgrade(settings.database_url)
    app = create_app(settings, **create_app_options)
    services = app.state.services
    with services.db.session() as s:
        token = create_token(s, tenant)
    return TestClient(app, headers={"Authorization": f"Bearer {token}"}), services


@pytest.fixture(scope="session")
def embedded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    handle = start_server(embedded_settings(tmp_path_factory.mktemp("embedded")))
    yield handle
    stop([handle.proc])


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    name = f"rg_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_queue() -> Iterator[tuple[str, str]]:
    """(broker URL, queue name) on the real Redis; the queue is unique to this session."""
    queue = f"rg-test-{uuid.uuid4().hex[:10]}"
    url = f"{REDIS_URL}/5"
    yield url, queue
    client = redis.Redis.from_url(url)
    client.delete(queue)
    client.close()


@pytest.fixture(scope="session")
def production_server(tmp_path_factory: pytest.TempPathFactory, postgres_url: str,
                      redis_queue: tuple[str, str]) -> Iterator[ServerHandle]:
    broker, queue = redis_queue
    settings = embedded_settings(tmp_path_factory.mktemp("production"),
                                 ROBUSTGATE_DATABASE_URL=postgres_url,
                                 ROBUSTGATE_BROKER_URL=broker, ROBUSTGATE_QUEUE=queue)
    handle = start_server(settings)
    yield handle
    stop([handle.proc])


@dataclass(frozen=True)
class DigitsArtifacts:
    robust_model: Path      # adversarially trained: passes demo-digits
    brittle_model: Path     # normally trained: fails demo-digits
    eval_set: Path
    x: np.ndarray
    y: np.ndarray


@pytest.fixture(scope="session")
def digits(tmp_path_factory: pytest.TempPathFactory) -> DigitsArtifacts:
    """Two digits CNNs trained here, exported with the TorchScript and dynamo exporters.

    Trained once per test run: under pytest-xdist the workers share the folder above their
    own temporary roots, and a file lock lets the first one train while the others wait (the
    models are deterministic per seed, so any worker would train the same ones)."""
    from filelock import FileLock

    from examples.digits import DigitsCNN, export_onnx, load_digits_split, train

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # this run's root
    folder = shared / "digits-models"
    x_tr, y_tr, x_ev, y_ev = load_digits_split()
    with FileLock(str(shared / "digits-models.lock")):
        if not (folder / "done").is_file():
            folder.mkdir(exist_ok=True)
            robust = train(DigitsCNN(), x_tr, y_tr, epochs=20, adversarial_eps=0.1, seed=1)
            brittle = train(DigitsCNN(), x_tr, y_tr, epochs=10, seed=2)
            export_onnx(robust, folder / "robust.onnx")
            export_onnx(brittle, folder / "brittle.onnx", dynamo=True)
            np.savez(folder / "eval.npz", x=x_ev, y=y_ev)
            (folder / "done").touch()
    return DigitsArtifacts(folder / "robust.onnx", folder / "brittle.onnx",
                           folder / "eval.npz", x_ev, y_ev)
