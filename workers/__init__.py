"""Celery side: the app factory, the job-store contract, and the certification task.

Workers know nothing of the database: the service hands them a :class:`JobStore`.
"""

from workers.app import CERTIFY_TASK, make_celery
from workers.store import JobSpec, JobStore

__all__ = ["CERTIFY_TASK", "JobSpec", "JobStore", "make_celery"]
