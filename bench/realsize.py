"""The whole battery on real-size models: torchvision ResNets exported by the dynamo exporter.

    python bench/realsize.py                                  # (a) resnet18-cifar, (b) resnet50
    python bench/realsize.py resnet18-cifar --samples 64      # one model, more samples
    python bench/realsize.py resnet50 --samples 8 --preset quick --threads 2
    python bench/realsize.py --device cuda --samples 256 --preset standard   # on a GPU
    python bench/realsize.py vnncomp-resnet2b --vnncomp /tmp/vnncomp        # trained, optional
    python bench/realsize.py resnet18-cifar --report /tmp/realsize-report    # + HTML report

Models (no weights can be downloaded here):
- ``resnet18-cifar``: torchvision ResNet-18, 10 classes, 3x32x32, random init (seeded);
- ``resnet50``: torchvision ResNet-50, 1,000 classes, 3x224x224, random init (seeded);
- ``vnncomp-resnet2b`` / ``vnncomp-resnet4b``: the trained CIFAR-10 ResNets of VNN-COMP 2021
  (``cifar10_resnet``, extracted by bench/vnncomp_fetch.py), with the images recovered from
  the centres of the vnnlib boxes and the labels from their output constraints.

For the random-init models the evaluation set is synthetic (smooth random images in [0, 1])
labelled with the model's own predictions, so clean accuracy is 1 by construction and the
attacks, bounds and calibration have something to work on: the figures are costs, not a
statement about any real model. Each model is exported with ``torch.onnx.export(dynamo=True)``
to a folder; when the exporter writes external data (``.onnx.data``), graph and data go into
one zip bundle (README "Large models"), as a user would upload them.

The battery runs in-process (``verifiers.certify``) under a bench-local standard with a
criterion on every check (clean, fidelity, attacks + sanity, certified bounds, OOD,
calibration, explain), so each one runs and is judged. Each model runs in its own child
process, so the printed peak RSS (getrusage ru_maxrss) is that model's alone.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    from verifiers.bounds.vnnlib import VnnProperty

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = {
    # name: (torchvision constructor, classes, input shape)
    "resnet18-cifar": ("resnet18", 10, (3, 32, 32)),
    "resnet50": ("resnet50", 1000, (3, 224, 224)),
}
VNNCOMP = {"vnncomp-resnet2b": "resnet_2b", "vnncomp-resnet4b": "resnet_4b"}

CHECKS = ("clean", "fidelity", "adversarial", "sanity", "certified", "ood", "calibration",
          "explain", "classes", "subgroups", "smoothing")

STANDARD = """\
name: realsize-bench
version: 1
description: >
  Bench-local standard for bench/realsize.py: one criterion per check so the whole battery
  runs on real-size models. Thresholds are placeholders; the figures are costs.
input_domain: {{low: 0.0, high: 1.0, units: pixel intensity}}
threat_model: {{norm: linf, eps: [{eps}]}}
budget: {{preset: {preset}, sanity: {{points: {sanity}}}}}
fidelity_tolerance: 1.0e-4
fidelity_unit: relative
min_samples: 1
explain: {{samples: {explain}, method: integrated_gradients, steps: 8, baseline: 0.0,
          radius: 0.02, perturbations: 4, randomization_threshold: 0.5}}
{ood}criteria:
  - {{metric: clean.accuracy, op: ">=", threshold: 0.5, severity: required}}
  - {{metric: fidelity.max_rel_diff, op: "<=", threshold: 1.0e-4, severity: required}}
  - {{metric: adversarial.robust_accuracy@{eps_label}, op: ">=", threshold: 0.5,
     severity: required}}
{certified}  - {{metric: ood.worst_in_range.auroc.msp, op: ">=", threshold: 0.5,
     severity: advisory}}
  - {{metric: calibration.ece, op: "<=", threshold: 0.2, severity: advisory}}
  - {{metric: explain.sanity.randomization_similarity, op: "<=", threshold: 0.5,
     severity: advisory}}
"""
# With a criterion on it the certified check runs IBP -> CROWN; without one, IBP only.
CERTIFIED = """\
  - {{metric: certified.certified_accuracy@{eps_label}, op: ">=", threshold: 0.1,
     severity: required}}
