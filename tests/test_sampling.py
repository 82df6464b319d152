import numpy as np

from nextword.runtime.sampling import sample_next


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
    from nextword.runtime.sampling import largest

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
