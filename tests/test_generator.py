"""The step-level Generator: the same texts as the loops it replaced, rows that join and leave between
steps, cancellation, log-probabilities, and rows that end when no token is allowed."""

from __future__ import annotations

import re
from dataclasses import replace
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nextword.runtime import GenerationConfig, Generator, load
from nextword.runtime.default import BUNDLED_MODEL
from nextword.runtime.logits import log_softmax
from nextword.runtime.sampling import sample
from nextword.runtime.text import PromptEnd
from reference.decoding_v1 import PromptContext, SamplingRun
from reference.decoding_v1 import beam_search as beam_search_v1
from reference.sampling_v1 import sample_next as sample_next_v1

PROMPTS = ["the network", "a neural network receives the weights. each neuron", "", "the system (12) stores "]
OPTIONS = [
    {},
    {"temperature": 0},
    {"temperature": 0.7, "no_repeat_ngram_size": 3},
    {"temperature": 1.3, "min_words": 5, "repetition_penalty": 1.3},
    {"top_k": 40},
    {"top_k": 5, "temperature": 0.8},
    {"top_p": 0.9},
    {"top_p": 0.5, "top_k": 50, "repetition_penalty": 0.8},
    {"stop": [".", "of the"], "no_repeat_ngram_size": 1},
    {"stop_at_end": False, "allow_unknown": True},
    {"num_return_sequences": 3, "top_k": 10},
]


def ends(model, prompts):
    """How each of ``prompts`` ends, as ``model.generate`` reads it for beam search."""
    return [PromptEnd.of_text(model.tokenizer, p) for p in prompts]


@pytest.fixture(scope="module")
def bundled():
    return load(BUNDLED_MODEL)


def reference_texts(model, prompts, config):
    """What the loop before the Generator returned for ``generate(prompts, config)``, with the two
    intended changes since (below)."""
    ids = [model.prompt_ids(p) for p in prompts]
    lstrip = [p[-1:].isspace() for p in prompts]
    with mock.patch.object(PromptContext, "build", classmethod(_context_of_words)):
        if config.num_beams > 1:
            return beam_search_v1(model, ids, config, lstrip)
        # Where the rules left no token, the old loop emitted "<pad>" tokens; a row now ends there.
        return [text.split(" <pad>")[0] for text in SamplingRun(model, ids, config, lstrip).run()]


_build_v1 = PromptContext.build


def _context_of_words(cls, ids, tokenizer, config):
    """The old loop's prompt context, its rules reading the prompt's words alone: the end-of-document
    id that opens every prompt is the document's start, not a word (the old rules banned it with
    ``no_repeat_ngram_size=1``, so a document never ended, and penalized it with a repetition penalty)."""
    context = _build_v1(ids, tokenizer, config)
    if context.ids[0] == tokenizer.eod_id:  # what the rules read: the old context of the words alone
        words = _build_v1(ids[1:], tokenizer, config) if len(ids) > 1 else PromptContext(context.ids, None)
        context.ngrams, context.seen = words.ngrams, words.seen
    return context


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the old loop's <pad> rows
@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("fixture", ["bundled", "model"])
def test_same_texts_as_the_loop_it_replaced(request, fixture, options):
    model = request.getfixturevalue(fixture)
    for seed in range(3):
        config = GenerationConfig.from_options(model.info.generation, max_words=40, seed=seed, **options)
        texts = model.generate(PROMPTS, config)
        assert texts == reference_texts(model, PROMPTS, config), (options, seed)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the old loop's <pad> rows
@pytest.mark.parametrize("options", OPTIONS)
def test_a_single_row_gets_the_texts_of_the_loop_it_replaced(bundled, options):
    """One prompt, one sequence: the generator's single-row path (no batch arrays), in ``generate`` and
    in ``stream``, gives the old loop's texts."""
    for seed, prompt in enumerate(PROMPTS):
        config = GenerationConfig.from_options(
            bundled.info.generation, max_words=40, seed=seed, **{**options, "num_return_sequences": 1}
        )
        (expected,) = reference_texts(bundled, [prompt], config)
        assert bundled.generate(prompt, config) == expected, (options, seed)
        assert "".join(bundled.stream(prompt, config)) == expected, (options, seed)


