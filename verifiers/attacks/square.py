"""Square attack (Andriushchenko et al. 2020): score-based random search, no gradients.

It queries the model through onnxruntime, so it needs no torch conversion: it is the
black-box fallback when the conversion is untrusted, and the witness against gradient
masking when it is not (a black-box attack that beats the white-box ones means the
gradients lie). On a CUDA worker with a verified, deterministic module the same scores come
from the module on the device (verifiers.attacks.queries); claims are re-checked on
onnxruntime either way. The algorithm is numpy whichever answers the queries.

Each step proposes a change of one random square window of the current perturbation and
keeps it if the margin loss falls; the window shrinks on a fixed schedule.

Linf follows the paper (windows set to +-eps per channel, vertical-stripe start). L2 is a
simplified variant of the paper's: a signed centred bump added in the window, then the whole
perturbation rescaled onto the eps sphere. Inputs of any shape are viewed as (N, C, H, W):
a flat vector is one row of pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from verifiers.attacks.ball import Ball
from verifiers.data import InputDomain
from verifiers.interrupt import checkpoint

SQUARE_NORMS = ("linf", "l2")
# (iteration on a 10,000-query scale, divisor of p): the paper's piecewise-constant schedule.
_SCHEDULE = ((10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32), (4000, 64),
             (6000, 128), (8000, 256))

Scores = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class SquareConfig:
    queries: int = 1000
    p_init: float = 0.8


@dataclass
class SquareOutcome:
    x_adv: np.ndarray
    fooled: np.ndarray
    queries: int


def as_image(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) view of a batch of any sample shape."""
    if x.ndim == 4:
        return x
    if x.ndim == 3:
        return x[:, :, None, :]
    return x.reshape(len(x), 1, 1, -1)


def fraction(iteration: int, queries: int, p_init: float) -> float:
    it = int(iteration / max(queries, 1) * 10_000)
    for bound, div in _SCHEDULE:
        if it <= bound:
            return p_init / div
    return p_init / 512


def margin_np(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """z_y - max_{j != y} z_j: negative exactly when misclassified."""
    own = logits[np.arange(len(y)), y]
    other = logits.copy()
    other[np.arange(len(y)), y] = -np.inf
    return own - other.max(axis=1)


def square(scores: Scores, x: np.ndarray, y: np.ndarray, ball: Ball, domain: InputDomain,
           cfg: SquareConfig, rng: np.random.Generator) -> SquareOutcome:
    if ball.norm not in SQUARE_NORMS:
        raise ValueError(f"Square supports {SQUARE_NORMS}, not {ball.norm!r}")
    img = as_image(x).astype(np.float32)
    n, c, h, w = img.shape
    delta = _initial(img.shape, ball, rng)
    x_adv = np.clip(img + delta, domain.low, domain.high)
    loss = margin_np(scores(x_adv.reshape(x.shape)), y)
    queries = n
    hh, ww = np.arange(h)[None, :, None], np.arange(w)[None, None, :]
    for i in range(cfg.queries - 1):
        checkpoint()
        active = np.flatnonzero(loss >= 0)
        if len(active) == 0:
            break
        p = fraction(i, cfg.queries, cfg.p_init)
        side = _side(p, h, w)
        r = rng.integers(0, h - side[0] + 1, size=len(active))[:, None, None]
        q = rng.integers(0, w - side[1] + 1, size=len(active))[:, None, None]
        window = ((hh >= r) & (hh < r + side[0]) & (ww >= q) & (ww < q + side[1]))[:, None]
        proposal = _propose(delta[active], window, (r, q), side, ball, rng)
        cand = np.clip(img[active] + proposal, domain.low, domain.high)
        new_loss = margin_np(scores(cand.reshape(len(active), *x.shape[1:])), y[active])
        queries += len(active)
        better = new_loss < loss[active]
        idx = active[better]
        delta[idx], x_adv[idx], loss[idx] = proposal[better], cand[better], new_loss[better]
    fooled = loss < 0
    return SquareOutcome(x_adv.reshape(x.shape), fooled, queries)


def _side(p: float, h: int, w: int) -> tuple[int, int]:
    if h == 1:  # a row of features: windows are segments
        return 1, int(min(max(round(p * w), 1), max(w - 1, 1)))
    s = int(min(max(round(np.sqrt(p * h * w)), 1), max(min(h, w) - 1, 1)))
    return s, s


def _initial(shape: tuple[int, ...], ball: Ball, rng: np.random.Generator) -> np.ndarray:
    n, c, h, w = shape
    if ball.norm == "linf":
        stripes = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=(n, c, 1, w))
        return (ball.eps * np.broadcast_to(stripes, shape)).astype(np.float32)
    noise = rng.standard_normal(shape).astype(np.float32)
    return _to_sphere(noise, ball.eps)


def _to_sphere(delta: np.ndarray, eps: float) -> np.ndarray:
    norms = np.sqrt((delta.reshape(len(delta), -1).astype(np.float64) ** 2).sum(axis=1))
    scale = (eps * (1 - 2e-6) / np.maximum(norms, 1e-12)).astype(np.float32)
    return delta * scale[:, None, None, None]


def _propose(delta: np.ndarray, window: np.ndarray, corner: tuple[np.ndarray, np.ndarray],
             side: tuple[int, int], ball: Ball, rng: np.random.Generator) -> np.ndarray:
    m, c, h, w = delta.shape
    signs = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=(m, c, 1, 1))
    if ball.norm == "linf":
        return np.where(window, ball.eps * signs, delta).astype(np.float32)
    r, q = corner
    ii = np.clip(np.arange(h)[None, :, None] - r, 0, side[0] - 1)
    jj = np.clip(np.arange(w)[None, None, :] - q, 0, side[1] - 1)
    placed = np.where(window, _bump(side)[ii, jj][:, None], 0.0).astype(np.float32)
    size = ball.eps * np.sqrt(side[0] * side[1] / (h * w)) * 2.0
    return _to_sphere(delta + size * signs * placed, ball.eps)


def _bump(side: tuple[int, int]) -> np.ndarray:
    a = np.minimum(np.arange(side[0]) + 1, side[0] - np.arange(side[0]))
    b = np.minimum(np.arange(side[1]) + 1, side[1] - np.arange(side[1]))
    pattern = np.outer(a, b).astype(np.float32)
    return pattern / np.sqrt((pattern ** 2).sum())
