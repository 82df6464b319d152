"""Brute-force references for the decoding options, compared with the runtime on a crafted model.

The model is a :class:`~nextword.runtime.step.StepModel` whose logits are a fixed table of the last two
tokens, so every option can be checked exactly: the rules (repetition penalty, n-gram bans, min_words,
banned specials) recomputed from the whole token ids at every step, sampling as an inverse-CDF draw
over the reference distribution (temperature, then top-k with ties kept, then the smallest most-likely
set holding top-p, ties in id order) with the same random streams, and beam search written from its
definition: every candidate of every running beam ranked by total log-probability (ties by beam, then
token), an end of the document or a stop string among the ``num_beams`` best finishing a hypothesis,
the best ``num_beams`` others running on, hypotheses ranked by total / length ** length_penalty.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from nextword.runtime.beam import BeamSearch
from nextword.runtime.cache import CacheConfig, ContinuousCache
from nextword.runtime.evaluation import evaluate_ids
from nextword.runtime.generation import GenerationConfig
from nextword.runtime.generator import Generator
from nextword.runtime.rules import History, SequenceHistory, ngram_bans
from nextword.runtime.scoring import token_logprobs
from nextword.runtime.text import TextBuilder
from nextword.runtime.tokenizer import Tokenizer, TokenizerConfig

PAD, UNK, EOD = 0, 1, 2


class TableModel:
    """A step model whose next logits are ``table[previous token, last token]``; its state holds the
    last two tokens."""

    def __init__(self, table: np.ndarray, words: list[str]) -> None:
        self.tokenizer = Tokenizer(["<pad>", "<unk>", "<eod>", *words], TokenizerConfig(lowercase=False))
        self.vocab_size = len(self.tokenizer)
        assert table.shape == (self.vocab_size,) * 3
        self.table = table.astype(np.float32)

    def initial_state(self, batch_size: int = 1) -> list[np.ndarray]:
        return [np.zeros((batch_size, 2), np.float32), np.zeros((batch_size, 1), np.float32)]

    def forward(self, input_ids, state, logits_from=0):
        ids = np.asarray(input_ids)
        h = state[0]
        out = []
        for t in range(ids.shape[1]):
            h = np.stack([h[:, 1], ids[:, t].astype(np.float32)], axis=1)
            out.append(self.table[h[:, 0].astype(int), h[:, 1].astype(int)])
        return np.stack(out, axis=1)[:, logits_from:], [h, state[1].copy()]

    def logits_after(self, ids: list[int]) -> np.ndarray:
        return self.table[ids[-2] if len(ids) > 1 else 0, ids[-1]].copy()


def random_model(rng: np.random.Generator, words: int = 5) -> TableModel:
    vocab = 3 + words
    table = rng.normal(size=(vocab,) * 3) * rng.choice([0.5, 1.0, 3.0])
    if rng.random() < 0.3:  # whole-number logits: many exact ties
        table = np.round(table)
    return TableModel(table, [chr(ord("a") + i) for i in range(words)])


# ----------------------------------------------------------------- the references


def reference_bans(ids: list[int], n: int) -> set[int]:
    """Tokens that would complete an n-gram already in ``ids`` (Hugging Face's no_repeat_ngram_size)."""
    if not n:
        return set()
    tail = tuple(ids[len(ids) - n + 1 :]) if n > 1 else ()
    return {ids[i + n - 1] for i in range(len(ids) - n + 1) if tuple(ids[i : i + n - 1]) == tail}


def reference_rules(model: TableModel, ids: list[int], words: int, config: GenerationConfig) -> np.ndarray:
    """The logits a row chooses from (Hugging Face's processor order: repetition penalty, n-gram bans,
    min length; then nextword's banned specials), from its whole ids, prompt included. The repetition
    rules read the text's words: a leading end-of-document id (where the document starts) is not one."""
    x = model.logits_after(ids)
    text = ids[1:] if ids[:1] == [EOD] else ids
    if config.repetition_penalty != 1:
        for t in set(text):
            x[t] = x[t] / config.repetition_penalty if x[t] > 0 else x[t] * config.repetition_penalty
    for t in reference_bans(text, config.no_repeat_ngram_size):
        x[t] = -np.inf
    if words < config.min_words or not config.stop_at_end:
        x[EOD] = -np.inf
    x[PAD] = -np.inf
    if not config.allow_unknown:
        x[UNK] = -np.inf
    return x


def reference_distribution(x: np.ndarray, config: GenerationConfig) -> np.ndarray:
    """Temperature, then top-k (ties with the k-th kept), then top-p (the most likely tokens, ties in id
    order, while the mass before each is below p: at least one), renormalized; greedy: the argmax."""
    p = np.zeros(len(x))
    if x.max() == -np.inf:
        return p
    if config.temperature == 0:
        p[int(np.argmax(x))] = 1.0
        return p
    x = x.astype(np.float64) / config.temperature
    if config.top_k is not None:
        x = np.where(x < np.sort(x)[-min(config.top_k, len(x))], -np.inf, x)
    p = np.exp(x - x.max())
    p /= p.sum()
    if config.top_p is not None:
        order = np.argsort(-p, kind="stable")
        before = np.cumsum(p[order]) - p[order]
        p[order[1:][before[1:] >= config.top_p]] = 0.0
        p /= p.sum()
    return p


def reference_sample(
    model: TableModel, prompts: list[list[int]], config: GenerationConfig
) -> list[list[int]]:
    """Each row's tokens: one uniform draw per word from the row's stream of the seed (by position)."""
    n = config.num_return_sequences
    seeds = np.random.SeedSequence(config.seed).spawn(len(prompts) * n)
    rows = []
    for index, seed in enumerate(seeds):
        rng = np.random.default_rng(seed)
        ids, generated = list(prompts[index // n]), []
        while len(generated) < config.max_words:
            p = reference_distribution(reference_rules(model, ids, len(generated), config), config)
            u = 1.0 - rng.random() if config.temperature else 1.0
            if not p.any():
                break
            cumulative = np.cumsum(p)
            token = (
                int(np.argmax(p))
                if not config.temperature
                else int(cumulative.searchsorted(u * cumulative[-1]))
            )
            if token == EOD:
                break
            ids.append(token)
            generated.append(token)
        rows.append(generated)
    return rows


def log_softmax32(x: np.ndarray) -> np.ndarray | None:
    """Float32 log-probabilities as the runtime computes them (ties between beams are exact only when
    the arithmetic is the same), or None when every token is banned."""
    peak = x.max()
    if peak == -np.inf:
        return None
    return x - (peak + np.log(np.exp(x - peak).sum(dtype=np.float32)))


def rendered(model: TableModel, prompt: list[int], stop: tuple[str, ...], ids: list[int]) -> tuple[str, bool]:
    """The text of ``ids`` after ``prompt`` and whether a stop string cut it."""
    last = None if prompt[-1] == EOD else model.tokenizer.token_of(prompt[-1])
    text = TextBuilder(model.tokenizer, last, stop, False, None)
    for token in ids:
        text.add(model.tokenizer.token_of(token))
        if text.stopped:
            break
    return text.text, text.stopped


def reference_beams(
    model: TableModel, prompt: list[int], config: GenerationConfig
) -> list[tuple[str, str, int]]:
    """Beam search from its definition: (text, finish reason, words) of the best hypotheses."""
    beams, length_penalty = config.num_beams, config.length_penalty

    def normalized(total: float, ids: list[int]) -> float:
        return total / max(len(ids), 1) ** length_penalty

    running: list[tuple[float, list[int]]] = [(0.0, [])]
    finished: list[tuple[float, list[int], str]] = []
    for _ in range(config.max_words):
        candidates = []
        for b, (total, ids) in enumerate(running):
            logp = log_softmax32(reference_rules(model, [*prompt, *ids], len(ids), config))
            if logp is None:  # the rules left no token: finished as it stands
                finished.append((normalized(total, ids), ids, "end"))
                continue
            candidates += [(total + float(logp[t]), b, t) for t in range(len(logp)) if logp[t] > -np.inf]
        candidates.sort(key=lambda c: (-c[0], c[1], c[2]))
        grown: list[tuple[float, list[int]]] = []
        for rank, (total, b, token) in enumerate(candidates):
            ids = running[b][1]
            if token == EOD:
                if rank < beams:
                    finished.append((normalized(total, ids), ids, "end"))
                continue
            if config.stop and rendered(model, prompt, config.stop, [*ids, token])[1]:
                if rank < beams:
                    finished.append((normalized(total, [*ids, token]), [*ids, token], "stop"))
                continue
            grown.append((total, [*ids, token]))
            if len(grown) == beams:
                break
        if len(finished) >= beams or not grown:
            break
        running = grown
    else:
        finished += [(normalized(total, ids), ids, "length") for total, ids in running]
    best = sorted(finished, key=lambda h: -h[0])[: config.num_return_sequences]
    out = [(rendered(model, prompt, config.stop, ids)[0], reason, len(ids)) for _, ids, reason in best]
    return out + [("", "end", 0)] * (config.num_return_sequences - len(out))


def beam_results(model: TableModel, prompts: list[list[int]], config: GenerationConfig) -> list[tuple]:
    search = BeamSearch(model, prompts, config)
    while search.step():
        pass
    return [(h.text, h.finish_reason, h.words) for h in search.results()]


def sampled(model: TableModel, prompts: list[list[int]], config: GenerationConfig) -> list[list[int]]:
    generator = Generator(model)
    rows = generator.add_ids(prompts, config)
    generator.run()
    return [generator.tokens(row) for row in rows]


def random_prompts(rng: np.random.Generator, model: TableModel) -> list[list[int]]:
    return [
        [EOD, *rng.integers(UNK, model.vocab_size, size=int(rng.integers(0, 5))).tolist()]
        for _ in range(int(rng.integers(1, 4)))
    ]


def common_options(rng: np.random.Generator) -> dict:
    options = {
        "max_words": int(rng.integers(1, 7)),
        "no_repeat_ngram_size": int(rng.choice([0, 0, 1, 2, 3, 9])),
        "repetition_penalty": float(rng.choice([1.0, 1.0, 1.5, 0.7, 3.0])),
        "stop_at_end": bool(rng.random() < 0.8),
        "allow_unknown": bool(rng.random() < 0.2),
    }
    options["min_words"] = int(rng.integers(0, options["max_words"] + 1)) if rng.random() < 0.3 else 0
    return options


# ----------------------------------------------------------------- the tests


@pytest.mark.parametrize("chunk", range(4))
def test_sampling_draws_what_the_reference_distribution_gives(chunk):
    """Temperature, top-k, top-p, the repetition penalty, n-gram bans, min_words and the specials, in
    batches of prompts and sequences: every token equals the reference's inverse-CDF draw with the
    row's own stream of the seed."""
    for case in range(chunk * 60, (chunk + 1) * 60):
        rng = np.random.default_rng(case)
        model = random_model(rng, int(rng.integers(2, 8)))
        options = common_options(rng)
        options.update(
            seed=case,
            temperature=float(rng.choice([0, 1, 0.5, 2.0])),
            top_k=[None, 1, 2, 3][int(rng.integers(0, 4))],
            top_p=[None, 1e-6, 0.3, 0.7, 0.95, 1.0][int(rng.integers(0, 6))],
            num_return_sequences=int(rng.integers(1, 4)),
        )
        config = GenerationConfig(**options)
        prompts = random_prompts(rng, model)
        assert sampled(model, prompts, config) == reference_sample(model, prompts, config), (case, options)


@pytest.mark.parametrize("chunk", range(4))
def test_beam_search_returns_what_the_definition_gives(chunk):
    """Beam search against a brute-force beam search over every candidate of every beam: the same
    texts, finish reasons and word counts (length_penalty, ends, stop strings, max_words, min_words,
    the rules, beams that run out of words, several prompts in one search)."""
    stops = [(), (), ("b c",), ("c",), ("a b", "d"), ("b", "c", "d"), ("b c", "d", "e")]
    for case in range(chunk * 60, (chunk + 1) * 60):
        rng = np.random.default_rng(1000 + case)
        model = random_model(rng, int(rng.integers(2, 6)))
        options = common_options(rng)
        beams = int(rng.integers(1, 5))
        options.update(
            num_beams=beams,
            num_return_sequences=int(rng.integers(1, beams + 1)),
            length_penalty=float(rng.choice([0.0, 1.0, 2.0, -1.0, 0.5])),
            stop=stops[int(rng.integers(0, len(stops)))],
        )
        config = GenerationConfig(**options)
        prompts = random_prompts(rng, model)
        expected = [h for prompt in prompts for h in reference_beams(model, prompt, config)]
        assert beam_results(model, prompts, config) == expected, (case, options, prompts)


def test_stop_strings_do_not_narrow_the_beam():
    """With stop strings more than ``num_beams`` of the ``2 * num_beams`` best candidates can finish: the
    search kept fewer running beams than asked for (one of two here), though other candidates were
    left, and so missed "e", the second best hypothesis."""
    words = ["a", "b", "c", "d", "e"]
    vocab = 3 + len(words)
    table = np.full((vocab,) * 3, -5.0)
    table[:, EOD, 3:] = [3.0, 4.0, 2.9, 2.8, 2.7]  # first word: b, a, c, d, e
    table[:, 3, 3], table[:, 3, 4:] = 0.0, -1.0  # after "a": every word rather alike
    table[:, 7, EOD] = 5.0  # after "e": the end, almost surely
    model = TableModel(table, words)
    config = GenerationConfig(num_beams=2, num_return_sequences=2, max_words=4, stop=("b", "c", "d"))
    expected = reference_beams(model, [EOD], config)
    assert expected == [("", "stop", 1), ("e", "end", 1)]
    assert beam_results(model, [[EOD]], config) == expected


def test_one_beam_is_greedy_decoding():
    for case in range(40):
        rng = np.random.default_rng(2000 + case)
        model = random_model(rng)
        options = common_options(rng)
        prompts = random_prompts(rng, model)
        greedy = sampled(model, prompts, GenerationConfig(temperature=0, **options))
        texts = [rendered(model, p, (), ids)[0] for p, ids in zip(prompts, greedy, strict=True)]
        assert [h[0] for h in beam_results(model, prompts, GenerationConfig(num_beams=1, **options))] == texts


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7])
def test_ngram_bans_match_the_brute_force_across_the_prompt(n):
    """n=1 (every token seen), n longer than the text, n-grams that span the prompt and the text: the
    incremental history, the one read from ids and the vectorized one agree with the brute force."""
    rng = np.random.default_rng(n)
    for _ in range(60):
        ids = rng.integers(0, 4, size=int(rng.integers(1, 12))).tolist()
        cut = int(rng.integers(1, len(ids) + 1))  # the prompt's end
        history = History(ids[:cut], n, False)
        for length in range(cut, len(ids) + 1):
            expected = reference_bans(ids[:length], n)
            assert set(history.ngram_bans()) == expected
            assert set(SequenceHistory(np.array(ids[:length]), n, False).ngram_bans()) == expected
            rows, tokens = ngram_bans(np.array([ids[:length]] * 2), n)
            assert {(r, t) for r, t in zip(rows.tolist(), tokens.tolist(), strict=True)} == {
                (r, t) for r in range(2) for t in expected
            }
            if length < len(ids):
                history.add(ids[length])


def test_repetition_penalty_divides_positive_and_multiplies_negative_logits_before_temperature():
    """Hugging Face's arithmetic, on the prompt's tokens too, before temperature and top-k: a word of
    the prompt at logit 2 with penalty 2 ties one at 1, and one at -1 ties one at -2."""
    words = ["a", "b", "c", "d", "e"]
    table = np.full((8,) * 3, -30.0)
    table[:, :, 3:] = [2.0, 1.0, -1.0, -2.0, -30.0]
    model = TableModel(table, words)
    prompt = [EOD, 3, 5]  # "a" and "c" are in the prompt
    config = GenerationConfig(max_words=1, repetition_penalty=2.0, temperature=0.5, top_k=2, seed=0)
    counts = np.zeros(8)
    for seed in range(400):
        (row,) = sampled(model, [prompt], GenerationConfig(**{**config.__dict__, "seed": seed}))
        counts[row[0]] += 1
    assert set(np.flatnonzero(counts)) == {3, 4}  # top-2 after the penalty: a (2 / 2 = 1) and b (1)
    assert 150 < counts[3] < 250  # a tie: even odds
    x = reference_rules(model, prompt, 0, GenerationConfig(repetition_penalty=2.0))
    assert x[3:7].tolist() == [1.0, 1.0, -2.0, -2.0]


def test_top_k_keeps_ties_and_top_p_keeps_at_least_the_most_likely():
    words = ["a", "b", "c", "d"]
    table = np.zeros((7,) * 3)
    table[:, :, 3:] = [1.0, 3.0, 3.0, 0.5]
    model = TableModel(table, words)
    firsts = {
        key: {
            sampled(model, [[EOD]], GenerationConfig(max_words=1, seed=s, **options))[0][0] for s in range(60)
        }
        for key, options in {
            "k1": {"top_k": 1},
            "k2": {"top_k": 2},
            "p": {"top_p": 1e-9},
            "greedy": {"temperature": 0},
        }.items()
    }
    assert firsts == {"k1": {4, 5}, "k2": {4, 5}, "p": {4}, "greedy": {4}}


def test_min_words_forbids_the_end_before_n_words():
    words = ["a", "b"]
    table = np.zeros((5,) * 3)
    table[:, :, EOD] = 10.0  # the model would end at once
    model = TableModel(table, words)
    for min_words in range(4):
        config = GenerationConfig(max_words=6, min_words=min_words, temperature=0)
        assert [len(t) for t in sampled(model, [[EOD], [EOD, 3, 4]], config)] == [min_words] * 2
        beams = beam_results(model, [[EOD]], GenerationConfig(max_words=6, min_words=min_words, num_beams=2))
        assert [h[2] for h in beams] == [min_words]


def test_the_document_start_is_not_a_word_the_repetition_rules_read():
    """The end-of-document id that opens a prompt marks where the document starts. Read as a word, it
    was banned for good by ``no_repeat_ngram_size=1`` (no document could end) and penalized by a
    repetition penalty (every document ran longer); the rules now read the text's words alone."""
    words = ["a", "b"]
    table = np.zeros((5,) * 3)
    table[:, :, EOD] = 1.0  # the end, a little ahead of "a" (0.9) and "b" (0)
    table[:, :, 3] = 0.9
    model = TableModel(table, words)
    prompts = [[EOD], [EOD, 4]]
    for options in ({"no_repeat_ngram_size": 1}, {"repetition_penalty": 5.0}, {"no_repeat_ngram_size": 2}):
        config = GenerationConfig(max_words=6, temperature=0, **options)
        assert sampled(model, prompts, config) == [[], []], options
        beams = GenerationConfig(max_words=6, num_beams=2, **options)
        assert [h[1:] for h in beam_results(model, prompts, beams)] == [("end", 0)] * 2, options
    # A word the text holds is still banned (and penalized) as before.
    config = GenerationConfig(max_words=6, temperature=0, no_repeat_ngram_size=1, stop_at_end=False)
    assert sampled(model, prompts, config) == [[3, 4], [3]]


def test_a_stop_string_spanning_words_cuts_the_text_before_it():
    words = ["a", "b", "c"]
    table = np.full((6,) * 3, -9.0)
    for previous, last in itertools.product(range(6), range(6)):
        table[previous, last, 3 + (last - 2) % 3 if last >= 2 else 3] = 9.0  # a b c a b c ...
    table[:, :, EOD] = -50.0  # never among the best candidates
    model = TableModel(table, words)
    generator = Generator(model)
    (row,) = generator.add_ids([[EOD]], GenerationConfig(max_words=9, temperature=0, stop=("b c a",)))
    generator.run()
    assert generator.text(row) == "a " and generator.finish_reason(row) == "stop"  # the space stays
    config = GenerationConfig(max_words=9, num_beams=2, stop=("b c a",))
    assert beam_results(model, [[EOD]], config)[0] == ("a ", "stop", 4)


def test_a_seeded_row_gives_the_same_tokens_whatever_else_runs_in_the_batch():
    """The first prompt of a call alone and in a batch of three; and a second call's rows in the same
    generator, with other options, beside it."""
    for case in range(20):
        rng = np.random.default_rng(3000 + case)
        model = random_model(rng, 6)
        prompts = [*random_prompts(rng, model), [EOD, 3, 4]]
        config = GenerationConfig(max_words=8, seed=case, top_k=int(rng.integers(2, 6)), top_p=0.9)
        alone = sampled(model, prompts[:1], config)
        together = sampled(model, prompts, config)
        assert together[0] == alone[0]
        generator = Generator(model)
        other = generator.add_ids(prompts[::-1], GenerationConfig(max_words=5, seed=7, temperature=0.7))
        mine = generator.add_ids(prompts, config)
        generator.run()
        assert [generator.tokens(r) for r in mine] == together
        assert [generator.tokens(r) for r in other] == sampled(
            model, prompts[::-1], GenerationConfig(max_words=5, seed=7, temperature=0.7)
        )


class CachedTableModel(TableModel):
    """A TableModel whose file "stores" cache settings; its h (state[-2]) is its last two token ids,
    so the cache's similarities are exact small integers."""

    def __init__(self, table: np.ndarray, words: list[str], settings: CacheConfig) -> None:
        super().__init__(table, words)
        self.cache_settings = settings


class OwnCacheReference:
    """What a beam whose text so far is ``ids`` (prompt included) must see: the model's logits after
    ``ids`` mixed with a cache fed exactly ``ids``, one token at a time (the runtime's own
    ContinuousCache as the mixture's oracle: tests/test_cache.py checks it against the formula)."""

    def __init__(self, model: CachedTableModel) -> None:
        self.model, self.tokenizer = model, model.tokenizer

    def logits_after(self, ids: list[int]) -> np.ndarray:
        state = self.model.initial_state(1)
        cache = ContinuousCache(self.model.cache_settings, 1, state[-2].shape[1])
        for token in ids:
            logits, state = self.model.forward(np.array([[token]], dtype=np.int64), state)
            cache.observe(np.array([token], dtype=np.int64), state[-2])
        last = np.array(logits[:, -1], dtype=np.float32)
        cache.mix_logits(last)
        return last[0]


def test_beam_search_with_a_cache_gives_each_beam_its_own_cache():
    """Against the brute-force beam search over logits mixed with each hypothesis's own cache."""
    reordered = 0
    for case in range(80):
        rng = np.random.default_rng(5000 + case)
        base = random_model(rng, int(rng.integers(2, 6)))
        settings = CacheConfig(
            theta=float(rng.choice([0.3, 1.0, 2.0])),
            mix=float(rng.choice([0.2, 0.5, 0.8])),
            window=int(rng.choice([2, 3, 64])),
        )
        model = CachedTableModel(base.table, base.tokenizer.tokens[3:], settings)
        options = common_options(rng)
        options["max_words"] = int(rng.integers(3, 8))  # long enough for beams to reorder
        beams = int(rng.integers(2, 5))
        options.update(
            num_beams=beams,
            num_return_sequences=int(rng.integers(1, beams + 1)),
            length_penalty=float(rng.choice([0.0, 1.0, 2.0])),
            cache=True,
        )
        config = GenerationConfig(**options)
        prompts = random_prompts(rng, model)
        reference = OwnCacheReference(model)
        expected = [h for prompt in prompts for h in reference_beams(reference, prompt, config)]
        got = beam_results(model, prompts, config)
        assert got == expected, (case, options, prompts)
        plain = [h for prompt in prompts for h in reference_beams(model, prompt, config)]
        reordered += expected != plain
    assert reordered >= 10  # the cache changed the search's answer in enough cases to mean something


def test_ranks_count_the_tokens_that_beat_the_target_and_those_tied_with_a_lower_id():
    """Ties rank as greedy decoding picks (argmax: the lower id first); counting only the tokens that
    strictly beat the target put every tied one first."""
    words = ["a", "b", "c"]  # ids 3, 4, 5
    table = np.zeros((6, 6, 6))  # every token equally likely...
    table[:, :, 5] = -1.0  # ...but "c", below all five others
    model = TableModel(table, words)
    ids = np.array([EOD, 3, 4, 5, EOD])
    logprobs, ranks = token_logprobs(model, ids)
    assert ranks.tolist() == [3, 4, 5, EOD]  # a and b after ids 0-2 (and a); c below all; <eod> after 0, 1
    assert logprobs[0] == pytest.approx(-np.log(5 + np.exp(-1.0)))
    scores = evaluate_ids(model, [ids.tolist()], cache=False)
    assert scores.accuracy == 0.0 and scores.top5_accuracy == 0.75
