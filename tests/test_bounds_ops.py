"""Every op relaxation on hand-built ONNX graphs: the engine's forward pass matches
onnxruntime, and sampled, corner and PGD points stay inside IBP, CROWN and alpha-CROWN bounds."""

from __future__ import annotations

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
from verifiers.bounds import Method, build_graph, certify_samples
from verifiers.bounds.ops import NodeSpec, build_op
from verifiers.data import InputDomain
from verifiers.errors import UnsupportedOpError

RNG = np.random.default_rng(0)


def _w(*shape: int, scale: float = 0.5) -> np.ndarray:
    return (RNG.normal(size=shape) * scale).astype(np.float32)


def conv_family() -> tuple:
    n = helper.make_node
    nodes = [
        n("Conv", ["x", "W1", "b1"], ["c1"], strides=[1, 2], pads=[1, 0, 2, 1], dilations=[2, 1]),
        n("BatchNormalization", ["c1", "s", "bb", "m", "v"], ["bn"], epsilon=1e-3),
        n("LeakyRelu", ["bn"], ["lr"], alpha=0.1),
        n("Conv", ["lr", "W2"], ["c2"], group=2, auto_pad="SAME_UPPER"),
        n("MaxPool", ["c2"], ["mp"], kernel_shape=[2, 2], strides=[1, 1], pads=[1, 1, 0, 0]),
        n("AveragePool", ["mp"], ["ap"], kernel_shape=[3, 3], strides=[2, 2],
          pads=[1, 1, 1, 1], count_include_pad=0),
        n("Pad", ["ap", "pads", "pv"], ["pd"]),
        n("Transpose", ["pd"], ["tr"], perm=[0, 2, 3, 1]),
        n("Flatten", ["tr"], ["fl"]),
        n("Gemm", ["fl", "Wg", "Cg"], ["g1"], alpha=0.7, beta=1.3),
        n("Tanh", ["g1"], ["th"]),
        n("MatMul", ["th", "Wm"], ["mm"]),
        n("Sigmoid", ["mm"], ["sg"]),
        n("Sub", ["sc", "sg"], ["sb"]),  # constant minus input
        n("Mul", ["sb", "mc"], ["ml"]),
        n("Div", ["ml", "dc"], ["out"]),
    ]
    inits = {
        "W1": _w(4, 2, 3, 3), "b1": _w(4), "s": _w(4) + 1.0, "bb": _w(4),
        "m": _w(4), "v": np.abs(_w(4)) + 0.5, "W2": _w(4, 2, 2, 2),
        "pads": np.array([0, 0, 1, 0, 0, 0, 0, 2], np.int64), "pv": np.float32(0.25),
        "Wg": _w(64, 8, scale=0.3), "Cg": _w(1, 8), "Wm": _w(8, 6), "sc": _w(6),
        "mc": _w(6) * 4, "dc": np.array([0.5], np.float32),
    }
    return onnx_model(nodes, inits, [2, 6, 6], "out"), (2, 6, 6)


def residual_family() -> tuple:
    n = helper.make_node
    nodes = [
        n("Constant", [], ["shape"], value=helper.make_tensor("s", 7, [3], [0, 2, 3])),
        n("Reshape", ["x", "shape"], ["r"]),
        n("MatMul", ["Wl", "r"], ["lm"]),
        n("Relu", ["lm"], ["rl"]),
        n("Transpose", ["rl"], ["t"], perm=[0, 2, 1]),
        n("Neg", ["t"], ["ng"]),
        n("Concat", ["t", "ng", "cc"], ["cat"], axis=-1),
        n("Flatten", ["cat"], ["f"]),
        n("Gemm", ["f", "Wa", "ba"], ["h"], transB=1),
        n("Relu", ["h"], ["rh"]),
        n("Gemm", ["rh", "Wb", "bb"], ["g"], transB=1),
        n("Add", ["rh", "g"], ["res"]),
        n("Sub", ["g", "res"], ["dif"]),
        n("Identity", ["dif"], ["idn"]),
        n("Unsqueeze", ["idn", "ax"], ["us"]),
        n("Squeeze", ["us", "ax"], ["sq"]),
        n("Relu", ["sq"], ["rs"]),
        n("Add", ["ac_c", "rs"], ["ac"]),
        n("Gemm", ["ac", "Wc", "bc"], ["out"], transB=1),
    ]
    inits = {
        "Wl": _w(4, 2), "cc": _w(1, 3, 2), "Wa": _w(8, 30, scale=0.3), "ba": _w(8),
        "Wb": _w(8, 8), "bb": _w(8), "ax": np.array([1], np.int64), "ac_c": _w(8),
        "Wc": _w(3, 8), "bc": _w(3),
    }
    # A fixed batch of one, as older exporters wrote it: Concat may then take a constant.
    return onnx_model(nodes, inits, [6], "out", batch=1), (6,)


