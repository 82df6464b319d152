import gzip
import json
import re

import pytest

from nextword.corpus import CorpusConfig, CorpusError, load_documents, split_documents

DEFAULT = CorpusConfig()


def test_the_three_formats_read_the_same_documents(corpus_files, documents):
    for kind in ("csv", "jsonl", "text"):
        assert load_documents([corpus_files[kind]], DEFAULT) == documents, kind


def test_several_files_in_one_call(corpus_files, documents):
    assert load_documents([corpus_files["csv"], corpus_files["text"]], DEFAULT) == documents * 2


def test_csv_column_choice_and_quoted_newlines(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text(
        'id,body\n1,"first line\nsecond line"\n2,"with ""quotes"", commas"\n3,\n', encoding="utf-8"
    )
    docs = load_documents([path], CorpusConfig(text_column="body"))
    assert docs == ["first line\nsecond line", 'with "quotes", commas']


def test_csv_missing_column_names_the_columns(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("id,body\n1,text\n")
    with pytest.raises(
        CorpusError, match=r"which column holds the text\? Its columns are \['id', 'body'\], none"
    ):
        load_documents([path], DEFAULT)
    with pytest.raises(
        CorpusError, match=r"no column 'abstract'; its columns are \['id', 'body'\].*`text_column`"
    ):
        load_documents([path], CorpusConfig(text_column="abstract"))
    path.write_text("")  # an empty file: no header line to name its columns
    for config in (DEFAULT, CorpusConfig(text_column="abstract")):
        with pytest.raises(CorpusError, match=r"c\.csv is empty: a CSV corpus starts with a header line"):
            load_documents([path], config)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("body", "body"),  # the only column
        ("id,text,title", "text"),
        ("patent_abstract,patent_date,patent_number,patent_title", "patent_abstract"),  # the reference corpus
        ("patent_abstract,text", "text"),
    ],
)
def test_csv_text_column_auto_picks_the_obvious_one(tmp_path, header, expected):
    """Without --text-column a CSV's text is its only column, else its column named text, else
    patent_abstract (the reference corpus and `nextword corpus patentsview` write that)."""
    columns = header.split(",")
    path = tmp_path / "c.csv"
    rows = [[f"{c} {i}" for c in columns] for i in range(3)]
    path.write_text("\n".join([header] + [",".join(r) for r in rows]) + "\n")
    assert DEFAULT.text_column == "auto"
    assert load_documents([path], DEFAULT) == [f"{expected} {i}" for i in range(3)]


def test_csv_with_byte_order_mark(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffpatent_abstract\nhello\n".encode())
    assert load_documents([path], DEFAULT) == ["hello"]


def test_jsonl_field_choice_and_errors(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"abstract": "one"}) + "\n\n" + json.dumps({"abstract": "two"}) + "\n")
    assert load_documents([path], CorpusConfig(json_field="abstract")) == ["one", "two"]
    with pytest.raises(CorpusError, match=r"line 1: no field 'text' \(found \['abstract'\]\)"):
        load_documents([path], DEFAULT)
    path.write_text('{"text": "ok"}\n{broken\n')
    with pytest.raises(CorpusError, match="line 2, column 2: not valid JSON"):
        load_documents([path], DEFAULT)


