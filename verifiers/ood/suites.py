"""OOD suites built from the evaluation set's own shape and input range: no downloads.

Every family draws from its own numpy Generator, seeded from (run seed, family name), so
adding or dropping a family never changes another family's samples.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from verifiers.data import InputDomain
from verifiers.diskarrays import mean_std
from verifiers.errors import DataError
from verifiers.ood.config import OodConfig


@dataclass(frozen=True)
class OodSuite:
    name: str
    x: np.ndarray  # float32, batch first, same sample shape as the evaluation set
    description: str
    in_valid_range: bool


def family_rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def spatial_axes(sample_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Axes (of one sample) that are positions rather than channels: C,H,W / H,W,C / H,W / L."""
    if len(sample_shape) <= 2:
        return tuple(range(len(sample_shape)))
    if len(sample_shape) == 3 and sample_shape[2] <= 4 < sample_shape[0]:
        return (0, 1)  # channels last
    return (len(sample_shape) - 2, len(sample_shape) - 1)


def _canonical(x: np.ndarray) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """x moved to (N, other..., spatial...) and the function that moves it back."""
    axes = [a + 1 for a in spatial_axes(x.shape[1:])]
    moved = np.moveaxis(x, axes, list(range(x.ndim - len(axes), x.ndim)))
    return moved, lambda y: np.moveaxis(y, list(range(x.ndim - len(axes), x.ndim)), axes)


def _smooth(x: np.ndarray, sigma: float, n_axes: int) -> np.ndarray:
    """Separable Gaussian blur over the last ``n_axes`` axes (symmetric padding)."""
    for axis in range(x.ndim - n_axes, x.ndim):
        size = x.shape[axis]
        radius = max(1, min(int(np.ceil(3 * sigma)), size - 1))
        taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
        taps /= taps.sum()
        pad = [(0, 0)] * x.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(x, pad, mode="symmetric")
        x = sum(w * np.take(padded, np.arange(k, k + size), axis=axis)
                for k, w in enumerate(taps))
    return x


def _stretch(x: np.ndarray, domain: InputDomain) -> np.ndarray:
    """Per sample, map [min, max] onto the full input range."""
    flat = x.reshape(len(x), -1)
    lo, hi = flat.min(axis=1, keepdims=True), flat.max(axis=1, keepdims=True)
    unit = (flat - lo) / np.maximum(hi - lo, 1e-12)
    return (domain.low + unit * (domain.high - domain.low)).reshape(x.shape)