def test_min_words_hold_back_the_end_alone_and_in_a_batch(bundled):
    """A model that wants to end the document at every step ends it right after ``min_words`` words,
    whether the row runs alone (the single-row path) or beside another."""
    from nextword.runtime.stepper import stepper_for

    class Eager:  # the model's own steps, with the end-of-document id made the most likely token
        def __init__(self):
            self.inner = stepper_for(bundled)

        def step(self, tokens, state):
            logits, state = self.inner.step(tokens, state)
            logits[:, bundled.tokenizer.eod_id] = 100.0
            return logits, state

    for prompts in (["the network"], ["the network", "a processor"]):
        gen = Generator(bundled, stepper=Eager())
        rows = gen.add(prompts, GenerationConfig(min_words=5, max_words=20, temperature=0))
        gen.run()
        assert [len(gen.tokens(r)) for r in rows] == [5] * len(prompts)
        assert [gen.finish_reason(r) for r in rows] == ["end"] * len(prompts)


def test_one_rows_rules_are_its_rules_in_a_batch(bundled):
    """``Rules.apply`` on a single row (scalar stores, :meth:`Rules.apply_one`) forbids and penalizes
    exactly what it does to the same row in a batch of several."""
    from nextword.runtime.rules import Rules

    rng = np.random.default_rng(3)
    tok = bundled.tokenizer
    text = [tok.eod_id, *rng.integers(4, 12, size=40).tolist()]  # 8 ids: many repeated 1-grams
    for options in (
        {"min_words": 3, "repetition_penalty": 1.4, "no_repeat_ngram_size": 2},
        {"no_repeat_ngram_size": 2, "allow_unknown": True, "stop_at_end": False},
        {"repetition_penalty": 0.7},
    ):
        rules = Rules(GenerationConfig(**options), tok)
        histories = [rules.history(text), rules.history(text[:5])]
        batch = rng.normal(size=(2, bundled.vocab_size)).astype(np.float32)
        one = batch[:1].copy()
        before = one.copy()
        rules.apply(batch, histories, [2, 7])
        rules.apply(one, histories[:1], [2])
        np.testing.assert_array_equal(one[0], batch[0])
        assert (one != before).sum() > len(rules.banned), options  # more than the special ids changed
        if rules.min_words:
            with pytest.raises(ValueError, match="min_words needs the rows' lengths"):
                rules.apply(before, histories[:1])


@pytest.mark.parametrize("options", [{"num_beams": 3}, {"num_beams": 4, "num_return_sequences": 2}])
def test_beam_search_gives_the_same_texts_as_before(bundled, options):
    config = GenerationConfig(max_words=25, **options)
    assert bundled.generate(PROMPTS, config) == reference_texts(bundled, PROMPTS, config)


def test_beam_search_where_prompts_finish_at_different_steps_gives_the_same_texts_as_before(model):
    """Prompts end their documents at different steps; the search goes on for the others."""
    config = GenerationConfig(num_beams=3, min_words=4, repetition_penalty=1.5, max_words=30)
    assert model.generate(PROMPTS, config) == reference_texts(model, PROMPTS, config)


