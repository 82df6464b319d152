"""Choosing the next token from logits: greedy, temperature, top-k and nucleus (top-p) sampling.

Every function here works on a batch of rows that share their sampling options, with one random
generator per row, and touches the whole vocabulary as few times as it can: the generation loop calls
it once per word, and for a small model the loop's own work is a large share of each word's time.

Arithmetic (what makes a seed reproducible; the JavaScript runtime mirrors it):

- Scores are float32. A temperature other than 1 multiplies them by ``float32(1 / temperature)``.
- Full-vocabulary sampling (no top-k, no top-p) subtracts each row's maximum, exponentiates in float32
  and draws one token by inverse CDF in two levels (:func:`_draw_blocks`): a block of :data:`BLOCK`
  token ids by the blocks' float32 masses accumulated in float64, then a token inside the block by a
  float64 cumulative sum. ``u = (1 - rng.random()) * total`` lies in (0, total], so a token of
  probability 0 is never drawn.
- Top-k and top-p first find their candidates (the ``top_k`` largest scores; the smallest set of most
  likely tokens holding ``top_p`` of the probability, ties taken in id order), then draw among the
  candidates alone with one float64 cumulative sum in id order (:func:`_draw_among`). Up to rounding in
  the last bits of those sums this is the same distribution and the same token for the same draw as
  drawing over the whole vocabulary; see docs/model-format.md for what that means for seeds.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

__all__ = ["BLOCK", "sample", "sample_next"]

BLOCK = 128  # tokens per block of the two-level inverse-CDF draw
NUCLEUS_SPAN = np.float32(2.0**-6)  # first nucleus candidates: probability within 1/64 of the top one


def sample(
    scores: np.ndarray,
    rngs: Sequence[np.random.Generator],
    temperature: float,
    top_k: int | None = None,
    top_p: float | None = None,
) -> np.ndarray:
    """Pick one token id per row of ``scores`` (float32, (rows, vocab), overwritten); returns int64 (rows,).

    ``temperature == 0`` takes the most likely token (ties go to the lowest id) and draws nothing.
    Otherwise scores are divided by ``temperature``, cut to the ``top_k`` largest, then to the smallest
    set of most likely tokens holding ``top_p`` of the probability, and one token is drawn from the
    rest with ``rngs[i].random()`` for row ``i`` (exactly one draw per row). Entries at ``-inf`` are
    never chosen; a row whose every entry is ``-inf`` gets ``-1``.
    """
    rows = len(scores)
    peak = scores.max(axis=1)  # (R,)
    dead = np.isneginf(peak)
    if temperature == 0:
        chosen = scores.argmax(axis=1).astype(np.int64)
        chosen[dead] = -1
        return chosen
    uniforms = np.array([1.0 - rng.random() for rng in rngs])  # (R,) in (0, 1]
    if dead.any():
        live = np.flatnonzero(~dead)
        chosen = np.full(rows, -1, dtype=np.int64)
        if live.size:
            chosen[live] = _sample_live(scores[live], uniforms[live], temperature, top_k, top_p)
        return chosen
    return _sample_live(scores, uniforms, temperature, top_k, top_p)


def _sample_live(
    scores: np.ndarray, uniforms: np.ndarray, temperature: float, top_k: int | None, top_p: float | None
) -> np.ndarray:
    """:func:`sample` for rows that each have at least one finite score."""
    vocab = scores.shape[1]
    scale = np.float32(1.0 / temperature)
    if top_k is not None and top_k < vocab:
        kth = _kth_largest(scores, top_k)  # (R,)
        if top_p is None or top_p >= 1:
            return np.array(
                [
                    _draw_among(*_candidates(row, threshold, scale), u)
                    for row, threshold, u in zip(scores, kth, uniforms, strict=True)
                ],
                dtype=np.int64,
            )
        scores[scores < kth[:, None]] = -np.inf
    if temperature != 1:
        scores *= scale  # (R, V)
    scores -= scores.max(axis=1, keepdims=True)
    probs = np.exp(scores, out=scores)  # (R, V), unnormalized; -inf entries are exactly 0
    if top_p is not None and top_p < 1:
        return np.array(
            [_draw_among(*_nucleus(row, top_p), u) for row, u in zip(probs, uniforms, strict=True)],
            dtype=np.int64,
        )
    return _draw_blocks(probs, uniforms)


def _draw_blocks(probs: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw from unnormalized ``probs`` (R, V) in two levels: a block of ``BLOCK`` tokens by
    the blocks' masses, then a token inside it. Equal to one cumulative sum over the whole vocabulary
    (which cannot be vectorized well and costs ~30 us for 10k words) at a fraction of its cost."""
    rows, vocab = probs.shape
    starts = _block_starts(vocab)
    masses = np.cumsum(np.add.reduceat(probs, starts, axis=1), axis=1, dtype=np.float64)  # (R, blocks)
    u = uniforms * masses[:, -1]  # (R,) in (0, total]
    block = np.minimum((masses < u[:, None]).sum(axis=1), len(starts) - 1)  # (R,) searchsorted, left
    before = np.where(block > 0, masses[np.arange(rows), block - 1], 0.0)
    u = np.where(block > 0, u - before, u)  # now in (0, mass of the block]
    first = starts[block]  # (R,)
    columns = first[:, None] + np.arange(BLOCK)  # (R, BLOCK)
    inside = np.take_along_axis(probs, np.minimum(columns, vocab - 1), axis=1)
    inside[columns >= vocab] = 0.0  # the last block may be short
    cumulative = np.cumsum(inside, axis=1, dtype=np.float64)  # (R, BLOCK)
    index = (cumulative < u[:, None]).sum(axis=1)  # (R,)
    chosen = first + index
    # Rounding between the two levels can point past the block's last possible token: take that one.
    off = (index >= BLOCK) | (chosen >= vocab)
    off[~off] = inside[np.flatnonzero(~off), index[~off]] == 0
    for row in np.flatnonzero(off):
        chosen[row] = first[row] + np.flatnonzero(inside[row])[-1]
    return chosen.astype(np.int64)


