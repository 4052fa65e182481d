"""Chaos on the production shape: jobs of two tenants under a seeded schedule of faults.

    OMP_NUM_THREADS=1 .venv/bin/python bench/chaos.py                  # the long schedule
    OMP_NUM_THREADS=1 .venv/bin/python bench/chaos.py --short          # what CI runs
    OMP_NUM_THREADS=1 .venv/bin/python bench/chaos.py --seed 7 --jobs 16 --faults 12

The production shape on this machine: a private PostgreSQL cluster and a private Redis (both
in a temporary folder on free ports: restarting the shared servers would hurt other users),
the API (``robustgate serve --workers 0``) and two Celery workers started as processes this
script owns. Tenant "flood" submits most of the jobs at once (a flood of its queue), tenant
"quiet" submits a few right after. A schedule drawn from ``--seed`` then breaks things at
random stages of the jobs (each fault waits for a random job to reach a random progress):
kill -9 a worker (restarted 1-3 s later), kill -9 the API (restarted), restart Redis (empty:
every queued message is lost), crash and restart PostgreSQL (immediate shutdown, crash
recovery), cancel a random unfinished job.

At the end every job must be:
* ``succeeded`` with the verdict and criteria figures of an undisturbed run of the same
  inputs (computed in a separate process with ``verifiers.pipeline.certify``), or
* ``cancelled`` and cancelled by this script, or
* ``errored`` with a reason that belongs to the job (not a connection error, a broker or
  database outage, a lost message);
none still queued or running after ``--timeout`` s (stuck), none missing (lost). Printed:
the outcome per job, the faults as applied, each tenant's latency (submission to finish).
Exit status 0 when every job meets the above.
"""

from __future__ import annotations

import argparse
import io
import random
import re
import statistics
import sys
import tempfile
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.chaos_services import (  # noqa: E402
    ApiProcess,
    PrivatePostgres,
    Workers,
)
from service.client import FINISHED, Client, ClientError  # noqa: E402
from tests.fixtures_service import clean_env, embedded_settings  # noqa: E402
from tests.own_redis import OwnRedis  # noqa: E402

MODEL = ROOT / "examples/digits_cnn.onnx"
EVAL = ROOT / "examples/digits_eval.npz"
# Small on purpose: the schedule, not the science, is under test (a few PGD steps, 40 points).
STANDARD = """\
name: chaos-digits
version: 1
description: Small standard for the chaos bench (8x8 digits in [0, 1]); a few PGD steps.
input_domain: {low: 0.0, high: 1.0, units: pixel intensity}
threat_model:
  norm: linf
  eps: ["0.1"]
budget:
  pgd: {steps: 5, restarts: 1}
min_samples: 20
criteria:
  - {metric: clean.accuracy, op: ">=", threshold: 0.90, severity: required}
  - {metric: adversarial.robust_accuracy@0.1, op: ">=", threshold: 0.50, severity: required}
"""
# Seconds between two faults at least: time to break something, not only to restart.
FAULT_GAP_S = 2.0
FAULTS = ("kill-worker", "kill-api", "restart-redis", "restart-postgres", "cancel")
# Errors that say "the infrastructure failed", never "this job is wrong".
INFRA = re.compile(r"OperationalError|Connection ?refused|ConnectionError|connection (was )?"
                   r"(reset|closed|lost)|redis|broker|psycopg|server closed|gave up after|"
                   r"stopped beating|lost|timed? ?out", re.I)


@dataclass
class Job:
    id: str
    tenant: str
    seed: int
    submitted: float
    status: str = "queued"
    stage: str = "queued"
    progress: float = 0.0
    final: dict[str, Any] | None = None
    cancelled_by_us: bool = False
    deleted_by_us: bool = False
    seen_after_cancel: str | None = None  # the status polled right after a 202 cancel


@dataclass(frozen=True)
class Fault:
    job: int          # index of the job whose progress triggers it
    progress: float   # fires once that job has this much progress (or has finished)
    kind: str


