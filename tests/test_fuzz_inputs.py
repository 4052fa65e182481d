"""Short runs of the fuzz bench beyond models (bench/intake_fuzz.py --kind npz|yaml|http):
every hostile evaluation set and standard is accepted or refused with the library's own
error, none costs over the cap; every hostile request gets a JSON 4xx or a success."""

from __future__ import annotations

import collections
import io
import zlib

import numpy as np
import pytest

from bench import fuzz_http, fuzz_inputs
from verifiers import DataError, load_eval_set
from verifiers.model.fuzz.harness import run_isolated

FAILING = ("error", "crashed", "timeout", "costly")


def _run(kind: str, cases: list[tuple[int, str, bytes]]) -> collections.Counter:
    what = {i: w for i, w, _ in cases}
    outcomes = list(run_isolated(((i, data) for i, _, data in cases), workers=1, timeout=120,
                                 target=f"bench.fuzz_inputs:{kind}_outcome"))
    assert sorted(o.index for o in outcomes) == sorted(what)
    bad = [(what[o.index], o.status, o.reason, o.message) for o in outcomes
           if o.status in FAILING]
    assert not bad, bad[:5]
    return collections.Counter(o.status for o in outcomes)


def test_hostile_evaluation_sets_are_refused_cleanly_and_cheaply() -> None:
    cases = list(fuzz_inputs.npz_cases(80, seed=2026))
    counts = _run("npz", cases)
    assert counts["accepted"] >= 5 and counts["refused"] >= 30, counts


def test_hostile_standards_are_refused_cleanly() -> None:
    counts = _run("yaml", list(fuzz_inputs.yaml_cases(120, seed=2026)))
    assert counts["accepted"] >= 5 and counts["refused"] >= 50, counts


def test_a_corrupt_deflate_stream_is_a_data_error() -> None:
    """Found by the fuzzer: a damaged compressed member raised zlib.error, not DataError."""
    digits = np.load(fuzz_inputs.ROOT / "examples/digits_eval.npz")
    out = io.BytesIO()
    np.savez_compressed(out, x=digits["x"][:64], y=digits["y"][:64])
    raw = bytearray(out.getvalue())
    raw[100] ^= 0xFF  # inside x.npy's deflate stream
    with pytest.raises(zlib.error):  # what numpy alone raises on these bytes
        np.load(io.BytesIO(bytes(raw)))["x"]
    with pytest.raises(DataError, match="not a readable .npz"):
        load_eval_set(bytes(raw))


def test_a_decompression_bomb_is_refused_before_it_costs(tmp_path) -> None:
    """The one case where "refused" is not enough: it must also be cheap."""
    status, reason, message = fuzz_inputs.npz_outcome(fuzz_inputs._bomb(600))
    assert status == "refused", (status, reason, message)
    peak_mb = float(message.rsplit("[peak ", 1)[1].split(" MB")[0])
    assert peak_mb < 100, message


def test_hostile_requests_get_json_errors(embedded_server) -> None:
    token = embedded_server.token("http-fuzz")
    counts: collections.Counter = collections.Counter()
    bad = []
    for case in fuzz_http.http_cases(150, token, seed=2026):
        status, reason, message = fuzz_http.send(embedded_server.url, case, timeout=120)
        counts[status] += 1
        if status in FAILING:
            bad.append((case.what, case.method, case.path[:80], reason, message))
    assert embedded_server.proc.poll() is None, "the server died"
    assert not bad, bad[:5]
    assert counts["refused"] >= 100, counts
