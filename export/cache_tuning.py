"""Choosing a model's continuous-cache settings on training documents: the similarity (dot or cosine),
theta, the window, and the share (a constant mix or a gate on the cache's log-sum-exp).

The exporter calls :func:`tune_cache` with a development sample of the run's *training* documents
(never the validation documents, whose figures the file reports). Every document is stepped through the
model once, one token per session call, keeping the last layer's state after each position and the
model's log-probability of the next token; the search then runs on those arrays alone:

- for each similarity, each of its thetas (:data:`THETAS` for dot products, :data:`COSINE_THETAS` for
  cosines in [-1, 1]) and each window of :data:`WINDOWS` (up to the longest document), ``p_cache`` of
  every next token and the cache's log-sum-exp ``L`` follow from the documents' state similarities;
- for each of those caches the best constant mix and the best gate ``sigmoid(a + b L)`` are fitted
  (:mod:`nextword.export.cache_fit`); the gate is kept only where it lowers the development perplexity
  by more than :data:`GATE_GAIN` against the mix, and cosine similarities only where they beat dot
  products by more than :data:`COSINE_GAIN` (otherwise the simpler setting, so a file needs format 3
  only when the newer settings earn it);
- the window kept is the smallest whose perplexity is within :data:`WINDOW_TOLERANCE` of the best
  (a longer window costs memory and time per word for nothing).

The cache is only kept when it lowers the development perplexity by at least :data:`MIN_GAIN`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nextword.runtime.cache import SIMILARITIES, CacheConfig
from nextword.runtime.logits import log_softmax
from nextword.runtime.step import StepModel

from .cache_fit import best_gate, best_mix

__all__ = ["COSINE_THETAS", "THETAS", "WINDOWS", "DevTrace", "trace_documents", "tune_cache"]

logger = logging.getLogger(__name__)

THETAS = (0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.14, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0)  # dot products
COSINE_THETAS = (1.0, 2.0, 3.0, 5.0, 7.0, 10.0, 14.0, 20.0, 30.0, 50.0)  # similarities in [-1, 1]
WINDOWS = (16, 32, 64, 128, 256, 512, 1024, 2048)  # documents are traced up to the last one
WINDOW_TOLERANCE = 0.002  # a window may cost this share of perplexity against the best one
MIN_GAIN = 0.01  # the cache must lower development perplexity by 1% to be kept
GATE_GAIN = 0.005  # a gate must beat the constant mix of the same cache by more than 0.5%
COSINE_GAIN = 0.002  # cosine similarities must beat dot products by more than 0.2%
TRACE_BATCH = 32  # documents stepped side by side
MAX_WORDS = 50_000  # development positions traced at most: a few seconds of export


@dataclass(frozen=True)
class DevTrace:
    """One document stepped through a model: what the cache search needs, nothing else."""

    states: np.ndarray  # (T, U) float32: the last layer's h after each fed position
    targets: np.ndarray  # (T,) int64: the token that followed each position
    model_logprobs: np.ndarray  # (T,) float64: the model's log-probability of that token


def trace_documents(
    model: StepModel, documents: Iterable[Sequence[int] | np.ndarray], max_words: int = MAX_WORDS
) -> list[DevTrace]:
    """Step ``documents`` (each ``<eod> ids... <eod>``) one token at a time, ``TRACE_BATCH`` at once,
    until ``max_words`` positions are traced; each document is cut after the widest window."""
    traces: list[DevTrace] = []
    batch: list[np.ndarray] = []
    words = 0
    for document in documents:
        if words >= max_words:
            break
        ids = np.asarray(document, dtype=np.int64)[: WINDOWS[-1] + 2]
        if len(ids) >= 2:
            batch.append(ids)
            words += len(ids) - 1
        if len(batch) == TRACE_BATCH:
            traces += _trace_batch(model, batch)
            batch = []
    if batch:
        traces += _trace_batch(model, batch)
    return traces


def _trace_batch(model: StepModel, documents: list[np.ndarray]) -> list[DevTrace]:
    """Documents of one batch, padded at the end with the end-of-document id (padding is never read)."""
    lengths = np.array([len(d) - 1 for d in documents])  # predicted positions per document
    longest = int(lengths.max())
    inputs = np.full((len(documents), longest), model.tokenizer.eod_id, dtype=np.int64)
    targets = np.full_like(inputs, model.tokenizer.eod_id)
    for j, d in enumerate(documents):
        inputs[j, : len(d) - 1], targets[j, : len(d) - 1] = d[:-1], d[1:]
    state = model.initial_state(len(documents))
    states = np.empty((len(documents), longest, state[-2].shape[1]), dtype=np.float32)  # (B, T, U)
    logprobs = np.empty((len(documents), longest))
    for t in range(longest):
        logits, state = model.forward(inputs[:, t : t + 1], state)  # (B, 1, V)
        states[:, t] = state[-2]
        logprobs[:, t] = log_softmax(logits[:, 0])[np.arange(len(documents)), targets[:, t]]
    return [
        DevTrace(states[j, :n].copy(), targets[j, :n].copy(), logprobs[j, :n].copy())
        for j, n in enumerate(lengths.tolist())
    ]


def _cache_columns(
    traces: Sequence[DevTrace], windows: Sequence[int], thetas: Sequence[float], cosine: bool
) -> tuple[np.ndarray, np.ndarray]:
    """p_cache of each position's next token and the cache's log-sum-exp L, for each theta and each
    window: two (positions, thetas x windows) arrays, all documents concatenated (p 0 where the cache
    is empty or its weights underflow; L -inf where it is empty). ``cosine``: of unit-length states."""
    widest = max(windows)
    theta = np.asarray(thetas)[:, None, None]  # (K, 1, 1)
    probs_out, totals_out = [], []
    for trace in traces:
        states = trace.states
        if cosine:  # as the runtime stores them: float64 norms, float32 values, zero states stay zero
            h64 = states.astype(np.float64)
            norms = np.sqrt((h64 * h64).sum(axis=1, keepdims=True))
            states = (h64 / np.where(norms > 0, norms, 1.0)).astype(np.float32)
        n = len(trace.targets)
        reach = min(n, widest)
        t = np.arange(n)[:, None]
        earlier = t - np.arange(1, reach + 1)[None, :]  # (T, reach): position i at distance d = t - i
        valid = earlier >= 0
        i = np.maximum(earlier, 0)
        sims = (states @ states.T)[t, i].astype(np.float64)  # (T, reach) h_t . h_i in float32
        sims[~valid] = -np.inf
        peak = sims.max(axis=1, keepdims=True)
        peak[~np.isfinite(peak)] = 0.0
        weights = np.exp(theta * (sims - peak))  # (K, T, reach), 0 where invalid
        same = (trace.targets[i] == trace.targets[:, None]) & valid  # entry i holds position t's target
        columns = np.minimum(windows, reach) - 1  # the last distance each window keeps
        total = np.cumsum(weights, axis=2)[:, :, columns]  # (K, T, W)
        hit = np.cumsum(weights * same, axis=2)[:, :, columns]
        probs = np.divide(hit, total, out=np.zeros_like(hit), where=total > 0)
        with np.errstate(divide="ignore"):
            log_total = np.log(total) + theta * peak[None]  # L = log sum_i exp(theta sim_i)
        probs_out.append(probs.transpose(1, 0, 2).reshape(n, -1))  # (T, K * W)
        totals_out.append(log_total.transpose(1, 0, 2).reshape(n, -1))
    return np.concatenate(probs_out), np.concatenate(totals_out)


@dataclass(frozen=True)
class _Candidate:
    """One cache searched: its settings and development NLL (mean per position)."""

    similarity: str
    theta: float
    window: int
    nll: float
    mix: float | None
    gate: tuple[float, float] | None

    def record(self) -> dict[str, Any]:
        if self.gate is None:
            assert self.mix is not None  # a candidate has a mix or a gate (_candidates)
            share: dict[str, Any] = {"mix": round(self.mix, 4)}
        else:
            share = {"gate": [round(g, 6) for g in self.gate]}
        return {
            "theta": self.theta,
            "window": self.window,
            **share,
            "perplexity": round(math.exp(self.nll), 3),
        }


def _candidates(
    traces: Sequence[DevTrace],
    p_model: np.ndarray,
    has_cache: np.ndarray,
    windows: list[int],
    similarity: str,
) -> list[_Candidate]:
    """Every (theta, window) cache of one similarity, with its best mix and its best gate."""
    thetas = COSINE_THETAS if similarity == "cosine" else THETAS
    p_cache, log_total = _cache_columns(traces, windows, thetas, similarity == "cosine")
    mixes, mix_nlls = best_mix(p_model, p_cache, has_cache)
    gates, gate_nlls = best_gate(p_model, p_cache, log_total, has_cache, mixes)
    pairs = [(theta, window) for theta in thetas for window in windows]  # the columns, in order
    found = []
    for k, (theta, window) in enumerate(pairs):
        found.append(_Candidate(similarity, theta, window, float(mix_nlls[k]), float(mixes[k]), None))
        gate = (float(gates[k, 0]), float(gates[k, 1]))
        found.append(_Candidate(similarity, theta, window, float(gate_nlls[k]), None, gate))
    return found


def _choose(found: list[_Candidate]) -> _Candidate:
    """The best of ``found`` with a gate only where it beats that cache's mix by :data:`GATE_GAIN`."""
    mixed = {(c.theta, c.window): c for c in found if c.gate is None}
    allowed = [
        c for c in found if c.gate is None or c.nll < mixed[(c.theta, c.window)].nll + math.log1p(-GATE_GAIN)
    ]
    return min(allowed, key=lambda c: c.nll)


