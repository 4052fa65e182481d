"""Settings from the environment. Defaults are the embedded mode: no server to install."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from workers.app import gpu_queue_for


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    broker_url: str
    storage_dir: Path
    queue: str
    max_upload_bytes: int
    heartbeat_seconds: float = 10.0   # how often a running job's worker beats
    stale_seconds: float = 120.0      # no beat for this long: the worker is presumed dead
    max_attempts: int = 3             # deliveries of one job before it errors
    gpu_queue: str = ""               # heavy shards; default "<queue>-gpu"
    shard_timeout_seconds: float = 3 * 3600.0  # one shard longer than this errors the job
    job_timeout_seconds: float = 24 * 3600.0   # a job running longer than this is errored

    @property
    def embedded_broker(self) -> bool:
        return self.broker_url.startswith("filesystem://")

    @property
    def broker_dir(self) -> Path:
        return self.data_dir / "broker"

    def as_env(self) -> dict[str, str]:
        """The variables a child process (worker, server) needs to see the same settings."""
        return {
            "ROBUSTGATE_DATA_DIR": str(self.data_dir),
            "ROBUSTGATE_DATABASE_URL": self.database_url,
            "ROBUSTGATE_BROKER_URL": self.broker_url,
            "ROBUSTGATE_STORAGE_DIR": str(self.storage_dir),
            "ROBUSTGATE_QUEUE": self.queue,
            "ROBUSTGATE_MAX_UPLOAD_BYTES": str(self.max_upload_bytes),
            "ROBUSTGATE_HEARTBEAT_SECONDS": str(self.heartbeat_seconds),
            "ROBUSTGATE_STALE_SECONDS": str(self.stale_seconds),
            "ROBUSTGATE_MAX_ATTEMPTS": str(self.max_attempts),
            "ROBUSTGATE_GPU_QUEUE": self.gpu_queue,
            "ROBUSTGATE_SHARD_TIMEOUT_SECONDS": str(self.shard_timeout_seconds),
            "ROBUSTGATE_JOB_TIMEOUT_SECONDS": str(self.job_timeout_seconds),
        }


def load_settings(env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    data_dir = Path(env.get("ROBUSTGATE_DATA_DIR", "robustgate-data")).resolve()
    database_url = env.get("ROBUSTGATE_DATABASE_URL") or f"sqlite:///{data_dir / 'robustgate.db'}"
    queue = env.get("ROBUSTGATE_QUEUE") or "robustgate"
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        broker_url=env.get("ROBUSTGATE_BROKER_URL") or "filesystem://",
        storage_dir=Path(env.get("ROBUSTGATE_STORAGE_DIR") or data_dir / "storage").resolve(),
        queue=queue,
        max_upload_bytes=int(env.get("ROBUSTGATE_MAX_UPLOAD_BYTES") or 256 * 1024 * 1024),
        heartbeat_seconds=float(env.get("ROBUSTGATE_HEARTBEAT_SECONDS") or 10.0),
        stale_seconds=float(env.get("ROBUSTGATE_STALE_SECONDS") or 120.0),
        max_attempts=int(env.get("ROBUSTGATE_MAX_ATTEMPTS") or 3),
        gpu_queue=env.get("ROBUSTGATE_GPU_QUEUE") or gpu_queue_for(queue),
        shard_timeout_seconds=float(env.get("ROBUSTGATE_SHARD_TIMEOUT_SECONDS") or 3 * 3600.0),
        job_timeout_seconds=float(env.get("ROBUSTGATE_JOB_TIMEOUT_SECONDS") or 24 * 3600.0),
    )
