"""Count-based baselines for the quality report, over the same token ids as the neural models:
unigram frequencies, an interpolated Kneser-Ney trigram (one discount per order), interpolated
*modified* Kneser-Ney up to 5-grams (:class:`ModifiedKneserNey`), and a unigram cache over the
document's earlier words that mixes with any of them (:class:`UnigramCache`).

Every model reads the training stream ``<eod> doc <eod> doc ... <eod>`` and gives, for every position of
a stream, a full probability distribution over the vocabulary, so perplexity, accuracy and top-5
accuracy are computed exactly as for the LSTM.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Iterator

import numpy as np

from nextword.runtime.tokenizer import EOD, SPECIAL_TOKENS

EOD_ID = SPECIAL_TOKENS.index(EOD)  # the end-of-document id of every nextword vocabulary

__all__ = [
    "KneserNeyTrigram",
    "ModifiedKneserNey",
    "Unigram",
    "UnigramCache",
    "modified_discounts",
    "score_stream",
    "tune_cache",
]


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


class ModifiedKneserNey:
    """Interpolated modified Kneser-Ney of any order (Chen & Goodman 1998, section 3): three discounts
    per order, D1, D2 and D3+, for n-grams seen once, twice, and three times or more, estimated from
    that order's counts of counts n1..n4 (Y = n1 / (n1 + 2 n2), Dk = k - (k + 1) Y n_{k+1} / n_k).

        p_k(w | h) = max(a(h w) - D(a(h w)), 0) / a(h .) + gamma(h) p_{k-1}(w | h')
        gamma(h)   = (D1 N1(h .) + D2 N2(h .) + D3+ N3+(h .)) / a(h .)

    ``a`` is the raw count at the highest order and the continuation count (distinct words to the left)
    below it; order 1 interpolates with the uniform distribution, and a context never seen leaves the
    lower order as it is. Contexts never reach back across a document start: an n-gram may hold
    ``<eod>`` only first (the document start) or last (its end), and an n-gram that starts with
    ``<eod>`` keeps its raw count at the lower orders (nothing can stand to its left).

    Tables are sorted int64 keys (an n-gram's key is its prefix's index times the vocabulary size plus
    its last word), so memory is a few arrays the size of the distinct n-grams.
    """

    def __init__(self, stream: np.ndarray, vocab_size: int, order: int = 5, eod_id: int = EOD_ID) -> None:
        self.vocab_size, self.order, self.eod = vocab_size, order, eod_id
        tokens = np.asarray(stream, dtype=np.int64)
        self.keys: list[np.ndarray] = []  # per order k (index k-1): sorted keys of the k-grams seen
        ids: list[np.ndarray] = []  # per order: each position's k-gram index (-1: crosses a start)...
        raw: list[np.ndarray] = []  # ...and the raw counts
        for k in range(1, order + 1):
            gram = self._positions(tokens, ids[-1] if ids else None, k)
            valid = gram >= 0
            keys, inverse, counts = np.unique(gram[valid], return_inverse=True, return_counts=True)
            index = np.full(len(tokens), -1, dtype=np.int64)
            index[valid] = inverse.reshape(-1)
            self.keys.append(keys)
            ids.append(index)
            raw.append(counts.astype(np.float64))
        self.tables = []  # per order: (start, words, discounted, gamma) over contexts
        for k in range(1, order + 1):
            adjusted = raw[k - 1] if k == order else self._continuation(k, ids, raw[k - 1])
            self.tables.append(self._table(k, adjusted))

    def _positions(self, tokens: np.ndarray, prefix: np.ndarray | None, k: int) -> np.ndarray:
        """Key of the k-gram ending at each position (-1 where it would reach across a document start
        or off the stream's beginning)."""
        if k == 1:
            return tokens.copy()
        gram = np.full(len(tokens), -1, dtype=np.int64)
        assert prefix is not None  # the (k-1)-grams' keys, given for every k > 1
        before = prefix[:-1]  # the (k-1)-gram ending one position earlier
        ok = before >= 0
        if k > 2:  # the prefix's last word is interior in the k-gram: it may not be a document start
            ok &= tokens[:-1] != self.eod
        gram[1:][ok] = before[ok] * self.vocab_size + tokens[1:][ok]
        return gram

    def _continuation(self, k: int, ids: list[np.ndarray], raw: np.ndarray) -> np.ndarray:
        """N1+(. g) for every k-gram g: how many distinct words precede it (as k+1-grams seen); raw
        counts for the k-grams that start a document."""
        longer = ids[k]  # index of the (k+1)-gram ending at each position
        seen = np.unique(longer[longer >= 0])  # distinct (k+1)-grams
        suffix = self._suffix_index(k + 1, seen)  # the k-gram each one ends with
        continuation = np.bincount(suffix, minlength=len(raw)).astype(np.float64)
        if k == 1:
            return continuation
        starts = self._first_word(k) == self.eod
        return np.where(starts, raw, continuation)

    def _suffix_index(self, k: int, grams: np.ndarray) -> np.ndarray:
        """For k-gram indices ``grams``, the index of the (k-1)-gram made of their last k-1 words."""
        words = self._words(k, grams)  # (n, k)
        index = np.searchsorted(self.keys[0], words[:, 1])
        for j in range(2, k):
            index = np.searchsorted(self.keys[j - 1], index * self.vocab_size + words[:, j])
        return index

    def _words(self, k: int, grams: np.ndarray) -> np.ndarray:
        """The k words of each k-gram index, (n, k)."""
        out = np.empty((len(grams), k), dtype=np.int64)
        current = grams
        for j in range(k, 0, -1):
            key = self.keys[j - 1][current]
            out[:, j - 1] = key % self.vocab_size if j > 1 else key
            current = key // self.vocab_size
        return out

    def _first_word(self, k: int) -> np.ndarray:
        return self._words(k, np.arange(len(self.keys[k - 1])))[:, 0]

    def _table(self, k: int, adjusted: np.ndarray) -> tuple:
        """Per context of order k: its entries (CSR over contexts), discounted values and gamma."""
        discount = np.array([0.0, *modified_discounts(adjusted)])[np.minimum(adjusted.astype(np.int64), 3)]
        keys = self.keys[k - 1]
        context = keys // self.vocab_size if k > 1 else np.zeros(len(keys), dtype=np.int64)
        words = keys % self.vocab_size if k > 1 else keys
        n_contexts = len(self.keys[k - 2]) if k > 1 else 1
        total = np.bincount(context, weights=adjusted, minlength=n_contexts)
        mass = np.bincount(context, weights=discount, minlength=n_contexts)
        safe = np.maximum(total, 1e-300)
        start = np.concatenate([[0], np.cumsum(np.bincount(context, minlength=n_contexts))])
        return start, words, np.maximum(adjusted - discount, 0) / safe[context], mass / safe, total > 0

    def distributions(self, stream: np.ndarray) -> Iterator[np.ndarray]:
        """The distribution predicting ``stream[i + 1]`` from the words before it in its document."""
        tokens = np.asarray(stream, dtype=np.int64)
        start, words, discounted, gamma, _ = self.tables[0]
        base = gamma[0] / self.vocab_size + np.zeros(self.vocab_size)
        base[words] += discounted
        at = np.searchsorted(self.keys[0], tokens)
        known = (at < len(self.keys[0])) & (self.keys[0][np.minimum(at, len(self.keys[0]) - 1)] == tokens)
        contexts = [np.where(known, at, -1)]  # per order k-1: the (k-1)-gram ending at each position
        for k in range(2, self.order):
            previous = contexts[-1]
            found = np.full(len(tokens), -1, dtype=np.int64)
            ok = np.zeros(len(tokens), dtype=bool)
            ok[1:] = (previous[:-1] >= 0) & (tokens[:-1] != self.eod if k > 2 else True)
            key = np.where(ok, np.roll(previous, 1) * self.vocab_size + tokens, -1)
            at = np.searchsorted(self.keys[k - 1], key)
            hit = ok & (at < len(self.keys[k - 1]))
            hit[hit] = self.keys[k - 1][at[hit]] == key[hit]
            found[hit] = at[hit]
            contexts.append(found)
        for i in range(len(tokens) - 1):
            probs = base.copy()
            for k in range(2, self.order + 1):
                context = contexts[k - 2][i]
                if context < 0:
                    break
                start, words, discounted, gamma, seen = self.tables[k - 1]
                if context >= len(gamma) or not seen[context]:
                    break
                lo, hi = start[context], start[context + 1]
                probs *= gamma[context]
                probs[words[lo:hi]] += discounted[lo:hi]
            yield probs


def modified_discounts(counts: np.ndarray) -> tuple[float, float, float]:
    """D1, D2, D3+ from the counts of counts n1..n4 (n_k: how many n-grams were seen exactly k times):
    Y = n1 / (n1 + 2 n2), D_k = k - (k + 1) Y n_{k+1} / n_k (Chen & Goodman 1998, eq. 26)."""
    histogram = np.bincount(np.minimum(np.asarray(counts).astype(np.int64), 5), minlength=6)
    n1, n2, n3, n4 = (max(int(histogram[i]), 1) for i in (1, 2, 3, 4))
    y = n1 / (n1 + 2 * n2)
    discounts = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
    # Small or dense data can push an estimate out of (0, k]; at least 0.1 keeps mass for the lower
    # order, so no word ever gets probability 0.
    d1, d2, d3 = (float(np.clip(d, 0.1, k)) for k, d in enumerate(discounts, 1))
    return d1, d2, d3


class UnigramCache:
    """A count-based model mixed with a cache of its document's earlier words (Kuhn & De Mori 1990):
    ``p(w) = (1 - mix) p_model(w) + mix c(w) / n``, where ``c`` counts ``w`` among the last ``window``
    words of the document so far (``n`` of them; the model alone at a document's first word).

    The count-based counterpart of the LSTM's continuous cache: an n-gram model has no state to compare,
    so every earlier word weighs the same.
    """

    def __init__(self, model, mix: float, window: int, eod_id: int = EOD_ID) -> None:
        self.model, self.mix, self.window, self.eod = model, mix, window, eod_id

    def distributions(self, stream: np.ndarray) -> Iterator[np.ndarray]:
        tokens = np.asarray(stream).tolist()
        counts = np.zeros(self.model.vocab_size)
        recent: list[int] = []
        for i, probs in enumerate(self.model.distributions(stream)):
            token = tokens[i]
            if token == self.eod:
                counts[recent] = 0.0
                recent = []
            else:
                recent.append(token)
                counts[token] += 1
                if len(recent) > self.window:
                    counts[recent.pop(0)] -= 1
            if recent:
                probs = (1 - self.mix) * probs + self.mix * counts / len(recent)
            yield probs


def tune_cache(model, stream: np.ndarray, windows=(25, 50, 100, 200, 400)) -> tuple[float, int, float]:
    """The (mix, window) of :class:`UnigramCache` that minimize the perplexity of ``stream`` (a
    development stream the model was not fitted on), and that perplexity. The mix is searched on a
    grid of 0.01 steps per window: the target's model and cache probabilities are computed once."""
    tokens = np.asarray(stream).tolist()
    p_model = np.array([probs[t] for probs, t in zip(model.distributions(stream), tokens[1:], strict=False)])
    best = (0.0, windows[0], math.inf)
    mixes = np.arange(0.01, 0.6, 0.01)
    for window in windows:
        p_cache, has = np.zeros(len(p_model)), np.zeros(len(p_model), dtype=bool)
        recent: list[int] = []
        for i in range(len(p_model)):
            if tokens[i] == EOD_ID:
                recent = []
            else:
                recent = [*recent[-(window - 1) :], tokens[i]] if window > 1 else [tokens[i]]
            if recent:
                has[i], p_cache[i] = True, recent.count(tokens[i + 1]) / len(recent)
        mixed = np.where(
            has[:, None], (1 - mixes) * p_model[:, None] + mixes * p_cache[:, None], p_model[:, None]
        )
        nll = -np.log(mixed).mean(axis=0)
        j = int(nll.argmin())
        if nll[j] < math.log(best[2]):
            best = (float(mixes[j]), window, math.exp(nll[j]))
    return best


def score_stream(model, stream: np.ndarray) -> dict[str, float]:
    """Per-word perplexity, accuracy and top-5 accuracy of ``model`` predicting ``stream[1:]``."""
    nll = correct = top5 = 0.0
    n = len(stream) - 1
    for probs, target in zip(model.distributions(stream), stream[1:].tolist(), strict=True):
        p = probs[target]
        nll -= math.log(p)
        rank = int((probs > p).sum() + (probs[:target] == p).sum())  # ties: the lower id first, as the LSTM's
        correct += rank == 0
        top5 += rank < 5
    return {"perplexity": math.exp(nll / n), "accuracy": correct / n, "top5_accuracy": top5 / n, "words": n}
