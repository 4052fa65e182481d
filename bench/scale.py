"""Benchmark of the sharded job path at scale: worker throughput, per-shard queue overhead, and
a model of a 64-GPU fleet against the database and the broker.

Production shape: PostgreSQL (a database created here and dropped at the end) and Redis (db 5,
a queue name unique to this run), the real API server (``robustgate serve --workers 0``) and
real Celery worker processes started as ``service.serve.start_workers`` starts them. The model
is examples/digits_cnn.onnx on the first ``--samples`` points of examples/digits_eval.npz
against demo-digits (128 points: one attack shard per job).

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/scale.py
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/scale.py --jobs 8 --shard-seconds 30

What it measures, in one run:

1. Throughput: ``--jobs`` jobs submitted at once (one tenant, distinct seeds, so no submission
   reuses another's result) with 1 worker, then with 2 workers, each worker past its first job
   (a warm-up job per worker, not counted); jobs/minute from the database timestamps (first
   submission to last finish), the 2-worker/1-worker ratio, and both against the reference
   measured alongside: the same job run in this process with no queue.
2. Per-shard overhead: from ``certification_parts`` (created_at = a worker started the part,
   heartbeat_at of a done part = it finished) the hand-off gaps plan->shard and shard->finish,
   for jobs run alone on warm, idle workers (``--probes``) and under load; the fixed costs every
   shard pays again (spec + blobs, standard and eval-set parsing, ``verifiers.pipeline.restore``
   = model intake + context); the shard's bookkeeping transactions, counted on the real code
   path (workers.tasks run in-process through a counting proxy of SqlJobStore).
3. A fleet model: that transaction sequence replayed against PostgreSQL sequentially and from
   ``--threads`` threads (one job's row shared: the worst case, a big job across the fleet; and
   distinct jobs), Redis capacity (raw LPUSH+BRPOP pairs, and Celery send_task + kombu
   consume + ack), then for ``--gpu-workers`` workers and shards of ``--shard-seconds`` the load,
   the utilisation of each, and the shard duration below which each would saturate.

Everything (PostgreSQL, Redis, the server, the workers, this script) shares this machine's
cores, so every capacity here is a lower bound on a dedicated server's. The model therefore
prints two capacities: (a) the rates measured here, and (b) server CPU only, from the CPU time
this database's PostgreSQL backends and the Redis server spent per transaction / message (one
core each; no fsync, network or lock waits).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import redis
import torch
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.auth import create_token  # noqa: E402
from service.client import Client  # noqa: E402
from service.config import Settings  # noqa: E402
from service.db import Database  # noqa: E402
from service.db.engine import normalise_url  # noqa: E402
from service.db.migrate import upgrade  # noqa: E402
from service.jobstore import SqlJobStore  # noqa: E402
from service.serve import stop, worker_command  # noqa: E402
from service.signing import load_or_create_signer  # noqa: E402
from service.storage import BlobStore  # noqa: E402
from tests.fixtures_service import (  # noqa: E402
    PG_ADMIN,
    REDIS_URL,
    embedded_settings,
    start_server,
)
from verifiers import parse_standard  # noqa: E402
from verifiers.data import load_eval_set  # noqa: E402
from verifiers.run_plan import CertificationPlan, JobInputs  # noqa: E402
from workers import make_celery  # noqa: E402
from workers.app import ATTACK_SHARD_TASK, FINISH_TASK  # noqa: E402
from workers.tasks import (  # noqa: E402
    FINISH_PART,
    PREPARE_PART,
    PROGRESS_INTERVAL_S,
    Message,
    plan_job,
    run_attack_shard,
    run_finish,
)

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "examples" / "digits_cnn.onnx"
EVAL = ROOT / "examples" / "digits_eval.npz"
STANDARD = "demo-digits"
FINISHED = ("succeeded", "errored", "cancelled")
# JobStore calls that are more than one transaction (claim re-reads the job through spec()).
TX_PER_CALL = {"claim": 2}
BEATS = ("heartbeat", "beat_part")
PLAN_CALLS_AFTER_PREPARE = ("plan", "live_parts", "parts", "tenant_work")


# --- a JobStore that counts -------------------------------------------------------------

class CountingStore:
    """Proxy of SqlJobStore: records (phase, method, args, seconds) of every call; a call is
    one database transaction (see TX_PER_CALL)."""

    def __init__(self, inner: SqlJobStore) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self.phase = ""
        self.calls: list[tuple[str, str, tuple, float]] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                with self._lock:
                    self.calls.append((self.phase, name, args, time.perf_counter() - t0))

        return call

    def of(self, phase: str) -> list[tuple[str, tuple, float]]:
        return [(n, a, s) for p, n, a, s in self.calls if p == phase]


def tx_count(calls: list[tuple[str, tuple, float]], beats: bool = True) -> int:
    return sum(TX_PER_CALL.get(n, 1) for n, _, _ in calls if beats or n not in BEATS)


def run_in_process(store: CountingStore, job_id: str) -> dict[str, float]:
    """workers.tasks.run_job, with the phase of each call recorded; seconds per phase."""
    pending: list[Message] = []
    seconds: dict[str, float] = {}

    def dispatch(messages: list[Message], _priorities: Sequence[int]) -> None:
        pending.extend(messages)

    store.phase = "plan"
    t0 = time.perf_counter()
    plan_job(store, dispatch, job_id)
    seconds["plan"] = time.perf_counter() - t0
    while pending:
        name, args, _ = pending.pop(0)
        t0 = time.perf_counter()
        if name == ATTACK_SHARD_TASK:
            store.phase = "shard"
            run_attack_shard(store, dispatch, *args)
        elif name == FINISH_TASK:
            store.phase = "finish"
            run_finish(store, *args)
        seconds[store.phase] = seconds.get(store.phase, 0.0) + time.perf_counter() - t0
    return seconds


# --- service plumbing -------------------------------------------------------------------

def start_logged_workers(settings: Settings, count: int, log_dir: Path) -> list[subprocess.Popen]:
    """service.serve.start_workers, with each worker's output in a file instead of ours."""
    env = {"OMP_WAIT_POLICY": "PASSIVE"} | os.environ | settings.as_env()
    procs = []
    for i in range(count):
        log = (log_dir / f"worker{i}-{count}.log").open("wb")
        procs.append(subprocess.Popen(worker_command(settings, name=f"worker{i}"), env=env,
                                      stdout=log, stderr=subprocess.STDOUT))
    deadline = time.monotonic() + 90
    for i in range(count):  # consumers up ("ready."), so the warm-up starts on warm workers
        path = log_dir / f"worker{i}-{count}.log"
        while b"ready." not in path.read_bytes() and time.monotonic() < deadline:
            if procs[i].poll() is not None:
                raise RuntimeError(f"worker exited:\n{path.read_text()[-2000:]}")
            time.sleep(0.2)
    return procs


