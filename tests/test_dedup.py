"""Deduplication before the split: exact duplicates dropped, near-duplicate groups kept on one side,
memory bounded by hashes, and the split rebuilt exactly from what a model file records. No TensorFlow."""

import random
import tracemalloc
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import (
    REFERENCE_CORPUS,
    WORDS,
    edited,
    legacy_bundled_record,
    random_text,
    synthetic_documents,
    write_corpus,
)
from nextword.corpus import (
    CorpusConfig,
    CorpusError,
    load_documents,
    rebuild_split,
    recorded_split,
    split_corpus,
    split_documents,
    validation_indices,
)
from nextword.corpus.dedup import components, find_duplicates
from nextword.corpus.dev import dev_mask, split_dev_mask
from nextword.corpus.minhash import document_words
from nextword.corpus.split import DROPPED, TRAIN, VAL, DocumentSplit
from nextword.runtime.provenance import (
    SPLIT_BY_DOCUMENT,
    SPLIT_DEDUPLICATED,
    SPLIT_DEDUPLICATED_V1,
    SPLIT_DEDUPLICATED_V2,
    SPLIT_DEDUPLICATED_V3,
    SPLIT_DEDUPLICATED_V4,
    SPLIT_DEDUPLICATED_V5,
    DataCounts,
    DedupSettings,
    Provenance,
    SplitRecord,
)

DEFAULT = DedupSettings()


def family_corpus(seed: int = 0, families: int = 40, singles: int = 200) -> tuple[list[str], list[int]]:
    """Documents in corpus order, and for each the family it belongs to (its near-duplicates' family)."""
    rng = random.Random(seed)
    documents, family = [], []
    for f in range(families):
        base = random_text(rng)
        for _ in range(rng.randint(2, 4)):
            documents.append(edited(rng, base, 4))
            family.append(f)
    for s in range(singles):
        documents.append(random_text(rng))
        family.append(families + s)
    order = list(range(len(documents)))
    rng.shuffle(order)
    return [documents[i] for i in order], [family[i] for i in order]


def test_exact_duplicates_fold_case_whitespace_unicode_and_punctuation_first_kept():
    docs = [
        "A neural network, trained.",
        "a  NEURAL\nnetwork trained",  # case, whitespace, punctuation
        "A neural network trained!",
        "Ａ neural network trained",  # fullwidth A: NFKC
        "A neural network, retrained.",
        "...",
        "!!!",  # no words: compared by their folded text
        "...",
    ]
    found = find_duplicates(docs, DEFAULT)
    assert found.dropped.tolist() == [False, True, True, True, False, False, False, True]
    assert found.exact_duplicates == 4
    assert document_words("Ａ Neural-Network's (12)") == ["a", "neural", "network", "s", "12"]


def test_near_duplicates_are_grouped_and_unrelated_documents_are_not():
    docs, family = family_corpus()
    found = find_duplicates(docs, DEFAULT)
    assert found.exact_duplicates == 0
    group, family = found.group, np.array(family)
    for f in set(family.tolist()):
        members = np.flatnonzero(family == f)
        assert len(set(group[members].tolist())) == 1, f"family {f} was split into several groups"
    for g in set(group.tolist()):
        assert len(set(family[group == g].tolist())) == 1, "unrelated documents share a group"
    assert found.near_duplicate_groups == 40
    assert found.near_duplicate_documents == int((family < 40).sum())
    assert all(group[i] <= i for i in range(len(docs)))  # a group is named by its first document


def test_the_threshold_decides_how_close_a_near_duplicate_must_be():
    rng = random.Random(3)
    base = random_text(rng, 200)
    close, far = edited(rng, base, 4), edited(rng, base, 60)  # about 0.8 and 0.1 shingle similarity
    assert find_duplicates([base, close, far], DEFAULT).group.tolist() == [0, 0, 2]
    assert find_duplicates([base, close, far], DedupSettings(threshold=0.95)).group.tolist() == [0, 1, 2]


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(max_codepoint=127)) | st.text())
def test_the_words_of_a_document_are_the_runs_of_letters_and_digits(text):
    import re
    import unicodedata

    assert document_words(text) == re.findall(r"\w+", unicodedata.normalize("NFKC", text).casefold())


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 40).flatmap(
        lambda n: st.tuples(
            st.just(n), st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=60)
        )
    )
)
def test_components_match_a_plain_union_find(case):
    n, edges = case
    a = np.array([e[0] for e in edges], dtype=np.int64)
    b = np.array([e[1] for e in edges], dtype=np.int64)
    parent = list(range(n))

    def root(x):
        while parent[x] != x:
            x = parent[x]
        return x

    for x, y in edges:
        rx, ry = root(x), root(y)
        parent[max(rx, ry)] = min(rx, ry)
    expected = [min(i for i in range(n) if root(i) == root(x)) for x in range(n)]
    assert components(np.arange(n), a, b).tolist() == expected


