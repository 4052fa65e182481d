"""Celery application factory: Redis in production, kombu's filesystem broker embedded.

Two queues: ``<queue>`` (cpu) takes the light planning step of a job, ``<queue>-gpu`` (or
``gpu_queue``) its heavy shards: the attacks per sample chunk and the finishing checks.
"""

from __future__ import annotations

from pathlib import Path

from celery import Celery

CERTIFY_TASK = "robustgate.certify"          # plan: prepare, then fan the shards out (cpu)
ATTACK_SHARD_TASK = "robustgate.attack_shard"  # one sample chunk's attacks (gpu)
FINISH_TASK = "robustgate.finish"            # merge, remaining checks, verdict (gpu)

# Redis priorities 0 (first) .. 9; tenants with many jobs in flight get the larger numbers.
PRIORITY_STEPS = list(range(10))
# kombu's Redis transport keeps priority n > 0 of queue q in the list "q<sep>n".
PRIORITY_SEP = ":"


def priority_for(backlog: int) -> int:
    """A message's priority from how many other jobs its tenant has queued or running."""
    return min(max(backlog, 0), PRIORITY_STEPS[-1])


def gpu_queue_for(queue: str) -> str:
    return f"{queue}-gpu"


def make_celery(broker_url: str, queue: str, broker_dir: Path | None = None,
                gpu_queue: str | None = None) -> Celery:
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
        "task_serializer": "json",
        "accept_content": ["json"],
    }
    if broker_url.startswith("filesystem://"):
        if broker_dir is None:
            raise ValueError("the filesystem broker needs a folder")
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
    return app
