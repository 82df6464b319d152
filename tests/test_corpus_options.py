"""Reading options that apply to none of the files, records without text, and a quote left open in a
CSV that pairs with a later row's quote: each was silent (exit 0, another corpus read than asked)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from helpers import REFERENCE_CORPUS
from nextword.corpus import CorpusConfig, CorpusError, load_documents, read_documents, split_corpus


def tickets(path: Path, n: int = 20) -> Path:
    """A JSON Lines file whose text is in ``body``; ``text`` holds a title of a few words."""
    lines = (
        json.dumps({"text": f"Ticket {i} about the router", "body": f"the modem {i} drops"}) for i in range(n)
    )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def records(path: Path, n: int = 20) -> Path:
    """A CSV file whose text is in ``body``; ``text`` holds a short title."""
    rows = "".join(f'{i},"short {i}","the long body of record {i}"\n' for i in range(n))
    path.write_text("id,text,body\n" + rows, encoding="utf-8")
    return path


def test_a_text_column_for_json_lines_files_is_refused_naming_json_field(tmp_path):
    path = tickets(tmp_path / "tickets2.jsonl")
    config = CorpusConfig(paths=(path,), text_column="body", keep_duplicates=True)
    for read in (lambda: split_corpus(config), lambda: load_documents([path], config)):
        with pytest.raises(CorpusError) as caught:
            read()
        message = str(caught.value)
        assert message.startswith("text_column='body' chooses the column of a CSV file"), message
        assert "tickets2.jsonl is JSON Lines, where `json_field` chooses the field" in message


def test_a_json_field_for_csv_files_is_refused_naming_text_column(tmp_path):
    path = records(tmp_path / "rec2.csv")
    with pytest.raises(CorpusError) as caught:
        split_corpus(CorpusConfig(paths=(path,), json_field="body"))
    message = str(caught.value)
    assert message.startswith("json_field='body' chooses the field of a JSON Lines file"), message
    assert "rec2.csv is CSV, where `text_column` chooses the column that holds the text" in message


@pytest.mark.parametrize(
    ("name", "config", "said"),
    [
        ("notes.txt", CorpusConfig(text_column="body"), "notes.txt is plain text, which has no columns"),
        (
            "notes.txt",
            CorpusConfig(json_field="body", format="lines"),
            "notes.txt is read as lines of text (format='lines'), which has no columns",
        ),
    ],
)
def test_an_option_for_plain_text_is_refused_saying_how_to_read_the_file_otherwise(
    tmp_path, name, config, said
):
    path = tmp_path / name
    path.write_text("a first document\n\na second one\n", encoding="utf-8")
    with pytest.raises(CorpusError) as caught:
        load_documents([path], config)
    message = str(caught.value)
    option = "text_column" if config.text_column != "auto" else "json_field"
    assert said in message and f"Leave `{option}` out, or pass format=" in message, message


def test_with_several_formats_each_option_applies_to_its_own_files(tmp_path):
    jsonl, csv = tickets(tmp_path / "t.jsonl"), records(tmp_path / "r.csv")
    text = tmp_path / "n.txt"
    text.write_text("plain words here\n", encoding="utf-8")
    both = CorpusConfig(text_column="body", json_field="body")
    documents = load_documents([jsonl, csv, text], both)
    assert documents[0] == "the modem 0 drops" and documents[20] == "the long body of record 0"
    assert len(load_documents([csv, text], CorpusConfig(text_column="body"))) == 21
    with pytest.raises(CorpusError, match=r"^json_field='body' .*r\.csv is CSV.*; .*n\.txt is plain text"):
        load_documents([csv, text], both)  # json_field applies to neither


def test_the_defaults_never_refuse_and_a_recorded_split_reads_as_recorded(tmp_path):
    """Typed or not, the default values apply to every format. A split made again as a model records
    it (evaluate, the quality benchmark) reads the files with the model's options, which may be those
    of another format than the files given: that is not the caller's choice, and is not refused."""
    jsonl, csv = tickets(tmp_path / "t.jsonl"), records(tmp_path / "r.csv")
    text = tmp_path / "n.txt"
    text.write_text("plain words here\n\nand more words\n", encoding="utf-8")
    for config in (CorpusConfig(), CorpusConfig(text_column="auto", json_field="text")):
        for paths in ([jsonl], [csv], [text], [jsonl, csv, text]):
            assert load_documents(paths, config)
    recorded = CorpusConfig(paths=(text,), text_column="patent_abstract")  # an old model file's default
    split = split_corpus(recorded, recorded.split_record())
    assert split.counts.documents == 2
    with pytest.raises(CorpusError, match=r"^text_column='patent_abstract' chooses"):
        split_corpus(recorded)