def test_a_group_never_straddles_the_split_and_duplicates_are_dropped(tmp_path):
    docs, family = family_corpus(seed=1)
    docs = [*docs, docs[0].upper(), docs[5] + " "]  # two exact duplicates at the end
    paths = write_corpus(tmp_path, docs)
    for seed in range(5):
        split = split_corpus(CorpusConfig(paths=(str(paths["jsonl"]),), split_seed=seed))
        labels = split.labels
        assert labels[-2:].tolist() == [DROPPED, DROPPED] and (labels == DROPPED).sum() == 2
        family_sides = {}
        for i, f in enumerate(family):
            family_sides.setdefault(f, set()).add(int(labels[i]))
        assert all(len(sides) == 1 for sides in family_sides.values())
        kept = len(docs) - 2
        assert split.counts == DataCounts(
            documents=len(docs),
            exact_duplicates=2,
            near_duplicate_groups=40,
            near_duplicate_documents=sum(f < 40 for f in family),
            train_documents=int((labels == TRAIN).sum()),
            val_documents=int((labels == VAL).sum()),
        )
        assert round(0.1 * kept) <= split.counts.val_documents < round(0.1 * kept) + 4  # whole groups
        train, val = split.documents()
        assert len(train) == split.counts.train_documents and set(train).isdisjoint(val)
    assert (
        split_corpus(CorpusConfig(paths=(str(paths["csv"]),), split_seed=4)).labels.tolist()
        == labels.tolist()
    )


def test_keep_duplicates_is_the_document_index_split_of_earlier_versions(corpus_files, documents):
    config = CorpusConfig(
        paths=(str(corpus_files["csv"]),), keep_duplicates=True, val_fraction=0.2, split_seed=7
    )
    split = split_corpus(config)
    assert split.record == SplitRecord(SPLIT_BY_DOCUMENT, 0.2, 7)
    assert np.flatnonzero(split.labels == VAL).tolist() == validation_indices(len(documents), 0.2, 7).tolist()
    assert split.documents() == split_documents(documents, 0.2, 7)
    assert split.counts.exact_duplicates is None


def test_a_corpus_of_one_group_cannot_be_split(tmp_path):
    path = tmp_path / "same.txt"
    words = " ".join(f"word{i}" for i in range(60))
    path.write_text(f"{words} first\n\n{words} second\n")  # near-duplicates, not copies
    with pytest.raises(
        CorpusError, match=r"2 distinct document\(s\) in 1 group.*threshold.*keep_duplicates=True"
    ):
        split_corpus(CorpusConfig(paths=(str(path),)))
    path.write_text("the same words\n\nThe SAME words.\n\nthe same, words\n")  # copies: no threshold helps
    with pytest.raises(
        CorpusError, match=r"3 documents are all copies of the first.*keep_duplicates=True"
    ) as error:
        split_corpus(CorpusConfig(paths=(str(path),)))
    assert "threshold" not in str(error.value)
    assert split_corpus(CorpusConfig(paths=(str(path),), keep_duplicates=True)).counts.val_documents == 1


FORMS = (
    "this quarterly report of the {} division describes the results of the quarter for the board of "
    "directors and the shareholders of the company and its partners: the division sold {} units in the "
    "{} region and expects growth in the coming year as described in the sections that follow below",
    "the minutes of the weekly meeting of the {} committee record who attended and what was decided on "
    "each item of the agenda by the members present: the committee approved {} requests from the {} "
    "office and asked the secretary to circulate these minutes to every member before the next meeting",
)


