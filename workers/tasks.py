"""The certification task: claim the job, run the battery, store the scorecard."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable

from celery import Celery

from verifiers import Cancelled, VerifierError, certify, parse_standard
from verifiers.data import load_eval_set
from verifiers.ood import load_ood_x
from verifiers.pipeline import cancel_aware
from workers.app import CERTIFY_TASK
from workers.store import JobSpec, JobStore

log = logging.getLogger(__name__)

# Progress is written at most this often: a fast loop must not hammer the database.
_PROGRESS_INTERVAL_S = 0.5


def run_job(store: JobStore, job_id: str) -> None:
    spec = store.claim(job_id, worker=f"{socket.gethostname()}:{os.getpid()}")
    if spec is None:
        log.info("job %s is not runnable (finished, cancelled, gone or running elsewhere); "
                 "skipping", job_id)
        return
    stop = threading.Event()
    beat = threading.Thread(target=_beat, args=(store, job_id, stop), daemon=True,
                            name=f"heartbeat-{job_id}")
    beat.start()
    try:
        _run_claimed(store, job_id, spec)
    finally:
        stop.set()
        beat.join(timeout=5)


def _beat(store: JobStore, job_id: str, stop: threading.Event) -> None:
    """Prove liveness while a long step (one big batch) reports no progress."""
    while not stop.wait(store.heartbeat_seconds):
        try:
            store.heartbeat(job_id)
        except Exception:  # a missed beat is retried; it must never kill the job
            log.warning("heartbeat for %s failed", job_id, exc_info=True)


def _run_claimed(store: JobStore, job_id: str, spec: JobSpec) -> None:
    last = [0.0]

    def report(fraction: float, stage: str) -> None:
        now = time.monotonic()
        if now - last[0] >= _PROGRESS_INTERVAL_S or fraction >= 1.0:
            last[0] = now
            store.report_progress(job_id, fraction, stage)

    cancelled = _throttled(lambda: store.is_cancelled(job_id))
    try:
        standard = parse_standard(spec.standard_document)
        eval_set = load_eval_set(spec.dataset_bytes)
        ood_x = load_ood_x(spec.ood_bytes) if spec.ood_bytes is not None else None
        card = certify(spec.model_bytes, eval_set, standard, seed=spec.seed,
                       input_range=(spec.input_low, spec.input_high), ood_x=ood_x,
                       progress=cancel_aware(report, cancelled))
    except Cancelled:
        store.mark_cancelled(job_id)
        return
    except VerifierError as exc:
        store.fail(job_id, str(exc))
        return
    except Exception as exc:  # a bug must still end the job with a reason, not hang it
        log.exception("certification %s crashed", job_id)
        store.fail(job_id, f"internal error: {type(exc).__name__}: {exc}")
        return
    store.succeed(job_id, card)


def _throttled(flag: Callable[[], bool], interval: float = 1.0) -> Callable[[], bool]:
    state = {"at": 0.0, "value": False}

    def check() -> bool:
        now = time.monotonic()
        if not state["value"] and now - state["at"] >= interval:
            state["at"] = now
            state["value"] = flag()
        return state["value"]

    return check


def register_tasks(app: Celery, store_factory: Callable[[], JobStore]) -> None:
    @app.task(name=CERTIFY_TASK, bind=True)
    def certify_task(self, job_id: str) -> None:  # noqa: ARG001 - bound for retries later
        run_job(store_factory(), job_id)
