"""Per-word perplexity and next-word accuracy of a model over whole documents."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .scoring import perplexity, token_logprobs
from .step import StepModel

__all__ = ["Evaluation", "evaluate", "evaluate_ids"]


@dataclass(frozen=True)
class Evaluation:
    """Scores over every predicted token of every document, the final end-of-document included."""

    documents: int
    words: int  # predicted tokens
    perplexity: float  # exp(mean negative log-likelihood per token)
    accuracy: float  # share of tokens that were the most likely prediction
    top5_accuracy: float  # share of tokens among the 5 most likely predictions
    unknown_rate: float  # share of tokens outside the vocabulary

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(model: StepModel, documents: Iterable[str]) -> Evaluation:
    """Score ``model`` on ``documents``.

    Each document is read as the model sees text during training, ``<eod> words... <eod>``: the state
    starts at zero, is carried through the whole document in chunks, and every token after the first is
    predicted from all the tokens before it.
    """
    tok = model.tokenizer
    return evaluate_ids(model, ([tok.eod_id, *tok.encode(document), tok.eod_id] for document in documents))


def evaluate_ids(model: StepModel, documents: Iterable[Sequence[int]]) -> Evaluation:
    """:func:`evaluate` on documents already encoded, each ``<eod> ids... <eod>`` (as in ``val.ids``)."""
    tok = model.tokenizer
    n_docs = n_words = n_correct = n_top5 = n_unknown = 0
    total_nll = 0.0
    for document in documents:
        ids = np.asarray(document, dtype=np.int64)
        logprobs, ranks = token_logprobs(model, ids)
        n_docs += 1
        total_nll -= float(logprobs.sum())
        n_correct += int((ranks == 0).sum())
        n_top5 += int((ranks < 5).sum())
        n_unknown += int((ids[1:] == tok.unk_id).sum())
        n_words += len(ranks)
    if n_words == 0:
        raise ValueError("no documents to evaluate")
    return Evaluation(
        documents=n_docs,
        words=n_words,
        perplexity=perplexity(total_nll, n_words),
        accuracy=n_correct / n_words,
        top5_accuracy=n_top5 / n_words,
        unknown_rate=n_unknown / n_words,
    )