"""


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# ---------------------------------------------------------------- models and data
def torchvision_net(name: str, seed: int) -> torch.nn.Module:
    """The torchvision model ``name`` (random init, seeded), in eval mode."""
    import torch
    import torchvision

    arch, classes, _ = MODELS[name]
    torch.manual_seed(seed)
    return getattr(torchvision.models, arch)(num_classes=classes).eval()


def export_net(net: torch.nn.Module, shape: tuple[int, ...], folder: Path
               ) -> tuple[bytes, str, float]:
    """Export ``net`` (inputs ``shape`` after a dynamic batch dimension) with the dynamo
    exporter into ``folder``; returns (upload bytes, kind, seconds)."""
    import torch

    path = folder / "model.onnx"
    t0 = time.perf_counter()
    torch.onnx.export(net, (torch.zeros(1, *shape),), str(path), dynamo=True, verbose=False,
                      input_names=["input"], output_names=["logits"],
                      dynamic_shapes=({0: torch.export.Dim("batch")},))
    seconds = time.perf_counter() - t0
    return bundle_if_external(folder, path), _kind(folder, path), seconds


def export_torchvision(name: str, folder: Path, seed: int) -> tuple[bytes, str, float]:
    """Export the model with the dynamo exporter; returns (upload bytes, kind, seconds)."""
    return export_net(torchvision_net(name, seed), MODELS[name][2], folder)


def _kind(folder: Path, graph: Path) -> str:
    extra = [p for p in folder.iterdir() if p != graph and p.suffix != ".zip"]
    return "zip bundle (.onnx + external data)" if extra else "inline .onnx"


def bundle_if_external(folder: Path, graph: Path) -> bytes:
    """The bytes to upload: the bare graph, or a zip of the graph and its data files."""
    extra = [p for p in folder.iterdir() if p != graph and p.suffix != ".zip"]
    if not extra:
        return graph.read_bytes()
    bundle = folder / "model.zip"
    with zipfile.ZipFile(bundle, "w", zipfile.ZIP_STORED) as z:
        for p in (graph, *extra):
            z.write(p, p.name)
    return bundle.read_bytes()


def synthetic_images(n: int, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Smooth random images in [0, 1]: low-resolution noise upsampled (not pure white noise,
    so the OOD suites' noise images differ from the evaluation set)."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    c, h, w = shape
    low = torch.rand(n, c, max(2, h // 8), max(2, w // 8), generator=g)
    x = F.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)
    return x.clamp(0, 1).numpy().astype(np.float32)


def predict(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    """The model's own labels, with onnxruntime (the model as shipped)."""
    from verifiers.model import load_model

    model = load_model(model_bytes)
    return model.runner.predict(x, batch_size=16)


# CIFAR-10 normalisation of the VNN-COMP 2021 cifar10_resnet boxes (they live in normalised
# units: the box half-width per channel is eps / std, checked below).
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2471, 0.2435, 0.2616)


def vnncomp_model(name: str, root: Path, n: int) -> tuple[bytes, np.ndarray, np.ndarray,
                                                          str]:
    """A VNN-COMP 2021 CIFAR ResNet, its images (box centres, in the model's normalised
    units), labels (from the output constraints) and eps in pixel units (from the file name)."""
    from verifiers.bounds.vnnlib import parse_vnnlib

    folder = root / "2021" / "cifar10_resnet"
    onnx_file = folder / "onnx" / f"{VNNCOMP[name]}.onnx"
    stem = VNNCOMP[name].replace("_", "")
    props = sorted((folder / "vnnlib_properties_pgd_filtered" / f"{stem}_pgd_filtered")
                   .glob("*.vnnlib"), key=lambda p: int(p.name.split("_")[1]))[:n]
    if not props:
        raise SystemExit(f"no vnnlib files under {folder}: run bench/vnncomp_fetch.py first")
    mean = np.asarray(CIFAR_MEAN, dtype=np.float32).reshape(3, 1, 1)
    std = np.asarray(CIFAR_STD, dtype=np.float32).reshape(3, 1, 1)
    xs, ys, widths = [], [], []
    for p in props:
        prop = parse_vnnlib(p.read_text())
        lo = prop.regions[0].lower.reshape(3, 32, 32)
        hi = prop.regions[0].upper.reshape(3, 32, 32)
        half = ((hi - lo) / 2).reshape(3, -1).max(axis=1) * np.asarray(CIFAR_STD)
        if not np.allclose(half, half[0], rtol=1e-3):
            raise SystemExit(f"{p.name}: box half-widths x std {half} differ by channel")
        widths.append(float(half[0]))
        # the centre in pixels, inside [0, 1] (clipped boxes move it by < eps), back to z
        pixels = np.clip((lo + hi) / 2 * std + mean, 0.0, 1.0)
        xs.append(((pixels - mean) / std).astype(np.float32))
        ys.append(prop_label(prop))
    # eps in pixels, as k/255 when it is one (the file names round 2/255 to 0.008)
    eps_value = float(np.median(widths))
    k = round(eps_value * 255)
    eps = f"{k}/255" if abs(k / 255 - eps_value) < 1e-5 else f"{eps_value:.6g}"
    return onnx_file.read_bytes(), np.stack(xs), np.asarray(ys, dtype=np.int64), eps


