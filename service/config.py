"""Settings from the environment. Defaults are the embedded mode: no server to install."""

from __future__ import annotations

import difflib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from verifiers.data import DEFAULT_MAX_DECOMPRESSED
from verifiers.limits import DEFAULT_CEILINGS, Ceilings
from workers.app import gpu_queue_for
from workers.retry import DEFAULT_TOTAL_SECONDS, RetryPolicy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Quotas:
    """Per-tenant limits checked at submit (service.quotas); each has its variable."""

    queued_shards: int = 2000      # ROBUSTGATE_MAX_QUEUED_SHARDS: a tenant's unfinished shards
    samples_per_job: int = 100_000  # ROBUSTGATE_MAX_SAMPLES_PER_JOB
    jobs_per_hour: int = 600       # ROBUSTGATE_MAX_JOBS_PER_HOUR: new jobs in any 60 minutes


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    broker_url: str
    storage_dir: Path
    queue: str
    max_upload_bytes: int
    # The most one uploaded .npz may decompress to (judged from its zip headers).
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED
    heartbeat_seconds: float = 10.0   # how often a running job's worker beats
    stale_seconds: float = 120.0      # no beat for this long: the worker is presumed dead
    max_attempts: int = 3             # deliveries of one job before it errors
    gpu_queue: str = ""               # heavy shards; default "<queue>-gpu"
    shard_timeout_seconds: float = 3 * 3600.0  # one shard longer than this errors the job
    job_timeout_seconds: float = 24 * 3600.0   # a job running longer than this is errored
    device: str = "auto"              # a worker's one device: auto, cpu, cuda, cuda:N
    # What one standard may ask for (ROBUSTGATE_MAX_ITERATIONS, ..._RESTARTS, ..._QUERIES,
    # ..._TARGETS, ..._EOT, ..._EXPLAIN_SAMPLES, ..._SMOOTHING_N,
    # ..._SANITY_FACTOR, ..._TIME_LIMIT_S): checked at upload and submit.
    ceilings: Ceilings = DEFAULT_CEILINGS
    # How long a broker or database call on a job's path is retried through an outage.
    retry_seconds: float = DEFAULT_TOTAL_SECONDS
    quotas: Quotas = Quotas()
    # Upload validation runs in a child process (service.validation): its address space
    # beyond four times the uploads' size, and its wall clock.
    validation_memory_mb: int = 2048
    validation_seconds: float = 120.0

    @property
    def retry(self) -> RetryPolicy:
        return RetryPolicy(total_seconds=self.retry_seconds)

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
            "ROBUSTGATE_MAX_DECOMPRESSED_BYTES": str(self.max_decompressed_bytes),
            "ROBUSTGATE_HEARTBEAT_SECONDS": str(self.heartbeat_seconds),
            "ROBUSTGATE_STALE_SECONDS": str(self.stale_seconds),
            "ROBUSTGATE_MAX_ATTEMPTS": str(self.max_attempts),
            "ROBUSTGATE_GPU_QUEUE": self.gpu_queue,
            "ROBUSTGATE_SHARD_TIMEOUT_SECONDS": str(self.shard_timeout_seconds),
            "ROBUSTGATE_JOB_TIMEOUT_SECONDS": str(self.job_timeout_seconds),
            "ROBUSTGATE_RETRY_SECONDS": str(self.retry_seconds),
            "ROBUSTGATE_MAX_QUEUED_SHARDS": str(self.quotas.queued_shards),
            "ROBUSTGATE_MAX_SAMPLES_PER_JOB": str(self.quotas.samples_per_job),
            "ROBUSTGATE_MAX_JOBS_PER_HOUR": str(self.quotas.jobs_per_hour),
            "ROBUSTGATE_DEVICE": self.device,
            "ROBUSTGATE_VALIDATION_MEMORY_MB": str(self.validation_memory_mb),
            "ROBUSTGATE_VALIDATION_SECONDS": str(self.validation_seconds),
        } | {f"ROBUSTGATE_MAX_{name.upper()}": str(getattr(self.ceilings, name))
             for name in Ceilings.names()}


class ConfigError(ValueError):
    """The environment's settings are invalid: one line per problem."""


_SCHEMES_DB = ("sqlite:///", "postgresql://", "postgres://", "postgresql+psycopg://")


