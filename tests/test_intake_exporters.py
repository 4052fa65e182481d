"""Intake accepts what torch's exporters produce, and the torch conversion gives the logits.

Every model is exported inside the test by torch 2.14 itself: the dynamo exporter (opset 20)
with a dynamic or a fixed batch, and the TorchScript exporter at opsets 13 and 17.
"""

from __future__ import annotations

import functools
import io
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from verifiers.model import LogitsView, fidelity, load_model, to_torch

CPU = torch.device("cpu")


class ResidualCNN(nn.Module):
    """Conv + BatchNorm, MaxPool, AveragePool, a residual Add, view(N, -1), Softmax head."""

    def __init__(self, head: str = "softmax") -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1)
        self.fc = nn.Linear(6 * 4 * 4, 10)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.max_pool2d(F.relu(self.bn(self.conv(x))), 2)
        h = h + F.avg_pool2d(F.relu(self.conv2(h)), 3, stride=1, padding=1)
        z = self.fc(h.view(x.size(0), -1))
        if self.head == "softmax":
            return F.softmax(z, dim=1).reshape(x.size(0), 10)
        if self.head == "log_softmax":
            return F.log_softmax(z, dim=1)
        return z

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        head, self.head = self.head, "none"
        try:
            return self(x)
        finally:
            self.head = head


