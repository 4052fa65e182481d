"""Small digit classifiers trained on scikit-learn's bundled 8x8 digits, exported to ONNX.

Run as a script to (re)build the demo artifacts shipped in this folder:

    python -m examples.digits        # writes examples/digits_cnn.onnx and digits_eval.npz

The tests import the same functions to train their own models in seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HERE = Path(__file__).resolve().parent
N_EVAL = 300


def load_digits_split(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_eval, y_eval): images N x 1 x 8 x 8 in [0, 1], labels int64."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    return x[N_EVAL:], y[N_EVAL:], x[:N_EVAL], y[:N_EVAL]


class DigitsCNN(nn.Module):
    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.fc1 = nn.Linear(2 * width * 4 * 4, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = torch.flatten(x, 1)
        return self.fc2(F.relu(self.fc1(x)))


class DigitsMLP(nn.Module):
    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _pgd_train_examples(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
                        steps: int, generator: torch.Generator) -> torch.Tensor:
    alpha = 2.5 * eps / steps
    lo, hi = (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)
    x_adv = lo + (hi - lo) * torch.rand(x.shape, generator=generator)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y)
        (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = torch.min(torch.max(x_adv.detach() + alpha * grad.sign(), lo), hi)
    return x_adv.detach()


def train(model: nn.Module, x: np.ndarray, y: np.ndarray, *, epochs: int = 30,
          adversarial_eps: float = 0.0, seed: int = 0, batch_size: int = 64,
          noise_sigma: float = 0.0) -> nn.Module:
    """Plain, PGD adversarial (Madry et al.) or Gaussian-noise training (``noise_sigma``: the
    augmentation randomized smoothing needs, Cohen et al. 2019), deterministic per seed.

    The parameters are re-initialised from ``seed`` first: torch 2.14 seeds its global
    generator differently in every process, so weights drawn when the model was built would
    make the trained model (and every figure measured on it) change from run to run.
    """
    torch.manual_seed(seed)
    for layer in model.modules():
        if hasattr(layer, "reset_parameters"):
            layer.reset_parameters()
    generator = torch.Generator().manual_seed(seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=generator)
        for start in range(0, len(xt), batch_size):
            idx = order[start:start + batch_size]
            xb, yb = xt[idx], yt[idx]
            if adversarial_eps > 0:
                model.eval()
                xb = _pgd_train_examples(model, xb, yb, adversarial_eps, 7, generator)
                model.train()
            if noise_sigma > 0:
                xb = xb + noise_sigma * torch.randn(xb.shape, generator=generator)
            opt.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
    return model.eval()


def export_onnx(model: nn.Module, path: Path, *, sample_shape: tuple[int, ...] = (1, 8, 8),
                dynamo: bool = False, opset: int | None = None) -> Path:
    """Export with a dynamic batch dimension through torch's own exporters."""
    model = model.eval()
    dummy = torch.zeros(2, *sample_shape)
    if dynamo:
        # external_data=False: the dynamo exporter otherwise writes weights to a side file,
        # which intake refuses (an upload must be one self-contained file).
        kwargs = {"dynamic_shapes": ({0: torch.export.Dim("batch")},), "dynamo": True,
                  "external_data": False}
    else:
        kwargs = {"dynamic_axes": {"input": {0: "batch"}, "logits": {0: "batch"}},
                  "dynamo": False}
    if opset is not None:
        kwargs["opset_version"] = opset
    torch.onnx.export(model, (dummy,), str(path), input_names=["input"],
                      output_names=["logits"], **kwargs)
    return path


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return float((model(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def main() -> None:
    x_tr, y_tr, x_ev, y_ev = load_digits_split()
    model = train(DigitsCNN(), x_tr, y_tr, epochs=20, adversarial_eps=0.1)
    print(f"clean accuracy on the evaluation split: {accuracy(model, x_ev, y_ev):.3f}")
    export_onnx(model, HERE / "digits_cnn.onnx")
    np.savez_compressed(HERE / "digits_eval.npz", x=x_ev, y=y_ev)
    print(f"wrote {HERE / 'digits_cnn.onnx'} and {HERE / 'digits_eval.npz'}")


if __name__ == "__main__":
    main()
