"""HTML character references in a corpus (``&#8220;``, ``&amp;``): read as written by default, with a
warning at training; decoded with ``decode_html``, which the model file records so that its split is
made again from the same documents."""

from __future__ import annotations

import json
import logging
import unicodedata
from dataclasses import replace

import pytest

from helpers import synthetic_documents, write_corpus
from nextword.cli.main import main
from nextword.corpus import CorpusConfig, read_documents, rebuild_split, recorded_corpus, split_corpus
from nextword.corpus.html_references import ReferenceCount, decode_references, first_reference
from nextword.runtime.errors import WrongTypeError
from nextword.runtime.provenance import Provenance


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("a &#8220;deep&#8221; net", "a \u201cdeep\u201d net"),
        ("&#x2014; and &#X2014;", "\u2014 and \u2014"),
        ("&amp; &lt;b&gt; &eacute;t&eacute;", "& <b> \u00e9t\u00e9"),
        ("x &lE; y &gE; z", "x \u2266 y \u2267 z"),  # HTML's names of the patent office's relations
        ("&Sgr; of &lgr;", "\u03a3 of \u03bb"),  # ISO Greek, not HTML's
        ("&amp;amp;", "&amp;"),  # decoded once
        ("&#150;", "\u2013"),  # 128-159: Windows-1252, as HTML reads them
        ("&#0;, &#xD800;, &#x110000;, &#99999999;", "\ufffd, \ufffd, \ufffd, \ufffd"),  # no character
        ("foo&#1;bar&#xFFFE;baz&#x7f;", "foo bar baz "),  # what HTML drops keeps words apart
    ],
)
def test_complete_references_are_read_as_their_characters(written, read):
    assert decode_references(written) == read


@pytest.mark.parametrize(
    "text",
    [
        "AT&T and R&D",
        "&copy 2024, &amp without its semicolon",
        "&notit;",  # html.unescape would read the old "&not" and leave "it;"
        "&zzz; &Sgrx; &;",
        "&#" + "9" * 5000 + ";",  # Python refuses to convert a number this long: left as it is
        "&#x" + "f" * 40 + ";",
        "plain text",
    ],
)
def test_what_is_not_a_complete_known_reference_stays_as_written(text):
    assert decode_references(text) == text
    assert first_reference(text) is None


# ISOgrk1's stems and the letters they name (the capital's name upper-cases the stem: THgr, EEgr)
ISOGRK1 = {
    "a": "ALPHA", "b": "BETA", "g": "GAMMA", "d": "DELTA", "e": "EPSILON", "z": "ZETA", "ee": "ETA",
    "th": "THETA", "i": "IOTA", "k": "KAPPA", "l": "LAMDA", "m": "MU", "n": "NU", "x": "XI",
    "o": "OMICRON", "p": "PI", "r": "RHO", "s": "SIGMA", "t": "TAU", "u": "UPSILON", "ph": "PHI",
    "kh": "CHI", "ps": "PSI", "oh": "OMEGA",
}  # fmt: skip


def test_every_iso_greek_name_is_the_letter_isogrk1_names():
    from nextword.corpus.html_references import _ISO_GREEK

    assert len(_ISO_GREEK) == 49
    for stem, name in ISOGRK1.items():
        assert unicodedata.name(_ISO_GREEK[stem + "gr"]) == f"GREEK SMALL LETTER {name}", stem
        assert unicodedata.name(_ISO_GREEK[stem.upper() + "gr"]) == f"GREEK CAPITAL LETTER {name}", stem
    assert _ISO_GREEK["sfgr"] == "\u03c2" and "SFgr" not in _ISO_GREEK


def test_the_bounds_of_a_reference():
    assert decode_references("&#00008220;&#x0001F600;") == "\u201c\U0001f600"  # 8 digits, leading zeros
    assert decode_references("&#000008220; &#x00001F600;") == "&#000008220; &#x00001F600;"  # 9: as written
    assert decode_references("&CounterClockwiseContourIntegral;") == "\u2233"  # HTML's longest name
    assert decode_references("&" + "a" * 40 + ";") == "&" + "a" * 40 + ";"
    assert first_reference("&zzz; then &#8220;") == "&#8220;"  # past a name it does not know


