"""Convex-relaxation bounds on ONNX graphs (IBP, CROWN, alpha-CROWN) and a complete tier.

Typical use::

    from verifiers.bounds import Method, certify_samples, verify_vnnlib
    result = certify_samples(model_proto, x, y, eps=0.1, domain=InputDomain(0.0, 1.0),
                             method=Method.ALPHA_CROWN)
    result.certified            # bool per sample

An op without a relaxation raises ``UnsupportedOpError`` naming the node; callers report
"not certifiable: op X at node Y" (see ``verifiers.errors``).
"""

from verifiers.bounds.alpha import AlphaConfig
from verifiers.bounds.bab import BabConfig, BabResult, branch_and_bound
from verifiers.bounds.certify import CertifyResult, certify_samples, linf_box, robustness_spec
from verifiers.bounds.complete import (
    CompleteOutcome,
    complete_certify,
    marabou_queries,
    marabou_query,
)
from verifiers.bounds.crown import LinearSpec
from verifiers.bounds.engine import BoundConfig, Method, SpecBounds, bound_spec
from verifiers.bounds.falsify import FalsifyConfig
from verifiers.bounds.graph import BoundGraph, build_graph
from verifiers.bounds.ops import Interval, supported_ops
from verifiers.bounds.verify import VerificationResult, VerifyConfig, verify_vnnlib
from verifiers.bounds.vnnlib import Region, VnnProperty, parse_vnnlib

__all__ = [
    "AlphaConfig",
    "BabConfig",
    "BabResult",
    "BoundConfig",
    "BoundGraph",
    "CertifyResult",
    "CompleteOutcome",
    "FalsifyConfig",
    "Interval",
    "LinearSpec",
    "Method",
    "Region",
    "SpecBounds",
    "VerificationResult",
    "VerifyConfig",
    "VnnProperty",
    "bound_spec",
    "branch_and_bound",
    "build_graph",
    "certify_samples",
    "complete_certify",
    "linf_box",
    "marabou_queries",
    "marabou_query",
    "parse_vnnlib",
    "robustness_spec",
    "supported_ops",
    "verify_vnnlib",
]
