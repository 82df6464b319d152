"""The arithmetic of benchmarks.cache_variants (benchmarks.cache_mixture, cache_traces) against direct
computations over the whole vocabulary and against the runtime's own cache, on tiny arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.cache_mixture import (
    cache_view,
    compass_search,
    gate_share,
    mixture,
    ranks_below,
    similarities,
)
from benchmarks.cache_traces import Traced, load_traces, save_traces
from benchmarks.cache_variants import Component, paired, score
from nextword.runtime.cache import CacheConfig, ContinuousCache
from nextword.runtime.logits import log_softmax

VOCAB, UNITS, STEPS, WINDOW = 14, 6, 23, 7


def document(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fed ids (T + 1,), states (T, U) and the model's log-probabilities (T, V) of a made-up document
    whose words come back (a few ids drawn often), so caches hold repeated words."""
    rng = np.random.default_rng(seed)
    ids = rng.choice(VOCAB, STEPS + 1, p=np.r_[[0.3, 0.2, 0.15], np.full(VOCAB - 3, 0.35 / (VOCAB - 3))])
    states = rng.normal(size=(STEPS, UNITS)).astype(np.float32)
    logprobs = log_softmax(2.0 * rng.normal(size=(STEPS, VOCAB)))
    return ids, states, logprobs


