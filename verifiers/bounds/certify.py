"""Certified robustness of classified samples under an L-infinity budget: the battery's API.

For each sample, the perturbation set is the L-infinity ball of radius eps around it,
intersected with the valid input box [low, high]; the spec rows are the margins
y_label - y_j for every j != label. A sample is certified when every margin's lower bound is
positive. Samples stream through in batches on one declared device; on out-of-memory the
batch is halved (down to one sample) before giving up.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import onnx
import torch

from verifiers.bounds.crown import LinearSpec
from verifiers.bounds.engine import BoundConfig, Method, bound_spec
from verifiers.bounds.graph import BoundGraph, build_graph
from verifiers.bounds.ops import Interval
from verifiers.data import InputDomain
from verifiers.errors import DataError, VerifierError
from verifiers.interrupt import checkpoint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CertifyResult:
    certified: np.ndarray  # bool [N]
    lower_bounds: np.ndarray  # float [N, K]: lower bound of y_label - y_j; +inf at j = label
    certified_by: np.ndarray  # str [N]: "ibp", "crown", "alpha-crown" or "" (not certified)
    seconds: float
    method: str
    eps: float
    note: str  # e.g. "bounds on the logits before Softmax at node 'prob'"

    @property
    def worst_margin(self) -> np.ndarray:
        return self.lower_bounds.min(axis=1)


def robustness_spec(y: torch.Tensor, num_classes: int, dtype: torch.dtype) -> LinearSpec:
    """Rows e_label - e_j for the K-1 classes j != label, as [B, K-1, K]."""
    batch = len(y)
    eye = torch.eye(num_classes, dtype=dtype, device=y.device)
    others = torch.arange(num_classes, device=y.device).expand(batch, -1)
    others = others[others != y.unsqueeze(1)].reshape(batch, num_classes - 1)
    C = eye[y].unsqueeze(1) - eye[others]
    return LinearSpec(C, torch.zeros(batch, num_classes - 1, dtype=dtype, device=y.device))


def linf_box(x: torch.Tensor, eps: float, domain: InputDomain) -> Interval:
    return Interval((x - eps).clamp(min=domain.low), (x + eps).clamp(max=domain.high))


def certify_samples(model: onnx.ModelProto | BoundGraph, x: np.ndarray, y: np.ndarray,
                    eps: float, domain: InputDomain, method: Method | str = Method.CROWN, *,
                    config: BoundConfig = BoundConfig(), device: torch.device | str = "cpu",
                    batch_size: int = 32) -> CertifyResult:
    """Certify each (x[i], y[i]); raises UnsupportedOpError for a graph the engine cannot bound."""
    t0 = time.perf_counter()
    method = Method(method)
    graph = model if isinstance(model, BoundGraph) else build_graph(model)
    device = torch.device(device)
    if graph.device != device:
        graph.to(device, graph.dtype)
    k = graph.num_outputs
    if len(x) != len(y):
        raise DataError(f"{len(x)} samples but {len(y)} labels")
    if len(y) and (y.min() < 0 or y.max() >= k):
        raise DataError(f"labels must lie in [0, {k}), the model has {k} outputs")
    if tuple(x.shape[1:]) != graph.input_shape:
        raise DataError(f"samples have shape {x.shape[1:]}, the model expects {graph.input_shape}")
    lower = np.full((len(x), k), np.inf, dtype=np.float64)
    by = np.full(len(x), "", dtype=object)
    start, step = 0, max(1, batch_size)
    while start < len(x):
        checkpoint()
        stop = min(len(x), start + step)
        try:
            margins, proved_by = _certify_batch(graph, x[start:stop], y[start:stop], eps, domain,
                                                method, config)
        except torch.OutOfMemoryError as exc:
            if step == 1:
                raise VerifierError(f"{method.value} bounds ran out of memory on one sample "
                                    f"({device})") from exc
            step = max(1, step // 2)
            log.warning("%s bounds out of memory; retrying with batches of %d", method, step)
            continue
        except RuntimeError as exc:  # a torch failure inside an op: report, never crash a job
            raise VerifierError(f"{method.value} bounds failed: {str(exc)[:300]}") from exc
        rows = np.arange(stop - start)[:, None]
        others = np.array([[j for j in range(k) if j != label] for label in y[start:stop]])
        lower[start + rows, others] = margins
        by[start:stop] = proved_by
        start = stop
    certified = (lower > 0).all(axis=1)
    note = f"bounds on the logits before {graph.stripped_head}" if graph.stripped_head else ""
    return CertifyResult(certified, lower, by.astype(str), time.perf_counter() - t0,
                         method.value, float(eps), note)


def _certify_batch(graph: BoundGraph, x: np.ndarray, y: np.ndarray, eps: float,
                   domain: InputDomain, method: Method, config: BoundConfig
                   ) -> tuple[np.ndarray, list[str]]:
    xt = torch.as_tensor(np.ascontiguousarray(x), dtype=graph.dtype, device=graph.device)
    yt = torch.as_tensor(y, dtype=torch.long, device=graph.device)
    spec = robustness_spec(yt, graph.num_outputs, graph.dtype)
    result = bound_spec(graph, linf_box(xt, eps, domain), spec, method, config)
    return result.lower.detach().double().cpu().numpy(), result.proved_by
