"""One relaxation per op family; importing this package fills the registry."""

from verifiers.bounds.ops import (  # noqa: F401
    activation,
    arith,
    conv,
    convt,
    linear,
    maxmin,
    norm,
    pool,
    reduce,
    scalar,
    select,
    shape,
    sshape,
)
from verifiers.bounds.ops.base import BoundOp, Interval, NodeSpec, build_op, supported_ops

__all__ = ["BoundOp", "Interval", "NodeSpec", "build_op", "supported_ops"]
