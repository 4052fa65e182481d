"""What intake refuses, each with an IntakeError that names the problem (the API's 422 text)."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from verifiers.errors import IntakeError
from verifiers.model import load_model, parse_model
from verifiers.model.fuzz import seeds


@pytest.fixture(scope="module")
def valid() -> bytes:
    return seeds.mlp_gemm(opset=13, batch=None).SerializeToString()


def _model(nodes, inits=(), inputs=None, outputs=None, opset: int = 13,
           **kwargs) -> onnx.ModelProto:
    inputs = inputs or [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 6])]
    outputs = outputs or [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", 4])]
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], **kwargs)


def _linear(x: str = "input", out: str = "output") -> list[onnx.NodeProto]:
    return [helper.make_node("Gemm", [x, "w"], [out], transB=1)]


W = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32),
                            "w")


def _refused(data: bytes, *fragments: str, **kwargs) -> str:
    with pytest.raises(IntakeError) as info:
        load_model(data, **kwargs)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_a_minimal_valid_model_is_accepted() -> None:
    loaded = load_model(_model(_linear(), [W]).SerializeToString())
    assert loaded.num_classes == 4 and loaded.info.batch == "dynamic"


def test_empty_and_garbage() -> None:
    _refused(b"", "empty")
    _refused(b"\x00\x01not onnx at all" * 10, "not a valid ONNX protobuf")


def test_external_data_path_traversal(valid: bytes) -> None:
    model = onnx.ModelProto.FromString(valid)
    init = model.graph.initializer[2]
    init.ClearField("raw_data")
    init.data_location = TensorProto.EXTERNAL
    entry = init.external_data.add()
    entry.key, entry.value = "location", "../../../../etc/passwd"
    _refused(model.SerializeToString(), "external data", init.name)


def test_external_data_in_the_working_directory_is_not_read(valid: bytes, tmp_path,
                                                             monkeypatch) -> None:
    # onnx's numpy_helper.to_array reads a relative location from the CWD (only '..' is
    # blocked): intake must refuse before anything converts a tensor.
    (tmp_path / "secret.bin").write_bytes(np.arange(48, dtype=np.float32).tobytes())
    monkeypatch.chdir(tmp_path)
    model = onnx.ModelProto.FromString(valid)
    init = next(t for t in model.graph.initializer if t.data_type == TensorProto.FLOAT)
    init.ClearField("raw_data")
    init.data_location = TensorProto.EXTERNAL
    entry = init.external_data.add()
    entry.key, entry.value = "location", "secret.bin"
    _refused(model.SerializeToString(), "external data")


def test_custom_domain_and_local_functions() -> None:
    custom = _model([helper.make_node("Evil", ["input"], ["output"], domain="com.evil")])
    custom.opset_import.append(helper.make_opsetid("com.evil", 1))
    _refused(custom.SerializeToString(), "custom op com.evil::Evil")
    fn = helper.make_function("local", "Twice", ["x"], ["y"],
                              [helper.make_node("Add", ["x", "x"], ["y"])],
                              [helper.make_opsetid("", 13)])
    model = _model([helper.make_node("Twice", ["input"], ["h"], domain="local"), *_linear("h")],
                   [W], functions=[fn])
    model.opset_import.append(helper.make_opsetid("local", 1))
    _refused(model.SerializeToString(), "local functions")


def test_several_inputs_and_non_float_input() -> None:
    two = [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 6]),
           helper.make_tensor_value_info("other", TensorProto.FLOAT, ["n", 6])]
    nodes = [helper.make_node("Add", ["input", "other"], ["h"]), *_linear("h")]
    _refused(_model(nodes, [W], inputs=two).SerializeToString(), "exactly one input", "'other'")
    ints = [helper.make_tensor_value_info("input", TensorProto.INT64, ["n", 6])]
    nodes = [helper.make_node("Cast", ["input"], ["h"], to=TensorProto.FLOAT), *_linear("h")]
    _refused(_model(nodes, [W], inputs=ints).SerializeToString(), "INT64",
             "only float inputs")


def test_missing_batch_dimension_that_cannot_be_added() -> None:
    # [16] -> Reshape [4, 4] -> MatMul: with a leading batch the reshape no longer fits.
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, [16])]
    outputs = [helper.make_tensor_value_info("output", TensorProto.FLOAT, [4, 4])]
    nodes = [helper.make_node("Reshape", ["input", "shape"], ["h"]),
             helper.make_node("MatMul", ["h", "w4"], ["output"])]
    inits = [numpy_helper.from_array(np.array([4, 4], np.int64), "shape"),
             numpy_helper.from_array(np.eye(4, dtype=np.float32), "w4")]
    _refused(_model(nodes, inits, inputs, outputs).SerializeToString(),
             "no batch dimension", "adding one fails")
    scalar = [helper.make_tensor_value_info("input", TensorProto.FLOAT, [])]
    _refused(_model([helper.make_node("Identity", ["input"], ["output"])], [], scalar,
                    [helper.make_tensor_value_info("output", TensorProto.FLOAT, [])])
             .SerializeToString(), "input shape []")


@pytest.mark.parametrize("op", ["RandomNormalLike", "RandomUniformLike", "Bernoulli"])
def test_random_ops_on_the_output_path(op: str) -> None:
    extra = {"dtype": TensorProto.FLOAT} if op != "Bernoulli" else {}
    src = "input" if op != "Bernoulli" else "p"
    nodes = [helper.make_node("Sigmoid", ["input"], ["p"]),
             helper.make_node(op, [src], ["noise"], **extra),
             helper.make_node("Add", ["input", "noise"], ["h"]), *_linear("h")]
    raw = _model(nodes, [W], opset=15).SerializeToString()
    _refused(raw, "random ops", op, "allow_random")
    loaded = load_model(raw, allow_random=True)
    assert loaded.info.stochastic and any(op in note for note in loaded.info.notes)
    assert loaded.info.batch == "dynamic"


def test_random_op_off_the_output_path_is_fine() -> None:
    nodes = [helper.make_node("RandomNormal", [], ["unused"], shape=[2, 2]), *_linear()]
    loaded = load_model(_model(nodes, [W]).SerializeToString())
    assert not loaded.info.stochastic


@pytest.mark.parametrize("training", [True, False])
def test_dropout_counts_only_in_training_mode(training: bool) -> None:
    nodes = [helper.make_node("Dropout", ["input", "ratio", "mode"], ["h"]), *_linear("h")]
    inits = [W, numpy_helper.from_array(np.array(0.5, np.float32), "ratio"),
             numpy_helper.from_array(np.array(training), "mode")]
    raw = _model(nodes, inits).SerializeToString()
    if training:
        _refused(raw, "random ops", "Dropout")
    else:
        assert not load_model(raw).info.stochastic


def test_multinomial_is_random() -> None:
    nodes = [*_linear(out="z"), helper.make_node("Multinomial", ["z"], ["s"], sample_size=1),
             helper.make_node("Cast", ["s"], ["sf"], to=TensorProto.FLOAT),
             helper.make_node("Add", ["z", "sf"], ["output"])]
    _refused(_model(nodes, [W]).SerializeToString(), "Multinomial")


def test_size_cap(valid: bytes) -> None:
    _refused(valid, "over the limit", max_bytes=len(valid) - 1)
    assert load_model(valid, max_bytes=len(valid)).info.max_bytes == len(valid)


def test_gzip_is_accepted(valid: bytes) -> None:
    packed = gzip.compress(valid)
    loaded = load_model(packed)
    assert loaded.info.compressed and loaded.info.size == len(packed)
    assert loaded.info.onnx_size == len(valid)
    assert parse_model(packed).graph.node
    _refused(packed[: len(packed) // 2], "truncated")
    _refused(gzip.compress(valid), "expands beyond", max_bytes=len(valid) - 1)


def test_gzip_bomb_is_refused_without_inflating_it() -> None:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    bomb = b"".join(packer.compress(b"\0" * (1 << 20)) for _ in range(512)) + packer.flush()
    assert len(bomb) < 1 << 20  # 512 MiB of zeros in under 1 MiB
    tracemalloc.start()
    try:
        _refused(bomb, "zip bomb", max_bytes=16 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, f"peak {peak >> 20} MiB while refusing the bomb"


def test_checker_failure() -> None:
    bad = _model([helper.make_node("Gemm", ["input", "w"], ["output"], transB=1)],
                 [numpy_helper.from_array(np.ones((4, 5), np.float32), "w")])
    _refused(bad.SerializeToString(), "fails the ONNX checker")
    dangling = _model([helper.make_node("Gemm", ["ghost", "w"], ["output"], transB=1)], [W])
    _refused(dangling.SerializeToString(), "fails the ONNX checker")


def test_control_flow_is_refused() -> None:
    branch = helper.make_graph([helper.make_node("Identity", ["input"], ["b"])], "b", [],
                               [helper.make_tensor_value_info("b", TensorProto.FLOAT, None)])
    nodes = [helper.make_node("ReduceSum", ["input"], ["s"], keepdims=0),
             helper.make_node("Greater", ["s", "zero"], ["c"]),
             helper.make_node("If", ["c"], ["h"], then_branch=branch, else_branch=branch),
             *_linear("h")]
    zero = numpy_helper.from_array(np.array(0.0, np.float32), "zero")
    _refused(_model(nodes, [W, zero]).SerializeToString(), "control flow")


@pytest.mark.parametrize("op", ["ConstantOfShape", "Expand"])
def test_memory_bomb_refused_before_onnxruntime(op: str) -> None:
    shape = numpy_helper.from_array(np.array([1 << 16, 1 << 16, 1 << 8], np.int64), "big")
    one = numpy_helper.from_array(np.ones((1, 1, 1), np.float32), "one")
    inputs = ["big"] if op == "ConstantOfShape" else ["one", "big"]
    nodes = [helper.make_node(op, inputs, ["bomb"]),
             helper.make_node("ReduceMax", ["bomb"], ["m"], keepdims=0), *_linear(out="z"),
             helper.make_node("Add", ["z", "m"], ["output"])]
    _refused(_model(nodes, [W, shape, one]).SerializeToString(), "would have shape",
             "over the limit")


def test_tensor_claims_more_than_it_stores(valid: bytes) -> None:
    model = onnx.ModelProto.FromString(valid)
    init = model.graph.initializer[2]
    del init.dims[:]
    init.dims.extend([1 << 20, 1 << 20])
    _refused(model.SerializeToString(), "declares", "elements, over the limit")
    init.dims[:] = [3, 3]
    _refused(model.SerializeToString(), "stores data for")


def test_declared_dims_out_of_range(valid: bytes) -> None:
    model = onnx.ModelProto.FromString(valid)
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 1 << 40
    _refused(model.SerializeToString(), "declares dimension")


def test_unsupported_opset(valid: bytes) -> None:
    model = onnx.ModelProto.FromString(valid)
    model.opset_import[0].version = 10_000
    _refused(model.SerializeToString(), "opset 10000")


def test_several_float_outputs() -> None:
    outputs = [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", 4]),
               helper.make_tensor_value_info("aux", TensorProto.FLOAT, ["n", 4])]
    nodes = [*_linear(), helper.make_node("Relu", ["output"], ["aux"])]
    _refused(_model(nodes, [W], outputs=outputs).SerializeToString(), "several float outputs")


def test_single_score_is_not_a_classifier() -> None:
    w1 = numpy_helper.from_array(np.ones((1, 6), np.float32), "w")
    outputs = [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", 1])]
    _refused(_model(_linear(), [w1], outputs=outputs).SerializeToString(), ">= 2")
