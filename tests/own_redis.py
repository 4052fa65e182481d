"""A private ``redis-server`` on a free loopback port that tests can kill and start again
(the shared Redis on :6379 is never touched)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from service.demo import free_port


class OwnRedis:
    """A private, non-persistent ``redis-server`` that can be killed and restarted in place."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self, timeout: float = 20.0) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        log = (self.folder / f"redis-{self.starts}.log").open("wb")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--dir", str(self.folder)],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.folder)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}:\n"
                                   f"{self.log_tail()}")
            try:
                client = redis.Redis.from_url(self.url, socket_timeout=1)
                try:
                    if client.ping():
                        return
                finally:
                    client.close()
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not answer within {timeout:.0f} s")
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def keys(self) -> list[bytes]:
        client = redis.Redis.from_url(self.url, socket_timeout=2)
        try:
            return client.keys("*")
        finally:
            client.close()

    def log_tail(self) -> str:
        log = self.folder / f"redis-{self.starts}.log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else ""



def started_own_redis(folder: Path) -> Iterator[OwnRedis]:
    """Start one (retrying when the free port was taken first); kill it at the end."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not on PATH")
    server = OwnRedis(folder)
    for attempt in (1, 2, 3):  # the free port can be taken before redis-server binds it
        try:
            server.start()
            break
        except RuntimeError:
            if attempt == 3 or "in use" not in server.log_tail():
                raise
            server.port = free_port()
            server.url = f"redis://127.0.0.1:{server.port}/0"
    try:
        yield server
    finally:
        server.kill()
