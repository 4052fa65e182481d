"""Gradient masking in the graph (Athalye et al. 2018), and the adapted attack surface.

``scan`` finds ops on the value path from the input to the output whose gradient is zero
or undefined almost everywhere (Round, Floor, Ceil, Sign, casts to integers, quantisation,
ArgMax/TopK, comparisons) or random (Random*, Bernoulli, training-mode Dropout). A model
built on them defeats gradient attacks without being robust.

``surface`` returns what the white-box attacks should differentiate: the converted module
with every straight-through-able op wrapped by BPDA (forward unchanged, backward the
identity), and the number of EOT samples when the graph is random. The forward pass of the
wrapped module is checked to equal the plain one. Shape-only branches (Shape/Size and what
is computed from them) are not on the value path and are ignored.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field

import onnx
import torch
from torch import nn

from verifiers.model.screen import RANDOM_OPS

log = logging.getLogger(__name__)

STRAIGHT_THROUGH = frozenset({"Round", "Floor", "Ceil", "Sign", "Cast", "QuantizeLinear",
                              "DynamicQuantizeLinear"})
NO_GRADIENT = frozenset({"ArgMax", "ArgMin", "TopK", "Hardmax", "NonZero", "Greater", "Less",
                         "Equal", "GreaterOrEqual", "LessOrEqual", "Mod", "BitShift"})
_SHAPE_ONLY = frozenset({"Shape", "Size"})
_INT_TYPES = {onnx.TensorProto.INT8, onnx.TensorProto.INT16, onnx.TensorProto.INT32,
              onnx.TensorProto.INT64, onnx.TensorProto.UINT8, onnx.TensorProto.UINT16,
              onnx.TensorProto.UINT32, onnx.TensorProto.UINT64, onnx.TensorProto.BOOL}


@dataclass(frozen=True)
class MaskingOp:
    op_type: str
    node: str
    output: str
    remedy: str   # "bpda", "eot" or "none"

    def label(self) -> str:
        return f"{self.op_type} {self.node!r} ({self.remedy})"


@dataclass
class AttackSurface:
    module: nn.Module | None      # what white-box attacks differentiate
    findings: list[MaskingOp] = field(default_factory=list)
    eot: int = 1
    reason: str = ""              # why white-box is off ('' when it is on)

    @property
    def adapted(self) -> list[str]:
        return [f.label() for f in self.findings if f.remedy != "none"]

    @property
    def unhandled(self) -> list[str]:
        return [f.label() for f in self.findings if f.remedy == "none"]


def scan(model: onnx.ModelProto, output_name: str) -> list[MaskingOp]:
    """Gradient-breaking or random nodes whose input depends on the model input's values."""
    graph = model.graph
    inits = {i.name for i in graph.initializer}
    inputs = {i.name for i in graph.input if i.name not in inits}
    # Forward: tensors whose values depend on the input values.
    valued = set(inputs)
    for node in graph.node:  # ONNX nodes are topologically sorted
        if node.op_type in _SHAPE_ONLY:
            continue
        if node.op_type in RANDOM_OPS or any(i in valued for i in node.input if i):
            valued.update(o for o in node.output if o)
    # Backward: nodes the output depends on.
    producer = {o: n for n in graph.node for o in n.output if o}
    needed: set[int] = set()
    stack = [output_name]
    while stack:
        node = producer.get(stack.pop())
        if node is None or id(node) in needed:
            continue
        needed.add(id(node))
        stack.extend(i for i in node.input if i)
    found = []
    for node in graph.node:
        if id(node) not in needed:
            continue
        on_path = any(i in valued for i in node.input if i)
        remedy = _remedy(node, on_path)
        if remedy is not None:
            found.append(MaskingOp(node.op_type, node.name, node.output[0], remedy))
    return found


def _remedy(node: onnx.NodeProto, on_path: bool) -> str | None:
    if node.op_type in RANDOM_OPS:
        return "eot"
    if node.op_type == "Dropout":  # inference-mode Dropout is the identity; intake screens mode
        return None
    if not on_path:
        return None
    if node.op_type == "Cast":
        to = next((a.i for a in node.attribute if a.name == "to"), 0)
        return "bpda" if to in _INT_TYPES else None
    if node.op_type in STRAIGHT_THROUGH:
        return "bpda"
    if node.op_type in NO_GRADIENT:
        return "none"
    return None


class StraightThrough(nn.Module):
    """BPDA for one op: the op's own forward, the identity (in float) as its backward."""

    def __init__(self, op: nn.Module, op_type: str) -> None:
        super().__init__()
        self.op = op
        self.op_type = op_type

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        out = self.op(*args)
        x = args[0]
        if self.op_type in ("QuantizeLinear", "DynamicQuantizeLinear"):
            if isinstance(out, (tuple, list)):
                return out  # dynamic quantisation also returns scale/zero point: leave it
            scale = args[1] if len(args) > 1 else torch.ones((), device=x.device)
            zero = args[2].to(x.dtype) if len(args) > 2 else torch.zeros((), device=x.device)
            smooth = x / scale.to(x.dtype) + zero
            return smooth + (out.to(x.dtype) - smooth).detach()
        return x + (out.to(x.dtype) - x).detach()


def surface(proto: onnx.ModelProto, output_name: str, module: nn.Module | None,
            white_box_reason: str, probe: torch.Tensor, eot: int) -> AttackSurface:
    """The module white-box attacks should use, with BPDA/EOT where the graph needs it."""
    findings = scan(proto, output_name)
    if module is None:
        return AttackSurface(None, findings, reason=white_box_reason or "no torch module")
    rounds = max(1, eot) if any(f.remedy == "eot" for f in findings) else 1
    bpda = [f for f in findings if f.remedy == "bpda"]
    if not bpda:
        return AttackSurface(module, findings, eot=rounds)
    wrapped = copy.deepcopy(module)
    converted = next((m for m in wrapped.modules() if hasattr(m, "mapping")), None)
    missing = []
    for f in bpda:
        name = converted.mapping.get(f.output) if converted is not None else None
        if name is None:
            missing.append(f.label())
            continue
        setattr(converted, name, StraightThrough(getattr(converted, name), f.op_type))
    if missing:
        return AttackSurface(None, findings, reason="BPDA could not wrap "
                             + ", ".join(missing) + " in the converted module")
    with torch.no_grad():
        gap = float((wrapped(probe) - module(probe)).abs().max())
    if not gap <= 1e-5:
        return AttackSurface(None, findings,
                             reason=f"BPDA-wrapped module differs from the plain one by {gap:.3g}")
    log.info("BPDA applied to %s", ", ".join(f.label() for f in bpda))
    return AttackSurface(wrapped, findings, eot=rounds)
