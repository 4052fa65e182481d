"""Sharded jobs: the plan, the chunk evidence, idempotent parts, and one figure everywhere.

A job runs as plan -> attack shards (one per sample chunk) -> finish on real worker
processes; its scorecard must equal the one ``robustgate certify`` computes in one process.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from service.db import Database
from service.db.migrate import upgrade
from service.jobstore import SqlJobStore
from service.storage import BlobStore
from verifiers.checks.attack_evidence import ChunkEvidence, RadiusEvidence, merge
from verifiers.data import load_eval_set
from verifiers.pipeline import certify
from verifiers.plan import attack_chunks
from verifiers.standards import get_builtin


def test_chunks_tile_the_set_whatever_its_size():
    for n in (1, 255, 256, 257, 300, 1000):
        spans = attack_chunks(n)
        assert spans[0][0] == 0 and spans[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
        assert all(0 < hi - lo <= 256 for lo, hi in spans)
    assert attack_chunks(0) == [(0, 0)]


def _evidence(lo: int, hi: int, broken: list[int]) -> ChunkEvidence:
    robust = np.ones(hi - lo, dtype=bool)
    robust[[b - lo for b in broken]] = False
    by = np.full(hi - lo, "", dtype=object)
    by[[b - lo for b in broken]] = "apgd-ce"
    ev = ChunkEvidence(lo, hi, forward={"apgd-ce": 10 * (hi - lo)},
                       backward={"apgd-ce": 10 * (hi - lo)}, rejected=1)
    ev.radii["0.1"] = RadiusEvidence(robust, by, np.asarray(broken, dtype=np.int64),
                                     np.full((len(broken), 2), 0.5, np.float32),
                                     {"apgd-ce": len(broken)})
    return ev


def test_chunk_evidence_survives_bytes_and_merges_into_whole_set_arrays():
    a = ChunkEvidence.from_bytes(_evidence(0, 4, [1, 3]).to_bytes())
    b = ChunkEvidence.from_bytes(_evidence(4, 6, [4]).to_bytes())
    merged, total = merge([b, a], 6, (2,))
    r = merged["0.1"]
    assert r.robust.tolist() == [True, False, True, False, False, True]
    assert r.broken_by.tolist() == ["", "apgd-ce", "", "apgd-ce", "apgd-ce", ""]
    assert r.examples["index"].tolist() == [1, 3, 4] and r.examples["x_adv"].shape == (3, 2)
    assert r.successes == {"apgd-ce": 3}
    assert total.forward == {"apgd-ce": 60} and total.rejected == 2


@pytest.mark.parametrize("spans", [[(0, 4)], [(0, 4), (3, 6)], [(0, 4), (4, 6), (4, 6)]])
def test_merge_refuses_chunks_that_do_not_tile_the_set(spans):
    with pytest.raises(ValueError, match="do not tile"):
        merge([_evidence(lo, hi, []) for lo, hi in spans], 6, (2,))


def test_a_redelivered_part_keeps_the_first_result(tmp_path):
    url = f"sqlite:///{tmp_path / 'parts.db'}"
    upgrade(url)
    from sqlalchemy import text

    db = Database(url)
    with db.engine.begin() as conn:  # a job row to hang parts on (ids only matter here)
        conn.execute(text("PRAGMA foreign_keys=OFF"))
        conn.execute(text("INSERT INTO tenants (id, name, created_at) VALUES (1, 't', "
                          "CURRENT_TIMESTAMP)"))
        conn.execute(text(
            "INSERT INTO certifications (id, tenant_id, model_id, dataset_id, standard_id, "
            "status, stage, progress, seed, cancel_requested, attempts, worker, shards_total, "
            "created_at, updated_at) VALUES ('j', 1, 1, 1, 1, 'running', '', 0, 0, 0, 1, '', "
            "2, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
    store = SqlJobStore(db, BlobStore(tmp_path / "blobs"), stale_seconds=60)
    assert store.start_part("j", "attack-0", "w1") is True
    assert store.start_part("j", "attack-0", "w2") is False   # w1 still beats
    assert store.start_part("j", "attack-0", "w1") is True    # w1 retrying a lost commit
    assert store.live_parts("j") == {"attack-0"}
    store.finish_part("j", "attack-0", b"first")
    store.finish_part("j", "attack-0", b"second")             # a redelivery
    assert store.part("j", "attack-0") == b"first"
    assert store.start_part("j", "attack-0", "w3") is False   # done: nothing to do
    assert store.parts("j", "attack-") == {"attack-0": b"first"}
    db.dispose()


def _comparable(card: dict) -> dict:
    card = json.loads(json.dumps(card))  # as stored: tuples become lists
    card = {k: v for k, v in card.items() if k not in ("timings", "hardware")}
    card["checks"] = {k: {**v, "seconds": 0} for k, v in card["checks"].items()}
    return card


def test_sharded_service_run_equals_the_in_process_run(embedded_server, digits):
    from service.client import Client

    with Client(embedded_server.url, embedded_server.token("shards")) as client:
        job = client.submit(digits.robust_model, digits.eval_set, "demo-digits", seed=5)
        done = client.wait(job["id"], timeout=300)
        assert done["status"] == "succeeded", done
        served = client.scorecard(job["id"])
    # The service names the standard's owner in what it signs; a local run has no owner.
    assert served["standard"].pop("owner") == "builtin"
    assert served["checks"]["adversarial"]["details"]["shards"] == {
        "samples_per_shard": 256, "count": 2}
    local = certify(digits.robust_model.read_bytes(), load_eval_set(digits.eval_set),
                    get_builtin("demo-digits"), seed=5)
    served, local = _comparable(served), _comparable(local)
    for name in local["checks"]:
        assert served["checks"][name] == local["checks"][name], name
    assert served == local