def subset(path: Path, n: int, folder: Path) -> Path:
    data = np.load(path)
    out = folder / f"eval{n}.npz"
    np.savez(out, x=data["x"][:n], y=data["y"][:n])
    return out


def wait_all(engine, ids: list[str], timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, status, error FROM certifications WHERE id = "
                                     "ANY(:ids)"), {"ids": ids}).all()
        if all(r.status in FINISHED for r in rows) and len(rows) == len(ids):
            bad = [f"{r.id}: {r.status} {r.error}" for r in rows if r.status != "succeeded"]
            if bad:
                raise RuntimeError("jobs did not succeed:\n" + "\n".join(bad))
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"jobs still running after {timeout:.0f} s")
        time.sleep(0.2)


def timelines(engine, ids: list[str]) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        jobs = {r.id: {"created": r.created_at, "started": r.started_at,
                       "finished": r.finished_at, "parts": {}}
                for r in conn.execute(text("SELECT id, created_at, started_at, finished_at "
                                           "FROM certifications WHERE id = ANY(:ids)"),
                                      {"ids": ids})}
        for r in conn.execute(text("SELECT job_id, part, created_at, heartbeat_at FROM "
                                   "certification_parts WHERE job_id = ANY(:ids)"),
                              {"ids": ids}):
            jobs[r.job_id]["parts"][r.part] = (r.created_at, r.heartbeat_at)
    return [jobs[i] for i in ids]