@dataclass
class Plan:
    jobs_flood: int
    jobs_quiet: int
    samples: int
    faults: list[Fault]
    timeout: float


@dataclass
class Outcome:
    jobs: list[Job]
    applied: list[tuple[float, str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    references: dict[int, dict[str, Any]] = field(default_factory=dict)
    redis_url: str = ""
    database_url: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


def make_plan(seed: int, short: bool, jobs: int | None, faults: int | None,
              timeout: float | None) -> Plan:
    rng = random.Random(seed)
    if short:
        n_flood, n_quiet, n_faults = 4, 1, 5
    else:
        n_flood, n_quiet, n_faults = 12, 4, 16
    if jobs is not None:
        n_quiet = max(1, jobs // 4)
        n_flood = max(1, jobs - n_quiet)
    n_faults = n_faults if faults is None else faults
    # Every kind at least once (when there are enough faults), the rest drawn at random.
    kinds = list(FAULTS)[:n_faults] + [rng.choice(FAULTS) for _ in range(n_faults - len(FAULTS))]
    rng.shuffle(kinds)
    # Each fault waits for a random job to reach a random point of its progress: faults land
    # at random stages (queued, planning, attacking, aggregating), whatever the speed here.
    n_jobs = n_flood + n_quiet
    triggers = sorted((rng.randrange(n_jobs), round(rng.uniform(0.0, 0.95), 2))
                      for _ in kinds)
    triggers.sort(key=lambda t: t[1])
    faults = [Fault(j, p, k) for (j, p), k in zip(triggers, kinds, strict=True)]
    if short and "cancel" in kinds:
        # Few jobs finish fast: cancel first, the flood's last job while it waits in the
        # queue (the case that once stayed queued for ever).
        faults = [Fault(n_flood - 1, 0.0, "cancel")] + [f for f in faults if f.kind != "cancel"]
    return Plan(n_flood, n_quiet, 40, faults,
                timeout if timeout is not None else (420.0 if short else 1500.0))


def reference(seed: int, samples: int) -> dict[str, Any]:
    """Verdict and criteria of an undisturbed run (in this process, no queue)."""
    import torch

    from verifiers import load_eval_set, parse_standard
    from verifiers.pipeline import certify

    torch.set_num_threads(1)
    card = certify(MODEL.read_bytes(), load_eval_set(_subset(samples)), parse_standard(STANDARD),
                   seed=seed)
    return comparable(card)


def comparable(card: dict[str, Any]) -> dict[str, Any]:
    return {"verdict": card["verdict"],
            "criteria": [(c["metric"], c.get("value"), c["result"]) for c in card["criteria"]]}


def _subset(n: int) -> bytes:
    data = np.load(EVAL)
    out = io.BytesIO()
    np.savez(out, **{k: data[k][:n] for k in data.files})
    return out.getvalue()


def _retry(what: str, call, deadline: float):
    """An API call through faults: retried while the API, its database or broker is down."""
    while True:
        try:
            return call()
        except ClientError as exc:
            if exc.status is not None and exc.status < 500 and exc.status != 429:
                raise
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what}: no answer before the deadline ({exc})") from exc
            time.sleep(0.5)


class Chaos:
    def __init__(self, plan: Plan, folder: Path, seed: int, log=print) -> None:
        self.plan, self.folder, self.log = plan, folder, log
        self.rng = random.Random(seed + 1)
        self.pg = PrivatePostgres()
        self.redis = OwnRedis(folder)
        settings = embedded_settings(
            folder / "data", ROBUSTGATE_DATABASE_URL=self.pg.url,
            ROBUSTGATE_BROKER_URL=self.redis.url, ROBUSTGATE_QUEUE="rg-chaos",
            ROBUSTGATE_HEARTBEAT_SECONDS="0.5", ROBUSTGATE_STALE_SECONDS="4")
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        env = clean_env() | settings.as_env()
        self.api = ApiProcess(settings, env)
        self.workers = Workers(settings, env, 2)
        self.pending_restarts: list[tuple[float, int]] = []

    def __enter__(self) -> Chaos:
        try:
            self.pg.start()
            self.redis.start()
            self.api.start()
            for i in range(len(self.workers.procs)):
                self.workers.start(i)
        except BaseException:
            self.__exit__()  # nothing started here outlives a failed start
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.workers.stop()
        self.api.stop()
        self.redis.kill()
        self.pg.stop()
        self.pg.remove(keep=self.folder / "pg")

    def token(self, tenant: str) -> str:
        import subprocess

        out = subprocess.run([sys.executable, "-m", "service.cli", "token", "create",
                              "--tenant", tenant], env=self.api.env, capture_output=True,
                             text=True, check=True, timeout=300)
        return out.stdout.strip()

    def apply(self, kind: str, jobs: list[Job], clients: dict[str, Client],
              target: Job | None = None) -> str:
        if kind == "kill-worker":
            i = self.rng.randrange(len(self.workers.procs))
            self.workers.kill(i)
            self.pending_restarts.append((time.monotonic() + self.rng.uniform(1, 3), i))
            return f"worker {i}"
        if kind == "kill-api":
            self.api.kill()
            time.sleep(self.rng.uniform(0.5, 2))
            self.api.start()
            return "restarted"
        if kind == "restart-redis":
            self.redis.kill()
            time.sleep(self.rng.uniform(1, 4))
            self.redis.start()
            return "restarted empty"
        if kind == "restart-postgres":
            self.pg.crash()
            time.sleep(self.rng.uniform(1, 4))
            for attempt in (1, 2, 3):  # crash recovery can outlast one start's patience
                try:
                    self.pg.start()
                    break
                except RuntimeError:
                    if attempt == 3:
                        raise
            return f"crashed and restarted (start {self.pg.starts})"
        live = [j for j in jobs if j.status not in FINISHED and not j.cancelled_by_us]
        if not live:
            return "nothing left to cancel"
        job = target if target in live else self.rng.choice(live)
        deadline = time.monotonic() + 120
        code = _retry("cancel", lambda: clients[job.tenant].delete(job.id), deadline)
        job.cancelled_by_us = True
        job.deleted_by_us = code == 204  # it had finished meanwhile: DELETE removed it
        seen = ""
        if code == 202:  # cancel is final and visible at once: the next poll says so
            seen = _retry("status", lambda: clients[job.tenant].get(job.id), deadline)["status"]
            job.seen_after_cancel = seen
            seen = f", next poll: {seen}"
        return f"{job.tenant} job {job.id[:8]} while {job.status} -> HTTP {code}{seen}"

    def api_log_tail(self) -> str:
        log = getattr(self.api, "log", None)
        return log.read_text(errors="replace")[-4000:] if log is not None else ""

    def restart_due_workers(self) -> None:
        now = time.monotonic()
        for due, i in [p for p in self.pending_restarts if p[0] <= now]:
            self.pending_restarts.remove((due, i))
            self.workers.start(i)


def run(plan: Plan, seed: int, folder: Path, log=print) -> Outcome:
    pool = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"))
    refs: dict[int, Future] = {s: pool.submit(reference, s, plan.samples)
                               for s in range(max(plan.jobs_flood, plan.jobs_quiet))}
    data_path = folder / "eval-subset.npz"
    data_path.write_bytes(_subset(plan.samples))
    with Chaos(plan, folder, seed, log) as chaos:
        clients = {t: Client(chaos.api.url, chaos.token(t), timeout=60)
                   for t in ("flood", "quiet")}
        for client in clients.values():
            client.request("POST", "/v1/standards", content=STANDARD.encode(),
                           headers={"Content-Type": "application/yaml"})
        outcome = Outcome(jobs=[], redis_url=chaos.redis.url, database_url=chaos.pg.url)
        t0 = time.monotonic()
        deadline = t0 + plan.timeout
        # The flood first, the quiet tenant's jobs right behind it. Job k of either tenant
        # has seed k: distinct within a tenant (no reuse), shared across tenants (no dedupe
        # between tenants), so one reference run answers both.
        for tenant, count in (("flood", plan.jobs_flood), ("quiet", plan.jobs_quiet)):
            for k in range(count):
                body = _retry("submit", lambda s=k, c=clients[tenant]: c.submit(
                    MODEL, data_path, "chaos-digits", seed=s), deadline)
                outcome.jobs.append(Job(body["id"], tenant, k, time.monotonic()))
        faults = list(plan.faults)
        last_fault = -FAULT_GAP_S
        while True:
            now = time.monotonic() - t0
            chaos.restart_due_workers()
            if faults and _due(faults[0], outcome.jobs) and now - last_fault >= FAULT_GAP_S:
                fault = faults.pop(0)
                target = outcome.jobs[fault.job]
                where = f"[{target.tenant} {target.id[:8]} {target.status} {target.stage} " \
                        f"{target.progress:.2f}]"
                try:
                    detail = chaos.apply(fault.kind, outcome.jobs, clients, target)
                except Exception as exc:  # the harness's failure, not the service's: say so
                    detail = f"could not apply: {exc}"
                    outcome.problems.append(f"harness: {fault.kind} failed: {exc}")
                last_fault = time.monotonic() - t0
                outcome.applied.append((round(now, 1), fault.kind, f"{where} {detail}"))
                log(f"  t={now:6.1f} s  {fault.kind:16s} {where} {detail}")
            _refresh(outcome.jobs, clients)
            if not faults and not chaos.pending_restarts and all(
                    j.status in FINISHED or j.deleted_by_us for j in outcome.jobs):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        elapsed = time.monotonic() - t0
        try:
            _final(outcome.jobs, clients, time.monotonic() + 120)
            outcome.references = {s: f.result() for s, f in refs.items()}
            for job in outcome.jobs:
                if job.status == "succeeded":
                    card = _retry("scorecard", lambda j=job: clients[j.tenant].scorecard(j.id),
                                  time.monotonic() + 120)
                    job.final = (job.final or {}) | {"card": comparable(card)}
        except RuntimeError as exc:  # the API never answered again: say so, with its log
            broken = f"the API did not recover: {exc}\n{chaos.api_log_tail()}"
        else:
            broken = ""
        for client in clients.values():
            client.close()
    pool.shutdown(cancel_futures=True)
    outcome.problems += judge(outcome) + ([broken] if broken else [])
    report(outcome, elapsed, log)
    return outcome


def _due(fault: Fault, jobs: list[Job]) -> bool:
    job = jobs[fault.job]
    return job.progress >= fault.progress or job.status in FINISHED or job.deleted_by_us


def _refresh(jobs: list[Job], clients: dict[str, Client]) -> None:
    for job in jobs:
        if job.status in FINISHED or job.deleted_by_us:
            continue
        try:
            state = clients[job.tenant].get(job.id)
        except ClientError:
            return  # the API is down: try again at the next tick
        job.status, job.stage, job.progress = state["status"], state["stage"], state["progress"]
        if job.status in FINISHED:
            job.final = {"state": state, "at": time.monotonic()}


def _final(jobs: list[Job], clients: dict[str, Client], deadline: float) -> None:
    for job in jobs:
        if job.deleted_by_us:
            continue
        try:
            state = _retry("status", lambda j=job: clients[j.tenant].get(j.id), deadline)
        except ClientError as exc:
            job.status = "lost" if exc.status == 404 else f"unreadable ({exc})"
            continue
        job.status = state["status"]
        job.final = (job.final or {"at": time.monotonic()}) | {"state": state}


def judge(outcome: Outcome) -> list[str]:
    problems = []
    for job in outcome.jobs:
        name = f"{job.tenant} job {job.id[:8]} (seed {job.seed})"
        state = (job.final or {}).get("state", {})
        if job.deleted_by_us:
            continue
        if job.seen_after_cancel not in (None, "cancelled"):
            problems.append(f"{name}: cancel answered 202 but the next poll said "
                            f"{job.seen_after_cancel}")
        if job.cancelled_by_us and job.status != "cancelled":
            problems.append(f"{name}: cancelled (202) but ended {job.status}")
            continue
        if job.status == "lost":
            problems.append(f"{name}: lost (404)")
        elif job.status not in FINISHED:
            problems.append(f"{name}: stuck in {job.status} ({state.get('stage')})")
        elif job.status == "cancelled" and not job.cancelled_by_us:
            problems.append(f"{name}: cancelled, but not by us")
        elif job.status == "errored":
            reason = state.get("error") or ""
            if not reason or INFRA.search(reason):
                problems.append(f"{name}: errored for a reason that is not the job's: "
                                f"{reason[:300]!r}")
        elif job.status == "succeeded":
            ref = outcome.references.get(job.seed)
            got = (job.final or {}).get("card")
            if got != ref:
                problems.append(f"{name}: scorecard differs from the undisturbed run: "
                                f"{got} != {ref}")
    return problems


def report(outcome: Outcome, elapsed: float, log=print) -> None:
    log(f"\n{len(outcome.jobs)} jobs, {len(outcome.applied)} faults, {elapsed:.0f} s")
    for job in outcome.jobs:
        state = (job.final or {}).get("state", {})
        extra = state.get("verdict") or (state.get("error") or "")[:120]
        mark = " (cancelled by us)" if job.cancelled_by_us else ""
        log(f"  {job.tenant:5s} {job.id[:8]} seed {job.seed:2d}: "
            f"{'deleted by us' if job.deleted_by_us else job.status}{mark} {extra}")
    for tenant in ("flood", "quiet"):
        waits = [j.final["at"] - j.submitted for j in outcome.jobs
                 if j.tenant == tenant and j.final and "at" in j.final
                 and j.status in ("succeeded", "errored")]
        if waits:
            log(f"  latency {tenant:5s}: median {statistics.median(waits):6.1f} s, "
                f"max {max(waits):6.1f} s over {len(waits)} finished jobs")
    counts: dict[str, int] = {}
    for job in outcome.jobs:
        counts[job.status] = counts.get(job.status, 0) + 1
    log(f"  outcomes: {counts}")
    if outcome.problems:
        log("FAILED:")
        for p in outcome.problems:
            log(f"  {p}")
    else:
        log("OK: every job succeeded with the undisturbed scorecard, was cancelled by us, or "
            "errored for a reason of its own; none stuck, none lost")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="the small schedule CI runs")
    parser.add_argument("--seed", type=int, default=0, help="draws the fault schedule")
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--faults", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the logs and data folder")
    args = parser.parse_args()
    plan = make_plan(args.seed, args.short, args.jobs, args.faults, args.timeout)
    print(f"seed {args.seed}: {plan.jobs_flood} flood + {plan.jobs_quiet} quiet jobs, faults "
          f"{[(f.kind, f'job {f.job} at {f.progress:.2f}') for f in plan.faults]}", flush=True)
    if args.keep:
        folder = Path(tempfile.mkdtemp(prefix="rg-chaos-"))
        print(f"logs and data kept in {folder}")
        return 0 if run(plan, args.seed, folder, log=lambda m: print(m, flush=True)).ok else 1
    with tempfile.TemporaryDirectory(prefix="rg-chaos-") as tmp:
        return 0 if run(plan, args.seed, Path(tmp), log=lambda m: print(m, flush=True)).ok \
            else 1


if __name__ == "__main__":
    raise SystemExit(main())
