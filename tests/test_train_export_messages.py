"""Messages of training and export as users meet them: each names the problem and the fix, in the
Python API and on the command line (exit status 2 for bad input), and nothing is written or lost.

A corpus file moved before a resume that must encode an id file again; export pointed at a file; links
that loop; settings given flat to a config that nests them, or misspelt in a stored one; an opset of the
wrong type; a corpus without documents; a damaged run file; a model too big for one ONNX file."""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from nextword.cli.args import COMMAND_CONFIGS, cli_terms
from nextword.corpus import CorpusConfig, CorpusError, split_corpus
from nextword.corpus.readers import count_documents, load_documents
from nextword.export import ExportConfig
from nextword.runtime import GenerationConfig
from nextword.train import ModelConfig, TrainConfig
from nextword.train.files import RunDir, read_json

DAMAGED = "restore it from a copy of the run folder, or start a new run"
LOOP = "is a symbolic link that points to itself (a loop): fix the link"


@pytest.fixture
def training_stack() -> None:
    pytest.importorskip("tf2onnx", reason="tf2onnx missing: install nextword[train]")


@pytest.fixture
def loop(tmp_path: Path) -> Path:
    """A symbolic link that points to itself."""
    link = tmp_path / "loop"
    try:
        os.symlink(link.name, link)
    except (OSError, NotImplementedError):
        pytest.skip("symbolic links cannot be made here")
    return link


def exactly(message: str) -> str:
    """A ``pytest.raises`` pattern that matches ``message`` whole."""
    return f"^{re.escape(message)}$"


def starts(message: str) -> str:
    """A ``pytest.raises`` pattern that matches a message starting with ``message``."""
    return f"^{re.escape(message)}"


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    from nextword.cli.main import main

    code = main(list(argv))
    return code, capsys.readouterr().err


# 1. A resume that encodes an id file again names the corpus file that is gone


