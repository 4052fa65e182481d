"""Submitting, reading, cancelling and deleting certifications for one tenant.

A submission is validated completely before anything is stored: a refused upload leaves no
blob, no row and no queued task.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any, BinaryIO

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service import job_status, standards_catalog
from service.broker import revoke, send_plan
from service.db import Certification, Dataset, StoredModel
from service.db.models import utcnow
from service.errors import ApiError
from service.jobstore import tenant_work
from service.quotas import check_samples, check_tenant
from service.services import Services
from service.storage import Staged, TooLarge
from service.validation import Accepted, Caps, Refused, Uploads, validate_isolated
from verifiers import DataError
from verifiers.plan import attack_chunks
from verifiers.scorecard import tool_version
from verifiers.standards import Standard
from verifiers.units import InputMapping, parse_mapping

log = logging.getLogger(__name__)

FINISHED = ("succeeded", "errored", "cancelled")


@dataclass(frozen=True)
class Upload:
    stream: BinaryIO
    filename: str


@dataclass(frozen=True)
class Submitted:
    id: str
    reused: bool  # an identical earlier submission answers this one: nothing recomputed


def submit(svc: Services, tenant_id: int, model: Upload, data: Upload, standard_name: str,
           seed: int = 0, input_low: float | None = None, input_high: float | None = None,
           ood: Upload | None = None, input_mean: str | None = None,
           input_std: str | None = None) -> Submitted:
    standard = standards_catalog.resolve(standard_name, svc.db, tenant_id)
    # Also for standards stored before the ceilings (or under higher ones) and built-ins.
    standards_catalog.within_ceilings(standard.standard, svc.settings.ceilings)
    try:
        mapping = parse_mapping(input_mean, input_std)
    except DataError as exc:
        raise ApiError(422, "invalid_input_mapping", str(exc)) from exc
    mapping_row = None if mapping is None else {"mean": list(mapping.mean),
                                                "std": list(mapping.std)}
    staged: list[Staged] = []
    try:
        staged.append(_stage(svc, model, "model"))
        staged.append(_stage(svc, data, "data"))
        if ood is not None:
            staged.append(_stage(svc, ood, "ood"))
        accepted = _validate(svc, staged, standard.standard, input_low, input_high, mapping)
        info, n_samples, n_ood = accepted.info, accepted.n_samples, accepted.n_ood
        check_samples(svc.settings.quotas, n_samples)
        keys = [svc.blobs.commit(item) for item in staged]
    finally:
        for item in staged:
            item.discard()
    job_id = str(uuid.uuid4())

    def insert() -> tuple[str | None, int]:
        """(an identical earlier job, or None; the tenant's work ahead of the new job): one
        transaction, retried through a database outage (Settings.retry)."""
        with svc.db.session() as s:
            # First: on SQLite this write opens the transaction, so the savepoints of
            # _get_or_create nest in it (opened by a SAVEPOINT, pysqlite's RELEASE would commit
            # the new rows at once, and a refusal below would leave them behind).
            _lock_tenant_submissions(s, tenant_id)
            model_row = _get_or_create(s, StoredModel, tenant_id, staged[0], storage_key=keys[0],
                                       filename=model.filename[:256], info=info)
            data_row = _get_or_create(s, Dataset, tenant_id, staged[1], storage_key=keys[1],
                                      filename=data.filename[:256], n_samples=n_samples)
            ood_row = None if ood is None else _get_or_create(
                s, Dataset, tenant_id, staged[2], storage_key=keys[2],
                filename=ood.filename[:256], n_samples=n_ood)
            standard_row = standards_catalog.record_for(s, standard)
            same = _identical(s, tenant_id, model_row.id, data_row.id, standard_row.id,
                              ood_row.id if ood_row else None, seed, input_low, input_high,
                              mapping_row)
            if same == job_id:  # this insert: an attempt committed it, its answer was lost
                return None, tenant_work(s, tenant_id, job_id)
            if same is not None:
                return same, 0
            # Quotas judged under the tenant's lock: concurrent submissions see each other.
            check_tenant(s, svc.settings.quotas, tenant_id, len(attack_chunks(n_samples)))
            job = Certification(id=job_id, tenant_id=tenant_id, model_id=model_row.id,
                                dataset_id=data_row.id, standard_id=standard_row.id,
                                ood_dataset_id=ood_row.id if ood_row else None,
                                status="queued", stage="queued", progress=0.0, seed=seed,
                                input_low=input_low, input_high=input_high,
                                input_mapping=mapping_row, cancel_requested=False)
            s.add(job)
            # Fairness by work: the plan waits behind the tenant's unfinished shards.
            return None, tenant_work(s, tenant_id, job_id)

    try:
        same, work_ahead = svc.settings.retry.call(insert)
    except Exception:
        _collect_blobs(svc, keys)
        raise
    if same is not None:
        return Submitted(same, reused=True)
    try:
        send_plan(svc.celery, svc.settings, job_id, work_ahead)
    except Exception as exc:  # broker down: undo the submission instead of leaving it stuck
        log.exception("could not enqueue certification %s", job_id)
        svc.settings.retry.call(_delete, svc, job_id)
        raise ApiError(503, "queue_unavailable",
                       f"the job queue is unavailable ({type(exc).__name__}, retried for "
                       f"{svc.settings.retry_seconds:g} s); nothing was stored, retry later"
                       ) from exc
    return Submitted(job_id, reused=False)


# pg_advisory_xact_lock(class, tenant): one submission of a tenant at a time between the
# dedupe check and the insert. An arbitrary constant ("RG" + 1) names the class.
DEDUPE_LOCK_CLASS = 0x52470001


def _lock_tenant_submissions(s: Session, tenant_id: int) -> None:
    """Make check-then-insert atomic per tenant: concurrent identical submissions would each
    miss the other's uncommitted row and make a job each. The lock is released at commit.
    On SQLite a no-op write takes the database write lock now (a deferred transaction would
    take it only at the insert, after both checks)."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(:cls, :tenant)"),
                  {"cls": DEDUPE_LOCK_CLASS, "tenant": tenant_id})
    else:
        s.execute(text("UPDATE tenants SET id = id WHERE id = :tenant"), {"tenant": tenant_id})