def test_plain_text_paragraphs(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("first doc\ncontinues here\n\n\n  \nsecond doc\n")
    assert load_documents([path], DEFAULT) == ["first doc continues here", "second doc"]


def test_lines_format_reads_one_document_per_line(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("first doc\ncontinues here\n\n\n  \nsecond doc\n")
    lines = CorpusConfig(format="lines")
    assert load_documents([path], lines) == ["first doc", "continues here", "second doc"]
    with pytest.raises(ValueError, match="corpus format must be one of"):
        CorpusConfig(format="line")


def test_a_single_document_is_explained_with_the_formats_that_cut_a_file_into_documents(tmp_path):
    from nextword.corpus import split_corpus

    path = tmp_path / "one per line.txt"
    path.write_text("the first document\nthe second, quite another text\nand a third one\n")
    for keep in (False, True):  # the deduplicated split and the plain one say the same
        config = CorpusConfig(paths=(str(path),), keep_duplicates=keep)
        with pytest.raises(CorpusError, match=r"has 1 document\(s\).*blank lines.*format='lines'"):
            split_corpus(config)
    split = split_corpus(CorpusConfig(paths=(str(path),), format="lines", val_fraction=0.4))
    assert (split.counts.documents, split.counts.val_documents) == (3, 1)


def test_a_json_document_is_refused_with_the_way_to_json_lines(tmp_path):
    path = tmp_path / "records.json"
    path.write_text(json.dumps([{"text": "one"}, {"text": "two"}]))
    with pytest.raises(CorpusError, match=r"records.json: nextword reads JSON Lines.*\.jsonl file"):
        load_documents([path], DEFAULT)
    assert load_documents([path], CorpusConfig(format="text")) == [path.read_text()]  # asked for


def test_format_can_be_forced(tmp_path):
    path = tmp_path / "abstracts.data"
    path.write_text("patent_abstract\nrow one\n")
    assert load_documents([path], CorpusConfig(format="csv")) == ["row one"]
    assert load_documents([path], DEFAULT) == ["patent_abstract row one"]  # unknown suffix: plain text


def test_missing_file_and_empty_corpus(tmp_path):
    with pytest.raises(CorpusError, match="does not exist"):
        load_documents([tmp_path / "nope.csv"], DEFAULT)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n  \n")
    with pytest.raises(CorpusError, match="holds no non-empty documents"):
        load_documents([empty], DEFAULT)
    with pytest.raises(CorpusError, match="no corpus files"):
        load_documents([], DEFAULT)


def test_undecodable_bytes_name_the_file_and_line(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"fine line\n\nanother fine line\ncaf\xe9 au lait\n")
    with pytest.raises(CorpusError, match=r"latin1.txt, line 4: bytes that are not UTF-8"):
        load_documents([path], DEFAULT)
    # found a MiB at a time (a line is not read whole): past the first MiB, and a character cut short
    # at the very end
    path.write_bytes(b"a fine line\n" * 100_000 + b"caf\xe9\n")
    with pytest.raises(CorpusError, match=r"latin1.txt, line 100,001: bytes that are not UTF-8"):
        load_documents([path], DEFAULT)
    path.write_bytes(b"fine\n" * 3 + b"x" * (1 << 20) + b" \xe2\x82")
    with pytest.raises(CorpusError, match=r"latin1.txt, line 4: bytes that are not UTF-8"):
        load_documents([path], DEFAULT)
    # a character cut by the first MiB's end, then bad bytes on the same line
    path.write_bytes(b"a\n" + b"y" * ((1 << 20) - 4) + "\u20ac".encode() + b"\xff\nmore\n")
    with pytest.raises(CorpusError, match=r"latin1.txt, line 2: bytes that are not UTF-8"):
        load_documents([path], DEFAULT)


def test_split_is_by_document_seeded_and_disjoint():
    docs = [f"document number {i}" for i in range(100)]
    train, val = split_documents(docs, 0.1, seed=7)
    assert len(val) == 10 and len(train) == 90
    assert set(train).isdisjoint(val) and set(train) | set(val) == set(docs)
    assert split_documents(docs, 0.1, seed=7) == (train, val)
    assert split_documents(docs, 0.1, seed=8)[1] != val


def test_split_keeps_one_document_on_each_side():
    assert split_documents(["a", "b"], 0.01, seed=0)[1] in (["a"], ["b"])
    with pytest.raises(CorpusError, match="at least 2"):
        split_documents(["only one"], 0.1, seed=0)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_val_fraction_is_validated(fraction):
    with pytest.raises(ValueError, match="val_fraction"):
        CorpusConfig(val_fraction=fraction)


def test_jsonl_nested_too_deeply_names_the_file_and_line(tmp_path):
    path = tmp_path / "deep.jsonl"
    path.write_text('{"text": "fine"}\n' + '{"text": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    with pytest.raises(CorpusError, match=r"deep\.jsonl, line 2: JSON nested too deeply to read"):
        load_documents([path], DEFAULT)


def test_a_lone_surrogate_is_a_corpus_error_naming_the_file_and_line(tmp_path):
    path = tmp_path / "half.jsonl"
    path.write_text('{"text": "a pair \\ud83d\\ude00 is fine"}\n{"text": "half \\ud800 of a pair"}\n')
    with pytest.raises(CorpusError, match=r"half\.jsonl, line 2: field 'text' holds '\\ud800'.*\\u escape"):
        load_documents([path], DEFAULT)


def test_an_unreadable_corpus_file_is_one_clear_error(tmp_path, monkeypatch):
    import errno
    from pathlib import Path

    path = tmp_path / "locked.txt"
    path.write_text("some text\n")
    original = Path.open

    def locked(self, *args, **kwargs):
        if self == path:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", locked)
    with pytest.raises(
        CorpusError, match=r"cannot read .*locked\.txt: Permission denied; check the permissions"
    ):
        load_documents([path], DEFAULT)


def test_a_full_disk_while_encoding_names_the_id_file_and_leaves_nothing(tmp_path, monkeypatch, corpus_files):
    import errno

    from nextword.corpus import build_vocabulary, encode_corpus, encode_stream, split_corpus
    from nextword.corpus.encode import IdStreamWriter
    from nextword.runtime import TokenizerConfig

    split = split_corpus(CorpusConfig(paths=(str(corpus_files["csv"]),)))
    tokenizer = build_vocabulary(split, TokenizerConfig())

    def full(self):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(IdStreamWriter, "flush", full)
    with pytest.raises(CorpusError, match=r"cannot write .*\.ids: No space left on device; free some space"):
        encode_corpus(split, tokenizer, tmp_path / "train.ids", tmp_path / "val.ids")
    assert list(tmp_path.iterdir()) == []
    assert len(encode_stream(["a b"], tokenizer)) == 4  # <eod> a b <eod>


def test_a_lone_surrogate_in_a_training_corpus_is_exit_2_about_the_file(tmp_path):
    from helpers import run_python

    pytest.importorskip("tensorflow", reason="tensorflow missing: install nextword[train]")
    path = tmp_path / "half.jsonl"
    lines = [f'{{"text": "document number {i} is fine"}}' for i in range(5)] + [
        '{"text": "half \\udc80 one"}'
    ]
    path.write_text("\n".join(lines) + "\n")
    code = "import sys; from nextword.cli.main import main; sys.exit(main(sys.argv[1:]))"
    result = run_python(code, "train", str(path), "--out", str(tmp_path / "run"), "--epochs", "1")
    assert result.returncode == 2, result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert (
        "half.jsonl, line 6" in error
        and "re-export" not in result.stderr
        and "Traceback" not in result.stderr
    )


def test_a_vocabulary_that_leaves_most_words_out_is_warned_about(tmp_path, caplog, corpus_files):
    """Words nearly all rare (clauses written without spaces, here letters drawn at random): the
    vocabulary pass says so and names what to change. Chinese clauses were such words before tokenizer
    format 5; each ideograph is a word now."""
    import random

    from nextword.corpus import build_vocabulary, split_corpus
    from nextword.runtime import TokenizerConfig

    rng = random.Random(0)
    for chars, join, warned in [
        ("abcdefghijklmnopqrstuvwxyzäöü", " ", True),
        ("神经网络是一种计算模型它由许多元组成用于识别图像和语音的系统方法装置", "。", False),
    ]:
        clauses = ["".join(rng.choice(chars) for _ in range(rng.randint(4, 9))) for _ in range(400)]
        documents = [join.join(rng.sample(clauses, 6)) + "。" for _ in range(60)]
        path = tmp_path / "rare.jsonl"
        path.write_text("".join(json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in documents))
        caplog.clear()
        with caplog.at_level("INFO", logger="nextword.corpus"):
            split = split_corpus(CorpusConfig(paths=(str(path),)))
            tokenizer = build_vocabulary(split, TokenizerConfig(min_count=2))
        assert ("fall outside the vocabulary" in caplog.text) is warned, chars
        assert ("lower `min_count`" in caplog.text) is warned and ("one rare word" in caplog.text) is warned
        assert tokenizer.version == (3 if warned else 5)
    caplog.clear()
    with caplog.at_level("INFO", logger="nextword.corpus"):
        build_vocabulary(split_corpus(CorpusConfig(paths=(str(corpus_files["csv"]),))), TokenizerConfig())
    assert "of the training words are outside the vocabulary (<unk>)" in caplog.text  # the share, logged
    assert "fall outside the vocabulary" not in caplog.text


def test_a_vocabulary_without_a_single_word_is_refused_before_training(corpus_files):
    """--min-count above every word's count trained a model of <unk> alone (perplexity 1.2), whose
    export then failed with numpy's "low >= high"."""
    from nextword.corpus import build_vocabulary, split_corpus
    from nextword.runtime import TokenizerConfig

    split = split_corpus(CorpusConfig(paths=(str(corpus_files["csv"]),)))
    with pytest.raises(ValueError, match=r"no word of the training documents occurs min_count=100000 .*"):
        build_vocabulary(split, TokenizerConfig(min_count=100_000))


@pytest.mark.train
def test_a_corpus_with_no_word_once_tokenized_is_refused_before_training(tmp_path, capsys):
    """Documents of figure references alone ("(12) (13a)"), dropped by the tokenizer, trained a model of
    document ends and exited 0; its export then failed with numpy's "low >= high"."""
    from nextword.cli.main import main

    path = tmp_path / "figures.csv"
    path.write_text('text\n"(12) (13a)"\n"(14)"\n"(15)"\n"(16)"\n', encoding="utf-8")
    out = tmp_path / "run"
    assert main(["train", str(path), "--out", str(out), "--epochs", "1", "--lstm-units", "8"]) == 2
    said = capsys.readouterr().err
    assert "the training documents hold no word once tokenized" in said and "--no-drop-figure-refs" in said
    assert not out.exists()


def test_a_corpus_that_marks_rare_words_unk_counts_them_as_unknown_words(tmp_path, caplog):
    """Penn Treebank style text ("<unk>" for every rare word): each mark is one unknown word, so the
    vocabulary holds no "unk", "<" or ">" and the logged share of unknown words counts the marks."""
    from nextword.corpus import build_vocabulary, split_corpus
    from nextword.runtime import TokenizerConfig

    documents = [f"the <unk> company {i} said the shares rose ." for i in range(40)]  # 1 mark in 9 words
    path = tmp_path / "ptb.jsonl"
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in documents))
    with caplog.at_level("INFO", logger="nextword.corpus"):
        config = CorpusConfig(paths=(str(path),), keep_duplicates=True)
        tokenizer = build_vocabulary(split_corpus(config), TokenizerConfig(min_count=1))
    assert not {"unk", "<", ">"} & set(tokenizer.tokens)
    assert tokenizer.encode(documents[0])[:3] == [
        tokenizer.id_of("the"),
        tokenizer.unk_id,
        tokenizer.id_of("company"),
    ]
    assert "11.1% of the training words are outside the vocabulary (<unk>)" in caplog.text


def test_the_vocabulary_leaves_out_the_words_of_the_development_part(tmp_path):
    """Words that only development documents use (never trained on) stay out of the vocabulary: in
    it, they would be untrained rows scored on the very documents that choose the epoch and tune the
    cache."""
    import numpy as np

    from nextword.corpus import build_vocabulary, split_corpus
    from nextword.runtime import TokenizerConfig

    documents = [f"document {i} reads plain words" for i in range(20)] + ["zebra quagga okapi"]
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in documents))
    split = split_corpus(CorpusConfig(paths=(str(path),), keep_duplicates=True, val_fraction=0.1))
    train, _ = split.documents()
    assert "zebra quagga okapi" in train
    leave_out = np.array([d == "zebra quagga okapi" for d in train])
    config = TokenizerConfig(min_count=1)
    assert "zebra" in build_vocabulary(split, config).tokens
    tokens = build_vocabulary(split, config, leave_out=leave_out).tokens
    assert not {"zebra", "quagga", "okapi"} & set(tokens) and {"document", "plain"} <= set(tokens)


