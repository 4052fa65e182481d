"""Evaluation sets: the ``.npz`` intake and the valid input domain."""

from __future__ import annotations

import hashlib
import io
import math
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from verifiers.diskarrays import is_mapped, map_blocks, map_members, row_blocks
from verifiers.errors import DataError

if TYPE_CHECKING:  # the standards package imports this module
    from verifiers.standards.spec import DomainSpec


# The most an uploaded ``.npz`` may decompress to, all arrays together, judged from its zip
# headers before any array is read (a 2 MB zip bomb can otherwise expand to gigabytes).
DEFAULT_MAX_DECOMPRESSED = 4 * 1024**3


# What reading a damaged or hostile .npz can raise, besides our own DataError: a corrupt
# deflate stream is a zlib.error, an unknown zip compression method a NotImplementedError.
UNREADABLE_NPZ = (ValueError, OSError, zipfile.BadZipFile, EOFError, OverflowError,
                  MemoryError, zlib.error, NotImplementedError)


def open_npz(raw: bytes, what: str, max_decompressed: int = DEFAULT_MAX_DECOMPRESSED):
    """``np.load`` an untrusted ``.npz`` after checking, from its zip headers alone, that it
    decompresses to at most ``max_decompressed`` bytes and that no array header declares more
    data than its entry holds (a forged shape would otherwise allocate it). No pickles."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            entries = archive.infolist()
            total = sum(info.file_size for info in entries)
            if total > max_decompressed:
                raise DataError(
                    f"{what} decompresses to {total} bytes, over the cap of {max_decompressed} "
                    "bytes (ROBUSTGATE_MAX_DECOMPRESSED_BYTES)")
            for info in entries:
                if info.filename.endswith(".npy"):
                    with archive.open(info) as fp:
                        _check_npy_header(fp, info, what)
    except DataError:
        raise
    except UNREADABLE_NPZ as exc:
        raise DataError(f"{what} is not a readable .npz file: {exc}") from exc
    return np.load(io.BytesIO(raw), allow_pickle=False)


def _check_npy_header(fp, info: zipfile.ZipInfo, what: str) -> None:
    fmt = np.lib.format
    major, _minor = fmt.read_magic(fp)
    reader = fmt.read_array_header_1_0 if major == 1 else fmt.read_array_header_2_0
    shape, _fortran, dtype = reader(fp)
    declared = math.prod(int(n) for n in shape) * dtype.itemsize
    if declared > info.file_size:
        raise DataError(f"{what}: array {info.filename[:-4]!r} declares shape {shape} "
                        f"({declared} bytes) but its entry holds only {info.file_size} bytes")


@dataclass(frozen=True)
class InputDomain:
    """The box every valid input lies in (e.g. [0, 1] for normalised images)."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.low) and np.isfinite(self.high)) or self.low >= self.high:
            raise DataError(f"input range must satisfy low < high, got [{self.low}, {self.high}]")


@dataclass(frozen=True)
class EvalSet:
    """Inputs ``x`` (float32, batch first) and integer labels ``y``.

    ``x`` (and ``mask``) may be read-only memory maps of the uploaded file (see
    :func:`load_eval_set`): read them by slices or index arrays, never write into them."""

    x: np.ndarray
    y: np.ndarray
    sha256: str
    # Optional subgroup id per sample (npz ``group``) and names by id (npz ``group_names``,
    # index = id); see :func:`validate_groups`.
    group: np.ndarray | None = None
    group_names: tuple[str, ...] | None = None
    # Optional evidence mask (npz ``mask``): bool, the shape of ``x``, True where the evidence
    # for the label lies (the object, not the background); see :func:`validate_mask`.
    mask: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def group_label(self, gid: int) -> str:
        """How group ``gid`` is named in metric keys: its name, else its id."""
        return self.group_names[gid] if self.group_names is not None else str(gid)


_EVAL_ARRAYS = {"x", "y", "group", "group_names", "mask"}


def load_eval_set(source: str | Path | bytes, *,
                  max_decompressed: int = DEFAULT_MAX_DECOMPRESSED) -> EvalSet:
    """Read and validate an ``.npz`` with arrays ``x`` (float) and ``y`` (int).

    From a path, ``x`` (and ``mask``) stay on disk, memory-mapped (verifiers.diskarrays):
    a 6 GB set is read in blocks, never whole. From bytes, everything is in memory already.
    Pickled object arrays are refused (``allow_pickle=False``): the file is untrusted; so is
    one that decompresses to more than ``max_decompressed`` bytes (see :func:`open_npz`).
    """
    try:
        if isinstance(source, (str, Path)):
            arrays, sha256 = _mapped_arrays(Path(source), max_decompressed)
        else:
            arrays, sha256 = _loaded_arrays(source, max_decompressed)
    except DataError:
        raise
    except UNREADABLE_NPZ as exc:
        raise DataError(f"evaluation set is not a readable .npz file: {exc}") from exc
    missing = sorted({"x", "y"} - set(arrays))
    if missing:
        raise DataError(
            f"evaluation set lacks array(s) {', '.join(missing)}; "
            f"expected 'x' (float32) and 'y' (int64), found {sorted(arrays) or 'none'}"
        )
    return validate_arrays(arrays["x"], np.asarray(arrays["y"]), sha256,
                           group=_in_memory(arrays.get("group")),
                           group_names=_in_memory(arrays.get("group_names")),
                           mask=arrays.get("mask"))


