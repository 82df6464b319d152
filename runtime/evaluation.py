"""Per-word perplexity and next-word accuracy of a model over whole documents."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .cache import CacheConfig, resolve_cache
from .checks import check_iterable
from .errors import WrongTypeError
from .scoring import cached_document_scores, perplexity, token_logprobs
from .step import StepModel, check_model, prompt_ids_array

__all__ = ["Evaluation", "evaluate", "evaluate_ids"]


@dataclass(frozen=True)
class Evaluation:
    """Scores over every predicted token of every document, the final end-of-document included."""

    documents: int
    words: int  # predicted tokens
    perplexity: float  # exp(mean negative log-likelihood per token)
    accuracy: float  # share of tokens that were the most likely prediction (a tie: the lower id first)
    top5_accuracy: float  # share of tokens among the 5 most likely predictions
    unknown_rate: float  # share of tokens outside the vocabulary

    def to_dict(self) -> dict[str, Any]:
        """The scores as a dict of plain values, by field name (for JSON)."""
        return asdict(self)


def evaluate(
    model: StepModel, documents: Iterable[str], cache: bool | CacheConfig | None = None
) -> Evaluation:
    """Score ``model`` on ``documents``.

    Each document is read as the model sees text during training, ``<eod> words... <eod>``: the state
    starts at zero, is carried through the whole document, and every token after the first is
    predicted from all the tokens before it. ``cache``: the continuous cache (:mod:`.cache`); by
    default the model file's when it has one, ``False`` for the model alone, ``True`` for the file's (a
    ``ValueError`` when it has none), or a :class:`~.cache.CacheConfig`. No documents: ``ValueError``.
    """
    check_model(model)
    # a string iterated would make each character a document
    check_iterable(
        "documents", documents, "a list (or any iterable) of strings", "pass [text] to evaluate one document"
    )
    tok = model.tokenizer
    encoded = (
        [tok.eod_id, *tok.encode(_text(document, i)), tok.eod_id] for i, document in enumerate(documents)
    )
    return evaluate_ids(model, encoded, cache)


def _document_ids(document: Any, index: int, vocab: int) -> np.ndarray:
    """Document ``index`` as int64 ids, or ``ValueError`` saying what is wrong with it (both scoring
    paths take it from here, so a bad id never reaches numpy's indexing or onnxruntime)."""
    ids = prompt_ids_array(document, index, vocab, "document")
    if len(ids) < 2:
        raise ValueError(
            f"document {index} has {len(ids)} id; a document is <eod> ids... <eod>, at least two ids"
        )
    return ids


def _text(document: Any, index: int) -> str:
    if not isinstance(document, str):
        raise WrongTypeError(
            f"documents must be strings; document {index} is of type {type(document).__name__}"
        )
    return document


def evaluate_ids(
    model: StepModel,
    documents: Iterable[Sequence[int] | np.ndarray],
    cache: bool | CacheConfig | None = None,
) -> Evaluation:
    """:func:`evaluate` on documents already encoded, each ``<eod> ids... <eod>`` (as in ``val.ids``);
    ``cache`` as there. No documents, or one of fewer than 2 ids or of ids outside the vocabulary, is a
    ``ValueError``."""
    check_model(model)
    check_iterable("documents", documents, "a list (or any iterable) of token-id lists")
    tok = model.tokenizer
    n_docs = n_words = n_correct = n_top5 = n_unknown = 0
    total_nll = 0.0
    settings = resolve_cache(model, cache)
    arrays = (_document_ids(document, i, model.vocab_size) for i, document in enumerate(documents))
    scored: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]
    if settings is None:
        scored = ((ids, *token_logprobs(model, ids)) for ids in arrays)
    else:  # documents stepped side by side, one token at a time
        scored = cached_document_scores(model, arrays, settings)
    for ids, logprobs, ranks in scored:
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
