"""An accepted model: the checked protobuf, its description and an onnxruntime runner.

``load_model`` is the one entry point for untrusted uploads (the API calls it to validate
them): every refusal is an :class:`IntakeError` naming the problem.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from verifiers.errors import IntakeError
from verifiers.model.batch import normalise_batch
from verifiers.model.head import (
    find_head,
    label_outputs,
    numeric_kind,
    pick_output,
    tail_node,
    unzip_zipmap,
)
from verifiers.model.info import ModelInfo
from verifiers.model.intake import _require_bytes, describe, model_input, parse_bytes, shape_of
from verifiers.model.limits import DEFAULT_MAX_BYTES, IntakeLimits
from verifiers.model.runtime import OnnxRunner
from verifiers.model.screen import random_ops_on_path, refuse_huge_activations
from verifiers.model.unpack import unpack

log = logging.getLogger(__name__)

_PROBE_SEED = 0
_PROBE_ROWS = 8


@dataclass
class LoadedModel:
    # The model the runner runs: the upload, with ZipMap unwrapped and the batch dimension
    # made dynamic when that was verified to change no output (see info.batch).
    proto: onnx.ModelProto
    info: ModelInfo
    runner: OnnxRunner
    num_classes: int
    # The bytes as uploaded (decompressed), for re-checking adversarial examples on the
    # original model. The same runner as ``runner`` when only ZipMap had to be unwrapped (the
    # original's output is then not a tensor) or when nothing was rewritten.
    reference: OnnxRunner | None = None
    reference_note: str = "original model"

    @property
    def original(self) -> OnnxRunner:
        return self.reference or self.runner


def load_model(source: str | Path | bytes, *, allow_random: bool = False,
               max_bytes: int = DEFAULT_MAX_BYTES) -> LoadedModel:
    """Intake, batch normalisation and a seeded trial run that learns the output's meaning.

    ``allow_random`` accepts random ops on the output path (for EOT attacks); ``max_bytes``
    caps the upload and its gzip-decompressed (or bundle-inlined) size.
    """
    raw = Path(source).read_bytes() if isinstance(source, (str, Path)) else source
    limits = IntakeLimits(max_bytes=max_bytes)
    data, packing = unpack(_require_bytes(raw), limits.max_bytes)
    proto = parse_bytes(data, limits)
    proto, zip_note = unzip_zipmap(proto)
    inp, output = model_input(proto), pick_output(proto)
    _check_sample_shape(inp, limits)
    random_ops = random_ops_on_path(proto, output.name)
    if random_ops and not allow_random:
        raise IntakeError(
            f"model has random ops on the path to its output ({', '.join(random_ops[:5])}); "
            "its predictions are not reproducible. Export it in inference mode, or submit it "
            "flagged for EOT (allow_random)")
    refuse_huge_activations(proto, limits)
    proto, batch = normalise_batch(proto, proto.SerializeToString(), inp.name, output.name,
                                   verify=not random_ops)
    info = describe(proto, raw)
    input_shape = shape_of(model_input(proto))
    if batch.status == "fixed" and batch.fixed_size:
        input_shape[0] = batch.fixed_size
    notes = [zip_note] if zip_note else []
    if random_ops:
        notes.append(f"stochastic: {', '.join(random_ops[:5])} (accepted for EOT)")
    info = dataclasses.replace(
        info, input_shape=input_shape, batch=batch.status, batch_detail=batch.detail,
        compressed=packing == "gzip", bundle=packing == "bundle", onnx_size=len(data),
        max_bytes=limits.max_bytes,
        stochastic=bool(random_ops))
    runner = OnnxRunner(proto.SerializeToString(), info)
    probe = _probe_inputs(input_shape, runner.fixed_batch or _PROBE_ROWS)
    scores = runner.run(probe)
    num_classes = int(scores.shape[1]) if scores.ndim == 2 else 0
    if num_classes < 2:
        raise IntakeError(f"model outputs {num_classes} score(s) per sample; a classifier "
                          "needs >= 2")
    _check_labels(proto, runner, probe, scores)
    kind, logits_from, kind_notes = _output_kind(proto, info.output_name, scores)
    info = dataclasses.replace(info, output_kind=kind, logits_from=logits_from,
                               notes=tuple(notes + kind_notes))
    reference, reference_note = _reference_runner(data, info, batch.status, zip_note)
    log.info("accepted model %s (opset %d, %s): batch %s, output %s, logits from %s",
             info.sha256[:12], info.opset, info.producer or "unknown producer", info.batch,
             info.output_kind, info.logits_from)
    return LoadedModel(proto=proto, info=info, runner=runner, num_classes=num_classes,
                       reference=reference, reference_note=reference_note)


def _reference_runner(original: bytes, info: ModelInfo, batch_status: str,
                      zip_note: str) -> tuple[OnnxRunner | None, str]:
    """A runner on the uploaded graph itself when intake rewrote its batch dimension."""
    if zip_note:
        return None, "ZipMap-unwrapped model (the original's output is a map, not a tensor)"
    if batch_status not in ("rewritten", "added"):
        return None, "original model"
    original_proto = onnx.load_model_from_string(original)
    shape = shape_of(model_input(original_proto))
    if batch_status == "added" or not shape:
        # No batch dimension in the original: it can only be run on exactly one sample.
        return None, "batch dimension added by intake (verified equal on probes)"
    ref_info = dataclasses.replace(info, input_shape=shape)
    return OnnxRunner(original, ref_info), "original model (fixed batch, as uploaded)"


def _check_sample_shape(inp: onnx.ValueInfoProto, limits: IntakeLimits) -> None:
    shape = shape_of(inp)
    sample = shape[1:] if len(shape) > 1 else shape
    if not shape or any(not isinstance(d, int) or d <= 0 for d in sample):
        raise IntakeError(
            f"model input shape {shape} has symbolic or empty non-batch dimensions; "
            "export it with a fixed sample shape")
    if math.prod(sample) > limits.max_input_elements:
        raise IntakeError(f"model input sample shape {sample} has over "
                          f"{limits.max_input_elements} elements")


def _probe_inputs(input_shape: list[int | str | None], rows: int) -> np.ndarray:
    sample = [int(d) for d in input_shape[1:]]  # checked concrete above
    return np.random.default_rng(_PROBE_SEED).random((rows, *sample), dtype=np.float32)


def _check_labels(proto: onnx.ModelProto, runner: OnnxRunner, probe: np.ndarray,
                  scores: np.ndarray) -> None:
    """A label output (skl2onnx) must be the argmax column: labels must be 0..C-1 in order."""
    labels = label_outputs(proto)
    if not labels:
        return
    outs = runner.run_outputs(probe, labels)
    top2 = np.sort(scores, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 1e-6
    for name, out in zip(labels, outs, strict=True):
        predicted = out.reshape(len(probe), -1)[:, 0] if out.size else out
        if predicted.shape != (len(probe),):
            continue
        if np.any(predicted[clear] != scores.argmax(axis=1)[clear]):
            raise IntakeError(
                f"the model's label output {name!r} disagrees with the argmax of its scores: "
                "class labels must be the integers 0..C-1 in column order")


def _output_kind(proto: onnx.ModelProto, output_name: str,
                 scores: np.ndarray) -> tuple[str, str, list[str]]:
    """(kind, how logits are obtained, notes): what the rows hold decides, the graph explains."""
    kind = numeric_kind(scores)
    head = find_head(proto, output_name)
    tail = tail_node(proto, output_name)
    notes: list[str] = []
    if head is not None and kind != "logits" and head.op_type == (
            "Softmax" if kind == "probabilities" else "LogSoftmax"):
        return kind, f"cut {head.op_type} {head.name!r}", notes
    if kind == "probabilities":
        notes.append("outputs probabilities but no Softmax head was found to cut: logits are "
                     "taken as log(p), whose gradient vanishes where p saturates")
        return kind, "log(output)", notes
    if head is not None:
        notes.append(f"ends in {head.op_type} {head.name!r} but its rows are not normalised; "
                     "treated as scores")
    elif tail is not None and tail.op_type in ("Sigmoid", "Tanh", "HardSigmoid"):
        notes.append(f"output passes through {tail.op_type}: monotone scores, not probabilities")
    return kind, "output", notes
