"""The cheap status poll keeps its promises: tokens revoked elsewhere stop within the cache's
bound (at once when revoked through this API), ETags give 304s only while nothing changed,
and a cancel shows on the very next poll."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient

from service.api import create_app
from service.auth import TokenCache, create_token
from service.db import ApiToken, Database
from service.db.migrate import upgrade
from tests.fixtures_service import embedded_settings


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_token_revoked_elsewhere_stops_within_the_cache_bound(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    db = Database(url)
    clock = FakeClock()
    cache = TokenCache(ttl=5.0, clock=clock)
    try:
        with db.session() as s:
            token = create_token(s, "acme")
        with db.session() as s:
            caller = cache.verify(s, token)
            assert caller is not None
        with db.session() as s:  # another process revokes it: this cache does not know yet
            s.query(ApiToken).filter(ApiToken.id == caller.token_id).update(
                {"revoked_at": datetime.now(UTC)})
        clock.now = 4.9
        assert cache.lookup(token) == caller  # trusted for at most ttl seconds
        clock.now = 5.0
        assert cache.lookup(token) is None
        with db.session() as s:
            assert cache.verify(s, token) is None  # asked again: refused
        # Unknown tokens are never cached.
        with db.session() as s:
            assert cache.verify(s, "rg_not-a-token") is None
        assert cache.lookup("rg_not-a-token") is None
    finally:
        db.dispose()


def test_etag_polls_answer_304_until_the_status_changes(tmp_path):
    settings = embedded_settings(tmp_path)
    upgrade(settings.database_url)
    app = create_app(settings)
    svc = app.state.services
    with svc.db.session() as s:
        token = create_token(s, "poller")
        other = create_token(s, "someone-else")
        admin = create_token(s, "ops", admin=True)
    client = TestClient(app, headers={"Authorization": f"Bearer {token}"})
    examples = Path(__file__).resolve().parents[1] / "examples"
    job = client.post("/v1/certifications",
                      files={"model": ("m.onnx", (examples / "digits_cnn.onnx").read_bytes()),
                             "data": ("d.npz", (examples / "digits_eval.npz").read_bytes())},
                      data={"standard": "demo-digits"}).json()
    url = f"/v1/certifications/{job['id']}"
    first = client.get(url)
    assert first.status_code == 200 and first.json()["status"] == "queued"
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "no-cache"
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    # Another tenant sees nothing, ETag or not.
    assert client.get(url, headers={"Authorization": f"Bearer {other}",
                                    "If-None-Match": etag}).status_code == 404
    # A cancel is visible on the next poll, and the old ETag no longer matches.
    assert client.delete(url).status_code == 202
    after = client.get(url, headers={"If-None-Match": etag})
    assert after.status_code == 200 and after.json()["status"] == "cancelled"
    assert after.headers["etag"] != etag
    # A token revoked through this API stops at once (not after the cache's bound).
    tokens = TestClient(app, headers={"Authorization": f"Bearer {admin}"})
    token_id = next(t["id"] for t in tokens.get("/v1/tokens").json()["tokens"]
                    if t["tenant"] == "poller")
    assert tokens.delete(f"/v1/tokens/{token_id}").status_code == 204
    assert client.get(url).status_code == 401
    svc.close()
