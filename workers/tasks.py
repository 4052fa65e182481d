"""A certification as Celery tasks: plan, then shards, then finish.

- ``robustgate.certify`` (cpu queue): claim the job, run the plan's prepare step once
  (intake, clean, fidelity; stored as the "prepare" part), plan the attack chunks and send
  every shard not already done or running.
- ``robustgate.attack_shard`` (gpu queue): one chunk's attacks, stored as "attack-<k>". The
  shard that completes the set sends the finish task. There is no chord: a chord needs a
  result backend, and the results already live in the database, keyed by (job, part), where
  a redelivered shard finds its part done and writes nothing.
- ``robustgate.finish`` (gpu queue): merge the chunks, run the remaining checks, sign and store
  the scorecard.

The steps are verifiers.run_plan's, the ones ``robustgate certify`` runs in process
(verifiers.pipeline): a task rebuilds the job's inputs from its spec, runs its step on this
worker's device and stores the step's bytes; progress goes through verifiers.plan.job_progress.
Nothing here builds or edits a check context.

Every task beats while it runs; the service's watchdog re-queues the plan of a job nothing
beats for any more, which re-sends only the parts that are missing. Fairness by work: shard
k of a job carries a priority from the shards its tenant has ahead of it (its other unfinished
jobs' shards, plus k; workers.app.priority_for), honoured by both brokers.

Every broker and database call here retries through an outage (workers.retry); an error that
is still an outage after the bound does not end the job: the watchdog re-queues it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence

from celery import Celery

from verifiers import Cancelled, VerifierError, parse_standard
from verifiers.data import EvalSet, load_eval_set
from verifiers.errors import ShardTimeout
from verifiers.interrupt import Interrupt, watching
from verifiers.ood import load_ood_x
from verifiers.pipeline import cancel_aware
from verifiers.plan import ATTACK, DONE, FINISH, PREPARE, job_progress, shards_stage, step_reporter
from verifiers.run_plan import DEFAULT_BATCH_SIZE, CertificationPlan, JobInputs
from verifiers.units import InputMapping, parse_mapping
from workers.app import ATTACK_SHARD_TASK, CERTIFY_TASK, FINISH_TASK, priority_for
from workers.oom import halving_on_oom
from workers.parts import FINISH_PART, PREPARE_PART, attack_part, task_id
from workers.retry import RetryPolicy, is_transient
from workers.store import JobSpec, JobStore

log = logging.getLogger(__name__)

# Progress is written at most this often: a fast loop must not hammer the database.
PROGRESS_INTERVAL_S = 0.5


def _me() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# (task name, args, task id): the ids are fixed per (job, part), so cancel can revoke them.
Message = tuple[str, tuple, str]
# Send messages, each with its priority (0 first).
Dispatch = Callable[[list[Message], Sequence[int]], None]


def celery_dispatch(app: Celery) -> Dispatch:
    """Send messages on one producer; through a broker outage, retried (app.conf.
    robustgate_retry) from the first message not yet sent, so none is sent twice by us."""
    retry: RetryPolicy = app.conf.get("robustgate_retry") or RetryPolicy()

    def send(messages: list[Message], priorities: Sequence[int]) -> None:
        pending = list(zip(messages, priorities, strict=True))

        def attempt() -> None:
            with app.producer_or_acquire() as producer:
                while pending:
                    (name, args, message_id), priority = pending[0]
                    app.send_task(name, args=args, task_id=message_id, priority=priority,
                                  producer=producer)
                    pending.pop(0)

        retry.call(attempt)

    return send


# --- plan -------------------------------------------------------------------------------

def plan_job(store: JobStore, dispatch: Dispatch, job_id: str,
             device: str | None = None) -> None:
    spec = store.claim(job_id, worker=_me())
    if spec is None:
        log.info("job %s is not runnable (finished, cancelled, gone or running elsewhere); "
                 "skipping", job_id)
        return
    with (_beating(store.heartbeat, job_id, store.heartbeat_seconds),
          _ending_job(store, job_id), watching(_interrupt(store, spec))):
        plan = _plan(spec)
        if store.part(job_id, PREPARE_PART) is None:
            report = _reporter(store, job_id, advance=False)
            store.finish_part(job_id, PREPARE_PART, plan.prepare(
                device=device, progress=step_reporter(report, PREPARE)))
        shards = len(plan.chunks)
        store.plan(job_id, shards)
        send_missing(store, dispatch, job_id, shards)


def send_missing(store: JobStore, dispatch: Dispatch, job_id: str, shards: int) -> None:
    """Send every attack shard not done or running; or finish, once all are done."""
    live = store.live_parts(job_id)
    done = store.done_parts(job_id, "attack-")
    ahead = store.tenant_work(job_id)  # the tenant's other unfinished shards
    if len(done) == shards:
        if FINISH_PART not in live:
            dispatch([(FINISH_TASK, (job_id,), task_id(job_id, FINISH_PART))],
                     [priority_for(ahead)])
        return
    missing = [k for k in range(shards) if attack_part(k) not in live]
    if missing:
        priorities = [priority_for(ahead + i) for i in range(len(missing))]
        log.info("job %s: sending attack shards %s (priorities %d..%d)", job_id, missing,
                 priorities[0], priorities[-1])
        dispatch([(ATTACK_SHARD_TASK, (job_id, attack_part(k)), task_id(job_id, attack_part(k)))
                  for k in missing], priorities)
    store.advance_progress(job_id, *_attacks_at(len(done), shards))


# --- shards -----------------------------------------------------------------------------

def run_attack_shard(store: JobStore, dispatch: Dispatch, job_id: str, part: str,
                     device: str | None = None) -> None:
    spec = store.spec(job_id)
    if spec is None or not store.start_part(job_id, part, _me()):
        log.info("job %s part %s: nothing to do (done, running elsewhere, or job ended)",
                 job_id, part)
        return
    k = int(part.rsplit("-", 1)[1])
    beat = store.heartbeat_seconds
    interrupt = _interrupt(store, spec, store.shard_timeout_seconds,
                           f"attack shard {k} ran past the shard time limit of "
                           f"{store.shard_timeout_seconds:g} s")
    with (_beating(lambda j: store.beat_part(j, part), job_id, beat),
          _ending_job(store, job_id), watching(interrupt)):
        plan = _plan(spec)
        prepared = _prepared(store, job_id)
        lo, hi = plan.chunks[k]
        total = len(plan.chunks)
        if interrupt.timeout_reason.startswith("attack shard"):
            interrupt.timeout_reason = (f"attack shard {k} (samples {lo}-{hi}) ran past the "
                                        f"shard time limit of {store.shard_timeout_seconds:g} s")
        sink = _reporter(store, job_id, advance=True)
        done_before = len(store.done_parts(job_id, "attack-"))
        deadline = time.monotonic() + store.shard_timeout_seconds

        def report(fraction: float, stage: str) -> None:
            if time.monotonic() > deadline:
                raise ShardTimeout(f"attack shard {k} (samples {lo}-{hi}) ran past the shard "
                                   f"time limit of {store.shard_timeout_seconds:g} s")
            sink(fraction, stage)

        progress = step_reporter(report, ATTACK, done=done_before, total=total,
                                 stage=shards_stage(done_before, total))
        evidence = halving_on_oom(
            lambda batch_size: plan.attack(k, prepared, device=device, batch_size=batch_size,
                                           progress=progress),
            DEFAULT_BATCH_SIZE, f"attack shard {k} of {job_id}")
        store.finish_part(job_id, part, evidence)
        done = len(store.done_parts(job_id, "attack-"))
        store.advance_progress(job_id, *_attacks_at(done, total))
        if done == total:
            send_missing(store, dispatch, job_id, total)


def run_finish(store: JobStore, job_id: str, device: str | None = None) -> None:
    spec = store.spec(job_id)
    if spec is None or not store.start_part(job_id, FINISH_PART, _me()):
        return
    beat = store.heartbeat_seconds
    with (_beating(lambda j: store.beat_part(j, FINISH_PART), job_id, beat),
          _ending_job(store, job_id), watching(_interrupt(store, spec))):
        plan = _plan(spec)
        prepared = _prepared(store, job_id)
        chunks = list(store.parts(job_id, "attack-").values())
        report = _reporter(store, job_id, advance=True)
        card = halving_on_oom(
            lambda batch_size: plan.finish(prepared, chunks, device=device,
                                           batch_size=batch_size,
                                           progress=step_reporter(report, FINISH)),
            DEFAULT_BATCH_SIZE, f"finish of {job_id}")
        report(*job_progress(DONE, 1.0, "done"))
        store.finish_part(job_id, FINISH_PART, b"")
        store.succeed(job_id, card)


def run_job(store: JobStore, job_id: str, device: str | None = None) -> None:
    """The whole job in this process, its messages run in order as they are sent (for tests
    and debugging; the service sends them through Celery)."""
    pending: list[Message] = []

    def dispatch(messages: list[Message], _priorities: Sequence[int]) -> None:
        pending.extend(messages)

    plan_job(store, dispatch, job_id, device)
    while pending:
        name, args, _ = pending.pop(0)
        if name == ATTACK_SHARD_TASK:
            run_attack_shard(store, dispatch, *args, device=device)
        elif name == FINISH_TASK:
            run_finish(store, *args, device=device)


# --- shared -----------------------------------------------------------------------------

def _plan(spec: JobSpec) -> CertificationPlan:
    """The job's plan, its inputs rebuilt from the stored spec."""
    eval_set: EvalSet = load_eval_set(spec.dataset)
    return CertificationPlan(JobInputs(
        spec.model_bytes, eval_set, parse_standard(spec.standard_document), seed=spec.seed,
        input_range=(spec.input_low, spec.input_high), mapping=_mapping(spec),
        ood_x=load_ood_x(spec.ood_bytes) if spec.ood_bytes is not None else None,
        started=spec.started_at or None))


