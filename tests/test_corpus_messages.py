"""Corpus messages found by a user walkthrough: a .json file of JSON Lines was offered plain text as its
fix; JSON Lines lines that are no object, broken JSON and a text field of another type got messages
that could not help (or were cut mid-sentence); a format forced onto a .csv read its header as text
without a word; the near-duplicate threshold's error did not name its flag; and a CSV quote closed rows
later joined those rows into one document without a word."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

from nextword.cli.main import main
from nextword.corpus import CorpusConfig, CorpusError, load_documents, read_documents
from nextword.runtime import BUNDLED_MODEL

RECORDS = [{"text": "The first document about a pump."}, {"text": "A second document, about a valve."}]


def refusal(path: Path, config: CorpusConfig | None = None) -> str:
    """The message of the CorpusError that loading ``path`` raises."""
    with pytest.raises(CorpusError) as refused:
        load_documents([path], config or CorpusConfig())
    return str(refused.value)


def evaluate_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """The one line ``nextword evaluate`` (the bundled model) writes when it refuses ``args``."""
    assert main(["evaluate", str(BUNDLED_MODEL), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


# ----------------------------------------------------------------- a .json file


def test_a_json_file_of_json_lines_is_offered_the_jsonl_format(tmp_path, capsys):
    path = tmp_path / "records.json"
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS), encoding="utf-8")
    message = refusal(path)
    assert message == (
        f"{path} holds JSON Lines (one object per line), and nextword reads a file as JSON Lines by its name "
        "only when it ends in .jsonl or .ndjson: pass format='jsonl' to read it as JSON Lines, or rename it "
        "to .jsonl"
    )
    assert "format='text'" not in message
    assert load_documents([path], CorpusConfig(format="jsonl")) == [r["text"] for r in RECORDS]  # the fix
    err = evaluate_error(capsys, str(path))
    assert "pass --corpus-format jsonl to read it as JSON Lines" in err and "--corpus-format text" not in err


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (json.dumps(RECORDS), "is one JSON array: write each of its objects on a line of its own"),
        (json.dumps(RECORDS, indent=2), "is one JSON array"),
        (json.dumps({"records": RECORDS}, indent=2), "not a single JSON document"),
        ('"just a string"\n', "not a single JSON document"),
        ("not JSON at all\n", "not a single JSON document"),
        ("\n  " + json.dumps(RECORDS), "is one JSON array"),  # after blank lines
        ('{"text": "a"} {"text": "b"}\n{"text": "c"}\n', "not a single JSON document"),  # two on line 1
        ('{"text": "a"}\n[1, 2]\n', "not a single JSON document"),  # line 2 no object
        ('{"a": ' * 100_000, "not a single JSON document"),  # too deep for json to read
    ],
)
def test_a_json_document_is_never_offered_plain_text(tmp_path, text, said):
    """One JSON document read as text would train on its brackets: the fix is JSON Lines, a jq line
    for an array, and format='jsonl' only as an if (the start of the file is not one object a line)."""
    path = tmp_path / "records.json"
    path.write_text(text, encoding="utf-8")
    message = refusal(path)
    assert message.startswith(f"{path}: nextword reads JSON Lines") and said in message, message
    assert "format='text'" not in message
    if "array" in said:
        assert f"jq -c '.[]' {path} > {path.with_suffix('.jsonl')}" in message
        assert "format='jsonl'" not in message
    else:
        assert "if this file holds one object per line already, pass format='jsonl'" in message


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(RECORDS[0]) + "\n",  # one record
        json.dumps(RECORDS[0]) + "\n\n" + json.dumps(RECORDS[1]) + "\n",  # a blank line between records
        "\ufeff" + json.dumps(RECORDS[0]) + "\n" + json.dumps(RECORDS[1]) + "\n",  # a byte-order mark
        "\n" + json.dumps(RECORDS[0]) + "\n" + json.dumps(RECORDS[1]),  # a blank first line, no last break
        json.dumps({"text": "word " * 1000}) + "\n" + json.dumps(RECORDS[1]) + "\n",  # a long first record
    ],
)
def test_json_lines_in_a_json_file_is_recognised_in_each_layout(tmp_path, text):
    path = tmp_path / "records.json"
    path.write_text(text, encoding="utf-8")
    assert refusal(path).startswith(f"{path} holds JSON Lines (one object per line)")


def test_the_jq_line_quotes_a_name_with_a_space(tmp_path):
    path = tmp_path / "my records.json"
    path.write_text(json.dumps(RECORDS), encoding="utf-8")
    out = tmp_path / "my records.jsonl"
    assert f"(jq -c '.[]' '{path}' > '{out}', say)" in refusal(path)


def test_a_json_file_that_is_not_utf8_past_its_first_bytes_is_told_what_nextword_reads(tmp_path):
    """The bytes read to tell its layout are more than those checked to be text: a byte of Latin-1
    there made detect_format raise UnicodeDecodeError."""
    path = tmp_path / "records.json"
    path.write_bytes(json.dumps({"text": "a" * 5000 + "\u00e9"}).encode().replace(b"\\u00e9", b"\xe9"))
    assert refusal(path).startswith(f"{path}: nextword reads JSON Lines")


def test_a_compressed_json_file_is_refused_as_compressed(tmp_path):
    path = tmp_path / "records.json"
    path.write_bytes(b"\x1f\x8b\x08\x00" + bytes(20))
    assert "gzip-compressed" in refusal(path)


# ----------------------------------------------------------------- JSON Lines


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ('["a", "list"]', "an array (['a', 'list'])"),
        ('"a string"', "a string ('a string')"),
        ("42", "a number (42)"),
        ("null", "null (None)"),
        ("true", "true or false (True)"),
        ("[]", "an array ([])"),  # no objects in it to write one a line
        ('[{"body": "A text."}, 1]', "an array ([{'body': 'A text.'}, 1])"),  # not only objects
    ],
)
def test_a_line_that_is_no_object_says_what_each_line_must_be(tmp_path, line, kind):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"body": "A first document."}) + "\n" + line + "\n", encoding="utf-8")
    message = refusal(path, CorpusConfig(json_field="body"))
    assert message == (
        f"{path}, line 2: the line holds {kind}, not a JSON object; each line of a JSON Lines file must be "
        """one object with its text in the string field 'body', such as {"body": "A document."}"""
    )
    assert "--json-field" not in message and "choose the field" not in message


def test_a_line_holding_an_array_of_records_is_told_to_write_one_a_line(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps(RECORDS) + "\n", encoding="utf-8")
    assert refusal(path).endswith("; this array holds objects: write each of them on a line of its own")


@pytest.mark.parametrize(
    ("line", "said"),
    [
        (
            '{"text": "a\tb"}',
            "line 2, column 12: not valid JSON (Invalid control character '\\t' inside a string, where "
            "JSON writes it escaped: \\t for a tab",
        ),
        (
            '{"text": "cut short',
            "line 2, column 10: not valid JSON (Unterminated string: it starts here, and the line ends "
            "before its closing quote)",
        ),
        ('{"text": "a"} {"text": "b"}', "line 2, column 15: not valid JSON (Extra data: more than one"),
        ("{broken", "line 2, column 2: not valid JSON (Expecting property name enclosed in double quotes)"),
        ('{"text" "a"}', "line 2, column 9: not valid JSON (Expecting ':' delimiter)"),
    ],
)
def test_broken_json_says_the_whole_reason_with_line_and_column(tmp_path, line, said):
    """json's msg of some errors ends in "at" (its position cut off): the message was cut mid-sentence."""
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps(RECORDS[0]) + "\n" + line + "\n", encoding="utf-8")
    message = refusal(path)
    assert message.startswith(f"{path}, {said}"), message
    assert not message.split(" (", 1)[1].startswith(
        ("Invalid control character at", "Unterminated string starting")
    )
    assert message.endswith("fix the line, or write the file again with a JSON library")


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (5, "a number (5)"),
        (["a"], "an array (['a'])"),
        ({"a": "b"}, "an object ({'a': 'b'})"),
        (False, "true"),
    ],
)
def test_a_text_field_of_another_type_names_line_field_and_what_it_must_hold(tmp_path, capsys, value, kind):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps(RECORDS[0]) + "\n" + json.dumps({"text": value}) + "\n", encoding="utf-8")
    message = refusal(path)
    assert message.startswith(f"{path}, line 2: field 'text' holds {kind}"), message
    assert "it must hold the document's text as a JSON string in double quotes" in message
    assert message.endswith("choose the field that holds it with `json_field`")
    if value == 5:
        assert evaluate_error(capsys, str(path)).endswith("choose the field that holds it with --json-field")


