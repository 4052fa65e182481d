"""Start the API and worker processes (``robustgate serve`` / ``robustgate worker``)."""

from __future__ import annotations

import copy
import logging
import os
import signal
import subprocess
import sys

from service.config import Settings
from service.db.migrate import upgrade

log = logging.getLogger(__name__)


def worker_command(settings: Settings, concurrency: int = 1, name: str = "worker",
                   queues: tuple[str, ...] = ("cpu", "gpu")) -> list[str]:
    # One job at a time per process: a certification already saturates its device.
    pool = ["--pool=solo"] if concurrency == 1 else ["--pool=prefork",
                                                     f"--concurrency={concurrency}"]
    return [sys.executable, "-m", "celery", "-A", "service.worker_entry", "worker",
            "--loglevel=INFO", "-Q", ",".join(_queue_names(settings, queues)),
            "-n", f"{name}-{os.getpid()}@%h",
            "--without-gossip", "--without-mingle", *pool]


def _queue_names(settings: Settings, queues: tuple[str, ...]) -> list[str]:
    names = {"cpu": settings.queue, "gpu": settings.gpu_queue}
    unknown = set(queues) - set(names)
    if unknown or not queues:
        raise ValueError(f"unknown worker queue(s) {sorted(unknown)}; use cpu and/or gpu")
    return [names[q] for q in queues]


def start_workers(settings: Settings, count: int) -> list[subprocess.Popen]:
    # Idle OpenMP threads must not spin on the cores the API and other workers need.
    env = {"OMP_WAIT_POLICY": "PASSIVE"} | os.environ | settings.as_env()
    return [subprocess.Popen(worker_command(settings, name=f"worker{i}"), env=env,
                             preexec_fn=_die_with_parent)
            for i in range(count)]


def _die_with_parent() -> None:
    """Linux: a worker is killed when `serve` dies abruptly (SIGKILL, OOM) instead of living
    on unsupervised; its task is delivered again (acks_late) and the watchdog sees the gap."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def stop(processes: list[subprocess.Popen], timeout: float = 15.0) -> None:
    for proc in processes:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in processes:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _log_config() -> dict:
    """uvicorn's logging plus ours at INFO: spawned API processes configure logging from
    this alone (the CLI's basicConfig stays in the parent), and the watchdog's warnings must
    reach the log whichever process leads."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["robustgate"] = {"format": "%(levelname)s %(name)s: %(message)s"}
    config["handlers"]["robustgate"] = {"class": "logging.StreamHandler",
                                        "formatter": "robustgate",
                                        "stream": "ext://sys.stderr"}
    config["root"] = {"level": "INFO", "handlers": ["robustgate"]}
    return config


def _admin_token(settings: Settings) -> None:
    """First start: an admin token for /v1/tokens, in a file only its owner can read."""
    from service.auth import ensure_admin_token
    from service.db import Database

    db = Database(settings.database_url)
    try:
        with db.session() as s:
            path = ensure_admin_token(s, settings.data_dir)
    finally:
        db.dispose()
    if path is not None:
        log.info("admin token written to %s (use it with POST /v1/tokens)", path)


def serve(settings: Settings, host: str, port: int, workers: int, api_processes: int = 1,
          access_log: bool = False) -> None:
    """The API on ``host:port`` in ``api_processes`` processes (uvicorn's supervisor restarts
    one that dies; the watchdog runs in whichever holds the leader lock), and ``workers``
    worker processes. Access logs are off unless asked for: one log line cost 6% of a poll,
    and a proxy in front usually logs requests already."""
    import uvicorn

    from service.api import create_app

    upgrade(settings.database_url)
    _admin_token(settings)
    procs = start_workers(settings, workers)
    options = {"host": host, "port": port, "log_level": "info", "access_log": access_log,
               "log_config": _log_config()}
    try:
        if api_processes == 1:
            uvicorn.run(create_app(settings), **options)
        else:
            # The processes are spawned and build their own app from the environment.
            os.environ.update(settings.as_env())
            uvicorn.run("service.api.app:create_app", factory=True, workers=api_processes,
                        **options)
    finally:
        stop(procs)
