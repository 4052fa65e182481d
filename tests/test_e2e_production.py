"""Production shape: PostgreSQL, Redis broker, a real Celery worker; tenants kept apart."""

from __future__ import annotations

import httpx
import pytest

from service.client import Client, ClientError

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def test_certification_runs_on_postgres_and_redis(production_server, digits):
    health = httpx.get(f"{production_server.url}/healthz").json()
    assert health["database"] == "postgresql" and health["broker"] == "redis"
    assert health["status"] == "ok" and health["broker_reachable"] is True
    token = production_server.token("prod-a")
    with Client(production_server.url, token) as client:
        job = client.submit(digits.robust_model, digits.eval_set, "demo-digits")
        done = client.wait(job["id"], timeout=300)
        card = client.scorecard(job["id"])
    assert done["status"] == "succeeded" and card["verdict"] == "PASS"


def test_one_tenant_cannot_see_or_touch_another_tenants_results(production_server, digits):
    alice = Client(production_server.url, production_server.token("alice"))
    bob = Client(production_server.url, production_server.token("bob"))
    job = alice.submit(digits.brittle_model, digits.eval_set, "demo-digits")
    alice.wait(job["id"], timeout=300)
    for call in (lambda: bob.get(job["id"]), lambda: bob.scorecard(job["id"]),
                 lambda: bob.delete(job["id"])):
        with pytest.raises(ClientError) as err:
            call()
        assert err.value.status == 404
    headers = {"Authorization": f"Bearer {production_server.token('bob')}"}
    listing = httpx.get(f"{production_server.url}/v1/certifications", headers=headers).json()
    assert all(item["id"] != job["id"] for item in listing["items"])
    # Alice still has it, untouched by Bob's attempts.
    assert alice.get(job["id"])["status"] == "succeeded"
    assert alice.delete(job["id"]) == 204
    with pytest.raises(ClientError) as err:
        alice.get(job["id"])
    assert err.value.status == 404
    alice.close()
    bob.close()


def test_cancel_stops_the_running_shard_and_revokes_the_queued_ones(production_server, digits):
    token = production_server.token("prod-cancel")
    with Client(production_server.url, token) as client:
        job = client.submit(digits.robust_model, digits.eval_set, "demo-digits", seed=21)
        production_server.wait_for_part(client, job["id"], "attack-0")
        assert client.delete(job["id"]) == 202
        done = client.wait(job["id"], timeout=120)
    assert done["status"] == "cancelled" and done["verdict"] is None, done
    parts = production_server.parts(job["id"])
    # One worker: shard 0 was running and stopped; shard 1, still queued, never started (its
    # message revoked, or dropped by the worker on finding the job cancelled); no finish.
    assert parts.get("attack-0") == "running" and "attack-1" not in parts, parts
    assert "finish" not in parts
