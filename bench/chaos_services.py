"""Processes the chaos bench owns and breaks: a private PostgreSQL cluster, the API and the
Celery workers, each startable, killable and restartable in place (the private Redis is the
tests' own, tests/own_redis.py).

PostgreSQL and Redis are private (a temporary folder, a free loopback port) because restarting
the machine's shared servers would hurt everyone else using them.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from service.config import Settings
from service.demo import free_port, wait_healthy
from service.serve import worker_command


def _wait(check, what: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{_tail(log)}")
        try:
            if check():
                return
        except Exception:  # not up yet
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up within {timeout:.0f} s:\n{_tail(log)}")
        time.sleep(0.1)


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else ""


def _kill(proc: subprocess.Popen | None, sig: int = signal.SIGKILL, grace: float = 20.0) -> None:
    """Send ``sig``; SIGKILL whatever is still there after ``grace`` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def postgres_binaries() -> Path | None:
    """The folder holding initdb and postgres (Debian keeps them off PATH), or None."""
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    found = shutil.which("initdb")
    return Path(bins[-1]) if bins else Path(found).parent if found else None


class PrivatePostgres:
    """``initdb`` into a temporary folder; ``restart`` is an immediate shutdown (no
    checkpoint, crash recovery at the next start), the way a crashed server comes back."""

    def __init__(self) -> None:
        self.bin = postgres_binaries()
        if self.bin is None:
            raise RuntimeError("PostgreSQL server binaries (initdb, postgres) not found")
        # A folder of its own directly under the temporary directory: when this runs as root
        # the server runs as postgres, which must reach it, and the folders above a test's
        # tmp_path are 0700 (pytest resets that mode whenever a session starts).
        folder = Path(tempfile.mkdtemp(prefix="rg-chaos-pg-"))
        self.folder = folder
        self.data = folder / "pgdata"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        # initdb refuses to run as root: run the server as the postgres user then.
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(folder, "postgres")
        subprocess.run([*self._as, str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust",
                        "-U", "postgres", "--no-sync", "-E", "UTF8"],
                       check=True, capture_output=True)

    def start(self, timeout: float = 60.0) -> None:
        self.starts += 1
        log = self.folder / f"postgres-{self.starts}.log"
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*self._as, str(self.bin / "postgres"), "-D", str(self.data), "-p",
                 str(self.port), "-k", str(self.folder), "-c", "listen_addresses=127.0.0.1",
                 "-c", "fsync=off", "-c", "max_connections=200"],
                stdout=out, stderr=subprocess.STDOUT)

        def ready() -> bool:
            with psycopg.connect(self.url, connect_timeout=2) as conn:
                return conn.execute("SELECT 1").fetchone() == (1,)

        _wait(ready, "postgres", self.proc, log, timeout)

    def crash(self) -> None:
        self._signal(signal.SIGQUIT)  # immediate shutdown: what a crash leaves behind

    def stop(self) -> None:
        """Fast shutdown, and the folder removed (its logs are copied to ``keep`` first)."""
        self._signal(signal.SIGINT)

    def remove(self, keep: Path | None = None) -> None:
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            for log in self.folder.glob("postgres-*.log"):
                shutil.copy(log, keep / log.name)
        shutil.rmtree(self.folder, ignore_errors=True)

    def _signal(self, sig: int) -> None:
        # The postmaster itself (runuser in between does not pass every signal on).
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, sig)
        except (OSError, ValueError, IndexError):
            pass
        if self.proc is not None:
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                _kill(self.proc)


class ApiProcess:
    """``robustgate serve --workers 0`` on a fixed port (the same one after a restart)."""

    def __init__(self, settings: Settings, env: dict[str, str]) -> None:
        self.settings, self.env = settings, env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self, timeout: float = 180.0) -> None:
        self.starts += 1
        self.log = self.settings.data_dir / f"api-{self.starts}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "service.cli", "serve", "--port", str(self.port),
                 "--workers", "0"], env=self.env, stdout=out, stderr=subprocess.STDOUT)
        wait_healthy(self.url, self.proc, timeout=timeout)

    def kill(self) -> None:
        _kill(self.proc)

    def stop(self) -> None:
        _kill(self.proc, signal.SIGTERM)


class Workers:
    """N Celery worker processes (solo pool: one job each), restartable one by one."""

    def __init__(self, settings: Settings, env: dict[str, str], count: int) -> None:
        self.settings = settings
        self.env = {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"} | env
        self.procs: list[subprocess.Popen | None] = [None] * count
        self.starts = [0] * count

    def start(self, i: int) -> None:
        self.starts[i] += 1
        log = self.settings.data_dir / f"worker{i}-{self.starts[i]}.log"
        with log.open("wb") as out:
            self.procs[i] = subprocess.Popen(worker_command(self.settings, name=f"chaos{i}"),
                                             env=self.env, stdout=out, stderr=subprocess.STDOUT)

    def kill(self, i: int) -> None:
        _kill(self.procs[i])

    def alive(self, i: int) -> bool:
        proc = self.procs[i]
        return proc is not None and proc.poll() is None

    def stop(self) -> None:
        for proc in self.procs:
            _kill(proc, signal.SIGTERM)
