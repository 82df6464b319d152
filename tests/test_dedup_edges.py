"""The edges of duplicate detection: a pair agreeing on exactly the threshold share of its MinHash
values is a near-duplicate, and documents without words are keyed by their folded text."""

from __future__ import annotations

import tempfile

import numpy as np

from nextword.corpus.dedup import find_duplicates, near_duplicate_groups
from nextword.corpus.minhash import SignatureFile
from nextword.runtime.provenance import DedupSettings


def _signatures(rows: list[list[int]]) -> SignatureFile:
    array = np.asarray(rows, dtype=np.uint16)
    f = tempfile.TemporaryFile()  # noqa: SIM115  (the SignatureFile closes it, as minhash.py does)
    f.write(array.tobytes())
    f.flush()
    return SignatureFile(f, len(rows), array.shape[1])


# the threshold is inclusive: agreeing on exactly its share of the values groups a pair
def test_a_pair_agreeing_on_exactly_the_threshold_share_is_a_near_duplicate():
    # 8 values, threshold 0.5: 4 must agree. Every pair shares band 0 (values 0 and 1), so all are compared.
    rows = [
        [1, 2, 3, 4, 5, 6, 7, 8],
        [1, 2, 3, 4, 90, 91, 92, 93],  # agrees with row 0 on 4 of 8: exactly the threshold
        [1, 2, 3, 80, 81, 82, 83, 84],  # with row 0 on 3, with row 1 on 3: under it
    ]
    with _signatures(rows) as signatures:
        group = near_duplicate_groups(signatures, np.ones(3, dtype=bool), threshold=0.5)
    assert group.tolist() == [0, 0, 2]


# a document without words is keyed by its text with case and whitespace folded
def test_documents_without_words_that_differ_in_whitespace_are_exact_duplicates():
    documents = ["-- * --", "--   *\n\t--", "- * -", "the network learns", "!?"]
    found = find_duplicates(documents, DedupSettings())
    assert found.dropped.tolist() == [False, True, False, False, False]
