"""Split scheme ``dedup-v5``: MinHash values keep bits of the whole minimum. The older schemes kept its
low 16 bits, which with the permutations (a x + b) mod 2**32 depend on the low 16 bits of the shingle's
hash alone: a document of five words or fewer (one shingle) had one of 65,536 signatures, so unrelated
short documents were near-duplicates by the thousand whatever the threshold, and splits of
sentence-per-line corpora lost most of their validation documents to one false group."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest

from helpers import write_corpus
from nextword.corpus import CorpusConfig, split_corpus
from nextword.corpus.dedup import find_duplicates, shared_documents
from nextword.corpus.minhash import SignatureBuilder
from nextword.corpus.overlap import copies_of
from nextword.corpus.schemes import dedup_options, values_mixed
from nextword.runtime.provenance import (
    DEDUP_SCHEMES,
    SPLIT_DEDUPLICATED,
    SPLIT_DEDUPLICATED_V4,
    SPLIT_DEDUPLICATED_V5,
    DedupSettings,
    SplitRecord,
)

DEFAULT = DedupSettings()


def short_documents(n: int, seed: int, words: tuple[int, int] = (2, 5)) -> list[str]:
    """``n`` unrelated documents of a few words drawn from a million: no two share a shingle."""
    rng = random.Random(seed)
    return [" ".join(f"w{rng.randrange(10**6)}" for _ in range(rng.randint(*words))) for _ in range(n)]


def signatures(documents: list[str], mixed: bool) -> np.ndarray:
    with SignatureBuilder(DEFAULT, marks=True, mixed=mixed) as builder:
        for document in documents:
            builder.add(document)
        _, _, spilled = builder.finish()
    with spilled:
        return spilled.take(np.arange(len(documents)))


def test_only_dedup_v5_keeps_bits_of_the_whole_minimum():
    assert SPLIT_DEDUPLICATED == SPLIT_DEDUPLICATED_V5 in DEDUP_SCHEMES
    assert CorpusConfig().split_record().scheme == SPLIT_DEDUPLICATED_V5  # what a new run records
    assert values_mixed(SPLIT_DEDUPLICATED_V5)
    for older in DEDUP_SCHEMES[:-1]:
        assert not values_mixed(older), older
    assert dedup_options(SPLIT_DEDUPLICATED_V5) == {"marks": True, "mixed": True}
    assert dedup_options(SPLIT_DEDUPLICATED_V4) == {"marks": True, "mixed": False}


def test_unrelated_short_documents_are_no_near_duplicates_under_dedup_v5():
    documents = short_documents(5000, seed=1)
    assert len(set(documents)) == len(documents)
    old = find_duplicates(documents, DEFAULT, marks=True, mixed=False)
    # the low bits: about 5000**2 / 2 / 65536 = 190 false pairs among the one-shingle documents
    assert old.near_duplicate_documents > 100
    new = find_duplicates(documents, DEFAULT, marks=True, mixed=True)
    assert new.near_duplicate_groups == 0 and new.exact_duplicates == 0
    strict = find_duplicates(documents, replace(DEFAULT, threshold=0.9), marks=True, mixed=False)
    assert strict.near_duplicate_documents > 100  # no threshold helped the old values


def test_one_shingle_signatures_were_a_function_of_16_bits_and_are_not_now():
    documents = short_documents(3000, seed=2, words=(3, 5))
    old, new = signatures(documents, mixed=False), signatures(documents, mixed=True)
    # one shingle: the old signature's 64 values are all fixed by its hash's low 16 bits, so a pair of
    # documents agrees on all 64 or on almost none; the new values agree by chance, value by value
    old_rows = {row.tobytes() for row in old}
    assert len(old_rows) < len(documents)  # documents of different words, one signature
    assert len({row.tobytes() for row in new}) == len(documents)
    agree = (new[:1000, None, :] == new[None, 1000:2000, :]).mean(axis=-1)  # a million pairs
    assert agree.max() < DEFAULT.threshold  # no unrelated pair looks similar
    assert agree.mean() == pytest.approx(1 / 65536, abs=2e-5)


def test_near_duplicates_are_still_found_and_their_similarity_estimated():
    rng = random.Random(3)
    base = [f"w{rng.randrange(10**6)}" for _ in range(300)]
    variants = []
    for changed in (0, 3, 30, 120, 300):  # words replaced
        words = list(base)
        for i in rng.sample(range(300), changed):
            words[i] = f"x{rng.randrange(10**6)}"
        variants.append(" ".join(words))
    sig = signatures(variants, mixed=True)
    shingles = [{tuple(v.split()[i : i + 5]) for i in range(296)} for v in variants]
    for j in range(1, 5):
        true = len(shingles[0] & shingles[j]) / len(shingles[0] | shingles[j])
        estimate = float((sig[0] == sig[j]).mean())
        assert estimate == pytest.approx(true, abs=0.2), (j, true, estimate)  # 64 values: a rough estimate
    found = find_duplicates(variants, DEFAULT, **dedup_options(SPLIT_DEDUPLICATED_V5))
    assert found.group[:3].tolist() == [0, 0, 0]  # the close ones are one group
    assert found.group[4] == 4  # a text with every word replaced is not


def test_a_sentence_per_line_corpus_keeps_its_validation_share_and_old_records_rebuild_as_they_were(tmp_path):
    documents = short_documents(4000, seed=4, words=(2, 9))
    path = write_corpus(tmp_path, documents)["jsonl"]
    config = CorpusConfig(paths=(str(path),))
    split = split_corpus(config)
    assert split.record.scheme == SPLIT_DEDUPLICATED_V5
    assert split.counts.near_duplicate_groups == 0
    assert split.counts.val_documents == 400  # the share asked for
    old = split_corpus(config, SplitRecord(SPLIT_DEDUPLICATED_V4, 0.1, 0, DEFAULT), log=False)
    assert old.counts.near_duplicate_documents > 0  # a model trained under dedup-v4 gets its own split back
    assert old.record.scheme == SPLIT_DEDUPLICATED_V4


def test_copies_of_trained_documents_use_the_new_values_whatever_the_records_scheme():
    """An overlap check (evaluate --trained-on, fine-tuning's) makes no split again: for a model split
    with dedup-v4 it called unrelated short documents copies of trained ones and left them out."""
    trained = short_documents(3000, seed=5)
    unseen = short_documents(3000, seed=6)
    old = shared_documents(trained, unseen, DEFAULT, marks=True, mixed=False)
    assert old.any()  # the low bits called some unseen documents copies of trained ones
    assert not shared_documents(trained, unseen, DEFAULT).any()  # the default: a new split's values
    for scheme in (SPLIT_DEDUPLICATED_V5, SPLIT_DEDUPLICATED_V4):
        record = SplitRecord(scheme, 0.1, 0, DEFAULT)
        assert not copies_of(trained, unseen, record).any(), scheme
        assert copies_of(trained, trained[:50], record).all(), scheme


def test_dedup_v5_values_are_the_ones_released():
    """Every model that records dedup-v5 makes its split again from these exact values: another well
    mixed choice would pass every statistical test and rebuild other splits."""
    from nextword.corpus.minhash import _kept_bits

    minima = np.array([[0, 1, 0xFFFF, 0x10000, 0xDEADBEEF, 0xFFFFFFFF]], dtype=np.uint32)
    assert _kept_bits(minima, True).tolist() == [[0, 22162, 45668, 52917, 19974, 35634]]
    assert _kept_bits(minima, False).tolist() == [[0, 1, 0xFFFF, 0, 0xBEEF, 0xFFFF]]  # dedup-v1 to v4