@pytest.mark.parametrize(
    "options",
    [
        {"num_beams": 4, "max_words": 400, "stop_at_end": False},
        {"num_beams": 6, "num_return_sequences": 3, "max_words": 400, "stop_at_end": False},
        {"num_beams": 2, "num_return_sequences": 2, "max_words": 400, "length_penalty": 0.0},
    ],
)
def test_a_beam_the_rules_leave_no_word_ends_there(model, options):
    """Every word seen banned (``no_repeat_ngram_size=1``) on a 30-word vocabulary: the beams run out of
    allowed words. A beam with none left is a finished hypothesis, its text as it stands (as sampling
    ends a text there), and a banned word is never a candidate; the search before returned empty texts
    here and could extend a beam with a banned word."""
    from nextword.runtime.beam import BeamSearch

    config = GenerationConfig(no_repeat_ngram_size=1, **options)
    prompts = [model.prompt_ids(p) for p in PROMPTS]
    search = BeamSearch(model, prompts, config, [p[-1:].isspace() for p in PROMPTS])
    while search.step():
        pass
    assert search.done and search.steps < config.max_words  # the rules ended it, not max_words
    special = {model.tokenizer.pad_id, model.tokenizer.unk_id}
    for prompt, finished in zip(prompts, search.finished, strict=True):
        assert len(finished) >= config.num_return_sequences
        for _, ids in finished:
            assert ids, "an empty hypothesis"
            assert len(set(ids)) == len(ids), "a word repeated despite no_repeat_ngram_size=1"
            assert not set(ids) & (set(prompt) | special), "a banned word chosen"
    texts = search.texts()
    assert all(texts) and texts == model.generate(PROMPTS, config)


def test_a_stop_string_finishes_a_beam_as_the_end_of_the_document_does(bundled):
    """Stop strings used to cut the texts only once the search was over: the beams that shared their
    words up to the first stop string all came back as that one text, and the search ran to max_words."""
    from nextword.runtime.beam import BeamSearch, beam_search

    config = GenerationConfig(num_beams=4, num_return_sequences=4, max_words=60, stop=(".",))
    search = BeamSearch(bundled, [bundled.prompt_ids("a method")], config)
    while search.step():
        pass
    assert search.steps < config.max_words  # four hypotheses reached "." before max_words
    results = search.results()
    assert [h.finish_reason for h in results] == ["stop"] * 4
    assert len({h.text for h in results}) == 4 and not any("." in h.text for h in results)
    for _, ids in search.finished[0]:  # each ends at the word that wrote its first "."
        words = [bundled.tokenizer.token_of(i) for i in ids]
        assert "." in words[-1] and not any("." in w for w in words[:-1]), words
    plain = GenerationConfig(num_beams=4, num_return_sequences=4, max_words=30)
    never = replace(plain, stop=("\x01",))  # a stop string that never appears changes nothing
    assert bundled.generate(PROMPTS, never) == bundled.generate(PROMPTS, plain)
    options = {"max_words": 40, "stop": (".",), "no_repeat_ngram_size": 4}
    one = beam_search(
        bundled, [bundled.prompt_ids(p) for p in PROMPTS], GenerationConfig(**options), ends(bundled, PROMPTS)
    )
    assert one == bundled.generate(PROMPTS, temperature=0, **options)  # one beam is greedy, stops included


def test_one_beam_is_greedy_where_the_rules_leave_no_word(model):
    from nextword.runtime.beam import beam_search

    options = {"no_repeat_ngram_size": 1, "max_words": 400, "stop_at_end": False}
    for prompt in PROMPTS:
        greedy = model.generate(prompt, temperature=0, **options)
        config = GenerationConfig(num_beams=1, **options)
        (beam,) = beam_search(model, [model.prompt_ids(prompt)], config, ends(model, [prompt]))
        assert beam == greedy and greedy


