"""benchmarks.dynamic_eval's adaptation of the output layer against a direct computation of the same
sums over earlier positions, on tiny made-up documents."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.dynamic_eval import Totals, adapted_scores
from nextword.runtime.cache import CacheConfig, ContinuousCache
from nextword.runtime.logits import log_softmax

VOCAB, UNITS, STEPS = 11, 5, 17


def document(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ids (T + 1,), logits (T, V) and states (T, U) of a made-up document whose words come back."""
    rng = np.random.default_rng(seed)
    ids = rng.choice(VOCAB, STEPS + 1, p=np.r_[[0.4, 0.2], np.full(VOCAB - 2, 0.4 / (VOCAB - 2))])
    logits = (2.0 * rng.normal(size=(STEPS, VOCAB))).astype(np.float32)
    states = rng.normal(size=(STEPS, UNITS)).astype(np.float32)
    return ids, logits, states


def direct(ids: np.ndarray, logits: np.ndarray, states: np.ndarray, eta_w: float, eta_b: float) -> np.ndarray:
    """The adapted log-probabilities (T, V) from the sums the updates add up to: at t, the scores move by
    sum over i < t of (eta_w u_i . u_t + eta_b) (e_{y_i} - p_i), u the unit-length states."""
    unit = states.astype(np.float64) / np.linalg.norm(states, axis=1, keepdims=True)
    out = np.empty(logits.shape)
    steps = []  # e_{y_i} - p_i of the positions read so far
    for t in range(len(logits)):
        scores = logits[t].astype(np.float64)
        for i, step in enumerate(steps):
            scores = scores + (eta_w * unit[i] @ unit[t] + eta_b) * step
        out[t] = scores - np.log(np.exp(scores - scores.max()).sum()) - scores.max()
        step = -np.exp(out[t])
        step[ids[t + 1]] += 1.0
        steps.append(step)
    return out


@pytest.mark.parametrize(("eta_w", "eta_b"), [(0.0, 0.0), (1.5, 0.0), (0.0, 0.3), (2.0, 0.2)])
def test_adapted_scores_match_the_direct_sums(eta_w: float, eta_b: float) -> None:
    for seed in range(3):
        ids, logits, states = document(seed)
        logprobs, top5 = adapted_scores(ids, logits, states, eta_w, eta_b)
        expected = direct(ids, logits, states, eta_w, eta_b)
        targets = expected[np.arange(STEPS), ids[1:]]
        np.testing.assert_allclose(logprobs, targets, atol=2e-5)
        ranks = (expected > targets[:, None]).sum(axis=1)
        np.testing.assert_array_equal(top5, ranks < 5)
        if not (eta_w or eta_b):
            plain = log_softmax(logits.astype(np.float64))
            np.testing.assert_allclose(logprobs, plain[np.arange(STEPS), ids[1:]])


def test_adaptation_raises_a_word_the_document_repeats() -> None:
    ids, logits, states = document(0)
    ids[1:] = 3  # the same word at every position after the first, read in the same state
    states[:] = states[0]
    plain, _ = adapted_scores(ids, logits, states, 0.0, 0.0)
    adapted, _ = adapted_scores(ids, logits, states, 2.0, 0.5)
    assert adapted[0] == pytest.approx(plain[0])  # nothing read yet: nothing adapted
    assert (adapted[3:] > plain[3:]).all()


@pytest.mark.parametrize(("eta_w", "eta_b"), [(0.0, 0.0), (2.0, 0.2)])
def test_the_cache_mixes_with_the_adapted_distribution(eta_w: float, eta_b: float) -> None:
    ids, logits, states = document(1)
    config = CacheConfig(theta=1.0, mix=0.3, window=8)
    got, _ = adapted_scores(ids, logits, states, eta_w, eta_b, config)
    adapted = direct(ids, logits, states, eta_w, eta_b)  # the adaptation's own steps ignore the cache
    rows = ContinuousCache(config, 1, UNITS)
    expected = np.empty(STEPS)
    for t in range(STEPS):
        logp = adapted[t : t + 1].copy()
        rows.observe(ids[t : t + 1], states[t : t + 1])
        rows.mix_logprobs(logp)
        expected[t] = logp[0, ids[t + 1]]
    np.testing.assert_allclose(got, expected, atol=2e-5)
    uncached, _ = adapted_scores(ids, logits, states, eta_w, eta_b)
    assert not np.allclose(got, uncached)  # the cache did something


def test_totals() -> None:
    totals = Totals()
    totals.add(np.log([0.5, 0.25]), np.array([True, False]))
    assert totals.perplexity == pytest.approx(np.sqrt(8))
    assert totals.top5_accuracy == 0.5
    assert np.isnan(Totals().perplexity)
