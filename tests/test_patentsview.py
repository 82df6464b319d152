"""``nextword corpus patentsview``: reading PatentsView bulk tables and writing the corpus CSV.

The tables are built here in the PatentsView layout: tab-separated, ``"`` around every text field (the
header too), doubled quotes inside, numbers bare; quoted fields may hold tabs and line breaks. No
TensorFlow, seconds in all.
"""

import csv
import errno
import logging
import os
import random
import signal
import sys
import time
import tracemalloc
import zipfile
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import REFERENCE_CORPUS, run_python
from nextword.cli.main import main
from nextword.corpus import CorpusConfig, CorpusError, read_documents
from nextword.corpus.patentsview import (
    CORPUS_COLUMNS,
    MAX_LISTED,
    PatentsViewConfig,
    PhraseMatcher,
    collect,
    stream,
    tsv,
)

ABSTRACT_HEADER = b'"patent_id"\t"patent_abstract"'
PATENT_HEADER = (
    b'"patent_id"\t"patent_type"\t"patent_date"\t"patent_title"\t"wipo_kind"\t"num_claims"\t"withdrawn"\t'
    b'"filename"'
)

# g_patent_abstract.tsv, line by line (the header is line 1). Comments give the line numbers.
ABSTRACT_LINES = [
    ABSTRACT_HEADER,
    b'"10000001"\t"A neural network learns weights."',  # 2: match
    b'"10000002"\t"A gear box for bicycles."',  # 3
    b'"10000003"\t"The ""deep learning"" unit\thas a tab and a',  # 4-5: one row over two lines, match
    b'line break."',
    b'"10000004"\t"neural network"\t"extra field"',  # 6: three fields
    b'"10000005"\t"A neural network "badly" quoted."',  # 7: bad quoting
    b'"10000006"\t"A NEURAL NETWORK whose quote is never closed',  # 8: unclosed; what follows is read again
    b'"10000007"\t"Neural  Networks are plural, but this neural\tnetwork counts."',  # 9: match, tab
    b'"10000008"\t"A neural network with bytes \xff\xfe that are not UTF-8."',  # 10
    b'"10000009"\t"Neural networking is no match, nor is a neuralnetwork."',  # 11
    b'"10000010"\t"A pump and its valve."',  # 12: its title matches
    b'"D0900001"\t"An ornamental design for a deep-learning robot."',  # 13: a hyphen is no space
    b'"4000001"\t"An early neural network."',  # 14: match, granted 1990
    b'"10000013"\t"A neural network that g_patent lacks."',  # 15: match, no patents row
]

PATENT_LINES = [
    PATENT_HEADER,
    b'"10000001"\t"utility"\t"2018-06-19"\t"Learning machine"\t"B2"\t20\t0\t"ipg180619.xml"',
    b'"10000002"\t"utility"\t"2018-06-19"\t"Bicycle gear box"\t"B2"\t5\t0\t"ipg180619.xml"',
    b'"10000003"\t"utility"\t"2018-06-26"\t"""Deep"" unit"\t"B1"\t3\t0\t"ipg180626.xml"',
    b'"10000007"\t"utility"\t"2019-01-01"\t"Plural networks\twith a tab"\t"B2"\t7\t0\t"ipg190101.xml"',
    b'"10000099"\t"utility"\t"2020-01-01"',  # 6: three fields
    b'"10000010"\t"utility"\t"2020-02-02"\t"Neural network controlled pump"\t"B2"\t9\t0\t"ipg200202.xml"',
    b'"10000012"\t"utility"\t"2020-02-02"\t"Neural network without an abstract"\t"B2"\t1\t0\t"ipg200202.xml"',
    b'"4000001"\t"utility"\t"1990-05-01"\t"Early net"\t"A"\t4\t0\t"pftaps19900501_wk18.zip"',
    b'"D0900001"\t"design"\t"2021-03-03"\t"Robot"\t"S1"\t1\t0\t"ipg210303.xml"',
]

QUERY = ("neural network", "Deep Learning")

ROW_1 = ["A neural network learns weights.", "2018-06-19", "10000001", "Learning machine"]
ROW_3 = ['The "deep learning" unit\thas a tab and a\nline break.', "2018-06-26", "10000003", '"Deep" unit']
ROW_7 = [
    "Neural  Networks are plural, but this neural\tnetwork counts.",
    "2019-01-01",
    "10000007",
    "Plural networks\twith a tab",
]
ROW_10 = ["A pump and its valve.", "2020-02-02", "10000010", "Neural network controlled pump"]
ROW_OLD = ["An early neural network.", "1990-05-01", "4000001", "Early net"]
ROW_13 = ["A neural network that g_patent lacks.", "", "10000013", ""]
EXPECTED = [ROW_1, ROW_3, ROW_7, ROW_10, ROW_OLD, ROW_13]

ABSTRACT_SKIPS = [
    ("g_patent_abstract.tsv.zip", 6, "3 field(s), expected 2"),
    ("g_patent_abstract.tsv.zip", 7, tsv.BAD_QUOTING),
    ("g_patent_abstract.tsv.zip", 8, "a quoted field that is never closed"),
    ("g_patent_abstract.tsv.zip", 10, "bytes that are not UTF-8 (invalid start byte at byte 40 of the row)"),
]


