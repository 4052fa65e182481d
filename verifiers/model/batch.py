"""Make the batch dimension dynamic where the graph allows it.

Verification benchmarks are often exported with a fixed batch of 1; fed one sample at a time
they waste the accelerator (ART #970). The rewrite marks dim 0 of the input and outputs as
symbolic, turns Reshape targets whose first entry is the fixed batch into -1 (or 0), and is
kept only if onnxruntime gives the original's outputs on seeded probes, batched and alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from verifiers.errors import IntakeError
from verifiers.model.reshape import make_reshapes_dynamic
from verifiers.model.runtime import make_session, np_dtype, run_session

BATCH_PARAM = "batch"
_PROBES = 4
_MAX_FIXED = 32  # beyond this fixed batch the probe would cost more than it saves
_RTOL, _ATOL = 1e-5, 1e-6


@dataclass(frozen=True)
class BatchDim:
    status: str  # "dynamic", "rewritten", "added" or "fixed"
    detail: str = ""
    fixed_size: int | None = None


def normalise_batch(model: onnx.ModelProto, raw: bytes, input_name: str, output_name: str,
                    *, verify: bool = True) -> tuple[onnx.ModelProto, BatchDim]:
    """The model to run and what was done to its batch dimension."""
    inp = next(i for i in model.graph.input if i.name == input_name)
    dims = list(inp.type.tensor_type.shape.dim)
    first = dims[0] if dims else None
    fixed = first.dim_value if first is not None and first.HasField("dim_value") else None
    if len(dims) == 1 and fixed is not None:
        return _add_batch(model, raw, input_name, output_name, verify)
    if len(dims) < 2:
        raise IntakeError(f"model input {input_name!r} has shape {_dims(dims)}: "
                          "no batch dimension and no per-sample features")
    if fixed == 0:
        raise IntakeError(f"model input {input_name!r} declares a batch dimension of 0")
    if not verify:
        status = "fixed" if fixed else "dynamic"
        return model, BatchDim(status, "stochastic model: batching not verified", fixed)
    sample = [d.dim_value for d in dims[1:]]
    probe = _Probe(raw, input_name, output_name, sample, np_dtype(inp.type.tensor_type.elem_type))
    kept = model
    if fixed is None:
        problem = probe.disagrees(raw, per_call=1)
        if not problem:
            return model, BatchDim("dynamic")
        fixed, why_fixed = 1, f"declared dynamic but batches disagree ({problem})"
        kept = _declared_batch(model, input_name, 1)  # make the declaration honest
    else:
        why_fixed = f"exported with a fixed batch of {fixed}"
    if fixed > _MAX_FIXED:
        return kept, BatchDim("fixed", f"{why_fixed}; not rewritten above {_MAX_FIXED}", fixed)
    candidate = _with_dim0(model, input_name, add=False, fixed=fixed)
    changed = make_reshapes_dynamic(candidate, model, fixed)
    problem = _check(candidate) or probe.disagrees(candidate.SerializeToString(), per_call=fixed)
    if problem:
        return kept, BatchDim("fixed", f"{why_fixed}; rewrite rejected: {problem}", fixed)
    detail = f"{why_fixed}; made dynamic" + (f", Reshape targets {changed}" if changed else "")
    return candidate, BatchDim("rewritten", detail)


def _add_batch(model: onnx.ModelProto, raw: bytes, input_name: str, output_name: str,
               verify: bool) -> tuple[onnx.ModelProto, BatchDim]:
    inp = next(i for i in model.graph.input if i.name == input_name)
    features = inp.type.tensor_type.shape.dim[0].dim_value
    if not verify:
        raise IntakeError(f"model input {input_name!r} has no batch dimension, and one cannot "
                          "be added to a stochastic model")
    candidate = _with_dim0(model, input_name, add=True)
    probe = _Probe(raw, input_name, output_name, [features],
                   np_dtype(inp.type.tensor_type.elem_type), unbatched=True)
    problem = _check(candidate) or probe.disagrees(candidate.SerializeToString(), per_call=1)
    if problem:
        raise IntakeError(f"model input {input_name!r} has shape [{features}] with no batch "
                          f"dimension, and adding one fails: {problem}")
    return candidate, BatchDim("added", f"input had shape [{features}]; batch dimension added")


class _Probe:
    """Seeded inputs and the original model's outputs on them, one call per ``per_call``."""

    def __init__(self, raw: bytes, input_name: str, output_name: str, sample: list[int],
                 dtype: np.dtype, unbatched: bool = False) -> None:
        self.input_name, self.output_name = input_name, output_name
        self.sample, self.dtype, self.unbatched = sample, dtype, unbatched
        self.session = make_session(raw, cpu_only=True)  # same verdict on every host

    def disagrees(self, candidate: bytes, per_call: int) -> str:
        """'' when ``candidate`` batched matches the original per call; else the reason."""
        n = _PROBES * per_call if per_call > 1 else _PROBES
        rng = np.random.default_rng(0)
        x = rng.random((n, *self.sample)).astype(self.dtype)
        try:
            reference = self._reference(x, per_call)
            session = make_session(candidate, cpu_only=True)
            whole = run_session(session, [self.output_name], {self.input_name: x})[0]
            alone = run_session(session, [self.output_name], {self.input_name: x[:1]})[0]
        except IntakeError as exc:
            return str(exc)
        if whole.shape != reference.shape or alone.shape != reference[:1].shape:
            return f"output shape {list(whole.shape)} instead of {list(reference.shape)}"
        for got, want in ((whole, reference), (alone, reference[:1])):
            if not np.allclose(got, want, rtol=_RTOL, atol=_ATOL, equal_nan=True):
                diff = float(np.nanmax(np.abs(got.astype(np.float64) - want)))
                return f"outputs differ by up to {diff:.3g}"
        return ""

    def _reference(self, x: np.ndarray, per_call: int) -> np.ndarray:
        outs = []
        for start in range(0, len(x), per_call):
            feed = x[start] if self.unbatched else x[start:start + per_call]
            (out,) = run_session(self.session, [self.output_name], {self.input_name: feed})
            outs.append(out[None] if self.unbatched else out)
        shapes = {o.shape for o in outs}
        if len(shapes) != 1 or (not self.unbatched and outs[0].shape[:1] != (per_call,)):
            raise IntakeError(f"the original's output shape {list(outs[0].shape)} has no batch "
                              "dimension to extend")
        return np.concatenate(outs, axis=0)


