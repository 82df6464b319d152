"""CSV rows a stray quote joined (corpus/csv_merged_rows.py): two rows joined were read as one document
without a word, as longer runs were not; and the cases its heuristic must tell apart, from its mutants."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from nextword.corpus import CorpusConfig, load_documents
from nextword.corpus.csv_merged_rows import merged_rows


def joined_warnings(path: Path, caplog: pytest.LogCaptureFixture) -> tuple[list[str], list[str]]:
    """The documents of ``path`` and the warnings about rows a quote joined."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="nextword.corpus"):
        documents = load_documents([path], CorpusConfig())
    return documents, [r.getMessage() for r in caplog.records if "a quote" in r.getMessage()]


# Two rows joined in each layout: the quote opens on line 3 and closes on line 4, before a space or at
# the end of the line, as CSV allows. (header, rows, the line that looks like a row, how many do)
TWO_JOINED = {
    "text last": (
        "id,text",
        ["1,A first document", '2,"A second document whose quote never closes', '3,A third about a 12" pipe'],
        "line 4: '3,A third about a 12\" pipe'",
        1,
    ),
    "closed at the line's end": (
        "id,text",
        ["1,A first document", '2,"A second document whose quote never closes', '3,A third about a 12"'],
        "line 4: '3,A third about a 12\"'",
        1,
    ),
    "text first": (
        "patent_abstract,patent_date,patent_number",
        [
            "A first,2001-01-01,101",
            '"A second whose quote never closes,2001-01-02,102',
            'A 3" gap,2001-01-03,103',
        ],
        "line 3: '\"A second whose quote never closes,2001-01-02,102'",
        1,
    ),
    "text between": (
        "id,text,date",
        [
            "US1,A first,2001-02-01",
            'US2,"A second whose quote never closes,2001-02-02',
            'US3,A 3" gap,2001-02-03',
        ],
        "line 3: 'US2,\"A second whose quote never closes,2001-02-02'",
        2,
    ),
}


@pytest.mark.parametrize("layout", TWO_JOINED)
def test_two_rows_a_quote_joined_are_warned_about(tmp_path, caplog, layout):
    header, rows, example, alike = TWO_JOINED[layout]
    path = tmp_path / "two.csv"
    path.write_text("\n".join([header, *rows, rows[0].replace("1", "5")]) + "\n", encoding="utf-8")
    documents, warned = joined_warnings(path, caplog)
    assert len(documents) == 3, documents  # read as csv reads it: rows 2 and 3 are one document
    said = (
        "1 of them looking like a row of its own"
        if alike == 1
        else "2 of them looking like rows of their own"
    )
    assert warned == [
        f"{path}, lines 3-4: one row, whose quoted field runs over 2 lines, {said} ({example}); a quote that "
        "opens a field on line 3 and is not closed there joins them into one document. If so, close that "
        'quote (a quote inside a quoted field is written twice: ""); the row is read as it is'
    ]


@pytest.mark.parametrize(
    ("header", "row"),
    [
        ("id,text", '{i},"A method, comprising:\na first layer of {i} units, and 2 more"'),
        ("id,text", '{i},"Claims 1,2 and 3 of it\n1, a first part; 2,000 of them"'),
        (
            "patent_abstract,patent_date,patent_number",
            '"A pump, 12 inches wide,\nfiled 2001-01-0{i}",2001-01-0{i},{i}',
        ),
        # text between the row's own fields: one of its two lines alike is not enough
        ("id,text,date", 'US{i},"A first line\nUS{i},is its number",2001-02-0{i}'),
        ("id,text,date", 'US{i},"A first line,2001-02-0{i}\nis its date",2001-02-0{i}'),
    ],
)
def test_a_field_of_two_lines_as_written_is_not_taken_for_joined_rows(tmp_path, caplog, header, row):
    path = tmp_path / "abstracts.csv"
    path.write_text(header + "\n" + "".join(row.format(i=i) + "\n" for i in range(1, 5)), encoding="utf-8")
    documents, warned = joined_warnings(path, caplog)
    assert len(documents) == 4 and not warned, warned


def test_a_row_of_two_lines_as_written_with_a_row_like_line_is_warned_about(tmp_path, caplog):
    """The price of the two-row rule, said here so that a change to it is seen: a field of two lines
    whose second starts as a row does (digits, the delimiter, no space) is taken for two joined rows; in
    a longer field one such line is not enough (below)."""
    path = tmp_path / "list.csv"
    path.write_text('id,text\n1,"A list:\n2,the second item"\n', encoding="utf-8")
    assert len(joined_warnings(path, caplog)[1]) == 1


