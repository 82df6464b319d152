"""The cache's share fitted on development positions: a constant mix, or a gate ``sigmoid(a + b L)``.

Both minimise the mean negative log-likelihood of ``(1 - share) p_model + share p_cache`` over the
positions whose cache holds something, for many candidate caches (columns) at once:

- :func:`best_mix`: the NLL is convex in a constant mix, so a bisection on its derivative finds it;
- :func:`best_gate`: a damped Newton method on ``(a, b)``, started from the best mix's log-odds and
  ``b = 0`` (so it can only improve on the mix), with ``L`` standardised per column so that one step
  size suits every theta. Deterministic, and about ten passes over the arrays.
"""

from __future__ import annotations

import numpy as np

__all__ = ["best_gate", "best_mix"]

GATE_ITERATIONS = 30  # Newton steps at most
GATE_HALVINGS = 12  # step halvings tried per Newton step before a column stops moving
GATE_TOLERANCE = 1e-8  # stop when no column's mean NLL (per position) improves by more than this
COLUMN_CHUNK = 32  # columns fitted together (bounds the memory: positions x chunk floats per array)


def best_mix(
    p_model: np.ndarray, p_cache: np.ndarray, has_cache: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each column of ``p_cache`` (positions, C): the mix minimizing the mean negative
    log-likelihood, and that NLL (positions with an empty cache keep the model's probability)."""
    pm, pc = p_model[has_cache, None], p_cache[has_cache]  # (N', 1), (N', C)
    fixed = -np.log(p_model[~has_cache]).sum()

    def derivative(mix: np.ndarray) -> np.ndarray:
        return -((pc - pm) / ((1 - mix) * pm + mix * pc)).sum(axis=0)

    low, high = np.full(pc.shape[1], 1e-4), np.full(pc.shape[1], 0.95)
    for _ in range(30):
        middle = (low + high) / 2
        rising = derivative(middle) >= 0
        high, low = np.where(rising, middle, high), np.where(rising, low, middle)
    mix = (low + high) / 2
    nll = (fixed - np.log((1 - mix) * pm + mix * pc).sum(axis=0)) / len(p_model)
    return mix, nll


def best_gate(
    p_model: np.ndarray, p_cache: np.ndarray, log_total: np.ndarray, has_cache: np.ndarray, mix: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each column of ``p_cache`` and ``log_total`` (positions, C; L, the cache's log-sum-exp):
    the gate ``(a, b)`` (C, 2) minimizing the mean NLL with share ``sigmoid(a + b L)``, and that NLL
    (C,). ``mix`` (C,) is each column's best constant mix, the starting point."""
    columns = p_cache.shape[1]
    gates, nlls = np.empty((columns, 2)), np.empty(columns)
    fixed = -np.log(p_model[~has_cache]).sum()
    pm = p_model[has_cache, None]  # (N', 1)
    for start in range(0, columns, COLUMN_CHUNK):
        part = slice(start, min(start + COLUMN_CHUNK, columns))
        gates[part], total = _newton(pm, p_cache[has_cache, part], log_total[has_cache, part], mix[part])
        nlls[part] = (fixed + total) / len(p_model)
    return gates, nlls


def _newton(
    pm: np.ndarray, pc: np.ndarray, feature: np.ndarray, mix: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Damped Newton on the summed NLL of a chunk of columns: (C, 2) gates in terms of the raw
    feature, and the summed NLL (C,)."""
    centre = feature.mean(axis=0)
    scale = feature.std(axis=0)
    scale[~(scale > 0)] = 1.0
    x = (feature - centre) / scale  # (N, C) standardised L
    gap = pc - pm  # (N, C): q = pm + s * gap
    params = np.stack([np.log(mix / (1 - mix)), np.zeros_like(mix)], axis=1)  # (C, 2) on x

    def loss(p: np.ndarray) -> np.ndarray:
        s = _sigmoid(p[:, 0] + p[:, 1] * x)
        with np.errstate(divide="ignore"):  # a share of exactly 1 on a missed token: inf, never kept
            return -np.log(pm + s * gap).sum(axis=0)

    value = loss(params)
    for _ in range(GATE_ITERATIONS):
        s = _sigmoid(params[:, 0] + params[:, 1] * x)
        q = pm + s * gap
        slope = s * (1 - s) * gap / q  # d log q / dz
        curve = slope * slope - slope * (1 - 2 * s)  # d2 (-log q) / dz2
        grad = -np.stack([slope.sum(axis=0), (slope * x).sum(axis=0)], axis=1)  # (C, 2)
        haa, hab, hbb = curve.sum(axis=0), (curve * x).sum(axis=0), (curve * x * x).sum(axis=0)
        step = _newton_step(grad, haa, hab, hbb)
        before = value.copy()
        moved = np.zeros(len(value), dtype=bool)
        for _ in range(GATE_HALVINGS):  # backtrack per column until its NLL falls
            trial = params + step
            trial_value = loss(trial)
            better = ~moved & (trial_value < value)
            params[better], value[better] = trial[better], trial_value[better]
            moved |= better
            if moved.all():
                break
            step /= 2
        if ((before - value) <= GATE_TOLERANCE * len(x)).all():
            break
    a = params[:, 0] - params[:, 1] * centre / scale
    return np.stack([a, params[:, 1] / scale], axis=1), value


def _newton_step(grad: np.ndarray, haa: np.ndarray, hab: np.ndarray, hbb: np.ndarray) -> np.ndarray:
    """-H^-1 g per column, with H made positive definite (its diagonal raised) where it is not."""
    det = haa * hbb - hab * hab
    ridge = np.where((haa > 0) & (det > 1e-12 * np.maximum(haa * hbb, 1e-300)), 0.0, 1.0)
    ridge *= np.abs(haa) + np.abs(hbb) + 1e-9
    haa, hbb = haa + ridge, hbb + ridge
    det = haa * hbb - hab * hab
    return (
        -np.stack([hbb * grad[:, 0] - hab * grad[:, 1], haa * grad[:, 1] - hab * grad[:, 0]], axis=1)
        / det[:, None]
    )


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * z))  # no overflow warnings
