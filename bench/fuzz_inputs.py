"""Fuzz cases beyond ONNX models: evaluation sets (npz), standards (YAML), and HTTP requests.

Each kind has a seeded case generator and an outcome function with the model fuzzer's
contract (``verifiers.model.fuzz.harness``): ``(status, reason, message)`` with status
``accepted`` / ``refused`` (the library's own error class) / ``error`` (anything else escaped).
The npz and YAML outcomes also measure the case's peak traced memory (numpy registers its
buffers with tracemalloc): an accepted case that cost more than the cap is a failure too
("accepted, costly"), the way an upload that passes but eats the API's memory would be.
"""

from __future__ import annotations

import functools
import io
import os
import random
import re
import traceback
import tracemalloc
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from verifiers.model.fuzz.corrupt import bit_flips, garbage, splice, truncate

ROOT = Path(__file__).resolve().parents[1]
# "accepted but cost over N GB": N, for the npz and YAML outcomes (in-process, traced);
# bench/intake_fuzz.py --cost-gb sets it for its child processes through the environment.
COST_CAP_ENV = "RG_FUZZ_COST_CAP_BYTES"
COST_CAP_BYTES = int(os.environ.get(COST_CAP_ENV, 1024**3))
# What load_eval_set is told it may decompress (the API's default is 4 GiB; a smaller cap
# here keeps the fuzzer's children small while exercising the same check).
MAX_DECOMPRESSED = 512 * 1024**2


# ---------------------------------------------------------------- npz evaluation sets

def _npz(arrays: dict[str, np.ndarray], compress: bool = False) -> bytes:
    out = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(out, **arrays)
    return out.getvalue()


def npz_seeds() -> dict[str, bytes]:
    digits = np.load(ROOT / "examples/digits_eval.npz")
    x, y = digits["x"][:64], digits["y"][:64]
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 2, len(y))
    return {"digits": _npz({"x": x, "y": y}),
            "digits_compressed": _npz({"x": x, "y": y}, compress=True),
            "digits_groups": _npz({"x": x, "y": y, "group": groups,
                                   "group_names": np.array(["a", "b"])}),
            "tabular": _npz({"x": rng.random((50, 16), dtype=np.float32),
                             "y": rng.integers(0, 3, 50)})}


def _raw_member(name: str, header: bytes, body: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, header + body)
    return out.getvalue()


def _npy_header(descr: str, shape: str, fortran: bool = False) -> bytes:
    text = f"{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}"
    pad = 64 - (10 + len(text) + 1) % 64
    return b"\x93NUMPY\x01\x00" + (len(text) + pad + 1).to_bytes(2, "little") + \
        (text + " " * pad + "\n").encode()


