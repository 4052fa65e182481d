"""Benchmark of the smoothing check's CERTIFY against a reference, side by side.

Same model (a digits CNN trained with Gaussian noise, sigma 0.25), same images (evenly spaced
evaluation samples), same sigma, N0, N and alpha. The reference is IBM ART's
``PyTorchRandomizedSmoothing.certify`` (art.estimators.certification.randomized_smoothing)
when it imports, else Cohen et al.'s CERTIFY re-implemented in a few lines below. ART is not
a dependency of Robustgate: run the bench from a separate environment that has it, e.g.

    python -m venv /tmp/art-venv
    python -c 'import site; print(site.getsitepackages()[0])' \
        > /tmp/art-venv/lib/python3.11/site-packages/robustgate.pth   # this venv's packages
    /tmp/art-venv/bin/pip install --no-deps adversarial-robustness-toolbox statsmodels pandas patsy
    /tmp/art-venv/bin/python bench/smoothing.py [--n 10000 --samples 100]

Robustgate runs the trusted torch conversion of the exported ONNX (what the check runs); the
reference runs the trained torch module itself (the same function). The two use different
noise, so radii differ by Monte-Carlo noise: the bench prints the disagreement between the two
tools next to Robustgate's disagreement with itself under another seed (the noise floor), and
the certified accuracies with their Clopper-Pearson intervals.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from examples.digits import DigitsCNN, export_onnx, load_digits_split, train  # noqa: E402
from verifiers.groups import clopper_pearson  # noqa: E402
from verifiers.model import load_model, to_torch  # noqa: E402
from verifiers.smoothing import (  # noqa: E402
    ABSTAIN,
    PRESETS,
    certify_samples,
    max_radius,
    torch_base,
)


def reference_cohen(model: nn.Module, x: np.ndarray, sigma: float, n0: int, n: int,
                    alpha: float, batch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """CERTIFY as published (Cohen et al. 2019, github.com/locuslab/smoothing core.py)."""
    from scipy.stats import beta, norm

    rng = np.random.default_rng(seed)

    def counts(x0: np.ndarray, num: int) -> np.ndarray:
        out = np.zeros(10, dtype=np.int64)
        for start in range(0, num, batch):
            k = min(batch, num - start)
            noisy = x0[None] + rng.normal(scale=sigma, size=(k, *x0.shape)).astype(np.float32)
            with torch.no_grad():
                labels = model(torch.from_numpy(noisy)).argmax(1).numpy()
            out += np.bincount(labels, minlength=10)
        return out

    pred, rad = [], []
    for x0 in x:
        c_a = int(counts(x0, n0).argmax())
        n_a = int(counts(x0, n)[c_a])
        p_a = 0.0 if n_a == 0 else float(beta.ppf(alpha, n_a, n - n_a + 1))
        pred.append(c_a if p_a >= 0.5 else ABSTAIN)
        rad.append(sigma * norm.ppf(p_a) if p_a >= 0.5 else 0.0)
    return np.array(pred), np.array(rad)


def reference_art(model: nn.Module, x: np.ndarray, sigma: float, n0: int, n: int,
                  alpha: float, batch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from art.estimators.certification.randomized_smoothing import PyTorchRandomizedSmoothing

    np.random.seed(seed)  # ART draws its noise from numpy's global generator
    art = PyTorchRandomizedSmoothing(model=model, loss=nn.CrossEntropyLoss(),
                                     input_shape=x.shape[1:], nb_classes=10, device_type="cpu",
                                     sample_size=n0, scale=sigma, alpha=alpha)
    pred, rad = art.certify(x, n=n, batch_size=batch)
    return pred.astype(np.int64), rad.astype(np.float64)


def summary(name: str, pred: np.ndarray, rad: np.ndarray, y: np.ndarray,
            radii: list[float], seconds: float) -> dict[str, float]:
    right = pred == y
    row = {"acr": float(np.where(right, rad, 0).mean()), "abstain": float((pred < 0).mean()),
           "seconds": seconds}
    cells = []
    for r in radii:
        k = int((right & (rad >= r)).sum())
        lo, hi = clopper_pearson(k, len(y), 0.95)
        row[f"r{r}"] = k / len(y)
        cells.append(f"{k / len(y):.3f} [{lo:.2f},{hi:.2f}]")
    print(f"{name:<28} {row['abstain']:>7.3f} {row['acr']:>7.4f} " + " ".join(
        f"{c:>19}" for c in cells) + f" {seconds:>8.2f}")
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--n0", type=int, default=100)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--alpha", type=float, default=0.001)
    ap.add_argument("--sigma", type=float, default=0.25)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reference", choices=("auto", "art", "cohen"), default="auto")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    x_tr, y_tr, x_ev, y_ev = load_digits_split()
    torch.manual_seed(0)  # the initial weights (torch's default seed differs per process)
    net = train(DigitsCNN(), x_tr, y_tr, epochs=args.epochs, seed=0, noise_sigma=args.sigma)
    with tempfile.TemporaryDirectory() as tmp:
        loaded = load_model(export_onnx(net, Path(tmp) / "noisy.onnx"))
    module = to_torch(loaded.proto, loaded.info.output_kind, torch.device("cpu"))
    index = (np.arange(args.samples) * len(x_ev)) // args.samples
    x, y = x_ev[index], y_ev[index]
    cfg = replace(PRESETS["standard"], sigma=args.sigma, n0=args.n0, n=args.n,
                  alpha=args.alpha, batch=args.batch, samples=args.samples)
    base = torch_base(module, torch.device("cpu"), 10, args.batch)
    radii = [0.0, 0.25, 0.5]
    cap = max_radius(args.sigma, args.n, args.alpha)

    ref_name, reference = "Cohen et al. (re-implemented)", reference_cohen
    if args.reference != "cohen":
        try:
            import art
            ref_name, reference = f"IBM ART {art.__version__}", reference_art
        except ImportError:
            if args.reference == "art":
                raise
    # Warm-up (lazy imports, first-call allocations) outside the timings.
    certify_samples(base, x_ev, index[:2], replace(cfg, n0=10, n=10), seed=9)
    reference(net, x[:2], args.sigma, 10, 10, args.alpha, args.batch, 9)

    print(f"digits CNN, noise-trained sigma {args.sigma}; {args.samples} images; N0 {args.n0}, "
          f"N {args.n}, alpha {args.alpha}, batch {args.batch}, {args.threads} thread(s); "
          f"largest certifiable radius {cap:.4f}")
    print(f"{'':<28} {'abstain':>7} {'ACR':>7} " + " ".join(
        f"{'cert@' + str(r) + ' [95% CI]':>19}" for r in radii) + f" {'seconds':>8}")
    runs, seconds = {}, {}
    for seed in (0, 1):
        t0 = time.perf_counter()
        certs = certify_samples(base, x_ev, index, cfg, seed=seed)
        runs[f"rg{seed}"] = (certs.certified_class, certs.radius)
        seconds[seed] = time.perf_counter() - t0
        summary(f"robustgate (seed {seed})", *runs[f"rg{seed}"], y, radii, seconds[seed])
    t0 = time.perf_counter()
    runs["ref"] = reference(net, x, args.sigma, args.n0, args.n, args.alpha, args.batch, 0)
    ref_seconds = time.perf_counter() - t0
    summary(ref_name, *runs["ref"], y, radii, ref_seconds)

    def gap(a: str, b: str) -> tuple[float, float, float]:
        (pa, ra), (pb, rb) = runs[a], runs[b]
        both = (pa >= 0) & (pb >= 0)
        return (float((pa == pb).mean()), float(np.abs(ra - rb)[both].mean()),
                float(np.abs(ra - rb)[both].max()))

    for label, (a, b) in {"robustgate seed 0 vs seed 1 (noise floor)": ("rg0", "rg1"),
                          f"robustgate vs {ref_name}": ("rg0", "ref")}.items():
        same, mean_gap, max_gap = gap(a, b)
        print(f"{label:<48} same class/abstain {same:.3f}; |radius diff| mean {mean_gap:.4f}, "
              f"max {max_gap:.4f}")
    rg = seconds[0]
    print(f"time: robustgate {rg:.2f} s, {ref_name} {ref_seconds:.2f} s, ratio "
          f"robustgate/reference {rg / ref_seconds:.2f}")


if __name__ == "__main__":
    main()
