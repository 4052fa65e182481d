"""Model bundles (zip: graph + external data files): accepted, resolved only inside the bundle.

The honest bundle must give the very model an inline upload gives; every hostile one is an
IntakeError naming the problem, raised before onnx reads a byte of external data.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.bundles import HOSTILE, bundle, external_parts, zip_of
from verifiers.errors import IntakeError
from verifiers.model import load_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def inline() -> bytes:
    return (ROOT / "examples" / "digits_cnn.onnx").read_bytes()


def test_a_bundle_is_the_same_model_as_its_inline_upload(inline):
    packed = bundle(inline)
    graph, _ = external_parts(inline)
    assert any(t.data_location == onnx.TensorProto.EXTERNAL
               for t in onnx.ModelProto.FromString(graph).graph.initializer)
    a, b = load_model(packed), load_model(inline)
    assert a.proto.SerializeToString() == b.proto.SerializeToString()
    assert a.info.bundle and not b.info.bundle
    assert a.info.sha256 != b.info.sha256 and a.info.size == len(packed)  # the bundle's bytes
    assert a.info.onnx_size == b.info.onnx_size == len(inline)
    x = np.random.default_rng(0).random((7, *b.info.input_shape[1:]), dtype=np.float32)
    assert np.array_equal(a.runner.run(x), b.runner.run(x))


def test_a_bundle_may_keep_its_data_in_a_subfolder_next_to_a_subfolder_graph(inline):
    graph, data = external_parts(inline, location="weights/all.bin")
    loaded = load_model(zip_of([("net/model.onnx", graph), ("net/weights/all.bin", data)]))
    assert loaded.proto.SerializeToString() == load_model(inline).proto.SerializeToString()


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_bundle_is_refused_naming_the_problem(inline, case):
    build, fragment = HOSTILE[case]
    with pytest.raises(IntakeError) as info:
        load_model(build(inline))
    assert fragment in str(info.value), str(info.value)


def test_a_bundle_over_the_size_cap_is_refused_while_unpacking(inline):
    packed = bundle(inline)
    with pytest.raises(IntakeError, match="size limit|unpacks to over"):
        load_model(packed, max_bytes=max(len(packed), 100_000))


def test_many_tensors_naming_one_region_cannot_inflate_past_the_cap(inline):
    from tests.bundles import aliased

    packed = aliased(inline, 20)  # ~3 MB once inlined, under 0.3 MB as a zip
    assert len(packed) < 400_000
    with pytest.raises(IntakeError, match="once its data is inlined"):
        load_model(packed, max_bytes=1_000_000)


def test_a_bare_graph_with_external_data_is_still_refused(inline):
    graph, _ = external_parts(inline)
    with pytest.raises(IntakeError, match="zip bundle"):
        load_model(graph)


def test_the_cli_refuses_a_hostile_bundle_with_exit_2_and_the_reason(inline, tmp_path):
    from tests.fixtures_service import clean_env

    build, fragment = HOSTILE["location_outside"]
    path = tmp_path / "model.zip"
    path.write_bytes(build(inline))
    result = subprocess.run([sys.executable, "-m", "service.cli", "certify", str(path),
                             "--data", str(ROOT / "examples" / "digits_eval.npz"),
                             "--standard", "demo-digits"],
                            capture_output=True, text=True, env=clean_env(), timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "robustgate: error:" in result.stderr and fragment in result.stderr
    assert "Traceback" not in result.stderr