def write_table(path: Path, lines: list[bytes], newline: bytes = b"\n") -> Path:
    """``lines`` as a PatentsView table: zipped when ``path`` ends in .zip (member named like it)."""
    data = newline.join(lines) + newline
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(path.name.removesuffix(".zip"), data)
    else:
        path.write_bytes(data)
    return path


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


@pytest.fixture
def tables(tmp_path: Path) -> dict[str, Path]:
    return {
        "abstracts": write_table(tmp_path / "g_patent_abstract.tsv.zip", ABSTRACT_LINES),
        "patents": write_table(tmp_path / "g_patent.tsv.zip", PATENT_LINES),
    }


@pytest.fixture(params=[None, 37, 256], ids=["1MiB-reads", "37B-reads", "256B-reads"])
def small_reads(request, monkeypatch):
    """Small reads put region boundaries everywhere, inside rows that span lines too."""
    if request.param:
        monkeypatch.setattr(stream, "CHUNK", request.param)


def test_collects_abstracts_and_titles_exactly(tables, tmp_path, small_reads):
    out = tmp_path / "corpus.csv"
    config = PatentsViewConfig(
        abstracts=str(tables["abstracts"]), patents=str(tables["patents"]), query=QUERY, out=str(out)
    )
    summary = collect(config)
    assert read_csv(out) == [list(CORPUS_COLUMNS), *EXPECTED]
    assert summary.rows_scanned == {"g_patent_abstract.tsv.zip": 13, "g_patent.tsv.zip": 9}
    assert (summary.matched, summary.matched_by_title_only, summary.written) == (7, 2, 6)
    assert (summary.without_abstract, summary.without_metadata, summary.excluded_by_since) == (1, 1, 0)
    assert summary.skipped == 5
    assert [(r.file, r.line, r.reason) for r in summary.skipped_rows] == [
        *ABSTRACT_SKIPS,
        ("g_patent.tsv.zip", 6, "3 field(s), expected 8"),
    ]
    text = summary.describe()
    assert text.startswith(f"wrote 6 patents to {out}\n")
    assert "matched 7 patents (2 by title only)" in text
    assert "g_patent_abstract.tsv.zip, line 8: a quoted field that is never closed" in text
    assert replace(summary, written=1).describe().startswith(f"wrote 1 patent to {out}\n")


def test_without_patents_date_and_title_are_empty(tables, tmp_path, small_reads):
    out = tmp_path / "corpus.csv"
    summary = collect(PatentsViewConfig(abstracts=str(tables["abstracts"]), query=QUERY, out=str(out)))
    abstract_matches = [ROW_1, ROW_3, ROW_7, ROW_OLD, ROW_13]
    assert read_csv(out) == [list(CORPUS_COLUMNS)] + [[a, "", n, ""] for a, _, n, _ in abstract_matches]
    assert summary.rows_scanned == {"g_patent_abstract.tsv.zip": 13}
    assert (summary.matched, summary.written, summary.skipped) == (5, 5, 4)
    assert [(r.file, r.line, r.reason) for r in summary.skipped_rows] == ABSTRACT_SKIPS


def test_plain_tsv_with_crlf_line_ends_reads_the_same(tmp_path, small_reads):
    clean = [line for line in ABSTRACT_LINES if b"\xff" not in line]  # a clean file takes the fast path
    abstracts = write_table(tmp_path / "g_patent_abstract.tsv", clean, newline=b"\r\n")
    patents = write_table(tmp_path / "g_patent.tsv", PATENT_LINES, newline=b"\r\n")
    out = tmp_path / "corpus.csv"
    collect(PatentsViewConfig(abstracts=str(abstracts), patents=str(patents), query=QUERY, out=str(out)))
    # The row over two lines keeps its own line break, here \r\n as well.
    row_3 = [ROW_3[0].replace("\n", "\r\n"), *ROW_3[1:]]
    assert read_csv(out) == [list(CORPUS_COLUMNS), ROW_1, row_3, ROW_7, ROW_10, ROW_OLD, ROW_13]


def test_each_phrase_matches_on_its_own(tables, tmp_path):
    out = tmp_path / "corpus.csv"
    for query, numbers in (
        (("deep learning",), ["10000003"]),
        (("NEURAL NETWORK",), ["10000001", "10000007", "4000001", "10000013"]),
        (("gear box", "early"), ["10000002", "4000001"]),
    ):
        collect(
            PatentsViewConfig(abstracts=str(tables["abstracts"]), query=query, out=str(out), overwrite=True)
        )
        assert [row[2] for row in read_csv(out)[1:]] == numbers, query


def test_rows_the_byte_level_prefilter_cannot_judge_are_read_in_full(tmp_path, small_reads):
    """The reader skips rows by looking at bytes (ASCII case and whitespace only); rows whose text needs
    Unicode to match (non-ASCII spaces or letters, case folding beyond ASCII) must still be found."""
    lines = [
        ABSTRACT_HEADER,
        '"1"\t"A NEURAL\u00a0NETWORK joined by a no-break space."'.encode(),  # match
        '"2"\t"A R\u00c9SEAU NEURONAL, in capitals."'.encode(),  # match for the second phrase
        '"3"\t"A neural \u2003 network around an em space."'.encode(),  # match
        b'"4"\t"A neural\x1fnetwork around a unit separator, which str.isspace counts."',  # match
        b'"5"\t"Nothing to see here."',
        '"6"\t"A neural net, caf\u00e9 style."'.encode(),  # non-ASCII, no match
        *[f'"{k}"\t"Filler row {k} about gears."'.encode() for k in range(7, 60)],
        b'"60"\t"The last NEURAL NETWORK."',  # match
    ]
    abstracts = write_table(tmp_path / "g_patent_abstract.tsv.zip", lines)
    out = tmp_path / "corpus.csv"
    summary = collect(
        PatentsViewConfig(abstracts=str(abstracts), query=("neural network", "réseau neuronal"), out=str(out))
    )
    assert [row[2] for row in read_csv(out)[1:]] == ["1", "2", "3", "4", "60"]
    assert summary.rows_scanned == {"g_patent_abstract.tsv.zip": 60} and summary.skipped == 0