def gaps(job: dict[str, Any]) -> dict[str, list[float]]:
    """Seconds: submitted -> plan started; prepare done -> each shard started; last shard
    done -> finish started."""
    parts = job["parts"]
    shards = {k: v for k, v in parts.items() if k.startswith("attack-")}
    prep_done = parts[PREPARE_PART][1]
    last_done = max(done for _, done in shards.values())
    return {"submit->plan": [(job["started"] - job["created"]).total_seconds()],
            "plan->shard": [(start - prep_done).total_seconds() for start, _ in shards.values()],
            "shard->finish": [(parts[FINISH_PART][0] - last_done).total_seconds()]}


def submit(client: Client, data: Path, seeds) -> list[str]:
    return [client.submit(MODEL, data, STANDARD, seed=s)["id"] for s in seeds]


def purge_queues(r: redis.Redis, queue: str) -> None:
    for pattern in (f"{queue}*", f"_kombu.binding.{queue}*",
                    f"_kombu.binding_permanent.{queue}*"):
        for key in r.scan_iter(pattern):
            r.delete(key)


# --- micro-benchmarks ---------------------------------------------------------------------

def replay(store: SqlJobStore, calls: list[tuple[str, tuple]], job_id: str, part: str,
           real_job: str, real_part: str) -> int:
    """The recorded calls of one shard on ``job_id``/``part``, plus one beat; transactions."""
    for name, args in calls:
        args = tuple(job_id if a == real_job else part if a == real_part else a for a in args)
        getattr(store, name)(*args)
    store.beat_part(job_id, part)
    return sum(TX_PER_CALL.get(n, 1) for n, _ in calls) + 1


def db_rate(store: SqlJobStore, calls, job_ids: list[str], real: tuple[str, str], threads: int,
            seconds: float) -> tuple[float, float]:
    """(transactions/s, shard bookkeeping sets/s) over ``threads`` threads for ``seconds``."""
    totals = [0] * threads
    sets = [0] * threads
    t_end = time.perf_counter() + seconds
    tag = uuid.uuid4().hex[:6]

    def loop(i: int) -> None:
        n = 0
        while time.perf_counter() < t_end:
            totals[i] += replay(store, calls, job_ids[i % len(job_ids)],
                                f"zb-{tag}-{i}-{n}", *real)
            n += 1
        sets[i] = n

    t0 = time.perf_counter()
    _run_threads(loop, threads)
    elapsed = time.perf_counter() - t0
    return sum(totals) / elapsed, sum(sets) / elapsed


def _run_threads(loop: Callable[[int], None], threads: int) -> None:
    """``loop(i)`` for i in range(threads), each in its own thread; returns when all end."""
    pool = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