def templated_corpus(form: str, n: int, singles: int, seed: int = 0) -> tuple[list[str], set[int]]:
    """``n`` documents filled in from one form (near-duplicates of one another) among ``singles``
    unrelated documents, shuffled; and the positions of the form's documents."""
    rng = random.Random(seed)
    filled = [form.format(*(rng.choice(WORDS) + str(rng.randrange(100)) for _ in range(3))) for _ in range(n)]
    documents = [(True, d) for d in filled] + [(False, random_text(rng, 60)) for _ in range(singles)]
    rng.shuffle(documents)
    return [d for _, d in documents], {i for i, (from_form, _) in enumerate(documents) if from_form}


def test_a_group_larger_than_the_validation_share_stays_in_training(tmp_path, caplog):
    docs, form = templated_corpus(FORMS[0], 150, 12)
    path = write_corpus(tmp_path, docs)["jsonl"]
    target = round(0.1 * len(docs))
    v1_held_the_form_out = 0
    for seed in range(40):
        config = CorpusConfig(paths=(str(path),), split_seed=seed)
        with caplog.at_level("WARNING", logger="nextword.corpus"):
            split = split_corpus(config)
        assert split.record.scheme == SPLIT_DEDUPLICATED_V5
        assert split.counts.near_duplicate_documents == len(form)  # the form's documents: one group
        assert all(split.labels[i] == TRAIN for i in form)
        assert 0 < split.counts.val_documents <= target  # the unrelated documents fill what they can
        old = split_corpus(config, replace(split.record, scheme=SPLIT_DEDUPLICATED_V1))
        v1_held_the_form_out += all(old.labels[i] == VAL for i in form)
    # Why dedup-v2: the 12 other documents cannot fill the share, so dedup-v1 held out the whole form
    # (150 of 162 documents) for every seed whose walk did not put it last (39 of these 40). It is
    # kept so that the models split that way rebuild their own split.
    assert v1_held_the_form_out >= 30
    assert "documents held out for validation where 16 were asked for" in caplog.text
    assert "raise `near_duplicate_threshold`" in caplog.text
    caplog.clear()  # a split made again only to compare documents with (log=False) says nothing
    with caplog.at_level("INFO", logger="nextword.corpus"):
        again = split_corpus(CorpusConfig(paths=(str(path),), split_seed=0), log=False)
    assert again.counts.val_documents < 0.9 * target and not caplog.records


def test_groups_fill_the_validation_share_without_exceeding_it(tmp_path):
    docs, _ = family_corpus(seed=3, families=30, singles=20)  # groups of 2-4 documents, few singles
    path = write_corpus(tmp_path, docs)["jsonl"]
    for seed in range(8):
        for fraction in (0.1, 0.25):
            split = split_corpus(CorpusConfig(paths=(str(path),), split_seed=seed, val_fraction=fraction))
            target = round(fraction * len(docs))
            assert target - 3 <= split.counts.val_documents <= target, (seed, fraction)


def test_a_corpus_whose_groups_are_all_too_large_is_refused_with_the_fixes(tmp_path):
    first, _ = templated_corpus(FORMS[0], 20, 0, seed=1)
    second, _ = templated_corpus(FORMS[1], 20, 0, seed=2)
    path = write_corpus(tmp_path, first + second)["jsonl"]
    with pytest.raises(
        CorpusError, match=r"no group of near-duplicates fits in the validation share \(4 of 40"
    ):
        split_corpus(CorpusConfig(paths=(str(path),)))
    with pytest.raises(CorpusError, match=r"`near_duplicate_threshold` .*keep_duplicates=True"):
        split_corpus(CorpusConfig(paths=(str(path),)))
    assert split_corpus(CorpusConfig(paths=(str(path),), val_fraction=0.5)).counts.val_documents == 20
    one_form = write_corpus(tmp_path / "one", first)["jsonl"]  # a single group: nothing to share out
    with pytest.raises(CorpusError, match=r"in 1 group\(s\).*raise `near_duplicate_threshold`"):
        split_corpus(CorpusConfig(paths=(str(one_form),)))


def test_the_split_of_a_model_file_is_rebuilt_exactly(tmp_path):
    docs, _ = family_corpus(seed=2)
    path = write_corpus(tmp_path, docs)["csv"]
    config = CorpusConfig(paths=(str(path),), val_fraction=0.2, split_seed=9, near_duplicate_threshold=0.3)
    made = split_corpus(config)
    provenance = Provenance(corpus_files=("corpus.csv",), split=made.record, data=made.counts)
    # What the model file records is enough: the settings of the CorpusConfig given do not matter.
    again = rebuild_split(Provenance.from_dict(provenance.to_dict()), CorpusConfig(paths=(str(path),)))
    assert again.record == made.record and again.labels.tolist() == made.labels.tolist()
    old = Provenance(split=SplitRecord(SPLIT_BY_DOCUMENT, 0.2, 9), data=DataCounts(documents=len(docs)))
    assert rebuild_split(old, CorpusConfig(paths=(str(path),))).documents() == split_documents(docs, 0.2, 9)
    with pytest.raises(CorpusError, match="does not record how its corpus was split"):
        rebuild_split(Provenance(), CorpusConfig(paths=(str(path),)))