def test_rows_that_join_later_get_the_texts_they_get_alone(model):
    """fp32 rows are independent: a row's text does not depend on what else runs or when it joined."""
    configs = [
        GenerationConfig(max_words=30, seed=1, top_k=8),
        GenerationConfig(max_words=12, seed=2, temperature=0),
        GenerationConfig(max_words=25, seed=3, top_p=0.8, stop=("weights",)),
        GenerationConfig(max_words=20, seed=4, num_return_sequences=2, no_repeat_ngram_size=2),
    ]
    alone = [model.generate(PROMPTS[i], c) for i, c in enumerate(configs)]
    gen = model.generator()
    joined: dict[int, list[str]] = {}
    pieces: dict[int, list[str]] = {}
    for step in range(60):
        if step % 4 == 0 and step // 4 < len(configs):  # a new request every fourth step
            i = step // 4
            joined[i] = gen.add(PROMPTS[i], configs[i])
        for update in gen.step():
            pieces.setdefault(update.row, []).append(update.text)
    assert gen.done
    for i, rows in joined.items():
        texts = [gen.text(r) for r in rows]
        assert texts == ([alone[i]] if isinstance(alone[i], str) else alone[i])
        assert ["".join(pieces[r]) for r in rows] == texts


def test_pieces_of_one_row_are_its_update_texts(model):
    """``Generator.pieces(row)`` yields what the row's updates carry (stop strings held back alike),
    stepping the other rows along."""
    configs = [GenerationConfig(max_words=30, seed=5, stop=("the",)), GenerationConfig(max_words=12, seed=6)]
    by_updates = model.generator()
    rows = [by_updates.add(PROMPTS[0], configs[0])[0], by_updates.add(PROMPTS[1], configs[1])[0]]
    texts: dict[int, list[str]] = {r: [] for r in rows}
    for updates in by_updates:
        for update in updates:
            if update.text:
                texts[update.row].append(update.text)
    by_pieces = model.generator()
    first = by_pieces.add(PROMPTS[0], configs[0])[0]
    second = by_pieces.add(PROMPTS[1], configs[1])[0]
    assert len(texts[rows[0]]) > 1  # several pieces, not one final text
    assert list(by_pieces.pieces(first)) == texts[rows[0]]
    assert by_pieces.text(first) == "".join(texts[rows[0]])
    # the other row stepped along, its text not handed out yet: all of it comes now
    assert "".join(by_pieces.pieces(second)) == by_updates.text(rows[1])
    assert by_updates.text(rows[1]) == model.generate(PROMPTS[1], configs[1])
    assert list(by_pieces.pieces(second)) == [] and by_pieces.done
    # a row that finished while another was stepped: its whole text, once
    gen = model.generator()
    (long,) = gen.add(PROMPTS[0], configs[1])
    (short,) = gen.add(PROMPTS[1], GenerationConfig(max_words=3, seed=7))
    assert "".join(gen.pieces(long)) == gen.text(long) and gen.finish_reason(short) == "length"
    assert list(gen.pieces(short)) == [gen.text(short)] and list(gen.pieces(short)) == []


def test_updates_and_finish_reasons(model):
    gen = model.generator()
    (length,) = gen.add("the network", GenerationConfig(max_words=3, stop_at_end=False, seed=0))
    stopping = GenerationConfig(max_words=50, stop=(".",), stop_at_end=False, temperature=0)
    (stop,) = gen.add("the network", stopping)
    (none,) = gen.add("the network", GenerationConfig(max_words=0))
    updates = [u for _ in range(60) if not gen.done for u in gen.step()]
    last = {u.row: u for u in updates}
    assert last[length].finish_reason == "length" and len(gen.tokens(length)) == 3
    assert last[stop].finish_reason == "stop" and "." not in gen.text(stop) and gen.text(stop)
    assert last[none].finish_reason == "length" and gen.text(none) == "" and gen.tokens(none) == []
    assert all(u.finished == (u.finish_reason is not None) for u in updates)
    assert sum(u.finished for u in updates) == 3  # each row finishes exactly once
    gen.release(length)
    with pytest.raises(ValueError, match="no row"):
        gen.text(length)


