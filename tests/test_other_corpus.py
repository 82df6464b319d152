"""benchmarks.other_corpus: reading Debian's package descriptions, drawing a corpus from them, and the
report's checks. The benchmark itself (downloading, a 30-minute training) is not run here."""

from __future__ import annotations

import json
import lzma

import pytest

from benchmarks.other_corpus import Package, checks, draw, main, read_packages, render, write_corpus

TRANSLATION = """\
Package: 0ad
Description-md5: d943033bedada21853d2ae54a2578a7b
Description-en: Real-time strategy game of ancient warfare
 0 A.D. is a free, open-source, cross-platform
 real-time strategy game.
 .
 It is historically based.

Package: 0ad-data
Description-md5: 26581e685027d5ae84824362a4ba59ee
Description-en: Real-time strategy game (data files)
 This package contains the data files.

Package: foo-doc
Description-md5: 00000000000000000000000000000000
Description-en: Documentation for foo!
"""


@pytest.mark.parametrize("compressed", [False, True])
def test_packages_are_read_with_their_paragraphs(tmp_path, compressed):
    path = tmp_path / ("Translation-en.xz" if compressed else "Translation-en")
    if compressed:
        with lzma.open(path, "wt", encoding="utf-8") as out:
            out.write(TRANSLATION)
    else:
        path.write_text(TRANSLATION, encoding="utf-8")
    packages = list(read_packages(path))
    assert [p.name for p in packages] == ["0ad", "0ad-data", "foo-doc"]
    assert packages[0].paragraphs == (
        "0 A.D. is a free, open-source, cross-platform real-time strategy game.",
        "It is historically based.",
    )
    assert packages[0].text() == (
        "Real-time strategy game of ancient warfare. 0 A.D. is a free, open-source, cross-platform "
        "real-time strategy game. It is historically based."
    )
    assert packages[2].paragraphs == ()
    assert packages[2].text() == "Documentation for foo!"  # a summary's own end is kept


def test_the_corpus_is_drawn_in_runs_of_neighbouring_packages_until_it_holds_enough_words():
    packages = [Package(f"pkg{i:03d}", f"summary {i}", ("one two three four",)) for i in range(100)]
    chosen = draw(packages, words=60, seed=3, run=5)
    names = [p.name for p in chosen]
    assert names == sorted(names)
    assert len(chosen) % 5 == 0 and sum(len(p.text().split()) for p in chosen) >= 60
    firsts = {int(n[3:]) // 5 for n in names}  # whole runs of 5 neighbours
    assert len(chosen) == 5 * len(firsts)
    assert draw(packages, words=60, seed=3, run=5) == chosen  # seeded
    assert draw(packages, words=60, seed=4, run=5) != chosen
    assert len(draw(packages, words=10**9, seed=0, run=5)) == 100  # asks for more than there is


def test_the_corpus_file_is_a_csv_that_nextword_reads(tmp_path):
    from nextword.corpus import CorpusConfig, load_documents

    packages = [Package("a", 'Say "hi", twice', ("Line, with a comma.",)), Package("b", "Other", ())]
    path = tmp_path / "sub" / "corpus.csv"
    write_corpus(path, packages)
    assert path.read_text(encoding="utf-8").splitlines()[0] == "package,description"
    assert load_documents([str(path)], CorpusConfig(text_column="description")) == [
        'Say "hi", twice. Line, with a comma.',
        "Other.",
    ]
    assert not list(tmp_path.glob("sub/*.partial"))


def _rows(model_ppl: float, cached_ppl: float, ngram_ppl: float) -> dict:
    row = {"accuracy": 0.3, "top5_accuracy": 0.5}
    return {
        "c": {**row, "perplexity": ngram_ppl, "order": 5},
        "kn5": {**row, "perplexity": ngram_ppl},
        "d": {**row, "perplexity": ngram_ppl * 0.8},
        "f": {**row, "perplexity": model_ppl},
        "g": {**row, "perplexity": cached_ppl},
        "h": {**row, "perplexity": model_ppl * 1.005},
        "i": {**row, "perplexity": cached_ppl * 1.001, "words_per_second": 5000.0},
    }


def test_the_checks_fail_when_the_model_does_not_beat_the_ngram_by_enough():
    good = dict(checks(_rows(60.0, 40.0, 100.0)))
    assert all(good.values()) and len(good) == 6
    bad = dict(checks(_rows(90.0, 70.0, 100.0)))
    failed = [text for text, ok in bad.items() if not ok]
    assert failed == ["at least 35% lower perplexity than the best n-gram: 29.9% lower"]
    no_help = dict(checks(_rows(60.0, 61.0, 100.0)))
    assert next(t for t, ok in no_help.items() if not ok).startswith(
        "the cache lowers the model's perplexity"
    )


def test_the_report_names_the_corpus_the_groups_and_the_verdicts(tmp_path):
    figures = {
        "corpus": {"packages": 8400, "of": 63956, "words": 520000, "run": 25, "seed": 0},
        "dedup": {
            "documents": 8400,
            "exact_duplicates": 312,
            "near_duplicate_groups": 2,
            "near_duplicate_documents": 5,
            "group_sizes": {2: 1, 3: 1},
            "largest_groups": [{"size": 3, "packages": ["a", "a-dev", "a-doc"]}],
            "train": 7000,
            "dev": 300,
            "val": 800,
        },
        "rows": _rows(60.0, 40.0, 100.0),
        "training": {"minutes": 30.0, "epochs": 9, "best_epoch": 7, "vocab": 9000, "unknown_share": 0.05},
        "cache": "Stored in the model file: a cache.",
        "train_command": "nextword train x.csv",
        "commit": "abc1234",
        "machine": {"cpu": "AMD EPYC", "usable_cores": 2, "python": "3.11.7"},
    }
    report = render(figures)
    assert "8,400 of its 63,956 packages" in report
    assert "312 exact duplicates dropped" in report and "1 × 2, 1 × 3" in report
    assert "3 documents (a, a-dev, a-doc)" in report
    assert "- met: at least 35% lower perplexity than the best n-gram: 60.0% lower" in report
    assert "| modified Kneser-Ney 5-gram, the best order on the development documents | 100.0 |" in report
    assert report.count("- met:") == 6 and "NOT met" not in report
    assert "Python 3.11.7; nextword at commit abc1234." in report
    saved, out = tmp_path / "figures.json", tmp_path / "report.md"
    saved.write_text(json.dumps(figures), encoding="utf-8")
    assert main(["--from-json", str(saved), "--out", str(out)]) == 0  # measures nothing
    assert out.read_text(encoding="utf-8") == render(json.loads(saved.read_text(encoding="utf-8")))


def test_the_commit_names_the_checkout_and_marks_changed_files():
    from benchmarks.other_corpus import commit

    found = commit()  # the tests run from a clone
    assert found is not None
    head = found.rstrip("+")
    assert len(head) >= 7 and all(c in "0123456789abcdef" for c in head)
