"""Subdomains where every ReLU is fixed: the network is affine there, so a linear program
decides them exactly; our own bound, with the LP's dual multipliers as beta, certifies it.

With every ReLU's phase known, each tensor is an affine function of the input on the
subdomain (read off by one batched forward pass of ``[0, e_1, ..., e_n]`` with the phases
fixed). The subdomain is ``{x in box : s_i z_i(x) >= 0}`` and the region asks for a point
with every row ``C y(x) + d <= 0``. The LP ``min t s.t. row_k(x) <= t`` over it gives:

- ``t* <= 0``: its minimiser is a candidate counterexample (onnxruntime still decides);
- ``t* > 0``: the duals (``mu`` on rows, ``lambda`` on splits) are a convex combination of
  rows and beta multipliers; beta-CROWN's bound with them is the LP value, computed by our
  own engine (sound whatever the LP solver's tolerances: the LP only suggests multipliers);
- infeasible: a phase-one LP's duals prove ``sum lambda_i s_i z_i < 0`` on the box, and a
  large enough multiple of them as beta lifts our bound above 0.

SciPy's HiGHS solves the LPs; without SciPy such subdomains stay unknown.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from verifiers.bounds.bab.beta import walk
from verifiers.bounds.bab.branching import SplitLayer
from verifiers.bounds.bab.domains import Domains
from verifiers.bounds.graph import BoundGraph
from verifiers.bounds.ops.activation import LeakyRelu


def affine_maps(graph: BoundGraph, dom: Domains, i: int) -> dict[str, tuple[Tensor, Tensor]]:
    """tensor -> (A [numel, n_in], c [numel]) on subdomain ``i``; {} if a phase is open or a
    non-ReLU op needs bounds (then the network is not affine there)."""
    n = int(np.prod(graph.input_shape))
    x = torch.cat([torch.zeros(1, n, dtype=graph.dtype, device=graph.device),
                   torch.eye(n, dtype=graph.dtype, device=graph.device)])
    values = {graph.input_name: x.reshape(n + 1, *graph.input_shape)}
    for node in graph.nodes:
        ins = [values[k] for k in node.inputs]
        if node.op.needs_bounds:
            if not isinstance(node.op, LeakyRelu):
                return {}
            b = dom.bounds[node.inputs[0]]
            lo, up = b.lower[i:i + 1], b.upper[i:i + 1]
            if bool(((lo < 0) & (up > 0)).any()):
                return {}
            values[node.output] = torch.where(lo >= 0, ins[0], node.op.slope * ins[0])
        else:
            values[node.output] = node.op.forward(*ins)
    out = {}
    for name, v in values.items():
        flat = v.reshape(n + 1, -1)
        out[name] = ((flat[1:] - flat[:1]).T, flat[0])
    return out


def settle(graph: BoundGraph, layers: list[SplitLayer], dom: Domains, C: Tensor, d: Tensor,
           real_rows: Tensor) -> tuple[Tensor, list[np.ndarray | None]]:
    """Per subdomain: proved (bool), and a candidate counterexample (flat input) or None."""
    try:
        from scipy.optimize import linprog
    except ImportError:
        return torch.zeros(len(dom), dtype=torch.bool), [None] * len(dom)
    proved = torch.zeros(len(dom), dtype=torch.bool)
    candidates: list[np.ndarray | None] = [None] * len(dom)
    box = dom.bounds[graph.input_name]
    for i in range(len(dom)):
        maps = affine_maps(graph, dom, i)
        if not maps:
            continue
        rows = real_rows[i].nonzero().squeeze(1)
        Ay, cy = (t.double().cpu().numpy() for t in maps[graph.output])
        Cr, dr = C[i, rows].double().cpu().numpy(), d[i, rows].double().cpu().numpy()
        split_rows, split_rhs, where = [], [], []
        for L in layers:
            s = dom.signs[L.z][i].reshape(-1)
            idx = s.nonzero().squeeze(1)
            Az, cz = (t.double().cpu().numpy() for t in maps[L.z])
            sv = s[idx].double().cpu().numpy()
            split_rows.append(-sv[:, None] * Az[idx.cpu().numpy()])  # -s a.x <= s c
            split_rhs.append(sv * cz[idx.cpu().numpy()])
            where.append((L, idx))
        G = np.concatenate(split_rows) if split_rows else np.zeros((0, Ay.shape[1]))
        h = np.concatenate(split_rhs) if split_rhs else np.zeros(0)
        lo = box.lower[i].reshape(-1).double().cpu().numpy()
        hi = box.upper[i].reshape(-1).double().cpu().numpy()
        n, m = len(lo), len(rows)
        A_ub = np.block([[Cr @ Ay, -np.ones((m, 1))], [G, np.zeros((len(G), 1))]])
        b_ub = np.concatenate([-(Cr @ cy + dr), h])
        cost = np.zeros(n + 1)
        cost[-1] = 1.0
        res = linprog(cost, A_ub=A_ub, b_ub=b_ub, bounds=[*zip(lo, hi, strict=True),
                                                          (None, None)], method="highs")
        if res.status == 0:
            if res.fun <= 0:
                candidates[i] = res.x[:n]
                continue
            mu = np.clip(-res.ineqlin.marginals[:m], 0, None)
            lam = np.clip(-res.ineqlin.marginals[m:], 0, None)
            proved[i] = _certified(graph, dom, i, where, torch.as_tensor(mu @ Cr),
                                   float(mu @ dr), lam, [1.0])
        elif res.status == 2 and len(G):  # infeasible: find how far
            A1 = np.hstack([G, -np.ones((len(G), 1))])
            one = linprog(cost, A_ub=A1, b_ub=h, bounds=[*zip(lo, hi, strict=True),
                                                         (None, None)], method="highs")
            if one.status == 0 and one.fun > 0:
                lam = np.clip(-one.ineqlin.marginals, 0, None)
                row = torch.as_tensor(Cr[0])
                proved[i] = _certified(graph, dom, i, where, row, float(dr[0]), lam,
                                       [10.0 ** k for k in range(0, 9, 2)])
    return proved, candidates


def _certified(graph: BoundGraph, dom: Domains, i: int, where: list, row: Tensor,
               const: float, lam: np.ndarray, scales: list[float]) -> bool:
    """Our bound of ``row . y + const`` on subdomain i with beta = scale * lam: > 0?"""
    one = dom.take(torch.tensor([i], device=dom.region.device))
    A0 = row.to(dtype=graph.dtype, device=graph.device).reshape(1, 1, *graph.output_shape)
    alphas = {k: v[:, :1] for k, v in one.alphas.items()}
    for scale in scales:
        lagrange, start = {}, 0
        for L, idx in where:
            beta = torch.zeros(1, 1, *one.signs[L.z].shape[1:], dtype=graph.dtype,
                               device=graph.device)
            flat = beta.view(1, 1, -1)
            values = torch.as_tensor(scale * lam[start:start + len(idx)], dtype=graph.dtype)
            flat[0, 0, idx] = values.to(graph.device)
            start += len(idx)
            lagrange[L.z] = beta * one.signs[L.z].to(graph.dtype).unsqueeze(1)
        with torch.no_grad():
            lower = walk(graph, one.bounds, A0, alphas, lagrange).lower + const
        if float(lower[0, 0]) > 0:
            return True
    return False