def test_title_only_matches_get_their_abstract(tables, tmp_path):
    out = tmp_path / "corpus.csv"
    config = PatentsViewConfig(
        abstracts=str(tables["abstracts"]),
        patents=str(tables["patents"]),
        query=("controlled pump",),
        out=str(out),
    )
    summary = collect(config)
    assert read_csv(out)[1:] == [ROW_10]
    assert (summary.matched, summary.matched_by_title_only, summary.without_abstract) == (1, 1, 0)


def test_since_keeps_later_grants_and_drops_unknown_dates(tables, tmp_path):
    out = tmp_path / "corpus.csv"
    config = PatentsViewConfig(
        abstracts=str(tables["abstracts"]),
        patents=str(tables["patents"]),
        query=QUERY,
        since="2018-06-20",
        out=str(out),
    )
    summary = collect(config)
    assert read_csv(out)[1:] == [ROW_3, ROW_7, ROW_10]
    # 10000001 (2018-06-19), 4000001 (1990) and 10000013 (no date at all) are out.
    assert (summary.excluded_by_since, summary.without_metadata, summary.written) == (3, 0, 3)


@pytest.mark.parametrize("with_patents", [False, True])
def test_limit_keeps_the_first_in_file_order(tables, tmp_path, with_patents):
    out = tmp_path / "corpus.csv"
    patents = str(tables["patents"]) if with_patents else None
    config = PatentsViewConfig(
        abstracts=str(tables["abstracts"]), patents=patents, query=QUERY, limit=2, out=str(out)
    )
    summary = collect(config)
    rows = read_csv(out)[1:]
    expected = [ROW_1, ROW_3] if with_patents else [[a, "", n, ""] for a, _, n, _ in (ROW_1, ROW_3)]
    assert rows == expected and summary.written == 2


def test_each_pass_logs_where_its_time_went(tables, tmp_path, caplog):
    # benchmarks/patentsview_filter.py reads these lines to tell whether decompression sets the pace.
    caplog.set_level(logging.DEBUG, logger="nextword.corpus.patentsview")
    config = PatentsViewConfig(
        abstracts=str(tables["abstracts"]),
        patents=str(tables["patents"]),
        query=QUERY,
        out=str(tmp_path / "c"),
    )
    collect(config)
    passes = [record.args for record in caplog.records if "waiting for it" in str(record.msg)]
    abstracts, patents = "g_patent_abstract.tsv.zip", "g_patent.tsv.zip"
    assert [args[:2] for args in passes] == [(abstracts, 13), (patents, 9), (abstracts, 13)]
    for _, _, seconds, decompressing, cpu, waiting in passes:
        assert 0 < cpu <= decompressing * 1.01 + 0.01 and 0 <= waiting <= seconds


def test_missing_column_names_the_file_and_its_columns(tables, tmp_path):
    out = tmp_path / "corpus.csv"
    swapped = PatentsViewConfig(abstracts=str(tables["patents"]), query=QUERY, out=str(out))
    with pytest.raises(ValueError) as info:
        collect(swapped)
    message = str(info.value)
    assert str(tables["patents"]) in message and "has no column 'patent_abstract'" in message
    assert "its columns are ['patent_id', 'patent_type', 'patent_date', 'patent_title'," in message
    assert "g_patent_abstract.tsv.zip" in message
    assert not out.exists()


def test_missing_file_and_since_without_patents_are_refused(tables, tmp_path):
    out = tmp_path / "corpus.csv"
    with pytest.raises(FileNotFoundError, match=r"abstracts file .*nope\.tsv\.zip does not exist.*download"):
        collect(PatentsViewConfig(abstracts=str(tmp_path / "nope.tsv.zip"), query=QUERY, out=str(out)))
    with pytest.raises(FileNotFoundError, match="patents file"):
        collect(
            PatentsViewConfig(
                abstracts=str(tables["abstracts"]),
                patents=str(tmp_path / "no.zip"),
                query=QUERY,
                out=str(out),
            )
        )
    with pytest.raises(ValueError, match="pass patents='FILE' as well, or leave out `since`"):
        PatentsViewConfig(abstracts=str(tables["abstracts"]), query=QUERY, since="2015-01-01", out=str(out))
    with pytest.raises(ValueError, match=r"YYYY-MM-DD, got '2015-13-01' \(month must be in 1\.\.12\)"):
        PatentsViewConfig(patents="p", since="2015-13-01")
    for other_shape in ("20150101", "2015-W01-1", "2015-1-1", "2015-01-01T00:00"):  # whatever Python reads
        with pytest.raises(
            ValueError, match=rf"^since must be a date written YYYY-MM-DD, got '{other_shape}'$"
        ):
            PatentsViewConfig(patents="p", since=other_shape)
    assert PatentsViewConfig(patents="p", since=date(2015, 1, 1)).since == "2015-01-01"
    with pytest.raises(ValueError, match="limit must be a positive integer, got 0"):
        PatentsViewConfig(limit=0)
    with pytest.raises(ValueError, match="each query phrase needs at least one word, got '  '"):
        PatentsViewConfig(query=("ok", "  "))
    with pytest.raises(ValueError, match="missing query='PHRASE', out='CSV'"):
        collect(PatentsViewConfig(abstracts=str(tables["abstracts"])))
    assert not out.exists()