def _draw_among(ids: np.ndarray, probs: np.ndarray, u: float) -> int:
    """Inverse-CDF draw among candidate ``ids`` (increasing) with unnormalized ``probs``; ``u`` in (0, 1]."""
    cumulative = np.cumsum(probs, dtype=np.float64)
    index = int(cumulative.searchsorted(u * cumulative[-1]))
    if index >= len(ids) or probs[index] == 0:  # rounding at the very end: the last possible candidate
        index = int(np.flatnonzero(probs)[-1])
    return int(ids[index])


def _candidates(row: np.ndarray, threshold: float, scale: np.float32) -> tuple[np.ndarray, np.ndarray]:
    """The ids of ``row`` (V,) scoring at least ``threshold``, and their probabilities after the
    temperature ``scale``, unnormalized (float32, the largest exactly 1)."""
    ids = np.flatnonzero(row >= threshold)
    kept = row[ids]
    if scale != 1:
        kept *= scale
    kept -= kept.max()
    return ids, np.exp(kept, out=kept)


def _nucleus(probs: np.ndarray, top_p: float) -> tuple[np.ndarray, np.ndarray]:
    """The smallest set of most likely tokens of ``probs`` (V,) whose mass reaches ``top_p`` of the
    total (ties in id order), as (ids in increasing order, their probabilities).

    Only tokens at or above a probability threshold are sorted: every token below ``t`` comes after all
    of those in the sorted order, so once their mass reaches ``top_p`` the set lies among them. The
    threshold starts at 1/64 of the largest probability and drops 64-fold until that holds.
    """
    goal = top_p * float(probs.sum(dtype=np.float64))
    threshold = NUCLEUS_SPAN * probs.max()
    while True:
        ids = np.flatnonzero(probs >= threshold)
        kept = probs[ids]
        if threshold == 0 or float(kept.sum(dtype=np.float64)) >= goal:
            break
        threshold *= NUCLEUS_SPAN
    order = np.argsort(-kept, kind="stable")  # most likely first, ties by id
    ranked = kept[order]
    before = np.cumsum(ranked, dtype=np.float64) - ranked  # mass ahead of each
    size = max(1, int((before < goal).sum()))  # the most likely token always stays
    chosen = np.sort(ids[order[:size]])
    return chosen, probs[chosen]


def _kth_largest(scores: np.ndarray, k: int) -> np.ndarray:
    """The ``k``-th largest value of each row of ``scores`` (R, V), without partitioning whole rows.

    The ``k``-th largest of a strided subsample is a lower bound of the row's (the subsample's top k are
    ``k`` entries of the row), so the row's top ``k`` all lie among the entries at or above it; only
    those few are partitioned.
    """
    rows, vocab = scores.shape
    stride = int(np.sqrt(vocab / k))
    if stride < 4:
        return np.partition(scores, vocab - k, axis=1)[:, vocab - k]
    sample = scores[:, ::stride]
    bound = np.partition(sample, sample.shape[1] - k, axis=1)[:, sample.shape[1] - k]  # (R,)
    kth = np.empty(rows, dtype=scores.dtype)
    for row in range(rows):
        above = scores[row][scores[row] >= bound[row]]
        kth[row] = np.partition(above, len(above) - k)[len(above) - k]
    return kth


@functools.lru_cache(maxsize=8)
def _block_starts(vocab: int) -> np.ndarray:
    return np.arange(0, vocab, BLOCK)


def sample_next(
    logits: np.ndarray,
    *,
    temperature: float,
    top_k: int | None = None,
    top_p: float | None = None,
    rngs: np.random.Generator | Sequence[np.random.Generator],
    banned: Sequence[int] | np.ndarray = (),
) -> np.ndarray:
    """:func:`sample` on a copy of ``logits`` (batch, vocab), with ``banned`` ids forbidden; ``rngs`` may
    be one generator shared by every row (drawn in row order) or one per row."""
    scores = np.array(logits, dtype=np.float32)  # (B, V), ours to modify
    if len(banned):
        scores[:, banned] = -np.inf
    generators = [rngs] * len(scores) if isinstance(rngs, np.random.Generator) else list(rngs)
    return sample(scores, generators, temperature, top_k, top_p)
