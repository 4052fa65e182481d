"""Many submissions at once, and a restart of the service: nothing lost, tenants kept apart."""

from __future__ import annotations

import concurrent.futures as cf

import numpy as np
import pytest

from examples.digits import DigitsMLP, export_onnx, load_digits_split, train
from service.client import Client
from service.serve import stop
from tests.fixtures_service import embedded_settings, start_server


@pytest.fixture(scope="module")
def small_job(tmp_path_factory):
    """A small MLP and a 40-sample set: a job of a few seconds."""
    folder = tmp_path_factory.mktemp("small")
    x_tr, y_tr, x_ev, y_ev = load_digits_split()
    model = train(DigitsMLP(hidden=32), x_tr, y_tr, epochs=10, adversarial_eps=0.1, seed=3)
    export_onnx(model, folder / "mlp.onnx")
    np.savez(folder / "eval.npz", x=x_ev[:40], y=y_ev[:40])
    return folder / "mlp.onnx", folder / "eval.npz"


@pytest.mark.postgres
@pytest.mark.redis
def test_twenty_concurrent_submissions_from_three_tenants(production_server, small_job):
    model, data = small_job
    tokens = {name: production_server.token(name) for name in ("t-red", "t-green", "t-blue")}
    plan = [list(tokens)[i % 3] for i in range(20)]

    def submit(item: tuple[int, str]) -> tuple[str, str]:
        seed, tenant = item  # distinct seeds: identical submissions would share one job
        with Client(production_server.url, tokens[tenant]) as client:
            return tenant, client.submit(model, data, "demo-digits", seed=seed)["id"]

    with cf.ThreadPoolExecutor(max_workers=8) as pool:
        submitted = list(pool.map(submit, enumerate(plan)))
    by_tenant: dict[str, set[str]] = {t: set() for t in tokens}
    for tenant, job_id in submitted:
        by_tenant[tenant].add(job_id)
    for tenant, ids in by_tenant.items():
        with Client(production_server.url, tokens[tenant]) as client:
            for job_id in ids:
                assert client.wait(job_id, timeout=600)["status"] == "succeeded"
            listing = client.list_certifications(limit=200)
            # The tenant sees exactly its own jobs (these fixtures' tenants are new).
            assert {item["id"] for item in listing["items"]} == ids
    assert sum(len(ids) for ids in by_tenant.values()) == 20


def test_restarting_the_service_loses_nothing(tmp_path, small_job):
    model, data = small_job
    settings = embedded_settings(tmp_path / "svc", ROBUSTGATE_STALE_SECONDS="5")
    first = start_server(settings, workers=0)  # the API alone: jobs wait in the queue
    token = first.token("restart")
    with Client(first.url, token) as client:
        ids = [client.submit(model, data, "demo-digits", seed=i)["id"] for i in range(3)]
    stop([first.proc])
    second = start_server(settings, workers=1)
    try:
        with Client(second.url, token) as client:
            for job_id in ids:
                assert client.wait(job_id, timeout=300)["status"] == "succeeded"
            assert client.list_certifications()["total"] == 3
    finally:
        stop([second.proc])


@pytest.mark.postgres
@pytest.mark.redis
def test_one_tenants_backlog_does_not_starve_another_tenants_job(production_server, small_job):
    """One worker; tenant "busy" queues six jobs, then tenant "lone" submits one. Its messages
    carry Redis priority 0 (no other work in flight) against the busy tenant's larger levels
    (from its unfinished shards, workers.app.priority_for), so it runs next, not after the
    backlog (FIFO would finish it last). tests/test_fairness.py: one big job against a small
    one."""
    model, data = small_job
    busy = Client(production_server.url, production_server.token("busy"))
    lone = Client(production_server.url, production_server.token("lone"))
    with busy, lone:
        backlog = [busy.submit(model, data, "demo-digits", seed=100 + i)["id"] for i in range(6)]
        mine = lone.submit(model, data, "demo-digits", seed=100)["id"]
        done = {job: busy.wait(job, timeout=300) for job in backlog}
        done[mine] = lone.wait(mine, timeout=300)
    assert all(d["status"] == "succeeded" for d in done.values()), done
    order = sorted(done, key=lambda job: done[job]["finished_at"])
    # At most the job already running and one more of the backlog can finish first.
    assert order.index(mine) <= 2, [(j == mine, done[j]["finished_at"]) for j in order]
