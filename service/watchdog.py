"""Nothing stays ``running`` forever: re-queue jobs whose worker stopped beating.

A worker beats every ``heartbeat_seconds`` while it runs a job. When the beat is older than
``stale_seconds`` the worker is presumed dead (killed, OOM-killed, machine lost): the job goes
back to the queue, up to ``max_attempts`` deliveries, then errors with the reason. Results
are idempotent per job, so a late duplicate delivery finds the job taken or finished and does
nothing.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from sqlalchemy import or_, select

from service.db import Certification
from service.db.models import utcnow
from service.services import Services
from workers import CERTIFY_TASK

log = logging.getLogger(__name__)


def sweep(svc: Services) -> list[str]:
    """One pass; returns the ids re-queued."""
    settings = svc.settings
    cutoff = utcnow() - timedelta(seconds=settings.stale_seconds)
    requeue: list[str] = []
    with svc.db.session() as s:
        stale = s.scalars(
            select(Certification)
            .where(Certification.status == "running",
                   or_(Certification.heartbeat_at < cutoff, Certification.heartbeat_at.is_(None)))
            .with_for_update(skip_locked=True)).all()
        for job in stale:
            lost = f"worker {job.worker or '?'} stopped beating"
            if job.attempts >= settings.max_attempts:
                job.status, job.finished_at = "errored", utcnow()
                job.error = f"{lost}; gave up after {job.attempts} attempts"
            else:
                job.status, job.stage, job.progress = "queued", f"requeued: {lost}"[:64], 0.0
                requeue.append(job.id)
            log.warning("certification %s: %s (attempt %d)", job.id, lost, job.attempts)
    for job_id in requeue:
        svc.celery.send_task(CERTIFY_TASK, args=[job_id], task_id=job_id,
                             queue=settings.queue)
    return requeue


class Watchdog:
    """Runs :func:`sweep` in a daemon thread of the API process."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.interval = max(0.5, svc.settings.stale_seconds / 4)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="watchdog")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                sweep(self.svc)
            except Exception:  # the database or broker may be restarting: try next round
                log.warning("watchdog sweep failed", exc_info=True)
