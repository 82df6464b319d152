"""Log-probabilities of given text under a model: scores, next-word suggestions, and the basis of
evaluation."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from .logits import log_softmax, softmax
from .step import PROMPT_CHUNK, StepModel, feed_chunks

__all__ = ["TextScore", "WordScore", "next_words", "score_text", "token_logprobs"]


@dataclass(frozen=True)
class WordScore:
    """One word of a scored text."""

    word: str  # the token as the tokenizer sees it (lowercased, for a lowercasing model)
    logprob: float  # natural log of its probability given every word before it
    unknown: bool  # outside the vocabulary: scored as the unknown token


@dataclass(frozen=True)
class TextScore:
    """The result of :meth:`NextWordModel.score`."""

    total_logprob: float
    perplexity: float  # exp(-total_logprob / words): per-word perplexity
    words: list[WordScore]


def prompt_ids(model: StepModel, text: str) -> list[int]:
    """Token ids a model reads for ``text``: start of a document, then the text's tokens."""
    if not isinstance(text, str):
        raise ValueError(f"prompt must be a string, got {type(text).__name__}")
    return [model.tokenizer.eod_id, *model.tokenizer.encode(text)]


def token_logprobs(
    model: StepModel, ids: np.ndarray, chunk: int = PROMPT_CHUNK
) -> tuple[np.ndarray, np.ndarray]:
    """For ``ids`` (T,), the log-probability of each of ``ids[1:]`` given all ids before it, and its rank
    among the model's predictions (0 = the most likely). The state starts at zero and is carried through
    the whole sequence in chunks of ``chunk`` tokens."""
    logprobs, ranks = [], []
    inputs, targets = ids[None, :-1], ids[1:]  # (1, T-1), (T-1,)
    chunks = feed_chunks(model, inputs, model.initial_state(1), logits_from=0, chunk=chunk)
    for start, (logits, _) in zip(range(0, len(targets), chunk), chunks, strict=True):
        wanted = targets[start : start + chunk]  # (C,)
        scores = log_softmax(logits[0])  # (C, V)
        target_scores = scores[np.arange(len(wanted)), wanted]
        logprobs.append(target_scores)
        ranks.append((scores > target_scores[:, None]).sum(axis=-1))  # how many beat the target
    return np.concatenate(logprobs), np.concatenate(ranks)


def score_text(model: StepModel, text: str) -> TextScore:
    """How likely ``model`` finds ``text`` as the start of a document (see :meth:`NextWordModel.score`)."""
    ids = prompt_ids(model, text)
    if len(ids) < 2:
        raise ValueError("text has no words to score")
    logprobs, _ = token_logprobs(model, np.asarray(ids, dtype=np.int64))
    tok = model.tokenizer
    words = [
        WordScore(tok.token_of(i), float(lp), i == tok.unk_id)
        for i, lp in zip(ids[1:], logprobs, strict=True)
    ]
    total = float(logprobs.sum())
    return TextScore(total_logprob=total, perplexity=perplexity(-total, len(words)), words=words)


def perplexity(nll: float, words: int) -> float:
    """``exp(nll / words)``; ``inf`` where that overflows a float (a model that finds the text all but
    impossible)."""
    mean = nll / words
    return math.exp(mean) if mean < 709.0 else math.inf


def next_words(model: StepModel, prompt: str, k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` most likely next words after ``prompt`` with their probabilities, most likely first;
    the special tokens are never listed (see :meth:`NextWordModel.next_words`)."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= model.vocab_size:
        raise ValueError(f"k must be an integer in 1..{model.vocab_size}, got {k!r}")
    ids = np.asarray([prompt_ids(model, prompt)])
    *_, (logits, _) = feed_chunks(model, ids, model.initial_state(1), logits_from=-1)
    probs = softmax(logits[0, -1])
    probs[list(model.tokenizer.special_ids)] = -1.0  # never listed
    best = np.argsort(-probs, kind="stable")[:k]
    return [(model.tokenizer.token_of(int(i)), float(probs[i])) for i in best if probs[i] >= 0]
