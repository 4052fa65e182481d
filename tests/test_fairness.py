"""Issue #20, item 5: fairness by work. A big job of tenant A must not starve tenant B's
small job: on a real worker and each broker, B's shards run before all but a few of A's
remaining shards. The margin is counted in shards from the recorded order, not in seconds.
"""

from __future__ import annotations

import uuid

import pytest

from tests.fairness import run
from tests.fixtures_service import REDIS_URL
from workers.app import priority_for

BIG, SMALL = 40, 3


def test_priority_levels_follow_the_work_ahead_on_a_log_scale():
    assert [priority_for(n) for n in (0, 1, 2, 3, 4, 7, 8, 255, 256, 10**6)] == \
        [0, 1, 2, 2, 3, 3, 4, 8, 9, 9]
    assert priority_for(-1) == 0


@pytest.mark.parametrize("broker", [
    "filesystem", pytest.param("redis", marks=pytest.mark.redis)])
def test_a_small_job_overtakes_a_big_one_of_another_tenant(broker, tmp_path):
    queue = f"rg-fair-{uuid.uuid4().hex[:8]}"
    url = "filesystem://" if broker == "filesystem" else f"{REDIS_URL}/5"
    got = run(url, queue, tmp_path, big=BIG, small=SMALL)
    assert sorted(got.order) == ["A"] * BIG + ["B"] * SMALL
    # B's shards went in at levels 0..2; ahead of them only A's shards at those levels (at
    # most 3: shards 1-3) and the one the worker had already taken.
    assert got.a_during_b <= 4, got
    assert got.a_after_b >= BIG - got.a_before_b - 4, got
