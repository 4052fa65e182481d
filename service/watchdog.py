"""Nothing stays ``running`` forever: re-queue jobs nothing works on any more.

A running job is alive while its planning task beats the job (``heartbeat_at``) or one of its
shards beats its part (``certification_parts.heartbeat_at``), every ``heartbeat_seconds``.
When every beat is older than ``stale_seconds`` the worker is presumed dead (killed,
OOM-killed, machine lost) unless one of the job's own messages still waits in the broker
(service.broker.queued_task_ids): then the job waits its turn. Otherwise its plan goes back
to the queue, which re-sends only the parts that are missing, up to ``max_attempts``
deliveries; then the job errors with the reason. A job running longer than
``job_timeout_seconds`` errors too, and its remaining messages are revoked. After a broker
restart (a new Redis run id) every queued job's message is sent again.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from sqlalchemy import or_, select

from service.broker import broker_identity, queued_task_ids, revoke, send_plan
from service.db import Certification, CertificationPart
from service.db.models import utcnow
from service.leader import LeaderLock, leader_lock
from service.services import Services
from workers.parts import task_ids

log = logging.getLogger(__name__)


def sweep(svc: Services) -> list[str]:
    """One pass; returns the ids re-queued."""
    settings = svc.settings
    now = utcnow()
    cutoff = now - timedelta(seconds=settings.stale_seconds)
    requeue: list[str] = []
    timed_out: list[tuple[str, int]] = []
    queued: set[str] | None = None  # asked of the broker at most once per sweep
    with svc.db.session() as s:
        stale = s.scalars(
            select(Certification)
            .where(Certification.status == "running",
                   or_(Certification.heartbeat_at < cutoff, Certification.heartbeat_at.is_(None)))
            .with_for_update(skip_locked=True)).all()
        for job in stale:
            if job.cancel_requested:  # never re-queue a cancelled job (its ids are revoked)
                job.status, job.stage, job.finished_at = "cancelled", "cancelled", utcnow()
                continue
            if _parts_alive(s, job.id, cutoff):
                continue
            if job.shards_total:
                if queued is None:
                    queued = queued_task_ids(svc.celery, settings)
                if queued.intersection(task_ids(job.id, job.shards_total)):
                    continue  # its shards wait their turn in the broker
            lost = f"worker {job.worker or '?'} stopped beating"
            if job.attempts >= settings.max_attempts:
                job.status, job.finished_at = "errored", utcnow()
                job.error = f"{lost}; gave up after {job.attempts} attempts"
            else:
                job.status, job.stage = "queued", f"requeued: {lost}"[:64]
                requeue.append(job.id)
            log.warning("certification %s: %s (attempt %d)", job.id, lost, job.attempts)
        deadline = now - timedelta(seconds=settings.job_timeout_seconds)
        for job in s.scalars(select(Certification).where(
                Certification.status == "running", Certification.started_at < deadline)
                .with_for_update(skip_locked=True)).all():
            job.status, job.finished_at = "errored", utcnow()
            job.error = (f"the job ran past its time limit of {settings.job_timeout_seconds:g} s"
                         f" (ROBUSTGATE_JOB_TIMEOUT_SECONDS)")
            timed_out.append((job.id, job.shards_total))
    for job_id, shards in timed_out:
        revoke(svc.celery, job_id, shards)
    for job_id in requeue:
        send_plan(svc.celery, settings, job_id)
    return requeue


def republish_queued(svc: Services) -> list[str]:
    """Send the plan message of every queued job again (after a broker restart lost them).

    A job whose first message survived gets two: the second finds it running (or done) and
    does nothing (SqlJobStore.claim).
    """
    with svc.db.session() as s:
        ids = list(s.scalars(select(Certification.id).where(
            Certification.status == "queued", Certification.cancel_requested.is_(False))))
    for job_id in ids:
        send_plan(svc.celery, svc.settings, job_id)
    if ids:
        log.warning("re-published %d queued job(s) after a broker restart", len(ids))
    return ids


def _parts_alive(s, job_id: str, cutoff) -> bool:
    return s.scalar(select(CertificationPart.part).where(
        CertificationPart.job_id == job_id, CertificationPart.state == "running",
        CertificationPart.heartbeat_at >= cutoff).limit(1)) is not None


class Watchdog:
    """Runs :func:`sweep` in a daemon thread of the API process; with several API processes
    or replicas, only in the one holding the leader lock (service.leader), so that two
    sweeps never re-queue one job twice or re-publish every queued job once per process."""

    def __init__(self, svc: Services, lock: LeaderLock | None = None) -> None:
        self.svc = svc
        self.lock = lock if lock is not None else leader_lock(svc.settings.database_url)
        self.interval = max(0.5, svc.settings.stale_seconds / 4)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="watchdog")
        self._broker: str | None = None  # the broker's identity when last reached
        self._republish = False          # queued jobs may have lost their message

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.lock.release()

    def run_once(self) -> None:
        broker = broker_identity(self.svc.celery, self.svc.settings)
        if self._broker is not None and broker != self._broker:
            log.warning("the broker restarted (%s -> %s)", self._broker, broker)
            self._republish = True
        self._broker = broker
        if self._republish:
            republish_queued(self.svc)
            self._republish = False
        sweep(self.svc)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if not self.lock.held():
                    self._broker = None  # a follower: whoever leads tracks the broker
                    continue
                self.run_once()
            except Exception:  # the database or broker may be restarting: try next round
                # A publish may have failed half-way (a re-queued job left without a
                # message): publish all queued jobs again once the broker answers.
                self._republish = True
                log.warning("watchdog round failed", exc_info=True)