def test_out_may_not_be_an_input_file(tables, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = {name: path.read_bytes() for name, path in tables.items()}
    config = {"abstracts": str(tables["abstracts"]), "patents": str(tables["patents"]), "query": QUERY}
    for same in (tables["abstracts"].name, str(tables["patents"])):  # relative (from tmp_path), absolute
        with pytest.raises(CorpusError, match=rf"is the input file .*{Path(same).name}.*another name"):
            collect(PatentsViewConfig(**config, out=same))
    assert {name: path.read_bytes() for name, path in tables.items()} == before


def test_an_existing_out_is_kept_unless_overwrite(tables, tmp_path, capsys):
    out = tmp_path / "corpus.csv"
    out.write_text("my own corpus\n")
    with pytest.raises(CorpusError, match=r"corpus\.csv' exists; pass overwrite=True to replace it"):
        collect(PatentsViewConfig(abstracts=str(tables["abstracts"]), query=QUERY, out=str(out)))
    assert out.read_text() == "my own corpus\n"
    command = ["corpus", "patentsview", "--abstracts", str(tables["abstracts"]), "--query", "neural network"]
    assert main([*command, "--out", str(out), "--no-progress"]) == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_text() == "my own corpus\n"
    assert main([*command, "--out", str(out), "--no-progress", "--overwrite"]) == 0
    assert read_csv(out)[0][0] == "patent_abstract"


@pytest.mark.parametrize("links", [True, False])
def test_an_out_written_meanwhile_by_another_process_is_kept(tables, tmp_path, monkeypatch, links):
    """Two collections into one new CSV at once: both checked that it did not exist, and the second
    replaced the first's corpus, each saying it wrote it. Without overwrite the CSV becomes the file only
    where none is there by then (a hard link; on a file system without them, a check just before)."""
    from nextword.corpus import files
    from nextword.corpus.patentsview import passes

    out = tmp_path / "corpus.csv"
    one_pass = passes._one_pass

    def another_writes_it(*args, **kwargs):
        out.write_text("the other process's corpus\n")
        return one_pass(*args, **kwargs)

    monkeypatch.setattr(passes, "_one_pass", another_writes_it)

    def no_links(source, link):
        raise OSError(errno.EPERM, "Operation not permitted")

    if not links:
        monkeypatch.setattr(files.os, "link", no_links)
    with pytest.raises(
        CorpusError, match=r"corpus\.csv' was written by another process .* nothing was replaced"
    ):
        collect(PatentsViewConfig(abstracts=str(tables["abstracts"]), query=QUERY, out=str(out)))
    assert out.read_text() == "the other process's corpus\n" and list(tmp_path.glob("*.tmp*")) == []
    # any other "file exists" is said as such: a parent of out that is a file; a link to nothing at out
    monkeypatch.setattr(passes, "_one_pass", one_pass)
    (tmp_path / "afile").write_text("")
    with pytest.raises(CorpusError) as caught:
        collect(
            PatentsViewConfig(
                abstracts=str(tables["abstracts"]), query=QUERY, out=str(tmp_path / "afile/c.csv")
            )
        )
    assert "another process" not in str(caught.value)
    (tmp_path / "dangling.csv").symlink_to(tmp_path / "nowhere")
    with pytest.raises(CorpusError, match=r"dangling\.csv' exists; pass overwrite=True"):
        collect(
            PatentsViewConfig(
                abstracts=str(tables["abstracts"]), query=QUERY, out=str(tmp_path / "dangling.csv")
            )
        )


def test_a_query_that_matches_nothing_is_warned_about(tables, tmp_path, caplog):
    out = tmp_path / "corpus.csv"
    with caplog.at_level(logging.WARNING):
        summary = collect(
            PatentsViewConfig(abstracts=str(tables["abstracts"]), query=("zzz qqq",), out=str(out))
        )
    assert summary.written == 0 and len(read_csv(out)) == 1  # the header alone
    assert "no patent matched 'zzz qqq'" in caplog.text and "check the `query` phrases" in caplog.text


def test_nothing_is_written_when_the_zip_is_damaged(tmp_path, monkeypatch):
    monkeypatch.setattr(stream, "CHUNK", 256)  # the header reads fine, the damage comes later
    rng = random.Random(0)
    lines = [ABSTRACT_HEADER] + [
        f'"{i}"\t"a neural network {rng.getrandbits(256):x}"'.encode() for i in range(3000)
    ]
    abstracts = write_table(tmp_path / "g_patent_abstract.tsv.zip", lines)
    data = bytearray(abstracts.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)
    abstracts.write_bytes(bytes(data))
    out = tmp_path / "corpus.csv"
    out.write_text("the previous corpus\n")
    with pytest.raises(ValueError, match=r"g_patent_abstract\.tsv\.zip is damaged .*download it again"):
        collect(PatentsViewConfig(abstracts=str(abstracts), query=QUERY, out=str(out), overwrite=True))
    assert out.read_text() == "the previous corpus\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.csv", "g_patent_abstract.tsv.zip"]
    (tmp_path / "not.zip").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"not\.zip is not a readable zip file"):
        collect(
            PatentsViewConfig(abstracts=str(tmp_path / "not.zip"), query=QUERY, out=str(out), overwrite=True)
        )


