"""Celery side: the app factory, the job-store contract, and the certification task.

Workers know nothing of the database: the service hands them a :class:`JobStore`.
"""

from workers.app import ATTACK_SHARD_TASK, CERTIFY_TASK, FINISH_TASK, make_celery
from workers.store import JobSpec, JobStore

__all__ = ["ATTACK_SHARD_TASK", "CERTIFY_TASK", "FINISH_TASK", "JobSpec", "JobStore", "make_celery"]
