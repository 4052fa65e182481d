"""Tokens over the API: the admin token written at `serve` start-up creates, lists and revokes
tenant tokens through /v1/tokens; names, last use and expiry; `token create` never silently
creates a database the server does not use."""

from __future__ import annotations

import stat
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from robustgate_client import ApiError, Client

from service.auth import authenticate, create_token
from service.db import Database
from tests.fixtures_service import clean_env


def _admin(server) -> str:
    path = server.settings.data_dir / "admin-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    return path.read_text().strip()


def test_admin_creates_lists_and_revokes_tenant_tokens(embedded_server):
    url = embedded_server.url
    with Client(url, _admin(embedded_server)) as admin:
        # A tenant of its own: the session's server is shared with other test files.
        tenant_name = f"tokens-{uuid.uuid4().hex[:8]}"
        made = admin.create_token(tenant_name, name="ci", expires_in_days=30)
        assert made["token"].startswith("rg_") and made["tenant"] == tenant_name
        assert made["name"] == "ci" and made["expires_at"] and not made["admin"]
        with Client(url, made["token"]) as tenant:
            assert tenant.list_certifications()["total"] == 0
            # A tenant token may not manage tokens.
            try:
                tenant.tokens()
                raise AssertionError("a tenant token listed tokens")
            except ApiError as exc:
                assert exc.status == 403 and exc.code == "admin_required"
        listed = {t["id"]: t for t in admin.tokens()}
        assert "token" not in listed[made["id"]]          # the secret is never listed
        assert listed[made["id"]]["last_used_at"] is not None
        assert any(t["admin"] for t in listed.values())
        admin.revoke_token(made["id"])
        with Client(url, made["token"]) as tenant:
            try:
                tenant.list_certifications()
                raise AssertionError("a revoked token still works")
            except ApiError as exc:
                assert exc.status == 401
        assert {t["id"]: t for t in admin.tokens()}[made["id"]]["revoked_at"] is not None
    bad = httpx.post(f"{url}/v1/tokens", json={"tenant": ""},
                     headers={"Authorization": f"Bearer {_admin(embedded_server)}"})
    assert bad.status_code == 422
    assert httpx.get(f"{url}/v1/tokens").status_code == 401


def test_expired_tokens_are_refused(embedded_server):
    db = Database(embedded_server.settings.database_url)
    try:
        with db.session() as s:
            old = create_token(s, "late", expires_at=datetime.now(UTC) - timedelta(seconds=1))
            fresh = create_token(s, "late", expires_at=datetime.now(UTC) + timedelta(days=1))
        with db.session() as s:
            assert authenticate(s, old) is None and authenticate(s, fresh) is not None
    finally:
        db.dispose()
    r = httpx.get(f"{embedded_server.url}/v1/certifications",
                  headers={"Authorization": f"Bearer {old}"})
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]


def test_cli_admin_token_and_missing_database(embedded_server, tmp_path):
    admin = embedded_server.cli("token", "create", "--admin", "--name", "ops").stdout.strip()
    with Client(embedded_server.url, admin) as rg:
        assert any(t["name"] == "ops" and t["admin"] for t in rg.tokens())
    env = clean_env() | {"ROBUSTGATE_DATA_DIR": str(tmp_path / "elsewhere")}
    cmd = [sys.executable, "-m", "service.cli", "token", "create", "--tenant", "x"]
    missing = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "no Robustgate database" in missing.stderr
    assert "--init" in missing.stderr and not (tmp_path / "elsewhere").exists()
    made = subprocess.run([*cmd, "--init"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert made.returncode == 0 and made.stdout.startswith("rg_"), made.stderr