def test_rebuilding_from_another_corpus_warns(tmp_path, caplog):
    path = write_corpus(tmp_path, synthetic_documents(30))["csv"]
    provenance = Provenance(split=SplitRecord(), data=DataCounts(documents=31))
    with caplog.at_level("WARNING"):
        rebuild_split(provenance, CorpusConfig(paths=(str(path),)))
    assert "not the split it was trained with" in caplog.text


def test_a_run_without_a_recorded_split_used_the_document_index_split():
    corpus = CorpusConfig(val_fraction=0.3, split_seed=4)
    assert recorded_split({"documents": 10}, corpus) == SplitRecord(SPLIT_BY_DOCUMENT, 0.3, 4)
    record = SplitRecord(SPLIT_DEDUPLICATED, 0.1, 0, DedupSettings(threshold=0.4))
    from dataclasses import asdict

    assert recorded_split({"split": asdict(record)}, corpus) == record
    with pytest.raises(ValueError, match="split scheme 'dedup-v9' is unknown"):
        recorded_split({"split": {**asdict(record), "scheme": "dedup-v9"}}, corpus)


def test_hashes_are_what_stays_in_memory_not_texts(tmp_path):
    rng = random.Random(5)
    paragraphs = [random_text(rng, 400) for _ in range(200)]  # each about 3.5 kB

    def documents():  # 6,000 documents, 20 MB of text, streamed
        for i in range(6000):
            yield paragraphs[i % 200][: 3000 + i % 500] + f" document {i}"

    tracemalloc.start()
    try:
        found = find_duplicates(documents(), DEFAULT)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert found.exact_duplicates == 0 and found.near_duplicate_groups == 200
    assert peak < 6_000_000, f"peak {peak:,} bytes for 20 MB of text"  # a hashing batch + ~30 B a document


def test_settings_are_validated():
    with pytest.raises(ValueError, match=r"threshold must be in \(0, 1\]"):
        CorpusConfig(near_duplicate_threshold=0)
    with pytest.raises(ValueError, match="multiple of band_rows"):
        DedupSettings(num_perm=7)
    assert CorpusConfig().split_record().dedup == DEFAULT
    assert CorpusConfig(keep_duplicates=True).split_record().dedup is None
    assert replace(CorpusConfig(), near_duplicate_threshold=0.5).split_record().dedup.threshold == 0.5


@pytest.mark.corpus
def test_the_old_bundled_model_rebuilds_its_old_split_on_the_reference_corpus():
    provenance = legacy_bundled_record()
    assert provenance.split == SplitRecord(SPLIT_BY_DOCUMENT, 0.1, 0)
    config = CorpusConfig(paths=(str(REFERENCE_CORPUS),))
    split = rebuild_split(provenance, config)
    assert (split.counts.train_documents, split.counts.val_documents) == (3170, 352)
    assert split.documents()[1] == split_documents(load_documents(config.paths, config), 0.1, 0)[1]
    deduplicated = split_corpus(config)
    assert deduplicated.counts.exact_duplicates == 362


