"""The public status of certifications, read in one query.

Status polling is the API's hottest path (CI pipelines poll every job until it finishes), so
the status is one SELECT of the columns it shows, joined over model, dataset, OOD set and
standard: no ORM objects, and never the large columns (scorecard, certificate, standard
document, model info) a poll does not show. Nothing is cached: a cancel or a worker's progress
is visible on the next poll.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import Connection, Row, Select, bindparam, select
from sqlalchemy.orm import Session, aliased

from service.db import Certification, CertificationPart, Dataset, StandardRecord, StoredModel
from service.db.models import utcnow
from service.jobstore import aware
from verifiers.estimate import estimate

_Ood = aliased(Dataset)

_COLUMNS = (
    Certification.id, Certification.tenant_id, Certification.status, Certification.stage,
    Certification.progress, Certification.verdict, Certification.error, Certification.seed,
    Certification.input_low, Certification.input_high, Certification.created_at,
    Certification.started_at, Certification.finished_at,
    StandardRecord.name.label("std_name"), StandardRecord.version.label("std_version"),
    StandardRecord.sha256.label("std_sha256"),
    StoredModel.sha256.label("model_sha256"), StoredModel.filename.label("model_filename"),
    StoredModel.size.label("model_size"),
    Dataset.sha256.label("data_sha256"), Dataset.filename.label("data_filename"),
    Dataset.n_samples.label("data_n"),
    _Ood.sha256.label("ood_sha256"), _Ood.filename.label("ood_filename"),
    _Ood.n_samples.label("ood_n"),
)


def status_query() -> Select:
    """SELECT of every status column; callers add WHERE / ORDER BY / LIMIT."""
    return (select(*_COLUMNS)
            .join(StandardRecord, StandardRecord.id == Certification.standard_id)
            .join(StoredModel, StoredModel.id == Certification.model_id)
            .join(Dataset, Dataset.id == Certification.dataset_id)
            .outerjoin(_Ood, _Ood.id == Certification.ood_dataset_id))


# Built once: SQLAlchemy memoizes a statement's cache key on the statement, so a poll neither
# rebuilds the 25-column join nor recomputes its key (together 0.5 ms of a 0.8 ms poll).
_BY_ID = status_query().where(Certification.id == bindparam("job_id"))
_PART_STARTS = (select(CertificationPart.part, CertificationPart.created_at)
                .where(CertificationPart.job_id == bindparam("job_id")))


def status_of(conn: Connection | Session, job_id: str) -> Row | None:
    return conn.execute(_BY_ID, {"job_id": job_id}).one_or_none()


def estimate_for(conn: Connection | Session, row: Row) -> dict[str, Any] | None:
    """Time left for a running job (verifiers.estimate), from when its attack and finish
    parts started; None when finished, queued or not enough is measured yet. One more
    query, and only while the job runs."""
    if row.status != "running" or not row.data_n:
        return None
    parts = conn.execute(_PART_STARTS, {"job_id": row.id}).all()
    attacks = [aware(at).timestamp() for part, at in parts if part.startswith("attack-")]
    finish = [aware(at).timestamp() for part, at in parts if part == "finish"]
    found = estimate(row.progress or 0.0, row.data_n, utcnow().timestamp(),
                     min(attacks) if attacks else None, finish[0] if finish else None)
    return None if found is None else found.as_dict()


def public(row: Row, time_left: dict[str, Any] | None = None) -> dict[str, Any]:
    """The status as ``GET /v1/certifications/{id}`` shows it (schema: CertificationOut);
    ``time_left``: :func:`estimate_for` of a running job."""
    base = f"/v1/certifications/{row.id}"
    return {
        "id": row.id, "status": row.status, "stage": row.stage, "progress": row.progress,
        "verdict": row.verdict, "error": row.error, "seed": row.seed,
        "input_range": [row.input_low, row.input_high],
        "standard": {"name": row.std_name, "version": row.std_version,
                     "sha256": row.std_sha256},
        "model": {"sha256": row.model_sha256, "filename": row.model_filename,
                  "size": row.model_size},
        "dataset": {"sha256": row.data_sha256, "filename": row.data_filename,
                    "n_samples": row.data_n},
        "ood_dataset": None if row.ood_sha256 is None else {
            "sha256": row.ood_sha256, "filename": row.ood_filename, "n_samples": row.ood_n},
        "created_at": _iso(row.created_at), "started_at": _iso(row.started_at),
        "finished_at": _iso(row.finished_at), "estimate": time_left,
        "links": {"self": base, "scorecard": f"{base}/scorecard"},
    }


def encode(body: dict[str, Any]) -> tuple[bytes, str]:
    """(JSON bytes, strong ETag): the ETag is the body's hash, so it changes exactly when any
    shown field does (status, stage, progress, verdict, error, times)."""
    data = json.dumps(body, separators=(",", ":")).encode()
    return data, '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None