def _prepared(store: JobStore, job_id: str) -> bytes:
    prepared = store.part(job_id, PREPARE_PART)
    if prepared is None:
        raise VerifierError("the job's prepare step left no result")
    return prepared


def _attacks_at(done: int, total: int) -> tuple[float, str]:
    """The job's progress once ``done`` of ``total`` shards are stored."""
    return job_progress(ATTACK, 0.0, shards_stage(done, total), done=done, total=total)


def _mapping(spec: JobSpec) -> InputMapping | None:
    raw = spec.input_mapping
    return None if not raw else parse_mapping(raw["mean"], raw["std"])


def _interrupt(store: JobStore, spec: JobSpec, part_limit_s: float | None = None,
               part_reason: str = "") -> Interrupt:
    """What every long loop of this run checks (verifiers.interrupt): the cancel flag (polled
    at most once a second), the job's time limit and, for a shard, the shard's."""
    now = time.monotonic()
    deadline, reason = None, ""
    job_limit = getattr(store, "job_timeout_seconds", None)
    if job_limit is not None:
        elapsed = max(0.0, time.time() - spec.started_at) if spec.started_at else 0.0
        deadline = now + job_limit - elapsed
        reason = f"the job ran past its time limit of {job_limit:g} s"
    if part_limit_s is not None and (deadline is None or now + part_limit_s < deadline):
        deadline, reason = now + part_limit_s, part_reason
    job_id = spec.job_id
    return Interrupt(cancelled=lambda: store.is_cancelled(job_id), deadline=deadline,
                     timeout_reason=reason)


