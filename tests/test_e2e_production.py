"""Production shape: PostgreSQL, Redis broker, a real Celery worker; tenants kept apart."""

from __future__ import annotations

import httpx
import pytest

from service.client import Client, ClientError

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def test_certification_runs_on_postgres_and_redis(production_server, digits):
    health = httpx.get(f"{production_server.url}/healthz").json()
    assert health["database"] == "postgresql" and health["broker"] == "redis"
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
