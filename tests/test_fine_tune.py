"""Fine-tuning (``init_from``): a run that starts from another run's best model keeps its vocabulary and
network, trains its weights further on a new corpus, records where it started (in the run and in the
model file), and refuses what would contradict the base or overwrite it."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tf2onnx", reason="tf2onnx missing: install nextword[train]")

from helpers import machine_documents, tuning_config, write_corpus
from nextword.cli.main import main
from nextword.export import ExportConfig, export
from nextword.runtime import load
from nextword.train import ModelConfig, TrainConfig, resume, train
from nextword.train.base import fine_tuning_config, read_base
from nextword.train.config import LEARNING_RATE
from nextword.train.data import STREAM_DTYPE
from nextword.train.files import RunDir
from nextword.train.model import load_keras_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def new_corpus(tmp_path_factory) -> Path:
    """Another kind of text than the base corpus's: some of its words, and many it lacks."""
    return write_corpus(tmp_path_factory.mktemp("new-corpus"), machine_documents(60, seed=3))["csv"]


def fine_tuning(base: Path, corpus: Path, out: Path, **changes) -> TrainConfig:
    return tuning_config(base, corpus, out, **{"learning_rate": 1e-2, "epochs": 3, **changes})


def val_loss(model, run: Path) -> float:
    """Mean next-word cross-entropy of ``model`` (Keras) on ``run``'s validation stream, in one window."""
    ids = np.fromfile(run / "val.ids", dtype=STREAM_DTYPE).astype(np.int32)
    logits = np.asarray(model(ids[None, :-1]))[0].astype(np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(ids) - 1), ids[1:]].mean())


def test_a_fine_tuned_run_starts_from_the_base_weights_and_records_it(run_dir, new_corpus, tmp_path, caplog):
    """With a learning rate that moves nothing, the fine-tuned model is the base model: every weight,
    the output bias included (not restarted at this corpus's unigram distribution). A base that another
    process trains meanwhile is read as it stands, with a warning."""
    out = tmp_path / "still"
    with RunDir(run_dir).in_use(), caplog.at_level(logging.WARNING, logger="nextword"):
        train(fine_tuning(run_dir, new_corpus, out, learning_rate=1e-12, epochs=1))
    assert "is being trained by another process" in caplog.text
    base, tuned = load_keras_model(run_dir / "model.keras"), load_keras_model(out / "model.keras")
    assert [w.path for w in tuned.weights] == [w.path for w in base.weights]
    for mine, theirs in zip(tuned.weights, base.weights, strict=True):
        np.testing.assert_allclose(np.asarray(mine), np.asarray(theirs), atol=1e-6, err_msg=mine.path)
    assert (out / "tokenizer.json").read_bytes() == (run_dir / "tokenizer.json").read_bytes()
    stored, base_stored = (json.loads((r / "config.json").read_text()) for r in (out, run_dir))
    assert stored["model"] == base_stored["model"]  # the network, dropout included, from the base
    assert stored["tokenizer"] == base_stored["tokenizer"]
    assert stored["init_from"] == str(run_dir.resolve())
    facts = stored["base"]
    assert facts["run"] == str(run_dir.resolve()) and facts["corpus_files"] == ["corpus.csv"]
    assert facts["best_epoch"] == json.loads((run_dir / "metrics.json").read_text())["best"]["epoch"]
    assert 0.05 < facts["unknown_share"] < 0.5  # "gearbox", "torque"... are outside the base vocabulary


def test_fine_tuning_learns_the_new_corpus_and_the_file_says_where_it_started(run_dir, new_corpus, tmp_path):
    out = tmp_path / "tuned"
    train(fine_tuning(run_dir, new_corpus, out))
    base, tuned = load_keras_model(run_dir / "model.keras"), load_keras_model(out / "model.keras")
    assert val_loss(tuned, out) < val_loss(base, out) - 0.5  # held-out text of the new corpus
    model_file = tmp_path / "tuned.onnx"
    report = export(ExportConfig(run_dir=str(out), out=str(model_file)))
    assert report.parity.passed
    provenance = load(model_file).info.provenance
    assert provenance.base is not None and provenance.base.run == run_dir.name
    assert provenance.base.corpus == "corpus.csv" and provenance.base.documents == 80
    assert dict(provenance.describe())["fine-tuned from"].startswith(f"run {run_dir.name} (its epoch ")
    recorded = json.loads(_metadata(model_file)["nextword.config"])["train"]
    assert recorded["init_from"] == run_dir.name  # the model file carries no folder layout
    resume(str(out), epochs=4)  # a fine-tuned run resumes as any run does
    assert len(json.loads((out / "metrics.json").read_text())["epochs"]) == 4
    assert (out / "tokenizer.json").read_bytes() == (run_dir / "tokenizer.json").read_bytes()


