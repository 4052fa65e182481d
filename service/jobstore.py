"""The database-backed JobStore the workers use (see workers.store).

Every public method is one transaction, retried through a database outage (workers.retry:
SQLAlchemy's ``pool_pre_ping`` replaces a connection that died while idle in the pool; the
retry covers one that dies mid-transaction, and a server restart). A retry may follow a
commit whose answer was lost, so each method is idempotent: claiming a job or taking a part
a second time from the same worker finds it already ours.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.db import (
    Certification,
    CertificationPart,
    Database,
    Dataset,
    StandardRecord,
    StoredModel,
    Tenant,
)
from service.db.models import utcnow
from service.signing import Signer, load_or_create_signer
from service.storage import BlobStore
from verifiers.plan import attack_chunks
from workers.retry import RetryPolicy, retried
from workers.store import JobSpec

log = logging.getLogger(__name__)

FINISHED = ("succeeded", "errored", "cancelled")


def aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; we store UTC
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def is_stale(beat: datetime | None, stale_seconds: float) -> bool:
    if beat is None:
        return True
    return utcnow() - aware(beat) > timedelta(seconds=stale_seconds)


def tenant_work(s: Session, tenant_id: int | None, job_id: str | None = None) -> int:
    """Attack shards not yet done in the tenant's queued or running jobs, other than
    ``job_id``. A job not planned yet counts the shards its evaluation set will make."""
    jobs = s.execute(
        select(Certification.id, Certification.shards_total, Dataset.n_samples)
        .join(Dataset, Dataset.id == Certification.dataset_id)
        .where(Certification.tenant_id == tenant_id, Certification.id != (job_id or ""),
               Certification.status.in_(("queued", "running")))).all()
    if not jobs:
        return 0
    done = dict(s.execute(
        select(CertificationPart.job_id, func.count())
        .where(CertificationPart.job_id.in_([j.id for j in jobs]),
               CertificationPart.state == "done",
               CertificationPart.part.startswith("attack-", autoescape=True))
        .group_by(CertificationPart.job_id)).all())
    return sum(max(0, (j.shards_total or len(attack_chunks(j.n_samples))) - done.get(j.id, 0))
               for j in jobs)


def _done(job_id: str, prefix: str) -> tuple:
    return (CertificationPart.job_id == job_id, CertificationPart.state == "done",
            CertificationPart.part.startswith(prefix, autoescape=True))


class SqlJobStore:
    def __init__(self, db: Database, blobs: BlobStore, signer: Signer | None = None, *,
                 heartbeat_seconds: float = 10.0, stale_seconds: float = 120.0,
                 shard_timeout_seconds: float = 3 * 3600.0,
                 job_timeout_seconds: float = 24 * 3600.0,
                 retry: RetryPolicy | None = None) -> None:
        self.db = db
        self.retry = retry or RetryPolicy()
        self.blobs = blobs
        self._signer = signer
        self.heartbeat_seconds = heartbeat_seconds
        self.stale_seconds = stale_seconds
        self.shard_timeout_seconds = shard_timeout_seconds
        self.job_timeout_seconds = job_timeout_seconds

    @property
    def signer(self) -> Signer:
        # Loaded on first use from the data folder this process was started with.
        if self._signer is None:
            from service.config import load_settings

            self._signer = load_or_create_signer(load_settings().data_dir)
        return self._signer

    def claim(self, job_id: str, worker: str = "") -> JobSpec | None:
        return self.spec(job_id) if self._claim(job_id, worker) else None

    @retried
    def _claim(self, job_id: str, worker: str) -> bool:
        with self.db.session() as s:
            job = s.scalar(select(Certification).where(Certification.id == job_id)
                           .with_for_update())
            if job is None or job.status in FINISHED:
                return False
            if job.cancel_requested:
                job.status, job.finished_at = "cancelled", utcnow()
                return False
            if job.status == "running" and not is_stale(job.heartbeat_at, self.stale_seconds):
                # Ours already (a retry after a lost commit answer), or a duplicate delivery
                # while a live worker has it.
                return bool(worker) and job.worker == worker[:128]
            job.attempts += 1
            job.heartbeat_at, job.worker = utcnow(), worker[:128]
            job.status, job.stage = "running", "starting"
            job.started_at = job.started_at or utcnow()
            return True

    @retried
    def spec(self, job_id: str) -> JobSpec | None:
        with self.db.session() as s:
            job = s.get(Certification, job_id)
            if job is None or job.status != "running" or job.cancel_requested:
                return None
            model = s.get(StoredModel, job.model_id)
            dataset = s.get(Dataset, job.dataset_id)
            standard = s.get(StandardRecord, job.standard_id)
            ood = s.get(Dataset, job.ood_dataset_id) if job.ood_dataset_id else None
            started = aware(job.started_at).timestamp() if job.started_at else 0.0
            spec_meta = (model.storage_key, dataset.storage_key, standard.document, job.seed,
                         job.input_low, job.input_high, ood.storage_key if ood else None,
                         job.input_mapping)
        model_key, dataset_key, document, seed, low, high, ood_key, mapping = spec_meta
        return JobSpec(job_id=job_id, model_bytes=self.blobs.read(model_key),
                       dataset_bytes=b"", dataset_path=self.blobs.path_of(dataset_key),
                       standard_document=document,
                       seed=seed, input_low=low, input_high=high,
                       ood_bytes=self.blobs.read(ood_key) if ood_key else None,
                       started_at=started, input_mapping=mapping)

    @retried
    def heartbeat(self, job_id: str) -> None:
        with self.db.session() as s:
            job = s.get(Certification, job_id)
            if job is not None and job.status == "running":
                job.heartbeat_at = utcnow()

    @retried
    def report_progress(self, job_id: str, fraction: float, stage: str) -> None:
        with self.db.session() as s:
            job = s.get(Certification, job_id)
            if job is not None and job.status == "running":
                job.progress = round(min(max(fraction, 0.0), 1.0), 4)
                job.heartbeat_at = utcnow()
                job.stage = stage[:64]

    @retried
    def advance_progress(self, job_id: str, fraction: float, stage: str) -> None:
        fraction = round(min(max(fraction, 0.0), 1.0), 4)
        with self.db.session() as s:
            s.execute(update(Certification)
                      .where(Certification.id == job_id, Certification.status == "running",
                             Certification.progress < fraction)
                      .values(progress=fraction, stage=stage[:64], heartbeat_at=utcnow()))

    @retried
    def plan(self, job_id: str, shards: int) -> None:
        with self.db.session() as s:
            job = s.get(Certification, job_id)
            if job is not None:
                job.shards_total = shards

    @retried
    def start_part(self, job_id: str, part: str, worker: str) -> bool:
        try:
            with self.db.session() as s:
                # Lock the job row: two deliveries of one part serialise here (PostgreSQL).
                s.scalar(select(Certification.id).where(Certification.id == job_id)
                         .with_for_update())
                row = s.get(CertificationPart, (job_id, part))
                if row is None:
                    s.add(CertificationPart(job_id=job_id, part=part, state="running",
                                            worker=worker[:128], heartbeat_at=utcnow()))
                    s.flush()
                elif row.state == "done" or (
                        not (worker and row.worker == worker[:128])  # ours: a retried commit
                        and not is_stale(row.heartbeat_at, self.stale_seconds)):
                    return False
                else:  # ours already, or its worker stopped beating: take it over
                    row.worker, row.heartbeat_at = worker[:128], utcnow()
                job = s.get(Certification, job_id)
                if job is not None:
                    job.worker, job.heartbeat_at = worker[:128], utcnow()
                return True
        except IntegrityError:  # SQLite: a concurrent delivery inserted it first
            return False

    @retried
    def beat_part(self, job_id: str, part: str) -> None:
        with self.db.session() as s:
            row = s.get(CertificationPart, (job_id, part))
            if row is not None and row.state == "running":
                row.heartbeat_at = utcnow()
            job = s.get(Certification, job_id)
            if job is not None and job.status == "running":
                job.heartbeat_at = utcnow()

    @retried
    def finish_part(self, job_id: str, part: str, payload: bytes) -> None:
        with self.db.session() as s:
            row = s.get(CertificationPart, (job_id, part))
            if row is None:
                s.add(CertificationPart(job_id=job_id, part=part, state="done", payload=payload,
                                        worker="", heartbeat_at=utcnow()))
            elif row.state != "done":
                row.state, row.payload, row.heartbeat_at = "done", payload, utcnow()

    @retried
    def part(self, job_id: str, part: str) -> bytes | None:
        with self.db.session() as s:
            row = s.get(CertificationPart, (job_id, part))
            return row.payload if row is not None and row.state == "done" else None

    @retried
    def parts(self, job_id: str, prefix: str) -> dict[str, bytes]:
        with self.db.session() as s:
            rows = s.execute(select(CertificationPart.part, CertificationPart.payload)
                             .where(*_done(job_id, prefix))).all()
            return {part: payload for part, payload in rows if payload is not None}

    @retried
    def done_parts(self, job_id: str, prefix: str) -> set[str]:
        with self.db.session() as s:
            return set(s.scalars(select(CertificationPart.part).where(*_done(job_id, prefix))))

    @retried
    def live_parts(self, job_id: str) -> set[str]:
        with self.db.session() as s:
            rows = s.scalars(select(CertificationPart)
                             .where(CertificationPart.job_id == job_id)).all()
            return {r.part for r in rows
                    if r.state == "done" or not is_stale(r.heartbeat_at, self.stale_seconds)}

    @retried
    def tenant_work(self, job_id: str) -> int:
        with self.db.session() as s:
            tenant = s.scalar(select(Certification.tenant_id)
                              .where(Certification.id == job_id))
            return tenant_work(s, tenant, job_id)

    @retried
    def is_cancelled(self, job_id: str) -> bool:
        with self.db.session() as s:
            job = s.get(Certification, job_id)
            return job is None or job.cancel_requested

    def succeed(self, job_id: str, scorecard: dict[str, Any]) -> None:
        # Signed with the scorecard: whose standard judged it ("builtin", or the tenant that
        # uploaded it), so a tenant's look-alike standard cannot pass for a built-in.
        owner = self._standard_owner(job_id)
        if owner is not None and isinstance(scorecard.get("standard"), dict):
            scorecard = {**scorecard, "standard": {**scorecard["standard"], "owner": owner}}
        try:
            signed = self.signer.sign(scorecard, certification_id=job_id)
        except Exception as exc:  # an unsigned verdict is not a result: end the job with why
            log.exception("could not sign the scorecard of %s", job_id)
            self.fail(job_id, f"could not sign the scorecard: {type(exc).__name__}: {exc}")
            return
        self._finish(job_id, "succeeded", scorecard=scorecard, verdict=scorecard["verdict"],
                     certificate=signed)

    @retried
    def _standard_owner(self, job_id: str) -> str | None:
        with self.db.session() as s:
            job = s.get(Certification, job_id)
            record = s.get(StandardRecord, job.standard_id) if job is not None else None
            if record is None:
                return None
            if record.tenant_id is None:
                return "builtin"
            tenant = s.get(Tenant, record.tenant_id)
            return f"tenant:{tenant.name if tenant is not None else record.tenant_id}"

    def fail(self, job_id: str, reason: str) -> None:
        self._finish(job_id, "errored", error=reason[:4000])

    def mark_cancelled(self, job_id: str) -> None:
        self._finish(job_id, "cancelled")

    @retried
    def _finish(self, job_id: str, status: str, **fields: Any) -> None:
        with self.db.session() as s:
            job = s.get(Certification, job_id)
            if job is None or job.status in FINISHED:
                return
            if job.cancel_requested and status == "succeeded":
                status, fields = "cancelled", {}
            job.status, job.finished_at = status, utcnow()
            if status == "succeeded":
                job.progress, job.stage = 1.0, "done"
            for key, value in fields.items():
                setattr(job, key, value)