def prop_label(prop: VnnProperty) -> int:
    """The label of a robustness property: the one output every constraint row names."""
    common = set(range(prop.num_outputs))
    for region in prop.regions:
        for row in region.C:
            common &= set(np.flatnonzero(row).tolist())
    if len(common) != 1:
        raise ValueError("not a robustness property: no single label in every constraint")
    return common.pop()


# ---------------------------------------------------------------- one model
def ood_section(per_suite: int | None, fooling: int | None) -> tuple[str, str]:
    """(the standard's ``ood:`` line, a note for the output): smaller OOD suites for a CPU
    run. The defaults (512 images a suite, 128 fooling images x 100 steps) take hours on an
    ImageNet ResNet-50 on 2 shared CPU cores."""
    if per_suite is None and fooling is None:
        return "", ""
    fields = []
    if per_suite is not None:
        fields.append(f"samples_per_suite: {per_suite}")
    if fooling is not None:
        fields += [f"fooling_samples: {fooling}", "fooling_steps: 20"]
    line = "ood: {" + ", ".join(fields) + "}"
    return line + "\n", f"OOD sizes from the standard: {line}"


class _Stages:
    """A progress callback that prints each stage as it starts (stderr), with its start time
    and the peak RSS so far (so the check that raised the peak can be read off)."""

    def __init__(self, t0: float) -> None:
        self.t0, self.stage = t0, ""

    def __call__(self, _fraction: float, stage: str) -> None:
        if stage != self.stage:
            self.stage = stage
            print(f"  [{time.perf_counter() - self.t0:7.1f}s] {stage:12s} peak RSS so far "
                  f"{peak_rss_mib():.0f} MiB", file=sys.stderr, flush=True)



def run_one(args: argparse.Namespace) -> dict:
    import torch

    from verifiers import certify, parse_standard
    from verifiers.data import EvalSet
    from verifiers.units import InputMapping

    torch.set_num_threads(args.threads)
    name = args.models[0]
    ood_line, ood_note = ood_section(args.ood_samples, args.ood_fooling)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        mapping = None
        if name in MODELS:
            model_bytes, kind, export_s = export_torchvision(name, folder, args.seed)
            x = synthetic_images(args.samples, MODELS[name][2], args.seed)
            y = predict(model_bytes, x)
            weights = f"random init (seed {args.seed}); labels = the model's own predictions"
            eps, eps_label = args.eps, args.eps_label
        else:
            model_bytes, x, y, eps = vnncomp_model(name, args.vnncomp, args.samples)
            kind, export_s = "published .onnx (VNN-COMP 2021)", 0.0
            weights = ("trained (VNN-COMP 2021 cifar10_resnet); images = vnnlib box centres, "
                       "labels from the output constraints")
            eps_label = eps
            mapping = InputMapping(CIFAR_MEAN, CIFAR_STD)
        standard = parse_standard(STANDARD.format(
            eps=f'"{eps}"', eps_label=eps_label, preset=args.preset,
            sanity=min(args.samples, 50), explain=min(args.samples, args.explain),
            certified="" if args.no_crown else CERTIFIED.format(eps_label=eps_label),
            ood=ood_line))
        data = EvalSet(x=x, y=y, sha256="synthetic")
        rss_before = peak_rss_mib()
        t0 = time.perf_counter()
        error = ""
        card: dict = {}
        try:
            card = certify(model_bytes, data, standard, seed=args.seed, device=args.device,
                           batch_size=args.batch_size, mapping=mapping, progress=_Stages(t0))
        except Exception as exc:  # a crash is a bug: report it, do not hide it
            import traceback
            traceback.print_exc()
            error = f"{type(exc).__name__}: {exc}"
        wall = time.perf_counter() - t0
        report_bytes = {}
        if args.report and card:
            from verifiers.report import write_reports
            out = Path(args.report) / name
            report_bytes = {p.name: p.stat().st_size for p in write_reports(out, card)}
    return {
        "model": name, "weights": weights, "upload": kind, "size_mb": len(model_bytes) / 1e6,
        "export_s": export_s, "samples": len(x), "sample_shape": list(x.shape[1:]),
        "eps": eps_label, "preset": args.preset, "crown": not args.no_crown,
        "device": args.device or "cpu",
        "threads": args.threads, "wall_s": wall, "error": error, "ood_note": ood_note,
        "verdict": card.get("verdict"), "timings": card.get("timings", {}),
        "criteria": [{k: c.get(k) for k in ("metric", "result", "value", "reason")}
                     for c in card.get("criteria", [])],
        "checks": {n: {"status": c.get("status"), "reason": c.get("reason")}
                   for n, c in card.get("checks", {}).items()},
        "metrics": {k: v for k, v in card.get("metrics", {}).items()
                    if k.split(".")[0] in ("clean", "fidelity", "certified")
                    or k.startswith(("adversarial.robust_accuracy", "calibration.ece",
                                     "ood.worst_in_range.auroc"))},
        "peak_rss_mib": peak_rss_mib(), "peak_rss_before_certify_mib": rss_before,
        "report_files": report_bytes,
    }