def test_the_command_line_says_the_flags_in_one_line_before_training(tmp_path, capsys):
    pytest.importorskip("tensorflow", reason="nextword train needs nextword[train]")
    from nextword.cli.main import main

    path, out = tickets(tmp_path / "tickets2.jsonl"), tmp_path / "runs" / "t"
    code = main(
        ["train", str(path), "--text-column", "body", "--out", str(out), "--keep-duplicates", "--epochs", "1"]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("nextword train: error: --text-column body chooses the column of a CSV file"), err
    assert "tickets2.jsonl is JSON Lines, where --json-field chooses the field" in err
    assert not out.exists()
    code = main(["train", str(records(tmp_path / "rec2.csv")), "--json-field", "body", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert (
        code == 2 and "error: --json-field body chooses" in err and "--text-column chooses the column" in err
    )


def test_json_lines_records_without_text_are_counted_and_warned_about(tmp_path, caplog):
    path = tmp_path / "half.jsonl"
    lines = [json.dumps({"text": None if i % 2 else f"document {i}"}) for i in range(400)]
    path.write_text("\n".join([*lines, "", json.dumps({"text": "  "})]) + "\n", encoding="utf-8")
    with caplog.at_level(logging.INFO, logger="nextword.corpus"):
        assert len(load_documents([path], CorpusConfig())) == 200
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"{path}: 201 of 401 records have no text (their field 'text' is null or empty) and are left out"
    ]
    caplog.clear()
    split = split_corpus(CorpusConfig(paths=(path,)))  # warned once, on the first pass
    list(split.read())
    assert sum("201 of 401 records" in r.getMessage() for r in caplog.records) == 1


def test_a_json_field_null_in_every_record_names_the_fields_that_hold_text(tmp_path):
    path = tmp_path / "nulls.jsonl"
    path.write_text(
        "".join(json.dumps({"text": None, "body": f"words {i}", "n": i}) + "\n" for i in range(5))
    )
    with pytest.raises(
        CorpusError, match=r"field 'text' is null or empty in all 5 records; .*\['body'\]\..*`json_field`"
    ):
        load_documents([path], CorpusConfig())


@pytest.mark.parametrize(
    ("name", "newline"), [("quote.csv", "\n"), ("quote.csv", "\r\n"), ("quote.tsv", "\n")]
)
def test_a_quote_left_open_that_pairs_with_a_later_rows_quote_is_refused(tmp_path, name, newline):
    separator = "\t" if name.endswith(".tsv") else ","
    rows = [f"id{separator}text"]
    for i in range(1, 30):
        opened = f'"Best recipe: the sauce {i}' if i == 3 else f'"the document {i} quoted"'
        rows.append(f"{i}{separator}{opened}")
    path = tmp_path / name
    path.write_bytes(newline.join(rows).encode() + newline.encode())
    with pytest.raises(CorpusError) as caught:
        load_documents([path], CorpusConfig())
    message = str(caught.value)
    assert message.startswith(
        f"{path}, line 4: a quoted field starts here and its quote closes only on line 5"
    ), message
    assert "('the document 4 quoted\"')" in message and "lines 4-5 would be read as one field" in message


def test_legitimate_multi_line_quoted_fields_still_read(tmp_path, caplog):
    """Fields that span lines, hold lines that look like rows, commas, doubled quotes and blank lines,
    closed as CSV writers close them; a stray quote within one line, as csv has always read it. A quote
    that closes a field spanning lines and is followed by more text is the mistake, and refused."""
    path = tmp_path / "multi.csv"
    path.write_text(
        'id,text\n1,"first line\n2,looks like a row\n\nand a ""quoted"" word"\n'
        '2,"one line"\n3,he said "hi" there\n4,"closed" then more\n5,"ends\r\nwith CRLF",\n',
        encoding="utf-8",
    )
    with caplog.at_level(logging.WARNING, logger="nextword.corpus"):
        assert load_documents([path], CorpusConfig()) == [
            'first line\n2,looks like a row\n\nand a "quoted" word',
            "one line",
            'he said "hi" there',
            "closed then more",
            "ends\r\nwith CRLF",
        ]
    assert not caplog.records
    path.write_text('id,text\n1,"two\nlines"more words\n', encoding="utf-8")
    with pytest.raises(CorpusError, match=r"line 2: a quoted field starts here .* line 3"):
        load_documents([path], CorpusConfig())


@pytest.mark.corpus
def test_the_reference_corpus_reads_without_a_warning(caplog):
    """Real abstracts, with the doubled quotes and commas PatentsView's export writes: every document
    read (none merged into the next by a quote taken as open) and no warning."""
    with caplog.at_level(logging.WARNING, logger="nextword.corpus"):
        assert len(load_documents([REFERENCE_CORPUS], CorpusConfig())) == 3522
    assert not caplog.records


def merged_warnings(path: Path, caplog: pytest.LogCaptureFixture) -> tuple[list[str], list[str]]:
    """The documents of ``path`` and the warnings about rows a quote joined."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="nextword.corpus"):
        documents = load_documents([path], CorpusConfig())
    return documents, [r.getMessage() for r in caplog.records if "a quote" in r.getMessage()]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_rows_a_quote_joined_are_warned_about_and_read_as_csv_reads_them(tmp_path, caplog, newline):
    """A quote opened on row 2 and closed (as CSV allows: a space follows it) on row 5 made rows 2-5 one
    document without a word."""
    rows = [
        "id,text",
        "1,A first document",
        '2,"A second document whose quote never closes',
        "3,A third document about a filter",
        "4,A fourth document",
        '5,A fifth document about a 12" pipe',
        "6,A sixth document",
    ]
    path = tmp_path / "joined.csv"
    path.write_bytes((newline.join(rows) + newline).encode())
    documents, warned = merged_warnings(path, caplog)
    assert len(documents) == 3 and documents[1].startswith("A second document") and "12 pipe" in documents[1]
    assert warned == [
        f"{path}, lines 3-6: one row, whose quoted field runs over 4 lines, 3 of them looking like rows of "
        "their own (line 4: '3,A third document about a filter'); a quote that opens a field on line 3 and "
        "is not closed there joins them into one document. If so, close that quote (a quote inside a quoted "
        'field is written twice: ""); the row is read as it is'
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="nextword.corpus"):
        assert list(read_documents(path, CorpusConfig(), log=False)) == documents
    assert not caplog.records  # later passes say nothing


def test_joined_rows_are_found_by_the_fields_after_the_text_too(tmp_path, caplog):
    """The reference corpus's layout: the text first, then a date, a number and a title; the rows after
    the open quote are counted, and the file says how many rows in all looked joined."""
    header = "patent_abstract,patent_date,patent_number,patent_title\n"
    rows = [f"Abstract {i} about a pump,2001-01-{i:02},{100 + i},Title {i}\n" for i in range(1, 13)]
    rows[1] = '"' + rows[1]  # opened on line 3
    rows[4] = rows[4].replace("a pump", 'a 3" gap')  # closed on line 6
    rows[7] = '"' + rows[7]  # opened on line 9
    rows[10] = rows[10].replace("a pump", 'a 9" gap')  # closed on line 12
    path = tmp_path / "patents.csv"
    path.write_text(header + "".join(rows), encoding="utf-8")
    documents, warned = merged_warnings(path, caplog)
    assert len(documents) == 6
    assert warned[0].startswith(
        f"{path}, lines 3-6: one row, whose quoted field runs over 4 lines, 3 of them looking like rows of "
        """their own (line 3: '"Abstract 2 about a pump,2001-01-02,102,Title 2')"""
    ), warned[0]
    assert warned[1:] == [
        f"{path}: 2 rows in all look like rows joined by a quote (the first is warned about above)"
    ]


def test_fields_that_span_lines_as_written_are_not_taken_for_joined_rows(tmp_path, caplog):
    """Abstracts with paragraphs, lists, commas, numbers (1,000 and 0,5 too) and dates in their lines, in
    the layouts a corpus has (text after an id, text before a date and a number, between an id and a
    date, after a title that spans lines too, alone): none of them is warned about."""
    paragraphs = [
        "A method for training a network, comprising:",
        "1, a first layer of 12 units, and",
        "2) a second layer; wherein the rate is 0.5,",
        "filed 2001-01-01, 42 claims, US1234567",
        "",
        "3, a third part.",
        "0,5 mm wide, for a load of 1,000",
        "7,500 units",
        "A closing line with a comma, and more",
    ]
    text = "\n".join(paragraphs).replace('"', '""')
    layouts = {
        "id,text\n": lambda i: f'{i},"{text}"\n',
        "patent_abstract,patent_date,patent_number,patent_title\n": lambda i: (
            f'"{text}",2001-01-0{i},{i},T{i}\n'
        ),
        "id,text,date\n": lambda i: f'US{i},"{text}",2001-02-0{i}\n',
        "text\n": lambda i: f'"{text}"\n',
        "id,title,text,n\n": lambda i: f'{i},"{text}","{text}",{i}\n',
        "id,text,n\n": lambda i: f'{i},"{text}\n{i + 1},",{i}\n',  # the last line a row by its fields
    }
    for n, (header, row) in enumerate(layouts.items()):
        path = tmp_path / f"abstracts{n}.csv"
        path.write_text(header + "".join(row(i) for i in range(1, 6)), encoding="utf-8")
        documents, warned = merged_warnings(path, caplog)
        assert len(documents) == 5 and not warned, (header, warned)
        assert documents[0].startswith(paragraphs[0])


def test_prose_with_numbers_before_a_comma_is_no_row():
    """A row's fields follow its delimiter without a space, and a digit on both sides of a comma is one
    number (1,000 or 0,5): lines of prose like that are no rows, even when they are all there is."""
    from nextword.corpus.csv_merged_rows import merged_rows

    lines = ['1,"Intro\n', "12, a first part\n", "0,5 mm wide\n", "3, a third part\n", '2,000 of them"\n']
    row = ["1", "".join(lines)[3:-2]]
    assert merged_rows(lines, row, 9, ",") is None
    joined = ['1,"Intro\n', "12,a first part\n", "0,mm wide\n", "3,a third part\n", '2,x of them"\n']
    found = merged_rows(joined, ["1", "".join(joined)[3:-2]], 9, ",")
    assert found is not None and (found.first_line, found.row_lines, found.example_line) == (5, 4, 6)
