"""The parts of a job and the Celery task ids of their messages.

Light on purpose (no torch): the API and the watchdog need the ids to cancel and re-queue,
and must not import the battery for them.
"""

from __future__ import annotations

PREPARE_PART = "prepare"
FINISH_PART = "finish"


def attack_part(k: int) -> str:
    return f"attack-{k}"


def task_id(job_id: str, part: str) -> str:
    """The Celery task id of a part's message (the plan's is the job id itself)."""
    return f"{job_id}:{part}"


def task_ids(job_id: str, shards: int) -> list[str]:
    """Every Celery task id a job's messages carry (what cancel revokes)."""
    return [job_id, *(task_id(job_id, attack_part(k)) for k in range(shards)),
            task_id(job_id, FINISH_PART)]
