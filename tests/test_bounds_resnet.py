"""torchvision ResNets exported by the dynamo exporter (opset 20) are bounded end to end.

A small ResNet built from torchvision's BasicBlock (BatchNorm folded into Conv, MaxPool,
residual Add of two input-dependent tensors, AdaptiveAvgPool -> ReduceMean) is checked for
soundness by sampling; a full ResNet-18 (random init, 10 classes, 1x3x32x32) must build and get
finite IBP bounds that contain its outputs. CROWN on ResNet-18 is timed in
bench/bounds_resnet18.py (too slow for a unit test on a shared 2-core CPU).
"""

from __future__ import annotations

import collections
import io

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from tests.test_bounds_helpers import assert_contains, linf_box, output_bounds, run_ort
from verifiers.bounds import Method, build_graph


def _export(net: nn.Module, shape: tuple[int, ...]) -> onnx.ModelProto:
    buf = io.BytesIO()
    torch.onnx.export(net.eval(), (torch.zeros(1, *shape),), buf, dynamo=True,
                      external_data=False, input_names=["input"], output_names=["logits"])
    return onnx.load_model_from_string(buf.getvalue())


def _small_resnet() -> nn.Module:
    from torchvision.models.resnet import BasicBlock

    torch.manual_seed(0)
    down = nn.Sequential(nn.Conv2d(4, 8, 1, stride=2, bias=False), nn.BatchNorm2d(8))
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, stride=1, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
        nn.MaxPool2d(3, 2, 1), BasicBlock(4, 4), BasicBlock(4, 8, stride=2, downsample=down),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
    with torch.no_grad():  # non-trivial inference statistics
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return net.eval()


@pytest.fixture(scope="module")
def small_resnet():
    model = _export(_small_resnet(), (3, 8, 8))
    return model, build_graph(model)


def test_small_resnet_export_uses_the_resnet_ops(small_resnet):
    model, _ = small_resnet
    ops = collections.Counter(n.op_type for n in model.graph.node)
    assert {"Conv", "Relu", "MaxPool", "Add", "ReduceMean", "Gemm"} <= set(ops)
    assert "BatchNormalization" not in ops  # the dynamo exporter folds it into Conv


def test_small_resnet_points_inside_ibp_and_crown(small_resnet):
    """2 samples x (400 uniform + 64 corners + up to 2x96 PGD points)."""
    model, graph = small_resnet
    x = np.random.default_rng(0).random((2, 3, 8, 8), dtype=np.float32)
    np.testing.assert_allclose(graph.forward(torch.from_numpy(x)).numpy(), run_ort(model, x),
                               rtol=1e-4, atol=1e-5)
    widths = assert_contains(model, graph, linf_box(x, 0.02), methods=(Method.IBP,
                                                                       Method.CROWN),
                             n_random=400, limit=96)
    assert widths[Method.CROWN] < widths[Method.IBP]


def test_resnet18_dynamo_export_builds_and_ibp_contains_outputs():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = _export(torchvision.models.resnet18(num_classes=10), (3, 32, 32))
    graph = build_graph(model)
    assert graph.input_shape == (3, 32, 32) and graph.output_shape == (10,)
    x = np.random.default_rng(1).random((1, 3, 32, 32), dtype=np.float32)
    box = linf_box(x, 1e-5)
    low, up = output_bounds(graph, box, Method.IBP)
    assert bool(torch.isfinite(low).all() and torch.isfinite(up).all())
    gen = np.random.default_rng(2)
    pts = np.clip(x + gen.uniform(-1e-5, 1e-5, size=(16, 3, 32, 32)), 0, 1).astype(np.float32)
    pts = np.clip(pts, box.lower.numpy(), box.upper.numpy())
    ys = run_ort(model, pts)
    slack = 1e-4 * (1 + np.abs(ys))
    assert (ys >= low.numpy() - slack).all() and (ys <= up.numpy() + slack).all()