class SquashMLP(nn.Module):
    """Flatten, Tanh and Sigmoid activations, a Sigmoid head."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 32),
                                 nn.Sigmoid(), nn.Linear(32, 10), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PlainMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


ARCHS = {
    "mlp": (PlainMLP, {}),
    "cnn_softmax": (ResidualCNN, {"head": "softmax"}),
    "cnn_log_softmax": (ResidualCNN, {"head": "log_softmax"}),
    "squash_mlp": (SquashMLP, {}),
}
EXPORTERS = ("dynamo_dynamic", "dynamo_fixed", "torchscript13_fixed", "torchscript17_dynamic")


@functools.cache
def _net(arch: str) -> nn.Module:
    cls, kwargs = ARCHS[arch]
    torch.manual_seed(sorted(ARCHS).index(arch))  # fixed per arch (str hash is salted)
    net = cls(**kwargs)
    with torch.no_grad():  # non-trivial BatchNorm statistics, as after training
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return net.eval()


@functools.cache
def _export(arch: str, exporter: str) -> bytes:
    net = _net(arch)
    buf = io.BytesIO()
    names = {"input_names": ["input"], "output_names": ["scores"]}
    if exporter.startswith("dynamo"):
        kwargs = {"dynamo": True, "external_data": False}
        if exporter == "dynamo_dynamic":
            kwargs["dynamic_shapes"] = ({0: torch.export.Dim("batch")},)
        dummy = torch.zeros(2 if exporter == "dynamo_dynamic" else 1, 1, 8, 8)
    else:
        kwargs = {"dynamo": False, "opset_version": 13 if "13" in exporter else 17}
        if exporter.endswith("dynamic"):
            kwargs["dynamic_axes"] = {"input": {0: "n"}, "scores": {0: "n"}}
        dummy = torch.zeros(1, 1, 8, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (dummy,), buf, **names, **kwargs)
    return buf.getvalue()


@pytest.fixture(scope="module")
def inputs() -> np.ndarray:
    return np.random.default_rng(0).random((33, 1, 8, 8), dtype=np.float32)


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_exported_model_is_accepted_and_batched(arch: str, exporter: str,
                                                inputs: np.ndarray) -> None:
    loaded = load_model(_export(arch, exporter))
    info = loaded.info
    assert info.producer.startswith("pytorch")
    assert info.opset == {"dynamo_dynamic": 20, "dynamo_fixed": 20, "torchscript13_fixed": 13,
                          "torchscript17_dynamic": 17}[exporter]
    assert info.input_name == "input" and info.input_dtype == "float"
    assert info.input_shape[1:] == [1, 8, 8]
    assert loaded.num_classes == 10
    # A fixed batch of 1 is rewritten; either way the runner takes the whole batch at once.
    assert info.batch == ("rewritten" if exporter.endswith("fixed") else "dynamic")
    assert loaded.runner.fixed_batch is None
    expected = _net(arch)(torch.from_numpy(inputs)).detach().numpy()
    before = loaded.runner.forward_passes
    np.testing.assert_allclose(loaded.runner.run(inputs, batch_size=16), expected, atol=1e-5)
    assert loaded.runner.forward_passes - before == len(inputs)
    assert sum(info.op_histogram.values()) >= 4


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_output_kind_and_logits(arch: str, exporter: str, inputs: np.ndarray) -> None:
    loaded = load_model(_export(arch, exporter))
    kind = {"cnn_softmax": "probabilities", "cnn_log_softmax": "log_probabilities"}.get(
        arch, "logits")
    assert loaded.info.output_kind == kind
    module = to_torch(loaded.proto, loaded.info.output_kind, CPU)
    assert fidelity(loaded.runner, module, inputs, CPU) < 1e-5
    net = _net(arch)
    with torch.no_grad():
        got = module(torch.from_numpy(inputs)).numpy()
        want = (net.logits(torch.from_numpy(inputs)) if kind != "logits"
                else net(torch.from_numpy(inputs))).numpy()
    # Softmax/LogSoftmax heads are cut: the module returns the true logits, not log(p).
    np.testing.assert_allclose(got, want, atol=1e-4)
    if kind != "logits":
        assert loaded.info.logits_from.startswith("cut ")
    if arch == "squash_mlp":
        assert any("Sigmoid" in note for note in loaded.info.notes)


def test_logits_keep_gradients_where_softmax_saturates() -> None:
    """log(p) through a clamp has zero gradient once p underflows; the cut logits do not."""
    from onnx2pytorch import ConvertModel

    loaded = load_model(_export("cnn_softmax", "dynamo_dynamic"))
    cut = to_torch(loaded.proto, loaded.info.output_kind, CPU)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        uncut = LogitsView(ConvertModel(loaded.proto, experimental=True), "probabilities")
    x = torch.full((1, 1, 8, 8), 400.0, requires_grad=True)  # far outside: saturated softmax
    with torch.no_grad():
        probs = torch.softmax(cut(x), 1)
    worst = int(probs.argmin())
    assert float(probs[0, worst]) == 0.0  # underflowed in float32
    (g_cut,) = torch.autograd.grad(cut(x)[0, worst], x)
    (g_uncut,) = torch.autograd.grad(uncut(x)[0, worst], x)
    assert float(g_cut.abs().sum()) > 0
    assert float(g_uncut.abs().sum()) == 0  # what a log(softmax) view would have given


def test_parameter_count_and_shape_constants() -> None:
    loaded = load_model(_export("mlp", "dynamo_fixed"))
    assert loaded.info.parameter_count == sum(p.numel() for p in _net("mlp").parameters())
    assert loaded.info.as_dict()["batch"]["status"] == "rewritten"


def test_shared_folded_bias_converts() -> None:
    """TorchScript folds BatchNorm into bias-free convs and shares one zero bias through
    Identity nodes; the converter must still see it as a weight."""
    torch.manual_seed(3)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.Flatten(), nn.Linear(256, 10)).eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, 1, 8, 8),), buf, dynamo=False, opset_version=13)
    loaded = load_model(buf.getvalue())
    assert loaded.info.op_histogram.get("Identity", 0) >= 1  # the shared bias, as exported
    x = np.random.default_rng(1).random((5, 1, 8, 8), dtype=np.float32)
    module = to_torch(loaded.proto, loaded.info.output_kind, CPU)
    assert fidelity(loaded.runner, module, x, CPU) < 1e-5