def on_vocab(ids: np.ndarray, logprobs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The document's vocabulary, each target's place in it, and the top-5 of the model."""
    vocab = np.unique(ids[1:])
    top = np.argsort(-logprobs, axis=1)[:, :5]
    return vocab, np.searchsorted(vocab, ids[1:]), top


def direct_cache(states: np.ndarray, targets: np.ndarray, theta: float, cosine: bool) -> np.ndarray:
    """p_cache over the whole vocabulary (T, V), position by position, with plain loops."""
    out = np.zeros((len(states), VOCAB))
    for t in range(len(states)):
        held = [i for i in range(len(states)) if 1 <= t - i <= WINDOW]
        if not held:
            continue
        scores = []
        for i in held:
            a, b = states[t].astype(np.float64), states[i].astype(np.float64)
            scores.append(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) if cosine else a @ b)
        weights = np.exp(theta * (np.array(scores) - max(scores)))
        for i, w in zip(held, weights / weights.sum(), strict=True):
            out[t, targets[i]] += w
    return out


def test_a_fixed_share_is_the_runtimes_cache():
    ids, states, logprobs = document(0)
    config = CacheConfig(theta=0.4, mix=0.3, window=WINDOW)
    runtime = ContinuousCache(config, rows=1, units=UNITS)
    expected = np.empty_like(logprobs)
    for t in range(STEPS):  # as evaluate feeds a document: read x_t, then predict x_{t+1}
        runtime.observe(ids[t : t + 1], states[t : t + 1])
        row = logprobs[t : t + 1].copy()
        runtime.mix_logprobs(row)
        expected[t] = row[0]
    vocab, index, top = on_vocab(ids, logprobs)
    view = cache_view(similarities(states), config.theta, WINDOW, index, len(vocab))
    share = gate_share("fixed", [math.log(config.mix / (1 - config.mix))], view.count)
    q, keep = mixture(np.exp(logprobs[:, vocab]), [view.probs], [share])
    np.testing.assert_allclose(np.log(q), expected[:, vocab], rtol=1e-6, atol=1e-9)
    assert keep[0] == 1 and np.allclose(keep[1:], 0.7)  # the first position has nothing cached
    full = np.exp(expected)
    target = full[np.arange(STEPS), ids[1:]]
    ranks = ranks_below(q, index, keep, vocab, top, np.exp(np.take_along_axis(logprobs, top, axis=1)))
    truth = (full > target[:, None]).sum(axis=1)
    assert np.array_equal(np.minimum(ranks, 5), np.minimum(truth, 5))


@pytest.mark.parametrize("cosine", [False, True])
def test_cache_view_against_loops(cosine):
    ids, states, _ = document(1)
    vocab, index, _ = on_vocab(ids, np.zeros((STEPS, VOCAB)))
    view = cache_view(similarities(states, cosine), 1.3, WINDOW, index, len(vocab))
    direct = direct_cache(states, ids[1:], 1.3, cosine)[:, vocab]
    np.testing.assert_allclose(view.probs, direct, rtol=1e-5, atol=1e-9)  # float32 similarities
    sims = similarities(states, cosine)
    for t in (0, 3, STEPS - 1):
        held = [i for i in range(t) if t - i <= WINDOW]
        assert view.count[t] == len(held)
        if held:
            assert view.log_total[t] == pytest.approx(np.log(np.exp(1.3 * sims[t, held]).sum()))
            assert view.peak[t] == pytest.approx(sims[t, held].max())
        else:
            assert view.log_total[t] == -np.inf and view.peak[t] == 0


def test_gate_shares():
    count = np.array([0, 1, 10, 100])
    feature = np.array([5.0, -1.0, 0.5, 2.0])
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    np.testing.assert_allclose(gate_share("fixed", [0.2], count), [0, *[sig(0.2)] * 3])
    np.testing.assert_allclose(
        gate_share("count", [0.2, math.log(30)], count), sig(0.2) * count / (count + 30)
    )
    gate = sig(-1 + 2 * feature)
    np.testing.assert_allclose(gate_share("gate", [-1, 2], count, feature), np.where(count > 0, gate, 0))
    np.testing.assert_allclose(
        gate_share("count_gate", [-1, 2, math.log(4)], count, feature), gate * count / (count + 4)
    )
    with pytest.raises(ValueError, match="needs its feature"):
        gate_share("gate", [0, 1], count)
    with pytest.raises(ValueError, match="unknown share kind"):
        gate_share("softmax", [0], count)


def test_nested_mixture_and_ranks_against_the_whole_vocabulary():
    ids, states, logprobs = document(2)
    vocab, index, top = on_vocab(ids, logprobs)
    targets = ids[1:]
    components = []  # (over the whole vocabulary, over the document's vocabulary, share)
    for theta, cosine, kind, params in ((4.0, True, "gate", [-0.5, 0.3]), (0.0, False, "fixed", [-1.0])):
        view = cache_view(similarities(states, cosine), theta, WINDOW, index, len(vocab))
        share = gate_share(kind, params, view.count, view.log_total)
        components.append((direct_cache(states, targets, theta, cosine), view.probs, share))
    full = np.exp(logprobs)
    for whole, _, share in components:
        full = (1 - share[:, None]) * full + share[:, None] * whole
    np.testing.assert_allclose(full.sum(axis=1), 1.0)
    q, keep = mixture(np.exp(logprobs[:, vocab]), [c[1] for c in components], [c[2] for c in components])
    np.testing.assert_allclose(q, full[:, vocab], rtol=1e-5, atol=1e-9)
    ranks = ranks_below(q, index, keep, vocab, top, np.exp(np.take_along_axis(logprobs, top, axis=1)))
    truth = (full > full[np.arange(STEPS), targets][:, None]).sum(axis=1)
    assert np.array_equal(np.minimum(ranks, 5), np.minimum(truth, 5))
    assert (truth < 5).any() and (truth >= 5).any()  # both cases are exercised


def test_compass_search_finds_a_minimum():
    best, value = compass_search(lambda x: (x[0] - 1.3) ** 2 + 2 * (x[1] + 0.4) ** 2 + 1, [0.0, 0.0])
    np.testing.assert_allclose(best, [1.3, -0.4], atol=2e-3)
    assert value == pytest.approx(1.0, abs=1e-5)


def traced(seed: int) -> Traced:
    ids, states, logprobs = document(seed)
    vocab, index, top = on_vocab(ids, logprobs)
    return Traced(states, index, vocab, logprobs[:, vocab], top, np.take_along_axis(logprobs, top, axis=1))


def test_traces_round_trip_and_score(tmp_path):
    docs = [traced(3), traced(4)]
    path = tmp_path / "traces.npz"
    save_traces(path, {"dev": docs}, "model-a")
    assert load_traces(path, ["dev"], "model-b") is None  # made from another model: not reused
    back = load_traces(path, ["dev"], "model-a")["dev"]
    for a, b in zip(docs, back, strict=True):
        for field in ("states", "target_index", "vocab", "logprobs", "top_ids", "top_logprobs"):
            assert np.array_equal(getattr(a, field), getattr(b, field))
            # one copy of each saved array, however many documents: slices of it, not a copy apiece
            assert getattr(b, field).base is getattr(back[0], field).base is not None
    alone = score(back, [], np.zeros(0), WINDOW)
    nll = -sum(d.logprobs[np.arange(STEPS), d.target_index].sum() for d in docs)
    assert alone["perplexity"] == pytest.approx(math.exp(nll / (2 * STEPS)))
    cached = score(back, [Component(False, 0.5, "fixed")], np.array([-1.0]), WINDOW)
    lower, low, high = paired(alone, alone)
    assert lower == 0 and low == high == pytest.approx(1.0)
    assert paired(cached, alone)[1] != 1.0
