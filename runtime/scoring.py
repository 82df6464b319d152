"""Log-probabilities of given text under a model: scores, next-word suggestions, and the basis of
evaluation."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import cast

import numpy as np

from .cache import CacheConfig, ContinuousCache, resolve_cache
from .checks import shown, wrong_type
from .errors import WrongTypeError
from .logits import log_softmax, softmax
from .step import PROMPT_CHUNK, StepModel, feed_chunks
from .stepper import stepper_for

__all__ = [
    "CACHE_BATCH",
    "TextScore",
    "WordScore",
    "cached_document_scores",
    "next_words",
    "ranks_of",
    "score_text",
    "token_logprobs",
]

CACHE_BATCH = 32  # documents stepped together when a cache needs every position's state


@dataclass(frozen=True)
class WordScore:
    """One word of a scored text. ``token`` is the word as the tokenizer read it from the text: normalized
    (lowercased, for a lowercasing model), not looked up in the vocabulary. ``word`` is the vocabulary
    token the model scored: ``token`` itself, or ``"<unk>"`` for a word outside the vocabulary. These
    are nextword-web's ``word`` and ``token``; the server's ``/v1/score`` and ``nextword score --json``
    give the word as read, ``token``, under the name ``"word"``.
    """

    word: str  # the vocabulary token scored: the word as read, or "<unk>" for one outside the vocabulary
    logprob: float  # natural log of its probability given every word before it
    unknown: bool  # outside the vocabulary: scored as the unknown token, "<unk>"
    # The word as read: the tokenizer's token before the vocabulary lookup. Last, with a default, so that
    # code that builds a WordScore(word, logprob, unknown) still runs: left out, it is ``word``.
    token: str = ""

    def __post_init__(self) -> None:
        if not self.token:  # left out (a tokenizer never reads an empty token)
            object.__setattr__(self, "token", self.word)


@dataclass(frozen=True)
class TextScore:
    """The result of :meth:`NextWordModel.score`."""

    total_logprob: float
    perplexity: float  # exp(-total_logprob / words): per-word perplexity
    words: list[WordScore]

    def __repr__(self) -> str:
        """Short, as a notebook shows it: the first words' scores and how many more (:attr:`words` holds
        them all; a 2,000-word text's whole repr ran to 177,000 characters)."""
        shown = self.words if len(self.words) <= _SHOWN_WORDS else self.words[:3]
        words = ", ".join(map(repr, shown))
        if len(shown) < len(self.words):
            words += f", \u2026 {len(self.words) - len(shown):,} more"
        scores = f"total_logprob={self.total_logprob!r}, perplexity={self.perplexity!r}"
        return f"TextScore({scores}, words=[{words}])"


_SHOWN_WORDS = 8  # a TextScore's repr shows every word up to this many, else the first three


def prompt_ids(model: StepModel, text: str, name: str = "prompt") -> list[int]:
    """Token ids a model reads for ``text``: start of a document, then the text's tokens. ``name``: the
    caller's name for ``text`` in the refusal of one that is not a string."""
    _check_text(text, name)
    return [model.tokenizer.eod_id, *model.tokenizer.encode(text)]


def _check_text(text: str, name: str) -> None:
    """Refuse a ``text`` that is not a string, calling it ``name``."""
    if not isinstance(text, str):
        raise WrongTypeError(f"{name} must be a string, got {type(text).__name__}")