def test_a_huge_integer_in_a_json_line_names_the_file_and_line(tmp_path):
    """Python refuses to read an integer of more than 4300 digits (sys.get_int_max_str_digits); a line
    holding one, in any field, is a bad line like the others, not a Python message."""
    path = tmp_path / "big.jsonl"
    path.write_text('{"text": "a b c"}\n{"text": "a b c", "n": 1' + "0" * 5000 + "}\n")
    with pytest.raises(CorpusError) as caught:
        load_documents([path], DEFAULT)
    message = str(caught.value)
    assert re.search(
        r"big\.jsonl, line 2: an integer of more than \d+ digits.*'text' field.*in quotes", message
    )
    assert "sys.set_int_max_str_digits" not in message


@pytest.mark.parametrize(
    ("content", "line"),
    [
        ('id,text\n1,first doc\n2,"second doc\n3,third doc\n4,fourth doc\n', 3),
        ('id,text\n1,"a quoted\nfield, closed"\n2,"open\n\nto the end', 4),  # no newline at the end
        ('id,text\r\n1,fine\r\n2,"open\r\nto the end\r\n', 3),
        ('id,text\n1,fine\n2,"', 3),
        ('"text\nfirst\nsecond\n', 1),  # in the header
    ],
)
def test_a_csv_quote_left_open_to_the_end_of_the_file_is_refused(tmp_path, content, line):
    """csv reads an unclosed quote to the end of the file: the rest of the file would become one
    document, silently."""
    path = tmp_path / "open.csv"
    path.write_bytes(content.encode())
    with pytest.raises(CorpusError, match=rf"open\.csv, line {line}: a quoted field .*close the quote"):
        load_documents([path], DEFAULT)