# Fields that span lines as CSV writers write them, with lines that could pass for rows in part: none of
# them is warned about (each line: the false alarm that a weaker rule would give).
AS_WRITTEN = {
    "one-word labels are text, not identifiers": (
        "label,text",
        'pump,"Pumps,valves and hoses\nfilters,clamps and seals\nhoses,pipes"',
    ),
    "a row's first field must have the form of the row's": (
        "id,text",
        '{i},"Parts:\n2 pumps,3 valves\n4 hoses,5 pipes\nfilters,clamps and seals"',
    ),
    "text before the field tells nothing": (
        "title,text,date",
        'A title,"Pumps,valves and hoses\nfilters,clamps and seals\nhoses,pipes",2001-01-0{i}',
    ),
    "text after the field tells nothing": (
        "date,text,title",
        '2001-01-0{i},"Pumps,valves and hoses\nfilters,clamps and seals\nhoses,pipes",A title',
    ),
    "only text beside the field": ("title,text", '"A title","one\ntwo\nthree"'),
    "one row-like line of two compared": ("id,text", '{i},"A list:\n2,the second item\nand the end"'),
    "two row-like lines of six": (
        "id,text",
        '{i},"Steps:\n1,mix the parts\nthen wait\nand check\n2,heat it\nlet it cool\npour it out"',
    ),
    "a line of a number alone": ("id,text", '{i},"A table of values:\n42\n2001"'),
    "numbers with a thousands separator at the end": ("text,n", '"Costs of 1,000\nand of 2,500\nin all",{i}'),
    "lists with as many commas as a row": (
        "text,date,n",
        '"Parts: pumps, valves, hoses\nseals, rings, clamps\nand more",2001-01-0{i},{i}',
    ),
    "a number after a comma and a space": ("text,n", '"A pump of 12 units, 42\nin all",{i}'),
    "an empty field tells nothing": ("text,note", '"A pump, a valve,\nand a hose, with seals,\nand more",'),
    "an empty field must be empty in the line too": (
        "id,note,text",
        '{i},,"Steps:\n2,mix them,then wait\n3,heat it,pour"',
    ),
}


@pytest.mark.parametrize("case", AS_WRITTEN)
def test_lines_that_pass_for_rows_only_in_part_are_no_joined_rows(tmp_path, caplog, case):
    header, row = AS_WRITTEN[case]
    path = tmp_path / "written.csv"
    path.write_text(header + "\n" + "".join(row.format(i=i) + "\n" for i in range(1, 5)), encoding="utf-8")
    documents, warned = joined_warnings(path, caplog)
    assert len(documents) == 4 and not warned, warned


def warned_lines(path: Path, text: str, caplog: pytest.LogCaptureFixture) -> tuple[int, str]:
    """How many documents ``text`` written to ``path`` holds, and the one warning of joined rows."""
    path.write_bytes(text.encode())
    documents, warned = joined_warnings(path, caplog)
    assert len(warned) == 1, warned
    return len(documents), warned[0]


def test_rows_joined_in_a_file_with_cr_line_ends_are_warned_about(tmp_path, caplog):
    rows = [
        "id,text",
        "1,A first",
        '2,"A second, never closed',
        "3,A third",
        '4,A fourth about a 12" pipe',
        "5,A fifth",
    ]
    n, warned = warned_lines(tmp_path / "cr.csv", "\r".join(rows) + "\r", caplog)
    assert n == 3 and " lines 3-5: one row, whose quoted field runs over 3 lines, 2 of them " in warned


def test_rows_joined_in_a_file_with_decimal_commas_are_warned_about(tmp_path, caplog):
    """A semicolon file of a locale that writes 0,5: the first field is a number there."""
    rows = [
        "price;text",
        "0,5;A first",
        '1,5;"A second never closed',
        "2,5;A third",
        '3,5;A 12" pipe',
        "4,5;A fifth",
    ]
    n, warned = warned_lines(tmp_path / "prices.csv", "\n".join(rows) + "\n", caplog)
    assert n == 3 and "(line 4: '2,5;A third')" in warned


def test_rows_joined_across_a_blank_line_are_warned_about_by_those_that_look_like_rows(tmp_path, caplog):
    """Half of the lines compared looking like rows is enough: a blank line between rows is none."""
    rows = [
        "id,text",
        "1,A first",
        '2,"A second never closed',
        "3,A third",
        "",
        '4,A fourth about a 12" pipe',
        "5,A",
    ]
    n, warned = warned_lines(tmp_path / "blank.csv", "\n".join(rows) + "\n", caplog)
    assert (
        n == 3 and " lines 3-6: one row, whose quoted field runs over 4 lines, 2 of them looking " in warned
    )


def test_joined_rows_of_a_file_with_a_space_after_each_comma_are_warned_about(tmp_path, caplog):
    """A field written ", 42" has that form in the row's lines too."""
    rows = [
        "text,n",
        "A first, 1",
        '"A second never closed, 2',
        "A third, 3",
        'A fourth 12" pipe, 4',
        "A fifth, 5",
    ]
    n, warned = warned_lines(tmp_path / "spaced.csv", "\n".join(rows) + "\n", caplog)
    assert n == 3 and "(line 3: '\"A second never closed, 2')" in warned


def test_joined_rows_whose_text_holds_the_delimiter_are_warned_about(tmp_path, caplog):
    """A line with more delimiters than the header (commas in the text) is compared by its last fields."""
    header = "patent_abstract,patent_date,patent_number"
    rows = [
        "A first pump,2001-01-01,101",
        '"A second pump, with a valve, whose quote never closes,2001-01-02,102',
        "A third pump,2001-01-03,103",
        'A fourth pump, with a 3" gap,2001-01-04,104',
    ]
    n, warned = warned_lines(tmp_path / "patents.csv", "\n".join([header, *rows]) + "\n", caplog)
    assert n == 2 and "runs over 3 lines, 2 of them looking like rows of their own (line 3: " in warned


def test_a_row_without_a_field_that_spans_lines_is_none():
    assert merged_rows(["1,a\n", "2,b\n"], ["1", "a"], 3, ",") is None