def redis_pairs(url: str, key: str, n: int, threads: int) -> float:
    """LPUSH+BRPOP pairs per second over ``threads`` clients (one key each)."""
    per = max(1, n // threads)

    def loop(i: int) -> None:
        r = redis.Redis.from_url(url)
        k = f"{key}-{i}"
        for _ in range(per):
            r.lpush(k, b"x" * 1024)
            r.brpop(k, timeout=5)
        r.delete(k)
        r.close()

    t0 = time.perf_counter()
    _run_threads(loop, threads)
    return per * threads / (time.perf_counter() - t0)


def celery_messages(settings: Settings, queue: str, n: int, threads: int) -> float:
    """Full message cycles per second: Celery send_task (the shard message, as the service
    sends it) then a kombu consume and ack of it, over ``threads`` clients (one queue each)."""
    app = make_celery(settings.broker_url, settings.queue, settings.broker_dir,
                      settings.gpu_queue)
    per = max(1, n // threads)
    errors: list[BaseException] = []

    def loop(i: int) -> None:
        q = f"{queue}-{i}"
        try:
            with app.connection_for_write() as conn, conn.SimpleQueue(q) as sq:
                for k in range(per):
                    app.send_task(ATTACK_SHARD_TASK, args=(str(uuid.uuid4()), f"attack-{k}"),
                                  queue=q, priority=0, task_id=str(uuid.uuid4()))
                    sq.get(block=True, timeout=10).ack()
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    t0 = time.perf_counter()
    _run_threads(loop, threads)
    elapsed = time.perf_counter() - t0
    app.close()
    if errors:
        raise errors[0]
    return per * threads / elapsed


def _ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # gone, or not ours to read
        return 0
    return int(fields[11]) + int(fields[12])  # utime + stime


def pg_backend_ticks(db_name: str) -> dict[int, int]:
    """CPU ticks so far of every PostgreSQL backend connected to ``db_name``."""
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        pids = [row[0] for row in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (db_name,))]
    return {pid: _ticks(pid) for pid in pids}


def redis_cpu(r: redis.Redis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


class ServerCpu:
    """CPU seconds spent meanwhile by this database's PostgreSQL backends, by the Redis server
    (all its clients: other users of it inflate this), and by this process."""

    def __init__(self, db_name: str, r: redis.Redis) -> None:
        self.db_name, self.r = db_name, r

    def __enter__(self) -> ServerCpu:
        self._pg, self._redis = pg_backend_ticks(self.db_name), redis_cpu(self.r)
        self._me = time.process_time()
        return self

    def __exit__(self, *_exc: object) -> None:
        after = pg_backend_ticks(self.db_name)
        hz = os.sysconf("SC_CLK_TCK")
        self.pg = sum(t - self._pg.get(pid, 0) for pid, t in after.items()) / hz
        self.redis = redis_cpu(self.r) - self._redis
        self.me = time.process_time() - self._me


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def fmt(values: list[float]) -> str:
    return (f"mean {statistics.fmean(values) * 1e3:7.1f} ms  max {max(values) * 1e3:7.1f} ms"
            f"  (n={len(values)})")


# --- the run ------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4, help="jobs per worker count")
    parser.add_argument("--samples", type=int, default=128, help="eval points per job")
    parser.add_argument("--probes", type=int, default=2,
                        help="jobs run alone per worker count, for the idle hand-off gaps")
    parser.add_argument("--shard-seconds", type=float, default=60.0,
                        help="modelled duration of one attack shard on a GPU")
    parser.add_argument("--gpu-workers", type=int, default=64)
    parser.add_argument("--shards-per-job", type=int, default=1,
                        help="modelled shards per job: the plan and finish tasks' costs are "
                             "spread over them (1: every shard is a whole job, the worst case)")
    parser.add_argument("--heartbeat-seconds", type=float, default=10.0,
                        help="modelled beat interval (the service default)")
    parser.add_argument("--threads", type=int, default=8, help="concurrent DB/Redis clients")
    parser.add_argument("--db-seconds", type=float, default=3.0, help="per DB rate measurement")
    parser.add_argument("--redis-pairs", type=int, default=2000)
    parser.add_argument("--messages", type=int, default=400, help="Celery message cycles")
    args = parser.parse_args()

    t_start = time.perf_counter()
    run_id = uuid.uuid4().hex[:8]
    db_name = f"rg_bench_{run_id}"
    queue = f"rg-bench-{run_id}"
    broker = f"{REDIS_URL}/5"
    folder = Path(tempfile.mkdtemp(prefix="rg-scale-"))
    procs: list[subprocess.Popen] = []
    server = None
    r = redis.Redis.from_url(broker)
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db_name}"')
    db_url = f"postgresql://postgres@127.0.0.1:5432/{db_name}"
    try:
        settings = embedded_settings(folder / "data", ROBUSTGATE_DATABASE_URL=db_url,
                                     ROBUSTGATE_BROKER_URL=broker, ROBUSTGATE_QUEUE=queue)
        upgrade(settings.database_url)
        db = Database(settings.database_url)
        engine = create_engine(normalise_url(db_url))
        with db.session() as s:
            token = create_token(s, "bench")
        data = subset(EVAL, args.samples, folder)
        server = start_server(settings, workers=0)  # API + watchdog; workers started below
        print(f"torch={torch.__version__} threads={torch.get_num_threads()} "
              f"cpus={os.cpu_count()} load average={os.getloadavg()[0]:.2f} "
              f"samples/job={args.samples} jobs={args.jobs} "
              f"PostgreSQL db={db_name} Redis {broker} queue={queue}")

        # -- fixed per-shard costs, in this process (also warms torch up) ------------------
        model_bytes, data_bytes = MODEL.read_bytes(), data.read_bytes()
        standard_doc = (ROOT / "standards" / f"{STANDARD}.yaml").read_text()
        standard, eval_set = parse_standard(standard_doc), load_eval_set(data_bytes)
        inputs = JobInputs(model_bytes, eval_set, standard, seed=0)
        prepared = CertificationPlan(inputs).prepare()
        t_inputs = median_time(lambda: (parse_standard(standard_doc),
                                        load_eval_set(data_bytes)), 5)
        # A fresh plan each time, as in a shard's task: intake and the context, not cached.
        t_restore = median_time(lambda: CertificationPlan(inputs).context(prepared), 5)

        # -- reference: one job in this process, no queue, every store call counted --------
        client = Client(server.url, token)
        signer = load_or_create_signer(settings.data_dir)
        sql_store = SqlJobStore(db, BlobStore(settings.storage_dir), signer)
        store = CountingStore(sql_store)
        ref_id = submit(client, data, [1])[0]
        t0 = time.perf_counter()
        phase_s = run_in_process(store, ref_id)
        ref_s = time.perf_counter() - t0
        purge_queues(r, queue)  # its certify message: no worker is to see it
        shard_calls = store.of("shard")
        by_name: dict[str, list[float]] = defaultdict(list)
        for _, name, _, sec in store.calls:
            by_name[name].append(sec)
        mean_s = {k: statistics.fmean(v) for k, v in by_name.items()}

        # -- 1. throughput ----------------------------------------------------------------
        results: dict[int, dict[str, Any]] = {}
        for n_workers in (1, 2):
            procs = start_logged_workers(settings, n_workers, folder)
            seeds = iter(range(10_000 * n_workers, 10_000 * (n_workers + 1)))
            # One job per worker first, so that no figure below has a worker's first task in it.
            wait_all(engine, submit(client, data, [next(seeds) for _ in range(n_workers)]))
            ids = submit(client, data, [next(seeds) for _ in range(args.jobs)])
            wait_all(engine, ids)
            probes = []  # then jobs alone, one after another: every hand-off to an idle worker
            for _ in range(args.probes):
                probes += submit(client, data, [next(seeds)])
                wait_all(engine, probes[-1:])
            stop(procs)
            procs = []
            lines = timelines(engine, ids)
            span = (max(j["finished"] for j in lines)
                    - min(j["created"] for j in lines)).total_seconds()
            results[n_workers] = {"span": span, "per_min": 60 * args.jobs / span,
                                  "idle": [gaps(j) for j in timelines(engine, probes)],
                                  "load": [gaps(j) for j in lines],
                                  "job_s": [(j["finished"] - j["started"]).total_seconds()
                                            for j in lines]}
        client.close()
        stop([server.proc])
        server = None

        ref_per_min = 60 / ref_s
        print("\n== 1. throughput (PostgreSQL + Redis, jobs submitted at once) ==")
        print(f"{'setup':<28}{'jobs':>6}{'seconds':>10}{'jobs/min':>10}{'x_1worker':>11}"
              f"{'x_inproc':>10}")
        print(f"{'in-process, no queue (ref)':<28}{1:>6}{ref_s:>10.2f}{ref_per_min:>10.2f}"
              f"{ref_per_min / results[1]['per_min']:>11.2f}{1.0:>10.2f}")
        for n in (1, 2):
            res = results[n]
            print(f"{f'{n} worker' + ('s' if n > 1 else ''):<28}{args.jobs:>6}"
                  f"{res['span']:>10.2f}{res['per_min']:>10.2f}"
                  f"{res['per_min'] / results[1]['per_min']:>11.2f}"
                  f"{res['per_min'] / ref_per_min:>10.2f}")
        ratio = results[2]["per_min"] / results[1]["per_min"]
        print(f"2-worker/1-worker = {ratio:.2f}: on {os.cpu_count()} cores shared by both "
              f"workers (torch uses {torch.get_num_threads()} threads each), the API, "
              "PostgreSQL, Redis and anything else running (load average now "
              f"{os.getloadavg()[0]:.2f}), < 2 is expected: CPU-bound shards scale with "
              "devices (cores, GPUs), not with worker processes.")
        print(f"in-process phases: plan {phase_s['plan']:.2f} s, shard {phase_s['shard']:.2f} s,"
              f" finish {phase_s['finish']:.2f} s; job run time under load with 1 worker "
              f"{statistics.fmean(results[1]['job_s']):.2f} s, 2 workers "
              f"{statistics.fmean(results[2]['job_s']):.2f} s (mean, claim -> finish)")

        # -- 2. per-shard overhead --------------------------------------------------------
        print("\n== 2. per-shard overhead ==")
        print("hand-off gaps from certification_parts (idle: jobs run alone on warm workers; "
              "under load: the jobs above, queued behind each other):")
        for n in (1, 2):
            for key in ("submit->plan", "plan->shard", "shard->finish"):
                idle = [v for g in results[n]["idle"] for v in g[key]]
                under = [v for g in results[n]["load"] for v in g[key]]
                print(f"  {n} worker{'s' if n > 1 else ' '} {key:<14} idle {fmt(idle)}")
                print(f"  {'':<24}under load {fmt(under)}")
        plan_db = sum(mean_s.get(k, 0.0) for k in PLAN_CALLS_AFTER_PREPARE)
        pickup_db = mean_s.get("spec", 0.0) + mean_s.get("start_part", 0.0)
        idle_gap = statistics.fmean(v for n in (1, 2) for g in results[n]["idle"]
                                    for v in g["plan->shard"])
        print(f"  of the idle plan->shard gap ({idle_gap * 1e3:.1f} ms, mean of all above): "
              f"{plan_db * 1e3:.1f} ms the plan's bookkeeping after prepare "
              f"({'+'.join(PLAN_CALLS_AFTER_PREPARE)}), {pickup_db * 1e3:.1f} ms the shard's "
              f"spec()+start_part(); the rest, {(idle_gap - plan_db - pickup_db) * 1e3:.1f} ms,"
              " is Celery publish + Redis + worker pickup")
        print("fixed costs every shard pays again (in-process, median of 5):")
        print(f"  spec() (1 tx + model and data blobs)    {mean_s.get('spec', 0) * 1e3:8.1f} ms")
        print(f"  parse standard + load eval set          {t_inputs * 1e3:8.1f} ms")
        print(f"  plan.context(prepared) (intake+ctx)     {t_restore * 1e3:8.1f} ms")
        shard_db_s = sum(s for _, _, s in shard_calls)
        print(f"DB transactions of one shard on the real path (beats excluded: "
              f"1 per {args.heartbeat_seconds:g} s): {tx_count(shard_calls, beats=False)}  "
              f"[{', '.join(f'{k} x{v}' for k, v in Counter(n for n, _, _ in shard_calls).items())}"
              f"]  taking {shard_db_s * 1e3:.1f} ms in all")
        per_phase = {p: tx_count(store.of(p), beats=False) for p in ("plan", "shard", "finish")}
        print(f"DB transactions per job: plan {per_phase['plan']}, shard {per_phase['shard']} "
              f"(the last shard also sends finish: live_parts+parts+tenant_work), finish "
              f"{per_phase['finish']}; progress writes are throttled to one per "
              f"{PROGRESS_INTERVAL_S:g} s and cancel checks to one per 1 s, per progress call "
              "(one per radius per 256-sample batch)")
        print("mean latency per call (sequential, this process): " + ", ".join(
            f"{k} {v * 1e3:.1f} ms" for k, v in sorted(mean_s.items())))

        # -- 3. capacity and the fleet model ---------------------------------------------
        with engine.begin() as conn:
            conn.execute(text("UPDATE certifications SET status = 'running', progress = 0, "
                              "cancel_requested = false"))
            job_ids = [row[0] for row in conn.execute(text("SELECT id FROM certifications"))]
        real_part = next(a[1] for n, a, _ in shard_calls if n == "start_part")
        recorded = [(n, a) for n, a, _ in shard_calls if n not in BEATS]
        real = (ref_id, real_part)
        db_runs = {}
        for label, threads, jobs in (("sequential", 1, [ref_id]),
                                     (f"{args.threads} threads, same job", args.threads, [ref_id]),
                                     (f"{args.threads} threads, "
                                      f"{min(args.threads, len(job_ids))} jobs", args.threads,
                                      job_ids)):
            with ServerCpu(db_name, r) as cpu:
                tx_s, sets_s = db_rate(sql_store, recorded, jobs, real, threads, args.db_seconds)
            db_runs[label] = (tx_s, sets_s, cpu)
        key = f"{queue}-pairs"
        with ServerCpu(db_name, r) as pairs_cpu:
            pairs_seq = redis_pairs(broker, key, args.redis_pairs, 1)
        pairs_par = redis_pairs(broker, key, args.redis_pairs, args.threads)
        n_seq = max(1, args.messages // 2)
        with ServerCpu(db_name, r) as msg_cpu:
            msg_seq = celery_messages(settings, f"{queue}-msg", n_seq, 1)
        msg_par = celery_messages(settings, f"{queue}-msg", args.messages, args.threads)

        print("\n== 3a. capacity (all on this machine: lower bounds) ==")
        per_set = len(recorded) + 1
        print(f"PostgreSQL, one shard's bookkeeping replayed ({per_set} tx: the recorded shard "
              "calls + 1 beat):")
        seq_tx = db_runs["sequential"][0]
        print(f"{'':<28}{'tx/s':>8}{'sets/s':>8}{'x_seq':>7}{'PG CPU/tx':>11}"
              f"{'client CPU/tx':>15}")
        for label, (tx_s, sets_s, cpu) in db_runs.items():
            n_tx = tx_s * args.db_seconds
            print(f"  {label:<26}{tx_s:>8.0f}{sets_s:>8.1f}{tx_s / seq_tx:>7.2f}"
                  f"{cpu.pg / n_tx * 1e3:>8.2f} ms{cpu.me / n_tx * 1e3:>12.2f} ms")
        pg_cpu_tx = min(cpu.pg / (tx_s * args.db_seconds)
                        for tx_s, _, cpu in db_runs.values() if cpu.pg > 0) \
            if any(cpu.pg > 0 for *_, cpu in db_runs.values()) else float("nan")
        print(f"  one PostgreSQL core at {pg_cpu_tx * 1e3:.2f} ms CPU/tx (the least above) "
              f"serves ~{1 / pg_cpu_tx:.0f} tx/s: the rates measured here are bound by this "
              "Python client (SQLAlchemy ORM, one process, the GIL) on the same cores, not by "
              "the server; WAL fsync per commit (fsync on) is not in that CPU figure")
        print("Redis:")
        print(f"  LPUSH+BRPOP pairs, 1 client            {pairs_seq:8.0f} /s")
        print(f"  LPUSH+BRPOP pairs, {args.threads} clients          {pairs_par:8.0f} /s  "
              f"x_seq {pairs_par / pairs_seq:.2f}")
        print(f"  send_task + consume + ack, 1 client    {msg_seq:8.0f} msg/s  "
              f"x_pairs {msg_seq / pairs_seq:.2f}")
        redis_cpu_msg = max(msg_cpu.redis, 1e-6) / n_seq
        print(f"  Redis server CPU: {pairs_cpu.redis / args.redis_pairs * 1e6:.0f} us per pair, "
              f"{redis_cpu_msg * 1e6:.0f} us per Celery message cycle (its other clients "
              f"included, so an upper bound): one Redis core serves ~{1 / redis_cpu_msg:.0f} "
              "msg/s")
        print(f"  send_task + consume + ack, {args.threads} clients  {msg_par:8.0f} msg/s")

        g, t, hb, s_job = (args.gpu_workers, args.shard_seconds, args.heartbeat_seconds,
                           args.shards_per_job)
        db_cap = min(tx_s for label, (tx_s, _, _) in db_runs.items() if label != "sequential")
        broker_cap = max(msg_seq, msg_par)
        fixed_tx = (per_phase["shard"]
                    + (per_phase["plan"] + per_phase["finish"]) / s_job)  # per shard, no beats
        msgs = 1 + 2 / s_job  # the shard's message, plus the job's certify and finish
        beat_rate = g / hb    # every busy worker beats its part, whatever T is

        def db_load(t_s: float) -> float:
            return g / t_s * fixed_tx + beat_rate

        def broker_load(t_s: float) -> float:
            return g / t_s * msgs

        def saturation(db_c: float, broker_c: float) -> tuple[float, float]:
            t_db = g * fixed_tx / (db_c - beat_rate) if db_c > beat_rate else float("inf")
            return t_db, g * msgs / broker_c

        t_db, t_broker = saturation(db_cap, broker_cap)
        core_db, core_broker = 1 / pg_cpu_tx, 1 / redis_cpu_msg
        t_db_core, t_broker_core = saturation(core_db, core_broker)
        print(f"\n== 3b. model: {g} GPU workers, shards of T = {t:g} s ==")
        print("assumptions: every worker always busy on one shard; per shard "
              f"{fixed_tx:.1f} DB transactions (the measured shard path, plus the plan and "
              f"finish tasks' {per_phase['plan']}+{per_phase['finish']} spread over "
              f"{s_job} shard(s) per job) + one beat per {hb:g} s per worker; {msgs:.0f} broker "
              "message(s) per shard (shard, plus certify and finish per job); capacity "
              f"(a) measured here: DB = the lower {args.threads}-thread rate ({db_cap:.0f} tx/s),"
              f" broker = the higher Celery message rate ({broker_cap:.0f} msg/s), both bound "
              "by one Python client on this shared 2-core machine; (b) server CPU only: one "
              f"PostgreSQL core ({core_db:.0f} tx/s) and one Redis core ({core_broker:.0f} "
              "msg/s), no fsync, network or lock waits; not counted: API status polling, the "
              "watchdog's sweeps, idle workers' 1 s BRPOP polls.")
        print(f"{'T (s)':>8}{'shards/s':>10}{'DB tx/s':>10}{'DB util a':>11}{'DB util b':>11}"
              f"{'msg/s':>8}{'broker a':>10}{'broker b':>10}{'overhead/T':>12}")
        per_shard_fixed = idle_gap + mean_s.get("spec", 0.0) + t_inputs + t_restore
        for t_s in sorted({1.0, 5.0, 15.0, 60.0, 300.0, t}):
            print(f"{t_s:>8g}{g / t_s:>10.2f}{db_load(t_s):>10.1f}"
                  f"{db_load(t_s) / db_cap:>11.1%}{db_load(t_s) / core_db:>11.1%}"
                  f"{broker_load(t_s):>8.2f}{broker_load(t_s) / broker_cap:>10.2%}"
                  f"{broker_load(t_s) / core_broker:>10.2%}{per_shard_fixed / t_s:>12.2%}")
        print(f"saturation (a): the database at T < {t_db:.2f} s, the broker at T < "
              f"{t_broker:.3f} s; (b): the database at T < {t_db_core:.2f} s, the broker at "
              f"T < {t_broker_core:.3f} s; the heartbeats alone load the database "
              f"{beat_rate / db_cap:.1%} (a) at any T")
        first, t_first, other, t_other = (("database", t_db, "broker", t_broker)
                                          if t_db >= t_broker else
                                          ("broker", t_broker, "database", t_db))
        first_b = "database" if t_db_core >= t_broker_core else "broker"
        print(f"conclusion: with {g} GPU workers the {first} becomes the bottleneck first, "
              f"once shards are shorter than ~{t_first:.1f} s on this machine's figures "
              f"(~{max(t_db_core, t_broker_core):.1f} s with one dedicated {first_b} core; the "
              f"{other} only at ~{t_other:.2f} s); at T = {t:g} s the database is at "
              f"{db_load(t) / db_cap:.1%} and the broker at {broker_load(t) / broker_cap:.2%} of "
              f"capacity, and each shard spends ~{per_shard_fixed * 1e3:.0f} ms "
              f"({per_shard_fixed / t:.2%} of T) on hand-off and restore.")
        engine.dispose()
        db.dispose()
    finally:
        stop(procs)
        if server is not None:
            stop([server.proc])
        purge_queues(r, queue)
        r.close()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
