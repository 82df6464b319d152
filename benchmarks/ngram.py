"""Count-based baselines for the quality report: unigram frequencies and an interpolated Kneser-Ney
trigram model, over the same token ids as the neural models.

Both models read the training stream ``<eod> doc <eod> doc ... <eod>`` and give, for every position of
a stream, a full probability distribution over the vocabulary, so perplexity, accuracy and top-5
accuracy are computed exactly as for the LSTM.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Iterator

import numpy as np

__all__ = ["KneserNeyTrigram", "Unigram", "score_stream"]


class Unigram:
    """P(w) = (count(w) + 1) / (N + V): word frequencies with add-one smoothing."""

    def __init__(self, stream: np.ndarray, vocab_size: int) -> None:
        counts = np.bincount(stream[1:], minlength=vocab_size).astype(np.float64) + 1.0
        self.probs = counts / counts.sum()

    def distributions(self, stream: np.ndarray) -> Iterator[np.ndarray]:
        """The distribution predicting ``stream[i + 1]``, for each i."""
        for _ in range(len(stream) - 1):
            yield self.probs


class KneserNeyTrigram:
    """Interpolated Kneser-Ney (Chen & Goodman 1998) of order 3, with one discount per order estimated
    as D = n1 / (n1 + 2 n2) from the counts of counts.

    P(w | u v) = max(c(uvw) - D3, 0) / c(uv.) + D3 N1+(uv.) / c(uv.) P2(w | v)
    P2(w | v)  = max(N1+(.vw) - D2, 0) / N1+(.v.) + D2 N1+(v.) / N1+(.v.) P1(w)    (continuation counts)
    P1(w)      = max(N1+(.w) - D1, 0) / N1+(..) + D1 |{w: N1+(.w) > 0}| / N1+(..) / V
    Contexts never seen fall back to the lower order entirely.
    """

    def __init__(self, stream: np.ndarray, vocab_size: int) -> None:
        self.vocab_size = vocab_size
        tokens = stream.tolist()
        trigrams = Counter(zip(tokens, tokens[1:], tokens[2:], strict=False))
        bigram_types = Counter((v, w) for (_, v, w) in trigrams)  # N1+(. v w): distinct left words
        unigram_types = Counter(w for (_, w) in set(itertools.pairwise(tokens)))  # N1+(. w)
        self.d3 = _discount(trigrams.values())
        self.d2 = _discount(bigram_types.values())
        self.d1 = _discount(unigram_types.values())

        # Order 1: continuation unigram, interpolated with the uniform distribution.
        cont = np.zeros(vocab_size)
        for w, n in unigram_types.items():
            cont[w] = n
        total = cont.sum()
        self.p1 = np.maximum(cont - self.d1, 0) / total + self.d1 * (cont > 0).sum() / total / vocab_size

        # Order 2 from continuation counts: per context v, its sparse next-word counts.
        self.bigram: dict[int, tuple[np.ndarray, np.ndarray, float, float]] = {}
        by_context: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for (v, w), n in bigram_types.items():
            by_context[v].append((w, n))
        for v, pairs in by_context.items():
            words = np.array([w for w, _ in pairs])
            counts = np.array([n for _, n in pairs], dtype=np.float64)
            denominator = counts.sum()
            self.bigram[v] = (
                words,
                np.maximum(counts - self.d2, 0) / denominator,
                self.d2 * len(pairs) / denominator,
                denominator,
            )

        # Order 3 from raw counts.
        self.trigram: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, float]] = {}
        by_pair: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
        for (u, v, w), n in trigrams.items():
            by_pair[(u, v)].append((w, n))
        for pair, pairs in by_pair.items():
            words = np.array([w for w, _ in pairs])
            counts = np.array([n for _, n in pairs], dtype=np.float64)
            denominator = counts.sum()
            self.trigram[pair] = (
                words,
                np.maximum(counts - self.d3, 0) / denominator,
                self.d3 * len(pairs) / denominator,
            )

    def p2(self, v: int) -> np.ndarray:
        if v not in self.bigram:
            return self.p1
        words, discounted, backoff, _ = self.bigram[v]
        probs = backoff * self.p1
        probs[words] += discounted
        return probs

    def distributions(self, stream: np.ndarray) -> Iterator[np.ndarray]:
        """The distribution predicting ``stream[i + 1]`` from ``stream[i - 1], stream[i]``, for each i."""
        tokens = stream.tolist()
        for i in range(len(tokens) - 1):
            v = tokens[i]
            lower = self.p2(v)
            entry = self.trigram.get((tokens[i - 1], v)) if i > 0 else None
            if entry is None:
                yield lower
                continue
            words, discounted, backoff = entry
            probs = backoff * lower
            probs[words] += discounted
            yield probs


def _discount(counts) -> float:
    histogram = Counter(counts)
    n1, n2 = histogram.get(1, 0), histogram.get(2, 0)
    return n1 / (n1 + 2 * n2) if n1 + n2 else 0.5


def score_stream(model, stream: np.ndarray) -> dict[str, float]:
    """Per-word perplexity, accuracy and top-5 accuracy of ``model`` predicting ``stream[1:]``."""
    nll = correct = top5 = 0.0
    n = len(stream) - 1
    for probs, target in zip(model.distributions(stream), stream[1:].tolist(), strict=True):
        p = probs[target]
        nll -= math.log(p)
        rank = int((probs > p).sum())
        correct += rank == 0
        top5 += rank < 5
    return {"perplexity": math.exp(nll / n), "accuracy": correct / n, "top5_accuracy": top5 / n, "words": n}
