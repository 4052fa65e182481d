"""Status polling: how many ``GET /v1/certifications/{id}`` a real server answers, and how fast.

    OMP_NUM_THREADS=1 .venv/bin/python bench/polling.py                 # both databases
    OMP_NUM_THREADS=1 .venv/bin/python bench/polling.py --db sqlite --seconds 5 --api-processes 2

A real server (``robustgate serve --workers 0 --api-processes N``: the API alone; the queued
jobs stay queued) on loopback, on PostgreSQL (a database created here on 127.0.0.1:5432 and
dropped at the end) and on SQLite, once per ``--api-processes`` count (default 1 and 2).
``--jobs`` jobs of two tenants are submitted; then ``--concurrency`` keep-alive connections
each GET one job after another for ``--seconds``. The load comes from ``wrk`` (C, a Lua
script rotating jobs and tokens; ``apt-get install wrk``) when it is on PATH, else from
httpx in ``--procs`` Python processes (at most ``--requests``), which spends several times
the server's CPU per request on the same two cores and so measures mostly itself. Three
rounds per database:

* ``livez``: ``GET /livez`` (no token, no database): what the HTTP stack and this client
  manage on this machine at this moment, the ceiling for the two rounds below;
* ``plain``: every poll reads the full status (200 + body), as a naive client does;
* ``paced`` (wrk only): plain polls, each connection pausing between them so that about
  ``--rate`` polls/s are offered: the goal's latency is p99 at 1,000 polls/s, which a
  saturating round (the two above) cannot show, its queues being as long as the machine
  makes them;
* ``etag``: every poll sends ``If-None-Match`` with the ETag it last saw (as
  ``service.client.Client.get`` does; with wrk, the ETag read just before the round, since
  the queued jobs do not change); an unchanged status answers 304 with no body.

Printed per round: requests/s, p50 and p99 latency (ms), status codes, and the CPU time the
API processes and the database's backends spent per request (from /proc: it does not depend
on how loaded the machine is, so ``1000 / API CPU ms`` is what one dedicated API core serves);
then the issue's
baseline (#20: PostgreSQL 103 req/s, p50 187 ms, p99 480 ms; SQLite 274 req/s, on 2 loaded
cores) and the goal (1,000 polls/s, p99 < 50 ms). The client shares the machine's cores with
the server, so every figure is a lower bound on a dedicated server's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service.client import Client  # noqa: E402
from service.serve import stop  # noqa: E402
from tests.fixtures_service import PG_ADMIN, embedded_settings, start_server  # noqa: E402

BASELINE = {"postgresql": "103 req/s, p50 187 ms, p99 480 ms",
            "sqlite": "274 req/s"}
GOAL = "1,000 polls/s, p99 < 50 ms"


async def _poll_loop(url: str, targets: list[tuple[str, str]], concurrency: int,
                     seconds: float, max_requests: int, etag: bool
                     ) -> tuple[list[float], Counter, tuple[float, float]]:
    latencies: list[float] = []
    codes: Counter = Counter()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:
        deadline = time.perf_counter() + seconds
        sent = 0

        async def poller(i: int) -> None:
            nonlocal sent
            seen: dict[str, str] = {}
            k = i
            while time.perf_counter() < deadline and sent < max_requests:
                sent += 1
                token, path = targets[k % len(targets)]
                k += 1
                headers = {"Authorization": f"Bearer {token}"}
                if etag and path in seen:
                    headers["If-None-Match"] = seen[path]
                t0 = time.perf_counter()
                try:
                    r = await http.get(path, headers=headers)
                except httpx.HTTPError as exc:
                    codes[type(exc).__name__] += 1
                    continue
                latencies.append(time.perf_counter() - t0)
                codes[r.status_code] += 1
                if "etag" in r.headers:
                    seen[path] = r.headers["etag"]

        began = time.time()
        await asyncio.gather(*(poller(i) for i in range(concurrency)))
    return latencies, codes, (began, time.time())


def _client_proc(url, targets, concurrency, seconds, max_requests, etag, start_at, out) -> None:
    time.sleep(max(0.0, start_at - time.time()))  # all client processes start together
    out.put(asyncio.run(_poll_loop(url, targets, concurrency, seconds, max_requests, etag)))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the API processes ``--api-processes`` spawns)."""
    found, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        path = Path(f"/proc/{parent}/task/{parent}/children")
        try:
            kids = [int(k) for k in path.read_text().split()]
        except OSError:
            kids = []
        found += kids
        frontier += kids
    return found