def test_skipped_rows_are_listed_up_to_a_limit_and_all_counted(tmp_path, small_reads):
    lines = [ABSTRACT_HEADER]
    for i in range(30):
        lines += [f'"{i}"\t"neural network"\t"extra"'.encode(), f'"{100 + i}"\t"a neural network"'.encode()]
    abstracts = write_table(tmp_path / "g_patent_abstract.tsv.zip", lines)
    summary = collect(PatentsViewConfig(abstracts=str(abstracts), query=QUERY, out=str(tmp_path / "c.csv")))
    assert (summary.skipped, len(summary.skipped_rows), summary.written) == (30, MAX_LISTED, 30)
    assert [r.line for r in summary.skipped_rows] == list(range(2, 2 + 2 * MAX_LISTED, 2))
    assert "... and 10 more" in summary.describe()


def test_duplicate_rows_and_blank_lines(tmp_path):
    lines = [ABSTRACT_HEADER, b'"1"\t"A neural network."', b"", b'"1"\t"A neural network again."', b""]
    abstracts = write_table(tmp_path / "a.tsv", lines)
    out = tmp_path / "c.csv"
    summary = collect(PatentsViewConfig(abstracts=str(abstracts), query=QUERY, out=str(out)))
    assert read_csv(out)[1:] == [["A neural network.", "", "1", ""]]
    assert (summary.rows_scanned["a.tsv"], summary.duplicates, summary.skipped) == (2, 1, 0)


def test_rows_are_checked_in_full_where_they_are_used(tmp_path, small_reads):
    lines = [
        ABSTRACT_HEADER,
        b'"1"\t"A ""fine"" neural network."',
        b'"2"\t"Badly "quoted" but of no use: balanced quotes, one tab."',
        b'"3"\t"Badly "quoted" neural network."',
        b'"4"\t"Of no use"\t"but a field too many."',
    ]
    abstracts = write_table(tmp_path / "a.tsv.zip", lines)
    out = tmp_path / "c.csv"
    summary = collect(PatentsViewConfig(abstracts=str(abstracts), query=QUERY, out=str(out)))
    assert read_csv(out)[1:] == [['A "fine" neural network.', "", "1", ""]]
    assert [(r.line, r.reason) for r in summary.skipped_rows] == [
        (4, tsv.BAD_QUOTING),
        (5, "3 field(s), expected 2"),
    ]


def test_progress_bar_on_a_terminal(tables, tmp_path, capsys, monkeypatch):
    pytest.importorskip("tqdm", reason="tqdm comes with nextword[train]")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    collect(PatentsViewConfig(abstracts=str(tables["abstracts"]), query=QUERY, out=str(tmp_path / "c.csv")))
    err = capsys.readouterr().err
    assert err.startswith("\rabstracts: ") and "13.0 rows" in err and "matched 5" in err
    collect(
        PatentsViewConfig(
            abstracts=str(tables["abstracts"]),
            query=QUERY,
            out=str(tmp_path / "c.csv"),
            progress=False,
            overwrite=True,
        )
    )
    assert capsys.readouterr().err == ""


def test_phrase_matching_rules():
    match = PhraseMatcher(["neural network", "C++", "a a"])
    assert match("A NEURAL\n\t NETWORK.") and match("(neural network)") and match("use c++ here")
    assert not match("neural networks") and not match("neuralnetwork") and not match("xneural network")
    assert not match("neural_network") and not match("neural-network") and not match("c++x")
    assert match("ba a a")  # the second "a a" starts on a word boundary, the first does not
    data = b"first line\nsecond neural network\nthird\nneural  network and NEURAL\tNETWORK\nnone neural"
    assert {data[:at].count(b"\n") for at in match.byte_offsets(data)} == {1, 3}  # lines where one may start
    # A \r that ends a line raises no alarm; one between words does.
    data = b"a\r\nNeural Network\r\nb\r\nneural \x0bnetwork\r\nneural\rnetwork x\r"
    assert {data[:at].count(b"\n") for at in match.byte_offsets(data)} == {1, 3, 4}


# ASCII lines with one gap of any kind of whitespace but tabs and line breaks (which make a row irregular, so
# the reader parses it anyway), or of other bytes, between two words that may make up a query phrase.
WORDS = ["neural", "NEURAL", "deep", "Network", "nEtWoRk", "learning", "x", "(x)"]
QUERY_LINE = st.tuples(
    st.lists(st.sampled_from(WORDS), max_size=3),
    st.sampled_from(WORDS),
    st.sampled_from(["", " ", "  ", " \r ", "\r", "\x0b", "\x0c", "\x1c", "\x1f", "\x00", "-"]),
    st.sampled_from(WORDS),
    st.lists(st.sampled_from(WORDS), max_size=3),
).map(lambda parts: " ".join([*parts[0], parts[1] + parts[2] + parts[3], *parts[4]]))


