"""Hand-built graphs in the shapes of published verification benchmarks, and the batch rewrite.

Fixed batch 1, Sub/Div normalisation, NHWC + Transpose, opsets 8-12 (initializers listed as
inputs), Flatten after Conv, constant Reshape, Gemm with transB, 1-D inputs. A fixed batch is
made dynamic only when onnxruntime confirms identical outputs; otherwise it is kept and fed
in chunks of exactly that size.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from verifiers.model import fidelity, load_model, to_torch
from verifiers.model.fuzz import seeds

CPU = torch.device("cpu")
SEED_BATCH = {"mlp_gemm_opset11": "rewritten", "mlp_gemm_opset8_softmax": "rewritten",
              "cnn_nhwc_opset11": "rewritten", "cnn_reshape_opset9": "rewritten",
              "cnn_reshape_opset12": "rewritten", "mlp_unbatched_opset8": "added",
              "mlp_squashing_opset12": "dynamic"}


def _one_by_one(raw: bytes, x: np.ndarray, unbatched: bool = False) -> np.ndarray:
    """The ORIGINAL bytes, one sample per call: what the rewritten model must reproduce."""
    session = ort.InferenceSession(raw, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    outs = [session.run(None, {name: row if unbatched else row[None]})[0] for row in x]
    return np.stack([o.reshape(-1) for o in outs])


def _sample_shape(loaded) -> list[int]:
    return [int(d) for d in loaded.info.input_shape[1:]]


@pytest.mark.parametrize("name", sorted(seeds.SEEDS))
def test_benchmark_shaped_seed(name: str) -> None:
    raw = seeds.SEEDS[name]().SerializeToString()
    loaded = load_model(raw)
    assert loaded.info.batch == SEED_BATCH[name], loaded.info.batch_detail
    assert loaded.num_classes == seeds.CLASSES
    x = np.random.default_rng(7).random((9, *_sample_shape(loaded)), dtype=np.float32)
    # Fresh inputs (not the intake's probes), all in one call vs the original one by one.
    np.testing.assert_allclose(loaded.runner.run(x), _one_by_one(raw, x, name.startswith(
        "mlp_unbatched")), rtol=1e-5, atol=1e-6)
    module = to_torch(loaded.proto, loaded.info.output_kind, CPU)
    assert fidelity(loaded.runner, module, x, CPU) < 1e-5


@pytest.mark.parametrize("opset", [8, 9, 10, 11, 12])
def test_old_opsets(opset: int) -> None:
    for model in (seeds.mlp_gemm(opset=opset, softmax=True), seeds.cnn_reshape(opset=opset)):
        loaded = load_model(model.SerializeToString())
        assert loaded.info.opset == opset
        assert loaded.info.batch == "rewritten"
        assert loaded.info.output_kind == "probabilities"
        assert loaded.info.logits_from.startswith("cut Softmax")


def _graph(nodes, inits, in_shape, out_shape, opset=13, in_type=TensorProto.FLOAT,
           out_name="output") -> bytes:
    x = helper.make_tensor_value_info("input", in_type, in_shape)
    y = helper.make_tensor_value_info(out_name, TensorProto.FLOAT, out_shape)
    graph = helper.make_graph(nodes, "g", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return model.SerializeToString()


def _w(name: str, *shape: int, seed: int = 0) -> onnx.TensorProto:
    rng = np.random.default_rng(seed)
    return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)


def test_softmax_seen_through_identity_and_reshape() -> None:
    nodes = [helper.make_node("Gemm", ["input", "w", "b"], ["z"], transB=1),
             helper.make_node("Softmax", ["z"], ["p"], axis=1),
             helper.make_node("Identity", ["p"], ["p2"]),
             helper.make_node("Reshape", ["p2", "shape"], ["output"])]
    inits = [_w("w", 5, 12), _w("b", 5),
             numpy_helper.from_array(np.array([1, 5], np.int64), "shape")]
    loaded = load_model(_graph(nodes, inits, [1, 12], [1, 5]))
    assert loaded.info.output_kind == "probabilities"
    assert loaded.info.batch == "rewritten"
    module = to_torch(loaded.proto, "probabilities", CPU)
    x = np.random.default_rng(1).random((6, 12), dtype=np.float32)
    with torch.no_grad():
        logits = module(torch.from_numpy(x)).numpy()
    w = numpy_helper.to_array(inits[0])
    np.testing.assert_allclose(logits, x @ w.T + numpy_helper.to_array(inits[1]), atol=1e-5)


def test_log_softmax_through_flatten() -> None:
    nodes = [helper.make_node("MatMul", ["input", "w"], ["z"]),
             helper.make_node("LogSoftmax", ["z"], ["lp"], axis=-1),
             helper.make_node("Flatten", ["lp"], ["output"], axis=1)]
    loaded = load_model(_graph(nodes, [_w("w", 12, 4)], ["n", 12], ["n", 4]))
    assert loaded.info.output_kind == "log_probabilities"
    assert loaded.info.logits_from.startswith("cut LogSoftmax")


def _concat_const_model(batch: int) -> bytes:
    """Concatenates a constant [batch, 3] block: no batch other than ``batch`` can run."""
    nodes = [helper.make_node("Concat", ["input", "extra"], ["h"], axis=1),
             helper.make_node("Gemm", ["h", "w"], ["output"], transB=1)]
    inits = [numpy_helper.from_array(np.ones((batch, 3), np.float32), "extra"), _w("w", 4, 9)]
    return _graph(nodes, inits, [batch, 6], [batch, 4])


@pytest.mark.parametrize("batch", [1, 3])
def test_unrewritable_fixed_batch_is_kept_and_chunked(batch: int) -> None:
    raw = _concat_const_model(batch)
    loaded = load_model(raw)
    assert loaded.info.batch == "fixed"
    assert "rewrite rejected" in loaded.info.batch_detail
    assert loaded.runner.fixed_batch == batch
    x = np.random.default_rng(2).random((7, 6), dtype=np.float32)  # 7: not a multiple of 3
    session = ort.InferenceSession(raw, providers=["CPUExecutionProvider"])
    padded = np.concatenate([x, np.repeat(x[-1:], (-len(x)) % batch, axis=0)])
    expected = np.concatenate([session.run(None, {"input": padded[i:i + batch]})[0]
                               for i in range(0, len(padded), batch)])[:len(x)]
    np.testing.assert_allclose(loaded.runner.run(x), expected, rtol=1e-6)
    assert loaded.info.as_dict()["batch"]["status"] == "fixed"


def test_fixed_batch_above_one_is_rewritten() -> None:
    nodes = [helper.make_node("Reshape", ["input", "shape"], ["flat"]),
             helper.make_node("Gemm", ["flat", "w"], ["output"], transB=1)]
    inits = [numpy_helper.from_array(np.array([4, 16], np.int64), "shape"), _w("w", 3, 16)]
    loaded = load_model(_graph(nodes, inits, [4, 4, 4], [4, 3]))
    assert loaded.info.batch == "rewritten", loaded.info.batch_detail
    assert "[4, 16]->[-1, 16]" in loaded.info.batch_detail
    x = np.random.default_rng(3).random((5, 4, 4), dtype=np.float32)
    np.testing.assert_allclose(loaded.runner.run(x), x.reshape(5, 16) @ numpy_helper.to_array(
        inits[1]).T, rtol=1e-5, atol=1e-5)


def test_declared_dynamic_but_baked_batch_is_repaired() -> None:
    """dim 0 says 'N' but a Reshape to [1, -1] would mix the samples of a batch."""
    nodes = [helper.make_node("Reshape", ["input", "shape"], ["flat"]),
             helper.make_node("Gemm", ["flat", "w"], ["output"], transB=1)]
    inits = [numpy_helper.from_array(np.array([1, -1], np.int64), "shape"), _w("w", 3, 8)]
    loaded = load_model(_graph(nodes, inits, ["N", 2, 4], ["N", 3]))
    assert loaded.info.batch == "rewritten"
    assert "declared dynamic but batches disagree" in loaded.info.batch_detail
    x = np.random.default_rng(4).random((6, 2, 4), dtype=np.float32)
    np.testing.assert_allclose(loaded.runner.run(x), x.reshape(6, 8) @ numpy_helper.to_array(
        inits[1]).T, rtol=1e-5, atol=1e-5)


def test_double_input_is_run_in_double() -> None:
    w = np.random.default_rng(5).standard_normal((6, 3))
    nodes = [helper.make_node("MatMul", ["input", "w"], ["output"])]
    x_vi = helper.make_tensor_value_info("input", TensorProto.DOUBLE, [None, 6])
    y_vi = helper.make_tensor_value_info("output", TensorProto.DOUBLE, [None, 3])
    graph = helper.make_graph(nodes, "g", [x_vi], [y_vi], [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    loaded = load_model(model.SerializeToString())
    assert loaded.info.input_dtype == "double"
    x = np.random.default_rng(6).random((4, 6)).astype(np.float32)
    np.testing.assert_allclose(loaded.runner.run(x), x.astype(np.float64) @ w, rtol=1e-6)


@pytest.mark.parametrize("batch", [1, 3])
def test_fixed_batch_model_converts_for_any_batch(batch: int) -> None:
    loaded = load_model(_concat_const_model(batch))
    module = to_torch(loaded.proto, loaded.info.output_kind, CPU)
    x = np.random.default_rng(8).random((5, 6), dtype=np.float32)
    assert fidelity(loaded.runner, module, x, CPU) < 1e-5
    xt = torch.from_numpy(x).requires_grad_(True)
    (grad,) = torch.autograd.grad(module(xt).sum(), xt)
    assert grad.shape == xt.shape and float(grad.abs().sum()) > 0


def test_declared_dynamic_but_unbatchable_is_declared_fixed() -> None:
    nodes = [helper.make_node("Concat", ["input", "extra"], ["h"], axis=1),
             helper.make_node("Gemm", ["h", "w"], ["output"], transB=1)]
    inits = [numpy_helper.from_array(np.ones((1, 3), np.float32), "extra"), _w("w", 4, 9)]
    loaded = load_model(_graph(nodes, inits, ["N", 6], ["N", 4]))
    assert loaded.info.batch == "fixed" and loaded.info.input_shape[0] == 1
    assert loaded.proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    x = np.random.default_rng(9).random((3, 6), dtype=np.float32)
    assert loaded.runner.run(x).shape == (3, 4)
    module = to_torch(loaded.proto, loaded.info.output_kind, CPU)
    assert fidelity(loaded.runner, module, x, CPU) < 1e-5
