"""The runtime's one log-softmax: float64 results from float32 exponentials, float32 kept as it was."""

from __future__ import annotations

import numpy as np
import pytest

from nextword.runtime.logits import log_softmax, softmax


def _exact(logits: np.ndarray) -> np.ndarray:
    """log-softmax with every operation in float64."""
    scores = logits.astype(np.float64)
    peak = scores.max(axis=-1, keepdims=True)
    return scores - peak - np.log(np.exp(scores - peak).sum(axis=-1, keepdims=True))


@pytest.mark.parametrize("scale", [0.1, 3.0, 40.0])
def test_float64_log_probabilities_match_an_all_float64_computation(scale):
    rng = np.random.default_rng(7)
    logits = (rng.standard_normal((5, 8270)) * scale).astype(np.float32)
    logits[1, ::3] = -np.inf  # banned tokens
    got = log_softmax(logits)
    assert got.dtype == np.float64
    finite = np.isfinite(got)
    np.testing.assert_allclose(got[finite], _exact(logits)[finite], rtol=0, atol=2e-7)
    assert (got[1, ::3] == -np.inf).all()
    np.testing.assert_allclose(softmax(logits).sum(axis=-1), 1.0, rtol=0, atol=1e-6)


def test_float64_logits_keep_their_spread():
    """Logits given in float64 are shifted in float64 before their exponentials are rounded."""
    logits = np.array([[1e6, 1e6 + 1.0, 1e6 - 200.0]])
    got = log_softmax(logits)
    np.testing.assert_allclose(got[0, :2], np.log([1 / (1 + np.e), np.e / (1 + np.e)]), rtol=0, atol=1e-7)
    assert got[0, 2] < -199


def test_rows_without_an_allowed_token_are_nan_in_either_precision():
    logits = np.full((2, 4), -np.inf, dtype=np.float32)
    logits[1, 2] = 0.5
    for dtype in (np.float64, np.float32):
        got = log_softmax(logits, dtype=dtype)
        assert got.dtype == dtype
        assert np.isnan(got[0]).all()
        assert got[1, 2] == 0 and (got[1, [0, 1, 3]] == -np.inf).all()


def test_float32_is_computed_in_float32_throughout():
    """Beam search's order of operations, which nextword-web repeats bit for bit."""
    rng = np.random.default_rng(3)
    logits = (rng.standard_normal((3, 1000)) * 4).astype(np.float32)
    peak = logits.max(axis=-1, keepdims=True)
    total = np.exp(logits - peak).sum(axis=-1, keepdims=True)
    assert np.array_equal(log_softmax(logits, dtype=np.float32), logits - (peak + np.log(total)))
