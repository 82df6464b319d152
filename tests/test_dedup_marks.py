"""Combining marks in deduplication (split scheme dedup-v4): vowel signs and points are part of words.

Under dedup-v1 to dedup-v3 a word was a run of Python's ``\\w``, which no combining mark (Unicode Mn,
Mc, Me) matches: Hindi, Arabic or Hebrew documents that differ only in vowel signs had the same words,
so one was dropped as an exact duplicate. dedup-v4 and later (dedup-v5, the default) keep the marks in
the words; the older schemes keep their words, so the splits model files record are made again as they
were. No TensorFlow.
"""

import random
import re
import unicodedata
from dataclasses import replace
from itertools import groupby

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import write_corpus
from nextword.corpus import CorpusConfig, rebuild_split, split_corpus
from nextword.corpus.dedup import find_duplicates
from nextword.corpus.minhash import SignatureBuilder, document_words, exact_key
from nextword.corpus.split import DROPPED, words_take_marks
from nextword.runtime.provenance import (
    DEDUP_SCHEMES,
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
# Different words that only combining marks tell apart (after NFKC, which composes none of them).
PAIRS = [
    ("यह दिन है", "यह दीन है"),  # Hindi: "this is the day" / "this is poor" (vowel signs, Mc)
    ("كَتَبَ الولد", "كُتِبَ الولد"),  # Arabic: "the boy wrote" / "(it) was written, the boy" (harakat, Mn)
    ("הַדָּבָר הַזֶּה", "הַדֶּבֶר הַזֶּה"),  # Hebrew: "this thing" / "this plague" (points, Mn)
    # Hindi: "this is a secret" / "this is the reign": ज़ as one code point (U+095B), which NFKC splits
    # into ज and a nukta (Mn)
    ("यह रा\u095b है", "यह राज है"),
]
# Everyday words, separated by spaces
HINDI = "मैं तुम हम वह यह घर पानी खाना काम बात लोग समय देश शहर गाँव रास्ता किताब बच्चा"
ARABIC = "في من على إلى عن مع بيت كتاب مدرسة مدينة طريق ماء شمس قمر ولد بنت رجل"


def words_under(scheme: str, text: str) -> list[str]:
    return document_words(text, marks=words_take_marks(scheme))


def key_under(scheme: str, text: str) -> int:
    return exact_key(words_under(scheme, text), text)


def reference_words(text: str) -> list[str]:
    """Runs of characters that are ``\\w`` or a combining mark, found one character at a time."""
    folded = unicodedata.normalize("NFKC", text).casefold()

    def in_word(c: str) -> bool:
        return bool(re.match(r"\w", c)) or unicodedata.category(c).startswith("M")

    return ["".join(run) for inside, run in groupby(folded, key=in_word) if inside]


def marked_corpus(pairs: int = 15, seed: int = 0) -> list[str]:
    """Distinct documents in pairs that differ only in the vowel signs or harakat of one word: Hindi
    pairs like the reviewer's (``... दिन है।`` / ``... दीन है।``) and Arabic ones (كَتَبَ / كُتِبَ)."""
    rng = random.Random(seed)
    hindi, arabic = HINDI.split(), ARABIC.split()
    documents = []
    for i in range(pairs):
        base = " ".join(rng.choice(hindi) for _ in range(10))
        documents += [f"{base} {i} दिन है।", f"{base} {i} दीन है।"]
        base = " ".join(rng.choice(arabic) for _ in range(10))
        documents += [f"كَتَبَ {base} {i}", f"كُتِبَ {base} {i}"]
    return documents


def test_only_dedup_v4_and_later_count_combining_marks_as_letters():
    assert SPLIT_DEDUPLICATED_V4 in DEDUP_SCHEMES and SPLIT_DEDUPLICATED_V3 in DEDUP_SCHEMES
    assert words_take_marks(SPLIT_DEDUPLICATED_V4)
    for older in (SPLIT_DEDUPLICATED_V1, SPLIT_DEDUPLICATED_V2, SPLIT_DEDUPLICATED_V3):
        assert not words_take_marks(older), older
    assert words_take_marks(SPLIT_DEDUPLICATED_V5)  # and every later scheme
    assert CorpusConfig().split_record().scheme == SPLIT_DEDUPLICATED_V5  # the default of new runs


@pytest.mark.parametrize(("first", "second"), PAIRS)
def test_words_told_apart_by_combining_marks_get_different_exact_keys_under_dedup_v4(first, second):
    assert key_under(SPLIT_DEDUPLICATED_V4, first) != key_under(SPLIT_DEDUPLICATED_V4, second)
    assert words_under(SPLIT_DEDUPLICATED_V4, first)[0] == unicodedata.normalize("NFKC", first.split()[0])
    # The older schemes keep their words, marks dropped: the pair is one document there, as before.
    for older in (SPLIT_DEDUPLICATED_V1, SPLIT_DEDUPLICATED_V2, SPLIT_DEDUPLICATED_V3):
        assert key_under(older, first) == key_under(older, second)
    assert document_words("यह दिन है") == ["यह", "द", "न", "ह"]  # what dedup-v3 compared


def test_composed_letters_are_one_word_under_every_scheme():
    """NFKC composes a Latin letter and its accent (``e`` + U+0301 is ``é``) before words are found."""
    decomposed, composed = "Il est alle\u0301", "Il est allé"
    for marks in (False, True):
        assert document_words(decomposed, marks=marks) == document_words(composed, marks=marks)
        assert document_words(composed, marks=marks) == ["il", "est", "allé"]
        assert document_words("Il est allè", marks=marks) != document_words(composed, marks=marks)


MARKS = st.sampled_from(
    ["\u0301", "\u093f", "\u0940", "\u064e", "\u05bc", "\u20dd", "\U00011001", "\U0001d165"]
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.text(max_size=4) | MARKS | st.sampled_from([" ", "a", "क", "😀", "\U00011003"])).map("".join)
)
def test_a_dedup_v4_word_is_a_run_of_word_characters_and_combining_marks(text):
    """Marks of every plane (Brahmi's U+11001, the musical U+1D165), in texts with and without
    characters outside the BMP (which the words take from another pattern)."""
    words = document_words(text, marks=True)
    assert words == reference_words(text)
    folded = unicodedata.normalize("NFKC", text).casefold()
    if not any(unicodedata.category(c).startswith("M") for c in folded):  # nothing changes without marks
        assert words == document_words(text)


