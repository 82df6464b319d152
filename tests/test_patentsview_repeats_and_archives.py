"""``nextword corpus patentsview`` with a patents table: repeated rows in either table and blank
abstracts are counted, not written; and the tables may come in zips named otherwise than PatentsView
names them, or be empty."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from test_patentsview import ABSTRACT_HEADER, PATENT_HEADER, QUERY, read_csv, write_table

from nextword.corpus.patentsview import PatentsViewConfig, collect

HEADER = ["patent_abstract", "patent_date", "patent_number", "patent_title"]


def patent_row(patent_id: str, date: str, title: str) -> bytes:
    return f'"{patent_id}"\t"utility"\t"{date}"\t"{title}"\t"B2"\t20\t0\t"ipg.xml"'.encode()


def test_repeats_and_blank_abstracts_in_three_passes(tmp_path: Path) -> None:
    """The first abstract row of a patent is written, a repeat counted as a duplicate; the first
    patents row of a patent gives its date and title; a title match whose abstract is blank is not
    written and counts as a title match without an abstract."""
    abstracts = write_table(
        tmp_path / "g_patent_abstract.tsv",
        [
            ABSTRACT_HEADER,
            b'"1"\t"A neural network learns."',
            b'"2"\t"   "',  # blank: its title matches
            b'"1"\t"A neural network learns again."',  # a repeated row of patent 1
            b'"3"\t"A pump."',
        ],
    )
    patents = write_table(
        tmp_path / "g_patent.tsv",
        [
            PATENT_HEADER,
            patent_row("1", "2018-06-19", "First title"),
            patent_row("1", "2019-07-20", "Second title"),  # a repeated row: the first counts
            patent_row("2", "2018-06-19", "Neural network pump"),
        ],
    )
    out = tmp_path / "corpus.csv"
    config = PatentsViewConfig(abstracts=str(abstracts), patents=str(patents), query=QUERY, out=str(out))
    summary = collect(config)
    assert read_csv(out) == [HEADER, ["A neural network learns.", "2018-06-19", "1", "First title"]]
    assert (summary.matched, summary.matched_by_title_only, summary.written) == (2, 1, 1)
    assert (summary.duplicates, summary.without_abstract, summary.skipped) == (1, 1, 0)
    text = summary.describe()
    assert "1 duplicate rows of a patent already written" in text
    assert "matched 2 patents (1 by title only)" in text


def test_since_applies_to_the_first_of_repeated_patents_rows(tmp_path: Path) -> None:
    """With --since, a patent whose first patents row is too old stays out even if a repeat is newer."""
    abstracts = write_table(
        tmp_path / "g_patent_abstract.tsv",
        [ABSTRACT_HEADER, b'"1"\t"A neural network."', b'"2"\t"Another neural network."'],
    )
    patents = write_table(
        tmp_path / "g_patent.tsv",
        [
            PATENT_HEADER,
            patent_row("1", "2001-01-01", "Old"),
            patent_row("1", "2021-01-01", "Repeat"),
            patent_row("2", "2021-01-01", "New"),
        ],
    )
    out = tmp_path / "corpus.csv"
    config = PatentsViewConfig(
        abstracts=str(abstracts), patents=str(patents), query=QUERY, out=str(out), since="2010-01-01"
    )
    summary = collect(config)
    assert read_csv(out)[1:] == [["Another neural network.", "2021-01-01", "2", "New"]]
    assert summary.excluded_by_since == 1


@pytest.mark.parametrize("member", ["g_patent_abstract.tsv", "export/abstracts.tsv", "abstracts.txt"])
def test_a_zip_of_one_table_is_read_whatever_the_names(tmp_path: Path, member: str) -> None:
    """A renamed zip holding one .tsv (in a folder or not), or one file of any name, is read as the
    table."""
    archive = tmp_path / "downloaded.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr(member, ABSTRACT_HEADER + b'\n"7"\t"A neural network."\n"8"\t"A gear."\n')
    out = tmp_path / "corpus.csv"
    summary = collect(PatentsViewConfig(abstracts=str(archive), query=QUERY, out=str(out)))
    assert read_csv(out) == [HEADER, ["A neural network.", "", "7", ""]]
    assert summary.rows_scanned == {"downloaded.zip": 2}


def test_a_zip_of_several_tables_none_named_as_expected_is_refused(tmp_path: Path) -> None:
    """Two .tsv members, neither named like the zip: the message lists them rather than guessing."""
    archive = tmp_path / "g_patent_abstract.tsv.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a.tsv", ABSTRACT_HEADER + b"\n")
        z.writestr("b.tsv", ABSTRACT_HEADER + b"\n")
    config = PatentsViewConfig(abstracts=str(archive), query=QUERY, out=str(tmp_path / "c.csv"))
    with pytest.raises(
        ValueError,
        match=r"holds \['a\.tsv', 'b\.tsv'\]; expected one \.tsv table such as 'g_patent_abstract\.tsv'",
    ):
        collect(config)
    assert not (tmp_path / "c.csv").exists()


def test_an_empty_table_file_is_refused_naming_the_download(tmp_path: Path) -> None:
    """A zero-byte table says it is empty and which PatentsView table was expected; nothing is written."""
    empty = tmp_path / "g_patent_abstract.tsv"
    empty.write_bytes(b"")
    out = tmp_path / "c.csv"
    with pytest.raises(ValueError, match=r"g_patent_abstract\.tsv is empty; expected the PatentsView table"):
        collect(PatentsViewConfig(abstracts=str(empty), query=QUERY, out=str(out)))
    assert not out.exists()
