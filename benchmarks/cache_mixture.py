"""The arithmetic of continuous-cache variants on one traced document, in numpy (used by
benchmarks.cache_variants).

A document is traced once: ``states`` (T, U), the last LSTM layer's ``h_t`` after each position, and
the model's log-probabilities at each position over the document's own *vocabulary* (the distinct
tokens that follow some position of it, sorted), plus the model's top-``K`` tokens. At position ``t``
the cache holds the pairs ``(h_i, x_{i+1})`` of the positions ``t - window <= i < t`` (as
``nextword.runtime.cache`` keeps them), so every token the cache can name is in that vocabulary.

A variant mixes components one after another, ``q = (1 - m_k) q + m_k p_k`` (``q`` starts as the
model's distribution), with per-position shares ``m_k``; one component with a fixed share is the
runtime's cache. Ranks come out exact below ``K``: a token outside the document's vocabulary and the
model's top ``K`` keeps its model probability times the same factor as every top-``K`` token, so it can
pass the target only when all ``K`` of them do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "CacheView",
    "cache_view",
    "compass_search",
    "gate_share",
    "mixture",
    "ranks_below",
    "similarities",
]


def similarities(states: np.ndarray, cosine: bool = False) -> np.ndarray:
    """(T, T) float64 ``h_t . h_i``, computed in float32 as the runtime does; ``cosine``: of the
    unit-length states instead (a zero state stays zero)."""
    h: np.ndarray = np.asarray(states, dtype=np.float32)
    if cosine:
        norms = np.linalg.norm(h, axis=1, keepdims=True)
        h = h / np.where(norms > 0, norms, 1).astype(np.float32)
    return (h @ h.T).astype(np.float64)


@dataclass(frozen=True)
class CacheView:
    """What one cache (one similarity, one theta, one window) says at each position of a document."""

    probs: np.ndarray  # (T, D) p_cache over the document's vocabulary; a zero row where the cache is empty
    count: np.ndarray  # (T,) positions held, min(t, window)
    log_total: np.ndarray  # (T,) log sum_i exp(theta s_ti) over the held positions (-inf when empty)
    peak: np.ndarray  # (T,) max_i s_ti over the held positions (0 when empty)


def cache_view(sims: np.ndarray, theta: float, window: int, target_index: np.ndarray, size: int) -> CacheView:
    """The cache of ``sims`` (T, T) at ``theta`` keeping ``window`` positions; ``target_index`` (T,)
    places each position's next token in the document's vocabulary of ``size`` tokens."""
    n = len(sims)
    distance = np.arange(n)[:, None] - np.arange(n)[None, :]  # (T, T) t - i
    held = (distance >= 1) & (distance <= window)
    scores = np.where(held, theta * sims, -np.inf)
    peak_score = scores.max(axis=1, initial=-np.inf)
    count = held.sum(axis=1)
    shift = np.where(count > 0, peak_score, 0.0)[:, None]
    weights = np.exp(scores - shift)  # (T, T), 0 where not held
    total = weights.sum(axis=1)
    weights /= np.where(total > 0, total, 1)[:, None]
    onehot = np.zeros((n, size))
    onehot[np.arange(n), target_index] = 1.0
    with np.errstate(divide="ignore"):
        log_total = np.log(total) + shift[:, 0]
    peak = np.where(held, sims, -np.inf).max(axis=1, initial=-np.inf)
    return CacheView(weights @ onehot, count, log_total, np.where(count > 0, peak, 0.0))


def gate_share(
    kind: str, params: Sequence[float] | np.ndarray, count: np.ndarray, feature: np.ndarray | None = None
) -> np.ndarray:
    """Per-position share (T,) of a cache component, 0 where the cache is empty:

    - ``fixed`` (z): sigmoid(z), the runtime's constant mix;
    - ``count`` (z, log k): sigmoid(z) * n / (n + k), growing with the positions held ``n``;
    - ``gate`` (a, b): sigmoid(a + b * feature), from the cache's own confidence;
    - ``count_gate`` (a, b, log k): both, sigmoid(a + b * feature) * n / (n + k).
    """
    count = np.asarray(count, dtype=np.float64)
    if kind == "fixed":
        share = np.full(count.shape, _sigmoid(params[0]))
    elif kind == "count":
        share = _sigmoid(params[0]) * count / (count + np.exp(params[1]))
    elif kind in ("gate", "count_gate"):
        if feature is None:
            raise ValueError("a gate needs its feature")
        share = _sigmoid(params[0] + params[1] * np.where(count > 0, feature, 0.0))
        if kind == "count_gate":
            share = share * count / (count + np.exp(params[2]))
    else:
        raise ValueError(f"unknown share kind {kind!r}: fixed, count, gate or count_gate")
    return np.where(count > 0, share, 0.0)


def _sigmoid(x: np.ndarray | float) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))  # no overflow warnings


def mixture(
    p_model: np.ndarray, parts: Sequence[np.ndarray], shares: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """``q`` mixed one part after another, ``q = (1 - m_k) q + m_k p_k``, and the factor (T,) left on the
    model's own probabilities. ``p_model`` and each part: (T,) or (T, D); each share (T,)."""
    q = np.asarray(p_model, dtype=np.float64)
    keep = np.ones(len(q))
    for part, share in zip(parts, shares, strict=True):
        m = share.reshape(share.shape + (1,) * (q.ndim - 1))
        q = (1 - m) * q + m * part
        keep = keep * (1 - share)
    return q, keep


def ranks_below(
    q: np.ndarray,
    target_index: np.ndarray,
    keep: np.ndarray,
    vocab: np.ndarray,
    top_ids: np.ndarray,
    top_probs: np.ndarray,
) -> np.ndarray:
    """Tokens ranked above each target (T,) by the mixture: exact while below ``K`` (top_ids' width),
    at least ``K`` otherwise. ``q`` (T, D) over the sorted document vocabulary ``vocab`` (D,); ``keep``
    (T,) the factor on the model's probabilities; ``top_ids``/``top_probs`` (T, K) the model's top K."""
    target = q[np.arange(len(q)), target_index]  # (T,)
    inside = (q > target[:, None]).sum(axis=1)
    outside = ~np.isin(top_ids, vocab)  # (T, K) top tokens the caches cannot name
    passing = outside & (keep[:, None] * top_probs > target[:, None])
    return inside + passing.sum(axis=1)


def compass_search(
    loss: Callable[[np.ndarray], float], start: Sequence[float], step: float = 1.0, tol: float = 1e-3
) -> tuple[np.ndarray, float]:
    """Minimize ``loss`` from ``start`` by compass search: try +-step on each coordinate, move on any
    gain, halve the step when none gains, stop below ``tol``. Enough for the 1-3 smooth parameters of
    a variant (no scipy in the environment)."""
    best = np.asarray(start, dtype=np.float64)
    value = loss(best)
    while step >= tol:
        moved = False
        for k in range(len(best)):
            for sign in (1.0, -1.0):
                trial = best.copy()
                trial[k] += sign * step
                trial_value = loss(trial)
                if trial_value < value:
                    best, value, moved = trial, trial_value, True
                    break
        if not moved:
            step /= 2
    return best, value
