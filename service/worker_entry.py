"""The Celery app a worker process loads: ``celery -A service.worker_entry worker``.

It binds the workers' task to the database-backed job store. The store is created lazily in
each process, so prefork children never share a parent's database connections.
"""

from __future__ import annotations

import logging
import os

from celery.signals import worker_ready

from service.alive import start_touching
from service.config import load_settings
from service.db import Database
from service.jobstore import SqlJobStore
from service.storage import BlobStore
from verifiers.device import describe, resolve_device
from workers import make_celery
from workers.tasks import register_tasks

log = logging.getLogger(__name__)
settings = load_settings()
# Resolved at start: a worker asked for a GPU it does not have refuses to start (DeviceError)
# instead of taking jobs and failing each one.
device = resolve_device(settings.device)
hello = describe(device) | {"setting": settings.device}
celery_app = make_celery(settings.broker_url, settings.queue, settings.broker_dir,
                         settings.gpu_queue, settings.retry)
_stores: dict[int, SqlJobStore] = {}


def _store() -> SqlJobStore:
    pid = os.getpid()
    if pid not in _stores:
        _stores[pid] = SqlJobStore(Database(settings.database_url),
                                   BlobStore(settings.storage_dir),
                                   heartbeat_seconds=settings.heartbeat_seconds,
                                   stale_seconds=settings.stale_seconds,
                                   shard_timeout_seconds=settings.shard_timeout_seconds,
                                   job_timeout_seconds=settings.job_timeout_seconds,
                                   retry=settings.retry)
    return _stores[pid]


register_tasks(celery_app, _store, str(device))
app = celery_app


@worker_ready.connect
def _alive(**_kwargs) -> None:
    """The health check reads this file's age (service.alive) instead of importing the app;
    the file holds the worker's hello (its device), shown by ``python -m service.alive``."""
    log.info("robustgate worker ready on %s", hello)
    start_touching(hello=hello)
