"""ONNX -> torch conversion (onnx2pytorch) for gradients, and the fidelity measure.

White-box attacks and bounds run on the converted module; they are trusted only while it
agrees with onnxruntime on the accepted model.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import onnx
import torch
from torch import nn

from verifiers.errors import IntakeError
from verifiers.model.head import logits_graph
from verifiers.model.runtime import OnnxRunner
from verifiers.model.simplify import fold_constant_identities

log = logging.getLogger(__name__)


class LogitsView(nn.Module):
    """``forward`` returns logits whatever the model outputs; ``scores`` what the model outputs.

    With ``head_cut`` the inner module is the graph without its Softmax/LogSoftmax, so the
    logits are exact; otherwise probabilities fall back to log(p) (log-probabilities differ
    from logits by a per-sample constant, which neither attacks nor margins see).
    """

    def __init__(self, inner: nn.Module, output_kind: str, head_cut: bool = False,
                 fixed_batch: int | None = None) -> None:
        super().__init__()
        self.inner = inner
        self.output_kind = output_kind
        self.head_cut = head_cut
        # A graph that kept a fixed batch N runs on chunks of exactly N rows (last one padded),
        # so callers may use any batch size; autograd flows through the split and the cat.
        self.fixed_batch = fixed_batch

    def _raw(self, x: torch.Tensor) -> torch.Tensor:
        n = self.fixed_batch
        if not n or x.shape[0] == n:
            return self.inner(x).reshape(x.shape[0], -1).float()
        outs = []
        for chunk in torch.split(x, n):
            rows = chunk.shape[0]
            if rows < n:
                chunk = torch.cat([chunk, chunk[-1:].expand(n - rows, *chunk.shape[1:])])
            outs.append(self.inner(chunk).reshape(n, -1)[:rows])
        return torch.cat(outs).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._raw(x)
        if self.output_kind == "probabilities" and not self.head_cut:
            return torch.log(out.clamp_min(1e-12))
        return out

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        out = self._raw(x)
        if not self.head_cut:
            return out
        if self.output_kind == "probabilities":
            return torch.softmax(out, dim=1)
        if self.output_kind == "log_probabilities":
            return torch.log_softmax(out, dim=1)
        return out


def to_torch(model: onnx.ModelProto, output_kind: str, device: torch.device) -> nn.Module:
    """Convert with onnx2pytorch; a failure is an IntakeError the battery turns INCONCLUSIVE.

    The returned module outputs logits (a Softmax/LogSoftmax head is cut before converting).
    """
    from onnx2pytorch import ConvertModel  # heavy import, only when converting

    graph, head_cut = logits_graph(model, output_kind)
    graph = fold_constant_identities(graph)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            inner = ConvertModel(graph, experimental=True)
        module = LogitsView(inner, output_kind, head_cut, _fixed_batch(graph)).to(device)
        module = module.float().eval()
    except Exception as exc:  # the converter raises anything from KeyError to NotImplementedError
        raise IntakeError(f"torch conversion failed: {type(exc).__name__}: "
                          f"{str(exc)[:300]}") from exc
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def _fixed_batch(model: onnx.ModelProto) -> int | None:
    stored = {t.name for t in model.graph.initializer}
    inp = next((i for i in model.graph.input if i.name not in stored), None)
    dims = inp.type.tensor_type.shape.dim if inp is not None else []
    return int(dims[0].dim_value) if dims and dims[0].dim_value > 0 else None


def torch_scores(module: nn.Module, x: np.ndarray, device: torch.device,
                 batch_size: int = 256, space: str = "scores") -> np.ndarray:
    """Outputs of the converted model: what the model outputs ("scores") or "logits"."""
    outs = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            # A copy: ``x`` may be a read-only memory map (verifiers.diskarrays).
            chunk = torch.from_numpy(np.array(x[start:start + batch_size],
                                              dtype=np.float32)).to(device)
            if isinstance(module, LogitsView):
                out = module(chunk) if space == "logits" else module.scores(chunk)
            else:
                out = module(chunk)
            outs.append(out.reshape(len(chunk), -1).float().cpu().numpy())
    return np.concatenate(outs, axis=0)


@dataclass(frozen=True)
class Agreement:
    """How far the torch conversion is from onnxruntime on some inputs."""

    max_abs: float          # max |onnxruntime - torch|, output units
    max_rel: float          # max over rows of that row's max diff / its output range
    same_prediction: float  # fraction of rows where both predict the same class
    rows: int


def agreement(runner: OnnxRunner, module: nn.Module, x: np.ndarray, device: torch.device,
              space: str = "scores") -> Agreement:
    """onnxruntime vs torch on ``x``, in absolute and in relative terms.

    The relative figure divides each row's largest difference by that row's output range
    (max - min of onnxruntime's outputs), so it does not grow with the logits' scale: a
    network with logits around 1,000 differs from its float32 conversion by ~1e-3 in output
    units and ~1e-6 of its range. ``space="scores"`` compares what the model outputs;
    ``"logits"`` compares the module's logits with a runner on :func:`logits_graph`.
    """
    try:
        reference = runner.run(x)
        converted = torch_scores(module, x, device, space=space)
    except IntakeError:
        raise
    except Exception as exc:
        raise IntakeError(f"converted model failed to run: {type(exc).__name__}: "
                          f"{str(exc)[:300]}") from exc
    if reference.shape != converted.shape:
        raise IntakeError(
            f"converted model outputs shape {converted.shape}, onnxruntime {reference.shape}"
        )
    if reference.size == 0:
        return Agreement(0.0, 0.0, 1.0, 0)
    ref = reference.astype(np.float64).reshape(len(reference), -1)
    got = converted.astype(np.float64).reshape(len(converted), -1)
    same = (ref == got) | (np.isnan(ref) & np.isnan(got))  # equal infinities and NaNs agree
    with np.errstate(invalid="ignore"):
        diff = np.where(same, 0.0, np.abs(ref - got))
    if not np.all(np.isfinite(diff)):
        inf = float("inf")  # one side finite, the other not: no agreement
        return Agreement(inf, inf, 0.0, len(ref))
    row_diff = diff.max(axis=1)
    with np.errstate(invalid="ignore"):
        span = np.nanmax(ref, axis=1) - np.nanmin(ref, axis=1)
    span = np.where(np.isfinite(span), span, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(row_diff == 0, 0.0, row_diff / np.where(span > 0, span, 0.0))
    predicted = np.nanargmax(np.nan_to_num(ref, nan=-np.inf), axis=1) == \
        np.nanargmax(np.nan_to_num(got, nan=-np.inf), axis=1)
    return Agreement(float(row_diff.max()), float(rel.max()), float(predicted.mean()),
                     len(ref))


def fidelity(runner: OnnxRunner, module: nn.Module, x: np.ndarray,
             device: torch.device, space: str = "scores") -> float:
    """max |onnxruntime - torch| over the given inputs (see :func:`agreement`)."""
    return agreement(runner, module, x, device, space).max_abs