@settings(max_examples=300, deadline=None)
@given(st.lists(QUERY_LINE, min_size=1, max_size=6))
def test_the_byte_prefilter_flags_every_line_that_matches(lines):
    match = PhraseMatcher(["neural network", "deep learning"])
    data = "\n".join(lines).encode("ascii")
    flagged = {data[:at].count(b"\n") for at in match.byte_offsets(data)}
    assert {i for i, line in enumerate(lines) if match(line)} <= flagged


# Field text as PatentsView may hold it: quotes, tabs, line breaks (\n, \r\n) and any other character.
FIELD_TEXT = st.text(
    st.one_of(st.sampled_from('"\t\n\r ,;x'), st.characters(blacklist_categories=("Cs",))), max_size=40
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(FIELD_TEXT, FIELD_TEXT), min_size=1, max_size=8), st.sampled_from([23, 1 << 20]))
def test_any_field_text_comes_back_unchanged_but_one_holding_a_nul(tmp_path_factory, documents, chunk):
    folder = tmp_path_factory.mktemp("roundtrip")
    abstracts = [f"{before} zq marker {after}" for before, after in documents]
    lines = [ABSTRACT_HEADER] + [
        f'"{i}"\t"{text.replace(chr(34), 2 * chr(34))}"'.encode() for i, text in enumerate(abstracts)
    ]
    path = write_table(folder / "g_patent_abstract.tsv.zip", lines)
    out = folder / "corpus.csv"
    original, stream.CHUNK = stream.CHUNK, chunk
    try:
        summary = collect(PatentsViewConfig(abstracts=str(path), query=("zq marker",), out=str(out)))
    finally:
        stream.CHUNK = original
    clean = [text for text in abstracts if "\x00" not in text]  # a corpus reader refuses a NUL
    assert [row.reason for row in summary.skipped_rows] == [tsv.HOLDS_NUL] * (len(abstracts) - len(clean))
    assert [row[0] for row in read_csv(out)[1:]] == clean


def test_a_row_holding_a_nul_is_skipped_so_the_corpus_written_can_be_read(tmp_path):
    """A NUL in an abstract is a corrupt row: written, it would make the whole corpus unreadable to
    nextword's readers (and Python 3.10's csv cannot write it). It is skipped and listed, as a row that
    is not UTF-8 is; a NUL in a column nextword does not take is no matter."""
    lines = [
        b"patent_id\tpatent_abstract\textra",
        b'"1"\t"A neural network."\t"x"',
        b'"2"\t"A neural network\x00."\t"x"',
        b'"3"\t"Another neural network."\t"\x00"',
    ]
    path = write_table(tmp_path / "g_patent_abstract.tsv.zip", lines)
    out = tmp_path / "c.csv"
    summary = collect(PatentsViewConfig(abstracts=str(path), query=QUERY, out=str(out)))
    assert [(r.line, r.reason) for r in summary.skipped_rows] == [(3, tsv.HOLDS_NUL)]
    assert [row[2] for row in read_csv(out)[1:]] == ["1", "3"]
    documents = list(read_documents(out, CorpusConfig()))
    assert documents == ["A neural network.", "Another neural network."]


# Junk lines: quotes, tabs, bytes that are not UTF-8, but never a line break nor the query.
JUNK = st.lists(st.sampled_from([b'"', b"\t", b"\xff", b"\xc3", b"a", b"1", b" "]), max_size=12).map(b"".join)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(FIELD_TEXT, st.lists(JUNK, max_size=2)), min_size=1, max_size=8),
    st.sampled_from([29, 1 << 20]),
)
def test_junk_lines_never_cost_a_good_row(tmp_path_factory, rows, chunk):
    folder = tmp_path_factory.mktemp("junk")
    lines, expected = [ABSTRACT_HEADER], []
    for i, (text, junk) in enumerate(rows):
        abstract = f"zq marker {text}"
        lines.append(f'"{i}"\t"{abstract.replace(chr(34), 2 * chr(34))}"'.encode())
        lines += junk
        if "\x00" not in abstract:  # skipped, as corpus readers refuse it
            expected.append([abstract, "", str(i), ""])
    path = write_table(folder / "g_patent_abstract.tsv.zip", lines)
    out = folder / "corpus.csv"
    original, stream.CHUNK = stream.CHUNK, chunk
    try:
        collect(PatentsViewConfig(abstracts=str(path), query=("zq marker",), out=str(out)))
    finally:
        stream.CHUNK = original
    assert read_csv(out)[1:] == expected


@pytest.mark.corpus  # real abstracts come from the reference corpus
@pytest.mark.parametrize(
    "query", [("neural network",), ("deep learning", "recurrent neural networks"), ("the",)]
)
def test_real_abstracts_give_what_a_row_by_row_search_gives(tmp_path, query):
    # Real PatentsView text (non-ASCII, double spaces, quotes) through the byte-level prefilter.
    with REFERENCE_CORPUS.open(newline="", encoding="utf-8") as f:
        rows = [(r["patent_number"], r["patent_abstract"]) for r in csv.DictReader(f)]
    lines = [f'"{n}"\t"{text.replace(chr(34), 2 * chr(34))}"'.encode() for n, text in rows]
    path = write_table(tmp_path / "g_patent_abstract.tsv.zip", [ABSTRACT_HEADER, *lines])
    out = tmp_path / "corpus.csv"
    collect(PatentsViewConfig(abstracts=str(path), query=query, out=str(out)))
    match = PhraseMatcher(query)
    expected = list(dict.fromkeys(n for n, text in rows if match(text)))
    assert [row[2] for row in read_csv(out)[1:]] == expected and expected