def test_reference_count_counts_documents_and_keeps_the_first():
    count = ReferenceCount()
    documents = ["no reference", "one &#8220;", "AT&T", "two &eacute; &amp;", "&zzz;"]
    assert list(count.passing(iter(documents))) == documents
    assert (count.documents, count.example) == (2, "&#8220;")
    advice = count.advice(5)
    assert advice.startswith("2 of the 5 documents hold HTML character references (the first: &#8220;)")
    assert "(&, #, 8220, ;)" in advice and "decode_html=True" in advice


@pytest.mark.parametrize("kind", ["csv", "jsonl", "text", "lines"])
def test_each_format_is_read_decoded_or_as_written(tmp_path, kind):
    documents = ["The &#8220;network&#8221; learns.", "Plain text, no reference."]
    path = write_corpus(tmp_path, documents)["text" if kind == "lines" else kind]
    fmt = "lines" if kind == "lines" else "auto"
    if kind == "lines":
        path.write_text("\n".join(documents) + "\n", encoding="utf-8")
    as_written = list(read_documents(path, CorpusConfig(format=fmt)))
    decoded = list(read_documents(path, CorpusConfig(format=fmt, decode_html=True)))
    assert as_written == documents
    assert decoded == ["The \u201cnetwork\u201d learns.", documents[1]]


def test_a_reference_that_is_all_of_a_document_but_spaces_leaves_no_empty_document(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("&#32;&#10;\n\nA document.\n", encoding="utf-8")
    assert list(read_documents(path, CorpusConfig(decode_html=True))) == ["A document."]


def test_decode_html_must_be_a_bool():
    with pytest.raises(WrongTypeError, match="decode_html"):
        CorpusConfig(decode_html="yes")


def test_no_advice_without_references_and_a_note_of_what_decoding_left(tmp_path, caplog):
    documents = synthetic_documents(30, seed=3)
    path = write_corpus(tmp_path / "plain", documents)["csv"]
    documents[4] += " AT&amp;amp;T"  # decoded once, "&amp;" is left
    encoded_twice = write_corpus(tmp_path / "twice", documents)["csv"]
    with caplog.at_level(logging.WARNING, logger="nextword"):
        split_corpus(CorpusConfig(paths=(str(path),)))
    assert "character references" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="nextword"):
        split_corpus(CorpusConfig(paths=(str(encoded_twice),), decode_html=True))
    (said,) = [r.getMessage() for r in caplog.records if "character references" in r.getMessage()]
    assert said.startswith("1 of the 30 documents still hold HTML character references once decoded")
    assert "(the first: &amp;): text encoded twice" in said and "decode_html=True" not in said


def test_a_new_split_warns_of_references_once_and_not_when_decoding_or_remaking(tmp_path, caplog):
    documents = synthetic_documents(30, seed=3)
    documents[4] += " A &#8220;quoted&#8221; word."
    documents[9] += " Caf&eacute;."
    path = write_corpus(tmp_path, documents)["csv"]
    corpus = CorpusConfig(paths=(str(path),))
    with caplog.at_level(logging.WARNING, logger="nextword"):
        split = split_corpus(corpus)
    warned = [r.getMessage() for r in caplog.records if "character references" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith("2 of the 30 documents hold")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="nextword"):
        split_corpus(replace(corpus, decode_html=True))
        split_corpus(corpus, split.record)  # a split made again: the record's reading, not advice
        split_corpus(corpus, log=False)
    assert not [r for r in caplog.records if "character references" in r.getMessage()]


