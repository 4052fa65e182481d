"""Class probabilities and, where identifiable, logits of the original model (onnxruntime).

A model ending in Softmax (or LogSoftmax) hides its logits: max-logit and energy need them,
and from probabilities they are known only up to a per-sample constant. We read them from the
same graph with that head cut (``verifiers.model.logits_graph``), and accept them only while
softmax(logits) reproduces the model's own output.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from verifiers.errors import IntakeError
from verifiers.model import LoadedModel, OnnxRunner, logits_graph
from verifiers.ood.scores import softmax

log = logging.getLogger(__name__)

# |softmax(recovered logits) - model probabilities| allowed: float32 rounding, nothing more.
_TOLERANCE = 1e-5


@dataclass(frozen=True)
class Outputs:
    probs: np.ndarray  # float64, N x K
    logits: np.ndarray | None


class OutputReader:
    """Reads (probabilities, logits) for any inputs; says where the logits came from."""

    def __init__(self, model: LoadedModel, probe: np.ndarray, *, want_logits: bool = True,
                 batch_size: int = 256) -> None:
        self.model = model
        self.batch_size = batch_size
        self.kind = model.info.output_kind  # logits / probabilities / log_probabilities
        self.logits_reason = ""
        self._logit_runner: OnnxRunner | None = None
        if self.kind == "logits":
            self.logit_source = "model output"
        elif not want_logits:
            self.logit_source = "not requested"
            self.logits_reason = "logits not requested"
        else:
            self._logit_runner = self._cut_head(probe)
            self.logit_source = (f"same graph, head cut ({model.info.logits_from})"
                                 if self._logit_runner is not None else "not available")

    def _cut_head(self, probe: np.ndarray) -> OnnxRunner | None:
        info = self.model.info
        graph, cut = logits_graph(self.model.proto, self.kind, info.output_name)
        if not cut:
            self.logits_reason = (f"the model outputs {self.kind.replace('_', '-')} and no "
                                  "Softmax/LogSoftmax head was found to cut: logits unknown")
            return None
        try:
            runner = OnnxRunner(graph.SerializeToString(), info)
            diff = self._mismatch(self.model.runner.run(probe, self.batch_size),
                                  runner.run(probe, self.batch_size))
        except IntakeError as exc:
            self.logits_reason = f"the graph with its head cut does not run: {exc}"
            return None
        if diff > _TOLERANCE:
            self.logits_reason = (f"the logits under the cut head do not reproduce the output "
                                  f"(max diff {diff:.3g}): logits unknown")
            return None
        return runner

    def _to_probs(self, raw: np.ndarray) -> np.ndarray:
        raw64 = raw.astype(np.float64)
        if self.kind == "probabilities":
            return raw64
        if self.kind == "log_probabilities":
            return np.exp(raw64)
        return softmax(raw64)

    def _mismatch(self, raw: np.ndarray, logits: np.ndarray) -> float:
        """max |softmax(logits) - p| (compared as probabilities: log p of rare classes is
        ill-conditioned) over the rows where both are finite."""
        if raw.shape != logits.shape:
            return float("inf")
        expected, got = softmax(logits), self._to_probs(raw)
        ok = np.all(np.isfinite(got), axis=1) & np.all(np.isfinite(expected), axis=1)
        return float(np.max(np.abs(expected[ok] - got[ok]), initial=0.0))

    def read(self, x: np.ndarray) -> Outputs:
        raw = self.model.runner.run(x, self.batch_size)
        probs = self._to_probs(raw)
        if self.kind == "logits":
            return Outputs(probs, raw.astype(np.float64))
        if self._logit_runner is None:
            return Outputs(probs, None)
        logits = self._logit_runner.run(x, self.batch_size)
        diff = self._mismatch(raw, logits)
        if diff > _TOLERANCE:  # never seen on the probe; refuse rather than guess
            log.warning("logits under the cut head disagree with the output by %.3g", diff)
            return Outputs(probs, None)
        return Outputs(probs, logits.astype(np.float64))
