import numpy as np
import pytest

from nextword.runtime import GenerationConfig
from nextword.runtime.generation import MAX_WORDS
from nextword.runtime.sampling import sample_next


def test_greedy_takes_the_largest_allowed_logit():
    logits = np.array([[5.0, 1.0, 9.0, 3.0], [0.0, 7.0, 2.0, 7.5]], dtype=np.float32)
    rng = np.random.default_rng(0)
    assert sample_next(logits, temperature=0, top_k=None, rng=rng).tolist() == [2, 3]
    assert sample_next(logits, temperature=0, top_k=None, rng=rng, banned=[2, 3]).tolist() == [0, 1]


def test_banned_ids_are_never_sampled():
    logits = np.zeros((64, 5), dtype=np.float32)
    logits[:, 1] = 50.0  # overwhelmingly likely, but banned
    ids = sample_next(logits, temperature=1.0, top_k=None, rng=np.random.default_rng(0), banned=[0, 1])
    assert not np.isin(ids, [0, 1]).any()


def test_top_k_restricts_to_the_k_most_likely():
    logits = np.log(np.array([[0.05, 0.3, 0.1, 0.4, 0.15]] * 2000))
    ids = sample_next(logits, temperature=1.0, top_k=2, rng=np.random.default_rng(1))
    assert set(ids.tolist()) == {1, 3}


def test_sampling_follows_the_softmax_and_temperature():
    probs = np.array([0.1, 0.2, 0.7])
    logits = np.log(np.tile(probs, (20000, 1)))
    ids = sample_next(logits, temperature=1.0, top_k=None, rng=np.random.default_rng(2))
    assert np.allclose(np.bincount(ids, minlength=3) / len(ids), probs, atol=0.015)
    cold = sample_next(logits, temperature=0.25, top_k=None, rng=np.random.default_rng(2))
    sharpened = probs**4 / (probs**4).sum()
    assert np.allclose(np.bincount(cold, minlength=3) / len(cold), sharpened, atol=0.015)


def test_same_generator_seed_same_draws_and_no_global_state():
    logits = np.random.default_rng(3).normal(size=(8, 100))
    before = np.random.get_state()[1].copy()
    a = sample_next(logits, temperature=1.0, top_k=10, rng=np.random.default_rng(42))
    b = sample_next(logits, temperature=1.0, top_k=10, rng=np.random.default_rng(42))
    assert a.tolist() == b.tolist()
    assert (np.random.get_state()[1] == before).all()


def test_caller_logits_are_not_modified():
    logits = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    sample_next(logits, temperature=0.5, top_k=1, rng=np.random.default_rng(0), banned=[2])
    assert logits.tolist() == [[1.0, 2.0, 3.0]]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"temperature": float("inf")}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_k": 0}, "top_k"),
        ({"top_k": 2.5}, "top_k"),
        ({"max_words": -1}, "max_words"),
        ({"max_words": MAX_WORDS + 1}, "max_words"),
        ({"seed": -3}, "seed"),
        ({"colour": "blue"}, "unknown generation option"),
    ],
)
def test_generation_options_are_validated(options, message):
    with pytest.raises(ValueError, match=message):
        GenerationConfig.from_options(**options)


def test_generation_options_accept_numpy_integers():
    assert GenerationConfig(max_words=np.int64(3), seed=np.int32(1)).max_words == 3