@pytest.mark.slow
def test_resume_names_the_corpus_file_that_is_gone(run_dir: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    stored = json.loads((run / "config.json").read_text(encoding="utf-8"))
    gone = str(tmp_path / "moved" / "corpus.csv")
    stored["corpus"]["paths"] = [gone]
    (run / "config.json").write_text(json.dumps(stored), encoding="utf-8")
    (run / "val.ids").unlink()  # as the advice for a damaged id file says to
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    from nextword.train import resume

    with pytest.raises(FileNotFoundError) as refused:
        resume(run, epochs=20)
    assert str(refused.value) == (
        f"resuming {run} needs its corpus file {gone} (recorded in {run / 'config.json'}) to encode its "
        "missing val.ids again, and it is gone: put the file back at that path, or start a new run"
    )
    code, err = _cli(capsys, "train", "--resume", str(run), "--epochs", "20")
    assert code == 2 and f"error: resuming {run} needs its corpus file {gone}" in err, err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    (run / "train.ids").unlink()  # two missing: both named
    with pytest.raises(FileNotFoundError, match=r"to encode its missing train\.ids and val\.ids again"):
        resume(run, epochs=20)


# 2. Export of a file: not a run folder, in the words resume uses


def test_export_of_a_file_says_it_is_a_file_not_a_run_folder(training_stack, tmp_path: Path, capsys) -> None:
    from nextword.export import export

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("some text\n", encoding="utf-8")
    said = f"{corpus} is a file, not a run folder; give the run folder that training wrote"
    with pytest.raises(NotADirectoryError, match=exactly(said)):
        export(ExportConfig(run_dir=str(corpus), out=str(tmp_path / "m.onnx")))
    code, err = _cli(capsys, "export", str(corpus), "--out", str(tmp_path / "m.onnx"))
    assert code == 2 and err.strip() == f"nextword export: error: {said}", err
    assert not (tmp_path / "m.onnx").exists()


# 3. Links that loop: named, with the fix, exit status 2


def test_a_looping_link_is_found_where_it_is_on_the_path(loop: Path) -> None:
    from nextword.train.paths import looping_link

    assert looping_link(loop) == loop
    assert looping_link(loop / "config.json") == loop
    assert looping_link(loop.parent) is None and looping_link(loop.parent / "absent") is None


@pytest.mark.slow
def test_training_refuses_looping_links_by_name(training_stack, loop: Path, tmp_path: Path, capsys) -> None:
    from nextword.train import train

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("some text\n", encoding="utf-8")
    config = TrainConfig(out=str(tmp_path / "run"), corpus=CorpusConfig(paths=(str(corpus),)))
    with pytest.raises(CorpusError, match=exactly(f"corpus file {loop} {LOOP}")):
        train(replace(config, corpus=CorpusConfig(paths=(str(loop),))))
    with pytest.raises(
        CorpusError, match=starts(f"corpus file {loop}/a.txt goes through {loop}, a symbolic link")
    ):
        train(replace(config, corpus=CorpusConfig(paths=(str(loop / "a.txt"),))))
    with pytest.raises(ValueError, match=exactly(f"`init_from` {loop} {LOOP}")):
        train(replace(config, init_from=str(loop)))
    with pytest.raises(
        ValueError, match=exactly(f"the run folder `out` {loop} {LOOP}, or choose another `out`")
    ):
        train(replace(config, out=str(loop)))
    from nextword.train import resume

    with pytest.raises(ValueError, match=starts(f"run folder {loop} {LOOP}, or give the run folder")):
        resume(loop)
    code, err = _cli(capsys, "train", str(corpus), "--out", str(tmp_path / "run"), "--init-from", str(loop))
    assert code == 2 and f"error: --init-from {loop} {LOOP}" in err, err
    code, err = _cli(capsys, "train", str(loop), "--out", str(tmp_path / "run"))
    assert code == 2 and f"error: corpus file {loop} {LOOP}" in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_export_refuses_looping_links_by_name(run_dir: Path, loop: Path, tmp_path: Path, capsys) -> None:
    from nextword.export import export

    with pytest.raises(ValueError, match=starts(f"run folder {loop} {LOOP}, or give the run folder")):
        export(ExportConfig(run_dir=str(loop), out=str(tmp_path / "m.onnx")))
    with pytest.raises(ValueError, match=exactly(f"out='{loop}' {LOOP}, or choose another `out`")):
        export(ExportConfig(run_dir=str(run_dir), out=str(loop)))
    code, err = _cli(capsys, "export", str(loop), "--out", str(tmp_path / "m.onnx"))
    assert code == 2 and f"error: run folder {loop} {LOOP}" in err, err
    code, err = _cli(capsys, "export", str(run_dir), "--out", str(loop))
    assert code == 2 and f"error: --out {loop} {LOOP}, or choose another --out" in err, err
    assert not (tmp_path / "m.onnx").exists()


# 4. Settings given where they do not belong


def test_a_nested_setting_given_flat_says_where_it_belongs() -> None:
    with pytest.raises(
        TypeError, match=r"^lstm_units belongs to ModelConfig: TrainConfig\(model=ModelConfig\("
    ):
        TrainConfig(lstm_units=5)
    with pytest.raises(TypeError) as refused:
        TrainConfig(min_count=2, dropout=0.1)
    assert str(refused.value) == (
        "min_count belongs to TokenizerConfig: TrainConfig(tokenizer=TokenizerConfig(min_count=2)); "
        "dropout belongs to ModelConfig: TrainConfig(model=ModelConfig(dropout=0.1))"
    )
    with pytest.raises(TypeError) as refused:
        ExportConfig(max_words=3)
    assert str(refused.value) == (
        "max_words belongs to GenerationConfig: ExportConfig(generation=GenerationConfig(max_words=3))"
    )
    ExportConfig(generation=GenerationConfig(max_words=3))  # the call the message gives works
    with pytest.raises(TypeError, match=r"^TrainConfig has no setting 'epochz': did you mean 'epochs'\?$"):
        TrainConfig(epochz=3)
    with pytest.raises(
        TypeError, match=r"'lstm_unit': did you mean 'lstm_units', a setting of ModelConfig\?"
    ):
        TrainConfig(lstm_unit=3)
    with pytest.raises(TypeError, match=r"^TrainConfig has no setting 'nothing_like_it'$"):
        TrainConfig(nothing_like_it=3)
    # the dataclass is as it was: positional fields, replace(), its own checks
    assert replace(TrainConfig("run"), epochs=3).out == "run" and TrainConfig(model=ModelConfig(lstm_units=5))
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        TrainConfig(epochs=0)


def test_a_misspelt_key_in_a_stored_config_is_named_with_its_close_matches(tmp_path: Path) -> None:
    stored = {**TrainConfig().to_dict(), "epochz": 3}
    stored["model"] = {**stored["model"], "lstm_unit": 8}
    with pytest.raises(ValueError) as refused:
        TrainConfig.from_dict(stored)
    assert str(refused.value) == (
        "unknown settings 'model.lstm_unit' (did you mean 'model.lstm_units'?), 'epochz' (did you mean "
        "'epochs'?): a misspelt key, or the file comes from another nextword version"
    )
    (tmp_path / "config.json").write_text(json.dumps({**TrainConfig().to_dict(), "xyzzy": 1}))
    with pytest.raises(
        ValueError, match=starts(f"{tmp_path / 'config.json'}: unknown setting 'xyzzy': a misspelt")
    ):
        RunDir(tmp_path).read_config()


# 5. An opset of the wrong type is no range problem


def test_an_opset_that_is_no_integer_is_said_to_be_one() -> None:
    with pytest.raises(ValueError, match=r"^opset must be an integer, got '17'$"):
        ExportConfig(opset="17")
    with pytest.raises(ValueError, match=r"^opset must be in 13\.\.18, got 19$"):
        ExportConfig(opset=19)


# 6. init_from's messages say its flag on the command line


@pytest.mark.slow
def test_fine_tuning_into_its_own_base_names_the_options_as_flags(training_stack, tmp_path: Path) -> None:
    from nextword.train import train

    base = tmp_path / "base"
    base.mkdir()
    for name in ("config.json", "tokenizer.json", "model.keras"):  # a run folder, as far as its names go
        (base / name).write_text("{}", encoding="utf-8")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("some text\n", encoding="utf-8")
    config = TrainConfig(out=str(base), corpus=CorpusConfig(paths=(str(corpus),)), init_from=str(base))
    flags = COMMAND_CONFIGS["train"]
    with pytest.raises(ValueError) as refused:
        train(config)
    assert cli_terms(str(refused.value), flags).startswith("--init-from and --out are the same folder")
    with pytest.raises(ValueError) as refused:
        train(replace(config, out=str(base / "sub")))
    said = cli_terms(str(refused.value), flags)
    assert said.startswith(f"--out {base / 'sub'} lies inside the run folder --init-from {base}, "), said
    runs = tmp_path / "runs"  # a folder of runs, named in place of the one to start from: it holds none
    runs.mkdir()
    with pytest.raises(FileNotFoundError) as refused:
        train(replace(config, init_from=str(runs), out=str(runs / "fine-tuned")))
    said = cli_terms(str(refused.value), flags)
    assert "it is not a finished nextword training run" in said and "holds one run" not in said, said
    assert not (runs / "fine-tuned").exists()


# 7. A corpus without documents: the files by name, and the fix


def test_a_corpus_without_documents_names_its_files_and_the_fix(tmp_path: Path) -> None:
    blank = tmp_path / "blank.txt"
    blank.write_text("\n\n   \n", encoding="utf-8")
    header = tmp_path / "header.csv"
    header.write_text("text\n", encoding="utf-8")
    records = tmp_path / "records.jsonl"
    records.write_text('{"text": ""}\n', encoding="utf-8")
    for path, empty in (
        (blank, "is empty or holds only blank lines"),
        (header, "has no row with text in its text column"),
        (records, "has no record with text in its field 'text'"),
    ):
        said = f"the corpus file {path} holds no non-empty documents: it {empty}; give a file that holds text"
        for read in (load_documents, count_documents):
            with pytest.raises(CorpusError) as refused:
                read([path], CorpusConfig())
            assert str(refused.value) == said
    with pytest.raises(CorpusError) as refused:
        split_corpus(CorpusConfig(paths=(str(blank),), keep_duplicates=True))
    assert str(refused.value).startswith(f"the corpus file {blank} holds no non-empty documents: it is empty")
    with pytest.raises(CorpusError) as refused:
        count_documents([blank, header], CorpusConfig(text_column="text"))
    assert str(refused.value) == (
        f"none of the corpus files {blank}, {header} holds a non-empty document: each has no row with "
        "text in its text column ('text') or is empty or holds only blank lines; give files that hold text"
    )


# 8. A damaged run file: named, with the way to recover


def test_a_damaged_run_file_is_named_with_the_way_to_recover(tmp_path: Path) -> None:
    cases = {
        "cut.json": ('{"epochs": [', "is not valid JSON: Expecting value: line 1 column 13 (char 12); "),
        "long.json": ('{"epochs": ' + "9" * 5000 + "}", "holds an integer too long to read "),
        "deep.json": ("[" * 100_000 + "]" * 100_000, "holds JSON nested too deeply to read "),
    }
    for name, (text, problem) in cases.items():
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ValueError) as refused:
            read_json(path)
        said = str(refused.value)
        assert said.startswith(f"{path} {problem}") and said.endswith(f"the file is damaged: {DAMAGED}"), said
    with pytest.raises(FileNotFoundError, match=exactly(f"{tmp_path / 'none.json'} is missing; {DAMAGED}")):
        read_json(tmp_path / "none.json")


