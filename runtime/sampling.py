"""Choosing the next token from logits: greedy, temperature and top-k sampling."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["sample_next"]


def sample_next(
    logits: np.ndarray,
    *,
    temperature: float,
    top_k: int | None,
    rng: np.random.Generator,
    banned: Sequence[int] = (),
) -> np.ndarray:
    """Pick one token id per row of ``logits`` (shape ``(batch, vocab)``); returns int64 ``(batch,)``.

    ``temperature == 0`` takes the most likely token (ties go to the lowest id). Otherwise the logits
    are divided by ``temperature``, cut to the ``top_k`` largest when ``top_k`` is set, and one token is
    drawn from their softmax with ``rng``. ``banned`` ids are never chosen.
    """
    scores = np.array(logits, dtype=np.float64)  # (B, V), a copy: the caller's logits stay untouched
    if banned:
        scores[:, list(banned)] = -np.inf
    if temperature == 0:
        return np.argmax(scores, axis=-1).astype(np.int64)
    scores /= temperature
    vocab = scores.shape[-1]
    if top_k is not None and top_k < vocab:
        cut = np.argpartition(scores, vocab - top_k, axis=-1)[:, : vocab - top_k]  # (B, V-k) smallest
        np.put_along_axis(scores, cut, -np.inf, axis=-1)
    scores -= scores.max(axis=-1, keepdims=True)
    probs = np.exp(scores)  # (B, V), banned and cut entries are exactly 0
    cdf = np.cumsum(probs, axis=-1)
    u = (1.0 - rng.random((scores.shape[0], 1))) * cdf[:, -1:]  # (B, 1), in (0, total]
    # First index whose cumulative mass reaches u: never an entry of probability 0.
    return np.minimum((cdf < u).sum(axis=-1), vocab - 1).astype(np.int64)
