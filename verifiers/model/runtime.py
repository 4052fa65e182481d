"""Run the accepted model with onnxruntime: the ground truth every result is checked on."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from onnx import helper

from verifiers.errors import IntakeError
from verifiers.model.info import ModelInfo

_DTYPES = {"float": np.float32, "double": np.float64, "float16": np.float16}


def available_providers() -> list[str]:
    wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    have = set(ort.get_available_providers())
    return [p for p in wanted if p in have]


def make_session(raw: bytes, threads: int = 0, cpu_only: bool = False) -> ort.InferenceSession:
    """A session on the accepted bytes; ``cpu_only`` for checks that must not vary by host."""
    options = ort.SessionOptions()
    options.log_severity_level = 4  # failures surface as IntakeError, not as log noise
    # No busy-waiting between runs: the battery interleaves onnxruntime (queries, re-checks)
    # with torch in one process, and a spinning pool takes the cores torch then needs.
    # bench/threads.py, a digits job on 2 cores: 6% less CPU with torch's default threads,
    # 24% with one torch thread, wall time within noise.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
    try:
        providers = ["CPUExecutionProvider"] if cpu_only else available_providers()
        return ort.InferenceSession(raw, options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise IntakeError(f"onnxruntime cannot load the model: {_short(exc)}") from exc


def run_session(session: ort.InferenceSession, names: list[str],
                feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    try:
        return [np.asarray(o) for o in session.run(names, feeds)]
    except Exception as exc:
        raise IntakeError(f"onnxruntime failed to run the model: {_short(exc)}") from exc


def np_dtype(elem_type: int) -> np.dtype:
    return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))


class OnnxRunner:
    """Batched inference on the accepted ONNX bytes.

    A graph that kept a fixed batch size N (see ``ModelInfo.batch``) is fed exactly N rows per
    call, the last chunk padded; a dynamic one takes up to ``batch_size`` rows per call.
    """

    def __init__(self, raw: bytes, info: ModelInfo, threads: int = 0) -> None:
        self._session = make_session(raw, threads)
        self.info = info
        batch_dim = info.input_shape[0] if info.input_shape else None
        self.fixed_batch = batch_dim if isinstance(batch_dim, int) and batch_dim > 0 else None
        self.max_batch = self.fixed_batch or 1024
        self._dtype = _DTYPES.get(info.input_dtype, np.float32)
        self.forward_passes = 0

    def run(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Scores (logits or probabilities, as the model outputs) for every row of ``x``."""
        step = self.fixed_batch or max(1, min(batch_size, self.max_batch))
        outs = []
        for start in range(0, len(x), step):
            chunk = np.ascontiguousarray(x[start:start + step], dtype=self._dtype)
            rows = len(chunk)
            if self.fixed_batch and rows < self.fixed_batch:  # pad to the size the graph needs
                pad = np.repeat(chunk[-1:], self.fixed_batch - rows, axis=0)
                chunk = np.concatenate([chunk, pad], axis=0)
            (out,) = run_session(self._session, [self.info.output_name],
                                 {self.info.input_name: chunk})
            self.forward_passes += rows
            outs.append(out.astype(np.float32).reshape(len(chunk), -1)[:rows])
        return np.concatenate(outs, axis=0)

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        return self.run(x, batch_size).argmax(axis=1)

    def run_outputs(self, x: np.ndarray, names: list[str]) -> list[np.ndarray]:
        """Several named outputs for one batch (intake uses it to check label outputs)."""
        chunk = np.ascontiguousarray(x, dtype=self._dtype)
        return run_session(self._session, names, {self.info.input_name: chunk})


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]
