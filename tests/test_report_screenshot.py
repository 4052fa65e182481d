"""The HTML report as a browser draws it: headless Chromium through chromedriver.

Chromium and chromedriver come from the Debian packages chromium / chromium-driver
(scripts/browser.sh, run by scripts/test). Without them this test fails rather than skips:
the report is meant for people. The W3C WebDriver protocol is plain HTTP, spoken here with
httpx: it gives each plot's box, and a screenshot of each plot element as drawn.
"""

from __future__ import annotations

import base64
import io
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from service.demo import free_port
from tests.test_report_cli import certified_run
from verifiers.report import render_html
from verifiers.report.style import verdict_colors

WIDTH, HEIGHT = 1200, 2000
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C element reference key


def _on_white(colour: str, opacity: float = 0.85) -> tuple[int, ...]:
    rgb = [int(colour.lstrip("#")[i:i + 2], 16) for i in (0, 2, 4)]
    return tuple(round(opacity * c + (1 - opacity) * 255) for c in rgb)


# What must be painted inside each plot: its signature colour (bars at 85% opacity).
SIGNATURE = {
    "robust-accuracy": [_on_white("#1f2328", 1.0)],           # the worst-case line
    "certified-vs-attacked": [_on_white("#009E73", 1.0)],     # certified bars
    "ood-confidence": [_on_white(c) for c in ("#0072B2", "#E69F00", "#D55E00")],
    "reliability-diagram": [_on_white("#0072B2")],            # accuracy bars
}


def chrome_capabilities(*extra_args: str) -> dict:
    """Headless Debian Chromium at the report's window size (shared by the browser tests)."""
    return {"browserName": "chrome", "goog:chromeOptions": {
        "binary": shutil.which("chromium") or "/usr/bin/chromium",
        "args": ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--force-device-scale-factor=1",
                 f"--window-size={WIDTH},{HEIGHT}", *extra_args]}}


class WebDriver:
    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=120)
        caps = chrome_capabilities()
        self.session = self._call("POST", "/session",
                                  {"capabilities": {"alwaysMatch": caps}})["sessionId"]

    def _call(self, method: str, path: str, body: dict | None = None):
        response = self.http.request(method, path, json=body)
        assert response.status_code == 200, response.text[:2000]
        return response.json()["value"]

    def do(self, method: str, path: str, body: dict | None = None):
        return self._call(method, f"/session/{self.session}{path}", body)

    def png(self, path: str) -> Image.Image:
        return Image.open(io.BytesIO(base64.b64decode(self.do("GET", path)))).convert("RGB")

    def close(self) -> None:
        self.http.delete(f"/session/{self.session}")
        self.http.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    driver = shutil.which("chromedriver")
    assert driver and shutil.which("chromium"), \
        "headless Chromium is missing: run `bash scripts/browser.sh`"
    for attempt in (1, 2, 3):  # the free port can be taken before chromedriver binds it
        port = free_port()
        proc = subprocess.Popen([driver, f"--port={port}"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(url, proc)
            break
        except AssertionError:
            exited = proc.poll() is not None  # e.g. the port was in use; else it hangs
            proc.terminate()
            proc.wait(timeout=15)
            if attempt == 3 or not exited:
                raise
    try:
        web = WebDriver(url)
        yield web
        web.close()
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"chromedriver exited with code {proc.returncode}"
        try:
            if httpx.get(f"{url}/status", timeout=2).json()["value"]["ready"]:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("chromedriver did not become ready")


def _count(image: Image.Image, colours: list[tuple[int, ...]], tol: int = 14) -> int:
    return sum(n for n, px in image.getcolors(maxcolors=1 << 22)
               if any(all(abs(a - b) <= tol for a, b in zip(px, c, strict=True))
                      for c in colours))


def test_chromium_draws_every_plot_of_the_report(browser, tmp_path):
    card = certified_run().card
    page = tmp_path / "report.html"
    page.write_text(render_html(card), encoding="utf-8")
    browser.do("POST", "/url", {"url": page.as_uri()})

    # The page as a person sees it: the verdict banner in its colour, not a blank page.
    shot = browser.png("/screenshot")
    shot.save(tmp_path / "report.png")
    assert shot.width == WIDTH and shot.height > HEIGHT * 0.8  # the viewport, less the chrome
    assert len(shot.getcolors(maxcolors=1 << 22)) > 500
    assert _count(shot, [_on_white(verdict_colors(card["verdict"])[0], 1.0)]) > 2000

    found = {}
    for ref in browser.do("POST", "/elements", {"using": "css selector", "value": "svg.plot"}):
        element = ref[ELEMENT]
        name = browser.do("GET", f"/element/{element}/attribute/data-plot")
        rect = browser.do("GET", f"/element/{element}/rect")
        image = browser.png(f"/element/{element}/screenshot")
        image.save(tmp_path / f"{name}.png")
        found[name] = (rect, image)
    expected = {"robust-accuracy", "ood-confidence", "reliability-diagram"}
    if "certified" in card["checks"]:
        expected.add("certified-vs-attacked")
    assert expected <= set(found)
    for name, (rect, image) in found.items():
        # Laid out at a readable size, and actually painted: ink, and the plot's own colours.
        assert rect["width"] >= 400 and rect["height"] >= 200, (name, rect)
        inked = sum(n for n, px in image.getcolors(maxcolors=1 << 22) if sum(px) < 3 * 235)
        assert inked > 0.03 * image.width * image.height, name
        assert _count(image, SIGNATURE[name]) > 300, f"{name}: its data is not drawn"
    # Two figures a row at this width: the first two share a top edge.
    tops = sorted(rect["y"] for rect, _ in found.values())
    assert tops[0] == tops[1]