def _reporter(store: JobStore, job_id: str, *, advance: bool) -> Callable[[float, str], None]:
    """A throttled, cancel-aware progress callback for the pipeline."""
    last = [0.0]

    def report(fraction: float, stage: str) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_INTERVAL_S or fraction >= 1.0:
            last[0] = now
            write = store.advance_progress if advance else store.report_progress
            write(job_id, fraction, stage)

    return cancel_aware(report, _throttled(lambda: store.is_cancelled(job_id)))


@contextlib.contextmanager
def _ending_job(store: JobStore, job_id: str) -> Iterator[None]:
    """Cancellation and failures end the whole job with a reason; nothing is re-raised, so
    Celery acknowledges the message (a redelivery would only fail the same way).

    Except an outage that outlasted the retry bound: it is not the job's fault, so the job is
    left running without beats, and the watchdog re-queues it (up to max_attempts)."""
    try:
        yield
    except Cancelled:
        store.mark_cancelled(job_id)
    except VerifierError as exc:  # ShardTimeout included
        store.fail(job_id, str(exc))
    except Exception as exc:  # a bug must still end the job with a reason, not hang it
        if is_transient(exc):
            log.error("certification %s: the broker or database stayed unreachable (%s: %s);"
                      " leaving it to the watchdog", job_id, type(exc).__name__, exc)
            return
        log.exception("certification %s crashed", job_id)
        store.fail(job_id, f"internal error: {type(exc).__name__}: {exc}")


@contextlib.contextmanager
def _beating(beat: Callable[[str], None], job_id: str, every: float) -> Iterator[None]:
    """Prove liveness from a thread while a long step (one big batch) reports nothing."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            try:
                beat(job_id)
            except Exception:  # a missed beat is retried; it must never kill the job
                log.warning("heartbeat for %s failed", job_id, exc_info=True)

    thread = threading.Thread(target=loop, daemon=True, name=f"heartbeat-{job_id}")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def _throttled(flag: Callable[[], bool], interval: float = 1.0) -> Callable[[], bool]:
    state = {"at": 0.0, "value": False}

    def check() -> bool:
        now = time.monotonic()
        if not state["value"] and now - state["at"] >= interval:
            state["at"] = now
            state["value"] = flag()
        return state["value"]

    return check


def register_tasks(app: Celery, store_factory: Callable[[], JobStore],
                   device: str | None = None) -> None:
    """The three tasks, every one on ``device`` (the worker's one declared device)."""
    dispatch = celery_dispatch(app)

    @app.task(name=CERTIFY_TASK)
    def certify_task(job_id: str) -> None:
        plan_job(store_factory(), dispatch, job_id, device)

    @app.task(name=ATTACK_SHARD_TASK)
    def attack_shard_task(job_id: str, part: str) -> None:
        run_attack_shard(store_factory(), dispatch, job_id, part, device)

    @app.task(name=FINISH_TASK)
    def finish_task(job_id: str) -> None:
        run_finish(store_factory(), job_id, device)