def test_the_provenance_records_the_choice_and_reads_files_without_it_as_written():
    record = Provenance(corpus_files=("c.csv",), decode_html=True)
    data = record.to_dict()
    assert data["decode_html"] is True
    assert Provenance.from_dict(data).decode_html is True
    del data["decode_html"]
    assert Provenance.from_dict(data).decode_html is False  # a file from before the option
    with pytest.raises(ValueError, match="decode_html must be bool"):
        Provenance.from_dict({**data, "decode_html": "true"})
    assert "HTML character references read as characters" in dict(record.describe())["corpus"]
    assert "HTML" not in dict(Provenance(corpus_files=("c.csv",)).describe())["corpus"]
    assert recorded_corpus(record, ["c.csv"]).decode_html is True
    assert recorded_corpus(Provenance(), ["c.csv"]).decode_html is False


def test_a_model_trained_decoding_is_evaluated_on_its_own_split(tiny_config, tmp_path, capsys, caplog):
    pytest.importorskip("tensorflow", reason="tensorflow missing: install nextword[train]")
    from nextword.export import ExportConfig, export
    from nextword.runtime import load
    from nextword.train import ModelConfig, train

    documents = synthetic_documents(40, seed=5)
    for i in range(0, 40, 4):
        documents[i] += " Its &#8220;output&#8221; &#8212; the &Sgr; of &lgr; values."
    corpus = write_corpus(tmp_path / "corpus", documents)["csv"]
    config = replace(
        tiny_config,
        out=str(tmp_path / "run"),
        corpus=CorpusConfig(paths=(str(corpus),), decode_html=True),
        model=ModelConfig(embedding_dim=8, lstm_units=8, num_layers=1, dropout=0.0),
        epochs=1,
    )
    train(config)
    out = tmp_path / "m.onnx"
    export(ExportConfig(run_dir=config.out, out=str(out)))
    model = load(out)
    assert model.info.provenance.decode_html is True
    words = set(model.tokenizer.tokens)
    assert {"\u03c3", "\u03bb"} <= words and not {"#", "8220", "sgr"} & words  # lowercased, decoded

    assert main(["evaluate", str(out), str(corpus), "--split", "val", "--json", "--no-cache"]) == 0
    assert json.loads(capsys.readouterr().out)["documents"] > 0
    assert main(["evaluate", str(out), str(corpus), "--split", "val", "--no-decode-html"]) == 2
    error = capsys.readouterr().err
    assert "they were read otherwise than the model's corpus (--no-decode-html)" in error
    assert main(["info", str(out)]) == 0
    assert "(HTML character references read as characters)" in capsys.readouterr().out

    # rebuild_split with files read otherwise than recorded: same count, other documents, a warning
    provenance = model.info.provenance
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="nextword.corpus"):
        own = rebuild_split(provenance, recorded_corpus(provenance, [str(corpus)]))
        assert not caplog.records and own.digest == provenance.corpus_sha256
        other = rebuild_split(provenance, CorpusConfig(paths=(str(corpus),)))
    assert other.counts.documents == own.counts.documents and other.digest != own.digest
    (warned,) = caplog.records
    assert "decode_html=False (the model's: True)" in warned.getMessage()
    assert "recorded_corpus(provenance, paths)" in warned.getMessage()


def test_evaluate_names_only_the_reading_options_given_that_differ(model_path, tmp_path, capsys):
    """--split on other files: the error names an option that read them otherwise than recorded (by
    its flag), and none that was given as recorded."""
    other = tmp_path / "other.txt"
    other.write_text("\n\n".join(synthetic_documents(12, seed=9)) + "\n", encoding="utf-8")
    args = ["evaluate", str(model_path), str(other), "--split", "val"]
    assert main([*args, "--corpus-format", "text"]) == 2
    assert "read otherwise than the model's corpus (--corpus-format)" in capsys.readouterr().err
    assert main([*args, "--corpus-format", "auto", "--no-decode-html"]) == 2  # both as recorded
    err = capsys.readouterr().err
    assert "these files hold" in err and "read otherwise" not in err
