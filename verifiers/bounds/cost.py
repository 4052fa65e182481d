"""What CROWN's intermediate refinement can cost on a graph, before it is attempted.

CROWN tightens every tensor a relaxation needs bounds on (the input of each ReLU, ...) by one
backward pass per unstable neuron, through everything upstream of it. In the worst case (every
neuron unstable, the usual case on a deep net at a useful eps) a sample costs about

    sum over bounded tensors t of  numel(t) * sum of numel(u) for u upstream of t

numbers moved: a CIFAR ResNet-18 is about 6e12, an ImageNet ResNet-50 about 2e16 (days on a
CPU and tens of GB per pass). The certified check compares this with a limit and, over it,
reports CROWN as not run instead of starting a job that cannot finish
(verifiers.checks.certified).
"""

from __future__ import annotations

import math

from verifiers.bounds.graph import BoundGraph


def refinement_cost(graph: BoundGraph) -> int:
    """Worst-case numbers moved by CROWN's intermediate refinement, per sample."""
    size = {n.output: math.prod(n.shape) for n in graph.nodes}
    total = 0
    for tensor in graph.bounded_tensors():
        if tensor == graph.input_name or tensor in graph.exact_ibp:
            continue
        total += size[tensor] * sum(size[u] for u in graph.upstream(tensor))
    return total
