"""Intake of a user-uploaded OOD set: an ``.npz`` holding a float array ``x``.

Shape and values are checked against the evaluation set later (:func:`suites.user_suite`),
once both are known.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from verifiers.data import DEFAULT_MAX_DECOMPRESSED, UNREADABLE_NPZ, open_npz
from verifiers.errors import DataError


def load_ood_x(source: str | Path | bytes, *,
               max_decompressed: int = DEFAULT_MAX_DECOMPRESSED) -> np.ndarray:
    """Read ``x`` from an untrusted ``.npz`` (no pickles), as float32."""
    raw = Path(source).read_bytes() if isinstance(source, (str, Path)) else source
    if not raw:
        raise DataError("OOD set is empty (0 bytes)")
    try:
        with open_npz(raw, "OOD set", max_decompressed) as npz:
            if "x" not in npz.files:
                raise DataError(f"OOD set lacks array 'x'; found {sorted(npz.files) or 'none'}")
            x = npz["x"]
    except DataError:
        raise
    except UNREADABLE_NPZ as exc:
        raise DataError(f"OOD set is not a readable .npz file: {exc}") from exc
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"OOD set 'x' must be a float array, got dtype {x.dtype}")
    if x.ndim < 2 or len(x) == 0:
        raise DataError(f"OOD set 'x' needs a batch dimension and >= 1 sample, got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise DataError("OOD set 'x' contains NaN or infinite values")
    return np.ascontiguousarray(x, dtype=np.float32)