def _identical(s: Session, tenant_id: int, model_id: int, dataset_id: int, standard_id: int,
               ood_id: int | None, seed: int, low: float | None,
               high: float | None, mapping: dict[str, Any] | None) -> str | None:
    """An earlier job of this tenant on the same hashes, seed and range, by this tool version,
    queued, running or succeeded: same inputs, same seed, same version -> same metrics."""

    def equal(column, value):
        return column.is_(None) if value is None else column == value

    candidates = s.scalars(
        select(Certification)
        .where(Certification.tenant_id == tenant_id, Certification.model_id == model_id,
               Certification.dataset_id == dataset_id,
               Certification.standard_id == standard_id, Certification.seed == seed,
               equal(Certification.ood_dataset_id, ood_id),
               equal(Certification.input_low, low), equal(Certification.input_high, high),
               Certification.status.in_(("queued", "running", "succeeded")),
               Certification.cancel_requested.is_(False))
        .order_by(Certification.created_at.desc())).all()
    for job in candidates:
        if (job.input_mapping or None) != mapping:
            continue
        if job.status != "succeeded" or (job.scorecard or {}).get("tool", {}).get(
                "version") == tool_version():
            return job.id
    return None


def _stage(svc: Services, upload: Upload, field: str) -> Staged:
    try:
        return svc.blobs.stage(upload.stream, svc.settings.max_upload_bytes)
    except TooLarge as exc:
        raise ApiError(413, f"{field}_too_large",
                       f"{field} file exceeds the upload limit of {exc.limit} bytes") from exc


def _validate(svc: Services, staged: list[Staged], standard: Standard, low: float | None,
              high: float | None, mapping: InputMapping | None) -> Accepted:
    """Every upload checked before any is kept, in a capped child process."""
    uploads = Uploads(model=staged[0].path, data=staged[1].path,
                      ood=staged[2].path if len(staged) > 2 else None, standard=standard,
                      low=low, high=high, mapping=mapping,
                      max_decompressed=svc.settings.max_decompressed_bytes)
    caps = Caps.for_uploads(svc.settings.validation_memory_mb, svc.settings.validation_seconds,
                            sum(item.size for item in staged))
    answer = validate_isolated(uploads, caps)
    if isinstance(answer, Refused):
        raise ApiError(answer.status, answer.code, answer.message)
    return answer


def _get_or_create(s: Session, table: type, tenant_id: int, staged: Staged, **fields: Any):
    query = select(table).where(table.tenant_id == tenant_id, table.sha256 == staged.sha256)
    row = s.scalar(query)
    if row is not None:
        return row
    try:
        with s.begin_nested():
            row = table(tenant_id=tenant_id, sha256=staged.sha256, size=staged.size, **fields)
            s.add(row)
    except IntegrityError:  # the same tenant uploaded the same bytes concurrently
        row = s.scalar(query)
    return row


def get(svc: Services, tenant_id: int, job_id: str) -> dict[str, Any]:
    def read(conn) -> dict[str, Any] | None:
        row = job_status.status_of(conn, job_id)
        # Another tenant's job is reported as missing: existence itself is not leaked.
        if row is None or row.tenant_id != tenant_id:
            return None
        return job_status.public(row, job_status.estimate_for(conn, row))

    found = svc.db.read(read)
    if found is None:
        raise ApiError(404, "not_found", f"no certification {job_id!r}")
    return found