def test_csv_files_that_end_without_a_newline_are_not_taken_for_an_open_quote(tmp_path):
    path = tmp_path / "end.csv"
    for content, last in [("text\nfirst\nlast", "last"), ('text\nfirst\n"last, quoted"', "last, quoted")]:
        path.write_text(content)
        assert load_documents([path], DEFAULT) == ["first", last]


def test_malformed_csv_is_a_corpus_error_with_the_line(tmp_path, monkeypatch):
    import csv

    real = csv.field_size_limit
    monkeypatch.setattr(csv, "field_size_limit", lambda *limit: real(10))
    path = tmp_path / "long.csv"
    path.write_text("text\nshort\nthis field is too long\n")
    with pytest.raises(CorpusError, match=r"long\.csv, line 3: a field of more than 10 characters"):
        load_documents([path], DEFAULT)


@pytest.mark.parametrize("name", ["corpus.txt.gz", "corpus.csv.gz", "corpus.jsonl.gz", "corpus.txt"])
def test_a_gzip_compressed_corpus_is_refused_with_the_way_to_decompress_it(tmp_path, name):
    path = tmp_path / name  # corpus.txt: compressed whatever its name says
    path.write_bytes(gzip.compress(b"text\nsome words\n"))
    with pytest.raises(CorpusError, match=rf"{re.escape(name)}: the file is gzip-compressed.*gunzip"):
        load_documents([path], DEFAULT)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_a_utf16_corpus_is_refused_as_utf16(tmp_path, encoding):
    path = tmp_path / "wide.csv"
    bom = "" if encoding == "utf-16" else "\ufeff"  # "utf-16" writes its own
    path.write_bytes((bom + "text\nsome words\n").encode(encoding))
    assert path.read_bytes()[:2] in (b"\xff\xfe", b"\xfe\xff")
    with pytest.raises(CorpusError, match=r"wide\.csv: the file is UTF-16 text.*re-save the file as UTF-8"):
        load_documents([path], DEFAULT)


