"""Choosing a model's continuous-cache settings (theta, mix, window) on training documents.

The exporter calls :func:`tune_cache` with a development sample of the run's *training* documents
(never the validation documents, whose figures the file reports). Every document is stepped through the
model once, one token per session call, keeping the last layer's state after each position and the
model's log-probability of the next token; the search then runs on those arrays alone:

- for each theta of :data:`THETAS` and each window of :data:`WINDOWS` (up to the longest document),
  ``p_cache`` of every next token follows from the documents' state similarities;
- the best mix for that pair is found exactly: the negative log-likelihood of
  ``(1 - mix) p_model + mix p_cache`` is convex in mix, so a bisection on its derivative finds it;
- the window kept is the smallest whose perplexity is within :data:`WINDOW_TOLERANCE` of the best
  (a longer window costs memory and time per word for nothing).

The cache is only kept when it lowers the development perplexity by at least :data:`MIN_GAIN`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from nextword.runtime.cache import CacheConfig
from nextword.runtime.logits import log_softmax
from nextword.runtime.step import StepModel

__all__ = ["THETAS", "WINDOWS", "DevTrace", "trace_documents", "tune_cache"]

logger = logging.getLogger(__name__)

THETAS = (0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.14, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0)
WINDOWS = (16, 32, 64, 128, 256, 512, 1024, 2048)  # documents are traced up to the last one
WINDOW_TOLERANCE = 0.002  # a window may cost this share of perplexity against the best one
MIN_GAIN = 0.01  # the cache must lower development perplexity by 1% to be kept
TRACE_BATCH = 32  # documents stepped side by side
MAX_WORDS = 50_000  # development positions traced at most: a few seconds of export


@dataclass(frozen=True)
class DevTrace:
    """One document stepped through a model: what the cache search needs, nothing else."""

    states: np.ndarray  # (T, U) float32: the last layer's h after each fed position
    targets: np.ndarray  # (T,) int64: the token that followed each position
    model_logprobs: np.ndarray  # (T,) float64: the model's log-probability of that token


def trace_documents(
    model: StepModel, documents: Iterable[Sequence[int]], max_words: int = MAX_WORDS
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


def _cache_target_probs(traces: Sequence[DevTrace], windows: Sequence[int]) -> np.ndarray:
    """p_cache of each position's next token for each theta of :data:`THETAS` and each window:
    (positions, thetas x windows), all documents concatenated (0 where the cache is empty or its
    weights underflow)."""
    widest = max(windows)
    thetas = np.asarray(THETAS)[:, None, None]  # (K, 1, 1)
    out = []
    for trace in traces:
        n = len(trace.targets)
        reach = min(n, widest)
        t = np.arange(n)[:, None]
        earlier = t - np.arange(1, reach + 1)[None, :]  # (T, reach): position i at distance d = t - i
        valid = earlier >= 0
        i = np.maximum(earlier, 0)
        sims = (trace.states @ trace.states.T)[t, i].astype(np.float64)  # (T, reach) h_t . h_i in float32
        sims[~valid] = -np.inf
        peak = sims.max(axis=1, keepdims=True)
        peak[~np.isfinite(peak)] = 0.0
        weights = np.exp(thetas * (sims - peak))  # (K, T, reach), 0 where invalid
        same = (trace.targets[i] == trace.targets[:, None]) & valid  # entry i holds position t's target
        columns = np.minimum(windows, reach) - 1  # the last distance each window keeps
        total = np.cumsum(weights, axis=2)[:, :, columns]  # (K, T, W)
        hit = np.cumsum(weights * same, axis=2)[:, :, columns]
        probs = np.divide(hit, total, out=np.zeros_like(hit), where=total > 0)
        out.append(probs.transpose(1, 0, 2).reshape(n, -1))  # (T, K * W)
    return np.concatenate(out)


def _best_mix(
    p_model: np.ndarray, p_cache: np.ndarray, has_cache: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each column of ``p_cache`` (positions, C): the mix minimizing the mean negative
    log-likelihood, and that NLL (positions with an empty cache keep the model's probability). The NLL
    is convex in mix, so a bisection on its derivative finds the minimum."""
    pm, pc = p_model[has_cache, None], p_cache[has_cache]  # (N', 1), (N', C)
    fixed = -np.log(p_model[~has_cache]).sum()

    def derivative(mix: np.ndarray) -> np.ndarray:
        return -((pc - pm) / ((1 - mix) * pm + mix * pc)).sum(axis=0)

    low, high = np.full(pc.shape[1], 1e-4), np.full(pc.shape[1], 0.95)
    for _ in range(30):
        middle = (low + high) / 2
        rising = derivative(middle) >= 0
        high, low = np.where(rising, middle, high), np.where(rising, low, middle)
    mix = (low + high) / 2
    nll = (fixed - np.log((1 - mix) * pm + mix * pc).sum(axis=0)) / len(p_model)
    return mix, nll


def tune_cache(traces: Sequence[DevTrace]) -> CacheConfig | None:
    """The cache settings that minimize the development perplexity of ``traces``; None when the best
    cache lowers it by less than :data:`MIN_GAIN` (the file then carries no cache)."""
    if not traces:
        return None
    p_model = np.exp(np.concatenate([t.model_logprobs for t in traces]))
    has_cache = np.concatenate([np.arange(len(t.targets)) > 0 for t in traces])
    base = float(-np.log(p_model).mean())
    longest = max(len(t.targets) for t in traces)
    windows = [w for w in WINDOWS if w < longest] + [next((w for w in WINDOWS if w >= longest), WINDOWS[-1])]
    mixes, nlls = _best_mix(p_model, _cache_target_probs(traces, windows), has_cache)
    pairs = [(theta, window) for theta in THETAS for window in windows]  # the columns, in order
    grid = [(*pair, float(m), float(n)) for pair, m, n in zip(pairs, mixes, nlls, strict=True)]
    best_nll = min(g[3] for g in grid)
    per_window = {w: min((g for g in grid if g[1] == w), key=lambda g: g[3]) for w in windows}
    theta, window, mix, nll = next(
        per_window[w] for w in windows if per_window[w][3] <= best_nll + math.log1p(WINDOW_TOLERANCE)
    )
    tuning = {
        "documents": len(traces),
        "words": len(p_model),
        "perplexity_without": round(math.exp(base), 3),
        "perplexity_with": round(math.exp(nll), 3),
        "thetas": list(THETAS),
        "windows": windows,
        "window_tolerance": WINDOW_TOLERANCE,
        "split": "training documents (development sample)",
    }
    logger.info(
        "cache tuned on %d training documents (%d words): theta %.3g, mix %.3f, window %d; "
        "perplexity %.2f without, %.2f with",
        len(traces),
        len(p_model),
        theta,
        mix,
        window,
        math.exp(base),
        math.exp(nll),
    )
    if nll > base + math.log1p(-MIN_GAIN):
        logger.info("the cache gains under %.0f%% on the development documents: not stored", 100 * MIN_GAIN)
        return None
    return CacheConfig(theta=theta, mix=round(mix, 4), window=window, tuning=tuning)