def test_each_update_says_where_its_word_starts_in_the_text(model):
    config = GenerationConfig(max_words=12, stop_at_end=False, temperature=0)
    plain = model.generate("the network", config)
    gen = model.generator()
    gen.add("the network", config)
    offsets = [u.offset for _ in range(13) if not gen.done for u in gen.step()]
    assert offsets[0] == 0 and offsets == sorted(offsets) and len(offsets) == 12
    pieces = [plain[a:b] for a, b in zip(offsets, [*offsets[1:], len(plain)], strict=True)]
    assert [p.strip().lower() for p in pieces] == [model.tokenizer.table[t] for t in gen.tokens(0)]
    # stop strings hold characters back from update.text, never from the offsets
    cut = plain[offsets[5] : offsets[6]]  # the sixth word's text: the text ends where it first appears
    for stop in [*sorted({plain[o - 1] + "\x01" for o in offsets[1:]}), cut]:
        gen = model.generator()
        gen.add("the network", replace(config, stop=(stop,)))
        updates = [u for _ in range(13) if not gen.done for u in gen.step()]
        assert [u.offset for u in updates if u.offset is not None] == offsets[: len(gen.tokens(0))]
        assert all(u.offset <= len(gen.text(0)) for u in updates if u.offset is not None)
    (ended,) = [u for u in updates if u.finished]
    assert ended.finish_reason == "stop" and gen.text(0) == plain[: plain.index(cut)]
    assert ended.offset == offsets[len(gen.tokens(0)) - 1] <= len(gen.text(0))
    gen = model.generator()
    gen.add("the network", GenerationConfig(max_words=5))
    gen.cancel(0)
    assert [u.offset for u in gen.step()] == [None]  # a cancelled row adds no word


def test_cancel_ends_a_row_at_the_next_step(model):
    gen = model.generator()
    keep, drop = gen.add(
        ["the network", "the system"], GenerationConfig(max_words=40, seed=5, stop_at_end=False)
    )
    gen.step()
    gen.step()
    gen.cancel(drop)
    updates = gen.step()
    assert [(u.row, u.finish_reason) for u in updates if u.row == drop] == [(drop, "cancelled")]
    words_at_cancel = len(gen.tokens(drop))
    with pytest.raises(ValueError, match="still running"):
        gen.release(keep)
    gen.run()
    assert len(gen.tokens(drop)) == words_at_cancel and len(gen.tokens(keep)) == 40
    # cancelled while its prompt is still being fed
    (early,) = gen.add("a very long prompt " * 100, GenerationConfig(max_words=5))
    gen.cancel(early)
    assert [u.finish_reason for u in gen.step()] == ["cancelled"] and gen.done


