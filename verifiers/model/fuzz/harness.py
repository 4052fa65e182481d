"""Run intake on untrusted bytes in child processes, so that a crash cannot take us down.

A segfault or abort inside onnx/onnxruntime C++ kills only the child: the parent records the
case as ``crashed`` (with the signal) and starts a new child. A case that runs past the
timeout is ``timeout``; one that raises anything but IntakeError is ``error``. Children
import the library once and then serve many cases.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import multiprocessing as mp
import resource
import time
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait

log = logging.getLogger(__name__)

DEFAULT_TARGET = "verifiers.model.fuzz.harness:intake_outcome"
STATUSES = ("accepted", "refused", "error", "crashed", "timeout")
# Refusal message fragment -> reason class (first match wins), for counting outcomes.
REASON_CLASSES: tuple[tuple[str, str], ...] = (
    ("(0 bytes)", "empty"), ("zip bomb", "gzip-bomb"), ("gzip", "gzip"),
    ("model file is", "size-limit"),
    ("not a valid ONNX protobuf", "protobuf"), ("external data", "external-data"),
    ("custom op", "custom-op"), ("local functions", "local-function"),
    ("subgraph", "control-flow"), ("supported opsets", "opset"), ("nodes, over", "node-limit"),
    ("ONNX checker", "checker"), ("shape inference", "shape-inference"),
    ("would have shape", "memory-cap"), ("inferred negative", "memory-cap"),
    ("tensor ", "tensor-claim"), ("declares dimension", "shape-claim"),
    ("exactly one input", "inputs"), ("only float inputs", "input-dtype"),
    ("random ops", "random-op"), ("ZipMap", "zipmap"), ("label output", "labels"),
    ("batch dimension", "batch-dim"), ("model input", "input-shape"),
    ("float output", "outputs"), ("several float outputs", "outputs"),
    ("onnxruntime cannot load", "runtime-load"), ("onnxruntime failed", "runtime-run"),
    ("score(s)", "classes"),
)


@dataclass(frozen=True)
class Outcome:
    index: int
    status: str  # one of STATUSES
    reason: str  # reason class for refusals, exception type or signal otherwise
    message: str
    seconds: float


def reason_class(message: str) -> str:
    return next((cls for key, cls in REASON_CLASSES if key in message), "other")


def intake_outcome(data: bytes) -> tuple[str, str, str]:
    """(status, reason, message) of load_model on ``data``, in this process."""
    from verifiers.errors import IntakeError
    from verifiers.model import load_model

    try:
        loaded = load_model(data)
    except IntakeError as exc:
        return "refused", reason_class(str(exc)), str(exc)[:500]
    except Exception as exc:  # what the harness exists to find
        tail = traceback.format_exc().strip().splitlines()[-3:]
        return "error", type(exc).__name__, " | ".join(tail)[:500]
    return "accepted", loaded.info.batch, loaded.info.output_kind


def convert_outcome(data: bytes) -> tuple[str, str, str]:
    """Like :func:`intake_outcome`, then the torch conversion and fidelity of accepted models.

    A failed conversion is still 'accepted' (the battery makes it INCONCLUSIVE); its reason
    reads "conversion refused".
    """
    import numpy as np
    import torch

    from verifiers.errors import IntakeError
    from verifiers.model import fidelity, load_model, to_torch

    status, reason, message = intake_outcome(data)
    if status != "accepted":
        return status, reason, message
    cpu = torch.device("cpu")
    try:
        loaded = load_model(data)
        sample = [int(d) for d in loaded.info.input_shape[1:]]
        x = np.random.default_rng(0).random((4, *sample), dtype=np.float32)
        diff = fidelity(loaded.runner, to_torch(loaded.proto, loaded.info.output_kind, cpu),
                        x, cpu)
    except IntakeError as exc:
        return "accepted", "conversion refused", str(exc)[:500]
    except Exception as exc:
        tail = traceback.format_exc().strip().splitlines()[-3:]
        return "error", f"conversion {type(exc).__name__}", " | ".join(tail)[:500]
    agrees = diff <= 1e-4
    return "accepted", "converted" if agrees else "converted, disagrees", f"max diff {diff:.3g}"


def _child_main(conn: Connection, memory_mb: int, target: str) -> None:
    module_name, _, func_name = target.partition(":")
    func = getattr(importlib.import_module(module_name), func_name)
    import verifiers.model  # noqa: F401  (pay the imports once, before the first case)

    if memory_mb:
        with open("/proc/self/statm") as f:
            vm_bytes = int(f.read().split()[0]) * resource.getpagesize()
        cap = vm_bytes + memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    logging.disable(logging.CRITICAL)
    import onnxruntime

    onnxruntime.set_default_logger_severity(4)  # refusals are reported, not logged
    conn.send("ready")
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        if request is None:
            return
        index, data = request
        t0 = time.perf_counter()
        try:
            status, reason, message = func(data)
        except MemoryError:
            status, reason, message = "error", "MemoryError", "memory cap of the child reached"
        conn.send((index, status, reason, message, time.perf_counter() - t0))


class _Child:
    def __init__(self, ctx: mp.context.BaseContext, memory_mb: int, target: str) -> None:
        self.conn, child_conn = ctx.Pipe()
        self.proc = ctx.Process(target=_child_main, args=(child_conn, memory_mb, target),
                                daemon=True)
        self.proc.start()
        child_conn.close()
        self.case: int | None = None
        self.started = 0.0

    def wait_ready(self) -> _Child:
        try:
            ok = self.conn.poll(300) and self.conn.recv() == "ready"
        except (EOFError, OSError):
            ok = False
        if not ok:
            self.stop()
            raise RuntimeError(f"fuzz child did not start (exit code {self.proc.exitcode})")
        return self

    def send(self, index: int, data: bytes) -> None:
        self.case, self.started = index, time.perf_counter()
        self.conn.send((index, data))

    def stop(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(10)
        self.conn.close()


def run_isolated(cases: Iterable[tuple[int, bytes]], workers: int = 2, timeout: float = 60.0,
                 memory_mb: int = 4096, target: str = DEFAULT_TARGET) -> Iterator[Outcome]:
    """Outcomes of ``target`` (default: load_model) on each (index, bytes), as they finish.

    ``target`` is "module:function", a function of bytes -> (status, reason, message).
    """
    ctx = mp.get_context("spawn")
    todo = iter(cases)
    children = [_Child(ctx, memory_mb, target) for _ in range(max(1, workers))]
    for child in children:
        child.wait_ready()
    try:
        for child in children:
            _feed(child, todo)
        while any(c.case is not None for c in children):
            busy = [c for c in children if c.case is not None]
            ready = wait([c.conn for c in busy] + [c.proc.sentinel for c in busy], timeout=1.0)
            for i, child in enumerate(children):
                if child.case is None:
                    continue
                outcome = _collect(child, ready, timeout)
                if outcome is None:
                    continue
                yield outcome
                if outcome.status in ("crashed", "timeout"):
                    child.stop()
                    children[i] = child = _Child(ctx, memory_mb, target).wait_ready()
                _feed(child, todo)
    finally:
        for child in children:
            with contextlib.suppress(BrokenPipeError, OSError):
                child.conn.send(None)
            child.stop()


def _feed(child: _Child, todo: Iterator[tuple[int, bytes]]) -> None:
    nxt = next(todo, None)
    if nxt is None:
        child.case = None
    else:
        child.send(*nxt)


def _collect(child: _Child, ready: list, timeout: float) -> Outcome | None:
    index = child.case
    assert index is not None
    elapsed = time.perf_counter() - child.started
    if child.conn in ready:
        try:
            got_index, status, reason, message, seconds = child.conn.recv()
            return Outcome(got_index, status, reason, message, seconds)
        except (EOFError, OSError):
            pass  # died mid-reply: fall through to the crash report
    if child.conn in ready or child.proc.sentinel in ready or not child.proc.is_alive():
        child.proc.join(5)
        code = child.proc.exitcode
        return Outcome(index, "crashed", f"exit code {code}", "child process died", elapsed)
    if elapsed > timeout:
        return Outcome(index, "timeout", f"> {timeout:g} s", "case ran past the timeout",
                       elapsed)
    return None
