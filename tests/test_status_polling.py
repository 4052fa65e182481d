"""The cheap status poll keeps its promises: tokens revoked elsewhere stop within the cache's
bound (at once when revoked through this API), ETags give 304s only while nothing changed,
and a cancel shows on the very next poll."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient

from service.api import create_app
from service.auth import TokenCache, create_token
from service.db import ApiToken, Database
from service.db.migrate import upgrade
from tests.fixtures_service import child_processes, embedded_settings, in_process_api
from tests.test_api_bad_input import _post

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


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


def _submit_digits(client: TestClient) -> dict:
    """A queued demo-digits job of the shipped example, as the client's tenant."""
    return _post(client, (EXAMPLES / "digits_cnn.onnx").read_bytes(),
                 (EXAMPLES / "digits_eval.npz").read_bytes()).json()


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
    job = _submit_digits(client)
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


def _compare(client: TestClient, other: TestClient, url: str, **headers: str) -> None:
    a, b = client.get(url, headers=headers), other.get(url, headers=headers)
    assert (a.status_code, a.content) == (b.status_code, b.content)
    for name in ("etag", "cache-control", "content-type", "www-authenticate"):
        assert a.headers.get(name) == b.headers.get(name), name


def test_the_fast_poll_path_answers_exactly_as_the_documented_route(tmp_path):
    """Polls over HTTP are answered ahead of FastAPI (service.api.status_fast); the route
    FastAPI documents must give the same status codes, bodies and headers."""
    settings = embedded_settings(tmp_path)
    upgrade(settings.database_url)
    fast, plain = create_app(settings), create_app(settings, fast_status_polls=False)
    svc = fast.state.services
    with svc.db.session() as s:
        token, other = create_token(s, "poller"), create_token(s, "someone-else")
    auth = {"Authorization": f"Bearer {token}"}
    a, b = TestClient(fast, headers=auth), TestClient(plain, headers=auth)
    job = _submit_digits(a)
    url = f"/v1/certifications/{job['id']}"
    etag = a.get(url).headers["etag"]
    _compare(a, b, url)                                     # 200 with the status
    _compare(a, b, url, **{"If-None-Match": etag})          # 304, no body
    _compare(a, b, url, **{"If-None-Match": '"stale"'})     # 200 again
    _compare(a, b, "/v1/certifications/no-such-job")        # 404 JSON
    _compare(a, b, url, Authorization=f"Bearer {other}")   # another tenant's: 404
    _compare(a, b, url, Authorization="Bearer rg_wrong")   # 401 invalid_token
    _compare(a, b, url, Authorization="Basic abc")         # 401 unauthenticated
    assert a.get(url, headers={"Authorization": "Basic abc"}).json()["error"]["code"] == \
        "unauthenticated"
    assert a.head(url).status_code == b.head(url).status_code  # HEAD: the framework's
    svc.close()
    plain.state.services.close()


def test_a_poll_survives_the_database_dropping_its_connections(postgres_url, tmp_path):
    """Read connections are not pinged before each poll (a round trip each); a poll that
    finds its connection killed (a PostgreSQL restart) is read again on a new one."""
    import psycopg

    from tests.fixtures_service import PG_ADMIN

    client, svc = in_process_api(
        embedded_settings(tmp_path, ROBUSTGATE_DATABASE_URL=postgres_url), "survivor")
    url = "/v1/certifications/none-yet"
    assert client.get(url).status_code == 404  # opens a pooled read connection
    database = postgres_url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        killed = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                               " WHERE datname = %s AND pid <> pg_backend_pid()",
                               (database,)).fetchone()[0]
    assert killed >= 1
    for _ in range(3):
        assert client.get(url).status_code == 404  # not a 500
    svc.close()


def _children(pid: int) -> list[int]:
    """The API processes uvicorn spawned."""
    return child_processes(pid, b"spawn_main")


def test_several_api_processes_share_the_port_and_one_leads_the_watchdog(tmp_path):
    """``serve --api-processes 2``: both answer, one holds the watchdog's lock, and a
    killed one is replaced while the other keeps answering."""
    import signal
    import time

    import httpx

    from service.serve import stop
    from tests.fixtures_service import start_server

    settings = embedded_settings(tmp_path, ROBUSTGATE_STALE_SECONDS="2")
    handle = start_server(settings, workers=0, serve_args=("--api-processes", "2"))
    try:
        token = handle.token("many")
        api = _children(handle.proc.pid)
        assert len(api) == 2, api
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=handle.url, headers=auth) as http:
            for _ in range(20):
                assert http.get("/v1/certifications/none").status_code == 404
        # One process takes the lock on its first watchdog round (every stale/4 s); the
        # other keeps trying and never gets it.
        deadline = time.monotonic() + 30
        while "leads (file lock" not in handle.log_path.read_text() and \
                time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2)  # several more rounds of both
        log = handle.log_path.read_text()
        assert log.count("leads (file lock") == 1, log[-2000:]
        os.kill(api[0], signal.SIGKILL)
        # New connections go to the survivor (a kept-alive one to the killed process would
        # just fail its next request: that is the client's to retry).
        for _ in range(20):
            with httpx.Client(base_url=handle.url, headers=auth) as http:
                assert http.get("/v1/certifications/none").status_code == 404
        deadline = time.monotonic() + 60
        while len(_children(handle.proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(_children(handle.proc.pid)) == 2  # the supervisor started another
    finally:
        stop([handle.proc])