class _EnvSettings(BaseModel):
    """The ROBUSTGATE_* variables, typed and validated (pydantic); empty means default."""

    model_config = ConfigDict(extra="ignore")

    data_dir: str = "robustgate-data"
    database_url: str | None = None
    broker_url: str = Field("filesystem://", pattern=r"^[a-z][a-z0-9+]*://")
    storage_dir: str | None = None
    queue: str = Field("robustgate", min_length=1)
    # Per uploaded file: a ResNet-50 is ~100 MB of float32 weights, a ViT-B/16 ~350 MB.
    max_upload_bytes: int = Field(1024 * 1024 * 1024, gt=0)
    max_decompressed_bytes: int = Field(DEFAULT_MAX_DECOMPRESSED, gt=0)
    heartbeat_seconds: float = Field(10.0, gt=0)
    stale_seconds: float = Field(120.0, gt=0)
    max_attempts: int = Field(3, ge=1)
    gpu_queue: str | None = None
    shard_timeout_seconds: float = Field(3 * 3600.0, gt=0)
    job_timeout_seconds: float = Field(24 * 3600.0, gt=0)
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    max_iterations: int = Field(DEFAULT_CEILINGS.iterations, ge=1)
    max_restarts: int = Field(DEFAULT_CEILINGS.restarts, ge=1)
    max_queries: int = Field(DEFAULT_CEILINGS.queries, ge=1)
    max_targets: int = Field(DEFAULT_CEILINGS.targets, ge=1)
    max_eot: int = Field(DEFAULT_CEILINGS.eot, ge=1)
    max_explain_samples: int = Field(DEFAULT_CEILINGS.explain_samples, ge=1)
    max_smoothing_n: int = Field(DEFAULT_CEILINGS.smoothing_n, ge=1)
    max_sanity_factor: int = Field(DEFAULT_CEILINGS.sanity_factor, ge=1)
    retry_seconds: float = Field(DEFAULT_TOTAL_SECONDS, ge=0)
    max_queued_shards: int = Field(Quotas.queued_shards, ge=1)
    max_samples_per_job: int = Field(Quotas.samples_per_job, ge=1)
    max_jobs_per_hour: int = Field(Quotas.jobs_per_hour, ge=1)
    max_time_limit_s: int = Field(DEFAULT_CEILINGS.time_limit_s, ge=1)
    max_bab_seconds: int = Field(DEFAULT_CEILINGS.bab_seconds, ge=1)
    max_ood_samples: int = Field(DEFAULT_CEILINGS.ood_samples, ge=1)
    validation_memory_mb: int = Field(2048, ge=64)
    validation_seconds: float = Field(120.0, gt=0)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(_SCHEMES_DB):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value


PREFIX = "ROBUSTGATE_"
# Read by the CLI (clients, and `serve`'s process count), not the settings: not typos.
_CLIENT_VARIABLES = {"SERVER", "TOKEN", "PIP_SPEC", "API_PROCESSES"}


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Settings from ``env`` (default: the process environment); :class:`ConfigError` lists
    every invalid variable, one line each."""
    env = dict(os.environ if env is None else env)
    raw = {k[len(PREFIX):].lower(): v for k, v in env.items()
           if k.startswith(PREFIX) and v.strip() != ""}
    _warn_unknown(raw)
    try:
        parsed = _EnvSettings.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err.get("loc") else "?"
            value = raw.get(field, "")
            shown = value if "url" not in field else _hide_password(value)
            lines.append(f"{PREFIX}{field.upper()}={shown!r}: {err['msg']}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None
    data_dir = Path(parsed.data_dir).resolve()
    return Settings(
        data_dir=data_dir,
        database_url=parsed.database_url or f"sqlite:///{data_dir / 'robustgate.db'}",
        broker_url=parsed.broker_url,
        storage_dir=Path(parsed.storage_dir or data_dir / "storage").resolve(),
        queue=parsed.queue,
        max_upload_bytes=parsed.max_upload_bytes,
        max_decompressed_bytes=parsed.max_decompressed_bytes,
        heartbeat_seconds=parsed.heartbeat_seconds,
        stale_seconds=parsed.stale_seconds,
        max_attempts=parsed.max_attempts,
        gpu_queue=parsed.gpu_queue or gpu_queue_for(parsed.queue),
        shard_timeout_seconds=parsed.shard_timeout_seconds,
        job_timeout_seconds=parsed.job_timeout_seconds,
        device=parsed.device,
        ceilings=Ceilings(**{name: getattr(parsed, f"max_{name}") for name in Ceilings.names()}),
        retry_seconds=parsed.retry_seconds,
        quotas=Quotas(queued_shards=parsed.max_queued_shards,
                      samples_per_job=parsed.max_samples_per_job,
                      jobs_per_hour=parsed.max_jobs_per_hour),
        validation_memory_mb=parsed.validation_memory_mb,
        validation_seconds=parsed.validation_seconds,
    )


def _warn_unknown(raw: dict[str, str]) -> None:
    known = set(_EnvSettings.model_fields)
    for name in sorted(set(raw) - known - {v.lower() for v in _CLIENT_VARIABLES}):
        close = difflib.get_close_matches(name, known, n=1)
        if close:
            log.warning("ignoring %s%s: did you mean %s%s?", PREFIX, name.upper(), PREFIX,
                        close[0].upper())


def _hide_password(url: str) -> str:
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)