def _merge(base: bytes, extra: bytes) -> bytes:
    """The members of ``base`` plus those of ``extra`` (replacing same-named ones)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(base)) as a, zipfile.ZipFile(io.BytesIO(extra)) as b, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        names = set(b.namelist())
        for name in a.namelist():
            if name not in names:
                z.writestr(name, a.read(name))
        for name in b.namelist():
            z.writestr(name, b.read(name))
    return out.getvalue()


def _structural(seed: bytes, rng: random.Random) -> tuple[str, bytes]:
    with np.load(io.BytesIO(seed)) as d:
        arrays = {k: d[k] for k in d.files}
    x, y = arrays["x"], arrays["y"]
    kind = rng.choice(["dtype", "nonfinite", "range", "shape", "labels", "members", "object",
                       "header-shape", "header-overflow", "bomb", "endian", "fortran",
                       "scalar", "empty", "huge-classes", "group"])
    if kind == "dtype":
        arrays[rng.choice(["x", "y"])] = x.astype(rng.choice(
            [np.float64, np.float16, np.int8, np.uint8, np.complex64, np.bool_]))
    elif kind == "nonfinite":
        x = x.astype(np.float32).copy()
        x.flat[rng.randrange(x.size)] = rng.choice([np.nan, np.inf, -np.inf])
        arrays["x"] = x
    elif kind == "range":
        arrays["x"] = (x * rng.choice([-1.0, 255.0, 1e30])).astype(np.float32)
    elif kind == "shape":
        arrays["y"] = y[: max(0, len(y) - rng.randint(1, 5))]
    elif kind == "labels":
        y = y.copy()
        y[rng.randrange(len(y))] = rng.choice([-1, 2**40, 10**6])
        arrays["y"] = y
    elif kind == "members":
        arrays.pop(rng.choice(["x", "y"]))
        arrays[rng.choice(["z", "x.npy", "../x", "mask"])] = x[:3]
    elif kind == "object":  # a pickled object array: must be refused unread
        return kind, _merge(_npz(arrays), _raw_member("x.npy", _npy_header("|O", "(2,)"),
                                                      b"\x80\x04\x95" + bytes(40)))
    elif kind == "header-shape":
        shape = rng.choice(["(10**6, 1, 8, 8)", "(4000000000, 64)", "(-1, 64)", "()",
                            "(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,"
                            " 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)"])
        return kind, _merge(_npz(arrays), _raw_member("x.npy", _npy_header("<f4", shape),
                                                      bytes(256)))
    elif kind == "header-overflow":
        return kind, _merge(_npz(arrays), _raw_member(
            "x.npy", _npy_header("<f4", "(2**62, 2**62)"), bytes(64)))
    elif kind == "bomb":
        return kind, _bomb(rng.choice([600, 2048]))  # MiB: over MAX_DECOMPRESSED, or far over
    elif kind == "endian":
        arrays["x"] = x.astype(">f4")
    elif kind == "fortran":
        arrays["x"] = np.asfortranarray(x)
    elif kind == "scalar":
        arrays[rng.choice(["x", "y"])] = np.array(3.0)
    elif kind == "empty":
        arrays["x"], arrays["y"] = x[:0], y[:0]
    elif kind == "huge-classes":
        arrays["y"] = np.full_like(y, 10**9)
    elif kind == "group":
        arrays["group"] = np.arange(len(y))[::-1] * rng.choice([1, -1, 10**12])
    return kind, _npz(arrays, compress=rng.random() < 0.3)


@functools.cache
def _bomb(mib: int) -> bytes:
    """A deflated x.npy of ``mib`` MiB of zeros (a few hundred KB on the wire)."""
    out = io.BytesIO()
    n = mib * 1024**2 // 256
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        with z.open("x.npy", "w", force_zip64=True) as member:
            member.write(_npy_header("<f4", f"({n}, 1, 8, 8)"))
            block = bytes(16 * 1024**2)
            for _ in range(mib // 16):
                member.write(block)
        z.writestr("y.npy", _npy_bytes(np.zeros(1, dtype=np.int64)))
    return out.getvalue()


def _npy_bytes(a: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, a)
    return out.getvalue()


NPZ_BYTE_MUTATIONS = {"truncate": truncate, "bit_flips": bit_flips, "splice": splice,
                      "garbage": garbage}


def npz_cases(n: int, seed: int = 0) -> Iterator[tuple[int, str, bytes]]:
    """(index, what, bytes): a structural mutation, a byte-level one, or both."""
    rng = random.Random(seed)
    seeds = npz_seeds()
    names = sorted(seeds)
    for i in range(n):
        name = rng.choice(names)
        data, what = seeds[name], [name]
        roll = rng.random()
        if roll >= 0.1:  # below: unmutated, must be accepted
            kind, data = _structural(data, rng)
            what.append(kind)
        if roll > 0.75:
            mutation = rng.choice(sorted(NPZ_BYTE_MUTATIONS))
            data = NPZ_BYTE_MUTATIONS[mutation](data, np.random.default_rng(rng.getrandbits(32)))
            what.append(mutation)
        yield i, "+".join(what), data


def npz_outcome(data: bytes) -> tuple[str, str, str]:
    from verifiers import DataError, load_eval_set

    return _measured(lambda: load_eval_set(data, max_decompressed=MAX_DECOMPRESSED),
                     DataError, lambda es: f"{len(es)} samples")


# ---------------------------------------------------------------- standards (YAML)

def yaml_seeds() -> dict[str, str]:
    folder = ROOT / "standards"
    return {p.stem: p.read_text() for p in sorted(folder.glob("*.yaml"))}


YAML_SNIPPETS = [
    "", "~", "[]", "{}", "name: x", "!!python/object/apply:os.system ['true']",
    "a: &a [*a]", "a: &x [1]\nb: [*x, *x, *x, *x]", "version: 99999999999999999999",
    "version: -1", "eps: ['1e309']", "eps: ['nan']", "eps: ['8/0']", "eps: ['-0.1']",
    "budget: {pgd: {steps: 1000000000000}}", "criteria: [{metric: 'x' }]",
    "min_samples: 1e12", "name: " + "n" * 5000, "\t\tbad: indent", "{{{{", "- - - -",
    "threat_model: {norm: l7}", "input_domain: {low: 1, high: 0}", "\x00\x01", "'unterminated",
]


def yaml_cases(n: int, seed: int = 0) -> Iterator[tuple[int, str, bytes]]:
    rng = random.Random(seed)
    seeds = yaml_seeds()
    names = sorted(seeds)
    for i in range(n):
        name = rng.choice(names)
        lines = seeds[name].splitlines()
        roll = rng.random()
        what = [name]
        if roll < 0.05:
            text = seeds[name]
        elif roll < 0.45:  # replace or insert a hostile line
            snippet = rng.choice(YAML_SNIPPETS)
            at = rng.randrange(len(lines) + 1)
            lines[at:at + rng.randint(0, 1)] = snippet.splitlines() or [""]
            text, what = "\n".join(lines), what + ["snippet"]
        elif roll < 0.7:  # change a number or a word
            at = rng.randrange(len(lines))
            tokens = lines[at].split(" ")
            j = rng.randrange(len(tokens))
            tokens[j] = rng.choice(["0", "-1", "1e308", "nan", "''", "null", "[]", "{}",
                                    "true", "0x7fffffffffffffff", "9" * 40, "é", "\\u0000"])
            lines[at] = " ".join(tokens)
            text, what = "\n".join(lines), what + ["token"]
        elif roll < 0.85:  # the billion laughs, at a size that is still cheap to build
            text = "a: &a ['x','x','x','x','x','x','x','x','x']\n" + "".join(
                f"{c}: &{c} [{','.join(['*' + p] * 9)}]\n"
                for p, c in zip("abcdefgh", "bcdefghi", strict=True))
            what.append("laughs")
        else:
            data = bytearray(seeds[name].encode())
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            text, what = data.decode("utf-8", "replace"), what + ["bytes"]
        yield i, "+".join(what), text.encode("utf-8", "surrogatepass")


def yaml_outcome(data: bytes) -> tuple[str, str, str]:
    from verifiers import parse_standard
    from verifiers.errors import StandardError

    def parse():
        standard = parse_standard(data.decode("utf-8"))
        # What the API does next with a tenant's standard: the configured ceilings.
        from service.config import load_settings
        from service.standards_catalog import within_ceilings

        within_ceilings(standard, load_settings({}).ceilings)
        return standard

    from service.errors import ApiError

    return _measured(parse, (StandardError, UnicodeDecodeError, ApiError),
                     lambda s: f"{s.name} v{s.version}")


# ---------------------------------------------------------------- shared

def _reason(exc: Exception) -> str:
    """A refusal's class for counting: its first words, numbers and quotes dropped."""
    first = re.sub(r"^line \d+:\s*", "", str(exc)).split(":")[0]
    text = re.sub(r"'[^']*'|\"[^\"]*\"|[-+]?\d[\d.e+]*", "_", first)
    return f"{type(exc).__name__}: {' '.join(text.split()[:6])}"[:60]


def _measured(call, refusals, describe) -> tuple[str, str, str]:
    tracemalloc.start()
    try:
        result = call()
    except refusals as exc:
        peak = tracemalloc.get_traced_memory()[1]
        return "refused", _reason(exc), f"{str(exc)[:300]} [peak {peak / 1e6:.0f} MB]"
    except Exception as exc:  # what the fuzzer exists to find
        tail = traceback.format_exc().strip().splitlines()[-3:]
        return "error", type(exc).__name__, " | ".join(tail)[:500]
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    if peak > COST_CAP_BYTES:
        return "costly", "accepted, costly", f"peak {peak / 1e9:.2f} GB: {describe(result)}"
    return "accepted", "accepted", f"{describe(result)} [peak {peak / 1e6:.0f} MB]"
