"""Certified upper bound on softmax confidence over an L-infinity ball (Meinke & Hein style).

For class k, softmax_k = 1 / (1 + sum_{j != k} exp(z_j - z_k)); with lower bounds l_jk on
z_j - z_k over the ball, softmax_k <= 1 / (1 + sum_{j != k} exp(l_jk)). The bound on the
top-class confidence is the maximum over k. Bounds are on logits: a trailing Softmax is
stripped by the graph builder, so this is the confidence the model itself reports.
"""

from __future__ import annotations

import numpy as np
import torch

from verifiers.bounds.certify import linf_box
from verifiers.bounds.crown import LinearSpec
from verifiers.bounds.engine import BoundConfig, Method, bound_spec
from verifiers.bounds.graph import BoundGraph
from verifiers.bounds.ops import Interval
from verifiers.data import InputDomain
from verifiers.interrupt import checkpoint


def _pairwise_spec(batch: int, k: int, dtype: torch.dtype, device: torch.device) -> LinearSpec:
    """For each centre and class k, rows e_j - e_k (j != k): shape [batch * k, k - 1, k]."""
    eye = torch.eye(k, dtype=dtype, device=device)
    rows = [eye[[j for j in range(k) if j != c]] - eye[c] for c in range(k)]
    C = torch.stack(rows).repeat(batch, 1, 1)
    return LinearSpec(C, torch.zeros(batch * k, k - 1, dtype=dtype, device=device))


def confidence_upper_bound(graph: BoundGraph, centres: np.ndarray, eps: float,
                           domain: InputDomain, method: Method | str = Method.CROWN,
                           batch_size: int = 16) -> np.ndarray:
    """Per centre, an upper bound on max_k softmax_k(z(x)) over ball(centre, eps) ∩ domain."""
    k = graph.num_outputs
    out = np.empty(len(centres), dtype=np.float64)
    config = BoundConfig(cascade=False)  # every row's bound matters, not a yes/no proof
    for start in range(0, len(centres), batch_size):
        checkpoint()
        x = torch.as_tensor(np.ascontiguousarray(centres[start:start + batch_size]),
                            dtype=graph.dtype, device=graph.device)
        box = linf_box(x, eps, domain)
        # One copy of each box per class k.
        rep = Interval(box.lower.repeat_interleave(k, 0), box.upper.repeat_interleave(k, 0))
        spec = _pairwise_spec(len(x), k, graph.dtype, graph.device)
        lower = bound_spec(graph, rep, spec, Method(method), config).lower
        lower = lower.detach().double().cpu().reshape(len(x), k, k - 1)
        # softmax_k <= 1 / (1 + sum_j exp(l_jk)), computed stably as sigmoid(-logsumexp(l)).
        per_class = torch.sigmoid(-torch.logsumexp(lower, dim=2))
        out[start:start + len(x)] = per_class.max(dim=1).values.numpy()
    return out