# 9. A model too big for one ONNX file is a setting of the run: exit status 2, before any work


@pytest.mark.slow
def test_a_model_too_big_for_onnx_is_bad_input_found_before_any_work(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from nextword.export import ExportError, export
    from nextword.export import exporter as exporter_module
    from nextword.train import sizes as train_sizes

    monkeypatch.setattr(train_sizes, "PROTOBUF_LIMIT", 50_000)  # the tiny model's file is bigger

    def not_loaded(*args: object, **kwargs: object) -> None:
        raise AssertionError("the Keras model was loaded for a model that cannot be written")

    monkeypatch.setattr(exporter_module, "load_keras_model", not_loaded)
    out = tmp_path / "m.onnx"
    with pytest.raises(ValueError, match="export cannot write it") as refused:
        export(ExportConfig(run_dir=str(run_dir), out=str(out)))
    assert isinstance(refused.value, ExportError)  # what `except ExportError` caught before
    assert "Train the run again with a smaller model: lower `max_vocab`" in str(refused.value)
    assert "`embedding_dim`, `lstm_units` or `num_layers`" in str(refused.value)
    code, err = _cli(capsys, "export", str(run_dir), "--out", str(out))
    assert code == 2 and "nextword export: error: this model's ONNX file" in err, err
    assert not out.exists()
