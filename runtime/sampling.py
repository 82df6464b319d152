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

__all__ = ["BLOCK", "largest", "sample", "sample_next", "sample_one"]

BLOCK = 128  # tokens per block of the two-level inverse-CDF draw


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
    never chosen; a row whose every entry is ``-inf`` gets ``-1``. NaN scores (no model or rule makes
    them) are outside this contract: which id such a row gets with ``top_k`` is unspecified.
    """
    if len(scores) == 1 and len(rngs) == 1:  # the generation loop's usual case
        return np.array([sample_one(scores[0], rngs[0], temperature, top_k, top_p)], dtype=np.int64)
    if temperature == 0:
        chosen = scores.argmax(axis=1)
        chosen[scores[np.arange(len(scores)), chosen] == -np.inf] = -1
        return chosen
    top_k = None if top_k is not None and top_k >= scores.shape[1] else top_k
    top_p = None if top_p is not None and top_p >= 1 else top_p
    uniforms = [1.0 - rng.random() for rng in rngs]  # (R,) in (0, 1]
    if len(scores) == 1 or top_k is not None or top_p is not None:
        return np.array(
            [_sample_row(row, u, temperature, top_k, top_p) for row, u in zip(scores, uniforms, strict=True)],
            dtype=np.int64,
        )
    # Many rows, whole vocabulary: every step vectorized over the rows.
    peak = scores.max(axis=1, keepdims=True)  # (R, 1)
    dead = np.isneginf(peak[:, 0])
    if dead.any():
        scores[dead] = 0.0  # any finite row will do; its draw is discarded
    if temperature != 1:
        scores *= np.float32(1.0 / temperature)
        peak *= np.float32(1.0 / temperature)  # the maximum of the scaled row, bit for bit
    scores -= peak
    chosen = _draw_blocks(np.exp(scores, out=scores), np.asarray(uniforms))
    chosen[dead] = -1
    return chosen


def sample_one(
    row: np.ndarray,
    rng: np.random.Generator,
    temperature: float,
    top_k: int | None = None,
    top_p: float | None = None,
) -> int:
    """:func:`sample` for one row ``row`` (float32, (vocab,), overwritten) and its random stream: the
    same token for the same draw, returned as a Python int (-1 when every entry is ``-inf``), without
    building arrays around a single row (the generation loop's usual call)."""
    if temperature == 0:
        best = int(row.argmax())
        return -1 if row[best] == -np.inf else best
    if top_k is not None and top_k >= len(row):
        top_k = None
    if top_p is not None and top_p >= 1:
        top_p = None
    return _sample_row(row, 1.0 - rng.random(), temperature, top_k, top_p)


def _sample_row(row: np.ndarray, u: float, temperature: float, top_k: int | None, top_p: float | None) -> int:
    """:func:`sample` for one row (V,) with its uniform draw ``u`` in (0, 1]."""
    if top_k is not None:
        ids, values = largest(row, top_k)  # the candidates alone from here on
        peak = values.max()  # the row's maximum: the largest entry is a candidate
        if peak == -np.inf:
            return -1
        if temperature != 1:
            scale = np.float32(1.0 / temperature)
            values *= scale
            peak *= scale  # the maximum of the scaled candidates, bit for bit (rounding is monotonic)
        values -= peak
        probs = np.exp(values, out=values)
        if top_p is not None:
            ids, probs = _nucleus(ids, probs, top_p)
        return _draw_among(ids, probs, u)
    # The maximum in half the time of row.max(); only the sign of a zero maximum can differ from it, and
    # no difference it makes survives exp.
    peak = row[row.argmax()]
    if peak == -np.inf:
        return -1
    if temperature != 1:
        scale = np.float32(1.0 / temperature)
        row *= scale
        peak *= scale  # the maximum of the scaled row, bit for bit
    row -= peak
    probs = np.exp(row, out=row)  # (V,) unnormalized; -inf entries are exactly 0
    if top_p is not None:
        return _draw_among(*_nucleus(None, probs, top_p), u)
    return _draw_block_row(probs, u)


def _draw_block_row(probs: np.ndarray, u: float) -> int:
    """:func:`_draw_blocks` for one row: the same arithmetic with one-dimensional arrays."""
    starts = _block_starts(len(probs))
    masses = np.add.reduceat(probs, starts).astype(np.float64).cumsum()  # (blocks,)
    u *= float(masses[-1])  # in (0, total]
    block = min(int(masses.searchsorted(u)), len(masses) - 1)
    start = block * BLOCK
    inside = probs[start : start + BLOCK]
    if block:
        u -= float(masses[block - 1])  # now in (0, mass of the block]
    index = int(inside.astype(np.float64).cumsum().searchsorted(u))
    if index >= len(inside) or inside[index] == 0:  # rounding between the two levels: take the block's
        index = int(np.flatnonzero(inside)[-1])  # last possible token
    return start + index


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
    cumulative = probs.astype(np.float64).cumsum()
    index = int(cumulative.searchsorted(u * cumulative[-1]))
    if index >= len(ids) or probs[index] == 0:  # rounding at the very end: the last possible candidate
        index = int(np.flatnonzero(probs)[-1])
    return int(ids[index])


def largest(row: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ids (increasing) and scores of the ``k`` largest entries of ``row`` (V,); ties with the
    ``k``-th largest are all kept.

    The row is cut into groups of ``G`` entries (the columns of a (G, V/G) view); the ``k``-th largest
    of the groups' maxima is a lower bound of the row's ``k``-th largest (``k`` groups each hold an entry
    at or above it), so the row's top ``k`` all lie among the entries at or above it: one pass over the
    row finds them (for ~4k groups, barely more than ``k``), and only those few are partitioned.
    """
    vocab = len(row)
    size = min(32, vocab // (4 * k))  # G
    if size >= 2:
        columns = vocab // size
        maxima = np.maximum.reduce(row[: size * columns].reshape(size, columns))  # (V/G,)
        bound = np.partition(maxima, columns - k)[columns - k]
        ids = (row >= bound).nonzero()[0]
    else:
        ids = np.arange(vocab)
    values = row[ids]
    if len(ids) > k:
        kth = np.partition(values, len(ids) - k)[len(ids) - k]
        keep = (values >= kth).nonzero()[0]
        ids, values = ids[keep], values[keep]
    return ids, values


def _nucleus(ids: np.ndarray | None, probs: np.ndarray, top_p: float) -> tuple[np.ndarray, np.ndarray]:
    """The smallest set of most likely tokens whose mass reaches ``top_p`` of the total (ties in id
    order): ``(ids, probs)`` of that set, ids increasing. ``ids`` names the entries of ``probs``
    (None: ``probs`` is the whole vocabulary).

    Only tokens at or above a probability threshold are sorted. Every token below ``t`` comes after all
    of those in the sorted order, so once their mass reaches ``top_p`` of the total the set lies among
    them. ``t`` is a power of two found from the mass in each binary exponent (one pass, one bincount).
    Usually :func:`_exact_nucleus` finds the same set sorting far fewer tokens.
    """
    if len(probs) > 256:
        bits = probs.view(np.int32)  # (n,) probs are >= 0: their bits rise with their value
        fine = np.bincount(bits >> 20, weights=probs, minlength=1024)  # mass per eighth of an exponent
        exact = len(fine) == 1024 and fine[1016] > 0  # every prob < 2, one in [1, 1.125): 128 exponents
        # The mass per exponent, bit for bit: a sum of floats of one exponent is exact in any grouping.
        mass = np.add.reduceat(fine, _EIGHTHS) if exact else np.bincount(bits >> 23, weights=probs)
        total = float(mass.sum())  # (128,) or (256,) at most
        goal = top_p * total
        chosen = _exact_nucleus(bits, fine, goal, total) if exact else None
        if chosen is not None:
            return (chosen if ids is None else ids[chosen]), probs[chosen]
        exponents = bits >> 23  # biased float32 exponents
        reached = np.flatnonzero(mass[::-1].cumsum() >= goal * (1 + 1e-9))  # from the top exponent down
        if len(reached):
            keep = np.flatnonzero(exponents >= np.int32(len(mass) - 1 - reached[0]))  # int32: no cast
            ids = keep if ids is None else ids[keep]
            probs = probs[keep]
    else:
        goal = top_p * float(probs.sum(dtype=np.float64))
    if ids is None:
        ids = np.arange(len(probs))
    order = np.argsort(-probs, kind="stable")  # most likely first, ties by id
    ranked = probs[order]
    before = ranked.astype(np.float64).cumsum() - ranked  # mass ahead of each
    size = max(1, np.count_nonzero(before < goal))  # the most likely token always stays
    chosen = np.sort(order[:size])
    return ids[chosen], probs[chosen]


def _exact_nucleus(bits: np.ndarray, fine: np.ndarray, goal: float, total: float) -> np.ndarray | None:
    """:func:`_nucleus`'s set (positions in ``bits``, the probs' float32 bits, increasing) sorting only
    the tokens of one eighth of an exponent, or None where this shortcut cannot promise the same set.

    The set ends in the bin (``fine``: mass per eighth of an exponent) where the mass from the top first
    reaches ``goal``. The floats of that bin's exponent and above are multiples of ``2**(exponent -
    150)``, and while ``total`` is below ``2**(exponent - 98)`` every float64 sum of them is exact. With
    the bin's reach at least ``goal * (1 + 1e-9)``, :func:`_nucleus`'s own threshold is that exponent,
    so each "mass ahead" it computes is the exact sum of the tokens before it: the tokens of the bins
    above all count (their mass is below the goal), those after the boundary bin none (the bin's reach
    is ahead of them), and only the boundary bin's tokens need sorting.
    """
    reach = fine[:767:-1].cumsum()  # (256,) mass at or above each bin of the top 32 exponents
    first = int(reach.searchsorted(goal))  # the first bin from the top whose reach is >= goal
    if not goal > 0 or first == len(reach):
        return None
    edge = 1023 - first  # the boundary bin
    if not (total < 2.0 ** ((edge >> 3) - 98) and reach[first] >= goal * (1 + 1e-9)):
        return None
    candidates = (bits >= np.int32(edge << 20)).nonzero()[0]  # the boundary bin and above, (c,)
    inside = bits[candidates] < np.int32((edge + 1) << 20)  # (c,) in the boundary bin
    where = inside.nonzero()[0]
    values = bits[candidates[where]].view(np.float32)
    order = np.argsort(-values, kind="stable")  # most likely first, ties by id
    ranked = values[order]
    above = float(reach[first - 1]) if first else 0.0  # the exact mass of the bins above: < goal
    before = (above + ranked.astype(np.float64).cumsum()) - ranked  # exact mass ahead of each
    inside[where[order[: np.count_nonzero(before < goal)]]] = False  # at least the first: above < goal
    return candidates[~inside]


_EIGHTHS = np.arange(0, 1024, 8)  # the first bin of each exponent in _nucleus's fine bins


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
