"""The count-based baselines of the quality report (benchmarks.ngram): proper distributions, contexts
that stop at document starts, the discounts of modified Kneser-Ney, the unigram cache."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.ngram import ModifiedKneserNey, UnigramCache, modified_discounts, score_stream, tune_cache

VOCAB = 15


def stream(documents: list[list[int]]) -> np.ndarray:
    ids = [2]
    for document in documents:
        ids += [*document, 2]
    return np.array(ids)


@pytest.fixture(scope="module")
def training() -> np.ndarray:
    rng = np.random.default_rng(0)
    return stream([rng.integers(3, VOCAB, size=rng.integers(3, 12)).tolist() for _ in range(300)])


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
def test_every_prediction_is_a_distribution(training, order):
    model = ModifiedKneserNey(training, VOCAB, order)
    test = stream([[3, 4, 5, 6, 7, 8], [14, 14, 14], [9]])
    for probs in model.distributions(test):
        assert probs.sum() == pytest.approx(1.0, abs=1e-9) and (probs > 0).all()


def test_contexts_stop_at_a_document_start(training):
    model = ModifiedKneserNey(training, VOCAB, 5)
    one = list(model.distributions(stream([[3, 4, 5, 6], [7, 8]])))
    two = list(model.distributions(stream([[9, 10, 11, 12], [7, 8]])))
    # After the second document's <eod> (position 5) what came before it no longer matters.
    for a, b in zip(one[5:], two[5:], strict=True):
        np.testing.assert_allclose(a, b)


def test_higher_orders_fit_repeated_phrases_better(training):
    phrase = [3, 4, 5, 6, 7, 8, 9, 10]
    repeated = stream([phrase] * 50 + [[11, 12, 13]] * 50)
    held_out = stream([phrase] * 3)
    perplexities = [
        score_stream(ModifiedKneserNey(repeated, VOCAB, n), held_out)["perplexity"] for n in (1, 3, 5)
    ]
    assert perplexities[0] > perplexities[1] > perplexities[2]


def test_three_discounts_from_counts_of_counts():
    counts = np.array([1, 1, 1, 1, 2, 2, 3, 4, 5, 9])  # n1 = 4, n2 = 2, n3 = 1, n4 = 1
    y = 4 / (4 + 2 * 2)
    assert modified_discounts(counts) == pytest.approx((1 - 2 * y * 2 / 4, 2 - 3 * y / 2, 3 - 4 * y))


def test_unigram_cache_mixes_in_the_documents_words(training):
    model = ModifiedKneserNey(training, VOCAB, 3)
    test = stream([[13, 13, 13, 13, 13]])
    cached = UnigramCache(model, mix=0.3, window=10)
    for mixed in cached.distributions(test):
        assert mixed.sum() == pytest.approx(1.0)
    assert score_stream(cached, test)["perplexity"] < score_stream(model, test)["perplexity"]
    mix, window, perplexity = tune_cache(model, stream([[13] * 8, [14] * 8]))
    assert (
        0 < mix < 0.6
        and window >= 1
        and perplexity < score_stream(model, stream([[13] * 8, [14] * 8]))["perplexity"]
    )
