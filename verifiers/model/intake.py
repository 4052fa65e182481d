"""Intake of untrusted ONNX bytes: unpack, parse, screen, check, describe.

Nothing here executes the model; ``loaded`` runs it after intake has accepted it. Every
refusal is an :class:`IntakeError` whose message names the problem (the API shows it).
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter

import onnx
from google.protobuf.message import DecodeError

from verifiers.errors import IntakeError
from verifiers.model.head import FLOAT_TYPES, pick_output, structural_kind
from verifiers.model.info import ModelInfo
from verifiers.model.limits import DEFAULT_MAX_BYTES, IntakeLimits
from verifiers.model.screen import main_opset, screen
from verifiers.model.unpack import unpack

__all__ = ["ModelInfo", "describe", "model_input", "parse_bytes",
           "parse_model"]


def parse_model(raw: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> onnx.ModelProto:
    """Parse and fully check ONNX bytes (gzip accepted); refuse anything unsafe or malformed."""
    limits = IntakeLimits(max_bytes=max_bytes)
    data, _ = unpack(_require_bytes(raw), limits.max_bytes)
    return parse_bytes(data, limits)


def parse_bytes(data: bytes, limits: IntakeLimits) -> onnx.ModelProto:
    """Serialized (decompressed) ONNX -> a checked ModelProto."""
    if not data:
        raise IntakeError("model file is empty (0 bytes)")
    try:
        model = onnx.ModelProto.FromString(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise IntakeError(f"model is not a valid ONNX protobuf: {_first_line(exc)}") from exc
    screen(model, limits)
    try:
        # The checker is C++; the screen above already refused what is known to hurt it.
        # It reads the screened message re-serialized, the bytes every later stage sees.
        onnx.checker.check_model(model.SerializeToString(), full_check=True)
    except Exception as exc:  # ValidationError, InferenceError and a few untyped ones
        raise IntakeError(f"model fails the ONNX checker: {_first_line(exc)}") from exc
    return model


def model_input(model: onnx.ModelProto) -> onnx.ValueInfoProto:
    """The single float tensor input, everything the attacks perturb."""
    initializer_names = {init.name for init in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializer_names]
    if len(inputs) != 1:
        names = ", ".join(repr(i.name) for i in inputs)
        raise IntakeError(f"model must have exactly one input, it has {len(inputs)}"
                          + (f" ({names})" if names else ""))
    (inp,) = inputs
    if not inp.type.HasField("tensor_type"):
        raise IntakeError(f"model input {inp.name!r} is not a tensor")
    elem = inp.type.tensor_type.elem_type
    if elem not in FLOAT_TYPES:
        raise IntakeError(
            f"model input {inp.name!r} has type {_type_name(elem)}; "
            "only float inputs can be perturbed"
        )
    if not inp.type.tensor_type.HasField("shape"):
        raise IntakeError(f"model input {inp.name!r} declares no shape")
    return inp


def describe(model: onnx.ModelProto, raw: bytes) -> ModelInfo:
    """What the protobuf alone says (no run): input, output, opset, ops, parameters."""
    inp = model_input(model)
    output = pick_output(model)
    histogram = Counter(node.op_type for node in model.graph.node)
    # Float initializers are parameters; integer ones are shapes and indices.
    params = sum(math.prod(init.dims) for init in model.graph.initializer
                 if init.data_type in FLOAT_TYPES)
    return ModelInfo(
        sha256=hashlib.sha256(raw).hexdigest(),
        size=len(raw),
        opset=main_opset(model),
        producer=f"{model.producer_name} {model.producer_version}".strip(),
        input_name=inp.name,
        input_shape=shape_of(inp),
        input_dtype=_type_name(inp.type.tensor_type.elem_type).lower(),
        output_name=output.name,
        output_kind=structural_kind(model, output.name),
        op_histogram=dict(sorted(histogram.items())),
        parameter_count=params,
    )


def shape_of(value_info: onnx.ValueInfoProto) -> list[int | str | None]:
    dims: list[int | str | None] = []
    for dim in value_info.type.tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            dims.append(int(dim.dim_value))
        elif dim.HasField("dim_param"):
            dims.append(dim.dim_param)
        else:
            dims.append(None)
    return dims


def _require_bytes(raw: bytes) -> bytes:
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise IntakeError(f"model must be bytes, got {type(raw).__name__}")
    if not raw:
        raise IntakeError("model file is empty (0 bytes)")
    return bytes(raw)


def _type_name(elem: int) -> str:
    try:
        return onnx.TensorProto.DataType.Name(elem)
    except ValueError:
        return f"unknown type {elem}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
