"""load_glove() against the vocabulary: a file that covers none of its words, or gives a vocabulary word
text that is not a number, is refused naming the file (and line); blank and one-field lines are
skipped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nextword.runtime import Tokenizer, TokenizerConfig
from nextword.train.embeddings import EmbeddingsError, load_glove


@pytest.fixture
def tokenizer() -> Tokenizer:
    return Tokenizer.from_counts({"the": 5, "network": 3, "weights": 2}, TokenizerConfig(min_count=1))


def test_a_file_covering_no_vocabulary_word_is_refused(tmp_path: Path, tokenizer: Tokenizer) -> None:
    """Vectors of the right width for other words only (another language, another casing) would leave
    every row random: refused, saying how many vocabulary words were looked for."""
    glove = tmp_path / "glove.txt"
    glove.write_text("gear 0.1 0.2 0.3\nThe 0.4 0.5 0.6\nshaft 0.7 0.8 0.9\n", encoding="utf-8")
    with pytest.raises(
        EmbeddingsError, match=rf"^{glove} holds a vector for none of the 3 vocabulary words$"
    ):
        load_glove(glove, tokenizer, 3)


def test_a_vocabulary_word_with_text_for_a_value_is_refused_by_line(
    tmp_path: Path, tokenizer: Tokenizer
) -> None:
    """A value that is not a number in a vocabulary word's vector names the file and its line."""
    glove = tmp_path / "glove.txt"
    glove.write_text("network 0.1 0.2 0.3\nthe 0.1 zero 0.3\n", encoding="utf-8")
    with pytest.raises(
        EmbeddingsError, match=rf"^{glove}, line 2: the vector holds a value that is not a number"
    ):
        load_glove(glove, tokenizer, 3)


def test_a_bad_value_of_a_word_outside_the_vocabulary_is_not_read(
    tmp_path: Path, tokenizer: Tokenizer
) -> None:
    """Only vocabulary words' vectors are parsed: junk in another word's line does not stop loading."""
    glove = tmp_path / "glove.txt"
    glove.write_text("gear x y z\nnetwork 0.1 0.2 0.3\n", encoding="utf-8")
    matrix, missing = load_glove(glove, tokenizer, 3)
    assert missing == 2
    np.testing.assert_array_equal(matrix[tokenizer.tokens.index("network")], np.float32([0.1, 0.2, 0.3]))


def test_blank_and_one_field_lines_are_skipped(tmp_path: Path, tokenizer: Tokenizer) -> None:
    """Blank lines and lines of a word alone (no values) neither count as vectors nor make the file
    look ragged; the vectors around them are read."""
    glove = tmp_path / "glove.txt"
    glove.write_text("\nthe 1 2 3\nlonely\n\nnetwork 4 5 6\n \n", encoding="utf-8")
    matrix, missing = load_glove(glove, tokenizer, 3)
    assert missing == 1  # "weights"
    np.testing.assert_array_equal(matrix[tokenizer.tokens.index("the")], [1, 2, 3])
    np.testing.assert_array_equal(matrix[tokenizer.tokens.index("network")], [4, 5, 6])


def test_a_byte_order_mark_is_not_part_of_the_first_word(tmp_path: Path, tokenizer: Tokenizer) -> None:
    """A file saved with a UTF-8 BOM (Notepad) read its first word as "\\ufeffthe": that word's vector
    was silently left out, and only the count of words found said so."""
    glove = tmp_path / "glove.txt"
    glove.write_bytes("the 1 2 3\nnetwork 4 5 6\n".encode("utf-8-sig"))
    matrix, missing = load_glove(glove, tokenizer, 3)
    assert missing == 1  # "weights" only
    np.testing.assert_array_equal(matrix[tokenizer.tokens.index("the")], np.float32([1, 2, 3]))