@pytest.mark.parametrize("cache", [False, True])
def test_each_prompt_is_fed_once_for_all_its_sequences(model, monkeypatch, cache):
    """num_return_sequences copies share their prompt's prefill: every prefill call has one row per
    prompt. The texts are those of the same prompts listed once per sequence, each fed on its own row
    (the same random streams, prompt-major; fp32: a row's numbers are its own), with the continuous
    cache too; cancelling some copies while the prompts are fed leaves the others' texts alone."""
    import dataclasses

    from nextword.runtime import NextWordModel
    from nextword.runtime.cache import CacheConfig

    if cache:
        settings = CacheConfig(theta=0.07, mix=0.18, window=256)
        model = NextWordModel(model.session, dataclasses.replace(model.info, cache=settings), model.source)
    long_prompt = "the network receives the signal and the weights of each neuron " * 12
    config = GenerationConfig(max_words=12, seed=9, num_return_sequences=4, stop_at_end=False, cache=cache)
    prompts = ["the system", long_prompt]
    listed = model.generate([p for p in prompts for _ in range(4)], replace(config, num_return_sequences=1))
    rows_fed = []
    forward = type(model).forward

    def counting(self, ids, state, logits_from=0):
        rows_fed.append(np.asarray(ids).shape[0])
        return forward(self, ids, state, logits_from)

    monkeypatch.setattr(type(model), "forward", counting)
    gen = model.generator()
    rows = gen.add(prompts, config)
    gen.step()  # the first prefill round only
    assert rows_fed == [2]  # two prompts, eight rows
    gen.run()
    assert [gen.text(r) for r in rows] == listed
    gen = model.generator()
    rows = gen.add(prompts, config)
    gen.step()
    for row in (rows[0], *rows[4:7]):  # three of the long prompt's four rows, one of the short one's
        gen.cancel(row)
    gen.run()
    assert [gen.text(rows[j]) for j in (1, 2, 3, 7)] == [listed[j] for j in (1, 2, 3, 7)]
    assert all(gen.finish_reason(rows[j]) == "cancelled" for j in (0, 4, 5, 6))
    # every row of the prompt still being fed cancelled: the fed prompt's rows go on (before, the next
    # step fed a round of no rows and raised)
    gen = model.generator()
    rows = gen.add(prompts, config)
    for _ in range(len(model.prompt_ids(prompts[0])) if cache else 1):  # the short prompt fed, the long not
        gen.step()  # (a round feeds as many tokens as the shortest prompt has left; with the cache, one)
    for row in rows[4:]:
        gen.cancel(row)
    gen.run()
    assert [gen.text(r) for r in rows[:4]] == listed[:4]
    assert [gen.finish_reason(r) for r in rows] == ["length"] * 4 + ["cancelled"] * 4


def test_logprobs_are_the_models_own(model):
    gen = model.generator()
    gen.add("the network", GenerationConfig(max_words=6, temperature=0), logprobs=3)
    updates = [u for _ in range(10) if not gen.done for u in gen.step()]
    ids = model.prompt_ids("the network")
    for update in updates:
        if update.token is None:
            continue
        logits, _ = model.forward(np.asarray([ids]), model.initial_state(1))
        expected = log_softmax(logits[0, -1])
        assert update.logprob == pytest.approx(expected[update.token], abs=1e-6)
        assert [t for t, _ in update.top_logprobs] == [
            model.tokenizer.token_of(int(i)) for i in np.argsort(-expected, kind="stable")[:3]
        ]
        ids.append(update.token)
    with pytest.raises(ValueError, match="logprobs"):
        gen.add("x", logprobs=-1)


def test_a_row_with_no_allowed_token_ends_instead_of_emitting_padding(model):
    """no_repeat_ngram_size=1 forbids every word once used: with a small vocabulary the row runs out."""
    config = GenerationConfig(max_words=10_000, no_repeat_ngram_size=1, stop_at_end=False, temperature=0)
    gen = model.generator()
    (row,) = gen.add("", config)
    gen.run()
    tokens = gen.tokens(row)
    assert gen.finish_reason(row) == "end"
    assert len(tokens) == len(set(tokens)) and len(tokens) < model.vocab_size
    assert not set(tokens) & set(model.tokenizer.special_ids)
    assert "<pad>" not in gen.text(row) and "<eod>" not in gen.text(row)
    sampled = model.generate("", config, temperature=1.0, seed=1)
    assert "<pad>" not in sampled and "<unk>" not in sampled


def test_generator_validates_its_input(model):
    gen = Generator(model)
    with pytest.raises(ValueError, match="num_beams"):
        gen.add("x", GenerationConfig(num_beams=2))
    with pytest.raises(ValueError, match="outside"):
        gen.add_ids([[model.tokenizer.eod_id, model.vocab_size]])
    with pytest.raises(ValueError, match="prompt 0 is empty"):
        gen.add_ids([[]])
    with pytest.raises(ValueError, match="list of strings"):
        gen.add(["a", 3])
    assert gen.done and gen.active == 0 and gen.step() == []


