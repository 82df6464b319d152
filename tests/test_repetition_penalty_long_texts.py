"""The repetition penalty on texts of more distinct words than a row's history first holds (64): every
word seen is penalized, as the brute-force reference computes it from the whole ids."""

from __future__ import annotations

import numpy as np
import pytest
from test_decoding_reference import EOD, TableModel, reference_sample, sampled

from nextword.runtime.generation import GenerationConfig
from nextword.runtime.rules import History

WORDS = 100  # distinct words of the crafted model: more than History's first 64 slots


def long_model(seed: int) -> TableModel:
    """A table model over ``WORDS`` words whose logits are mostly positive, so a penalty matters."""
    rng = np.random.default_rng(seed)
    vocab = 3 + WORDS
    table = rng.normal(loc=1.0, scale=1.0, size=(vocab,) * 3)
    return TableModel(table, [f"w{i}" for i in range(WORDS)])


def test_history_keeps_every_distinct_id_past_its_first_capacity() -> None:
    """History.seen() lists each distinct id once, in first-seen order, after growing several times."""
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 1000, size=2000).tolist()
    history = History(ids[:10], ngram=0, penalty=True)
    for token in ids[10:]:
        history.add(token)
    expected = list(dict.fromkeys(ids))
    assert len(expected) > 256  # the history grew past 64, 128 and 256 slots
    assert history.seen().tolist() == expected


@pytest.mark.parametrize("temperature", [0.0, 1.0])
@pytest.mark.parametrize("penalty", [1.5, 3.0])
def test_a_prompt_of_many_distinct_words_is_penalized_word_for_word(
    temperature: float, penalty: float
) -> None:
    """Greedy and sampled texts after a prompt of 90 distinct words equal the reference's, which
    penalizes every word of the prompt and of the text."""
    model = long_model(seed=int(penalty * 10))
    rng = np.random.default_rng(1)
    prompt = [EOD, *(3 + rng.permutation(WORDS)[:90]).tolist()]
    config = GenerationConfig(
        max_words=40,
        repetition_penalty=penalty,
        temperature=temperature,
        seed=5,
        num_return_sequences=2,
        stop_at_end=False,
    )
    got = sampled(model, [prompt], config)
    assert got == reference_sample(model, [prompt], config)
    assert all(len(row) == 40 for row in got)


def test_the_penalty_reaches_words_first_seen_after_the_64th() -> None:
    """A word that the table makes the greedy choice is avoided when it is the 80th distinct word of
    the prompt, and chosen when the prompt lacks it."""
    vocab = 3 + WORDS
    table = np.zeros((vocab,) * 3)
    favourite = 3 + 79
    table[:, :, favourite] = 2.0  # the favourite after any two tokens...
    table[:, :, 3 + 99] = 1.5  # ...then this one, which a penalty of 2 on the favourite (to 1.0) puts first
    model = TableModel(table, [f"w{i}" for i in range(WORDS)])
    config = GenerationConfig(max_words=1, repetition_penalty=2.0, temperature=0)
    with_it = [EOD, *range(3, 3 + 80)]  # the favourite is the 80th distinct word
    without_it = [EOD, *range(3, 3 + 79)]
    assert sampled(model, [with_it], config) == [[3 + 99]]
    assert sampled(model, [without_it], config) == [[favourite]]
