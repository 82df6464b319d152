import itertools

import numpy as np
import pytest

from nextword.runtime import sampling as sampling_module
from nextword.runtime.sampling import largest, sample, sample_next
from reference import sampling_v2 as reference


def test_greedy_takes_the_largest_allowed_logit():
    logits = np.array([[5.0, 1.0, 9.0, 3.0], [0.0, 7.0, 2.0, 7.5]], dtype=np.float32)
    rng = np.random.default_rng(0)
    assert sample_next(logits, temperature=0, top_k=None, rngs=rng).tolist() == [2, 3]
    assert sample_next(logits, temperature=0, top_k=None, rngs=rng, banned=[2, 3]).tolist() == [0, 1]


def test_banned_ids_are_never_sampled():
    logits = np.zeros((64, 5), dtype=np.float32)
    logits[:, 1] = 50.0  # overwhelmingly likely, but banned
    ids = sample_next(logits, temperature=1.0, top_k=None, rngs=np.random.default_rng(0), banned=[0, 1])
    assert not np.isin(ids, [0, 1]).any()


def test_top_k_restricts_to_the_k_most_likely():
    logits = np.log(np.array([[0.05, 0.3, 0.1, 0.4, 0.15]] * 2000))
    ids = sample_next(logits, temperature=1.0, top_k=2, rngs=np.random.default_rng(1))
    assert set(ids.tolist()) == {1, 3}


def test_sampling_follows_the_softmax_and_temperature():
    probs = np.array([0.1, 0.2, 0.7])
    logits = np.log(np.tile(probs, (20000, 1)))
    ids = sample_next(logits, temperature=1.0, top_k=None, rngs=np.random.default_rng(2))
    assert np.allclose(np.bincount(ids, minlength=3) / len(ids), probs, atol=0.015)
    cold = sample_next(logits, temperature=0.25, top_k=None, rngs=np.random.default_rng(2))
    sharpened = probs**4 / (probs**4).sum()
    assert np.allclose(np.bincount(cold, minlength=3) / len(cold), sharpened, atol=0.015)


def test_same_generator_seed_same_draws_and_no_global_state():
    logits = np.random.default_rng(3).normal(size=(8, 100))
    before = np.random.get_state()[1].copy()
    a = sample_next(logits, temperature=1.0, top_k=10, rngs=np.random.default_rng(42))
    b = sample_next(logits, temperature=1.0, top_k=10, rngs=np.random.default_rng(42))
    assert a.tolist() == b.tolist()
    assert (np.random.get_state()[1] == before).all()


def test_caller_logits_are_not_modified():
    logits = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    sample_next(logits, temperature=0.5, top_k=1, rngs=np.random.default_rng(0), banned=[2])
    assert logits.tolist() == [[1.0, 2.0, 3.0]]


def test_top_p_keeps_the_smallest_set_holding_p():
    probs = np.array([0.5, 0.3, 0.15, 0.05])
    logits = np.log(np.tile(probs, (4000, 1)))
    ids = sample_next(logits, temperature=1.0, top_p=0.75, rngs=np.random.default_rng(0))
    assert set(ids.tolist()) == {0, 1}  # 0.5 < 0.75 <= 0.5 + 0.3
    counts = np.bincount(ids, minlength=4) / len(ids)
    assert np.allclose(counts[:2], [0.5 / 0.8, 0.3 / 0.8], atol=0.03)
    tiny = sample_next(logits[:50], temperature=1.0, top_p=1e-9, rngs=np.random.default_rng(0))
    assert set(tiny.tolist()) == {0}  # the most likely token always stays


def test_each_row_draws_from_its_own_generator():
    logits = np.zeros((3, 50))
    rngs = [np.random.default_rng(s) for s in (1, 2, 3)]
    batch = sample_next(logits, temperature=1.0, rngs=rngs)
    alone = [
        sample_next(logits[i : i + 1], temperature=1.0, rngs=np.random.default_rng(s))[0]
        for i, s in enumerate((1, 2, 3))
    ]
    assert batch.tolist() == alone