def test_minhash_signatures_of_documents_told_apart_by_marks_differ_under_dedup_v4():
    rng = random.Random(1)
    base = [rng.choice(HINDI.split()) for _ in range(30)]
    first = " ".join([*base[:10], "दिन", *base[10:20], "मिल", *base[20:]])
    second = " ".join([*base[:10], "दीन", *base[10:20], "मील", *base[20:]])

    def signatures(marks: bool) -> np.ndarray:
        builder = SignatureBuilder(DEFAULT, marks=marks)
        builder.add(first)
        builder.add(second)
        spilled = builder.finish()[2]
        with spilled:
            return spilled.take(np.arange(2))

    with_marks, without = signatures(True), signatures(False)
    assert not np.array_equal(with_marks[0], with_marks[1])
    assert np.array_equal(without[0], without[1])  # dedup-v3: the same words, the same signature
    assert (with_marks[0] == with_marks[1]).sum() < DEFAULT.num_perm  # shingles around the words differ


def test_near_duplicate_shingles_see_the_marks():
    """Every word's vowel sign changed: different documents under dedup-v4 (no shingle shared), one
    exact duplicate under dedup-v3."""
    first = "दिन मिल किताब दिल सिर पिता दिन मिल किताब दिल सिर"
    second = first.replace("ि", "ी")
    assert first != second
    with_marks = find_duplicates([first, second], DEFAULT, marks=True)
    assert with_marks.exact_duplicates == 0 and with_marks.group.tolist() == [0, 1]
    assert find_duplicates([first, second], DEFAULT, marks=False).dropped.tolist() == [False, True]
    assert find_duplicates([first, second], DEFAULT).group.tolist() == [0, 1]  # the default: a new split's