def _metadata(path: Path) -> dict[str, str]:
    import onnx

    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def test_settings_left_out_come_from_the_base_and_the_learning_rate_is_a_quarter_of_trainings(
    run_dir, new_corpus, tmp_path
):
    config = replace(fine_tuning(run_dir, new_corpus, tmp_path / "x"), learning_rate=None)  # not set
    base, _ = RunDir(run_dir).read_config()
    tuned = fine_tuning_config(config, read_base(config))
    assert tuned.model == base.model and tuned.tokenizer == base.tokenizer  # dropout 0.1, not 0.2
    assert (
        tuned.learning_rate_for(1) == LEARNING_RATE / 4
        and TrainConfig().learning_rate_for(1) == LEARNING_RATE
    )
    for rate in (LEARNING_RATE, 1e-3):  # a rate given is the rate, training's default value too
        assert replace(tuned, learning_rate=rate).learning_rate_for(1) == rate
    model = ModelConfig(dropout=0.3, lstm_units=base.model.lstm_units)  # the base's width, given
    tuned = fine_tuning_config(replace(config, model=model), read_base(config))
    assert tuned.model == replace(base.model, dropout=0.3)


@pytest.mark.parametrize(
    "changes, error, words",
    [
        ({"model": ModelConfig(lstm_units=64)}, ValueError, ["lstm_units=64", "the base's: 32", "leave"]),
        ({"embeddings": "vectors.txt"}, ValueError, ["`init_from` and `embeddings`"]),
        ({"distribute": "multi-worker"}, ValueError, ["one machine", "mirrored"]),
        ({"init_from": "missing-run"}, FileNotFoundError, ["missing-run does not exist"]),
    ],
    ids=["network", "embeddings", "multi-worker", "missing"],
)
def test_what_contradicts_the_base_is_refused_before_anything_is_written(
    run_dir, new_corpus, tmp_path, changes, error, words
):
    out = tmp_path / "refused"
    with pytest.raises(error) as caught:
        train(replace(fine_tuning(run_dir, new_corpus, out), **changes))
    assert all(w in str(caught.value) for w in words), str(caught.value)
    assert not out.exists()


def test_the_base_folder_is_never_the_fine_tuned_runs_folder(run_dir, new_corpus):
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    with pytest.raises(ValueError, match="same folder"):
        train(fine_tuning(run_dir, new_corpus, run_dir, overwrite=True))
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before


def test_the_command_line_takes_the_network_from_the_base(run_dir, new_corpus, tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["train", str(new_corpus), "--init-from", str(run_dir), "--out", str(out), "--lstm-units", "48"]
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert "--init-from keeps the base's vocabulary and network" in err and "--lstm-units" in err, err
    assert "--extend-vocabulary" not in err, err  # it changes nothing about the network
    assert not out.exists()
    # --max-vocab is taken with --extend-vocabulary, which bounds the words it adds: the refusal says so
    assert main([*argv[:-2], "--max-vocab", "500"]) != 0
    err = capsys.readouterr().err
    assert "leave out --max-vocab (" in err and "or add --extend-vocabulary" in err, err
    # the flags as typed, a negative one too; a setting both give, in flags
    assert main([*argv[:-2], "--no-tie-embeddings"]) != 0
    assert "leave out --no-tie-embeddings (" in capsys.readouterr().err
    assert main([*argv[:-2], "--embeddings", str(new_corpus)]) != 0
    assert "--init-from and --embeddings both give the starting weights" in capsys.readouterr().err
    assert not out.exists()
