"""Celery application factory: Redis in production, kombu's filesystem broker embedded.

Two queues: ``<queue>`` (cpu) takes the light planning step of a job, ``<queue>-gpu`` (or
``gpu_queue``) its heavy shards: the attacks per sample chunk and the finishing checks.
"""

from __future__ import annotations

from pathlib import Path

from celery import Celery

from workers.fs_broker import TRANSPORT as FILESYSTEM_TRANSPORT
from workers.retry import RetryPolicy, celery_publish_policy

CERTIFY_TASK = "robustgate.certify"          # plan: prepare, then fan the shards out (cpu)
ATTACK_SHARD_TASK = "robustgate.attack_shard"  # one sample chunk's attacks (gpu)
FINISH_TASK = "robustgate.finish"            # merge, remaining checks, verdict (gpu)

# Message priorities 0 (first) .. 9, on both brokers (Redis: one list per level; the
# filesystem broker: workers.fs_broker). A message behind much of its tenant's work gets a
# larger number.
PRIORITY_STEPS = list(range(10))
# kombu's Redis transport keeps priority n > 0 of queue q in the list "q<sep>n".
PRIORITY_SEP = ":"


def priority_for(work_ahead: int) -> int:
    """A message's priority from the work (attack shards) its tenant has queued or running
    ahead of it: 0 for none, then one level per doubling (1 -> 1, 2-3 -> 2, 4-7 -> 3, ...,
    256 and more -> 9).

    Fairness by work, not by job count: shard k of a tenant's job is sent with the tenant's
    other unfinished shards plus k ahead of it, so a 391-shard job spreads over every level
    while another tenant's 2-shard job goes in at levels 0 and 1, ahead of all but a few of
    the big job's remaining shards. Within a level messages are FIFO. The scale is
    logarithmic so a small job always finds a level near the front.
    """
    return min(max(work_ahead, 0).bit_length(), PRIORITY_STEPS[-1])


def gpu_queue_for(queue: str) -> str:
    return f"{queue}-gpu"


def make_celery(broker_url: str, queue: str, broker_dir: Path | None = None,
                gpu_queue: str | None = None, retry: RetryPolicy | None = None) -> Celery:
    app = Celery("robustgate", broker=broker_url)
    gpu = gpu_queue or gpu_queue_for(queue)
    conf = {
        "task_default_queue": queue,
        "task_routes": {CERTIFY_TASK: {"queue": queue}, ATTACK_SHARD_TASK: {"queue": gpu},
                        FINISH_TASK: {"queue": gpu}},
        "task_ignore_result": True,  # results live in our database, not in a result backend
        "task_acks_late": True,      # a task whose worker died is delivered again
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_hijack_root_logger": False,
        "broker_connection_retry_on_startup": True,
        # Retry a lost broker forever: Celery's default (100 tries, ~46 min) ends the worker,
        # and nothing restarts it under `robustgate serve`.
        "broker_connection_max_retries": None,
        # Celery's publish retry: a few quick reconnects per attempt; the time-bounded
        # backoff around every send is workers.retry.RetryPolicy (app.conf.robustgate_retry).
        "task_publish_retry": True,
        "task_publish_retry_policy": celery_publish_policy(),
        "task_serializer": "json",
        "accept_content": ["json"],
    }
    if broker_url.startswith("filesystem://"):
        if broker_dir is None:
            raise ValueError("the filesystem broker needs a folder")
        conf["broker_transport"] = FILESYSTEM_TRANSPORT  # kombu's, with priorities
        for sub in ("queue", "processed", "control"):
            (broker_dir / sub).mkdir(parents=True, exist_ok=True)
        conf["broker_transport_options"] = {
            "data_folder_in": str(broker_dir / "queue"),
            "data_folder_out": str(broker_dir / "queue"),
            "processed_folder": str(broker_dir / "processed"),
            # kombu otherwise writes its control exchange into the working directory
            "control_folder": str(broker_dir / "control"),
            "store_processed": False,
        }
    else:
        conf["broker_transport_options"] = {
            # Longer than the longest shard (shard_timeout_seconds), or Redis re-delivers a
            # task still running.
            "visibility_timeout": 6 * 3600,
            "priority_steps": PRIORITY_STEPS, "sep": PRIORITY_SEP,
            "queue_order_strategy": "priority",
        }
    app.conf.update(conf)
    app.conf.robustgate_queues = (queue, gpu)
    app.conf.robustgate_retry = retry or RetryPolicy()
    return app
