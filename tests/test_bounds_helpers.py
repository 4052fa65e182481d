"""Helpers shared by the bound-engine tests (this module holds no tests)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper

from verifiers.bounds import BoundConfig, BoundGraph, Interval, LinearSpec, Method, bound_spec

METHODS = (Method.IBP, Method.CROWN, Method.ALPHA_CROWN)


def onnx_model(nodes: list, inits: dict[str, np.ndarray], in_shape: list[int], out: str,
               opset: int = 17, batch: int | str = "N") -> onnx.ModelProto:
    """A checked model with input 'x' of shape [batch, *in_shape] and output ``out``."""
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, *in_shape])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", "K"])],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def run_ort(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    x = np.ascontiguousarray(x, dtype=np.float32)
    if sess.get_inputs()[0].shape[0] == 1:  # a fixed batch of one: sample by sample
        return np.concatenate([sess.run(None, {name: x[i:i + 1]})[0].reshape(1, -1)
                               for i in range(len(x))])
    return sess.run(None, {name: x})[0].reshape(len(x), -1)


def identity_spec(batch: int, k: int) -> LinearSpec:
    """Rows +y_k and -y_k: lower bounds of both give lower and upper output bounds."""
    eye = torch.eye(k).expand(batch, k, k)
    return LinearSpec(torch.cat([eye, -eye], 1), torch.zeros(batch, 2 * k))


def output_bounds(graph: BoundGraph, box: Interval, method: Method,
                  config: BoundConfig = BoundConfig(cascade=False)
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    k = graph.num_outputs
    low = bound_spec(graph, box, identity_spec(len(box.lower), k), method, config).lower
    return low[:, :k].detach(), -low[:, k:].detach()


def random_box(x: np.ndarray, max_radius: float, seed: int, low: float = 0.0,
               high: float = 1.0) -> Interval:
    """A box with uneven per-coordinate radii in [0, max_radius] (clipped to [low, high])."""
    rng = np.random.default_rng(seed)
    radius = (rng.random(x.shape) * max_radius).astype(np.float32)
    xt, rt = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(radius)
    return Interval((xt - rt).clamp(min=low), (xt + rt).clamp(max=high))


def _directions(graph: BoundGraph, limit: int, gen: torch.Generator) -> list[tuple[str, int]]:
    """(tensor, flat neuron) pairs worth pushing to extremes: bounded tensors and outputs."""
    tensors = [*graph.bounded_tensors(), graph.output]
    pairs = [(t, i) for t in dict.fromkeys(tensors) for i in range(
        int(np.prod(graph.shape_of(t))))]
    if len(pairs) > limit:
        keep = torch.randperm(len(pairs), generator=gen)[:limit].tolist()
        pairs = [pairs[i] for i in sorted(keep)]
    return pairs


def probe_points(graph: BoundGraph, box: Interval, n_random: int, seed: int,
                 pgd_steps: int = 15, limit: int = 256) -> torch.Tensor:
    """[B, P, *shape]: uniform points, random box corners, and PGD points pushing neurons of
    every bounded tensor and every output up and down (the likeliest escapes)."""
    gen = torch.Generator().manual_seed(seed)
    lo, hi = box.lower.unsqueeze(1), box.upper.unsqueeze(1)
    batch, shape = box.lower.shape[0], box.lower.shape[1:]
    uniform = lo + (hi - lo) * torch.rand(batch, n_random, *shape, generator=gen)
    corners = torch.where(torch.rand(batch, 64, *shape, generator=gen) < 0.5, lo, hi)
    pairs = _directions(graph, limit, gen)
    count = 2 * len(pairs)
    x = lo + (hi - lo) * torch.rand(batch, count, *shape, generator=gen)
    step = (hi - lo) / 4
    for _ in range(pgd_steps):
        x = x.detach().requires_grad_(True)
        values = graph.values(x.reshape(-1, *shape))
        objective = x.new_zeros(())
        for sign, offset in ((1.0, 0), (-1.0, len(pairs))):
            for t in dict.fromkeys(t for t, _ in pairs):
                rows = [offset + k for k, (u, _) in enumerate(pairs) if u == t]
                cols = [i for u, i in pairs if u == t]
                v = values[t].reshape(batch, count, -1)
                objective = objective + sign * v[:, rows, cols].sum()
        (grad,) = torch.autograd.grad(objective, x)
        x = torch.minimum(torch.maximum(x + step * grad.sign(), lo), hi)
        step = step * 0.8
    return torch.cat([uniform, corners, x.detach()], 1)


def random_slopes(graph: BoundGraph, starts: list[str], batch: int, rows: int,
                  gen: torch.Generator) -> dict[str, dict[str, torch.Tensor]]:
    """Arbitrary admissible alpha-CROWN slopes: any of them must give sound bounds."""
    out: dict[str, dict[str, torch.Tensor]] = {}
    for start in starts:
        per = {}
        for node in graph.nodes:
            if node.op.has_alpha and node.output in graph.upstream(start):
                lo, hi = node.op.alpha_range()
                shape = (batch, rows if start == graph.output else 1,
                         *graph.shape_of(node.inputs[0]))
                per[node.output] = lo + (hi - lo) * torch.rand(shape, generator=gen)
        out[start] = per
    return out


def _inside(bound: Interval, values: torch.Tensor, tol: float, what: str) -> None:
    """values [B, P, ...] within bound [B, ...]."""
    lo, hi = bound.lower.flatten(1).unsqueeze(1), bound.upper.flatten(1).unsqueeze(1)
    v = values.flatten(2)
    slack = tol * (1 + v.abs())
    escape = torch.maximum(lo - v - slack, v - hi - slack).max().item()
    assert escape <= 0, f"{what}: a point escapes its bound by {escape:.3g}"


def assert_contains(model: onnx.ModelProto, graph: BoundGraph, box: Interval,
                    methods=METHODS, n_random: int = 1000, seed: int = 0,
                    rtol: float = 1e-5, limit: int = 256) -> dict[Method, torch.Tensor]:
    """Probe points stay inside: IBP bounds of every tensor; CROWN's refined intermediate
    bounds and its raw output bound (not maxed with IBP); the same with random admissible
    slopes; and the engine's answer for each method (outputs from onnxruntime).

    Returns each method's mean output-bound width, for tightness comparisons."""
    from verifiers.bounds.crown import refine_bounds, spec_lower
    from verifiers.bounds.ibp import interval_bounds

    points = probe_points(graph, box, n_random, seed, limit=limit)
    batch, count = points.shape[:2]
    flat = points.reshape(batch * count, *points.shape[2:])
    with torch.no_grad():
        values = {t: v.reshape(batch, count, *v.shape[1:]) for t, v in graph.values(flat).items()}
    ys = torch.from_numpy(run_ort(model, flat.numpy())).reshape(batch, count, -1)
    k = graph.num_outputs
    spec = identity_spec(batch, k)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        ibp = interval_bounds(graph, box)
        crown, rows = refine_bounds(graph, box, ibp, max_rows=4096)
        slopes = random_slopes(graph, [*rows, graph.output], batch, 2 * k, gen)
        shaken, _ = refine_bounds(graph, box, ibp, 4096, rows, slopes)
        for name, bounds in (("IBP", ibp), ("CROWN", crown), ("random slopes", shaken)):
            for t, bound in bounds.items():
                _inside(bound, values[t], rtol, f"{name} bound of {t!r}")
        raw = {"CROWN": spec_lower(graph, box, spec, crown),
               "random slopes": spec_lower(graph, box, spec, shaken, slopes[graph.output])}
    for name, low in raw.items():
        _inside(Interval(low[:, :k], -low[:, k:]), ys, rtol, f"{name} output bound")
    widths = {}
    for method in methods:
        low, up = output_bounds(graph, box, method)
        _inside(Interval(low, up), ys, rtol, f"{method} output bound")
        widths[method] = (up - low).mean()
    return widths


def linf_box(x: np.ndarray, eps: float, low: float = 0.0, high: float = 1.0) -> Interval:
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    return Interval((xt - eps).clamp(min=low), (xt + eps).clamp(max=high))
