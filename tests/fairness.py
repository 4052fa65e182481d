"""The starvation scenario of issue #20 on a real Celery worker and a real broker, for
tests/test_fairness.py and bench/fairness.py.

Tenant A's big job sends ``big`` shards; once the worker has started on them, tenant B's small
job sends ``small``. The worker (one process, solo pool, as ``robustgate serve`` starts it)
runs tests/fairness_app.py, whose shard task sleeps ``shard_seconds`` and logs the order.
Priorities come from :func:`workers.app.priority_for` with each tenant's work ahead of a
shard (rule "work"), or from the former rule, one priority per tenant from its number of
other jobs in flight (rule "jobs": 0 for both tenants here, i.e. FIFO).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from workers.app import ATTACK_SHARD_TASK, make_celery, priority_for
from workers.tasks import celery_dispatch

ROOT = Path(__file__).resolve().parents[1]
RULES: dict[str, Callable[[int], int]] = {"work": priority_for, "jobs": lambda _ahead: 0}


@dataclass(frozen=True)
class Outcome:
    order: list[str]       # the job ("A" or "B") of each shard, in the order they finished
    a_before_b: int        # A's shards finished before B's were sent
    a_during_b: int        # A's shards finished after B's were sent, before B's last
    b_wait_s: float        # B's sending to B's last shard finished
    a_after_b: int         # A's shards finished after B's last


def run(broker_url: str, queue: str, folder: Path, *, big: int = 40, small: int = 3,
        shard_seconds: float = 0.05, rule: str = "work", timeout_s: float = 300.0) -> Outcome:
    folder.mkdir(parents=True, exist_ok=True)
    broker_dir = folder / "broker" if broker_url.startswith("filesystem://") else None
    app = make_celery(broker_url, queue, broker_dir)
    log = folder / f"order-{rule}.log"
    log.unlink(missing_ok=True)
    log.touch()
    env = os.environ | {
        "RG_FAIR_BROKER": broker_url, "RG_FAIR_QUEUE": queue, "RG_FAIR_LOG": str(log),
        "RG_FAIR_BROKER_DIR": str(broker_dir or ""), "RG_FAIR_SHARD_SECONDS": str(shard_seconds),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = (folder / f"worker-{rule}.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tests.fairness_app", "worker", "--pool=solo",
         "-Q", f"{queue}-gpu", "--without-gossip", "--without-mingle", "--loglevel=WARNING"],
        env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    out.close()
    dispatch, priority = celery_dispatch(app), RULES[rule]

    def shards(job: str, n: int) -> None:
        dispatch([(ATTACK_SHARD_TASK, (job, f"attack-{k}"), f"{job}-{rule}:attack-{k}")
                  for k in range(n)], [priority(k) for k in range(n)])  # nothing else ahead

    def lines() -> list[str]:
        return [line.split()[1] for line in log.read_text().splitlines() if line.strip()]

    def wait_for(count: int) -> list[str]:
        deadline = time.monotonic() + timeout_s
        while len(done := lines()) < count:
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited: {(folder / f'worker-{rule}.log')}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(done)} of {count} shards ran in {timeout_s:.0f} s")
            time.sleep(0.01)
        return done

    try:
        shards("A", big)
        before = len(wait_for(1))
        sent_b = time.time()
        shards("B", small)
        order = wait_for(big + small)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    stamps = [float(line.split()[0]) for line in log.read_text().splitlines() if line.strip()]
    last_b = max(i for i, job in enumerate(order) if job == "B")
    return Outcome(order=order, a_before_b=before,
                   a_during_b=order[before:last_b].count("A"),
                   b_wait_s=stamps[last_b] - sent_b,
                   a_after_b=order[last_b + 1:].count("A"))