def test_a_corpus_of_distinct_hindi_and_arabic_documents_keeps_every_document(tmp_path):
    documents = marked_corpus()
    assert len(set(documents)) == len(documents) == 60
    path = write_corpus(tmp_path, documents)["jsonl"]
    split = split_corpus(CorpusConfig(paths=(str(path),)))
    assert split.record.scheme == SPLIT_DEDUPLICATED_V5
    assert split.counts.exact_duplicates == 0 and not (split.labels == DROPPED).any()
    assert split.counts.train_documents + split.counts.val_documents == 60
    # The two documents of a pair share most shingles: near-duplicates, kept on one side together.
    assert split.counts.near_duplicate_groups == 30
    assert all(split.labels[i] == split.labels[i + 1] for i in range(0, 60, 2))
    train, val = split.documents()
    assert sorted(train + val) == sorted(documents)


def test_a_model_file_recording_dedup_v3_rebuilds_its_split_marks_dropped(tmp_path):
    """The split a dedup-v3 model trained with is made again as it was (its "duplicates" dropped); a
    dedup-v4 record makes the new one. Both survive the model file's record."""
    path = write_corpus(tmp_path, marked_corpus())["csv"]
    config = CorpusConfig(paths=(str(path),))
    for scheme, dropped in ((SPLIT_DEDUPLICATED_V3, 30), (SPLIT_DEDUPLICATED_V4, 0)):
        made = split_corpus(config, replace(config.split_record(), scheme=scheme))
        assert made.counts.exact_duplicates == dropped
        provenance = Provenance(corpus_files=("corpus.csv",), split=made.record, data=made.counts)
        stored = Provenance.from_dict(provenance.to_dict())
        assert stored.split.known and stored.split.dev_by_group  # the development part by whole groups
        again = rebuild_split(stored, CorpusConfig(paths=(str(path),)))
        assert again.record == made.record and np.array_equal(again.labels, made.labels)
        assert again.counts == made.counts
    v3 = split_corpus(config, replace(config.split_record(), scheme=SPLIT_DEDUPLICATED_V3))
    assert (v3.labels[1::2] == DROPPED).all() and not (v3.labels[::2] == DROPPED).any()  # the later of a pair


def test_info_describes_a_dedup_v4_split():
    split = SplitRecord(SPLIT_DEDUPLICATED_V4, 0.2, 3, DedupSettings(threshold=0.3))
    counts = DataCounts(train_documents=7, dev_documents=1, val_documents=2)
    line = dict(Provenance(split=split, data=counts).describe())["split"]
    assert "the development part, whole groups of near-duplicates" in line
    assert line.endswith("similarity >= 0.3; scheme dedup-v4))")


@pytest.mark.parametrize("marks", [False, True])
def test_a_newer_pythons_unicode_gives_the_words_the_tables_unicode_gives(monkeypatch, marks):
    """Deduplication's words on Python 3.12+ are those of Unicode 14.0 (where the split was made on
    3.11): a character assigned since separates words, as an unassigned one does. Here both paths must
    agree; the splitting test checks the stand-ins' side against 3.12 and 3.13."""
    from nextword.corpus import minhash
    from nextword.runtime import splitting

    texts = ["Item \U00011f04\U00011f05 one", "ab\U0001e030cd e\U0001e030\u0301 x\u0378y", "naïve café"]
    plain = [minhash.document_words(text, marks=marks) for text in texts]
    monkeypatch.setattr(splitting, "_NEWER_UNICODE", True)
    assert [minhash.document_words(text, marks=marks) for text in texts] == plain
    assert splitting.newer_characters(texts[0]) == {"\U00011f04", "\U00011f05"}