def one_d_family() -> tuple:
    n = helper.make_node
    nodes = [
        n("Conv", ["x", "W"], ["c"], strides=[2], pads=[1, 1]),
        n("Relu", ["c"], ["r"]),
        n("MaxPool", ["r"], ["mp"], kernel_shape=[3], strides=[1], pads=[1, 1]),
        n("AveragePool", ["mp"], ["ap"], kernel_shape=[2], strides=[2]),
        n("Flatten", ["ap"], ["f"]),
        n("Gemm", ["f", "Wg"], ["out"], transB=1),
    ]
    inits = {"W": _w(4, 3, 3), "Wg": _w(5, 8)}
    return onnx_model(nodes, inits, [3, 8], "out"), (3, 8)


def pool_family() -> tuple:
    # MaxPool straight on the input: with uneven boxes the window's largest lower bound and
    # largest upper bound sit on different inputs, the case the relaxation must get right.
    n = helper.make_node
    nodes = [n("MaxPool", ["x"], ["mp"], kernel_shape=[3, 3], strides=[2, 2],
               pads=[1, 1, 1, 1]),
             n("MaxPool", ["mp"], ["m2"], kernel_shape=[2, 2], strides=[1, 1]),
             n("Flatten", ["m2"], ["out"])]
    return onnx_model(nodes, {}, [2, 5, 5], "out"), (2, 5, 5)


FAMILIES = {"conv": conv_family, "residual": residual_family, "one_d": one_d_family,
            "pool": pool_family}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request):
    model, shape = FAMILIES[request.param]()
    return request.param, model, shape, build_graph(model)