def _loaded_arrays(raw: bytes, max_decompressed: int) -> tuple[dict[str, np.ndarray], str]:
    if not raw:
        raise DataError("evaluation set is empty (0 bytes)")
    with open_npz(raw, "evaluation set", max_decompressed) as npz:
        arrays = {name: npz[name] for name in npz.files if name in _EVAL_ARRAYS}
        others = [name for name in npz.files if name not in _EVAL_ARRAYS]
    return arrays | dict.fromkeys(others), hashlib.sha256(raw).hexdigest()


def _mapped_arrays(path: Path, max_decompressed: int) -> tuple[dict[str, np.ndarray], str]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as fp:
        while chunk := fp.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    if not size:
        raise DataError("evaluation set is empty (0 bytes)")
    with zipfile.ZipFile(path) as archive:
        listed = {i.filename[:-4] for i in archive.infolist() if i.filename.endswith(".npy")}
    arrays = map_members(path, _EVAL_ARRAYS, "evaluation set", max_decompressed)
    return arrays | dict.fromkeys(listed - set(arrays)), digest.hexdigest()


def _in_memory(a: np.ndarray | None) -> np.ndarray | None:
    return None if a is None else np.array(a)


def validate_arrays(x: np.ndarray, y: np.ndarray, sha256: str = "", *,
                    group: np.ndarray | None = None,
                    group_names: np.ndarray | None = None,
                    mask: np.ndarray | None = None) -> EvalSet:
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"'x' must be a float array (float32), got dtype {x.dtype}")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"'y' must be an integer array (int64), got dtype {y.dtype}")
    if x.ndim < 2:
        raise DataError(f"'x' must have a batch dimension and features, got shape {x.shape}")
    if y.ndim != 1:
        raise DataError(f"'y' must be one-dimensional, got shape {y.shape}")
    if x.shape[0] == 0:
        raise DataError("evaluation set has no samples")
    if x.shape[0] != y.shape[0]:
        raise DataError(f"'x' has {x.shape[0]} samples but 'y' has {y.shape[0]} labels")
    # Block by block: a whole-array temporary of a 6 GB set would be 1.5 GB of booleans.
    if not all(np.isfinite(block).all() for block in row_blocks(x)):
        raise DataError("'x' contains NaN or infinite values")
    if y.min() < 0:
        raise DataError(f"labels must be >= 0, found {int(y.min())}")
    if is_mapped(x) and not (x.dtype == np.float32 and x.flags.c_contiguous):
        x32 = map_blocks(x, lambda block: block, np.float32)  # converted on disk
    elif is_mapped(x):
        x32 = x
    else:
        x32 = np.ascontiguousarray(x, dtype=np.float32)
    ids, names = validate_groups(group, group_names, x.shape[0])
    return EvalSet(x=x32, y=y.astype(np.int64), sha256=sha256, group=ids, group_names=names,
                   mask=validate_mask(mask, x.shape))


