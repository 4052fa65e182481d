"""Per-tenant quotas (service.config.Quotas), checked when a job is submitted.

- samples per job: judged on the validated evaluation set, before anything is stored (413);
- jobs per hour and queued shards: judged inside the submission's transaction, under the
  tenant's submission lock (service.certifications), so concurrent submissions cannot both
  slip under a limit (429). A refused submission stores nothing.

Each refusal is a JSON error naming the quota, its limit and the variable that sets it.
"""

from __future__ import annotations

import math
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.config import Quotas
from service.db import Certification
from service.db.models import utcnow
from service.errors import ApiError
from service.jobstore import tenant_work

HOUR = timedelta(hours=1)


def _refuse(status: int, quota: str, limit: int, message: str,
            retry_after_s: float | None = None) -> ApiError:
    headers = {} if retry_after_s is None else {"Retry-After": str(max(1, math.ceil(
        retry_after_s)))}
    return ApiError(status, "quota_exceeded", message,
                    details={"quota": quota, "limit": limit,
                             "variable": f"ROBUSTGATE_{quota.upper()}"},
                    headers=headers)


def check_samples(quotas: Quotas, n_samples: int) -> None:
    if n_samples > quotas.samples_per_job:
        raise _refuse(413, "max_samples_per_job", quotas.samples_per_job,
                      f"the evaluation set has {n_samples} samples; the quota is "
                      f"{quotas.samples_per_job} samples per job (max_samples_per_job)")


def check_tenant(s: Session, quotas: Quotas, tenant_id: int, new_shards: int) -> None:
    """Refuse a new job of ``new_shards`` attack shards if the tenant is over a quota."""
    if new_shards > quotas.queued_shards:  # waiting would not help: it never fits
        raise _refuse(413, "max_queued_shards", quotas.queued_shards,
                      f"this job alone is {new_shards} attack shards; the quota is "
                      f"{quotas.queued_shards} queued shards per tenant (max_queued_shards)")
    since = utcnow() - HOUR
    recent = s.execute(select(func.count(), func.min(Certification.created_at)).where(
        Certification.tenant_id == tenant_id, Certification.created_at >= since)).one()
    if recent[0] >= quotas.jobs_per_hour:
        oldest = recent[1]
        if oldest is not None and oldest.tzinfo is None:  # SQLite: naive UTC
            oldest = oldest.replace(tzinfo=since.tzinfo)
        wait = (oldest + HOUR - utcnow()).total_seconds() if oldest is not None else 60.0
        raise _refuse(429, "max_jobs_per_hour", quotas.jobs_per_hour,
                      f"{recent[0]} jobs submitted in the last hour; the quota is "
                      f"{quotas.jobs_per_hour} jobs per hour (max_jobs_per_hour)",
                      retry_after_s=wait)
    queued = tenant_work(s, tenant_id)
    if queued + new_shards > quotas.queued_shards:
        raise _refuse(429, "max_queued_shards", quotas.queued_shards,
                      f"{queued} attack shards of this tenant are queued or running and this "
                      f"job adds {new_shards}; the quota is {quotas.queued_shards} queued "
                      f"shards per tenant (max_queued_shards)", retry_after_s=60.0)
