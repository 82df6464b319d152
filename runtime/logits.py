"""From logits to probabilities: the one log-softmax of the runtime."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["log_softmax", "softmax"]


def log_softmax(logits: np.ndarray, dtype: Any = np.float64) -> np.ndarray:
    """Log-probabilities over the last axis, computed in ``dtype`` (float64 unless asked otherwise:
    beam search ranks in float32, the precision of the logits). Rows whose every logit is ``-inf`` come
    out as NaN."""
    scores = np.asarray(logits, dtype=dtype)
    peak = scores.max(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):  # one work array, reused: fewer large allocations
        work = np.subtract(scores, peak)
        np.exp(work, out=work)
        total = work.sum(axis=-1, keepdims=True)
        return np.subtract(scores, peak + np.log(total), out=work)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities over the last axis, computed in float64."""
    return np.exp(log_softmax(logits))
