"""File names that are not UTF-8, through train, resume and export; and CSV rows without text, counted.

On Linux a file name is bytes, and Python shows each byte that is not UTF-8 as a surrogate escape
(``os.fsdecode(b"corpus-\\xff.csv") == "corpus-\\udcff.csv"``), which UTF-8 cannot encode.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from helpers import synthetic_documents, write_corpus
from nextword.corpus import CorpusConfig
from nextword.corpus.readers import read_documents
from nextword.export.provenance import escape_undecodable

CORPUS_NAME = os.fsdecode(b"corpus-\xff.csv")  # "corpus-\udcff.csv"
RUN_NAME = os.fsdecode(b"run-\xfe")
MODEL_NAME = os.fsdecode(b"model-\xfd.onnx")


def undecodable(path: Path) -> Path:
    """``path``, which holds a byte that is not UTF-8, if the file system takes such a name; else skip."""
    try:
        path.touch()
    except (OSError, UnicodeEncodeError) as exc:  # APFS (EILSEQ), Windows
        pytest.skip(f"this file system refuses file names that are not UTF-8 ({exc})")
    path.unlink()
    return path


def test_run_files_record_an_undecodable_name_exactly(tmp_path):
    from nextword.train.files import atomic_write_json, read_json

    name = str(tmp_path / CORPUS_NAME)
    target = tmp_path / "config.json"
    atomic_write_json(target, {"paths": [name], "text": "café ünïcode"})
    written = target.read_bytes().decode("utf-8")  # UTF-8 throughout
    assert "corpus-\\udcff.csv" in written and "café ünïcode" in written  # escaped; other text as it is
    assert read_json(target) == {"paths": [name], "text": "café ünïcode"}


def test_the_model_file_escapes_undecodable_bytes():
    escaped = escape_undecodable({"paths": [CORPUS_NAME, "é"], CORPUS_NAME: ("\ud800", 3, None)})
    assert escaped == {"paths": ["corpus-\\xff.csv", "é"], "corpus-\\xff.csv": ["\\ud800", 3, None]}
    json.dumps(escaped, ensure_ascii=False).encode("utf-8")  # no lone surrogate left


def test_train_resume_and_export_runs_whose_paths_are_not_utf8(tmp_path, capsys):
    for module in ("tensorflow", "keras", "tf2onnx", "onnx"):
        pytest.importorskip(module, reason=f"{module} missing: install nextword[train] to train")
    from nextword.cli.main import main
    from nextword.runtime import load
    from nextword.train.files import RunDir, read_json

    corpus = undecodable(tmp_path / CORPUS_NAME)
    write_corpus(tmp_path / "c", synthetic_documents(40))["csv"].rename(corpus)
    run, model = tmp_path / RUN_NAME, tmp_path / MODEL_NAME
    tiny = ["--embedding-dim", "8", "--lstm-units", "8", "--seq-len", "8", "--batch-size", "8"]
    settings = [*tiny, "--min-count", "1", "--verbose", "0", "--dev-fraction", "0.1"]

    code = main(["train", str(corpus), "--out", str(run), "--epochs", "1", *settings])
    assert code == 0, capsys.readouterr().err
    config, stored = RunDir(run).read_config()
    assert config.corpus.paths == (str(corpus),) and config.out == str(run)  # the same names, exactly
    assert str(corpus) in stored["command"]

    (run / "train.ids").unlink()  # resume encodes it again from the corpus path config.json recorded
    code = main(["train", "--resume", str(run), "--epochs", "2", "--verbose", "0"])
    assert code == 0, capsys.readouterr().err
    assert len(read_json(run / "metrics.json")["epochs"]) == 2

    code = main(["export", str(run), "--out", str(model), "--no-tune-cache"])
    assert code == 0, capsys.readouterr().err
    provenance = load(model).info.provenance
    assert provenance is not None and provenance.corpus_files == ("corpus-\\xff.csv",)
    assert "corpus-\\xff.csv" in (provenance.train_command or "")
    assert "model-\\xfd.onnx" in (provenance.export_command or "")
    capsys.readouterr()
    assert main(["info", str(model)]) == 0
    assert "corpus-\\xff.csv" in capsys.readouterr().out


def test_csv_rows_without_text_are_counted_and_warned_about(tmp_path, caplog):
    path = tmp_path / "rows.csv"
    path.write_text(
        'id,text\n1,a first document\n2,\n3,"   "\n4,a second document\n5\n6,"\n"\n7,a third one\n',
        encoding="utf-8",
    )
    with caplog.at_level(logging.WARNING, logger="nextword.corpus"):
        documents = list(read_documents(path, CorpusConfig(paths=(str(path),))))
    assert documents == ["a first document", "a second document", "a third one"]
    assert (
        f"{path}: 4 of 7 rows have no text (their column 'text' is empty or blank) and are left out"
        in caplog.messages
    )

    caplog.clear()  # the later passes over a corpus say nothing, and a file with text in every row
    with caplog.at_level(logging.WARNING, logger="nextword.corpus"):
        list(read_documents(path, CorpusConfig(paths=(str(path),)), log=False))
        full = tmp_path / "full.csv"
        full.write_text("id,text\n1,one\n2,two\n", encoding="utf-8")
        list(read_documents(full, CorpusConfig(paths=(str(full),))))
    assert not caplog.messages