@pytest.mark.corpus
def test_the_bundled_model_rebuilds_its_deduplicated_split_on_the_reference_corpus():
    from nextword.runtime import load
    from nextword.runtime.default import BUNDLED_MODEL

    provenance = load(BUNDLED_MODEL).info.provenance
    assert provenance.split.scheme == SPLIT_DEDUPLICATED_V3  # the development part by whole groups
    split = rebuild_split(provenance, CorpusConfig(paths=(str(REFERENCE_CORPUS),)))
    assert split.counts.val_documents == provenance.data.val_documents
    # No group of the reference corpus is too large to hold out: dedup-v1 made the same split.
    older = split_corpus(
        CorpusConfig(paths=(str(REFERENCE_CORPUS),)), replace(split.record, scheme=SPLIT_DEDUPLICATED_V1)
    )
    assert older.labels.tolist() == split.labels.tolist()
    train, val = split.documents()
    assert not {" ".join(d.lower().split()) for d in train} & {" ".join(d.lower().split()) for d in val}
    dev = split_dev_mask(split, provenance.data.dev_documents)
    assert dev.sum() == provenance.data.dev_documents  # the part export tuned the cache on, made again
    groups = split.training_groups()
    assert not set(groups[dev].tolist()) & set(groups[~dev].tolist())  # no near-duplicate trained on
    # Nor does any abstract hold a combining mark, or fall in a false group of the low-bit values:
    # dedup-v4 and dedup-v5 (the default since) make the same split, groups and development part, so the
    # bundled model's recorded figures stand for them too.
    newer = split_corpus(CorpusConfig(paths=(str(REFERENCE_CORPUS),)))
    assert newer.record == replace(split.record, scheme=SPLIT_DEDUPLICATED_V5)
    v4 = split_corpus(
        CorpusConfig(paths=(str(REFERENCE_CORPUS),)), replace(split.record, scheme=SPLIT_DEDUPLICATED_V4)
    )
    assert np.array_equal(v4.labels, split.labels) and np.array_equal(v4.groups, split.groups)
    assert np.array_equal(newer.labels, split.labels) and np.array_equal(newer.groups, split.groups)
    assert np.array_equal(split_dev_mask(newer, provenance.data.dev_documents), dev)


