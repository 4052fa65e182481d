"""Uploads validated in a child process with memory and time caps, never in the API.

Validation parses the model, builds an onnxruntime session and runs a probe batch: untrusted
bytes. Static screening (verifiers.model.screen) refuses declared costs first, but what must
still run could take the API down: a 1 GB model parsed in the API took it to 1.1 GB, and a
hostile graph that crashes onnxruntime would end the process answering everyone's polls.

Each validation runs in a process forked from a fork server that has already imported the
model stack (a fork costs milliseconds, not the seconds of importing onnxruntime), under an
address-space cap (RLIMIT_AS) and a wall-clock limit. Whatever the child does, the API gets an
answer: accepted with the figures it stores, or a refusal (4xx code and message) naming the
cap that was reached, or the crash.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import resource
import signal
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from verifiers import DataError, IntakeError, load_eval_set
from verifiers.admit import intake
from verifiers.model import load_model
from verifiers.ood import load_ood_x, user_suite
from verifiers.standards import Standard
from verifiers.units import InputMapping

log = logging.getLogger(__name__)

# What the fork server imports once, so that each validation's fork starts warm (the
# package names alone would not do: their exports are lazy, verifiers.lazy).
# service.cli: a child re-imports the parent's main module first (multiprocessing does, as
# __mp_main__); under `robustgate serve` that is the CLI, cheap once its imports are here.
_PRELOAD = ["onnx", "onnxruntime", "verifiers.model.loaded", "verifiers.model.runtime",
            "verifiers.admit", "verifiers.data", "verifiers.ood", "service.validation",
            "service.cli"]


@dataclass(frozen=True)
class Uploads:
    """What a submission's validation reads: staged files and the submission's fields."""

    model: Path
    data: Path
    ood: Path | None
    standard: Standard
    low: float | None
    high: float | None
    mapping: InputMapping | None
    max_decompressed: int


@dataclass(frozen=True)
class Accepted:
    info: dict[str, Any]  # the model's info, stored with it
    n_samples: int
    n_ood: int


@dataclass(frozen=True)
class Refused:
    status: int
    code: str
    message: str


@dataclass(frozen=True)
class Caps:
    memory_bytes: int  # address space the child may add to what it starts with
    seconds: float

    @classmethod
    def for_uploads(cls, memory_mb: int, seconds: float, uploaded_bytes: int) -> Caps:
        """The configured allowance plus four times the uploads: the file, its parsed
        graph, the runtime's copy of the weights and slack; a large model that was within
        the upload limit is not refused for its size, a small one that explodes is."""
        return cls((memory_mb << 20) + 4 * uploaded_bytes, seconds)


def validate(uploads: Uploads) -> Accepted | Refused:
    """Every upload checked before any is kept; runs in any process."""
    model_bytes = uploads.model.read_bytes()
    try:
        loaded = load_model(model_bytes)
    except IntakeError as exc:
        return Refused(422, "invalid_model", f"model refused: {exc}")
    try:
        # From its staged file: a large set is memory-mapped, never read whole.
        eval_set = load_eval_set(uploads.data, max_decompressed=uploads.max_decompressed)
    except DataError as exc:
        return Refused(422, "invalid_dataset", f"evaluation set refused: {exc}")
    ood_x = None
    if uploads.ood is not None:
        try:
            ood_x = load_ood_x(uploads.ood.read_bytes(),
                               max_decompressed=uploads.max_decompressed)
            user_suite(ood_x, eval_set.x.shape[1:], None)
        except DataError as exc:
            return Refused(422, "invalid_ood_set", f"OOD set refused: {exc}")
    try:  # the pipeline's own intake: the same refusals as a run would make
        intake(model_bytes, eval_set, uploads.standard,
               (uploads.low, uploads.high), ood_x, uploads.mapping, loaded=loaded)
    except DataError as exc:
        return Refused(422, "dataset_mismatch", f"evaluation set refused: {exc}")
    except IntakeError as exc:
        return Refused(422, "invalid_model", f"model refused: {exc}")
    return Accepted(loaded.info.as_dict() | {"num_classes": loaded.num_classes},
                    len(eval_set), 0 if ood_x is None else len(ood_x))


def validate_isolated(uploads: Uploads, caps: Caps) -> Accepted | Refused:
    """:func:`validate` in a capped child process.

    The memory cap is watched from here, on the child's resident memory beyond what it
    started with, and a child over it is killed: a cap enforced inside the child (an
    allocation that fails) surfaces as whatever error the library makes of it (the ONNX
    checker's "std::bad_alloc", a proto that "failed to serialize"), which would refuse a
    sound model as invalid. An address-space limit well above the cap (RLIMIT_AS) still
    stops a child that outruns the watch between two looks.
    """
    ctx = _context()
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(send, uploads, caps.memory_bytes), daemon=True)
    child.start()
    send.close()
    deadline = time.monotonic() + caps.seconds
    start_rss: int | None = None
    try:
        while not receive.poll(_WATCH_S):
            rss = _rss(child.pid)
            if rss is None:  # gone without answering
                break
            start_rss = rss if start_rss is None else start_rss
            if rss - start_rss > caps.memory_bytes:
                return _over_memory(caps)
            if time.monotonic() > deadline:
                return Refused(422, "validation_timeout",
                               f"validating the uploads took longer than {caps.seconds:g} s "
                               "(ROBUSTGATE_VALIDATION_SECONDS); nothing was stored")
        try:
            return receive.recv()
        except EOFError:
            pass  # died before answering: below
        child.join(5)
        return _died(child.exitcode, caps)
    finally:
        if child.is_alive():
            child.kill()
        child.join(5)
        receive.close()


# How often the child's memory and clock are looked at.
_WATCH_S = 0.02


def _rss(pid: int | None) -> int | None:
    """Resident bytes of a live process (Linux /proc), None once it has exited."""
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        return None


def _over_memory(caps: Caps) -> Refused:
    return Refused(422, "validation_memory",
                   f"validating the uploads needed more than their cap of "
                   f"{caps.memory_bytes >> 20} MiB (ROBUSTGATE_VALIDATION_MEMORY_MB plus four "
                   "times the uploads' size); nothing was stored")


def _died(exitcode: int | None, caps: Caps) -> Refused:
    if exitcode == _OUT_OF_MEMORY:
        return _over_memory(caps)
    how = (f"signal {signal.Signals(-exitcode).name}" if exitcode is not None and exitcode < 0
           else f"exit code {exitcode}")
    log.warning("upload validation crashed (%s)", how)
    return Refused(422, "invalid_model", f"model refused: it crashed the validator ({how})")


# The child's exit code when the cap was reached outside a Python MemoryError handler.
_OUT_OF_MEMORY = 86


def _child(send: Connection, uploads: Uploads, memory_bytes: int) -> None:
    with open("/proc/self/statm") as statm:  # what the fork already maps is not counted
        mapped = int(statm.read().split()[0]) * resource.getpagesize()
    # The backstop, far above the watched cap: address space also holds what is reserved
    # and never touched (thread stacks, allocator arenas).
    limit = mapped + 2 * memory_bytes + _RESERVED
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        answer: Accepted | Refused = validate(uploads)
    except MemoryError:
        raise SystemExit(_OUT_OF_MEMORY) from None
    except Exception as exc:  # a bug must still answer (the API logs and reports it)
        log.exception("upload validation failed")
        answer = Refused(500, "internal", f"internal error while validating "
                                          f"({type(exc).__name__}); it has been logged")
    try:
        send.send(answer)
    except MemoryError:
        raise SystemExit(_OUT_OF_MEMORY) from None


_RESERVED = 1 << 30
_ctx: mp.context.BaseContext | None = None


def _context() -> mp.context.BaseContext:
    """The fork server, started on the first validation with the model stack imported."""
    global _ctx
    if _ctx is None:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        _ctx = ctx
    return _ctx
