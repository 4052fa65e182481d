"""A worker's liveness file: touched while its consumer runs, read by a cheap health check.

The check (``python -m service.alive``) imports only the standard library: it must not load
the whole application (torch, onnxruntime, Celery) every time it runs. The file holds the
worker's hello (JSON: the one device it runs jobs on), which ``python -m service.alive --hello``
prints.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

PATH = Path(os.environ.get("ROBUSTGATE_WORKER_ALIVE_FILE", "/tmp/robustgate-worker-alive"))
EVERY_SECONDS = 15.0
STALE_SECONDS = 90.0


def start_touching(path: Path = PATH, every: float = EVERY_SECONDS,
                   hello: dict | None = None) -> threading.Thread:
    if hello is not None:
        path.write_text(json.dumps(hello, sort_keys=True) + "\n")

    def loop() -> None:
        while True:
            path.touch()
            time.sleep(every)

    thread = threading.Thread(target=loop, daemon=True, name="alive-file")
    thread.start()
    return thread


def is_alive(path: Path = PATH, stale: float = STALE_SECONDS) -> bool:
    try:
        return time.time() - path.stat().st_mtime <= stale
    except OSError:
        return False


def read_hello(path: Path = PATH) -> dict:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


if __name__ == "__main__":
    if "--hello" in sys.argv[1:]:
        print(json.dumps(read_hello(), sort_keys=True))
    sys.exit(0 if is_alive() else 1)