@dataclass(frozen=True)
class Polled:
    """One status poll's answer: 200 with ``body``, or 304 when the caller's ETag matches."""

    status: int
    body: bytes
    headers: dict[str, str]


def poll(svc: Services, tenant_id: int, job_id: str, if_none_match: str = "") -> Polled:
    """``GET /v1/certifications/{id}``, read fresh every time (a cancel or a verdict shows on
    the next poll); pollers that send back the ETag get a 304 with no body when nothing
    shown changed."""
    body, etag = job_status.encode(get(svc, tenant_id, job_id))
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if etag in if_none_match:
        return Polled(304, b"", headers)
    return Polled(200, body, headers | {"Content-Type": "application/json"})


def scorecard(svc: Services, tenant_id: int, job_id: str) -> dict[str, Any]:
    with svc.db.session() as s:
        job = _owned(s, tenant_id, job_id)
        if job.status != "succeeded" or job.scorecard is None:
            detail = f": {job.error}" if job.error else ""
            raise ApiError(409, "not_ready",
                           f"certification {job_id} is {job.status}{detail}; no scorecard")
        return job.scorecard


def list_for(svc: Services, tenant_id: int, limit: int, offset: int) -> dict[str, Any]:
    with svc.db.session() as s:
        total = s.scalar(select(func.count()).select_from(Certification)
                         .where(Certification.tenant_id == tenant_id))
        rows = s.execute(job_status.status_query()
                         .where(Certification.tenant_id == tenant_id)
                         .order_by(Certification.created_at.desc(), Certification.id)
                         .limit(limit).offset(offset)).all()
        items = [job_status.public(r, job_status.estimate_for(s, r)) for r in rows]
    nxt = offset + limit if offset + limit < total else None
    return {"items": items, "total": total, "limit": limit, "offset": offset, "next_offset": nxt}


def cancel_or_delete(svc: Services, tenant_id: int, job_id: str) -> str:
    """Cancel a queued or running job; remove a finished one (and its unshared uploads)."""
    with svc.db.session() as s:
        _owned(s, tenant_id, job_id)
        # Lock the row: a concurrent watchdog sweep or claim sees the cancel, or is overwritten.
        job = s.scalar(select(Certification).where(Certification.id == job_id)
                       .with_for_update())
        if job.status not in FINISHED:
            # Final at once, queued or running: nothing sets a finished job's status again
            # (claim, spec, progress and the watchdog only touch queued/running rows).
            job.cancel_requested = True
            job.status, job.stage, job.finished_at = "cancelled", "cancelled", utcnow()
            shards = job.shards_total
        else:
            shards = -1
    if shards >= 0:
        # Drop its messages still queued; a running loop stops at its next checkpoint
        # (verifiers.interrupt: within about a second).
        revoke(svc.celery, job_id, shards)
        return "cancelled"
    _delete(svc, job_id)
    return "deleted"


def _owned(s: Session, tenant_id: int, job_id: str) -> Certification:
    job = s.get(Certification, job_id)
    # Another tenant's job is reported as missing: existence itself is not leaked.
    if job is None or job.tenant_id != tenant_id:
        raise ApiError(404, "not_found", f"no certification {job_id!r}")
    return job


def _delete(svc: Services, job_id: str) -> None:
    with svc.db.session() as s:
        job = s.get(Certification, job_id)
        if job is None:
            return
        model_id, dataset_ids = job.model_id, {job.dataset_id, job.ood_dataset_id} - {None}
        s.delete(job)
        s.flush()
        keys = []
        uses = [(StoredModel, model_id, (Certification.model_id,))] + [
            (Dataset, d, (Certification.dataset_id, Certification.ood_dataset_id))
            for d in dataset_ids]
        for table, row_id, columns in uses:
            still_used = sum(s.scalar(select(func.count()).select_from(Certification)
                                      .where(column == row_id)) for column in columns)
            if not still_used:
                row = s.get(table, row_id)
                keys.append(row.storage_key)
                s.delete(row)
    _collect_blobs(svc, keys)


def _collect_blobs(svc: Services, keys: list[str]) -> None:
    """Delete blobs no model or dataset row (of any tenant) refers to any more."""
    with svc.db.session() as s:
        for key in keys:
            used = s.scalar(select(func.count()).select_from(StoredModel)
                            .where(StoredModel.storage_key == key))
            used += s.scalar(select(func.count()).select_from(Dataset)
                             .where(Dataset.storage_key == key))
            if not used:
                svc.blobs.delete(key)