@pytest.mark.parametrize(
    ("name", "config"),
    [
        ("d.txt", DEFAULT),
        ("d.txt", CorpusConfig(format="lines")),
        ("d.jsonl", DEFAULT),
        ("d.csv", DEFAULT),
    ],
)
def test_a_utf8_byte_order_mark_is_skipped(tmp_path, name, config):
    path = tmp_path / name
    text = '{"text": "hello there"}\n' if name.endswith(".jsonl") else "text\nhello there\n"
    if name == "d.txt":
        text = "hello there\n"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert load_documents([path], config) == ["hello there"]


def test_the_column_auto_reads_is_logged_and_a_header_that_looks_like_text_is_warned_about(tmp_path, caplog):
    from nextword.corpus import read_corpus, split_corpus

    path = tmp_path / "c.csv"
    path.write_text("text\nthe first document\nthe second document\n")
    with caplog.at_level("INFO", logger="nextword.corpus"):
        assert load_documents([path], DEFAULT) == ["the first document", "the second document"]
    first = caplog.records[0]
    assert (first.levelname, first.getMessage()) == (
        "INFO",
        f"{path}: reading column 'text', its only column (the first line is the header)",
    )

    caplog.clear()
    path.write_text("id,text\n1,the first document\n")
    with caplog.at_level("INFO", logger="nextword.corpus"):
        load_documents([path], DEFAULT)
    assert f"{path}: reading column 'text' of ['id', 'text'] (the first line is the header)" in caplog.text
    assert "WARNING" not in [r.levelname for r in caplog.records]

    caplog.clear()
    path.write_text("Neural networks learn to predict the next word\nA second abstract about engines\n")
    with caplog.at_level("INFO", logger="nextword.corpus"):
        assert load_documents([path], DEFAULT) == ["A second abstract about engines"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, caplog.text
    assert "'Neural networks learn to predict the next word'" in warnings[0]
    assert "looks like text" in warnings[0] and "add a header line" in warnings[0]

    caplog.clear()  # once a run: the passes after the first one say nothing more
    path.write_text("text\n" + "".join(f"document number {i}\n" for i in range(20)))
    with caplog.at_level("INFO", logger="nextword.corpus"):
        split = split_corpus(CorpusConfig(paths=(str(path),)))
        assert len(split.documents()[0]) > 10
        assert len(list(read_corpus(CorpusConfig(paths=(str(path),)), log=False))) == 20
    assert caplog.text.count("reading column 'text'") == 1


def test_a_csv_column_named_twice_is_refused(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("id,text,text\n1,first,second\n")
    for config in (DEFAULT, CorpusConfig(text_column="text")):
        with pytest.raises(CorpusError, match=r"dup\.csv: the header names column 'text' 2 times.*rename"):
            load_documents([path], config)
    path.write_text("id,id,text\n1,2,the text\n")  # a column that is not read may repeat
    assert load_documents([path], DEFAULT) == ["the text"]


def test_every_file_is_checked_before_the_first_is_read(corpus_files, model_path, tmp_path, capsys):
    """A missing, compressed or folder last file was found only after the earlier files' documents were
    read (and, for `nextword evaluate`, scored)."""
    from nextword.cli.main import main
    from nextword.corpus import read_corpus
    from nextword.corpus.readers import count_documents

    good = corpus_files["csv"]
    packed = tmp_path / "more.txt"
    packed.write_bytes(gzip.compress(b"a document"))
    for last, said in (
        (tmp_path / "nope.csv", "does not exist"),
        (packed, "gzip"),
        (tmp_path, "is a folder"),
    ):
        documents = read_corpus(CorpusConfig(paths=(str(good), str(last))))
        with pytest.raises(CorpusError, match=said):
            next(documents)  # before the first document of the first file
        for read in (load_documents, count_documents):
            with pytest.raises(CorpusError, match=said):
                read([good, last], DEFAULT)
    capsys.readouterr()
    assert main(["evaluate", str(model_path), str(good), str(tmp_path / "nope.csv"), "--split", "all"]) == 2
    assert "nope.csv does not exist" in capsys.readouterr().err


def test_the_vocabulary_messages_name_only_what_would_help(tmp_path, caplog):
    """A coverage warning at min_count=1 said to lower min_count; a corpus of one word a line, whose
    repeats deduplication drops, was told to lower min_count without a word about the duplicates."""
    import random

    from nextword.corpus import build_vocabulary, split_corpus
    from nextword.runtime import TokenizerConfig

    rng = random.Random(1)
    path = tmp_path / "words.txt"
    path.write_text("\n".join(f"w{rng.randrange(300)}" for _ in range(2000)) + "\n", encoding="utf-8")
    split = split_corpus(CorpusConfig(paths=(str(path),), format="lines"))
    assert split.counts.exact_duplicates > 1000  # every repeat of a word is a copy of a document
    with pytest.raises(
        ValueError, match=r"exact duplicates of others, with their words: keep_duplicates=True"
    ):
        build_vocabulary(split, TokenizerConfig(min_count=2))
    with caplog.at_level("WARNING", logger="nextword.corpus"):
        build_vocabulary(split, TokenizerConfig(min_count=1, max_vocab=50))
    assert "fall outside the vocabulary" in caplog.text and "raise `max_vocab`" in caplog.text
    assert "lower `min_count`" not in caplog.text  # it is 1 already


@pytest.mark.parametrize("kind", ["csv", "jsonl", "text", "lines"])
def test_a_document_over_the_size_cap_is_refused_naming_it(tmp_path, monkeypatch, kind):
    """A text file without blank lines is one document: one of a gigabyte took tens of gigabytes to
    deduplicate and tokenize before it was refused for being the only document. Past
    MAX_DOCUMENT_CHARS (16 Mi characters; 300 here) a document is refused as it is read."""
    from helpers import write_corpus
    from nextword.corpus import readers

    monkeypatch.setattr(readers, "MAX_DOCUMENT_CHARS", 300)
    fits, over = "word " * 60, "word " * 61  # 299 and 304 characters once stripped
    documents = ["a first document", fits.strip() + "x", over.strip()]
    path = write_corpus(tmp_path, documents)["text" if kind == "lines" else kind]
    if kind == "lines":
        path.write_text("\n".join(documents) + "\n", encoding="utf-8")
    elif kind == "text":  # the long ones wrapped over lines, as prose is
        path.write_text(
            "a first document\n\n" + fits.strip() + "x\n\n" + "\n".join([over[:150], over[150:]]) + "\n"
        )
    config = CorpusConfig(format="lines" if kind == "lines" else "auto")
    read = readers.read_documents(path, config)
    assert next(read) == "a first document" and len(next(read)) == 300  # at the cap: read
    with pytest.raises(CorpusError) as refused:
        next(read)
    message = str(refused.value)
    assert message.startswith(f"{path}: document 3")
    if kind == "text":
        assert "more than 300 characters, the most a document may hold" in message
        assert "a file without blank lines is one document" in message and "format='lines'" in message
    else:
        assert "holds 304 characters, more than the 300 a document may hold; cut it into documents" in message


@pytest.mark.parametrize("kind", ["csv", "jsonl", "text", "lines"])
def test_a_line_without_a_break_is_refused_before_it_is_read_whole(tmp_path, monkeypatch, kind):
    """A file with no line breaks (a dump of one huge record) was read into memory whole, gigabytes of
    it, before its document was refused for its length. Each line is now read up to a bound (2 and 12
    times MAX_DOCUMENT_CHARS for text and for records; 1,000 here), and one past it is refused."""
    from nextword.corpus import csv_files, json_lines, readers

    for module in (readers, csv_files, json_lines):
        for name in ("MAX_TEXT_LINE_CHARS", "MAX_RECORD_LINE_CHARS"):
            monkeypatch.setattr(module, name, 1000, raising=False)
    long = "word " * 1000  # 5,000 characters
    at_limit = "x" * 1000  # a line of exactly the bound, its break after it: read
    lines = {
        "csv": ["text", at_limit, long],
        "jsonl": [json.dumps({"text": "y" * 988}), json.dumps({"text": long})],
        "text": [at_limit, "", long],
        "lines": [at_limit, long],
    }[kind]
    path = tmp_path / {"csv": "c.csv", "jsonl": "c.jsonl"}.get(kind, "c.txt")
    path.write_text("\n".join(lines), encoding="utf-8")  # the last line without a break
    config = CorpusConfig(format="lines" if kind == "lines" else "auto")
    read = readers.read_documents(path, config)
    assert len(next(read)) == (988 if kind == "jsonl" else 1000)
    with pytest.raises(CorpusError) as refused:
        next(read)
    message = str(refused.value)
    line = len(lines)
    assert message.startswith(f"{path}, line {line}: more than 1,000 characters without a line break")
    assert "Cut the text into lines" in message


def test_a_csv_quote_that_never_closes_is_refused_once_its_row_passes_the_bound(tmp_path, monkeypatch):
    """A quote that opens a field and never closes makes the rest of the file one field, which csv
    gathered up to its own limit (2 Gi characters) before the document was refused."""
    from nextword.corpus import csv_files, readers

    monkeypatch.setattr(csv_files, "MAX_RECORD_LINE_CHARS", 1000)
    path = tmp_path / "c.csv"
    path.write_text('text\nfirst\n"opens and never closes\n' + "more words\n" * 500, encoding="utf-8")
    read = readers.read_documents(path, CorpusConfig())
    assert next(read) == "first"
    with pytest.raises(CorpusError, match=r"c\.csv, lines 3 to 18: one row of more than 1,000 characters"):
        next(read)


def test_an_open_quote_before_blank_lines_is_refused_too(tmp_path, monkeypatch):
    """Blank and short lines counted (nearly) nothing towards a row's bound, while each cost a string
    held in memory: an open quote before 20 million blank lines took 3 GB. A line counts for 64
    characters at least."""
    from nextword.corpus import csv_files, readers

    monkeypatch.setattr(csv_files, "MAX_RECORD_LINE_CHARS", 1000)
    path = tmp_path / "c.csv"
    path.write_bytes(b'text\r\nfirst\r\n"opens\r\n' + b"\r\n" * 100)
    read = readers.read_documents(path, CorpusConfig())
    assert next(read) == "first"
    with pytest.raises(CorpusError, match=r"c\.csv, lines 3 to 18: one row of more than 1,000 characters"):
        next(read)


def test_a_line_at_the_bound_is_read_whatever_ends_it():
    """A CSV file is read with its line ends as written: a line of exactly the bound ending in "\\r\\n"
    was refused (its "\\r" counted), one ending in "\\n" read."""
    import io
    from pathlib import Path

    from nextword.corpus.lines import bounded_lines

    for end in ("\n", "\r\n", "\r", ""):  # "": the last line, without an end
        text = "x" * 10 + end + ("y" * 3 if end else "")
        lines = list(bounded_lines(io.StringIO(text, newline=""), Path("c.csv"), 10, "a row"))
        assert "".join(lines) == text, repr(end)
        with pytest.raises(CorpusError, match="line 1: more than 10 characters without a line break"):
            list(bounded_lines(io.StringIO("x" * 11 + end, newline=""), Path("c.csv"), 10, "a row"))


def test_a_corpus_whose_only_frequent_words_are_too_long_is_told_so(tmp_path):
    """The vocabulary error blamed min_count for a word that occurs often enough but is over 1,000
    characters long (and quoted it whole)."""
    from nextword.corpus import build_vocabulary, split_corpus
    from nextword.runtime import TokenizerConfig

    path = tmp_path / "blobs.txt"
    path.write_text("\n".join(f"{'q' * 1500} {i}" for i in range(30)) + "\n", encoding="utf-8")
    split = split_corpus(CorpusConfig(paths=(str(path),), format="lines", keep_duplicates=True))
    with pytest.raises(ValueError) as refused:
        build_vocabulary(split, TokenizerConfig(min_count=2))
    message = str(refused.value)
    assert "no word of the training documents occurs min_count=2" in message  # the numbers: once each
    assert "q" * 61 not in message  # quoted short
    only_long = tmp_path / "long.txt"
    only_long.write_text("\n".join("q" * 1500 for _ in range(30)) + "\n", encoding="utf-8")
    split = split_corpus(CorpusConfig(paths=(str(only_long),), format="lines", keep_duplicates=True))
    with pytest.raises(
        ValueError, match=r"every word of the training documents is longer than 1,000 characters"
    ):
        build_vocabulary(split, TokenizerConfig(min_count=2))


def test_a_long_paragraph_is_refused_while_it_is_read_and_its_length_counts_its_joins(tmp_path, monkeypatch):
    """Plain text is checked line by line (a file without blank lines is never held whole); the count
    is the joined document's, spaces between lines included, and the message names where it starts."""
    from nextword.corpus import readers

    monkeypatch.setattr(readers, "MAX_DOCUMENT_CHARS", 300)
    path = tmp_path / "c.txt"
    # 3 lines of 99 characters: 299 once joined, read; 4 of 75: 303, refused; its lines 5 on
    path.write_text("\n".join(["x" * 99] * 3) + "\n\n" + "\n".join(["y" * 75] * 4) + "\n", encoding="utf-8")
    read = readers._read_text(path, log=False)  # the reader itself, before any document is joined
    assert len(next(read)) == 299
    with pytest.raises(CorpusError, match=r"c\.txt: document 2 \(lines 5 on\) holds more than 300"):
        next(read)


def test_the_readme_states_the_document_cap_the_code_has():
    from pathlib import Path

    from nextword.corpus.config import MAX_DOCUMENT_CHARS

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert f"A document may hold up to {MAX_DOCUMENT_CHARS:,}" in " ".join(readme.split())
