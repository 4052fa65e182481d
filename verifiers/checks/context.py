"""What every check of the battery can read, and what earlier checks leave for later ones."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from verifiers.attacks import masking
from verifiers.attacks.masking import AttackSurface
from verifiers.bounds.graph import BoundGraph, build_graph
from verifiers.data import EvalSet, InputDomain
from verifiers.errors import IntakeError
from verifiers.model import LoadedModel, OnnxRunner, logits_graph
from verifiers.scorecard import CheckResult
from verifiers.standards import Standard
from verifiers.units import InputMapping


@dataclass
class RunContext:
    model: LoadedModel
    eval_set: EvalSet
    standard: Standard
    domain: InputDomain
    device: torch.device
    seed: int
    batch_size: int
    # progress(fraction of this check done); the pipeline maps it onto the whole run.
    progress: Callable[[float], None] = lambda _f: None
    results: dict[str, CheckResult] = field(default_factory=dict)
    # Set by the clean check: which samples onnxruntime classifies correctly.
    correct: np.ndarray | None = None
    # Set by the fidelity check: the torch module, or None with the reason white-box is off.
    module: torch.nn.Module | None = None
    white_box_reason: str = "fidelity check did not run"
    # Per-sample evidence other checks must agree with (e.g. the attacked-robust mask).
    per_sample: dict[str, Any] = field(default_factory=dict)
    # Optional user-uploaded OOD inputs (npz ``x``, same sample shape as the evaluation set).
    ood_x: np.ndarray | None = None
    # How the model's input units map to the standard's (already in front of ``model``).
    mapping: InputMapping | None = None
    # Epoch seconds at which the standard's ``time_limit_s`` runs out (None: no limit).
    deadline: float | None = None

    _bound_graph: BoundGraph | None = field(default=None, repr=False)
    _surface: tuple[torch.nn.Module | None, AttackSurface] | None = field(default=None,
                                                                          repr=False)
    _graph_error: IntakeError | None = field(default=None, repr=False)
    _logits: tuple[OnnxRunner | None] | None = field(default=None, repr=False)

    @property
    def time_limit_reason(self) -> str:
        return f"time limit of {self.standard.time_limit_s or 0:g} s reached"

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.time() > self.deadline

    def bound_graph(self) -> BoundGraph:
        """The bound engine's graph of the model, built once per run and shared by the checks
        that bound it (certified, ood); raises IntakeError/UnsupportedOpError every time."""
        if self._graph_error is not None:
            raise self._graph_error
        if self._bound_graph is None:
            try:
                self._bound_graph = build_graph(self.model.proto)
            except IntakeError as exc:  # UnsupportedOpError is one too
                self._graph_error = exc
                raise
        return self._bound_graph

    def attack_surface(self) -> AttackSurface:
        """What white-box attacks differentiate (BPDA/EOT where the graph needs it), built
        once per run from the fidelity check's module and shared by every attack chunk, the
        adversarial summary and the sanity checks."""
        if self._surface is None or self._surface[0] is not self.module:  # rebuilt on a new one
            # A copy: x may be a read-only memory map (verifiers.diskarrays).
            probe = torch.from_numpy(np.array(self.eval_set.x[:64])).to(self.device)
            self._surface = (self.module, masking.surface(
                self.model.proto, self.model.info.output_name, self.module,
                self.white_box_reason, probe, self.standard.budget.eot))
        return self._surface[1]

    def logits_runner(self) -> OnnxRunner | None:
        """onnxruntime on the graph with a Softmax head cut (None when the model outputs
        logits or log-probabilities already, or has no head to cut), built once per run."""
        if self._logits is None:
            runner = None
            if self.model.info.output_kind == "probabilities":
                graph, cut = logits_graph(self.model.proto, self.model.info.output_kind)
                if cut:
                    runner = OnnxRunner(graph.SerializeToString(), self.model.info)
            self._logits = (runner,)
        return self._logits[0]

    def generator(self, salt: int) -> torch.Generator:
        """A seeded generator per check, so adding a check never shifts another's randomness."""
        return torch.Generator().manual_seed(self.seed * 1_000_003 + salt)
