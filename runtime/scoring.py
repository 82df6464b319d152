"""Log-probabilities of given text under a model: the basis of scoring and evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .model import NextWordModel

__all__ = ["TextScore", "WordScore", "log_softmax", "softmax", "token_logprobs"]

PROMPT_CHUNK = 256  # tokens per session call when a whole text is fed: bounds memory for any length


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


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-probabilities over the last axis, computed in float64."""
    scores = np.asarray(logits, dtype=np.float64)
    peak = scores.max(axis=-1, keepdims=True)
    return scores - (peak + np.log(np.exp(scores - peak).sum(axis=-1, keepdims=True)))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities over the last axis, computed in float64."""
    return np.exp(log_softmax(logits))


def token_logprobs(
    model: NextWordModel, ids: np.ndarray, chunk: int = PROMPT_CHUNK
) -> tuple[np.ndarray, np.ndarray]:
    """For ``ids`` (T,), the log-probability of each of ``ids[1:]`` given all ids before it, and its rank
    among the model's predictions (0 = the most likely). The state starts at zero and is carried through
    the whole sequence in chunks of ``chunk`` tokens."""
    logprobs, ranks = [], []
    state = model.initial_state(1)
    for start in range(0, len(ids) - 1, chunk):
        targets = ids[start + 1 : start + 1 + chunk]  # (T,)
        logits, state = model.forward(ids[None, start : start + len(targets)], state)  # (1, T, V)
        scores = log_softmax(logits[0])  # (T, V)
        target_scores = scores[np.arange(len(targets)), targets]
        logprobs.append(target_scores)
        ranks.append((scores > target_scores[:, None]).sum(axis=-1))  # how many beat the target
    return np.concatenate(logprobs), np.concatenate(ranks)
