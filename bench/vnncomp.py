"""VNN-COMP benchmarks through ``verify_vnnlib``, beside alpha-beta-CROWN's published results.

Extract the benchmarks first (``bench/vnncomp_fetch.py``; nothing is committed), then:

    python bench/vnncomp.py --root /tmp/vnncomp                       # every extracted set
    python bench/vnncomp.py --root /tmp/vnncomp 2022/mnist_fc 2021/oval21 --limit 3 \\
        --timeout-scale 0.2                                           # a quick look

Each instance runs with its competition timeout (times ``--timeout-scale``) on the whole
``verify_vnnlib`` pipeline (attacks, bounds, whatever complete tier it has). Per benchmark the
table prints our holds / violated / unknown, ``wrong`` (a verdict contradicting the reference
tool's: holds where it found sat, violated where it proved unsat), the mean and worst time per
instance, the worst overrun of the timeout, and the reference tool's unsat / sat / other counts
on the same instances (alpha-beta-CROWN at VNN-COMP 2021 / 2022, from the results
repositories named in each benchmark's SOURCE.txt; their hardware: one GPU per instance).
``solved/ref`` is our solved count over the reference's on the same instances.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from verifiers.bounds import Method, VerifyConfig, verify_vnnlib  # noqa: E402

# Our statuses and the competition's words for the same verdicts.
_SAME = {"holds": "unsat", "violated": "sat"}


@dataclass
class Tally:
    ours: Counter = field(default_factory=Counter)
    ref: Counter = field(default_factory=Counter)
    wrong: list[str] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    overrun: float = float("-inf")


def read_text(path: Path) -> bytes:
    if path.exists():
        return path.read_bytes()
    return gzip.decompress(Path(f"{path}.gz").read_bytes())


def instances(folder: Path) -> list[tuple[str, str, float]]:
    with (folder / "instances.csv").open() as f:
        return [(r[0].strip(), r[1].strip(), float(r[2])) for r in csv.reader(f) if len(r) >= 3]


def reference(folder: Path) -> dict[tuple[str, str], str]:
    path = folder / "reference.csv"
    if not path.exists():
        return {}
    with path.open() as f:
        return {(r[0], r[1]): r[2] for r in csv.reader(f) if len(r) >= 3}


def run_benchmark(folder: Path, args: argparse.Namespace) -> Tally:
    tally, ref = Tally(), reference(folder)
    config = VerifyConfig(device=args.device)
    models: dict[str, bytes] = {}
    for onnx_name, vnnlib_name, timeout in instances(folder)[:args.limit or None]:
        raw = models.setdefault(onnx_name, read_text(folder / onnx_name))
        text = read_text(folder / vnnlib_name).decode()
        budget = timeout * args.timeout_scale
        t0 = time.perf_counter()
        result = verify_vnnlib(raw, text, args.method, budget, config=config)
        wall = time.perf_counter() - t0
        expected = ref.get((onnx_name, vnnlib_name), "")
        tally.ours[result.status] += 1
        tally.ref[expected if expected in ("sat", "unsat") else "other"] += 1
        tally.seconds.append(wall)
        tally.overrun = max(tally.overrun, wall - budget)
        opposite = {"unsat": "violated", "sat": "holds"}.get(expected)
        if result.status == opposite:
            tally.wrong.append(f"{onnx_name} {vnnlib_name}: ours {result.status}, "
                               f"reference {expected}")
        if args.verbose:
            print(f"  {folder.name} {Path(vnnlib_name).name}: {result.status} "
                  f"({result.decided_by or result.reason[:80]}) {wall:.1f}/{budget:.0f} s, "
                  f"reference {expected or '-'}", flush=True)
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="vnncomp_fetch.py's --root")
    parser.add_argument("benchmarks", nargs="*", help="YEAR/NAME folders (default: all)")
    parser.add_argument("--limit", type=int, default=0, help="first N instances per benchmark")
    parser.add_argument("--timeout-scale", type=float, default=1.0)
    parser.add_argument("--method", default=Method.ALPHA_CROWN.value,
                        choices=[m.value for m in Method])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per instance")
    args = parser.parse_args()
    names = args.benchmarks or sorted(str(p.parent.relative_to(args.root))
                                      for p in args.root.glob("*/*/instances.csv"))
    header = (f"{'benchmark':24} {'n':>3} {'holds':>5} {'viol':>4} {'unkn':>4} {'wrong':>5} "
              f"{'mean s':>7} {'max s':>6} {'over s':>6} | {'ref unsat':>9} {'ref sat':>7} "
              f"{'ref other':>9} {'solved/ref':>10}")
    rows = []
    for name in names:
        folder = args.root / name
        if not instances(folder):
            print(f"{name}: no instances extracted")
            continue
        t = run_benchmark(folder, args)
        n = len(t.seconds)
        solved = t.ours["holds"] + t.ours["violated"]
        ref_solved = t.ref["unsat"] + t.ref["sat"]
        ratio = f"{solved}/{ref_solved}" + (f"={solved / ref_solved:.2f}" if ref_solved else "")
        rows.append(f"{name:24} {n:3d} {t.ours['holds']:5d} {t.ours['violated']:4d} "
                    f"{t.ours['unknown']:4d} {len(t.wrong):5d} {sum(t.seconds) / n:7.2f} "
                    f"{max(t.seconds):6.2f} {t.overrun:+6.2f} | {t.ref['unsat']:9d} "
                    f"{t.ref['sat']:7d} {t.ref['other']:9d} {ratio:>10}")
        for line in t.wrong:
            print(f"WRONG {name}: {line}")
    print(f"method {args.method}, device {args.device}, timeout x{args.timeout_scale}, "
          f"limit {args.limit or 'none'}")
    print(header)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
