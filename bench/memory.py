"""Peak memory of reading a large evaluation set: loading, validating, iterating its shards.

    .venv/bin/python bench/memory.py                     # 2,000 x 3x224x224 float32 = 1.2 GB
    .venv/bin/python bench/memory.py --samples 10000     # the 6 GB ImageNet-size case
    .venv/bin/python bench/memory.py --compressed        # np.savez_compressed layout
    .venv/bin/python bench/memory.py --shape 3 32 32 --samples 16000   # CIFAR-size, 196 MB

The set is written by a child process, in blocks, as ``np.savez`` (or ``savez_compressed``)
would lay it out; this process then loads it with ``load_eval_set(path)`` (memory-mapped,
verifiers.diskarrays), finds its value range as intake does, and reads every attack shard
(verifiers.plan) the way the attack check copies its slice (a 256-sample shard of
ImageNet-size images is itself 154 MB: the peak is a few shards, not the set).

Printed: the array's size, this process's peak resident memory growth over the run (VmHWM,
reset after the imports, minus the resident size before loading) and their ratio. Then one
more pass over the shards without dropping pages shows how much of what stays resident is
file-backed (page cache the kernel reclaims under pressure) and how much is anonymous.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

def write_set(path: Path, samples: int, compressed: bool, sample: tuple[int, ...]) -> None:
    """An npz with x [samples, *sample] float32 in [0, 1] and y, written in blocks."""
    method = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w", method) as archive:
        with archive.open("x.npy", "w", force_zip64=True) as out:
            np.lib.format.write_array_header_1_0(
                out, {"descr": "<f4", "fortran_order": False, "shape": (samples, *sample)})
            step = max(1, (16 << 20) // (4 * int(np.prod(sample))))
            for lo in range(0, samples, step):
                rows = min(step, samples - lo)
                out.write(rng.random((rows, *sample), dtype=np.float32).tobytes())
        with archive.open("y.npy", "w") as out:
            np.lib.format.write_array(out, rng.integers(0, 1000, samples))


def _status(field: str) -> int:
    """A field of /proc/self/status in bytes (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux: write 5 to clear_refs), so the peak read later
    is this run's, not the imports'. Where that is not allowed the peak is an upper bound."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def measure(path: Path) -> dict[str, float]:
    from verifiers.data import load_eval_set, value_range
    from verifiers.diskarrays import release
    from verifiers.plan import attack_chunks

    _reset_peak()
    before = _status("VmRSS")  # after the imports: their libraries are not the set's memory
    file_before, anon_before = _status("RssFile"), _status("RssAnon")
    t0 = time.perf_counter()
    eval_set = load_eval_set(path, max_decompressed=1 << 40)
    low, high = value_range(eval_set.x)
    t_load = time.perf_counter() - t0
    checksum = 0.0
    for lo, hi in attack_chunks(len(eval_set)):
        shard = eval_set.x[lo:hi].copy()  # what the attack check takes of its shard
        checksum += float(shard.reshape(len(shard), -1)[:, 0].sum())
        del shard
        release(eval_set.x)
    t_iter = time.perf_counter() - t0 - t_load
    peak = _status("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    for lo, hi in attack_chunks(len(eval_set)):  # again, keeping the pages mapped
        checksum += float(eval_set.x[lo:hi].reshape(hi - lo, -1)[:, 0].sum())
    return {
        "samples": len(eval_set), "array_bytes": eval_set.x.nbytes,
        "file_bytes": path.stat().st_size, "range": [low, high],
        "peak_rss_growth_bytes": peak - before,
        "ratio": (peak - before) / eval_set.x.nbytes,
        "load_and_validate_s": round(t_load, 2), "iterate_s": round(t_iter, 2),
        "unreleased_pass_rss_file_bytes": _status("RssFile") - file_before,
        "unreleased_pass_rss_anon_bytes": _status("RssAnon") - anon_before,
        "checksum": checksum,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--shape", type=int, nargs="+", default=[3, 224, 224],
                        help="sample shape (default 3 224 224, ImageNet size)")
    parser.add_argument("--compressed", action="store_true")
    parser.add_argument("--folder", type=Path, default=None, help="where the set is written")
    parser.add_argument("--json", action="store_true", help="one JSON line of figures")
    parser.add_argument("--write", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write is not None:
        write_set(args.write, args.samples, args.compressed, tuple(args.shape))
        return 0
    with tempfile.TemporaryDirectory(dir=args.folder) as tmp:
        path = Path(tmp) / "eval.npz"
        # A child writes the set, so its buffers never count in this process's peak.
        subprocess.run([sys.executable, __file__, "--write", str(path), "--samples",
                        str(args.samples), "--shape", *map(str, args.shape)]
                       + (["--compressed"] if args.compressed else []), check=True)
        figures = measure(path)
    if args.json:
        print(json.dumps(figures))
        return 0
    mb = 1024 * 1024
    print(f"evaluation set: {figures['samples']} x {args.shape} float32 = "
          f"{figures['array_bytes'] / mb:.0f} MiB (file {figures['file_bytes'] / mb:.0f} MiB"
          f"{', deflated' if args.compressed else ''})")
    print(f"peak RSS growth, load + validate + range + every shard: "
          f"{figures['peak_rss_growth_bytes'] / mb:.0f} MiB = {figures['ratio']:.3f} x the "
          f"array ({figures['load_and_validate_s']} s load, {figures['iterate_s']} s shards)")
    print(f"after a pass that keeps pages mapped, resident growth: file-backed "
          f"{figures['unreleased_pass_rss_file_bytes'] / mb:.0f} MiB (page cache, reclaimable), "
          f"anonymous {figures['unreleased_pass_rss_anon_bytes'] / mb:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
