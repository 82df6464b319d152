"""Fine-tuning from a model file (``init_from`` naming a ``.onnx`` file, such as the bundled model): its
weights are read back from the graph into the Keras network -- exactly from an fp32 file, as rounded
from an int8 one -- checked against the file's own predictions, and training starts from them with the
file's vocabulary."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tf2onnx", reason="tf2onnx missing: install nextword[train]")

from helpers import tuning_config, write_corpus
from nextword.cli.main import main
from nextword.export import ExportConfig, export
from nextword.runtime import TokenizerConfig, load
from nextword.runtime.model_check import inspect_model_file
from nextword.train import CorpusConfig, ModelConfig, TrainConfig, train
from nextword.train.model import load_keras_model
from nextword.train.model_file_weights import (
    NotReadable,
    check_rebuilt,
    read_file_weights,
    rebuild_model,
)

pytestmark = pytest.mark.slow

NEW_DOCUMENTS = [
    "A network has a layer. The layer receives a signal from the controller.",
    "The controller drives the network. Each layer is coupled to a memory.",
] * 20


@pytest.fixture(scope="module")
def new_corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("new"), NEW_DOCUMENTS)["csv"]


@pytest.fixture(scope="module")
def files(run_dir: Path, tmp_path_factory) -> dict[str, Path]:
    """The session's tiny run (two untied layers) exported in fp32 and int8."""
    folder = tmp_path_factory.mktemp("base-files")
    made = {}
    for precision in ("fp32", "int8"):
        made[precision] = folder / f"base-{precision}.onnx"
        export(
            ExportConfig(
                run_dir=str(run_dir), out=str(made[precision]), int8=precision == "int8", evaluate=False
            )
        )
    return made


@pytest.fixture(scope="module")
def tied_run(corpus_files, tmp_path_factory) -> Path:
    """A tied model whose LSTM is wider than its embedding: the output goes through a projection."""
    out = tmp_path_factory.mktemp("tied") / "run"
    train(
        TrainConfig(
            out=str(out),
            corpus=CorpusConfig(paths=(str(corpus_files["csv"]),)),
            tokenizer=TokenizerConfig(min_count=1),
            model=ModelConfig(embedding_dim=12, lstm_units=20, tie_embeddings=True),
            seq_len=16,
            batch_size=8,
            epochs=1,
            verbose=0,
        )
    )
    return out


def fine_tuning(base: Path, corpus: Path, out: Path, **changes) -> TrainConfig:
    return tuning_config(base, corpus, out, **{"epochs": 1, **changes})


def assert_same_weights(keras_model, run: Path, atol: float = 0.0) -> None:
    trained = load_keras_model(run / "model.keras")
    assert [w.path for w in keras_model.weights] == [w.path for w in trained.weights]
    for mine, theirs in zip(keras_model.weights, trained.weights, strict=True):
        np.testing.assert_allclose(np.asarray(mine), np.asarray(theirs), rtol=0, atol=atol, err_msg=mine.path)


@pytest.mark.parametrize("which", ["untied", "tied"])
def test_an_fp32_files_weights_are_the_runs_exactly(which, run_dir, files, tied_run, tmp_path):
    run, path = (run_dir, files["fp32"]) if which == "untied" else (tied_run, tmp_path / "tied.onnx")
    if which == "tied":
        export(ExportConfig(run_dir=str(run), out=str(path), evaluate=False))
    weights = read_file_weights(inspect_model_file(path).data, str(path))
    stored = json.loads((run / "config.json").read_text())["model"]
    assert weights.architecture() == {k: stored[k] for k in weights.architecture()}
    assert not weights.quantized and (weights.projection is not None) == (which == "tied")
    rebuilt = rebuild_model(weights, ModelConfig(**stored))
    assert_same_weights(rebuilt, run)
    assert check_rebuilt(rebuilt, load(path), weights, str(path)) < 1e-4