# ---------------------------------------------------------------- table
def print_table(rows: list[dict]) -> None:
    for r in rows:
        print(f"\n== {r['model']}: {r['weights']}")
        print(f"   upload {r['upload']}, {r['size_mb']:.1f} MB; export {r['export_s']:.1f}s; "
              f"{r['samples']} x {'x'.join(map(str, r['sample_shape']))}; eps {r['eps']}; "
              f"preset {r['preset']}; device {r['device']}, {r['threads']} thread(s)"
              + ("" if r["crown"] else "; --no-crown (IBP only)"))
        if r.get("ood_note"):
            print(f"   {r['ood_note']}")
        t = r["timings"]
        print("   seconds: " + ", ".join(f"{c} {t[c]:.1f}" for c in CHECKS if c in t)
              + f"; total {t.get('total_seconds', r['wall_s']):.1f}")
        print(f"   peak RSS {r['peak_rss_mib']:.0f} MiB "
              f"(before certify {r['peak_rss_before_certify_mib']:.0f} MiB)")
        if r["error"]:
            print(f"   ERROR: {r['error']}")
            continue
        print(f"   verdict {r['verdict']}")
        for c in r["criteria"]:
            value = c["value"] if c["value"] is None else f"{c['value']:.4g}"
            why = f"  ({c['reason']})" if c["result"] == "INCONCLUSIVE" else ""
            print(f"     {c['result']:12s} {c['metric']} = {value}{why}")
        for n, c in r["checks"].items():
            if c["status"] not in ("ok", None):
                print(f"     check {n}: {c['status']}: {c['reason']}")
        if r["report_files"]:
            print("   report files: " + ", ".join(f"{k} {v / 1024:.0f} KiB"
                                                  for k, v in r["report_files"].items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=["resnet18-cifar", "resnet50"],
                        choices=[*MODELS, *VNNCOMP])
    parser.add_argument("--samples", type=int, default=None,
                        help="evaluation samples (default 32 for 32x32, 8 for 224x224)")
    parser.add_argument("--preset", default="quick", choices=["quick", "standard", "thorough"])
    parser.add_argument("--eps", default="2/255")
    parser.add_argument("--no-crown", action="store_true",
                        help="no certified criterion: the certified check runs IBP only")
    parser.add_argument("--ood-samples", type=int, default=None,
                        help="images per OOD suite (default: the check's 512)")
    parser.add_argument("--ood-fooling", type=int, default=None,
                        help="fooling images, 20 steps each (default: the check's 128 x 100)")
    parser.add_argument("--explain", type=int, default=4, help="samples the explain check uses")
    parser.add_argument("--device", default=None, help="cpu (default), cuda, cuda:1 ...")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS",
                                                                          2)))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vnncomp", type=Path, default=Path("/tmp/vnncomp"))
    parser.add_argument("--report", default=None, help="write the reports under DIR/<model>")
    parser.add_argument("--json", action="store_true", help="also print the rows as JSON")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.eps_label = args.eps
    if args.child is not None:  # one model, in this process
        args.child.write_text(json.dumps(run_one(args)))
        return 0
    rows = []
    for name in args.models:
        samples = args.samples or (8 if name == "resnet50" else 32)
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            cmd = [sys.executable, __file__, name, "--child", out.name, "--samples",
                   str(samples), "--preset", args.preset, "--eps", args.eps, "--explain",
                   str(args.explain), "--threads", str(args.threads), "--batch-size",
                   str(args.batch_size), "--seed", str(args.seed), "--vnncomp",
                   str(args.vnncomp)]
            cmd += ["--device", args.device] if args.device else []
            cmd += ["--no-crown"] if args.no_crown else []
            for flag, value in (("--ood-samples", args.ood_samples),
                                ("--ood-fooling", args.ood_fooling)):
                cmd += [flag, str(value)] if value is not None else []
            cmd += ["--report", args.report] if args.report else []
            done = subprocess.run(cmd, check=False)
            text = Path(out.name).read_text()
            if done.returncode != 0 or not text:
                rows.append({"model": name, "crashed": done.returncode})
                print(f"{name}: the child process exited {done.returncode}")
                continue
            rows.append(json.loads(text))
    print_table([r for r in rows if "crashed" not in r])
    if args.json:
        print(json.dumps(rows, indent=1))
    return 0 if all("crashed" not in r and not r["error"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
