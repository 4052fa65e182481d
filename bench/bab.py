"""Benchmark of branch and bound: how many random-MLP properties CROWN, alpha-CROWN and BaB
decide, and in what time.

Properties are ``y[a] - y[b] > t`` on a box around a random point of random ReLU MLPs
(examples/random_mlp.py), ``t`` drawn between CROWN's lower bound and the smallest sampled
value (and a little above it): CROWN alone proves none by construction, some hold, some are
violated. With ``--marabou`` every BaB verdict is checked against Marabou (``wrong``).

    python bench/bab.py                          # small: 3 architectures x 10 properties
    python bench/bab.py --n 30 --timeout 30 --marabou
    python bench/bab.py --device cuda
    python bench/bab.py --no-beta --branching babsr   # ablations

Times are per property: the bound methods' own time, BaB's until its verdict (or timeout).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from examples.random_mlp import crown_and_sampled, margin_region, onnx_bytes, random_mlp  # noqa: E402
from verifiers.bounds import LinearSpec, Method, bound_spec, build_graph  # noqa: E402
from verifiers.bounds.bab import BabConfig, OptimConfig, branch_and_bound  # noqa: E402
from verifiers.bounds.complete import marabou_query  # noqa: E402
from verifiers.bounds.ops import Interval  # noqa: E402
from verifiers.model import load_model  # noqa: E402

ARCHS = {  # name -> (layer sizes, eps)
    "acas-like 5-50x3-5": ((5, 50, 50, 50, 5), 0.1),
    "mlp 20-64x2-3": ((20, 64, 64, 3), 0.1),
    "digits-like 64-32x2-10": ((64, 32, 32, 10), 0.05),
}
HARD = {  # only with --arch: BaB needs thousands of subdomains here
    "deep 20-64x4-3": ((20, 64, 64, 64, 64, 3), 0.15),
}
ARCHS |= HARD


def _proves(graph, region, method: Method, device) -> tuple[bool, float]:
    box = Interval(torch.as_tensor(region.lower, dtype=torch.float32, device=device)[None],
                   torch.as_tensor(region.upper, dtype=torch.float32, device=device)[None])
    spec = LinearSpec(torch.as_tensor(region.C, dtype=torch.float32, device=device)[None],
                      torch.as_tensor(region.d, dtype=torch.float32, device=device)[None])
    t0 = time.perf_counter()
    proved = bool(bound_spec(graph, box, spec, method, require_all=False).proved[0])
    return proved, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10, help="properties per architecture")
    parser.add_argument("--timeout", type=float, default=10.0, help="BaB seconds per property")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--marabou", action="store_true", help="check BaB against Marabou")
    parser.add_argument("--arch", action="append", choices=sorted(ARCHS))
    parser.add_argument("--no-beta", action="store_true",
                        help="splits as fixed phases only (no Lagrangian beta terms)")
    parser.add_argument("--branching", default="fsb", choices=["fsb", "babsr"])
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    config = BabConfig(optim=OptimConfig(beta=not args.no_beta), branching=args.branching)
    rows = []
    for name in args.arch or [a for a in ARCHS if a not in HARD]:
        sizes, eps = ARCHS[name]
        counts = {"crown": 0, "alpha": 0, "holds": 0, "violated": 0, "unknown": 0, "wrong": 0}
        times = {"crown": [], "alpha": [], "bab": []}
        for i in range(args.n):
            seed = 1000 * len(rows) + i
            model = random_mlp(sizes, seed)
            raw = onnx_bytes(model, sizes[0])
            loaded = load_model(raw)
            graph = build_graph(loaded.proto).to(args.device)
            rng = np.random.default_rng(seed)
            centre = rng.uniform(-1, 1, sizes[0])
            with torch.no_grad():
                y = model(torch.as_tensor(centre, dtype=torch.float32)[None])[0]
            a, b = int(y.argmax()), int(y.argmin())
            graph_cpu = build_graph(loaded.proto)
            lb, sampled = crown_and_sampled(graph_cpu, model, centre, eps, a, b)
            t = lb + rng.uniform(0.3, 1.1) * (sampled - lb)
            region = margin_region(sizes[0], sizes[-1], centre, eps, a, b, t)
            for key, method in (("crown", Method.CROWN), ("alpha", Method.ALPHA_CROWN)):
                ok, sec = _proves(graph, region, method, args.device)
                counts[key] += ok
                times[key].append(sec)
            t0 = time.perf_counter()
            result = branch_and_bound(graph, [region], loaded.runner, config,
                                      time.monotonic() + args.timeout)
            times["bab"].append(time.perf_counter() - t0)
            counts[result.status] += 1
            if args.marabou and result.status != "unknown":
                with tempfile.TemporaryDirectory() as tmp:
                    path = Path(tmp) / "m.onnx"
                    path.write_bytes(raw)
                    exact = marabou_query(path, region.lower, region.upper, region.C,
                                          region.d, 120).verdict
                expected = {"sat": "violated", "unsat": "holds"}.get(exact)
                counts["wrong"] += expected is not None and expected != result.status
        rows.append((name, counts, times))
    print(f"\n{args.n} properties per architecture, BaB timeout {args.timeout:g} s, "
          f"device {args.device}, torch threads {torch.get_num_threads()}, "
          f"branching {args.branching}, beta {'off' if args.no_beta else 'on'}"
          + ("" if args.marabou else " (wrong: not checked, use --marabou)"))
    head = (f"{'architecture':<24} {'crown':>5} {'alpha':>5} {'bab':>5} {'holds':>5} "
            f"{'viol':>5} {'unkn':>5} {'wrong':>5} {'t_crown':>8} {'t_alpha':>8} "
            f"{'t_bab':>8} {'t_bab_max':>9}")
    print(head)
    print("-" * len(head))
    for name, c, t in rows:
        decided = c["holds"] + c["violated"]
        print(f"{name:<24} {c['crown']:>5} {c['alpha']:>5} {decided:>5} {c['holds']:>5} "
              f"{c['violated']:>5} {c['unknown']:>5} {c['wrong']:>5} "
              f"{np.mean(t['crown']):>8.3f} {np.mean(t['alpha']):>8.3f} "
              f"{np.mean(t['bab']):>8.3f} {np.max(t['bab']):>9.3f}")
    print("crown / alpha: properties the bound alone proves (it never finds violations); "
          "bab = holds + violated; times in seconds per property (mean, max)")


if __name__ == "__main__":
    main()