def test_an_int8_files_weights_are_the_runs_rounded(run_dir, files):
    path = files["int8"]
    weights = read_file_weights(inspect_model_file(path).data, str(path))
    assert weights.quantized
    stored = json.loads((run_dir / "config.json").read_text())["model"]
    rebuilt = rebuild_model(weights, ModelConfig(**stored))
    trained = load_keras_model(run_dir / "model.keras")
    rounded = 0
    for variable, original in zip(rebuilt.weights, trained.weights, strict=True):
        mine, theirs = np.asarray(variable), np.asarray(original)
        if theirs.ndim == 1:  # biases stay fp32 in an int8 file
            np.testing.assert_array_equal(mine, theirs, err_msg=variable.path)
            continue
        # 8-bit rounding: within one step (1/255 of the weight's range) of the original, and not exact
        step = (theirs.max() - theirs.min()) / 255
        assert np.abs(mine - theirs).max() <= step + 1e-6, variable.path
        rounded += not np.array_equal(mine, theirs)
    assert rounded == len([w for w in trained.weights if len(w.shape) > 1])
    gap = check_rebuilt(rebuilt, load(path), weights, str(path))
    assert 0 < gap < 0.1


def test_a_rebuilt_network_that_disagrees_with_the_file_is_refused(files):
    """The safety net: weights read in the wrong layout (here two gates swapped) predict otherwise than
    the file, and nothing trains from them."""
    path = files["fp32"]
    weights = read_file_weights(inspect_model_file(path).data, str(path))
    kernel, recurrent, bias = weights.lstm[0]
    gates = lambda x: np.concatenate([np.split(x, 4, axis=-1)[k] for k in (0, 2, 1, 3)], axis=-1)  # noqa: E731
    swapped = replace(weights, lstm=[(gates(kernel), gates(recurrent), gates(bias)), *weights.lstm[1:]])
    config = ModelConfig(embedding_dim=16, lstm_units=32, num_layers=2, tie_embeddings=False)
    with pytest.raises(NotReadable, match="does not give the file's predictions"):
        check_rebuilt(rebuild_model(swapped, config), load(path), swapped, str(path))


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_fine_tuning_from_a_model_file_starts_from_its_weights_and_vocabulary(
    precision, run_dir, files, new_corpus, tmp_path
):
    """With a learning rate that moves nothing, the fine-tuned model is the file's network: the run's
    own weights from an fp32 file, the rounded ones from an int8 file; the vocabulary is the file's,
    byte for byte, and the run and its model file record where it started."""
    path, out = files[precision], tmp_path / "tuned"
    train(fine_tuning(path, new_corpus, out, learning_rate=1e-12))
    tuned = load_keras_model(out / "model.keras")
    assert_same_weights(tuned, run_dir, atol=1e-6 if precision == "fp32" else 0.05)
    embedded = load(path).tokenizer.to_json()
    assert (out / "tokenizer.json").read_text(encoding="utf-8") == embedded
    assert (out / "tokenizer.json").read_bytes() == (run_dir / "tokenizer.json").read_bytes()
    stored, base_stored = (json.loads((r / "config.json").read_text()) for r in (out, run_dir))
    assert stored["model"] == base_stored["model"]  # the network and dropout the file records
    assert stored["tokenizer"] == base_stored["tokenizer"]
    facts = stored["base"]
    assert facts["run"] == str(path.resolve()) and facts["kind"] == "model file"
    assert facts["quantized"] is (precision == "int8")
    assert facts["corpus_files"] == ["corpus.csv"] and facts["documents"] == 80
    assert facts["best_epoch"] == json.loads((run_dir / "metrics.json").read_text())["best"]["epoch"]
    model_file = tmp_path / "tuned.onnx"
    export(ExportConfig(run_dir=str(out), out=str(model_file), evaluate=False))
    line = dict(load(model_file).info.provenance.describe())["fine-tuned from"]
    notes = "int8 weights, its epoch" if precision == "int8" else "its epoch"
    assert line.startswith(f"model file {path.name} ({notes} "), line


