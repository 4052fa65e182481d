"""Extract VNN-COMP benchmark instances and alpha-beta-CROWN's published results for
``bench/vnncomp.py``, from local git copies of the public repositories (nothing is committed).

Get the repositories first, with ``git clone`` or the search tool's ``fetch`` (which leaves a
bare git directory under /work/.mirror):

    ChristopherBrix/vnncomp2022_benchmarks   ChristopherBrix/vnncomp2022_results
    stanleybak/vnncomp2021                   stanleybak/vnncomp2021_results

then, for example:

    python bench/vnncomp_fetch.py --root /tmp/vnncomp --year 2022 \\
        --benchmarks-git /work/.mirror/ChristopherBrix+vnncomp2022_benchmarks/repo \\
        --results-git /work/.mirror/ChristopherBrix+vnncomp2022_results/repo mnist_fc oval21
    python bench/vnncomp_fetch.py --root /tmp/vnncomp --year 2021 \\
        --benchmarks-git /work/.mirror/stanleybak+vnncomp2021/repo \\
        --results-git /work/.mirror/stanleybak+vnncomp2021_results/repo mnistfc oval21 eran

Each benchmark lands in ROOT/YEAR/NAME/: ``instances.csv`` (onnx, vnnlib, timeout; paths
relative to that folder), the files it names (gunzipped), ``reference.csv`` (onnx, vnnlib,
result: sat / unsat / timeout / ...) and ``SOURCE.txt`` (repositories and commits). Files the
repository lacks (LFS pointers, blobs missing from the copy) are skipped with a note, and
their instances left out of instances.csv.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import subprocess
from pathlib import Path

# Where alpha-beta-CROWN's results sit in each year's results repository.
_REFERENCE = {
    "2021": ("results_csv/a-b-CROWN.csv", "{bench}/{bench}_instances.csv"),
    "2022": ("alpha_beta_crown/{bench}/results.csv", "{bench}/instances.csv"),
}


class Repo:
    def __init__(self, path: Path) -> None:
        self.git_dir = path / ".git" if (path / ".git").exists() else path

    def _git(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", f"--git-dir={self.git_dir}", *args], capture_output=True,
                              check=False)

    def read(self, path: str) -> bytes | None:
        got = self._git("show", f"HEAD:{path}")
        return got.stdout if got.returncode == 0 else None

    def commit(self) -> str:
        return self._git("rev-parse", "HEAD").stdout.decode().strip()


def read_member(repo: Repo, path: str) -> bytes | None:
    """The file, or its ``.gz`` twin decompressed; None if absent or an LFS pointer."""
    raw = repo.read(path)
    if raw is None:
        packed = repo.read(path + ".gz")
        raw = None if packed is None else gzip.decompress(packed)
    if raw is None or raw.startswith(b"version https://git-lfs"):
        return None
    return raw


def extract(bench: str, year: str, benchmarks: Repo, results: Repo, root: Path) -> None:
    ref_path, instances_path = (p.format(bench=bench) for p in _REFERENCE[year])
    listing = benchmarks.read(f"benchmarks/{instances_path}")
    if listing is None:
        print(f"{year}/{bench}: no benchmarks/{instances_path} in the repository")
        return
    out = root / year / bench
    out.mkdir(parents=True, exist_ok=True)
    kept, missing = [], set()
    for row in csv.reader(io.StringIO(listing.decode())):
        if len(row) < 3:
            continue
        files = [name.strip().removeprefix("./") for name in row[:2]]
        ok = True
        for name in files:
            target = out / name
            if target.exists():
                continue
            data = read_member(benchmarks, f"benchmarks/{bench}/{name}")
            if data is None:
                missing.add(name)
                ok = False
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        if ok:
            kept.append([*files, row[2].strip()])
    with (out / "instances.csv").open("w", newline="") as f:
        csv.writer(f).writerows(kept)
    reference = results.read(ref_path)
    rows = []
    if reference is not None:
        prefix = f"./benchmarks/{bench}/"
        for row in csv.reader(io.StringIO(reference.decode())):
            if len(row) >= 5 and row[0] == bench:
                rows.append([row[1].removeprefix(prefix), row[2].removeprefix(prefix),
                             row[4].strip().lower()])
    with (out / "reference.csv").open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    (out / "SOURCE.txt").write_text(
        f"instances: {benchmarks.git_dir} @ {benchmarks.commit()} benchmarks/{instances_path}\n"
        f"reference (alpha-beta-CROWN, VNN-COMP {year}): {results.git_dir} @ "
        f"{results.commit()} {ref_path}\n")
    note = f", {len(missing)} files missing: {sorted(missing)[:3]}" if missing else ""
    print(f"{year}/{bench}: {len(kept)} instances, {len(rows)} reference results{note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--year", choices=sorted(_REFERENCE), required=True)
    parser.add_argument("--benchmarks-git", type=Path, required=True)
    parser.add_argument("--results-git", type=Path, required=True)
    parser.add_argument("benchmarks", nargs="+", help="e.g. mnist_fc oval21 (2022 names)")
    args = parser.parse_args()
    bench_repo, results_repo = Repo(args.benchmarks_git), Repo(args.results_git)
    for bench in args.benchmarks:
        extract(bench, args.year, bench_repo, results_repo, args.root)


if __name__ == "__main__":
    main()
