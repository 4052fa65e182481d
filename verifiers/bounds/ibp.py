"""Interval bound propagation (IBP): push the input box through every op's ``interval``."""

from __future__ import annotations

from verifiers.bounds.graph import BoundGraph
from verifiers.bounds.ops import Interval
from verifiers.interrupt import checkpoint


def interval_bounds(graph: BoundGraph, box: Interval) -> dict[str, Interval]:
    """Bounds of every tensor of the graph (input included) for inputs in ``box``."""
    bounds = {graph.input_name: box}
    for node in graph.nodes:
        checkpoint()
        bounds[node.output] = node.op.interval(*(bounds[i] for i in node.inputs))
    return bounds
