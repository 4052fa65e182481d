"""A Celery app whose shard task only records the order shards run in (tests/fairness.py).

Loaded by a real worker process: ``celery -A tests.fairness_app worker``. The broker, queue,
broker folder, log file and shard duration come from RG_FAIR_* variables.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from workers.app import ATTACK_SHARD_TASK, make_celery

_dir = os.environ.get("RG_FAIR_BROKER_DIR")
app = make_celery(os.environ["RG_FAIR_BROKER"], os.environ["RG_FAIR_QUEUE"],
                  Path(_dir) if _dir else None)
LOG = Path(os.environ["RG_FAIR_LOG"])
SHARD_SECONDS = float(os.environ.get("RG_FAIR_SHARD_SECONDS", "0.05"))


@app.task(name=ATTACK_SHARD_TASK)
def shard(job_id: str, part: str) -> None:
    time.sleep(SHARD_SECONDS)  # the shard's "work"
    with LOG.open("a") as log:  # one short line per append: whole lines on Linux
        log.write(f"{time.time():.6f} {job_id} {part}\n")