def test_cli_subcommand_end_to_end(tables, tmp_path, capsys):
    out = tmp_path / "corpus.csv"
    command = ["corpus", "patentsview", "--abstracts", str(tables["abstracts"])]
    query = ["--query", "neural network", "--query", "deep learning"]
    code = main([*command, "--patents", str(tables["patents"]), *query, "--out", str(out), "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0
    assert read_csv(out) == [list(CORPUS_COLUMNS), *EXPECTED]
    assert printed.startswith(f"wrote 6 patents to {out}\n") and "skipped 5 malformed rows:" in printed

    out.unlink()
    code = main([*command, "--query", "x", "--since", "2020-01-01", "--out", str(out)])
    assert code == 2 and "pass --patents FILE as well" in capsys.readouterr().err
    code = main([*command[:3], str(tmp_path / "none.zip"), "--query", "x", "--out", str(out)])
    assert code == 2 and "does not exist" in capsys.readouterr().err
    code = main([*command, "--out", str(out)])
    assert code == 2 and "missing --query PHRASE" in capsys.readouterr().err
    # A phrase the shell split (--query neural network) was two phrases, "neural" or "network".
    with pytest.raises(SystemExit) as exited:
        main([*command, "--query", "neural", "network", "--out", str(out)])
    assert exited.value.code == 2 and "unrecognized arguments: network" in capsys.readouterr().err
    assert not out.exists()


def test_a_compressed_table_that_is_not_the_zip_is_named(tmp_path):
    import gzip

    path = tmp_path / "g_patent_abstract.tsv.gz"
    path.write_bytes(gzip.compress(ABSTRACT_HEADER + b'\n"1"\t"A neural network."\n'))
    config = PatentsViewConfig(abstracts=str(path), query=QUERY, out=str(tmp_path / "c.csv"))
    with pytest.raises(
        ValueError, match=r"tsv\.gz: the file is gzip-compressed, not the tab-separated table.*\.zip"
    ):
        collect(config)
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w"):
        pass
    with pytest.raises(ValueError, match=r"empty\.zip holds \[\]; expected one \.tsv table$"):
        collect(replace(config, abstracts=str(empty)))


def test_sigterm_leaves_no_temporary_file(tables, tmp_path, capsys, monkeypatch):
    """SIGTERM (timeout, a scheduler) ended the command at once: no message, and its temporary CSV stayed
    beside --out (removed an hour later by the next write of that file). It ends as Ctrl-C does."""
    import nextword.corpus.patentsview.passes as passes

    def terminated(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler runs first
        raise AssertionError("SIGTERM did not end the command")

    monkeypatch.setattr(passes, "_one_pass", terminated)
    out = tmp_path / "out" / "c.csv"
    argv = ["corpus", "patentsview", "--abstracts", str(tables["abstracts"]), "--query", "neural network"]
    assert main([*argv, "--out", str(out)]) == 143
    assert capsys.readouterr().err.endswith("nextword corpus: terminated\n")
    assert list(out.parent.iterdir()) == []  # the folder made for it, and nothing in it


def test_collect_runs_without_tensorflow(tables, tmp_path):
    code = """
import sys
from nextword.cli.main import main
assert main(["corpus", "patentsview", "--abstracts", sys.argv[1], "--query", "neural network",
             "--out", sys.argv[2]]) == 0
loaded = sorted(m for m in sys.modules if m.partition(".")[0] in {"tensorflow", "keras", "tf2onnx", "onnx"})
assert not loaded, loaded
print("ok")
"""
    result = run_python(code, str(tables["abstracts"]), str(tmp_path / "c.csv"), block_training_stack=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")


# ------------------------------------------------------------------------- bombs: bounded whatever the input


def _peak_of(call):
    """``(result, peak bytes traced)`` of ``call()``, every thread included."""
    tracemalloc.start()
    try:
        return call(), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("filler", [b"x", b"\x00", b'"'], ids=["text", "NULs", "quotes"])
def test_a_line_over_the_cap_is_skipped_and_reported_in_bounded_memory(tmp_path, monkeypatch, filler):
    monkeypatch.setattr(stream, "CHUNK", 1 << 16)
    bomb = b'"3"\t"' + filler * (8 << 20)  # 8 MiB on one line, and no line break in it
    lines = [ABSTRACT_HEADER, b'"1"\t"A neural network."', bomb, b'"4"\t"Another neural network."']
    abstracts = write_table(tmp_path / "g_patent_abstract.tsv.zip", lines)
    out = tmp_path / "c.csv"
    config = PatentsViewConfig(abstracts=str(abstracts), query=QUERY, out=str(out), max_record_bytes=1 << 14)
    summary, peak = _peak_of(lambda: collect(config))
    assert [row[2] for row in read_csv(out)[1:]] == ["1", "4"]
    assert [(r.line, r.reason) for r in summary.skipped_rows] == [(3, tsv.too_long(1 << 14))]
    assert summary.rows_scanned["g_patent_abstract.tsv.zip"] == 3
    assert peak < 2 << 20, f"{peak:,} bytes traced for an 8 MiB line"


def test_a_table_that_ends_in_an_endless_line_and_one_that_is_one(tmp_path, monkeypatch):
    monkeypatch.setattr(stream, "CHUNK", 1 << 16)
    lines = [ABSTRACT_HEADER, b'"1"\t"A neural network."', b"\x00" * (4 << 20)]
    path = tmp_path / "g_patent_abstract.tsv"
    path.write_bytes(b"\n".join(lines))  # no final line break
    out = tmp_path / "c.csv"
    config = PatentsViewConfig(
        abstracts=str(path), query=QUERY, out=str(out), max_record_bytes=4096, overwrite=True
    )
    summary = collect(config)
    assert [row[2] for row in read_csv(out)[1:]] == ["1"] and summary.skipped_rows[0].line == 3
    path.write_bytes(b"\x00" * (4 << 20))
    with pytest.raises(ValueError, match="the first line is not a tab-separated header"):
        collect(config)


def test_a_quoted_field_over_the_cap_is_skipped_and_what_follows_read_again(tmp_path):
    lines = [ABSTRACT_HEADER, b'"1"\t"A neural network with a quoted field that never closes']
    lines += [b"filler " * 40] * 50  # about 14 kB of lines before the next row
    lines += [b'"2"\t"A neural network after it."']
    abstracts = write_table(tmp_path / "a.tsv", lines)
    out = tmp_path / "c.csv"
    summary = collect(
        PatentsViewConfig(abstracts=str(abstracts), query=QUERY, out=str(out), max_record_bytes=4096)
    )
    assert [row[2] for row in read_csv(out)[1:]] == ["2"]
    assert (summary.skipped_rows[0].line, summary.skipped_rows[0].reason) == (2, tsv.too_long(4096))
    summary = collect(PatentsViewConfig(abstracts=str(abstracts), query=QUERY, out=str(out), overwrite=True))
    assert summary.skipped_rows[0].reason == tsv.UNCLOSED  # under the default cap: open to the end


def test_blank_lines_are_counted_in_bulk_not_read_one_by_one(tmp_path, monkeypatch):
    from nextword.corpus.patentsview import table

    reads = []
    original = table._Pass._row_at
    monkeypatch.setattr(table._Pass, "_row_at", lambda self, i: reads.append(i) or original(self, i))
    blank = b"\n" * (2 << 20) + b"\r\n" * (1 << 20)
    lines = [
        ABSTRACT_HEADER,
        b'"1"\t"A neural network."',
        blank,
        b'"2"\t"Deep learning."',
        b"",
        b'"3"\t"No."',
    ]
    abstracts = write_table(tmp_path / "g_patent_abstract.tsv.zip", lines)
    for query in (QUERY, ("no",)):
        reads.clear()
        out = tmp_path / "c.csv"
        summary = collect(
            PatentsViewConfig(abstracts=str(abstracts), query=query, out=str(out), overwrite=True)
        )
        assert summary.rows_scanned["g_patent_abstract.tsv.zip"] == 3 and summary.skipped == 0
        assert len(reads) <= 3  # the rows a pass may want, never the 3 million blank lines
    assert [row[2] for row in read_csv(out)[1:]] == ["3"]


def test_max_record_bytes_is_an_option(tables, tmp_path, capsys):
    out = tmp_path / "c.csv"
    command = ["corpus", "patentsview", "--abstracts", str(tables["abstracts"]), "--query", "neural network"]
    assert main([*command, "--out", str(out), "--max-record-bytes", "40", "--no-progress"]) == 0
    assert "longer than 40 bytes (--max-record-bytes, max_record_bytes)" in capsys.readouterr().out
    assert main([*command, "--out", str(out), "--max-record-bytes", "0"]) == 2
    assert "--max-record-bytes must be a positive integer" in capsys.readouterr().err


def test_file_system_errors_are_one_line_and_exit_2(tables, tmp_path, capsys, monkeypatch):
    from nextword.corpus.patentsview import passes

    command = ["corpus", "patentsview", "--abstracts", str(tables["abstracts"]), "--query", "neural network"]
    folder = tmp_path / "existing"
    folder.mkdir()
    assert main([*command, "--out", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "is a folder; give the path of the CSV file" in err and len(err.strip().splitlines()) == 1

    def read_only(target, replace=True):
        raise OSError(errno.EROFS, "Read-only file system", str(target))

    with monkeypatch.context() as patch:
        patch.setattr(passes, "atomic_path", read_only)
        assert main([*command, "--out", str(tmp_path / "c.csv")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        f"nextword corpus: error: cannot write {tmp_path / 'c.csv'}: Read-only file system; "
        "the file system is read-only: choose another place"
    )

    original = Path.open

    def locked(self, *args, **kwargs):
        if self.name == "g_patent_abstract.tsv":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return original(self, *args, **kwargs)

    plain = write_table(tmp_path / "g_patent_abstract.tsv", ABSTRACT_LINES)
    monkeypatch.setattr(Path, "open", locked)
    assert main([*command[:3], str(plain), *command[4:], "--out", str(tmp_path / "c.csv")]) == 2
    err = capsys.readouterr().err
    assert f"cannot read {plain}: Permission denied; check the permissions" in err
    assert not (tmp_path / "c.csv").exists()
