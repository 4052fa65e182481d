"""A model that takes the standard's units: the submission's input mapping in front of it."""

from __future__ import annotations

import dataclasses

import onnx

from verifiers.model.limits import DEFAULT_MAX_BYTES
from verifiers.model.loaded import LoadedModel, load_model
from verifiers.model.unpack import unpack
from verifiers.units import InputMapping


def load_mapped(model_bytes: bytes, loaded: LoadedModel, mapping: InputMapping,
                max_bytes: int = DEFAULT_MAX_BYTES) -> LoadedModel:
    """``loaded`` (the upload, already accepted by intake) with ``z = (p - mean) / std`` in
    front, accepted again by intake. Its info keeps the upload's hash and size: the
    certificate is for the bytes the user ships, which compute the same function of z."""
    data, _ = unpack(model_bytes, max_bytes)
    sample_shape = [int(d) if isinstance(d, int) and d > 0 else 1
                    for d in loaded.info.input_shape[1:]]
    prefixed = mapping.prefix(onnx.load_model_from_string(data), sample_shape)
    mapped = load_model(prefixed.SerializeToString(), allow_random=loaded.info.stochastic,
                        max_bytes=max_bytes + 1024 * 1024)
    note = (f"input mapping in front of the graph: z = (x - {list(mapping.mean)}) / "
            f"{list(mapping.std)}")
    info = dataclasses.replace(mapped.info, sha256=loaded.info.sha256, size=loaded.info.size,
                               compressed=loaded.info.compressed, bundle=loaded.info.bundle,
                               notes=(*mapped.info.notes, note))
    return dataclasses.replace(mapped, info=info)
