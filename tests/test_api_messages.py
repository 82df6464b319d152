"""Messages name options as their reader typed them: a Python API user reads ``overwrite=True`` and
``nextword.train.resume('RUN')``, a command-line user ``--overwrite`` and ``nextword train --resume
RUN``. Library code says them in the API's terms; the command line rewrites them
(:func:`nextword.cli.args.cli_terms`)."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from nextword.cli.args import COMMAND_CONFIGS, cli_terms
from nextword.cli.main import main


def _copy(run_dir: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(run_dir, out)
    return out


def test_cli_terms_rewrites_api_calls_and_options():
    train, export = COMMAND_CONFIGS["train"], COMMAND_CONFIGS["export"]
    said = "continue it with `nextword.train.resume('/a b/r', epochs=9)` or replace it with overwrite=True"
    assert cli_terms(said, train) == (
        "continue it with `nextword train --resume '/a b/r' --epochs 9` or replace it with --overwrite"
    )
    said = "export with `nextword.export.export(ExportConfig('r', out='m.onnx'))`, or evaluate=False"
    assert cli_terms(said, export) == "export with `nextword export r --out m.onnx`, or --no-evaluate"
    said = "pass format='lines', raise `val_fraction`, tune_cache=False; distribute='none'"
    assert (
        cli_terms(said, train)
        == "pass --corpus-format lines, raise --val-fraction, tune_cache=False; --distribute none"
    )
    prose = "out of memory: epochs ran out, the overwrite failed"  # words that are also option names
    assert cli_terms(prose, train) == prose
    # the library's label of the setting at fault, first and before a colon: the flag
    said = "init_from: m.onnx does not exist; give the run folder or the model file to start from"
    assert cli_terms(said, train) == said.replace("init_from:", "--init-from:", 1)


def test_training_into_a_run_folder(run_dir, tiny_config, capsys, tmp_path):
    from nextword.train import RunExistsError, train

    with pytest.raises(RunExistsError) as caught:  # finished: resuming it as it is trains nothing
        train(replace(tiny_config, out=str(run_dir)))
    message = str(caught.value)
    assert f"run folder {run_dir} holds a finished run (" in message and "--" not in message
    assert (
        f"export it with `nextword.export.export(ExportConfig({str(run_dir)!r}, out='MODEL.onnx'))`"
        in message
    )
    assert "; or replace it with overwrite=True" in message
    corpus = tiny_config.corpus.paths[0]
    assert main(["train", corpus, "--out", str(run_dir), "--min-count", "1"]) == 2
    err = capsys.readouterr().err
    assert f"export it with `nextword export {run_dir} --out MODEL.onnx`" in err
    assert f"`nextword train --resume {run_dir} --epochs" in err and "; or replace it with --overwrite" in err
    unfinished = _copy(run_dir, tmp_path)  # epochs left to train: resume it
    metrics = json.loads((unfinished / "metrics.json").read_text())
    metrics |= {"epochs_planned": len(metrics["epochs"]) + 5, "stopped_early": False}
    (unfinished / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(RunExistsError) as caught:
        train(replace(tiny_config, out=str(unfinished)))
    message = str(caught.value)
    planned = metrics["epochs_planned"]  # more than config.json's epochs: the advice names them
    assert f"continue it with `nextword.train.resume({str(unfinished)!r}, epochs={planned})`" in message
    assert "replace it with overwrite=True" in message and "--" not in message
    assert main(["train", corpus, "--out", str(unfinished), "--min-count", "1"]) == 2
    err = capsys.readouterr().err
    assert (
        f"continue it with `nextword train --resume {unfinished} --epochs {planned}` or replace it with "
        "--overwrite" in err
    )


def test_resuming_a_run_without_its_checkpoint(run_dir, tmp_path, capsys):
    from nextword.train import resume

    run = _copy(run_dir, tmp_path)
    (run / "checkpoint.keras").unlink()
    with pytest.raises(FileNotFoundError) as caught:
        resume(run)
    message = str(caught.value)
    assert f"`nextword.export.export(ExportConfig({str(run)!r}, out='MODEL.onnx'))`" in message
    assert "(overwrite=True here would delete model.keras)" in message and "--" not in message
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"`nextword export {run} --out MODEL.onnx`" in err and "(--overwrite here would" in err
    (run / "model.keras").unlink()  # stopped before its first checkpoint
    with pytest.raises(FileNotFoundError, match=r"first checkpoint\); start it again with overwrite=True$"):
        resume(run)
    assert main(["train", "--resume", str(run)]) == 2
    assert "start it again with --overwrite" in capsys.readouterr().err


def test_resuming_a_finished_run_with_no_more_epochs(run_dir, tmp_path, caplog):
    from nextword.train import resume

    run = _copy(run_dir, tmp_path)
    with caplog.at_level(logging.WARNING, logger="nextword"):
        resume(run, epochs=1)
    assert "nothing to train; resume with `epochs` above" in caplog.text and "--epochs" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="nextword"):
        assert main(["train", "--resume", str(run), "--epochs", "1"]) == 0
    assert "nothing to train; resume with --epochs above" in caplog.text


@pytest.mark.train
def test_a_corpus_too_small_to_split(tiny_config, tmp_path, capsys):
    from nextword.train import CorpusError, train

    corpus = tmp_path / "one.txt"
    corpus.write_text("the only document\nwith two lines\n")
    config = replace(
        tiny_config, out=str(tmp_path / "run"), corpus=replace(tiny_config.corpus, paths=(str(corpus),))
    )
    with pytest.raises(CorpusError, match=r"has 1 document\(s\).*format='lines' reads one document per line"):
        train(config)
    assert main(["train", str(corpus), "--out", str(tmp_path / "run")]) == 2
    assert "--corpus-format lines reads one document per line" in capsys.readouterr().err
    copies = tmp_path / "copies.txt"
    copies.write_text("the same text\n\nthe same text\n\nThe same text!\n")
    config = replace(config, corpus=replace(config.corpus, paths=(str(copies),)))
    with pytest.raises(CorpusError, match=r"or pass keep_duplicates=True to split the copies"):
        train(config)
    assert main(["train", str(copies), "--out", str(tmp_path / "run")]) == 2
    assert "or pass --keep-duplicates to split the copies" in capsys.readouterr().err


def test_exporting_an_unfinished_run(run_dir, tmp_path, capsys):
    from nextword.export import ExportConfig, export

    run = _copy(run_dir, tmp_path)
    metrics = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({**metrics, "saving_epoch": 3}))
    out = str(tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="cut off while it saved epoch 3") as caught:
        export(ExportConfig(run_dir=str(run), out=out))
    assert f"`nextword.train.resume({str(run)!r})` mends the files" in str(caught.value)
    assert main(["export", str(run), "--out", out]) == 2
    assert f"`nextword train --resume {run}` mends the files" in capsys.readouterr().err
    (run / "model.keras").unlink()  # a checkpoint, and no best model yet
    with pytest.raises(FileNotFoundError) as caught:
        export(ExportConfig(run_dir=str(run), out=out))
    assert str(caught.value).endswith(f"continue it with `nextword.train.resume({str(run)!r})`")
    assert main(["export", str(run), "--out", out]) == 2
    assert f"continue it with `nextword train --resume {run}`" in capsys.readouterr().err
    (run / "model.keras").write_text("")
    with pytest.raises(ValueError, match=r"out='[^']*' is a folder"):
        export(ExportConfig(run_dir=str(run), out=str(tmp_path)))
    assert main(["export", str(run), "--out", str(tmp_path)]) == 2
    assert f"--out {tmp_path} is a folder" in capsys.readouterr().err
