"""Soundness and tightness of the bound engine on torch-exported networks.

Random MLPs and conv nets (residual Add, BatchNorm, AveragePool, MaxPool) exported by the
TorchScript and dynamo (opset 20) exporters; a tiny net whose bounds are computed by hand;
alpha-CROWN strictly tighter than CROWN where it must be; certified samples never attacked.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from examples.digits import DigitsMLP, export_onnx, load_digits_split, train
from tests.test_bounds_helpers import (
    assert_contains,
    identity_spec,
    linf_box,
    onnx_model,
    random_box,
)
from verifiers.attacks import PgdConfig, pgd_linf, recheck_linf
from verifiers.bounds import (
    AlphaConfig,
    BoundConfig,
    Interval,
    Method,
    bound_spec,
    build_graph,
    certify_samples,
)
from verifiers.bounds.alpha import optimise
from verifiers.bounds.crown import refine_bounds, spec_lower
from verifiers.bounds.ibp import interval_bounds
from verifiers.data import InputDomain
from verifiers.errors import UnsupportedOpError
from verifiers.model import load_model

DOMAIN = InputDomain(0.0, 1.0)


class ResidualNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1)
        self.pool = nn.AvgPool2d(2)
        self.max = nn.MaxPool2d(2)
        self.fc = nn.Linear(6 * 2 * 2, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.conv1(x)))
        h = torch.relu(h + self.conv2(h))  # residual
        return self.fc(self.max(self.pool(h)).flatten(1))


def _residual_net() -> ResidualNet:
    torch.manual_seed(1)
    net = ResidualNet()
    with torch.no_grad():  # non-trivial inference statistics for BatchNormalization
        net.bn.running_mean.uniform_(-0.3, 0.3)
        net.bn.running_var.uniform_(0.5, 1.5)
        net.bn.weight.uniform_(0.5, 1.5)
    return net.eval()


def _export_keep_bn(model: nn.Module, path) -> None:
    # do_constant_folding=False keeps BatchNormalization as its own node.
    torch.onnx.export(model, (torch.zeros(2, 1, 8, 8),), str(path), input_names=["input"],
                      output_names=["logits"], dynamo=False, do_constant_folding=False,
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})


@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """name -> (onnx proto): random MLP and residual conv net, both exporters."""
    import onnx

    root = tmp_path_factory.mktemp("bounds_models")
    torch.manual_seed(0)
    mlp = DigitsMLP(32).eval()
    net = _residual_net()
    export_onnx(mlp, root / "mlp_ts.onnx")
    _export_keep_bn(net, root / "res_ts.onnx")
    export_onnx(net, root / "res_dyn.onnx", dynamo=True, opset=20)
    models = {name: onnx.load(str(root / f"{name}.onnx"))
              for name in ("mlp_ts", "res_ts", "res_dyn")}
    ops = {name: {n.op_type for n in m.graph.node} for name, m in models.items()}
    assert "BatchNormalization" in ops["res_ts"] and {"AveragePool", "MaxPool", "Add"} <= ops[
        "res_ts"]
    assert models["res_dyn"].opset_import[0].version == 20
    return models


@pytest.mark.parametrize("name", ["mlp_ts", "res_ts", "res_dyn"])
def test_points_inside_bounds_of_exported_nets(exported, digits, name):
    model = exported[name]
    graph = build_graph(model)
    x = digits[2][:3]
    box = random_box(x, 0.2, seed=6) if name == "res_ts" else linf_box(x, 0.1)
    assert_contains(model, graph, box, n_random=500, seed=4, limit=96)


def test_exporters_agree(exported, digits):
    x, y = digits[2][:40], digits[3][:40]
    a = certify_samples(exported["res_ts"], x, y, 0.01, DOMAIN, Method.CROWN)
    b = certify_samples(exported["res_dyn"], x, y, 0.01, DOMAIN, Method.CROWN)
    finite = np.isfinite(a.lower_bounds)
    np.testing.assert_allclose(a.lower_bounds[finite], b.lower_bounds[finite], atol=1e-4)


def test_crown_tighter_than_ibp_on_relu_mlp():
    torch.manual_seed(3)
    layers = [nn.Flatten(), nn.Linear(64, 64)]
    for _ in range(3):
        layers += [nn.ReLU(), nn.Linear(64, 64)]
    layers += [nn.ReLU(), nn.Linear(64, 10)]
    graph = build_graph(_to_onnx(nn.Sequential(*layers).eval()))
    x = torch.rand(4, 1, 8, 8)
    box = Interval((x - 0.05).clamp(0, 1), (x + 0.05).clamp(0, 1))
    with torch.no_grad():
        ibp = interval_bounds(graph, box)
        refined, _ = refine_bounds(graph, box, ibp, max_rows=4096)
        raw = spec_lower(graph, box, identity_spec(4, 10), refined)  # CROWN alone, no max
    ibp_width = ibp[graph.output].upper - ibp[graph.output].lower
    crown_width = -raw[:, 10:] - raw[:, :10]
    assert (crown_width < ibp_width).float().mean() >= 0.95
    assert crown_width.mean() < 0.5 * ibp_width.mean()


def _to_onnx(module: nn.Module, sample_shape=(1, 8, 8)):
    import io

    import onnx

    buf = io.BytesIO()
    torch.onnx.export(module, (torch.zeros(2, *sample_shape),), buf, input_names=["input"],
                      output_names=["out"], dynamo=False,
                      dynamic_axes={"input": {0: "b"}, "out": {0: "b"}})
    return onnx.load_model_from_string(buf.getvalue())


def _tiny_net():
    """y = relu(x1 + x2 + 0.5) - relu(x1 - x2 - 0.5) on [-1, 1]^2 (bounds worked by hand)."""
    from onnx import helper

    nodes = [helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], transB=1),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "W2"], ["y"], transB=1)]
    inits = {"W1": np.array([[1, 1], [1, -1]], np.float32),
             "b1": np.array([0.5, -0.5], np.float32), "W2": np.array([[1, -1]], np.float32)}
    graph = build_graph(onnx_model(nodes, inits, [2], "y"))
    box = Interval(-torch.ones(1, 2), torch.ones(1, 2))
    return graph, box


def test_hand_computed_bounds_of_a_tiny_net():
    graph, box = _tiny_net()
    ibp = interval_bounds(graph, box)
    # h1 = x1 + x2 + 0.5 in [-1.5, 2.5], h2 = x1 - x2 - 0.5 in [-2.5, 1.5]; y in [0-1.5, 2.5-0].
    torch.testing.assert_close(ibp["h"].lower, torch.tensor([[-1.5, -2.5]]), atol=1e-6, rtol=0)
    torch.testing.assert_close(ibp["h"].upper, torch.tensor([[2.5, 1.5]]), atol=1e-6, rtol=0)
    assert ibp["y"].lower.item() == pytest.approx(-1.5, abs=1e-6)
    assert ibp["y"].upper.item() == pytest.approx(2.5, abs=1e-6)
    # CROWN lower: relu(h1) >= h1 (slope 1 since 2.5 > 1.5); relu(h2) <= 0.375 h2 + 0.9375,
    # so y >= 0.625 x1 + 1.375 x2 - 0.25 >= -2.25. Upper: relu(h1) <= 0.625 h1 + 0.9375 and
    # relu(h2) >= 0 give y <= 2.5.
    bounds, _ = refine_bounds(graph, box, ibp, max_rows=64)
    raw = spec_lower(graph, box, identity_spec(1, 1), bounds)
    assert raw[0, 0].item() == pytest.approx(-2.25, abs=1e-6)
    assert -raw[0, 1].item() == pytest.approx(2.5, abs=1e-6)
    # The engine reports the better of IBP and CROWN.
    spec = identity_spec(1, 1)
    assert bound_spec(graph, box, spec, Method.CROWN).lower[0, 0].item() == pytest.approx(-1.5)
    # alpha-CROWN: slope a on relu(h1) gives min = -1.5 + 0.5a - |a - 0.375| ... best at
    # a = 0.375: -1.3125, beating both IBP and CROWN; the true minimum is -1.
    cfg = BoundConfig(alpha=AlphaConfig(iterations=60, lr=0.05, patience=60), cascade=False)
    alpha = bound_spec(graph, box, spec, Method.ALPHA_CROWN, cfg).lower[0, 0].item()
    assert alpha <= -1.3125 + 1e-5  # no slope beats the optimum of the relaxation
    assert alpha == pytest.approx(-1.3125, abs=0.02)


def test_alpha_crown_moves_slopes_from_their_crown_start():
    # y = relu(x) on [-1, 2]: CROWN picks slope 1 (lower bound -1); the best slope is 0
    # (bound 0). A clamp inside the autograd graph would freeze the slope at exactly 1.
    from onnx import helper

    model = onnx_model([helper.make_node("Relu", ["x"], ["y"])], {}, [1], "y")
    graph = build_graph(model)
    box = Interval(torch.tensor([[-1.0]]), torch.tensor([[2.0]]))
    spec = identity_spec(1, 1)
    bounds = interval_bounds(graph, box)
    crown = spec_lower(graph, box, spec, bounds)  # CROWN alone, not maxed with IBP
    best = optimise(graph, box, spec, bounds, {}, crown, AlphaConfig(), 64,
                    done=lambda low: torch.zeros(len(low), dtype=torch.bool))
    assert crown[0, 0].item() == pytest.approx(-1.0, abs=1e-6)
    assert best[0, 0].item() > -0.05


def test_alpha_crown_tighter_on_random_mlp():
    torch.manual_seed(5)
    graph = build_graph(_to_onnx(DigitsMLP(48).eval()))
    x = torch.rand(3, 1, 8, 8)
    box = Interval((x - 0.05).clamp(0, 1), (x + 0.05).clamp(0, 1))
    spec = identity_spec(3, 10)
    cfg = BoundConfig(alpha=AlphaConfig(iterations=10), cascade=False)
    crown = bound_spec(graph, box, spec, Method.CROWN, cfg).lower
    alpha = bound_spec(graph, box, spec, Method.ALPHA_CROWN, cfg).lower
    assert bool((alpha >= crown - 1e-6).all())
    assert (alpha - crown).sum().item() > 1e-3


@pytest.fixture(scope="module")
def trained_mlp(digits, tmp_path_factory):
    x_tr, y_tr, _, _ = digits
    model = train(DigitsMLP(32), x_tr, y_tr, epochs=8, seed=0)
    path = export_onnx(model, tmp_path_factory.mktemp("trained") / "mlp.onnx")
    return path.read_bytes()


def test_certified_samples_are_never_attacked(trained_mlp, digits):
    loaded = load_model(trained_mlp)
    graph = build_graph(loaded.proto)
    x, y = digits[2][:60], digits[3][:60]
    eps = 0.04
    result = certify_samples(loaded.proto, x, y, eps, DOMAIN, Method.ALPHA_CROWN,
                             config=BoundConfig(alpha=AlphaConfig(iterations=10)))
    outcome = pgd_linf(_AsModule(graph), torch.from_numpy(x), torch.from_numpy(y),
                       PgdConfig(eps=eps, steps=30, restarts=2), DOMAIN,
                       torch.Generator().manual_seed(0))
    attacked = np.zeros(len(x), dtype=bool)
    fooled = outcome.fooled.numpy()
    attacked[fooled] = recheck_linf(loaded.runner, x[fooled], outcome.x_adv.numpy()[fooled],
                                    y[fooled], eps, DOMAIN)
    assert result.certified.sum() >= 10 and attacked.sum() >= 1
    assert not (result.certified & attacked).any()
    assert set(result.certified_by[result.certified]) <= {"ibp", "crown", "alpha-crown"}


class _AsModule(nn.Module):
    def __init__(self, graph) -> None:
        super().__init__()
        self.graph = graph

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.graph.forward(x)


def test_exp_in_the_middle_names_the_node():
    class WithExp(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(64, 8), nn.Linear(8, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(torch.exp(self.a(x.flatten(1))))

    model = _to_onnx(WithExp().eval())
    exp_node = next(n.name for n in model.graph.node if n.op_type == "Exp")
    with pytest.raises(UnsupportedOpError) as info:
        certify_samples(model, np.zeros((1, 1, 8, 8), np.float32), np.zeros(1, np.int64), 0.1,
                        DOMAIN)
    assert info.value.op_type == "Exp" and info.value.node_name == exp_node