_WRK_SCRIPT = """
local targets = {%(targets)s}
n, codes = 0, {}  -- globals: done() reads each thread's codes
function init(args) n, pause = tonumber(args[1]), tonumber(args[2]) end
function delay() return pause end
function request()
  n = n + 1
  local t = targets[(n %% #targets) + 1]
  local h = {["Authorization"] = "Bearer " .. t[2]}
  if t[3] ~= "" then h["If-None-Match"] = t[3] end
  return wrk.format("GET", t[1], h)
end
function response(status, headers, body) codes[status] = (codes[status] or 0) + 1 end
local threads = {}
function setup(thread) table.insert(threads, thread) end
function done(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(threads) do
    for code, count in pairs(thread:get("codes")) do merged[code] = (merged[code] or 0) + count end
  end
  local parts = {}
  for code, count in pairs(merged) do table.insert(parts, '"' .. code .. '":' .. count) end
  local e = summary.errors
  io.write(string.format('RESULT {"n":%%d,"us":%%d,"p50":%%d,"p99":%%d,"mean":%%f,'
    .. '"errors":%%d,"codes":{%%s}}\\n', summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency.mean,
    e.connect + e.read + e.write + e.timeout, table.concat(parts, ",")))
end
"""


def _lua(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def wrk_round(url: str, targets: list[tuple[str, str]], args: argparse.Namespace,
              etag: bool, folder: Path, pause_ms: int = 0) -> dict:
    """One round driven by wrk: its figures; the ETags are read just before.
    ``pause_ms``: each connection waits this long before its next request (a paced load)."""
    tags = {}
    if etag:
        with httpx.Client(base_url=url) as http:
            for token, path in targets:
                got = http.get(path, headers={"Authorization": f"Bearer {token}"})
                tags[path] = got.headers.get("etag", "")
    rows = ",".join(f"{{{_lua(path)},{_lua(token)},{_lua(tags.get(path, ''))}}}"
                    for token, path in targets)
    script = folder / "poll.lua"
    script.write_text(_WRK_SCRIPT % {"targets": rows})
    threads = max(1, min(2, args.concurrency))
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{args.concurrency}",
                          f"-d{max(1, round(args.seconds))}s", "--timeout", "30s",
                          "-s", str(script), url, "--", "0", str(pause_ms)],
                         capture_output=True, text=True,
                         timeout=args.seconds + 120)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{out.stdout}\n{out.stderr}")
    found = json.loads(line[len("RESULT "):])
    codes = Counter({int(k): v for k, v in found["codes"].items()})
    if found["errors"]:
        codes["socket errors"] = found["errors"]
    wall = found["us"] / 1e6
    return {"n": found["n"], "rps": found["n"] / wall if wall else 0.0,
                  "p50": found["p50"] / 1000, "p99": found["p99"] / 1000,
                  "mean": found["mean"] / 1000, "codes": dict(codes)}


def pg_backends(db_name: str | None) -> tuple[list[int], int]:
    """(backend pids of the database now, sessions it has had so far)."""
    if db_name is None:
        return [], 0
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s "
                            "AND pid <> pg_backend_pid()", (db_name,)).fetchall()
        sessions = conn.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s",
                                (db_name,)).fetchone()[0]
    return [r[0] for r in rows], int(sessions)


