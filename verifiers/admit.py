"""What is refused before any work: the model, the evaluation set in the standard's units,
the input domain and the user's OOD inputs.

Its own module, light (no torch, no battery): the API runs it on every upload, and the
service must not load the battery to answer a 4xx.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from verifiers.data import EvalSet, InputDomain, check_against_model, resolve_domain
from verifiers.model import LoadedModel, load_model
from verifiers.model.mapped import load_mapped
from verifiers.ood import user_suite
from verifiers.standards import Standard
from verifiers.units import InputMapping


def intake(model_bytes: bytes, eval_set: EvalSet, standard: Standard,
           input_range: tuple[float | None, float | None] = (None, None),
           ood_x: np.ndarray | None = None, mapping: InputMapping | None = None, *,
           loaded: LoadedModel | None = None
           ) -> tuple[LoadedModel, EvalSet, InputDomain, np.ndarray | None]:
    """Everything refused before any work, in the standard's units: (model, evaluation set,
    input domain, OOD inputs). The API runs the same function on an upload (``loaded``: the
    upload, when it was already accepted by intake)."""
    model = loaded or load_model(model_bytes)
    check_against_model(eval_set, model.info.input_shape, model.num_classes)
    if mapping is not None:
        model = load_mapped(model_bytes, model, mapping)
        eval_set = dataclasses.replace(eval_set, x=mapping.to_standard(eval_set.x))
    label = f"standard {standard.name} v{standard.version}"
    domain = resolve_domain(eval_set, standard.input_domain, *input_range,
                            mapped=mapping is not None, standard=label)
    if ood_x is not None:
        user_suite(ood_x, eval_set.x.shape[1:], None)  # refuse a bad set before any work
        if mapping is not None:
            ood_x = mapping.to_standard(ood_x)
    return model, eval_set, domain, ood_x
