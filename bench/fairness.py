"""Benchmark of the starvation scenario (issue #20, item 5): how long a small job of tenant B
waits behind a big job of tenant A, with priority by work (workers.app.priority_for) and with
the former rule (one priority per tenant from its count of other jobs: FIFO here).

A real Celery worker (solo pool) and a real broker; shards are simulated work of
``--shard-seconds`` each (tests/fairness_app.py), so the figures are about scheduling only.
Scaled down from the audit's case (a 100,000-sample job = 391 shards, a 300-sample job = 2):
same shard counts, shards of 50 ms instead of minutes.

    .venv/bin/python bench/fairness.py                     # Redis db 5 on 127.0.0.1:6379
    .venv/bin/python bench/fairness.py --broker filesystem --big 100
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fairness import run  # noqa: E402
from tests.fixtures_service import REDIS_URL  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", choices=("redis", "filesystem"), default="redis")
    parser.add_argument("--big", type=int, default=391, help="tenant A's shards")
    parser.add_argument("--small", type=int, default=2, help="tenant B's shards")
    parser.add_argument("--shard-seconds", type=float, default=0.05)
    args = parser.parse_args()
    url = "filesystem://" if args.broker == "filesystem" else f"{REDIS_URL}/5"
    print(f"broker {args.broker}; A: {args.big} shards, then B: {args.small} shards; "
          f"{args.shard_seconds * 1000:.0f} ms per shard; one worker")
    waits = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rule in ("jobs", "work"):
            got = run(url, f"rg-fairbench-{uuid.uuid4().hex[:8]}", Path(tmp) / rule,
                      big=args.big, small=args.small, shard_seconds=args.shard_seconds,
                      rule=rule)
            waits[rule] = got.b_wait_s
            print(f"  priority by {rule:4}: B waited {got.b_wait_s:7.2f} s; A's shards run "
                  f"between B's sending and B's last: {got.a_during_b:4d}; after: "
                  f"{got.a_after_b:4d} (A had {args.big - got.a_before_b} left)")
    print(f"B's wait, by work / by job count: {waits['work'] / waits['jobs']:.3f}")


if __name__ == "__main__":
    main()
