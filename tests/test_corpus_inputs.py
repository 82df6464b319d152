"""Messy corpus files as spreadsheets and other tools write them: read right, or refused by name."""

import bz2
import logging
import re

import pytest

from nextword.corpus import CorpusConfig, CorpusError, load_documents

DEFAULT = CorpusConfig()


def test_a_csv_row_with_more_fields_than_the_header_is_refused_with_its_line(tmp_path):
    path = tmp_path / "c.csv"
    # A header put over raw lines: each document would have been cut at its first comma.
    path.write_text("text\nthe first document\nThe network, trained on data, predicts words.\n")
    with pytest.raises(CorpusError) as error:
        load_documents([path], DEFAULT)
    message = str(error.value)
    assert f"{path}, line 3: 3 fields where the header names 1 (['text'])" in message
    assert "cut at a comma" in message and "pass format='lines'" in message
    # A row that spans lines is named by its first line.
    path.write_text('id,text\n1,"two\nlines"\n2,"x\ny",extra\n')
    with pytest.raises(CorpusError, match=r"c\.csv, line 4: 3 fields where the header names 2"):
        load_documents([path], DEFAULT)
    # Empty fields past the header's (a trailing comma) lose nothing: read as before.
    path.write_text("id,text\n1,the first document,\n2,the second,, \n")
    assert load_documents([path], DEFAULT) == ["the first document", "the second"]


@pytest.mark.parametrize(("separator", "name"), [(";", "c.csv"), ("\t", "c.csv"), ("\t", "c.tsv")])
def test_semicolon_and_tab_separated_files_are_read_by_their_separator(tmp_path, separator, name):
    path = tmp_path / name
    rows = ["id|text|label", '1|"the first, document"|x', "2|the second document|y"]
    path.write_text("\r\n".join(row.replace("|", separator) for row in rows) + "\r\n", encoding="utf-8-sig")
    assert load_documents([path], DEFAULT) == ["the first, document", "the second document"]


def test_a_header_less_file_of_documents_is_not_taken_for_semicolon_separated(tmp_path, caplog):
    path = tmp_path / "c.csv"
    path.write_text("the first document; about engines and more of them\nthe second document\n")
    with caplog.at_level(logging.WARNING, logger="nextword.corpus"):
        assert load_documents([path], DEFAULT) == ["the second document"]
    assert "looks like text" in caplog.text  # the single-column warning, as without semicolons


def test_a_tsv_file_is_csv_with_tabs(tmp_path):
    from nextword.corpus import detect_format

    assert detect_format(tmp_path / "data.tsv") == "csv"
    assert detect_format(tmp_path / "data.TAB") == "csv"


def test_the_text_column_is_found_whatever_its_case(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("ID,Text\n1,the first document\n")
    assert load_documents([path], DEFAULT) == ["the first document"]


def test_a_text_column_empty_in_every_row_names_the_other_columns(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("id,text,body\n1,,the first document\n2,,the second\n")
    with pytest.raises(
        CorpusError, match=r"column 'text' is empty in all 2 rows; the other columns are \['id', 'body'\]"
    ):
        load_documents([path], DEFAULT)
    assert load_documents([path], CorpusConfig(text_column="body")) == ["the first document", "the second"]


def test_a_header_less_csv_of_several_columns_is_told_to_add_a_header(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("1,the first document about neural networks and engines,x\n2,second,y\n")
    with pytest.raises(
        CorpusError, match=r"`text_column`\. If the first line is a document rather than a header"
    ):
        load_documents([path], DEFAULT)


@pytest.mark.parametrize("name", ["c.txt", "c.csv"])
def test_utf16_without_a_byte_order_mark_is_refused_as_utf16(tmp_path, name):
    path = tmp_path / name
    path.write_bytes("text\nsome words about engines\n".encode("utf-16-le"))
    with pytest.raises(CorpusError, match=r"the file is UTF-16 text without a byte-order mark.*re-save"):
        load_documents([path], DEFAULT)


def test_zero_bytes_are_refused_at_the_start_and_in_any_document(tmp_path):
    path = tmp_path / "c.txt"
    path.write_bytes(b"\x00\x01\x02binary header" + b"x" * 100)
    with pytest.raises(CorpusError, match=r"c\.txt: the file is binary data \(it holds zero bytes"):
        load_documents([path], DEFAULT)
    path.write_bytes(b"first document\n\n" + b"y " * 3000 + b"\n\nthe third\x00document\n")
    with pytest.raises(CorpusError, match=r"c\.txt: document 3 holds a NUL character.*tr -d"):
        load_documents([path], DEFAULT)


@pytest.mark.parametrize(
    ("content", "what"),
    [
        (bz2.compress(b"text\nsome words\n"), "bzip2-compressed.*bunzip2"),
        (
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64,
            "an Excel 97-2003 workbook.*save it as CSV UTF-8",
        ),
        (b"7z\xbc\xaf\x27\x1c\x00\x04", "a 7z archive"),
    ],
)
def test_archives_and_workbooks_are_named(tmp_path, content, what):
    path = tmp_path / "c.csv"
    path.write_bytes(content)
    with pytest.raises(CorpusError, match=rf"c\.csv: the file is {what}"):
        load_documents([path], DEFAULT)


def test_a_folder_is_named_a_folder(tmp_path):
    with pytest.raises(CorpusError, match=rf"{re.escape(str(tmp_path))} is a folder; pass the files in it"):
        load_documents([tmp_path], DEFAULT)


def test_plain_text_of_one_document_a_line_with_a_stray_blank_line_is_warned_about(tmp_path, caplog):
    path = tmp_path / "c.txt"
    lines = [f"document number {i} about engines" for i in range(120)]
    path.write_text("\n".join(lines[:60]) + "\n\n" + "\n".join(lines[60:]) + "\n")
    with caplog.at_level(logging.WARNING, logger="nextword.corpus"):
        assert len(load_documents([path], DEFAULT)) == 2
    assert "2 document(s) of 60 lines on average" in caplog.text
    assert "pass format='lines'" in caplog.text
    caplog.clear()
    path.write_text("a paragraph\nwrapped on\nthree lines\n\nanother one\n")  # prose: nothing said
    with caplog.at_level(logging.WARNING, logger="nextword.corpus"):
        load_documents([path], DEFAULT)
    assert not caplog.records


def test_a_header_of_many_columns_is_named_in_a_message_of_bounded_length(tmp_path):
    """A header of thousands of names, none holding the text: the refusal listed every one (200,000
    names made a two-million-character message); it names ten, each cut to 60 characters, and the count."""
    path = tmp_path / "wide.csv"
    names = [f"c{i}" for i in range(5000)] + ["x" * 500]
    path.write_text(",".join(names) + "\n" + ",".join("v" for _ in names) + "\n", encoding="utf-8")
    with pytest.raises(CorpusError) as refusal:
        load_documents([path], DEFAULT)
    message = str(refusal.value)
    assert "Its columns are ['c0', 'c1'," in message and "'c9', and 4,991 more]" in message
    assert len(message) < 600, len(message)
    with pytest.raises(CorpusError) as named:
        load_documents([path], CorpusConfig(text_column="y" * 500))
    assert "has no column 'yyy" in str(named.value) and len(str(named.value)) < 600