def run_round(url: str, targets: list[tuple[str, str]], args: argparse.Namespace,
              etag: bool, server_pid: int, db_name: str | None, folder: Path,
              pause_ms: int = 0) -> dict:
    backends, sessions0 = pg_backends(db_name)  # the pool's connections, from the warm-up
    api = process_tree(server_pid)
    api_cpu0 = sum(cpu_seconds(p) for p in api)
    db_cpu0 = sum(cpu_seconds(b) for b in backends)
    if args.client == "wrk":
        result = wrk_round(url, targets, args, etag, folder, pause_ms)
    else:
        result = _httpx_round(url, targets, args, etag)
    api_cpu = sum(cpu_seconds(p) for p in api) - api_cpu0
    db_cpu = sum(cpu_seconds(b) for b in backends) - db_cpu0
    # New database sessions during the round: a pool too small for the thread pool opens
    # (and forks a backend for) a connection per request beyond its size.
    sessions = pg_backends(db_name)[1] - sessions0
    n = result["n"]
    # CPU per poll does not depend on how loaded the machine is: it gives the capacity of
    # one dedicated core, whatever the neighbours did to the wall clock.
    return result | {"api_ms": 1000 * api_cpu / n if n else float("nan"),
                     "db_ms": 1000 * db_cpu / n if n else float("nan"),
                     "sessions": sessions}


