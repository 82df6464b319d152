"""The original notebook's way of generating: re-run a stateless model on the last 50 words for every
new word, then draw the next word from a float64 softmax."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from benchmarks.timing import Loop

__all__ = ["WINDOW", "sample_rows", "windowed_loop"]

WINDOW = 50  # the notebook's window, in words


def sample_rows(
    logits: Any, rng: np.random.Generator, temperature: float, banned: Sequence[int]
) -> np.ndarray:
    """One token id per row of ``logits`` (rows, vocab): the softmax draw the notebook made.

    The benchmarks' own sampler, used by the baselines that have no runtime: float64 softmax at
    ``temperature`` (0 is greedy), one inverse-CDF draw per row, ``banned`` ids never chosen.
    """
    scores = np.array(logits, dtype=np.float64)  # (B, V)
    scores[:, list(banned)] = -np.inf
    if temperature == 0:
        return np.argmax(scores, axis=-1)
    scores /= temperature
    scores -= scores.max(axis=-1, keepdims=True)
    cdf = np.cumsum(np.exp(scores), axis=-1)  # (B, V)
    u = (1.0 - rng.random((scores.shape[0], 1))) * cdf[:, -1:]  # (B, 1) in (0, total]
    return np.minimum((cdf < u).sum(axis=-1), scores.shape[1] - 1)


def windowed_loop(
    last_logits: Callable[[np.ndarray], np.ndarray],
    prompt_ids: Sequence[int],
    temperature: float,
    banned: Sequence[int],
) -> Loop:
    """The notebook's loop: ``last_logits`` (a stateless model: (1, W) ids -> (1, V) logits of the last
    position) re-run on the last :data:`WINDOW` ids for every new word."""

    def run(seed: int, words: int) -> int:
        rng = np.random.default_rng(seed)
        ids = list(prompt_ids)
        for _ in range(words):
            window = np.asarray([ids[-WINDOW:]])  # (1, W)
            logits = last_logits(window)  # (1, V): the last position's logits
            ids.append(int(sample_rows(logits, rng, temperature, banned)[0]))
        return words

    return run