def token_logprobs(
    model: StepModel, ids: np.ndarray, chunk: int = PROMPT_CHUNK, cache: CacheConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """For ``ids`` (T,), the log-probability of each of ``ids[1:]`` given all ids before it, and its rank
    among the model's predictions (0 = the most likely). The state starts at zero and is carried through
    the whole sequence in chunks of ``chunk`` tokens; with ``cache``, one token at a time, the model's
    distribution mixed with the continuous cache (:mod:`.cache`)."""
    if cache is not None:
        ((_, cached_logprobs, cached_ranks),) = cached_document_scores(model, [ids], cache, batch=1)
        return cached_logprobs, cached_ranks
    logprobs, ranks = [], []
    inputs, targets = ids[None, :-1], ids[1:]  # (1, T-1), (T-1,)
    chunks = feed_chunks(model, inputs, model.initial_state(1), logits_from=0, chunk=chunk)
    for start, (logits, _) in zip(range(0, len(targets), chunk), chunks, strict=True):
        wanted = targets[start : start + chunk]  # (C,)
        scores = log_softmax(logits[0])  # (C, V)
        logprobs.append(scores[np.arange(len(wanted)), wanted])
        ranks.append(ranks_of(scores, wanted))
    return np.concatenate(logprobs), np.concatenate(ranks)


def ranks_of(scores: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """The rank (0: the most likely) of each row's ``wanted`` id among that row of ``scores`` (N, V):
    the ids scored higher, and those scored the same with a lower id, as ``argmax`` and greedy
    decoding break ties. Counting only the higher ones put a tied word first: a model whose scores are
    all equal had every word right."""
    wanted = np.asarray(wanted)
    target = scores[np.arange(len(wanted)), wanted][:, None]
    tied_before = (scores == target) & (np.arange(scores.shape[-1]) < wanted[:, None])
    return cast(np.ndarray, (scores > target).sum(axis=-1) + tied_before.sum(axis=-1))


def cached_document_scores(
    model: StepModel, documents: Iterable[np.ndarray], cache: CacheConfig, batch: int = CACHE_BATCH
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """:func:`token_logprobs` with a continuous cache for each of ``documents`` (each (T,) ids), as
    ``(ids, logprobs, ranks)`` in the order documents finish.

    The cache needs the state after every position, so documents are fed one token per session call;
    up to ``batch`` documents run side by side, and a finished document's row (state and cache) is
    emptied and handed to the next document, so the session calls stay few and nothing is copied.
    """
    source = iter(documents)
    stepper = stepper_for(model)
    state = model.initial_state(batch)
    rows = ContinuousCache(cache, batch, state[-2].shape[1])
    docs: list[np.ndarray | None] = [None] * batch  # the document of each row; None: the row is free
    scores: list[tuple[np.ndarray, np.ndarray]] = [(np.zeros(0), np.zeros(0, dtype=np.int64))] * batch
    pos = np.zeros(batch, dtype=np.int64)  # per row: position of the token fed next
    exhausted = False
    while True:
        for j in range(batch):  # free rows take the next documents
            while docs[j] is None and not exhausted:
                ids = next(source, None)
                if ids is None:
                    exhausted = True
                    break
                ids = np.asarray(ids, dtype=np.int64)
                if len(ids) < 2:  # nothing to predict
                    yield ids, np.zeros(0), np.zeros(0, dtype=np.int64)
                    continue
                docs[j], pos[j] = ids, 0
                scores[j] = (np.empty(len(ids) - 1), np.empty(len(ids) - 1, dtype=np.int64))
                for s in state:
                    s[j] = 0.0
                rows.reset([j])
        live = [j for j in range(batch) if docs[j] is not None]
        if not live:
            return
        if len(live) < len(docs):  # the last documents: drop the free rows for good
            docs, scores, pos = [docs[j] for j in live], [scores[j] for j in live], pos[live]
            state = [s[live] for s in state]
            rows.take(live)
            batch = len(live)
        active = cast(list[np.ndarray], docs)  # every row holds a document from here to the step's end
        fed = np.array([d[p] for d, p in zip(active, pos.tolist(), strict=True)])  # (A,)
        wanted = np.array([d[p + 1] for d, p in zip(active, pos.tolist(), strict=True)])  # (A,)
        logits, state = stepper.step(fed, state)  # (A, V)
        rows.observe(fed, state[-2])
        logp = log_softmax(logits)  # (A, V) float64
        rows.mix_logprobs(logp)
        target = logp[np.arange(len(active)), wanted]
        ranks = ranks_of(logp, wanted)
        for j, p in enumerate(pos.tolist()):
            scores[j][0][p], scores[j][1][p] = target[j], ranks[j]
        pos += 1
        for j, d in enumerate(active):
            if pos[j] == len(d) - 1:
                yield d, *scores[j]
                docs[j] = None


def _cached_last_logprobs(model: StepModel, ids: np.ndarray, cache: CacheConfig) -> np.ndarray:
    """Log-probabilities (V,) of the token after ``ids``, fed one at a time, with the cache mixed in."""
    state = model.initial_state(1)
    rows = ContinuousCache(cache, 1, state[-2].shape[1])
    for token in ids.tolist():
        logits, state = model.forward(np.array([[token]], dtype=np.int64), state)
        rows.observe(np.array([token]), state[-2])
    logp = log_softmax(logits[:, -1])  # (1, V)
    rows.mix_logprobs(logp)
    return logp[0]


def score_text(model: StepModel, text: str, cache: bool | CacheConfig | None = None) -> TextScore:
    """How likely ``model`` finds ``text`` as the start of a document (see :meth:`NextWordModel.score`)."""
    _check_text(text, "text")
    tok = model.tokenizer
    read = tok.tokenize(text)  # the words as read, before the vocabulary lookup
    if not read:
        raise ValueError(
            "text has no words to score (it is empty, or holds only spaces and marks the tokenizer drops): "
            "give a text with at least one word"
        )
    ids = [tok.eod_id, *map(tok.id_of, read)]  # as Tokenizer.encode reads the text
    settings = resolve_cache(model, cache)
    logprobs, _ = token_logprobs(model, np.asarray(ids, dtype=np.int64), cache=settings)
    words = [
        WordScore(tok.token_of(i), float(lp), i == tok.unk_id, token)
        for i, lp, token in zip(ids[1:], logprobs, read, strict=True)
    ]
    total = float(logprobs.sum())
    return TextScore(total_logprob=total, perplexity=perplexity(-total, len(words)), words=words)


def perplexity(nll: float, words: int) -> float:
    """``exp(nll / words)``; ``inf`` where that overflows a float (a model that finds the text all but
    impossible); NaN where the log-likelihood is NaN (once shown as an overflow)."""
    mean = nll / words
    return math.exp(mean) if mean < 709.0 or math.isnan(mean) else math.inf


def next_words(
    model: StepModel, prompt: str, k: int = 5, cache: bool | CacheConfig | None = None
) -> list[tuple[str, float]]:
    """The ``k`` most likely next words after ``prompt`` with their probabilities, most likely first;
    the special tokens are never listed (see :meth:`NextWordModel.next_words`)."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise wrong_type("k", f"an integer in 1..{model.vocab_size}", k)
    if not 1 <= k <= model.vocab_size:
        raise ValueError(f"k must be an integer in 1..{model.vocab_size}, got {shown(k)}")
    ids = np.asarray([prompt_ids(model, prompt)])
    settings = resolve_cache(model, cache)
    if settings is not None:
        probs = np.exp(_cached_last_logprobs(model, ids[0], settings))
    else:
        *_, (logits, _) = feed_chunks(model, ids, model.initial_state(1), logits_from=-1)
        probs = softmax(logits[0, -1])
    probs[list(model.tokenizer.special_ids)] = -1.0  # never listed
    best = np.argsort(-probs, kind="stable")[:k]
    return [(model.tokenizer.token_of(int(i)), float(probs[i])) for i in best if probs[i] >= 0]
