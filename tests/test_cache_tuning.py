"""The cache search of the exporter without a model: the share fits against an independent optimizer,
and the rules that choose between a mix and a gate, dot products and cosines, and windows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.cache_mixture import compass_search
from nextword.export import cache_tuning
from nextword.export.cache_fit import best_gate, best_mix
from nextword.export.cache_tuning import DevTrace, tune_cache
from nextword.runtime.model_file import format_version_for


def positions(n: int = 3000, columns: int = 3, seed: int = 0):
    """Development positions whose cache is worth more when its log-sum-exp L is high."""
    rng = np.random.default_rng(seed)
    p_model = rng.uniform(0.001, 0.3, n)
    log_total = rng.normal(2.0, 1.5, (n, columns)) + np.arange(columns)
    confident = rng.random((n, columns)) < 1 / (1 + np.exp(-(log_total - 3)))
    p_cache = np.where(confident, rng.uniform(0.5, 1.0, (n, columns)), rng.uniform(0.0, 0.02, (n, columns)))
    has_cache = np.arange(n) % 50 > 0  # every 50th position starts a document: empty cache
    log_total[~has_cache] = -np.inf
    return p_model, p_cache, log_total, has_cache


def mean_nll(p_model, p_cache, log_total, has_cache, a: float, b: float) -> float:
    share = np.where(has_cache, 1 / (1 + np.exp(-(a + b * np.where(has_cache, log_total, 0)))), 0.0)
    return float(-np.log((1 - share) * p_model + share * p_cache).mean())


def test_the_gate_fit_reaches_what_a_compass_search_finds():
    p_model, p_cache, log_total, has_cache = positions()
    mixes, mix_nlls = best_mix(p_model, p_cache, has_cache)
    gates, nlls = best_gate(p_model, p_cache, log_total, has_cache, mixes)
    for k in range(p_cache.shape[1]):
        args = (p_model, p_cache[:, k], log_total[:, k], has_cache)
        assert nlls[k] == pytest.approx(mean_nll(*args, *gates[k]), rel=1e-12)
        found, value = compass_search(
            lambda g, args=args: mean_nll(*args, *g), [math.log(mixes[k] / (1 - mixes[k])), 0.0], tol=1e-7
        )
        assert nlls[k] <= value + 1e-9 and np.allclose(gates[k], found, atol=1e-3)
        assert nlls[k] < mix_nlls[k] - 0.01  # the share does depend on L here
        assert gates[k, 1] > 0  # a more confident cache gets a larger share


def test_a_gate_cannot_be_worse_than_the_mix_it_starts_from():
    p_model, p_cache, _, has_cache = positions(seed=1)
    noise = np.random.default_rng(2).normal(size=p_cache.shape)  # L tells nothing about the cache
    mixes, mix_nlls = best_mix(p_model, p_cache, has_cache)
    gates, nlls = best_gate(p_model, p_cache, noise, has_cache, mixes)
    assert (nlls <= mix_nlls + 1e-12).all() and (nlls > mix_nlls - 1e-3).all()
    assert np.all(np.isfinite(gates))


def candidate(similarity, theta, window, perplexity, gate=None):
    return cache_tuning._Candidate(
        similarity, theta, window, math.log(perplexity), None if gate else 0.2, (-1.0, 0.5) if gate else None
    )


def searched(gate_gain: float, cosine_gain: float):
    """Candidates where the gate beats the mix by ``gate_gain`` and cosine (theta 10, window 256) beats
    dot by ``cosine_gain`` (relative perplexity); window 16 is 0.1% worse than 256 for dot."""
    dot = [candidate("dot", 1.0, 256, 50.0), candidate("dot", 1.0, 256, 50.0 * (1 - gate_gain), gate=True)]
    dot += [candidate("dot", 1.0, 16, 50.05), candidate("dot", 1.0, 16, 60.0, gate=True)]
    cos = (50.0 * (1 - gate_gain) if gate_gain > 0.005 else 50.0) * (1 - cosine_gain)  # vs the best dot
    cosine = [candidate("cosine", 10.0, 256, cos), candidate("cosine", 10.0, 256, cos * 1.01, gate=True)]
    cosine += [candidate("cosine", 10.0, 16, 70.0), candidate("cosine", 10.0, 16, 70.0, gate=True)]
    for similarity, found in (("dot", dot), ("cosine", cosine)):  # the other windows searched: worse
        found += [
            candidate(similarity, 1.0, w, 80.0, gate=g) for w in (32, 64, 128, 512) for g in (False, True)
        ]
    return {"dot": dot, "cosine": cosine}


def trace() -> list[DevTrace]:
    rng = np.random.default_rng(0)
    return [
        DevTrace(rng.normal(size=(300, 4)).astype(np.float32), rng.integers(3, 9, 300), np.full(300, -4.0))
    ]


@pytest.mark.parametrize(
    ("gate_gain", "cosine_gain", "similarity", "gated", "window"),
    [
        (0.004, 0.001, "dot", False, 16),  # neither earns its keep; window 16 is within 0.2% of 256
        (0.006, 0.001, "dot", True, 256),  # the gate does; the mix at window 16 is no longer close
        (0.004, 0.003, "cosine", False, 256),  # cosine does, and its mix beats its gate
    ],
)
def test_the_simpler_setting_wins_unless_the_newer_one_earns_it(
    monkeypatch, gate_gain, cosine_gain, similarity, gated, window
):
    found = searched(gate_gain, cosine_gain)
    monkeypatch.setattr(cache_tuning, "_candidates", lambda *args: found[args[-1]])
    config = tune_cache(trace())
    assert config is not None
    assert (config.similarity, config.gate is not None, config.window) == (similarity, gated, window)
    assert format_version_for(config) == (3 if similarity == "cosine" or gated else 2)
    kinds = config.tuning["best_of_each"]
    assert set(kinds) == {"dot mix", "dot gate", "cosine mix", "cosine gate"}
    assert kinds["dot gate"]["perplexity"] == round(50.0 * (1 - gate_gain), 3)


def test_the_search_on_traces_gives_settings_the_runtime_accepts():
    """Real columns (no stand-in candidates): documents repeating their own tokens after similar
    states; every candidate kind is recorded and the figure kept is the best allowed."""
    rng = np.random.default_rng(5)
    traces = []
    for _ in range(6):
        topics = rng.normal(size=(4, 8)).astype(np.float32)
        which = rng.integers(0, 4, 120)
        states = topics[which] * rng.uniform(0.5, 3, (120, 1)).astype(np.float32)
        targets = 10 + which * 3 + rng.integers(0, 2, 120)
        traces.append(DevTrace(states, targets, np.full(120, math.log(1 / 40))))
    config = tune_cache(traces)
    assert config is not None and config.tuning["perplexity_with"] < 0.9 * config.tuning["perplexity_without"]
    kinds = config.tuning["best_of_each"]
    assert config.tuning["perplexity_with"] >= min(k["perplexity"] for k in kinds.values()) - 1e-3
    for similarity in ("dot", "cosine"):
        assert kinds[f"{similarity} gate"]["perplexity"] <= kinds[f"{similarity} mix"]["perplexity"] + 1e-3


@pytest.mark.parametrize(("gain", "kept"), [(0.005, False), (0.009, False), (0.012, True), (0.05, True)])
def test_a_cache_is_stored_only_where_it_lowers_the_development_perplexity_by_one_percent(
    monkeypatch, gain, kept
):
    base = math.exp(4.0)  # trace(): the model gives every next token log-probability -4
    windows = (16, 32, 64, 128, 256, 512)  # those searched for trace()'s 300 positions
    found = {  # each window's mix, the smallest window's the best, and a gate that loses to it
        s: [
            candidate(s, 1.0, w, base * (1 - gain) * (1 + 0.01 * k) * factor, gate=gated)
            for k, w in enumerate(windows)
            for factor, gated in ((1.0, False), (1.5, True))
        ]
        for s in ("dot", "cosine")
    }
    monkeypatch.setattr(cache_tuning, "_candidates", lambda *args: found[args[-1]])
    config = tune_cache(trace())
    assert (config is not None) == kept, gain
    if kept:
        assert config.tuning["perplexity_with"] == pytest.approx(base * (1 - gain), rel=1e-3)
