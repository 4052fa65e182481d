"""Celery application factory: Redis in production, kombu's filesystem broker embedded."""

from __future__ import annotations

from pathlib import Path

from celery import Celery

CERTIFY_TASK = "robustgate.certify"


def make_celery(broker_url: str, queue: str, broker_dir: Path | None = None) -> Celery:
    app = Celery("robustgate", broker=broker_url)
    conf = {
        "task_default_queue": queue,
        "task_ignore_result": True,  # results live in our database, not in a result backend
        "task_acks_late": True,      # a task whose worker died is delivered again
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_hijack_root_logger": False,
        "broker_connection_retry_on_startup": True,
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
        # Longer than the longest certification, or Redis re-delivers a task still running.
        conf["broker_transport_options"] = {"visibility_timeout": 6 * 3600}
    app.conf.update(conf)
    return app