def _httpx_round(url: str, targets: list[tuple[str, str]], args: argparse.Namespace,
                 etag: bool) -> dict:
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    per = max(1, args.concurrency // args.procs)
    start_at = time.time() + 0.5
    procs = [ctx.Process(target=_client_proc, args=(url, targets, per, args.seconds,
                                                     args.requests // args.procs, etag,
                                                     start_at, out))
             for _ in range(args.procs)]
    for p in procs:
        p.start()
    latencies: list[float] = []
    codes: Counter = Counter()
    spans = []
    for _ in procs:
        lat, c, span = out.get(timeout=args.seconds + 120)
        latencies += lat
        codes += c
        spans.append(span)
    for p in procs:
        p.join()
    latencies.sort()
    n = len(latencies)
    wall = max(s[1] for s in spans) - min(s[0] for s in spans)
    return {"n": n, "rps": n / wall if wall else 0.0,
            "p50": 1000 * latencies[n // 2] if n else float("nan"),
            "p99": 1000 * latencies[min(n - 1, int(n * 0.99))] if n else float("nan"),
            "mean": 1000 * statistics.fmean(latencies) if n else float("nan"),
            "codes": dict(codes)}


def _pause_for(rate: float, url: str, targets: list[tuple[str, str]],
               args: argparse.Namespace, folder: Path) -> int:
    """The pause (ms) after each answer that makes ``args.concurrency`` connections poll
    about ``rate`` times a second: a connection's period is its pause plus its latency, so
    the latency at about that rate is measured first, in a short paced round."""
    period = args.concurrency * 1000 / rate
    trial = argparse.Namespace(**{**vars(args), "seconds": max(2.0, args.seconds / 3)})
    pause = max(1, int(period))
    first = wrk_round(url, targets, trial, False, folder, pause)
    waited = args.concurrency * 1000 / max(first["rps"], 1.0) - pause  # all but the pause
    return max(1, round(period - waited))


def bench_database(kind: str, processes: int, args: argparse.Namespace,
                   folder: Path) -> list[dict]:
    env: dict[str, str] = {}
    db_name = None
    if kind == "postgresql":
        db_name = f"rg_poll_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{db_name}"')
        env["ROBUSTGATE_DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:5432/{db_name}"
    settings = embedded_settings(folder / f"{kind}-{processes}", **env)
    handle = start_server(settings, workers=0,
                          serve_args=("--api-processes", str(processes)))
    rows = []
    try:
        targets = []
        for t in range(2):
            token = handle.token(f"poll-{t}")
            with Client(handle.url, token) as client:
                for j in range(args.jobs // 2):
                    job = client.submit(ROOT / "examples/digits_cnn.onnx",
                                        ROOT / "examples/digits_eval.npz", "demo-digits",
                                        seed=100 * t + j)
                    targets.append((token, f"/v1/certifications/{job['id']}"))
        run_round(handle.url, targets, argparse.Namespace(**{**vars(args), "seconds": 1.0}),
                  False, handle.proc.pid, db_name, folder)  # warm-up: connections, threads
        # livez: the HTTP stack and this client alone (no auth, no database), the ceiling
        # any poll rate on this machine is measured against.
        rounds = [("livez", [("-", "/livez")], False, 0), ("plain", targets, False, 0),
                  ("etag", targets, True, 0)]
        if args.client == "wrk" and args.rate:
            # Paced: each connection pauses between polls so that about --rate polls/s are
            # offered: the latency at that rate, not at the machine's saturation.
            rounds.append(("paced", targets, False, 0))
        for mode, paths, etag, pause in rounds:
            if mode == "paced":
                pause = _pause_for(args.rate, handle.url, targets, args, folder)
            result = run_round(handle.url, paths, args, etag, handle.proc.pid, db_name,
                               folder, pause)
            result |= {"db": kind, "mode": mode, "processes": processes}
            rows.append(result)
            print(f"{kind:10s} x{processes} {result['mode']:5s}  {result['rps']:7.0f} req/s  "
                  f"p50 {result['p50']:6.1f} ms  p99 {result['p99']:6.1f} ms  "
                  f"API CPU {result['api_ms']:.2f} ms/poll (one core: "
                  f"{1000 / result['api_ms']:.0f} polls/s)  DB CPU {result['db_ms']:.2f} ms/poll"
                  f", {result['sessions']} new DB sessions"
                  f"  ({result['n']} requests, codes {result['codes']})", flush=True)
    finally:
        stop([handle.proc])
        if db_name:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("postgresql", "sqlite", "both"), default="both")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--procs", type=int, default=2,
                        help="client processes (httpx client only)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--requests", type=int, default=100_000,
                        help="at most this many requests a round (httpx client only)")
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--api-processes", default="1,2",
                        help="comma-separated API process counts to measure")
    parser.add_argument("--client", choices=("auto", "wrk", "httpx"), default="auto")
    parser.add_argument("--rate", type=float, default=1000,
                        help="polls/s offered in the paced round (wrk only; 0: no such round;"
                             " printed: the rate reached)")
    args = parser.parse_args()
    if args.client == "auto":
        args.client = "wrk" if shutil.which("wrk") else "httpx"
    elif args.client == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not on PATH (apt-get install wrk)")
    counts = [int(c) for c in args.api_processes.split(",") if c.strip()]
    kinds = ("postgresql", "sqlite") if args.db == "both" else (args.db,)
    print(f"client {args.client}, concurrency {args.concurrency}, {args.seconds:g} s per round,"
          f" {args.jobs} jobs of 2 tenants, {os.cpu_count()} cores shared by client, API and"
          f" database")
    with tempfile.TemporaryDirectory(prefix="rg-poll-") as tmp:
        rows = [r for kind in kinds for n in counts
                for r in bench_database(kind, n, args, Path(tmp))]
    print("\nissue #20 baseline (2 loaded cores): " +
          "; ".join(f"{k} {v}" for k, v in BASELINE.items()) + f".  Goal: {GOAL}.")
    for r in (r for r in rows if r["mode"] != "livez"):
        if r["mode"] == "paced":
            print(f"  {r['db']:10s} x{r['processes']} paced {r['rps']:7.0f} req/s, p99 "
                  f"{r['p99']:.1f} ms at that rate")
        else:  # saturating: the most this machine answers, p99 with queues at their worst
            print(f"  {r['db']:10s} x{r['processes']} {r['mode']:5s} {r['rps']:7.0f} req/s "
                  f"at most, p99 {r['p99']:.1f} ms at that rate")
    # Met when a round reached 1,000 polls/s (3% short for the paced one) with p99 < 50 ms:
    # at saturation the queues are longest, so a lower rate only shortens them.
    for key in sorted({(r["db"], r["processes"]) for r in rows}):
        met = any(r["p99"] < 50 and r["rps"] >= (970 if r["mode"] == "paced" else 1000)
                  for r in rows if (r["db"], r["processes"]) == key and r["mode"] != "livez")
        print(f"  {key[0]:10s} x{key[1]}: {'meets' if met else 'below'} the goal")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