# ------------------------------------------------------------------------------------- the sampler


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    rows=st.integers(1, 5),
    vocab=st.sampled_from([3, 50, 128, 129, 1000, 8664]),
    temperature=st.sampled_from([0, 0.3, 1.0, 2.5]),
    spread=st.sampled_from([0.1, 3.0, 30.0]),
    banned=st.integers(0, 3),
)
def test_full_vocabulary_sampling_is_bit_exact_with_the_previous_sampler(
    seed, rows, vocab, temperature, spread, banned
):
    logits = (np.random.default_rng(seed).normal(size=(rows, vocab)) * spread).astype(np.float32)
    logits[:, : min(banned, vocab - 1)] = -np.inf
    old = sample_next_v1(
        logits, temperature=temperature, rngs=[np.random.default_rng([seed, r]) for r in range(rows)]
    )
    new = sample(logits.copy(), [np.random.default_rng([seed, r]) for r in range(rows)], temperature)
    assert new.tolist() == old.tolist()


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    vocab=st.sampled_from([50, 1000, 8664]),
    top_k=st.sampled_from([None, 1, 5, 40, 400]),
    top_p=st.sampled_from([None, 0.1, 0.9, 0.999]),
    temperature=st.sampled_from([0.5, 1.0, 2.0]),
)
def test_top_k_and_top_p_choose_what_the_previous_sampler_chose(seed, vocab, top_k, top_p, temperature):
    """Top-k and top-p draw among their candidates only; the sums differ from the previous sampler's in
    the last bits, so a token could differ only for a draw within ~1e-7 of a boundary."""
    logits = (np.random.default_rng(seed).normal(size=(3, vocab)) * 4).astype(np.float32)
    options = {"temperature": temperature, "top_k": top_k, "top_p": top_p}
    old = sample_next_v1(logits, rngs=[np.random.default_rng([seed, r]) for r in range(3)], **options)
    new = sample(logits.copy(), [np.random.default_rng([seed, r]) for r in range(3)], **options)
    assert new.tolist() == old.tolist()


def test_rows_without_any_allowed_token_get_minus_one():
    logits = np.zeros((3, 10), dtype=np.float32)
    logits[1] = -np.inf
    for options in ({"temperature": 0}, {"temperature": 1}, {"temperature": 1, "top_k": 3}, {"top_p": 0.5}):
        options = {"temperature": 1, **options}
        chosen = sample(logits.copy(), [np.random.default_rng(i) for i in range(3)], **options)
        assert chosen[1] == -1 and chosen[0] >= 0 and chosen[2] >= 0


def test_wrong_inputs_to_add_are_value_errors_that_say_what_to_pass(model):
    gen = model.generator()
    for prompts, words in (
        (None, "got NoneType"),
        (5, "got int"),
        (b"ab", "got bytes"),
        (["a", 3], "item 1 is a int"),
    ):
        with pytest.raises(ValueError, match="must be a string or a list of strings") as caught:
            gen.add(prompts)
        assert words in str(caught.value)
    with pytest.raises(ValueError, match="config must be a GenerationConfig, got dict"):
        gen.add("x", {"max_words": 3})
    for logprobs in ("3", 2.7, True, 21, -1):
        with pytest.raises(ValueError, match=r"logprobs must be an integer in 0\.\.20"):
            gen.add("x", logprobs=logprobs)
    for ids, words in (
        ([[model.tokenizer.eod_id, 4.5]], r"prompt 0 must be a list of token ids \(integers\), got float64"),
        ([[]], r"prompt 0 is empty: it starts with the end-of-document id"),
        ([[True, 3]], r"prompt 0 holds True or False, where token ids \(integers\) belong"),
    ):
        with pytest.raises(ValueError, match=words):
            gen.add_ids(ids)
    assert gen.done and gen.active == 0  # nothing refused was queued
    rows = gen.add("the network", GenerationConfig(max_words=4, seed=1), logprobs=np.int64(2))
    gen.run()
    assert gen.text(rows[0]) == model.generate("the network", max_words=4, seed=1)


