"""What the service sends to and asks of the broker: a job's plan message, which messages
wait, who the broker is, revocation."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from celery import Celery

from service.config import Settings
from workers.app import CERTIFY_TASK, PRIORITY_SEP, PRIORITY_STEPS, priority_for
from workers.parts import task_ids

log = logging.getLogger(__name__)


def send_plan(app: Celery, settings: Settings, job_id: str, work_ahead: int = 0) -> None:
    """Queue a job's plan (``robustgate.certify``; task id = job id) on the cpu queue,
    through a broker outage of up to ``settings.retry_seconds`` (workers.retry)."""
    settings.retry.call(app.send_task, CERTIFY_TASK, args=[job_id], task_id=job_id,
                        queue=settings.queue, priority=priority_for(work_ahead))


def queued_task_ids(app: Celery, settings: Settings) -> set[str]:
    """Task ids of the messages waiting in the job queues, at every priority level.

    Read from the broker's own storage (Redis lists, or the filesystem broker's message
    files): reserved or running messages are not in it. O(messages waiting).
    """
    queues = app.conf.robustgate_queues
    raw: list[bytes | str] = []
    if settings.embedded_broker:
        folder = settings.broker_dir / "queue"
        wanted = {f"{q}.msg" for q in queues}
        for name in os.listdir(folder):
            if name.partition(".")[2] in wanted:
                try:
                    raw.append(Path(folder, name).read_bytes())
                except FileNotFoundError:  # consumed while we looked
                    continue
    else:
        with app.connection_for_read() as conn:
            client = conn.default_channel.client
            for q in queues:
                for pri in PRIORITY_STEPS:
                    raw.extend(client.lrange(f"{q}{PRIORITY_SEP}{pri}" if pri else q, 0, -1))
    ids = set()
    for item in raw:
        try:
            ids.add(json.loads(item)["headers"]["id"])
        except (ValueError, KeyError, TypeError):
            continue
    return ids


def broker_reachable(app: Celery) -> bool:
    """Whether the broker answers a connection within a second."""
    try:
        with app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=0, timeout=1)
        return True
    except Exception:
        return False


def broker_identity(app: Celery, settings: Settings) -> str:
    """What identifies the running broker: Redis's run id changes when it restarts (and with
    it, without persistence, every queued message is gone); the filesystem broker is a folder.
    """
    if settings.embedded_broker:
        return "filesystem"
    with app.connection_for_read() as conn:
        conn.ensure_connection(max_retries=0)
        return str(conn.default_channel.client.info("server").get("run_id", ""))


def revoke(app: Celery, job_id: str, shards: int) -> None:
    """Tell the workers to drop the job's messages still in the queues (best effort: a
    running shard stops on its own at its next cancellation check)."""
    try:
        app.control.revoke(task_ids(job_id, shards))
    except Exception:  # the broker may be down; the cancel flag still stops the job
        log.warning("could not revoke the tasks of %s", job_id, exc_info=True)