def test_records_whose_other_fields_are_blank_are_not_told_to_choose_one(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": "", "title": "  "}\n{"text": null, "title": ""}\n', encoding="utf-8")
    message = refusal(path)
    assert "holds no non-empty documents" in message and "json_field" not in message, message


def test_records_without_text_beside_records_with_it_are_left_out(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(
        '{"text": "", "title": "A title"}\n{"text": "A document.", "title": "B"}\n', encoding="utf-8"
    )
    assert load_documents([path], CorpusConfig()) == ["A document."]


def test_the_fields_offered_for_the_text_are_ten_at_most(tmp_path):
    path = tmp_path / "c.jsonl"
    record = {"text": "", **{f"f{i:02}": "some text" for i in range(12)}}
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    assert f"fields that hold text are {[f'f{i:02}' for i in range(10)]}. Choose" in refusal(path)


def test_a_long_integer_names_the_limit_in_force(tmp_path):
    """The limit is the process's (PYTHONINTMAXSTRDIGITS, sys.set_int_max_str_digits), not 4300."""
    path = tmp_path / "c.jsonl"
    if not hasattr(sys, "set_int_max_str_digits"):  # Python 3.10 before 3.10.7 has no limit
        pytest.skip("this Python has no limit on the digits of an integer")
    path.write_text('{"text": "A document.", "n": 1' + "0" * 800 + "}\n", encoding="utf-8")
    before = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(700)
    try:
        message = refusal(path)
    finally:
        sys.set_int_max_str_digits(before)
    assert message.startswith(f"{path}, line 1: an integer of more than 700 digits"), message


# ----------------------------------------------------------------- a format forced onto a file


def test_a_format_forced_onto_a_csv_is_warned_about_once_per_file(tmp_path, caplog):
    path = tmp_path / "c.csv"
    path.write_text("id,text\n1,A first document\n2,A second document\n", encoding="utf-8")
    config = CorpusConfig(format="lines")
    with caplog.at_level(logging.WARNING, logger="nextword.corpus"):
        assert load_documents([path], config) == ["id,text", "1,A first document", "2,A second document"]
        assert list(read_documents(path, config, log=False))  # a later pass says nothing
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == [
        f"{path}: read as lines of text (format='lines'), though its name says CSV: its header line and the "
        "separators between its fields are read as text; to read it by its name, pass format='auto'"
    ]


@pytest.mark.parametrize(
    ("name", "fmt", "said"),
    [
        ("c.jsonl", "text", "though its name says JSON Lines: its braces, quotes and field names"),
        (
            "c.json",
            "lines",
            "though its name says JSON: its braces, quotes and field names are read as text; ",
        ),
        ("c.tsv", "jsonl", "though its name says CSV; to read it by its name, pass format='auto'"),
        ("c.txt", "lines", None),
        ("c.md", "csv", None),
        ("c.json", "jsonl", None),
        ("c.csv", "csv", None),
    ],
)
def test_only_a_format_the_name_contradicts_is_warned_about(tmp_path, caplog, name, fmt, said):
    path = tmp_path / name
    path.write_text('{"text": "a document"}\n', encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="nextword.corpus"):
        list(read_documents(path, CorpusConfig(format=fmt)))
    warned = [r.getMessage() for r in caplog.records if "its name says" in r.getMessage()]
    if said is None:
        assert not warned
    else:
        assert len(warned) == 1 and said in warned[0], warned
        assert warned[0].startswith(f"{path}: read as ")


def test_a_json_file_read_as_lines_is_offered_json_lines_whatever_the_case_of_its_name(tmp_path, caplog):
    path = tmp_path / "C.JSON"
    path.write_text('{"text": "a document"}\n', encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="nextword.corpus"):
        assert load_documents([path], CorpusConfig(format="lines")) == ['{"text": "a document"}']
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: read as lines of text (format='lines'), though its name says JSON: its braces, quotes and "
        "field names are read as text; if it holds one JSON object per line, pass format='jsonl'"
    ]


# ----------------------------------------------------------------- the near-duplicate threshold


@pytest.mark.parametrize("value", [0, 1.5, float("nan"), "0.5", True])
def test_the_threshold_error_names_the_option(value):
    with pytest.raises(ValueError, match=r"^near_duplicate_threshold must be "):
        CorpusConfig(near_duplicate_threshold=value)


def test_the_command_line_names_the_threshold_flag(tmp_path, capsys):
    path = tmp_path / "c.csv"
    path.write_text("text\nA document\n", encoding="utf-8")
    code = main(["train", str(path), "--out", str(tmp_path / "r"), "--near-duplicate-threshold", "2"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("nextword train: error: --near-duplicate-threshold must be in (0, 1], got 2.0"), err


@pytest.mark.parametrize(("count", "said"), [(1, ": 1 document"), (2, ": 2 documents")])
def test_each_files_count_of_documents_is_said_in_words(tmp_path, caplog, count, said):
    from nextword.corpus import read_corpus

    path = tmp_path / "c.txt"
    path.write_text("\n\n".join(f"document number {i}" for i in range(count)) + "\n", encoding="utf-8")
    with caplog.at_level(logging.INFO, logger="nextword.corpus"):
        assert len(list(read_corpus(CorpusConfig(paths=(str(path),))))) == count
    assert f"{path}{said}\n" in caplog.text, caplog.text