def test_a_second_thread_in_a_generator_is_refused_not_a_corrupt_batch(model):
    gen = model.generator()
    rows = gen.add("the network", GenerationConfig(max_words=3, seed=1))
    gen._busy.acquire()  # as if another thread were inside step() or add()
    try:
        with pytest.raises(RuntimeError, match=r"step\(\) was called while another thread.*one thread"):
            gen.step()
        with pytest.raises(RuntimeError, match=r"add\(\) was called while another thread"):
            gen.add("x")
    finally:
        gen._busy.release()
    gen.run()
    assert gen.text(rows[0]) == model.generate("the network", max_words=3, seed=1)


def test_beam_search_refuses_what_is_not_token_ids(model):
    from nextword.runtime import BeamSearch

    config = GenerationConfig(num_beams=3, max_words=5)
    ids = model.prompt_ids("the network")
    for prompts, words in (
        (["the network"], "prompt 0 is text, where token ids belong: model.prompt_ids(text) gives them"),
        ([ids, [2.5, 4.0]], "prompt 1 must be a list of token ids"),
        ([[-1, 3]], "prompt 0 holds ids outside"),
        ([], "0 prompt(s)"),
        ([ids] * 100, "100 prompt(s) x num_beams=3 beams; a search runs 1..256"),
    ):
        with pytest.raises(ValueError, match=re.escape(words)):
            BeamSearch(model, prompts, config)
    with pytest.raises(ValueError, match="config must be a GenerationConfig, got NoneType"):
        BeamSearch(model, [ids], None)
    search = BeamSearch(model, [ids], config)
    while search.step():
        pass
    assert search.texts() == model.generate(["the network"], num_beams=3, max_words=5)


def test_a_mark_the_vocabulary_lacks_still_spaces_and_capitalizes_what_follows(bundled):
    """The bundled English model has no ``¿`` or ``¡``: a prompt ending in one is fed ``<unk>``, but
    its continuation is written after the mark as typed (glued to it, capitalized where a sentence
    began), not after an unknown word, in every way of generating."""
    tok = bundled.tokenizer
    assert tok.encode("¿ ¡") == [tok.unk_id] * 2

    def after(prompt, text):
        """``text`` written after ``prompt``'s tokens as typed, from the tokens it holds."""
        typed = tok.tokenize(prompt)
        return "".join(list(tok.pieces([*typed, *tok.tokenize(text)]))[len(typed) :])

    prompts = ["the network ¿", "It works. ¡", "(¿"]
    pairs = [(p, 1) for p in prompts]  # (prompt, texts per prompt) of each call below, in order
    texts = bundled.generate(prompts, temperature=0, max_words=8)
    texts += bundled.generate(prompts, max_words=8, seed=3, num_return_sequences=2)
    pairs += [(p, 2) for p in prompts]
    texts += bundled.generate(prompts, num_beams=3, max_words=8)
    pairs += [(p, 1) for p in prompts]
    texts += ["".join(bundled.stream(p, max_words=8, seed=1)) for p in prompts]
    pairs += [(p, 1) for p in prompts]
    gen = bundled.generator(max_words=8, seed=5)
    rows = gen.add(prompts)
    gen.run()
    texts += [gen.text(row) for row in rows]
    pairs += [(p, 1) for p in prompts]
    cases = list(zip([p for p, n in pairs for _ in range(n)], texts, strict=True))
    for prompt, text in cases:
        assert text and not text.startswith(" "), (prompt, text)
        assert text == after(prompt, text), (prompt, text)
    assert any(text[:1].isupper() for prompt, text in cases if prompt == "It works. ¡"), cases

    gen = bundled.generator(temperature=0, max_words=8)  # a prompt as ids alone: the mark is <unk>, a word
    (row,) = gen.add_ids([bundled.prompt_ids("the network ¿")])
    gen.run()
    assert gen.text(row) == " " + texts[0]