def test_forward_matches_onnxruntime(family):
    _, model, shape, graph = family
    x = np.random.default_rng(1).random((5, *shape), dtype=np.float32)
    ours = graph.forward(torch.from_numpy(x)).reshape(5, -1).numpy()
    np.testing.assert_allclose(ours, run_ort(model, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("uneven", [False, True])
def test_points_stay_inside_every_method(family, uneven):
    name, model, shape, graph = family
    x = np.random.default_rng(2).random((3, *shape), dtype=np.float32)
    box = random_box(x, 0.3, seed=5) if uneven else linf_box(x, 0.15)
    widths = assert_contains(model, graph, box, n_random=600, limit=128)
    # The cascade keeps the best bound, so a stronger method is never looser.
    assert widths[Method.CROWN] <= widths[Method.IBP] + 1e-6, name
    assert widths[Method.ALPHA_CROWN] <= widths[Method.CROWN] + 1e-6, name


@pytest.mark.parametrize("name", ["conv", "one_d"])
def test_dense_and_transposed_convolution_backward_agree(name, monkeypatch):
    """Small convolutions run their backward step as a dense matrix on the CPU, large ones
    as a transposed convolution: both paths give the same bounds, and both are sound."""
    import verifiers.bounds.ops.conv as conv

    model, shape = FAMILIES[name]()
    x = np.random.default_rng(8).random((2, *shape), dtype=np.float32)
    box = random_box(x, 0.3, seed=9)
    dense = output_bounds(build_graph(model), box, Method.CROWN)
    monkeypatch.setattr(conv, "_DENSE_LIMIT", 0)
    graph = build_graph(model)
    transposed = output_bounds(graph, box, Method.CROWN)
    for a, b in zip(dense, transposed, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert_contains(model, graph, box, methods=(Method.CROWN,), n_random=300)


def test_trailing_softmax_is_stripped_and_certification_unchanged():
    n = helper.make_node
    base = [n("Gemm", ["x", "W1"], ["h"], transB=1), n("Relu", ["h"], ["r"]),
            n("Gemm", ["r", "W2"], ["logits"], transB=1)]
    inits = {"W1": _w(16, 6), "W2": _w(4, 16)}
    plain = onnx_model(base, inits, [6], "logits")
    soft = onnx_model([*base, n("Softmax", ["logits"], ["p"], axis=-1, name="head"),
                       n("Identity", ["p"], ["prob"])], inits, [6], "prob")
    graph = build_graph(soft)
    assert "Softmax at node 'head'" in graph.stripped_head
    x = np.random.default_rng(3).random((20, 6), dtype=np.float32)
    probs = torch.softmax(graph.forward(torch.from_numpy(x)), -1).numpy()
    np.testing.assert_allclose(probs, run_ort(soft, x), rtol=1e-5, atol=1e-6)
    y = run_ort(plain, x).argmax(1)
    a = certify_samples(plain, x, y, 0.05, InputDomain(0.0, 1.0), Method.CROWN)
    b = certify_samples(soft, x, y, 0.05, InputDomain(0.0, 1.0), Method.CROWN)
    assert a.certified.any() and not a.certified.all()
    np.testing.assert_array_equal(a.certified, b.certified)
    assert "Softmax" in b.note


def _unsupported(nodes, inits, shape=(6,)):
    return onnx_model(nodes, inits, list(shape), "out")


@pytest.mark.parametrize("case", ["exp", "product", "mid_softmax", "steep_leaky", "batch_move",
                                  "gemm_bias_from_input"])
def test_unsupported_ops_name_the_node(case):
    n = helper.make_node
    first = n("Gemm", ["x", "W"], ["h"], transB=1, name="first")
    last = n("Gemm", ["z", "W2"], ["out"], transB=1, name="last")
    inits = {"W": _w(6, 6), "W2": _w(3, 6)}
    middle = {
        "exp": (n("Exp", ["h"], ["z"], name="the_exp"), "Exp", "the_exp"),
        "product": (n("Mul", ["h", "h"], ["z"], name="square"), "Mul", "square"),
        "mid_softmax": (n("Softmax", ["h"], ["z"], name="sm"), "Softmax", "sm"),
        "steep_leaky": (n("LeakyRelu", ["h"], ["z"], alpha=2.0, name="lk"), "LeakyRelu", "lk"),
        "batch_move": (n("Transpose", ["h"], ["z"], perm=[1, 0], name="tp"), "Transpose", "tp"),
        "gemm_bias_from_input": (n("Gemm", ["h", "W", "h"], ["z"], name="gc"), "Gemm", "gc"),
    }[case]
    model = _unsupported([first, middle[0], last], inits)
    with pytest.raises(UnsupportedOpError) as info:
        build_graph(model)
    assert info.value.op_type == middle[1]
    assert info.value.node_name == middle[2]
    assert middle[2] in str(info.value)


@pytest.mark.parametrize("op_type, attrs", [("Relu", {}), ("LeakyRelu", {"alpha": 0.2}),
                                            ("Sigmoid", {}), ("Tanh", {})])
def test_activation_lines_enclose_the_function(op_type, attrs):
    """Lower and upper lines hold on a dense grid of each [l, u], in every regime (both
    sides of 0, far tails, tiny and zero widths), and for any admissible alpha."""
    gen = torch.Generator().manual_seed(7)
    centers = torch.cat([torch.randn(400, generator=gen) * 3, torch.tensor([10.0, -10.0, 0.0])])
    widths = torch.cat([torch.rand(400, generator=gen) * 6, torch.tensor([0.5, 0.5, 0.0])])
    widths[:40] = widths[:40] * 1e-4
    lower, upper = centers - widths / 2, centers + widths / 2
    spec = NodeSpec(helper.make_node(op_type, ["a"], ["b"], **attrs), (None,),
                    ((len(lower),),), 17)
    op = build_op(spec)
    alpha = None
    if op.has_alpha:
        lo, hi = op.alpha_range()
        alpha = lo + (hi - lo) * torch.rand(1, 1, len(lower), generator=gen)
    r = op.relax(lower[None, None], upper[None, None], alpha)
    grid = lower + (upper - lower) * torch.linspace(0, 1, 2001)[:, None]  # [2001, n]
    f = op.fn(grid)
    ls, lb = r.lower_slope.reshape(-1), r.lower_bias
    us, ub = r.upper_slope.reshape(-1), r.upper_bias
    lb = torch.zeros(()) if lb is None else lb.reshape(-1)
    ub = torch.zeros(()) if ub is None else ub.reshape(-1)
    tol = 1e-6 * (1 + f.abs())
    assert bool((ls * grid + lb <= f + tol).all()), "lower line above the function"
    assert bool((us * grid + ub >= f - tol).all()), "upper line below the function"
