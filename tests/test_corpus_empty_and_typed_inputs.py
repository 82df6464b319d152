"""Corpus inputs that hold no text, or text of the wrong JSON type, are refused with a message naming
the file (and line), whichever way the corpus is read; and id streams longer than the writer's buffer
are written whole."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

from helpers import synthetic_documents, write_corpus
from nextword.corpus import (
    STREAM_DTYPE,
    CorpusConfig,
    CorpusError,
    build_vocabulary,
    count_documents,
    encode_corpus,
    load_documents,
    split_corpus,
)
from nextword.corpus.encode import IdStreamWriter
from nextword.runtime import TokenizerConfig


@pytest.mark.parametrize(("value", "line"), [(5, 2), ([["a list"]], 2), ({"nested": "text"}, 2), (True, 2)])
def test_a_jsonl_text_field_that_is_not_a_string_is_refused_by_line(
    tmp_path: Path, value: object, line: int
) -> None:
    """A record whose text field holds a number, list, object or boolean is a CorpusError naming the
    file, the line and the field; loading and counting say the same."""
    path = tmp_path / "corpus.jsonl"
    path.write_text(
        json.dumps({"text": "A first document."}) + "\n" + json.dumps({"text": value}) + "\n",
        encoding="utf-8",
    )
    message = rf"corpus\.jsonl, line {line}: field 'text' holds .*, not a string; .*`json_field`$"
    with pytest.raises(CorpusError, match=message):
        load_documents([path], CorpusConfig())
    with pytest.raises(CorpusError, match=message):
        count_documents([path], CorpusConfig())


def test_a_chosen_json_field_is_checked_for_its_type_too(tmp_path: Path) -> None:
    """json_field names the field in the message; a null there is an empty record, not an error."""
    path = tmp_path / "corpus.jsonl"
    path.write_text(
        '{"body": "One document."}\n{"body": null}\n{"body": 3.5}\n',
        encoding="utf-8",
    )
    with pytest.raises(CorpusError, match=r"line 3: field 'body' holds a number \(3\.5\), not a string"):
        load_documents([path], CorpusConfig(json_field="body"))


def test_counting_no_files_is_refused() -> None:
    """count_documents() of an empty list says no files were given rather than counting zero."""
    with pytest.raises(CorpusError, match=r"^no corpus files given$"):
        count_documents([], CorpusConfig())


@pytest.mark.parametrize("keep_duplicates", [False, True])
def test_splitting_a_corpus_of_blank_documents_says_it_holds_none(
    tmp_path: Path, keep_duplicates: bool
) -> None:
    """A text file of blank lines only is refused when split, with or without deduplication, with the
    same message naming the file."""
    path = tmp_path / "blank.txt"
    path.write_text("\n\n   \n\t\n", encoding="utf-8")
    config = CorpusConfig(paths=(str(path),), keep_duplicates=keep_duplicates)
    said = (
        rf"^the corpus file {re.escape(str(path))} holds no non-empty documents: it is empty or holds only "
        "blank lines; give a file that holds text$"
    )
    with pytest.raises(CorpusError, match=said):
        split_corpus(config)
    with pytest.raises(CorpusError, match=said):
        count_documents([path], config)


def test_splitting_without_files_is_refused() -> None:
    """split_corpus() of a CorpusConfig without paths says no files were given."""
    with pytest.raises(CorpusError, match=r"^no corpus files given$"):
        split_corpus(CorpusConfig())


def test_id_files_longer_than_the_write_buffer_are_written_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a buffer of a few ids (as a corpus of millions of words fills the real one), the id files
    hold exactly what one write at the end gives: every document, each closed by <eod>, in order."""
    corpus = write_corpus(tmp_path / "corpus", synthetic_documents(40, seed=3))
    split = split_corpus(CorpusConfig(paths=(str(corpus["csv"]),)))
    tokenizer = build_vocabulary(split, TokenizerConfig(min_count=1))
    whole = encode_corpus(split, tokenizer, tmp_path / "a_train.ids", tmp_path / "a_val.ids")
    monkeypatch.setattr(IdStreamWriter, "CHUNK", 7)
    chunked = encode_corpus(split, tokenizer, tmp_path / "b_train.ids", tmp_path / "b_val.ids")
    assert chunked.counts == whole.counts
    for part in ("train", "val"):
        assert (tmp_path / f"b_{part}.ids").read_bytes() == (tmp_path / f"a_{part}.ids").read_bytes()
    ids = np.fromfile(tmp_path / "b_train.ids", dtype=STREAM_DTYPE)
    assert ids[0] == ids[-1] == tokenizer.eod_id
    assert int((ids == tokenizer.eod_id).sum()) == whole.counts.train_documents + 1
    assert len(ids) == whole.counts.train_words + 1


def test_the_id_writer_flushes_as_it_fills(monkeypatch: pytest.MonkeyPatch) -> None:
    """IdStreamWriter writes a chunk each time its buffer fills and the rest at flush(), in order."""
    monkeypatch.setattr(IdStreamWriter, "CHUNK", 4)
    out = io.BytesIO()
    writer = IdStreamWriter(out, eod=2)
    writer.add([5, 6, 7])  # <eod> 5 6 7 <eod>: five ids, a chunk is written
    assert len(out.getvalue()) == 5 * STREAM_DTYPE.itemsize
    writer.add([8])  # two ids buffered, under the chunk
    assert len(out.getvalue()) == 5 * STREAM_DTYPE.itemsize
    writer.flush()
    assert np.frombuffer(out.getvalue(), dtype=STREAM_DTYPE).tolist() == [2, 5, 6, 7, 2, 8, 2]
    assert (writer.tokens, writer.documents) == (7, 2)