def tune_cache(traces: Sequence[DevTrace]) -> CacheConfig | None:
    """The cache settings that minimize the development perplexity of ``traces`` (within the rules
    above); None when the best cache lowers it by less than :data:`MIN_GAIN` (the file then carries
    no cache)."""
    if not traces:
        return None
    p_model = np.exp(np.concatenate([t.model_logprobs for t in traces]))
    has_cache = np.concatenate([np.arange(len(t.targets)) > 0 for t in traces])
    base = float(-np.log(p_model).mean())
    longest = max(len(t.targets) for t in traces)
    windows = [w for w in WINDOWS if w < longest] + [next((w for w in WINDOWS if w >= longest), WINDOWS[-1])]
    found = {s: _candidates(traces, p_model, has_cache, windows, s) for s in SIMILARITIES}
    best = {s: _choose(found[s]) for s in SIMILARITIES}
    similarity = "cosine" if best["cosine"].nll < best["dot"].nll + math.log1p(-COSINE_GAIN) else "dot"
    per_window = {w: _choose([c for c in found[similarity] if c.window == w]) for w in windows}
    chosen = next(
        per_window[w]
        for w in windows
        if per_window[w].nll <= best[similarity].nll + math.log1p(WINDOW_TOLERANCE)
    )
    kinds = {
        f"{s} {kind}": min((c for c in found[s] if (c.gate is None) == (kind == "mix")), key=lambda c: c.nll)
        for s in SIMILARITIES
        for kind in ("mix", "gate")
    }
    tuning = {
        "documents": len(traces),
        "words": len(p_model),
        "perplexity_without": round(math.exp(base), 3),
        "perplexity_with": round(math.exp(chosen.nll), 3),
        "thetas": list(THETAS),
        "cosine_thetas": list(COSINE_THETAS),
        "windows": windows,
        "window_tolerance": WINDOW_TOLERANCE,
        "gate_gain": GATE_GAIN,
        "cosine_gain": COSINE_GAIN,
        "best_of_each": {name: c.record() for name, c in kinds.items()},  # kept or rejected by the rules
        "split": "training documents (development sample)",
    }
    logger.info(
        "cache tuned on %d training documents (%d words): %s similarity, theta %.3g, %s, window %d; "
        "perplexity %.2f without, %.2f with (best of each kind: %s)",
        len(traces),
        len(p_model),
        similarity,
        chosen.theta,
        f"mix {chosen.mix:.3f}"
        if chosen.gate is None
        else f"gate ({chosen.gate[0]:.3f}, {chosen.gate[1]:.3f})",
        chosen.window,
        math.exp(base),
        math.exp(chosen.nll),
        ", ".join(f"{name} {c.record()['perplexity']}" for name, c in kinds.items()),
    )
    if chosen.nll > base + math.log1p(-MIN_GAIN):
        logger.info("the cache gains under %.0f%% on the development documents: not stored", 100 * MIN_GAIN)
        return None
    record = chosen.record()
    return CacheConfig(
        theta=chosen.theta,
        mix=record.get("mix"),
        window=chosen.window,
        tuning=tuning,
        similarity=similarity,
        gate=None if chosen.gate is None else tuple(record["gate"]),
    )