def validate_mask(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """The optional ``mask`` array: bool, the shape of ``x``, True where the evidence for the
    label lies. A sample whose mask is all False (no evidence anywhere) is refused."""
    if mask is None:
        return None
    if mask.dtype != np.bool_:
        raise DataError(f"'mask' must be a boolean array (True where the evidence for the "
                        f"label lies), got dtype {mask.dtype}")
    if tuple(mask.shape) != tuple(shape):
        raise DataError(f"'mask' has shape {list(mask.shape)} but 'x' has {list(shape)} "
                        "(one mask value per input value)")
    start = 0
    for block in row_blocks(mask):
        empty = np.flatnonzero(~block.reshape(len(block), -1).any(axis=1))
        if len(empty):
            raise DataError(f"'mask' of sample {start + int(empty[0])} is all False: it marks "
                            "no evidence")
        start += len(block)
    if is_mapped(mask):
        return mask if mask.flags.c_contiguous else map_blocks(mask, lambda b: b, np.bool_)
    return np.ascontiguousarray(mask)


GROUP_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_GROUPS = 1000


def validate_groups(group: np.ndarray | None, names: np.ndarray | None,
                    n_samples: int) -> tuple[np.ndarray | None, tuple[str, ...] | None]:
    """The optional ``group`` array (one integer id >= 0 per sample) and ``group_names``
    (strings, index = id; they appear in metric keys, so letters, digits, '_' and '-')."""
    if group is None:
        if names is not None:
            raise DataError("evaluation set has 'group_names' but no 'group' array")
        return None, None
    if not np.issubdtype(group.dtype, np.integer):
        raise DataError(f"'group' must be an integer array (one group id per sample), got "
                        f"dtype {group.dtype}")
    if group.ndim != 1:
        raise DataError(f"'group' must be one-dimensional, got shape {group.shape}")
    if group.shape[0] != n_samples:
        raise DataError(f"'group' has {group.shape[0]} entries but the evaluation set has "
                        f"{n_samples} samples (one group id per sample)")
    if group.min() < 0:
        raise DataError(f"group ids must be >= 0, found {int(group.min())}")
    ids = np.unique(group)
    if len(ids) > MAX_GROUPS:
        raise DataError(f"'group' has {len(ids)} distinct ids; at most {MAX_GROUPS}")
    if names is None:
        return group.astype(np.int64), None
    if names.dtype.kind != "U" or names.ndim != 1:
        raise DataError(f"'group_names' must be a one-dimensional string array, got dtype "
                        f"{names.dtype} shape {names.shape}")
    labels = tuple(str(v) for v in names)
    if int(ids.max()) >= len(labels):
        raise DataError(f"group id {int(ids.max())} has no name: 'group_names' lists "
                        f"{len(labels)} (index = group id)")
    bad = [v for v in labels if not GROUP_NAME.fullmatch(v)]
    if bad:
        raise DataError(f"group name {bad[0]!r} is not 1-64 letters, digits, '_' or '-'")
    if len(set(labels)) != len(labels):
        dup = next(v for i, v in enumerate(labels) if v in labels[:i])
        raise DataError(f"group name {dup!r} is listed twice in 'group_names'")
    return group.astype(np.int64), labels


def resolve_domain(eval_set: EvalSet, declared: DomainSpec | None, low: float | None = None,
                   high: float | None = None, *, mapped: bool = False,
                   standard: str = "the standard") -> InputDomain:
    """The box the standard's eps are measured in; every sample must lie in it.

    ``declared`` is the standard's input domain (None for an older document that declares
    none); ``low``/``high`` an input range the submission declares. Nothing is guessed: a
    standard without a domain needs the submission's range, and a submission's range cannot
    contradict the standard's. ``mapped``: the data was mapped by the submission's mean/std.
    """
    if (low is None) != (high is None):
        raise DataError("give both ends of the input range, or neither")
    given = None if low is None or high is None else InputDomain(float(low), float(high))
    x_min, x_max = value_range(eval_set.x)
    if declared is not None and not declared.from_data:
        assert declared.low is not None and declared.high is not None
        domain = InputDomain(declared.low, declared.high)
        if given is not None and given != domain:
            raise DataError(f"input range [{given.low:g}, {given.high:g}] contradicts "
                            f"{standard}, whose eps are measured in {declared.describe()}; "
                            "drop the range, or map the model's units with --mean/--std")
    elif given is not None:
        domain = given
    elif declared is not None:  # declared as the data's own range (tabular inputs)
        if x_min >= x_max:
            raise DataError("the evaluation inputs are all equal; the standard takes its input "
                            "domain from their range, which is empty")
        domain = InputDomain(x_min, x_max)
    else:
        raise DataError(f"{standard} declares no input domain (written before domains were "
                        "declared), so its eps have no units: give the input range the model "
                        "accepts (--input-range LOW HIGH; API input_low, input_high), or use "
                        "a standard that declares its domain")
    if x_min < domain.low or x_max > domain.high:
        after = " after the declared mapping (standard units = x * std + mean)" if mapped \
            else ""
        where = declared.describe() if declared is not None and given is None else \
            f"[{domain.low:g}, {domain.high:g}]"
        raise DataError(f"evaluation inputs span [{x_min:g}, {x_max:g}]{after}, outside the "
                        f"input domain of {standard}: {where}. {_domain_hint(mapped)}")
    return domain


def value_range(x: np.ndarray) -> tuple[float, float]:
    """(min, max) of ``x``, read block by block (exact: the same as ``x.min(), x.max()``)."""
    lows, highs = zip(*((block.min(), block.max()) for block in row_blocks(x)), strict=True)
    return float(min(lows)), float(max(highs))


def _domain_hint(mapped: bool) -> str:
    if mapped:
        return ("Check the declared mean and std: they must take the model's inputs to the "
                "standard's units")
    return "If the model takes normalised inputs, declare how they map to the standard's " \
        "units: --mean M --std S (API input_mean, input_std; standard units = x * std + mean)"


def check_against_model(eval_set: EvalSet, input_shape: list[int | str | None],
                        num_classes: int) -> None:
    """Refuse a set whose sample shape or labels do not fit the model."""
    sample_shape = list(eval_set.x.shape[1:])
    expected = input_shape[1:]
    fits = len(sample_shape) == len(expected) and all(
        not isinstance(e, int) or e <= 0 or e == s
        for e, s in zip(expected, sample_shape, strict=True)
    )
    if not fits:
        raise DataError(
            f"samples have shape {sample_shape} but the model expects {expected} "
            f"(after the batch dimension)"
        )
    top = int(eval_set.y.max())
    if top >= num_classes:
        raise DataError(f"label {top} is out of range: the model has {num_classes} classes")