def test_largest_finds_the_k_largest_with_their_ties():
    rng = np.random.default_rng(0)
    for size, k in ((50, 3), (8270, 8), (33080, 8), (5000, 40)):
        row = rng.normal(size=size)
        row[rng.integers(0, size, size // 10)] = -np.inf
        ids, values = largest(row, k)
        assert list(ids) == sorted(np.argsort(-row, kind="stable")[:k].tolist())
        assert np.array_equal(values, row[ids])
    row = np.zeros(1000)
    row[:5] = -np.inf  # a tie for the k-th largest: every tied entry is kept
    ids, _ = largest(row, 3)
    assert len(ids) == 995
    row = np.full(4000, -np.inf)
    row[[7, 3999]] = [1.0, 2.0]  # mostly -inf, as at a beam search's first step
    assert largest(row, 2)[0].tolist() == [7, 3999]


def test_a_sequence_history_answers_as_a_history_built_token_by_token():
    from nextword.runtime.rules import History, SequenceHistory

    rng = np.random.default_rng(1)
    for n in (0, 1, 2, 3, 4):
        for length in (0, 1, 2, 3, 5, 40, 300):
            ids = rng.integers(0, 6, length)  # a small vocabulary: n-grams repeat
            for penalty in (False, True):
                built = History(ids.tolist(), n, penalty)
                read = SequenceHistory(np.asarray(ids, dtype=np.int64), n, penalty)
                assert set(read.ngram_bans()) == set(built.ngram_bans()), (n, length)
                assert sorted(read.seen().tolist()) == sorted(built.seen().tolist())


def test_ngram_bans_of_many_rows_at_once_are_each_rows_sequence_history_bans():
    from nextword.runtime.rules import SequenceHistory, ngram_bans

    rng = np.random.default_rng(2)
    for n in (0, 1, 2, 3, 4):
        for rows, length in ((1, 0), (3, 1), (4, 2), (4, 3), (2, 5), (6, 40), (3, 300)):
            ids = rng.integers(0, 6, (rows, length))  # a small vocabulary: n-grams repeat
            where, tokens = ngram_bans(ids, n)
            for r in range(rows):
                expected = set(SequenceHistory(ids[r], n, False).ngram_bans())
                assert set(tokens[where == r].tolist()) == expected, (n, rows, length, r)


# ---------------------------------------------------------------- the same ids as the frozen sampler
# runtime/sampling.py's fast paths (one row, top-k bound, exact nucleus) must choose, for the same scores
# and generators, exactly the ids of the sampler they replaced (tests/reference/sampling_v2.py): seeds
# keep giving the same texts, and the JavaScript runtime, which mirrors that arithmetic, stays in step.

TEMPERATURES = (0, 0.7, 1, 1.3)
TOP_PS = (None, 0.1, 0.5, 0.9, 0.99)
SOME_OPTIONS = ((1, None, None), (0.7, None, 0.9), (1, 40, None), (1.3, None, 0.99), (0.7, 5, 0.5))


def _shaped_rows(vocab: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Score rows (V,) of the shapes a sampler meets, and a few it should survive."""
    rows = [
        rng.normal(size=vocab) * 3,  # a model's logits
        rng.normal(size=vocab) * 0.05,  # nearly flat
        rng.normal(size=vocab) * 12,  # very peaked
        np.round(rng.normal(size=vocab) * 2),  # many ties
        np.zeros(vocab),  # all tied
        -np.sort(rng.exponential(size=vocab))[rng.permutation(vocab)] * 30,  # long tail over many exponents
    ]
    banned = rng.normal(size=vocab) * 3
    banned[rng.random(vocab) < 0.4] = -np.inf  # banned tokens
    rows.append(banned)
    few = np.full(vocab, -np.inf)
    few[rng.choice(vocab, min(3, vocab), replace=False)] = [2.0, 1.0, 2.0][: min(3, vocab)]  # few allowed
    rows.append(few)
    rows.append(np.full(vocab, -np.inf))  # nothing allowed: -1
    dominant = rng.normal(size=vocab)
    dominant[rng.integers(vocab)] = 30.0  # one token holds nearly all the mass
    rows.append(dominant)
    return [row.astype(np.float32) for row in rows]


def _assert_same_ids(scores: np.ndarray, seeds: list[int], temperature: float, top_k, top_p) -> None:
    expected = reference.sample(
        scores.copy(), [np.random.default_rng(s) for s in seeds], temperature, top_k, top_p
    )
    rngs = [np.random.default_rng(s) for s in seeds]
    got = sample(scores.copy(), rngs, temperature, top_k, top_p)
    assert got.dtype == expected.dtype == np.int64
    assert got.tolist() == expected.tolist(), (temperature, top_k, top_p, seeds)
    after = [rng.random() for rng in rngs]  # exactly one draw per row (none for greedy), as before
    reference_rngs = [np.random.default_rng(s) for s in seeds]
    if temperature != 0:
        for rng in reference_rngs:
            rng.random()
    assert after == [rng.random() for rng in reference_rngs]


@pytest.mark.parametrize("vocab", [5, 100, 256, 257, 300, 1000, 8270])
def test_sample_chooses_the_ids_of_the_frozen_sampler(vocab):
    rng = np.random.default_rng(vocab)
    rows = _shaped_rows(vocab, rng)
    cases = 0
    for temperature, top_k, top_p in itertools.product(TEMPERATURES, (None, 1, 5, 40, vocab - 1), TOP_PS):
        for batch in (1, 3):
            for _ in range(2):
                picked = rng.choice(len(rows), batch, replace=False)
                seeds = rng.integers(0, 2**32, batch).tolist()
                _assert_same_ids(np.stack([rows[i] for i in picked]), seeds, temperature, top_k, top_p)
                cases += 1
    assert cases == 4 * 5 * 5 * 2 * 2


def test_sample_matches_the_frozen_sampler_on_every_row_shape_and_many_draws():
    rng = np.random.default_rng(7)
    for vocab in (257, 8270):
        for row in _shaped_rows(vocab, rng):
            for temperature, top_k, top_p in SOME_OPTIONS:
                for seed in range(12):
                    _assert_same_ids(row[None], [seed], temperature, top_k, top_p)


def test_sample_matches_the_frozen_sampler_on_the_bundled_models_logits(bundled_rows):
    rng = np.random.default_rng(11)
    for i, row in enumerate(bundled_rows):
        for temperature, top_k, top_p in itertools.product(TEMPERATURES, (None, 40), TOP_PS):
            _assert_same_ids(row[None], [int(rng.integers(2**32))], temperature, top_k, top_p)
        if i % 8 == 0:  # and batches of the model's rows
            seeds = rng.integers(0, 2**32, 3).tolist()
            _assert_same_ids(bundled_rows[i : i + 3], seeds, 1, None, 0.9)


@pytest.fixture(scope="module")
def bundled_rows() -> np.ndarray:
    """48 rows (48, V) of the bundled model's logits as it generates."""
    from nextword.runtime import load
    from nextword.runtime.default import BUNDLED_MODEL

    model = load(BUNDLED_MODEL)
    logits, state = model.feed(
        np.asarray([model.tokenizer.encode("a neural network")]), model.initial_state(1)
    )
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(48):
        rows.append(logits[0].astype(np.float32))
        chosen = sample(logits.astype(np.float32), [rng], 1.0)
        step, state = model.forward(chosen[:, None], state, logits_from=-1)
        logits = step[:, -1]
    return np.stack(rows)


def test_the_exact_nucleus_shortcut_runs_and_gives_way_where_it_must(monkeypatch):
    """The top-p shortcut serves ordinary rows, and hands over to the sorted path (which must then give
    the same ids) when the set ends below the exponents it looks at, or its float64 sums could round."""
    from nextword.runtime import sampling

    answers = []
    shortcut = sampling._exact_nucleus

    def watched(*args):
        found = shortcut(*args)
        answers.append(found is not None)
        return found

    monkeypatch.setattr(sampling, "_exact_nucleus", watched)
    rng = np.random.default_rng(5)
    ordinary = (rng.normal(size=8270) * 3).astype(np.float32)
    _assert_same_ids(ordinary[None], [1], 1, None, 0.9)
    assert answers == [True]
    deep = -np.linspace(0, 200, 8270).astype(np.float32)  # probs from 1 down to 0
    _assert_same_ids(deep[None], [2], 1, None, 1 - 1e-16)  # the set ends 32+ exponents below the top
    heavy = np.zeros(8270, dtype=np.float32)
    heavy[4000:] = -12.0  # 4,000 probs of 1, 4,270 of 2**-17.3: float64 sums over both round
    _assert_same_ids(heavy[None], [3], 1, None, 0.999999)
    flat = np.zeros(300, dtype=np.float32)  # the mass reaches the goal within 1e-9 of it
    _assert_same_ids(flat[None], [4], 1, None, 1 - 1e-10)
    assert answers[1:] == [False, False, False]
    tie = np.zeros(8270, dtype=np.float32)  # every token tied: the set is the first ids
    _assert_same_ids(tie[None], [4], 1, None, 0.5)
    assert answers[-1]


def test_largest_gives_the_frozen_samplers_candidates():
    rng = np.random.default_rng(9)
    for vocab in (3, 50, 300, 8270, 33080):
        for row in _shaped_rows(vocab, rng):
            for k in sorted({1, 2, 5, 40, 100, 700, vocab - 1, vocab} & set(range(1, vocab + 1))):
                ids, values = largest(row.copy(), k)
                want_ids, want_values = reference.largest(row.copy(), k)
                assert ids.tolist() == want_ids.tolist(), (vocab, k)
                assert values.tobytes() == want_values.tobytes()


class _Fixed:
    """A generator stand-in whose draw is ``value``: puts the draw exactly where rounding decides."""

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def test_draws_that_land_exactly_on_a_boundary_choose_as_before():
    for vocab in (256, 300, 8270):
        equal = np.zeros((1, vocab), dtype=np.float32)  # probs of 1: every partial sum is exact
        gaps = equal.copy()
        gaps[0, 1::7] = -np.inf  # and zero-probability tokens to step over
        for scores, value in itertools.product(
            (equal, gaps), (0.0, 0.25, 0.5, 0.75, 1 - 2**-30, 1 - 1 / vocab)
        ):
            for top_k, top_p in ((None, None), (40, None), (None, 0.5), (100, 0.75), (None, 0.999)):
                expected = reference.sample(scores.copy(), [_Fixed(value)], 1.0, top_k, top_p)
                assert sample(scores.copy(), [_Fixed(value)], 1.0, top_k, top_p).tolist() == expected.tolist()


def test_ties_across_the_top_p_boundary_stay_in_id_order():
    rng = np.random.default_rng(3)
    scores = np.full(8270, -20.0, dtype=np.float32)
    where = rng.permutation(8270)
    scores[where[0]] = 0.0
    scores[where[1:601]] = np.where(rng.random(600) < 0.5, -3.0, -3.01)  # one eighth of an exponent
    for top_p in (0.2, 0.26, 0.3, 0.4):  # the set ends among the tied tokens at -3
        for seed in range(5):
            _assert_same_ids(scores[None], [seed], 1, None, top_p)
    chosen = {int(sample(scores[None].copy(), [_Fixed(s / 50)], 1.0, None, 0.26)[0]) for s in range(50)}
    tied = np.flatnonzero(scores == -3.0)
    assert chosen & set(tied[:20].tolist()) and not chosen & set(tied[-20:].tolist())  # the lowest ids


def test_the_draw_sees_the_same_candidates_and_probabilities_bit_for_bit(monkeypatch):
    """Stronger than equal ids: whatever the draw, the arrays it draws from are the same bytes."""
    from nextword.runtime import sampling

    seen: dict[str, list[bytes]] = {"before": [], "after": []}

    def recording(module, name, key):
        inner = getattr(module, name)

        def record(*args):
            seen[key].append(b"|".join(np.asarray(a).tobytes() for a in args[:-1]))
            return inner(*args)

        monkeypatch.setattr(module, name, record)

    for name in ("_draw_among", "_draw_block_row", "_draw_blocks"):
        recording(reference, name, "before")
        recording(sampling, name, "after")
    rng = np.random.default_rng(21)
    for vocab in (300, 8270):
        rows = _shaped_rows(vocab, rng)
        for temperature, top_k, top_p in itertools.product((0.7, 1, 1.3), (None, 5, 40), TOP_PS):
            for batch in (1, 3):
                scores = np.stack([rows[i] for i in rng.choice(len(rows), batch, replace=False)])
                reference.sample(scores.copy(), [np.random.default_rng(0)] * batch, temperature, top_k, top_p)
                sample(scores.copy(), [np.random.default_rng(0)] * batch, temperature, top_k, top_p)
                assert seen["after"] == seen["before"], (vocab, temperature, top_k, top_p, batch)
    assert len(seen["after"]) > 250


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # inf - inf, on purpose
def test_rows_with_infinite_scores_answer_as_before():
    """A +inf score (no model makes one) still gets the frozen sampler's answer: its id, or its error."""
    rng = np.random.default_rng(13)
    for vocab in (100, 8270):
        row = (rng.normal(size=vocab) * 3).astype(np.float32)
        row[rng.choice(vocab, 2, replace=False)] = np.inf
        for temperature, top_k, top_p in itertools.product((0, 0.7, 1), (None, 5), (None, 0.9)):
            answers = []
            for module in (reference, sampling_module):
                try:
                    answers.append(
                        module.sample(row[None].copy(), [np.random.default_rng(1)], temperature, top_k, top_p)
                    )
                except (ValueError, IndexError) as error:  # NaN probabilities (inf - inf) trip both alike
                    answers.append(f"{type(error).__name__}: {error}")
            assert str(answers[0]) == str(answers[1]), (vocab, temperature, top_k, top_p)
