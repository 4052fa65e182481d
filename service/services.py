"""The long-lived parts one process shares: settings, database, blob store, Celery client."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from celery import Celery

from service.auth import TokenCache
from service.config import Settings
from service.db import Database
from service.storage import BlobStore
from workers import make_celery


@dataclass
class Services:
    settings: Settings
    db: Database = field(init=False)
    blobs: BlobStore = field(init=False)
    # Verified API tokens for a few seconds: a status poll asks the database once, not twice.
    tokens: TokenCache = field(default_factory=TokenCache)

    def __post_init__(self) -> None:
        self.db = Database(self.settings.database_url)
        self.blobs = BlobStore(self.settings.storage_dir)

    @cached_property
    def celery(self) -> Celery:
        s = self.settings
        return make_celery(s.broker_url, s.queue, s.broker_dir, s.gpu_queue, s.retry)

    def close(self) -> None:
        self.db.dispose()
