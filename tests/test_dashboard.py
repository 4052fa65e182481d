"""The web dashboard, the offline API docs and the shared badge, as people meet them.

A real ``robustgate serve`` (no worker: the test finishes jobs through the real job store, as
tests/test_report_service.py does) and headless Chromium through chromedriver, with every
non-loopback address sent to a dead proxy: the pages must work with nothing from outside.
Screenshots land in the test's tmp_path.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.client import Client
from service.db import Database
from service.demo import free_port
from service.jobstore import SqlJobStore
from service.serve import stop
from service.storage import BlobStore
from tests.fixtures_service import ServerHandle, embedded_settings, start_server
from tests.test_report_cli import certified_run
from tests.test_report_screenshot import ELEMENT, _wait_ready, chrome_capabilities

OFFLINE = ["--proxy-server=http://127.0.0.1:9"]  # loopback goes direct, anything else dies


class Browser:
    """W3C WebDriver over plain HTTP (the same protocol tests/test_report_screenshot.py uses)."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=120)
        caps = chrome_capabilities(*OFFLINE)
        response = self.http.post("/session", json={"capabilities": {"alwaysMatch": caps}})
        assert response.status_code == 200, response.text[:2000]
        self.session = response.json()["value"]["sessionId"]

    def do(self, method: str, path: str, body: dict | None = None):
        response = self.http.request(method, f"/session/{self.session}{path}", json=body)
        assert response.status_code == 200, response.text[:2000]
        return response.json()["value"]

    def go(self, url: str) -> None:
        self.do("POST", "/url", {"url": url})

    def js(self, script: str, *args):
        return self.do("POST", "/execute/sync", {"script": script, "args": list(args)})

    def find(self, css: str) -> str:
        return self.do("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def click(self, css: str) -> None:
        self.do("POST", f"/element/{self.find(css)}/click", {})

    def type(self, css: str, text: str) -> None:
        self.do("POST", f"/element/{self.find(css)}/value", {"text": text})

    def wait(self, script: str, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.js(script)
            if value:
                return value
            time.sleep(0.2)
        text = self.js("return document.body.innerText")[:1500]
        raise AssertionError(f"never true: {script}\n{text}")

    def url(self) -> str:
        return self.do("GET", "/url")

    def shot(self, path: Path) -> Path:
        import base64
        path.write_bytes(base64.b64decode(self.do("GET", "/screenshot")))
        return path

    def close(self) -> None:
        self.http.delete(f"/session/{self.session}")
        self.http.close()


@pytest.fixture
def chromium() -> Iterator[Browser]:
    driver = shutil.which("chromedriver")
    assert driver and shutil.which("chromium"), \
        "headless Chromium is missing: run `bash scripts/browser.sh`"
    port = free_port()
    proc = subprocess.Popen([driver, f"--port={port}"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        _wait_ready(f"http://127.0.0.1:{port}", proc)
        web = Browser(f"http://127.0.0.1:{port}")
        yield web
        web.close()
    finally:
        proc.terminate()
        proc.wait(timeout=15)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    handle = start_server(embedded_settings(tmp_path_factory.mktemp("dashboard")), workers=0)
    yield handle
    stop([handle.proc])


def _store(server: ServerHandle, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ROBUSTGATE_DATA_DIR", str(server.settings.data_dir))
    db = Database(server.settings.database_url)
    return db, SqlJobStore(db, BlobStore(server.settings.storage_dir))


def _finish(server: ServerHandle, job_id: str, card: dict, monkeypatch) -> None:
    db, store = _store(server, monkeypatch)
    try:
        assert store.claim(job_id) is not None
        store.succeed(job_id, card)
    finally:
        db.dispose()


def _worse(card: dict) -> dict:
    """Model "v2": lower robust accuracy at 0.1, so its required criterion fails."""
    worse = copy.deepcopy(card)
    worse["checks"]["adversarial"]["metrics"]["robust_accuracy@0.1"] = 0.3
    worse["metrics"]["adversarial.robust_accuracy@0.1"] = 0.3
    for point in worse["checks"]["adversarial"]["details"]["curves"]["linf"]:
        point["robust_accuracy"] = min(point["robust_accuracy"], 0.3 if point["eps"] >= 0.1
                                       else 0.6)
    for c in worse["criteria"]:
        if c["metric"] == "adversarial.robust_accuracy@0.1":
            c.update(value=0.3, margin=0.3 - c["threshold"], result="FAIL",
                     reason="0.3 >= 0.5 is false")
    worse["verdict"], worse["verdict_reasons"] = "FAIL", ["adversarial.robust_accuracy@0.1: "
                                                          "0.3 >= 0.5 is false"]
    return worse


def test_sign_in_list_open_compare_and_watch_progress(server, chromium, monkeypatch, tmp_path):
    token = server.token("dash-tenant")
    other = server.token("someone-else")
    run, card = certified_run(), copy.deepcopy(certified_run().card)
    with Client(server.url, token) as client:
        a = client.submit(run.model, run.eval_set, "demo-digits", seed=1)["id"]
        b = client.submit(run.model, run.eval_set, "demo-digits", seed=2)["id"]
        queued = client.submit(run.model, run.eval_set, "demo-digits", seed=3)["id"]
    with Client(server.url, other) as client:
        foreign = client.submit(run.model, run.eval_set, "demo-digits", seed=4)["id"]
    _finish(server, a, card, monkeypatch)
    _finish(server, b, _worse(card), monkeypatch)

    # Signed out, the dashboard asks for a token; a wrong one is refused with a reason.
    chromium.go(f"{server.url}/ui/")
    assert "/ui/signin" in chromium.url()
    chromium.type("#token", "rg_not-a-token")
    chromium.click("#signin")
    chromium.wait("return document.querySelector('#signin-error')")
    chromium.type("#token", token)
    chromium.click("#signin")
    chromium.wait("return location.pathname == '/ui/certifications'")
    shown = chromium.js("return [...document.querySelectorAll('#list tbody tr')]"
                        ".map(r => r.dataset.id)")
    assert set(shown) == {a, b, queued}       # the tenant's own, not the other tenant's
    assert foreign not in chromium.js("return document.body.innerHTML")
    chromium.shot(tmp_path / "list.png")

    # Filter by verdict, then search by id.
    chromium.go(f"{server.url}/ui/certifications?verdict=FAIL")
    assert chromium.js("return [...document.querySelectorAll('#list tbody tr')]"
                       ".map(r => r.dataset.id)") == [b]
    chromium.go(f"{server.url}/ui/certifications?q={a[:8]}")
    assert chromium.js("return document.querySelectorAll('#list tbody tr').length") == 1

    # Open one: verdict, tiles, plots, the adversarial examples drawn, per-class table.
    chromium.go(f"{server.url}/ui/certifications")
    chromium.click(f'tr[data-id="{a}"] a.open')
    chromium.wait(f"return location.pathname == '/ui/certifications/{a}'")
    page = chromium.js("""
        const imgs = [...document.querySelectorAll('img[data-example]')];
        return {verdict: document.querySelector('header.banner').dataset.verdict,
                tiles: document.querySelectorAll('.tile').length,
                plots: [...document.querySelectorAll('svg.plot')].map(s => s.dataset.plot),
                images: imgs.length,
                drawn: imgs.filter(i => i.complete && i.naturalWidth == 8).length,
                classes: document.querySelectorAll('tr[data-class]').length}""")
    assert page["verdict"] == card["verdict"] and page["tiles"] == len(card["criteria"]) + 1
    assert {"robust-accuracy", "reliability-diagram"} <= set(page["plots"])
    assert page["images"] == page["drawn"] > 0 and page["classes"] == 10
    chromium.shot(tmp_path / "certification.png")
    # Its downloads work with the cookie alone.
    assert chromium.js(f"""return fetch('/ui/certifications/{a}/files/adversarial.npz')
        .then(r => r.status)""") == 200

    # Compare A and B: the failing criterion is marked, its change coloured as worse.
    chromium.go(f"{server.url}/ui/certifications")
    chromium.click(f'tr[data-id="{a}"] input[type=checkbox]')
    chromium.click(f'tr[data-id="{b}"] input[type=checkbox]')
    chromium.click("#compare")
    chromium.wait("return location.pathname == '/ui/compare'")
    row = chromium.js("""const r = document.querySelector(
        'tr[data-metric="adversarial.robust_accuracy@0.1"]');
        return {cls: r.className, delta: r.querySelector('td:last-child').className,
                text: r.innerText}""")
    assert "changed" in row["cls"] and "delta-worse" in row["delta"] and "-0.55" in row["text"]
    assert chromium.js("return !!document.querySelector('svg[data-plot=compare-robust-accuracy]')")
    chromium.shot(tmp_path / "compare.png")

    # A running job: its page follows the progress by itself.
    chromium.go(f"{server.url}/ui/certifications/{queued}")
    assert chromium.js("return document.querySelector('#job').dataset.status") == "queued"
    db, store = _store(server, monkeypatch)
    try:
        assert store.claim(queued) is not None
        store.report_progress(queued, 0.4, "adversarial")
    finally:
        db.dispose()
    chromium.wait("return document.querySelector('#stage') && "
                  "document.querySelector('#stage').innerText == 'adversarial'", timeout=20)
    assert chromium.js("return document.querySelector('#progress').dataset.progress") == "40.0"
    chromium.shot(tmp_path / "progress.png")
    _finish_claimed(server, queued, card, monkeypatch)
    chromium.wait("return document.querySelector('header.banner')", timeout=20)

    # The standards catalogue.
    chromium.click('nav.top a[href="/ui/standards"]')
    chromium.wait("return document.querySelector('[data-standard=\"demo-digits\"]')")

    # Signing out forgets the token.
    chromium.click("#signout")
    chromium.wait("return location.pathname == '/ui/signin'")
    chromium.go(f"{server.url}/ui/certifications")
    assert "/ui/signin" in chromium.url()


def _finish_claimed(server: ServerHandle, job_id: str, card: dict, monkeypatch) -> None:
    db, store = _store(server, monkeypatch)
    try:
        store.succeed(job_id, card)
    finally:
        db.dispose()


def test_api_docs_render_offline_with_the_bearer_scheme(server, chromium, tmp_path):
    chromium.go(f"{server.url}/docs")
    title = chromium.wait("const t = document.querySelector('.swagger-ui .info .title');"
                          "return t && t.innerText")
    assert "Robustgate" in title
    # The bearer scheme is declared, so Swagger offers "Authorize" and locks the v1 calls.
    assert chromium.wait("return document.querySelector('.swagger-ui .btn.authorize')")
    assert chromium.js("return document.querySelectorAll('.opblock').length") > 20
    shot = chromium.shot(tmp_path / "docs.png")
    from PIL import Image
    assert len(Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 22)) > 50  # not blank
    chromium.go(f"{server.url}/redoc")
    assert "Robustgate" in chromium.wait(
        "const h = document.querySelector('.api-info h1, h1'); return h && h.innerText")
    chromium.shot(tmp_path / "redoc.png")
    spec = httpx.get(f"{server.url}/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert spec["paths"]["/v1/certifications"]["get"]["security"] == [{"bearerAuth": []}]
    assert spec["paths"]["/v1/keys"]["get"]["security"] == []


def test_shared_badge_is_public_unguessable_and_revocable(server, monkeypatch):
    token, bob = server.token("badge-tenant"), server.token("badge-bob")
    run = certified_run()
    auth = {"Authorization": f"Bearer {token}"}
    with Client(server.url, token) as client:
        job = client.submit(run.model, run.eval_set, "demo-digits", seed=11)["id"]
    share = f"{server.url}/v1/certifications/{job}/share"
    assert httpx.post(share, headers=auth).status_code == 409          # nothing to show yet
    assert httpx.post(share, headers={"Authorization": f"Bearer {bob}"}).status_code == 404
    assert httpx.post(share).status_code == 401
    _finish(server, job, copy.deepcopy(run.card), monkeypatch)
    made = httpx.post(share, headers=auth)
    assert made.status_code == 201
    url = made.json()["url"]
    assert url.startswith(f"{server.url}/badge/rgs_") and len(url.rsplit("/", 1)[1]) > 30
    badge = httpx.get(url)                                              # no token needed
    assert badge.status_code == 200 and badge.headers["content-type"].startswith("image/svg")
    assert f'data-verdict="{run.card["verdict"]}"' in badge.text
    assert "no-cache" in badge.headers["cache-control"]
    assert httpx.get(url.replace("rgs_", "rgs_x")).status_code == 404
    listed = httpx.get(f"{share}s", headers=auth).json()["items"]
    assert len(listed) == 1 and listed[0]["revoked_at"] is None and "url" not in listed[0]
    assert httpx.delete(share, headers=auth).status_code == 204
    gone = httpx.get(url)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
