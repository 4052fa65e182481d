"""``robustgate demo``: the whole path on the embedded default, with nothing to install.

Starts the server and a worker on a free port with a private data folder, creates a token,
submits the example digits model and evaluation set, shows progress, prints the scorecard,
stops everything, and returns the verdict's exit code.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

import examples
from service.auth import create_token
from service.client import Client
from service.config import load_settings
from service.console import ProgressBar, emit_results, fail
from service.db import Database
from service.db.migrate import upgrade
from service.serve import stop

EXAMPLES = Path(examples.__file__).parent
DEMO_STANDARD = "demo-digits"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode} while starting")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the server did not become healthy within {timeout:.0f} s")


def run_demo(data_dir: Path | None) -> int:
    keep = data_dir is not None
    folder = Path(data_dir or tempfile.mkdtemp(prefix="robustgate-demo-")).resolve()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROBUSTGATE_")}
    settings = load_settings(env | {"ROBUSTGATE_DATA_DIR": str(folder)})
    upgrade(settings.database_url)
    db = Database(settings.database_url)
    with db.session() as s:
        token = create_token(s, "demo")
    db.dispose()

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    print(f"starting the embedded service on {url} (data in {folder})", file=sys.stderr)
    server = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--workers", "1"],
        env=env | settings.as_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_healthy(url, server)
        model, data = EXAMPLES / "digits_cnn.onnx", EXAMPLES / "digits_eval.npz"
        print(f"submitting {model.name} with {data.name} against {DEMO_STANDARD}",
              file=sys.stderr)
        with Client(url, token) as client:
            job = client.submit(model, data, DEMO_STANDARD)
            job = client.wait(job["id"], ProgressBar().update, timeout=900)
            if job["status"] != "succeeded":
                return fail(f"certification {job['status']}: {job.get('error')}")
            card = client.scorecard(job["id"])
        return emit_results(card, None, None)
    finally:
        stop([server])
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
