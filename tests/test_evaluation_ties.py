"""Accuracy and top-5 accuracy break ties as greedy decoding does: a word scored the same as others
counts after those with a lower id. Counting only the words scored higher put every tied word first,
so a model that scored all words alike had 100% accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from nextword.runtime.scoring import ranks_of


def test_ranks_count_the_higher_and_the_tied_with_a_lower_id():
    scores = np.array([[0.0, 0.0, 0.0, 0.0], [1.0, 3.0, 3.0, 2.0], [5.0, 1.0, 5.0, 5.0]])
    assert ranks_of(scores, np.array([2, 1, 0])).tolist() == [2, 0, 0]
    assert ranks_of(scores, np.array([0, 2, 3])).tolist() == [0, 1, 2]
    assert ranks_of(scores, np.array([3, 3, 1])).tolist() == [3, 2, 3]
    # each row's ranks are a permutation: exactly one word is first, as argmax picks it
    for row in scores:
        ranks = ranks_of(np.tile(row, (4, 1)), np.arange(4))
        assert sorted(ranks.tolist()) == [0, 1, 2, 3] and ranks[int(np.argmax(row))] == 0


@pytest.fixture(scope="module")
def flat(model_path, tmp_path_factory):
    """The tiny model with its output matrix (units, V) and bias (V,) zeroed: every word scored alike."""
    onnx = pytest.importorskip("onnx", reason="onnx missing: install nextword[train] to edit a model file")
    from onnx import numpy_helper

    from nextword.runtime import load

    vocab = load(model_path).vocab_size
    proto = onnx.load(str(model_path))
    zeroed = 0
    for tensor in proto.graph.initializer:
        array = numpy_helper.to_array(tensor)
        if array.ndim in (1, 2) and array.shape[-1] == vocab and array.shape != (vocab, vocab):
            tensor.CopyFrom(numpy_helper.from_array(np.zeros_like(array), tensor.name))
            zeroed += 1
    assert zeroed == 2
    path = tmp_path_factory.mktemp("flat") / "flat.onnx"
    onnx.save(proto, str(path))
    return load(path)


def test_a_model_scoring_every_word_alike_is_right_only_where_argmax_is(flat):
    from nextword.runtime import evaluate

    vocab = flat.vocab_size
    documents = ["The network (12) stores the weights.", "Each neuron computes an error value."]
    result = evaluate(flat, documents, cache=False)
    assert result.perplexity == pytest.approx(vocab, rel=1e-4)  # every word 1/V
    targets = np.concatenate([[*flat.tokenizer.encode(d), flat.tokenizer.eod_id] for d in documents])
    assert result.words == len(targets)
    assert result.accuracy == 0.0  # argmax picks id 0, <pad>, never a target
    assert result.top5_accuracy == pytest.approx(float(np.mean(targets < 5)))
    assert result.top5_accuracy < 1.0


def test_scores_mixed_with_a_cache_break_ties_alike(flat):
    """The cached path (a file's cache is on by default in evaluate, score and token_logprobs) ranks
    with the same rule: at a document's first word its cache is empty and every word still tied."""
    from nextword.runtime.cache import CacheConfig
    from nextword.runtime.scoring import token_logprobs

    ids = np.array([flat.tokenizer.eod_id, *flat.tokenizer.encode("The network stores the weights.")])
    _, plain = token_logprobs(flat, ids)
    assert plain.tolist() == ids[1:].tolist()  # all tied: a word's rank is the number of lower ids
    _, cached = token_logprobs(flat, ids, cache=CacheConfig(theta=0.0, mix=0.5, window=10))
    assert cached[0] == ids[1]