def _permute_positions(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    moved, back = _canonical(x)
    n_sp = len(spatial_axes(x.shape[1:]))
    lead, positions = moved.shape[:-n_sp], int(np.prod(moved.shape[-n_sp:]))
    flat = moved.reshape(*lead, positions)
    perms = rng.permuted(np.tile(np.arange(positions), (len(x), 1)), axis=1)
    index = perms.reshape(len(x), *([1] * (flat.ndim - 2)), positions)
    return back(np.take_along_axis(flat, index, axis=-1).reshape(moved.shape))


def _shuffle_patches(x: np.ndarray, grid: int, rng: np.random.Generator) -> np.ndarray:
    """Cut the spatial area into grid x grid patches and shuffle them per sample.

    Rows/columns left over when a side is not a multiple of the patch size stay in place.
    """
    moved, back = _canonical(x.copy())
    sides = moved.shape[-len(spatial_axes(x.shape[1:])):]
    if len(sides) == 1:
        sides = (1, *sides)
    pieces = [min(grid, s) for s in sides]
    patch = [s // g for s, g in zip(sides, pieces, strict=True)]
    view = moved.reshape(len(x), -1, *sides)
    region = view[:, :, :pieces[0] * patch[0], :pieces[1] * patch[1]]
    tiles = region.reshape(len(x), view.shape[1], pieces[0], patch[0], pieces[1], patch[1])
    tiles = tiles.transpose(0, 1, 2, 4, 3, 5).reshape(len(x), view.shape[1], -1, *patch)
    perms = rng.permuted(np.tile(np.arange(tiles.shape[2]), (len(x), 1)), axis=1)
    tiles = np.take_along_axis(tiles, perms[:, None, :, None, None], axis=2)
    tiles = tiles.reshape(len(x), view.shape[1], pieces[0], pieces[1], *patch)
    view[:, :, :pieces[0] * patch[0], :pieces[1] * patch[1]] = (
        tiles.transpose(0, 1, 2, 4, 3, 5).reshape(region.shape))
    return back(view.reshape(moved.shape))


def _pick(x_id: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Evaluation samples for the derived families, each used at most once."""
    return x_id[rng.choice(len(x_id), size=min(n, len(x_id)), replace=False)]


Built = tuple[np.ndarray, str]
Family = Callable[[np.ndarray, InputDomain, OodConfig, np.random.Generator], Built]


def _uniform_noise(x_id: np.ndarray, d: InputDomain, cfg: OodConfig,
                   rng: np.random.Generator) -> Built:
    x = rng.uniform(d.low, d.high, size=(cfg.samples_per_suite, *x_id.shape[1:]))
    return x, f"i.i.d. uniform on the input range [{d.low:g}, {d.high:g}]"


def _gaussian_noise(x_id: np.ndarray, d: InputDomain, cfg: OodConfig,
                    rng: np.random.Generator) -> Built:
    mean, std = mean_std(x_id)
    std = std or (d.high - d.low) / 4
    x = rng.normal(mean, std, size=(cfg.samples_per_suite, *x_id.shape[1:]))
    return np.clip(x, d.low, d.high), (
        f"i.i.d. normal with the evaluation set's mean {mean:.4g} and std {std:.4g}, "
        "clipped to the input range")


def _constant(x_id: np.ndarray, d: InputDomain, cfg: OodConfig,
              rng: np.random.Generator) -> Built:
    shape = x_id.shape[1:]
    values = rng.uniform(d.low, d.high, size=(cfg.samples_per_suite,) + (1,) * len(shape))
    return (np.broadcast_to(values, (len(values), *shape)),
            "one uniform value per image, repeated over every pixel and channel")


def _blobs(x_id: np.ndarray, d: InputDomain, cfg: OodConfig, rng: np.random.Generator) -> Built:
    shape = x_id.shape[1:]
    sides = [shape[a] for a in spatial_axes(shape)]
    sigma = max(cfg.blob_sigma_fraction * min(sides), 0.5)
    moved, back = _canonical(rng.uniform(size=(cfg.samples_per_suite, *shape)))
    x = _stretch(back(_smooth(moved, sigma, len(sides))), d)
    return x, (f"uniform noise blurred (Gaussian, sigma {sigma:.3g} pixels) and stretched to "
               "the full input range")


def _permuted_pixels(x_id: np.ndarray, d: InputDomain, cfg: OodConfig,
                     rng: np.random.Generator) -> Built:
    x = _permute_positions(_pick(x_id, cfg.samples_per_suite, rng), rng)
    return x, "evaluation samples with their pixel positions randomly permuted"


def _patch_shuffled(x_id: np.ndarray, d: InputDomain, cfg: OodConfig,
                    rng: np.random.Generator) -> Built:
    x = _shuffle_patches(_pick(x_id, cfg.samples_per_suite, rng), cfg.patch_grid, rng)
    return x, (f"evaluation samples cut into a {cfg.patch_grid}x{cfg.patch_grid} grid of "
               "patches, shuffled")


def _inverted(x_id: np.ndarray, d: InputDomain, cfg: OodConfig,
              rng: np.random.Generator) -> Built:
    x = d.low + d.high - _pick(x_id, cfg.samples_per_suite, rng)
    return x, "evaluation samples inverted: low + high - x"


def _far_away(x_id: np.ndarray, d: InputDomain, cfg: OodConfig,
              rng: np.random.Generator) -> Built:
    x = cfg.far_alpha * _pick(x_id, cfg.samples_per_suite, rng)
    return x, (f"evaluation samples scaled by alpha={cfg.far_alpha:g} (Hein et al. 2019: ReLU "
               "nets grow arbitrarily confident); deliberately OUTSIDE the valid input range")


_FAMILIES: dict[str, Family] = {
    "uniform_noise": _uniform_noise, "gaussian_noise": _gaussian_noise,
    "constant": _constant, "blobs": _blobs, "permuted_pixels": _permuted_pixels,
    "patch_shuffled": _patch_shuffled, "inverted": _inverted, "far_away": _far_away,
}
_OUTSIDE_RANGE = {"far_away"}


def build_suites(x_id: np.ndarray, domain: InputDomain, cfg: OodConfig,
                 seed: int) -> list[OodSuite]:
    """The built-in families named in ``cfg.families``, in that order."""
    suites = []
    for name in cfg.families:
        if name not in _FAMILIES:
            raise DataError(f"unknown OOD family {name!r}")
        x, text = _FAMILIES[name](x_id, domain, cfg, family_rng(seed, name))
        suites.append(OodSuite(name, np.ascontiguousarray(x, dtype=np.float32), text,
                               in_valid_range=name not in _OUTSIDE_RANGE))
    return suites


def user_suite(x_user: np.ndarray, sample_shape: tuple[int, ...],
               domain: InputDomain | None) -> OodSuite:
    """The uploaded OOD set, validated against the evaluation set's sample shape (``domain``
    None: validate only, before the domain is known)."""
    if not np.issubdtype(x_user.dtype, np.floating):
        raise DataError(f"OOD set 'x' must be a float array, got dtype {x_user.dtype}")
    if tuple(x_user.shape[1:]) != tuple(sample_shape) or len(x_user) == 0:
        raise DataError(f"OOD set has shape {list(x_user.shape)}; expected N x "
                        f"{list(sample_shape)} (the evaluation set's sample shape), N >= 1")
    if not np.all(np.isfinite(x_user)):
        raise DataError("OOD set 'x' contains NaN or infinite values")
    inside = domain is not None and bool(x_user.min() >= domain.low
                                         and x_user.max() <= domain.high)
    return OodSuite("user", np.ascontiguousarray(x_user, dtype=np.float32),
                    "the OOD set uploaded with the job", inside)
