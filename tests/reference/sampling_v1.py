"""Frozen copy of the runtime's sampler before the step-level Generator: the reference for exactness
tests. Do not change.

Choosing the next token from logits: greedy, temperature, top-k and nucleus (top-p) sampling."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

__all__ = ["sample_next"]

BLOCK = 128  # tokens per block of the two-level inverse-CDF draw


def sample_next(
    logits: np.ndarray,
    *,
    temperature: float,
    top_k: int | None = None,
    top_p: float | None = None,
    rngs: np.random.Generator | Sequence[np.random.Generator],
    banned: Sequence[int] | np.ndarray = (),
    copy: bool = True,
) -> np.ndarray:
    """Pick one token id per row of ``logits`` (shape ``(batch, vocab)``); returns int64 ``(batch,)``.

    ``temperature == 0`` takes the most likely token (ties go to the lowest id). Otherwise the logits
    are divided by ``temperature``, cut to the ``top_k`` largest, then to the smallest set of most
    likely tokens holding ``top_p`` of the probability, and one token is drawn from what is left. Row
    ``i`` draws from ``rngs[i]`` (or from the single generator given), so rows do not influence each
    other. ``banned`` ids are never chosen; entries already ``-inf`` are never chosen either. With
    ``copy=False`` a float32 ``logits`` array is used as scratch space and overwritten.
    """
    if copy or logits.dtype != np.float32:
        logits = np.array(logits, dtype=np.float32)
    scores = logits  # (B, V), ours to modify from here on
    if len(banned):
        scores[:, banned] = -np.inf
    if temperature == 0:
        return np.argmax(scores, axis=-1).astype(np.int64)
    if temperature != 1:
        scores *= np.float32(1.0 / temperature)
    batch, vocab = scores.shape
    if top_k is not None and top_k < vocab:
        cut = np.argpartition(scores, vocab - top_k, axis=-1)[:, : vocab - top_k]  # (B, V-k) smallest
        np.put_along_axis(scores, cut, -np.inf, axis=-1)
    scores -= scores.max(axis=-1, keepdims=True)
    probs = np.exp(scores, out=scores)  # (B, V), unnormalized; banned and cut entries are exactly 0
    if top_p is not None and top_p < 1:
        order = np.argsort(-probs, axis=-1, kind="stable")  # (B, V) most likely first
        sorted_probs = np.take_along_axis(probs, order, axis=-1)
        before = np.cumsum(sorted_probs, axis=-1, dtype=np.float64) - sorted_probs  # mass ahead of each
        drop_sorted = before >= top_p * sorted_probs.sum(axis=-1, keepdims=True, dtype=np.float64)
        drop = np.empty_like(drop_sorted)
        np.put_along_axis(drop, order, drop_sorted, axis=-1)
        probs[drop] = 0.0  # the most likely token always stays: nothing is ahead of it
    generators = [rngs] * batch if isinstance(rngs, np.random.Generator) else rngs
    return np.array([_draw(probs[row], generators[row]) for row in range(batch)], dtype=np.int64)


def _draw(probs: np.ndarray, rng: np.random.Generator) -> int:
    """Inverse-CDF draw from unnormalized ``probs`` (V,) in two levels: a block of ``BLOCK`` tokens by
    the blocks' masses, then a token inside it. Equal to one cumulative sum over the whole vocabulary
    (which cannot be vectorized and costs ~30 us for 10k words) at a fraction of its cost; a token of
    probability 0 is never returned."""
    starts = _block_starts(len(probs))
    masses = np.cumsum(np.add.reduceat(probs, starts), dtype=np.float64)  # (V / BLOCK,)
    u = (1.0 - rng.random()) * masses[-1]  # in (0, total]
    block = min(int(masses.searchsorted(u)), len(masses) - 1)
    start = int(starts[block])
    inside = probs[start : start + BLOCK]
    if block:
        u -= masses[block - 1]  # now in (0, mass of the block]
    index = int(np.cumsum(inside, dtype=np.float64).searchsorted(u))
    if index >= len(inside) or inside[index] == 0:  # rounding between the two levels: take the block's
        index = int(np.flatnonzero(inside)[-1])  # last possible token
    return start + index


@functools.lru_cache(maxsize=8)
def _block_starts(vocab: int) -> np.ndarray:
    return np.arange(0, vocab, BLOCK)