def test_the_command_line_fine_tunes_from_a_model_file(files, new_corpus, tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["train", str(new_corpus), "--init-from", str(files["int8"]), "--out", str(out), "--epochs", "2"]
    argv += ["--seq-len", "16", "--batch-size", "8", "--verbose", "0"]
    assert main(argv) == 0, capsys.readouterr().err
    assert len(json.loads((out / "metrics.json").read_text())["epochs"]) == 2
    assert main(["train", str(new_corpus), "--init-from", str(files["int8"]), "--out", str(out / "x"),
                 "--embedding-dim", "8"]) != 0  # fmt: skip
    assert "--embedding-dim (they come from the base run or model file)" in capsys.readouterr().err


def test_what_is_not_a_readable_model_file_is_refused_before_anything_is_written(
    new_corpus, tmp_path, files, run_dir
):
    out = tmp_path / "refused"
    damaged = tmp_path / "damaged.onnx"
    damaged.write_bytes(files["fp32"].read_bytes()[:5000])
    not_a_model = tmp_path / "notes.txt"
    not_a_model.write_text("hello\n")
    for path in (damaged, not_a_model):
        with pytest.raises(ValueError, match=r"^init_from: ") as caught:
            train(fine_tuning(path, new_corpus, out))
        assert str(path) in str(caught.value), caught.value
        assert not out.exists()
    for name in ("model.keras", "config.json"):  # a file of a run folder: the folder is named
        with pytest.raises(ValueError, match=r"is one of the files of the run folder .*; give the folder"):
            train(fine_tuning(run_dir / name, new_corpus, out))
        assert not out.exists()
    not_a_run = tmp_path / "notes"
    not_a_run.mkdir()
    with pytest.raises(FileNotFoundError, match=r"^init_from: run folder .* give a run folder that"):
        train(fine_tuning(not_a_run, new_corpus, out))
    with pytest.raises(ValueError, match="lies inside the run folder init_from"):
        train(fine_tuning(run_dir, new_corpus, run_dir / "sub"))
    assert not out.exists() and not (run_dir / "sub").exists()
    inside = tmp_path / "run-with-file"
    inside.mkdir()
    (inside / "base.onnx").write_bytes(files["fp32"].read_bytes())
    with pytest.raises(ValueError, match="lies in the run folder out"):
        train(fine_tuning(inside / "base.onnx", new_corpus, inside, overwrite=True))
    assert (inside / "base.onnx").read_bytes() == files["fp32"].read_bytes()


def test_the_bundled_models_weights_read_back_and_agree_with_it():
    from nextword.runtime import BUNDLED_MODEL

    weights = read_file_weights(inspect_model_file(BUNDLED_MODEL).data, str(BUNDLED_MODEL))
    model = load(BUNDLED_MODEL)
    recorded = model.info.config["model"]
    assert weights.quantized and weights.architecture() == {k: recorded[k] for k in weights.architecture()}
    assert weights.embedding.shape == (model.vocab_size, recorded["embedding_dim"])
    rebuilt = rebuild_model(weights, ModelConfig(**recorded))
    assert check_rebuilt(rebuilt, model, weights, "bundled") < 0.05  # measured: 0.02 nats on average


def test_evaluate_scores_the_base_on_the_fine_tuned_models_validation_documents(
    files, new_corpus, tmp_path, capsys, caplog
):
    """``nextword evaluate BASE CORPUS --split val --split-of TUNED``: the same documents and words as the
    fine-tuned model's own ``--split val``, so the two figures compare."""
    out, tuned = tmp_path / "tuned", tmp_path / "tuned.onnx"
    train(fine_tuning(files["fp32"], new_corpus, out, learning_rate=5e-3, epochs=2))
    export(ExportConfig(run_dir=str(out), out=str(tuned), evaluate=False))
    data = json.loads((out / "config.json").read_text())["data"]

    def evaluate(*argv: str) -> dict:
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="nextword"):
            assert main(["evaluate", *argv, str(new_corpus), "--split", "val", "--no-cache", "--json"]) == 0
        # the documents and words are those the split recorded (the unknown words' warning may come)
        assert "not the split it was trained with" not in caplog.text, caplog.text
        assert "not the one the model was trained on" not in caplog.text, caplog.text
        return json.loads(capsys.readouterr().out)

    own = evaluate(str(tuned))
    base = evaluate(str(files["fp32"]), "--split-of", str(tuned))
    assert own["documents"] == base["documents"] == data["val_documents"]
    assert own["words"] == base["words"] == data["val_words"]
    assert base["split_of"] == str(tuned) and own["perplexity"] < base["perplexity"]  # it learned the corpus
    assert main(["evaluate", str(files["fp32"]), str(new_corpus), "--split-of", str(tuned)]) != 0
    assert "add --split val" in capsys.readouterr().err