def test_the_development_part_holds_out_whole_groups_and_is_made_again_from_its_size():
    rng = np.random.default_rng(0)
    for trial in range(300):
        n = int(rng.integers(2, 60))
        groups = rng.integers(0, max(1, n // 3), n) if trial % 2 else rng.integers(0, n, n)
        asked = int(rng.integers(0, n))
        mask = dev_mask(n, asked, trial, groups)
        held = int(mask.sum())
        assert held <= asked
        for group in np.unique(groups):  # no group straddles the part
            assert len(set(mask[groups == group].tolist())) == 1
        assert np.array_equal(dev_mask(n, held, trial, groups), mask)  # what a model file records
    assert dev_mask(50, 7, 3, np.arange(50)).sum() == 7  # documents alone: exactly the share
    one_large = np.array([0] * 30 + list(range(30, 50)))
    mask = dev_mask(50, 10, 0, one_large)
    assert mask.sum() == 10 and not mask[:30].any()  # a group larger than the room stays in training
    drawn = np.zeros(50, dtype=bool)
    drawn[np.random.default_rng([3, 1]).permutation(50)[:7]] = True
    assert np.array_equal(dev_mask(50, 7, 3), drawn)  # without groups: the older schemes' documents
    with pytest.raises(ValueError, match="3 groups given for 4 training documents"):
        dev_mask(4, 1, 0, np.arange(3))


def test_only_dedup_v3_and_later_keep_the_groups_for_the_development_part(tmp_path):
    documents, _ = family_corpus(0)
    files = write_corpus(tmp_path, documents)
    config = CorpusConfig(paths=(str(files["csv"]),), val_fraction=0.2)
    split = split_corpus(config)
    assert split.record.scheme == SPLIT_DEDUPLICATED_V5 == "dedup-v5" and split.record.dev_by_group
    groups = split.training_groups()
    assert groups is not None and len(groups) == split.counts.train_documents
    v3 = split_corpus(config, replace(split.record, scheme=SPLIT_DEDUPLICATED_V3))
    assert v3.record.dev_by_group and np.array_equal(v3.training_groups(), groups)
    older = split_corpus(config, replace(split.record, scheme=SPLIT_DEDUPLICATED_V2))
    assert np.array_equal(older.labels, split.labels)  # the same split
    assert older.training_groups() is None and not older.record.dev_by_group
    by_index = split_corpus(replace(config, keep_duplicates=True))
    assert by_index.training_groups() is None


def test_training_warns_when_only_groups_too_large_for_the_development_part_are_left(caplog):
    from nextword.train.config import TrainConfig
    from nextword.train.dev import dev_part

    record = SplitRecord(SPLIT_DEDUPLICATED, 0.1, 0, DEFAULT)
    labels = np.full(100, TRAIN, dtype=np.uint8)

    def part(groups: np.ndarray) -> np.ndarray | None:
        split = DocumentSplit(CorpusConfig(), record, labels, DataCounts(train_documents=100), groups)
        caplog.clear()
        return dev_part(split, TrainConfig(dev_fraction=0.1))

    assert part(np.arange(100)).sum() == 10 and "development part holds" not in caplog.text
    huge = np.repeat([0, 40, 80], [40, 40, 20])  # three groups, none fits a part of 10
    assert part(huge).sum() == 0
    assert "holds 0 of the 10 training documents asked for" in caplog.text
    assert "a larger `dev_fraction`" in caplog.text
    # one group of most documents: no fraction makes room for it, so that is not the advice
    most = np.repeat([0, 96, 97, 98, 99], [96, 1, 1, 1, 1])
    assert part(most).sum() < 5
    assert "one group of near-duplicates holds most of the documents" in caplog.text
    assert "a larger `dev_fraction`" not in caplog.text


@pytest.mark.parametrize("mixed", [False, True])  # the values of dedup-v1 to v4, and of dedup-v5
def test_a_long_document_is_hashed_in_chunks_to_the_same_signature(mixed):
    """A one-line text file is one document: hashed whole, its (shingles, num_perm) array grew with it
    (a 15 MB line took 1.8 GB before the corpus was refused for holding one document)."""
    from nextword.corpus import minhash

    rng = np.random.default_rng(0)
    vocab = np.array([f"w{i}" for i in range(3000)])
    for n in (minhash._CHUNK_WORDS + 1, 3 * minhash._CHUNK_WORDS + 17):
        words = vocab[rng.integers(0, len(vocab), n)].tolist()
        builder = minhash.SignatureBuilder(DEFAULT, mixed=mixed)
        for text in ("a short document of a few words here", " ".join(words), "another one"):
            builder.add(text)
        _, has_words, signatures = builder.finish()
        with signatures:
            stored = signatures.take(np.arange(3))
        whole = minhash._signatures(
            [" ".join(words)], DEFAULT.shingle_words, builder._mults, builder._adds, mixed
        )
        assert has_words.all() and np.array_equal(stored[1], whole[0]), n
        assert np.array_equal(
            stored[[0, 2]],
            minhash._signatures(
                ["a short document of a few words here", "another one"],
                DEFAULT.shingle_words,
                builder._mults,
                builder._adds,
                mixed,
            ),
        )
    text = " ".join(vocab[rng.integers(0, len(vocab), 400_000)].tolist())  # 2.4 MB, one document
    builder = minhash.SignatureBuilder(DEFAULT)
    tracemalloc.start()
    try:
        builder.add(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        builder.finish()[2].close()
    assert peak < 60e6, f"{peak / 1e6:.0f} MB to hash one 400,000-word document"  # whole: over 100 MB


@pytest.mark.parametrize("call", ["find_duplicates", "shared_documents"])
def test_a_corpus_that_fails_halfway_leaves_no_temporary_file_open(monkeypatch, call):
    """The keys' and the signatures' temporary files are closed (deleted) when reading the documents
    fails, not kept open, with their disk space, by a traceback a notebook holds on to."""
    from nextword.corpus import dedup, minhash

    opened = []
    real = minhash.tempfile.TemporaryFile

    def recorded(*args, **kwargs):
        opened.append(real(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(minhash.tempfile, "TemporaryFile", recorded)

    def documents():
        yield "a first document of several words"
        raise OSError("the corpus file went away")

    with pytest.raises(OSError, match="went away"):
        if call == "find_duplicates":
            dedup.find_duplicates(documents(), DEFAULT)
        else:
            dedup.shared_documents(["a reference document"], documents(), DEFAULT)
    assert len(opened) == 2 and all(f.closed for f in opened)
    opened.clear()
    dedup.find_duplicates(iter(["one document", "another one"]), DEFAULT)  # and when it works
    assert len(opened) == 2 and all(f.closed for f in opened)


def test_documents_without_words_fill_batches_too():
    """Punctuation-only or emoji-only documents added no bytes to the batch, so all of them were hashed
    in one batch at the end: 265 bytes a document at its peak, not the ~30 docs/dedup.md says."""
    from nextword.corpus import minhash

    tracemalloc.start()
    try:
        with minhash.SignatureBuilder(DEFAULT) as builder:
            for _ in range(100_000):
                builder.add("... !!! ???")
            _, has_words, signatures = builder.finish()
            signatures.close()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert not has_words.any()
    assert peak / 100_000 < 30, peak
