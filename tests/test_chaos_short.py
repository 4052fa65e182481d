"""The short chaos schedule (bench/chaos.py --short) on the production shape.

Five jobs of two tenants on a private PostgreSQL and Redis with two workers; one of each
fault (cancel a queued job, kill -9 a worker, kill -9 the API, restart Redis empty, crash
PostgreSQL) at random stages of the jobs. Every job must end succeeded with the undisturbed
run's verdict and criteria, cancelled by the schedule, or errored for a reason of its own;
none stuck, none lost.
"""

from __future__ import annotations

import shutil

import pytest

from bench.chaos import make_plan, run
from bench.chaos_services import postgres_binaries

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def test_short_chaos_schedule_loses_and_corrupts_nothing(tmp_path) -> None:
    if shutil.which("redis-server") is None or postgres_binaries() is None:
        pytest.skip("needs redis-server and the PostgreSQL server binaries (initdb, postgres)")
    lines: list[str] = []
    plan = make_plan(seed=0, short=True, jobs=None, faults=None, timeout=None)
    outcome = run(plan, seed=0, folder=tmp_path, log=lines.append)
    report = "\n".join(lines)
    assert outcome.ok, report
    kinds = {kind for _, kind, _ in outcome.applied}
    assert kinds == {"kill-worker", "kill-api", "restart-redis", "restart-postgres", "cancel"}
    assert any(job.cancelled_by_us and job.status == "cancelled" for job in outcome.jobs), report
    assert sum(job.status == "succeeded" for job in outcome.jobs) >= 3, report
