"""The ops added for issue #15: reductions (GlobalAveragePool, ReduceMean/Sum), piecewise-
linear functions (Clip, Abs, PRelu, HardSigmoid, Max/Min), selections (Slice, Split, Resize
nearest), ConvTranspose, smooth functions (Softplus, Elu, Erf, Gelu) and LayerNormalization.

Soundness by sampling (uniform points, box corners, PGD points pushing every bounded tensor and
output: IBP of every tensor, CROWN's intermediate and output bounds); the scalar relaxations
on dense grids of many intervals; exact checks against brute force (box vertices through
onnxruntime) where the bound must be exact; and clean refusals.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from onnx import helper

from tests.test_bounds_helpers import (
    assert_contains,
    linf_box,
    onnx_model,
    output_bounds,
    random_box,
    run_ort,
)
from verifiers.bounds import Interval, Method, build_graph
from verifiers.bounds.ibp import interval_bounds
from verifiers.bounds.ops import NodeSpec, build_op
from verifiers.errors import UnsupportedOpError

RNG = np.random.default_rng(15)
n = helper.make_node


def _w(*shape: int, scale: float = 0.5) -> np.ndarray:
    return (RNG.normal(size=shape) * scale).astype(np.float32)


def _i64(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


def reduce_family() -> tuple:
    nodes = [
        n("Conv", ["x", "W1", "b1"], ["c"], pads=[1, 1, 1, 1]),
        n("Relu", ["c"], ["r"]),
        n("GlobalAveragePool", ["r"], ["gap"]),
        n("ReduceMean", ["r", "ax23"], ["rm"], keepdims=0),  # opset 18: axes as an input
        n("ReduceSum", ["r", "ax_3"], ["rs"], keepdims=1),
        n("Flatten", ["gap"], ["f1"]),
        n("Flatten", ["rs"], ["f3"]),
        n("Concat", ["f1", "rm", "f3"], ["cat"], axis=1),
        n("Gemm", ["cat", "Wg"], ["out"], transB=1),
    ]
    inits = {"W1": _w(3, 2, 3, 3), "b1": _w(3), "ax23": _i64(2, 3), "ax_3": _i64(-1),
             "Wg": _w(5, 3 + 3 + 3 * 5)}
    return onnx_model(nodes, inits, [2, 5, 5], "out", opset=18), (2, 5, 5)


def piecewise_family() -> tuple:
    nodes = [
        n("Gemm", ["x", "W1", "b1"], ["h"], transB=1),
        n("Clip", ["h", "lo", "hi"], ["relu6"]),
        n("Gemm", ["x", "W2", "b2"], ["g"], transB=1),
        n("Abs", ["g"], ["ab"]),
        n("PRelu", ["g", "slope"], ["pr"]),
        n("HardSigmoid", ["h"], ["hs"], alpha=0.4, beta=0.3),
        n("Max", ["relu6", "pr"], ["mx"]),
        n("Min", ["ab", "hs"], ["mn"]),
        n("Max", ["g", "mc"], ["mxc"]),
        n("Min", ["h", "mc", "mc2"], ["mnc"]),
        n("Clip", ["g", "lo"], ["lower_only"]),
        n("Concat", ["mx", "mn", "mxc", "mnc", "lower_only"], ["cat"], axis=1),
        n("Gemm", ["cat", "W3"], ["out"], transB=1),
    ]
    inits = {
        "W1": _w(8, 6, scale=1.5), "b1": _w(8), "W2": _w(8, 6, scale=1.5), "b2": _w(8),
        "lo": np.float32(0.0), "hi": np.float32(1.0),
        "slope": np.array([-0.5, 0.0, 0.1, 0.5, 1.0, 1.5, -2.0, 0.3], np.float32),
        "mc": _w(8), "mc2": _w(1, 8),
        "W3": _w(4, 40),
    }
    return onnx_model(nodes, inits, [6], "out"), (6,)


def select_family() -> tuple:
    nodes = [
        n("Conv", ["x", "W1"], ["c"], pads=[1, 1, 1, 1]),
        n("Relu", ["c"], ["r"]),
        n("Slice", ["r", "st", "en", "axs", "stp"], ["sl"]),  # rows 1,3 ; cols 5,3,1
        n("Split", ["sl", "parts"], ["s0", "s1", "s2"], axis=1),
        n("Max", ["s0", "s2"], ["mx"]),
        n("Resize", ["mx", "", "scales"], ["up"], mode="nearest"),
        n("ConvTranspose", ["up", "Wt", "bt"], ["ct"], strides=[2, 1], pads=[1, 0, 0, 1],
          output_padding=[1, 0], dilations=[1, 2], group=2),
        n("Relu", ["ct"], ["rc"]),
        n("Flatten", ["rc"], ["f"]),
        n("Flatten", ["s1"], ["f1"]),
        n("Concat", ["f", "f1"], ["cat"], axis=1),
        n("Gemm", ["cat", "Wg"], ["out"], transB=1),
    ]
    inits = {
        "W1": _w(6, 2, 3, 3), "st": _i64(1, -2), "en": _i64(5, -100), "axs": _i64(2, 3),
        "stp": _i64(2, -2), "parts": _i64(2, 2, 2),
        "scales": np.array([1, 1, 2, 1.5], np.float32),
        "Wt": _w(2, 2, 3, 2), "bt": _w(4),
    }
    # mx: [2, 2, 3] -> up: [2, 4, 4] -> ct: [4, (4-1)*2+3+1-1 = 9, (4-1)+2+1-1 = 5]
    inits["Wg"] = _w(3, 4 * 9 * 5 + 2 * 2 * 3, scale=0.2)
    return onnx_model(nodes, inits, [2, 6, 6], "out", opset=18), (2, 6, 6)


def smooth_family() -> tuple:
    nodes = [
        n("Gemm", ["x", "W1", "b1"], ["h1"], transB=1),
        n("Softplus", ["h1"], ["a1"]),
        n("Gemm", ["a1", "W2", "b2"], ["h2"], transB=1),
        n("Elu", ["h2"], ["a2"], alpha=1.7),  # alpha > 1: not convex
        n("Gemm", ["a2", "W3", "b3"], ["h3"], transB=1),
        n("Gelu", ["h3"], ["a3"]),
        n("Gemm", ["a3", "W4", "b4"], ["h4"], transB=1),
        n("Erf", ["h4"], ["a4"]),
        n("LayerNormalization", ["a4", "gamma", "beta"], ["ln"], epsilon=1e-3),
        n("Elu", ["ln"], ["a5"], alpha=0.5),
        n("Gemm", ["a5", "W5"], ["out"], transB=1),
    ]
    inits = {"W1": _w(8, 5, scale=2.0), "b1": _w(8), "W2": _w(8, 8), "b2": _w(8),
             "W3": _w(8, 8), "b3": _w(8), "W4": _w(8, 8), "b4": _w(8),
             "gamma": _w(8) + 1.0, "beta": _w(8), "W5": _w(3, 8)}
    return onnx_model(nodes, inits, [5], "out", opset=20), (5,)


def layernorm_conv_family() -> tuple:
    nodes = [
        n("Conv", ["x", "W1", "b1"], ["c"]),
        n("LayerNormalization", ["c", "gamma"], ["ln"], axis=1, epsilon=1e-2),
        n("Relu", ["ln"], ["r"]),
        n("Flatten", ["r"], ["f"]),
        n("Gemm", ["f", "Wg"], ["out"], transB=1),
    ]
    inits = {"W1": _w(3, 1, 2, 2), "b1": _w(3), "gamma": _w(3, 1, 1) + 1.0, "Wg": _w(4, 27)}
    return onnx_model(nodes, inits, [1, 4, 4], "out", opset=17), (1, 4, 4)


FAMILIES = {"reduce": reduce_family, "piecewise": piecewise_family, "select": select_family,
            "smooth": smooth_family, "layernorm_conv": layernorm_conv_family}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request):
    model, shape = FAMILIES[request.param]()
    return request.param, model, shape, build_graph(model)


def test_forward_matches_onnxruntime(family):
    _, model, shape, graph = family
    x = (np.random.default_rng(1).random((6, *shape), dtype=np.float32) - 0.5) * 4
    ours = graph.forward(torch.from_numpy(x)).reshape(6, -1).numpy()
    np.testing.assert_allclose(ours, run_ort(model, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("uneven", [False, True])
def test_points_stay_inside_ibp_and_crown(family, uneven):
    """3 samples x (600 uniform + 64 corners + up to 2x128 PGD points) per box."""
    name, model, shape, graph = family
    x = (np.random.default_rng(2).random((3, *shape), dtype=np.float32) - 0.5) * 2
    box = random_box(x, 0.4, seed=5, low=-2, high=2) if uneven else linf_box(x, 0.2, -2, 2)
    widths = assert_contains(model, graph, box, methods=(Method.IBP, Method.CROWN),
                             n_random=600, limit=128)
    assert torch.isfinite(widths[Method.CROWN]), name
    assert widths[Method.CROWN] <= widths[Method.IBP] + 1e-6, name


# ---------------------------------------------------------------- scalar relaxations, exactly

SCALAR_CASES = [
    ("Abs", {}, []), ("Clip", {}, [np.float32(-0.5), np.float32(2.0)]),
    ("Clip", {}, ["", np.float32(6.0)]), ("HardSigmoid", {"alpha": 0.3, "beta": 0.6}, []),
    ("HardSigmoid", {"alpha": -0.5, "beta": 0.2}, []),
    ("PRelu", {}, ["slopes"]), ("Max", {}, ["c"]), ("Min", {}, ["c"]),
    ("Softplus", {}, []), ("Elu", {"alpha": 1.0}, []), ("Elu", {"alpha": 2.5}, []),
    ("Elu", {"alpha": 0.3}, []), ("Erf", {}, []), ("Gelu", {}, []),
]
PIECEWISE = {"Abs", "Clip", "HardSigmoid", "PRelu", "Max", "Min"}


def _scalar_op(op_type: str, attrs: dict, extra: list, size: int):
    gen = np.random.default_rng(3)
    consts: list = [None]
    inputs = ["a"]
    for k, value in enumerate(extra):
        if isinstance(value, str) and value == "slopes":
            value = gen.normal(size=size).astype(np.float32) * 1.5
        elif isinstance(value, str) and value == "c":
            value = gen.normal(size=size).astype(np.float32)
        inputs.append("" if isinstance(value, str) else f"k{k}")
        consts.append(None if isinstance(value, str) else np.asarray(value))
    spec = NodeSpec(n(op_type, inputs, ["b"], **attrs), tuple(consts),
                    ((size,),) + (None,) * len(extra), 20)
    return build_op(spec)


def _intervals(count: int = 600) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(7)
    centers = torch.cat([torch.randn(count, generator=gen) * 3,
                         torch.tensor([12.0, -12.0, 0.0, 0.0, -1.5, 1.5])])
    widths = torch.cat([torch.rand(count, generator=gen) * 8,
                        torch.tensor([1.0, 1.0, 0.0, 4.0, 0.5, 3.0])])
    widths[:60] = widths[:60] * 1e-4
    return (centers - widths / 2).double(), (centers + widths / 2).double()


@pytest.mark.parametrize("op_type, attrs, extra", SCALAR_CASES)
def test_scalar_lines_and_ranges_on_dense_grids(op_type, attrs, extra):
    """606 intervals (both sides of every kink, far tails, tiny and zero widths), 4001 grid
    points each: the two lines enclose f; IBP contains f, and for piecewise-linear functions
    equals the exact range (the grid holds every kink, so its extremes are exact)."""
    lower, upper = _intervals()
    op = _scalar_op(op_type, attrs, extra, len(lower))
    grid = lower + (upper - lower) * torch.linspace(0, 1, 4001, dtype=torch.float64)[:, None]
    kinks = [torch.broadcast_to(b, lower.shape).clamp(lower, upper) for b in op.breakpoints()]
    grid = torch.cat([grid, *(k[None] for k in kinks)])
    f = op.fn(grid)
    r = op.relax(lower[None, None], upper[None, None], None)
    ls, lb = r.lower_slope.reshape(-1), r.lower_bias.reshape(-1)
    us, ub = r.upper_slope.reshape(-1), r.upper_bias.reshape(-1)
    tol = 1e-9 * (1 + f.abs() + grid.abs())
    assert bool((ls * grid + lb <= f + tol).all()), "lower line above the function"
    assert bool((us * grid + ub >= f - tol).all()), "upper line below the function"
    box = op.interval(Interval(lower[None], upper[None]))
    assert bool((box.lower[0] <= f.amin(0) + 1e-12).all())
    assert bool((box.upper[0] >= f.amax(0) - 1e-12).all())
    if op_type in PIECEWISE:
        torch.testing.assert_close(box.lower[0], f.amin(0), atol=1e-12, rtol=0)
        torch.testing.assert_close(box.upper[0], f.amax(0), atol=1e-12, rtol=0)
        # Where [l, u] holds no kink the function is linear there: both lines are exact.
        straddle = op.refine_mask(Interval(lower, upper))
        torch.testing.assert_close(ls[~straddle], us[~straddle])
        torch.testing.assert_close(lb[~straddle], ub[~straddle])
    # The relaxation is not vacuous: narrow intervals give narrow gaps.
    narrow = (upper - lower) < 1e-3
    gap = ((us - ls) * grid + ub - lb)[:, narrow].abs().amax()
    assert gap < 1e-2


# ------------------------------------------------------------- exact checks by brute force


def _vertices(box: Interval) -> np.ndarray:
    lo, hi = box.lower[0].numpy().ravel(), box.upper[0].numpy().ravel()
    corners = np.array(list(itertools.product((0, 1), repeat=lo.size)), np.float32)
    pts = lo + corners * (hi - lo)
    return pts.reshape(len(pts), *box.lower.shape[1:])


LINEAR_CASES = {
    "gap": ([n("GlobalAveragePool", ["x"], ["g"]), n("Flatten", ["g"], ["out"])], {}, 13),
    "reduce_mean": ([n("ReduceMean", ["x"], ["out"], axes=[2], keepdims=0)], {}, 13),
    "reduce_sum": ([n("ReduceSum", ["x", "a"], ["r"], keepdims=0),
                    n("Flatten", ["r"], ["out"])], {"a": _i64(1, 3)}, 13),
    "slice": ([n("Slice", ["x", "s", "e", "a"], ["sl"]), n("Flatten", ["sl"], ["out"])],
              {"s": _i64(1), "e": _i64(3), "a": _i64(2)}, 13),
    "split": ([n("Split", ["x"], ["p", "q"], axis=3, num_outputs=2),
               n("Sub", ["p", "q"], ["d"]), n("Flatten", ["d"], ["out"])], {}, 18),
    "resize": ([n("Resize", ["x", "", "sc"], ["up"], mode="nearest"),
                n("Gemm", ["upf", "Wr"], ["out"], transB=1),
                n("Flatten", ["up"], ["upf"])],
               {"sc": np.array([1, 1, 1.5, 2], np.float32), "Wr": _w(3, 2 * 4 * 4)}, 13),
    "conv_transpose": ([n("ConvTranspose", ["x", "Wt", "bt"], ["ct"], strides=[2, 1],
                          pads=[0, 1, 1, 0], output_padding=[1, 0]),
                        n("Flatten", ["ct"], ["out"])],
                       {"Wt": _w(2, 3, 2, 2), "bt": _w(3)}, 13),
}


@pytest.mark.parametrize("case", sorted(LINEAR_CASES))
def test_linear_ops_bounds_are_exact(case):
    """One linear op on a [2, 3, 2] box (4096 vertices): the exact range of each output is
    attained at a vertex; CROWN equals it, and so does IBP (one linear layer) except after
    Resize + Gemm, where the upsampled copies are correlated (IBP then only contains it)."""
    nodes, inits, opset = LINEAR_CASES[case]
    if case == "resize":  # Flatten must come before the Gemm in file order
        nodes = [nodes[0], nodes[2], nodes[1]]
    model = onnx_model(nodes, inits, [2, 3, 2], "out", opset=opset)
    graph = build_graph(model)
    x = np.random.default_rng(4).random((1, 2, 3, 2), dtype=np.float32)
    box = random_box(x, 0.5, seed=6, low=-1, high=2)
    ys = run_ort(model, _vertices(box))
    for method in (Method.IBP, Method.CROWN):
        low, up = output_bounds(graph, box, method)
        if case == "resize" and method == Method.IBP:
            assert (low[0].numpy() < ys.min(0) - 0.1).all()  # strictly loose, as it must be
            assert (up[0].numpy() > ys.max(0) + 0.1).all()
            continue
        np.testing.assert_allclose(low[0].numpy(), ys.min(0), atol=2e-5, rtol=1e-5)
        np.testing.assert_allclose(up[0].numpy(), ys.max(0), atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("op_type", ["Clip", "Abs", "PRelu", "HardSigmoid", "Max"])
def test_piecewise_crown_exact_where_no_kink_is_crossed(op_type):
    """Gemm -> op -> Gemm on a small box whose pre-activations stay inside one linear piece:
    the network is linear there, so CROWN's bounds equal the vertex extremes."""
    nodes = [n("Gemm", ["x", "W1", "b1"], ["h"], transB=1),
             n("Gemm", ["x", "W2", "b2"], ["h2"], transB=1)]
    inits = {"W1": _w(6, 4), "b1": np.array([3, -3, 0.5, 2.5, -2.5, 0.2], np.float32),
             "W2": _w(6, 4), "b2": np.array([-3, 3, -0.5, -0.5, 2.5, -2.5], np.float32),
             "W3": _w(3, 6)}
    body = {"Clip": [n("Clip", ["h", "lo", "hi"], ["a"])],
            "Abs": [n("Abs", ["h"], ["a"])],
            "PRelu": [n("PRelu", ["h", "sl"], ["a"])],
            "HardSigmoid": [n("HardSigmoid", ["h"], ["a"], alpha=0.1, beta=0.5)],
            "Max": [n("Max", ["h", "h2"], ["a"])]}[op_type]
    inits.update({"lo": np.float32(0.0), "hi": np.float32(1.0), "sl": _w(6)})
    model = onnx_model([*nodes, *body, n("Gemm", ["a", "W3"], ["out"], transB=1)], inits,
                       [4], "out")
    graph = build_graph(model)
    x = np.full((1, 4), 0.0, np.float32)
    box = linf_box(x, 0.02, -1, 1)
    bounds = interval_bounds(graph, box)
    h = bounds["h"]
    if op_type != "Max":  # the box must stay inside one piece for the claim to apply
        kinks = {"Clip": (0.0, 1.0), "Abs": (0.0,), "PRelu": (0.0,),
                 "HardSigmoid": (-5.0, 5.0)}[op_type]
        for k in kinks:
            assert bool(((h.upper < k) | (h.lower > k)).all())
    else:
        d_lo = bounds["h"].lower - bounds["h2"].upper
        d_hi = bounds["h"].upper - bounds["h2"].lower
        assert bool(((d_lo > 0) | (d_hi < 0)).all())
    ys = run_ort(model, _vertices(box))
    low, up = output_bounds(graph, box, Method.CROWN)
    np.testing.assert_allclose(low[0].numpy(), ys.min(0), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(up[0].numpy(), ys.max(0), atol=1e-5, rtol=1e-5)


def test_max_of_two_ibp_is_exact_and_crown_sound_on_a_2d_grid():
    """y = max(x1, x2) - 0.3 min(x1, x2) on boxes of [-1, 1]^2: IBP of Max equals the true range;
    the CROWN bounds hold on a 201 x 201 grid and touch it where they must (corners)."""
    nodes = [n("Split", ["x"], ["a", "b"], axis=1, num_outputs=2),
             n("Max", ["a", "b"], ["m"]), n("Min", ["a", "b"], ["mn"]),
             n("Mul", ["mn", "k"], ["mk"]), n("Sub", ["m", "mk"], ["out"])]
    model = onnx_model(nodes, {"k": np.float32(0.3)}, [2], "out", opset=18)
    graph = build_graph(model)
    gen = np.random.default_rng(9)
    for _ in range(20):
        lo = gen.uniform(-1, 0.5, size=2).astype(np.float32)
        hi = lo + gen.uniform(0.01, 1.0, size=2).astype(np.float32)
        box = Interval(torch.from_numpy(lo)[None], torch.from_numpy(hi)[None])
        ibp = interval_bounds(graph, box)
        g1, g2 = np.meshgrid(np.linspace(lo[0], hi[0], 201), np.linspace(lo[1], hi[1], 201))
        pts = np.stack([g1.ravel(), g2.ravel()], 1).astype(np.float32)
        m = np.maximum(pts[:, 0], pts[:, 1])
        assert ibp["m"].lower.item() == pytest.approx(m.min(), abs=1e-6)
        assert ibp["m"].upper.item() == pytest.approx(m.max(), abs=1e-6)
        ys = run_ort(model, pts)[:, 0]
        low, up = output_bounds(graph, box, Method.CROWN)
        assert low.item() <= ys.min() + 1e-6 and up.item() >= ys.max() - 1e-6


# ---------------------------------------------------------------------------- refusals


REFUSALS = {
    "gelu_tanh": (n("Gelu", ["h"], ["z"], approximate="tanh", name="bad"), {}, 20),
    "resize_linear": (n("Resize", ["h4", "", "sc"], ["z"], mode="linear", name="bad"),
                      {"sc": np.array([1, 1, 2, 2], np.float32)}, 18),
    "slice_batch": (n("Slice", ["h", "s", "e", "a"], ["z"], name="bad"),
                    {"s": _i64(0), "e": _i64(1), "a": _i64(0)}, 18),
    "split_batch": (n("Split", ["h"], ["z", "z2"], axis=0, num_outputs=2, name="bad"), {}, 18),
    "reduce_batch": (n("ReduceMean", ["h", "a"], ["z"], name="bad"), {"a": _i64(0)}, 18),
    "reduce_all": (n("ReduceSum", ["h"], ["z"], name="bad"), {}, 18),
    "max_three": (n("Max", ["h", "h", "h"], ["z"], name="bad"), {}, 18),
    "clip_bound_from_input": (n("Clip", ["h", "h"], ["z"], name="bad"), {}, 18),
    "layernorm_batch": (n("LayerNormalization", ["h", "g"], ["z"], axis=0, name="bad"),
                        {"g": np.ones((1, 6), np.float32)}, 18),
    "conv_transpose_output_shape": (
        n("ConvTranspose", ["h4", "Wt"], ["z"], output_shape=[5, 5], name="bad"),
        {"Wt": _w(1, 1, 2, 2)}, 18),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_unsupported_cases_are_refused_by_name(case):
    node, inits, opset = REFUSALS[case]
    pre = [n("Gemm", ["x", "W"], ["h"], transB=1),
           n("Reshape", ["h", "s4"], ["h4"])]
    inits = {"W": _w(6, 6), "s4": _i64(-1, 1, 2, 3), **inits}
    model = onnx_model([*pre, node, n("Identity", ["z"], ["out"])], inits, [6], "out",
                       opset=opset)
    with pytest.raises(UnsupportedOpError) as info:
        build_graph(model)
    assert info.value.node_name == "bad"
    assert node.op_type in str(info.value)


def test_split_outputs_are_separate_nodes_and_unused_ones_are_fine():
    nodes = [n("Split", ["x", "parts"], ["a", "b", "c"], axis=1),
             n("Sub", ["c", "a"], ["out"])]
    model = onnx_model(nodes, {"parts": _i64(2, 1, 2)}, [5], "out", opset=18)
    graph = build_graph(model)
    assert [nd.output for nd in graph.nodes] == ["a", "c", "out"]  # "b" is unused
    x = np.random.default_rng(0).random((4, 5), dtype=np.float32)
    np.testing.assert_allclose(graph.forward(torch.from_numpy(x)).numpy(), run_ort(model, x))
