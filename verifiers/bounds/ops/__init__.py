"""One relaxation per op family; importing this package fills the registry."""

from verifiers.bounds.ops import activation, arith, conv, linear, pool, shape, sshape  # noqa: F401
from verifiers.bounds.ops.base import BoundOp, Interval, NodeSpec, build_op, supported_ops

__all__ = ["BoundOp", "Interval", "NodeSpec", "build_op", "supported_ops"]