def _check(candidate: onnx.ModelProto) -> str:
    try:
        onnx.checker.check_model(candidate, full_check=True)
    except Exception as exc:  # the C++ checker raises several types
        return f"checker: {str(exc).strip().splitlines()[0][:200]}"
    return ""


def _with_dim0(model: onnx.ModelProto, input_name: str, add: bool,
               fixed: int | None = None) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    inp = next(i for i in graph.input if i.name == input_name)
    if add:
        _prepend_batch(inp.type.tensor_type.shape)
    else:
        inp.type.tensor_type.shape.dim[0].dim_param = BATCH_PARAM  # the oneof drops dim_value
    for output in graph.output:
        tensor = output.type.tensor_type
        if add and tensor.HasField("shape"):
            _prepend_batch(tensor.shape)
        elif tensor.shape.dim and tensor.shape.dim[0].dim_value == fixed:
            tensor.shape.dim[0].dim_param = BATCH_PARAM
    # Intermediate shape hints are optional; dropping them beats rewriting them wrongly.
    del graph.value_info[:]
    return out


def _declared_batch(model: onnx.ModelProto, input_name: str, size: int) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    inp = next(i for i in out.graph.input if i.name == input_name)
    inp.type.tensor_type.shape.dim[0].dim_value = size
    return out


def _prepend_batch(shape: onnx.TensorShapeProto) -> None:
    kept = [onnx.TensorShapeProto.Dimension.FromString(d.SerializeToString()) for d in shape.dim]
    del shape.dim[:]
    shape.dim.add().dim_param = BATCH_PARAM
    shape.dim.extend(kept)


def _dims(dims: list) -> list[int | str]:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
