"""Tied input and output embeddings: trained, saved, exported to the same single-file format with the
matrix stored once, parity-checked in fp32 and int8."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tf2onnx", reason="tf2onnx missing: install nextword[train]")

import keras
import onnx
from onnx import numpy_helper

from nextword.export import ExportConfig, export
from nextword.runtime import TokenizerConfig, load
from nextword.runtime.model_check import DEFAULT_ALLOWED_OPS
from nextword.train import CorpusConfig, ModelConfig, TrainConfig, train
from nextword.train.model import TiedEmbedding, build_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=[(16, 32), (24, 24)], ids=["projection", "same-width"])
def tied_run(request, corpus_files, tmp_path_factory) -> tuple[Path, ModelConfig]:
    embedding, units = request.param
    model = ModelConfig(embedding_dim=embedding, lstm_units=units, dropout=0.1, tie_embeddings=True)
    config = TrainConfig(
        out=str(tmp_path_factory.mktemp("tied") / "run"),
        corpus=CorpusConfig(paths=(str(corpus_files["csv"]),)),
        tokenizer=TokenizerConfig(min_count=1),
        model=model,
        seq_len=16,
        batch_size=8,
        learning_rate=1e-2,
        epochs=4,
        verbose=0,
    )
    train(config)
    return Path(config.out), model


def test_the_output_layer_is_the_embedding(tied_run):
    run, config = tied_run
    trained = keras.saving.load_model(run / "model.keras", compile=False)
    layer = trained.get_layer("embedding")
    assert isinstance(layer, TiedEmbedding)
    names = {layer.name for layer in trained.layers}
    assert ("projection" in names) == (config.lstm_units != config.embedding_dim)
    ids = np.array([[2, 5, 7, 3]], dtype=np.int32)
    x = np.asarray(trained.get_layer("lstm_0")(layer(ids)))
    if config.lstm_units != config.embedding_dim:
        x = np.asarray(trained.get_layer("projection")(x))
    (matrix,), (bias,) = layer.get_weights(), trained.get_layer("logits").get_weights()
    np.testing.assert_allclose(np.asarray(trained(ids)), x @ matrix.T + bias, atol=1e-5)
    assert np.abs(bias).max() > 0  # started at the unigram distribution


@pytest.mark.parametrize("int8", [False, True], ids=["fp32", "int8"])
def test_export_stores_the_matrix_once_and_passes_parity(tied_run, tmp_path, int8):
    run, config = tied_run
    out = tmp_path / "tied.onnx"
    report = export(ExportConfig(run_dir=str(run), out=str(out), int8=int8))
    assert report.parity.passed and report.parity.greedy_identical == report.parity.greedy_sequences
    if int8:
        assert report.int8_vs_fp32["max_abs_logit_diff"] < 0.5
    proto = onnx.load(str(out))
    model = load(out)  # the load-time checks, operator allowlist included, accept the graph
    vocab = model.vocab_size
    shapes = [tuple(numpy_helper.to_array(t).shape) for t in proto.graph.initializer]
    assert shapes.count((config.embedding_dim, vocab)) == 1  # one copy: looked up and multiplied by
    assert not [s for s in shapes if vocab in s and s != (config.embedding_dim, vocab) and len(s) > 1]
    ops = {(node.domain, node.op_type) for node in proto.graph.node}
    assert ops <= DEFAULT_ALLOWED_OPS and ("", "Loop") not in ops
    assert [n.op_type for n in proto.graph.node].count("DynamicQuantizeLSTM" if int8 else "LSTM") == 1
    assert model.generate("the network", max_words=10, seed=1)


@pytest.mark.parametrize(("embedding", "units"), [(16, 32), (32, 32)])
def test_tying_saves_the_output_matrix(embedding, units):
    vocab = 100
    untied = build_model(ModelConfig(embedding, units, tie_embeddings=False), vocab).count_params()
    tied = build_model(ModelConfig(embedding, units, tie_embeddings=True), vocab).count_params()
    projection = embedding * units if embedding != units else 0
    assert untied - tied == units * vocab - projection


def test_runs_from_before_tying_read_as_untied():
    old = {"model": {"embedding_dim": 8, "lstm_units": 8, "num_layers": 1, "dropout": 0.0}}
    assert TrainConfig.from_dict(old).model.tie_embeddings is False
    assert TrainConfig().model.tie_embeddings is True  # the default since issue 12


def test_frozen_pretrained_vectors_keep_a_trainable_output_bias(tmp_path, tiny_config):
    glove = tmp_path / "glove.txt"
    glove.write_text("network " + " ".join(["0.5"] * 16) + "\n")
    config = replace(
        tiny_config,
        out=str(tmp_path / "run"),
        epochs=1,
        embeddings=str(glove),
        freeze_embeddings=True,
        model=replace(tiny_config.model, tie_embeddings=True),
    )
    train(config)
    trained = keras.saving.load_model(tmp_path / "run" / "model.keras", compile=False)
    assert not trained.get_layer("embedding").trainable and trained.get_layer("logits").trainable


def test_a_fresh_process_loads_a_tied_run_through_load_keras_model(tied_run):
    """keras.saving.load_model alone does not know nextword's layers; load_keras_model does."""
    import subprocess
    import sys

    run, _ = tied_run
    path = str(run / "model.keras")
    load_with = "from nextword.train.model import load_keras_model as load; m = load({path!r})"
    plain = "import keras; m = keras.saving.load_model({path!r}, compile=False)"
    results = {}
    for name, code in (("nextword", load_with), ("plain", plain)):
        script = code.format(path=path) + "; print(type(m.get_layer('embedding')).__name__)"
        results[name] = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
        )
    assert results["nextword"].returncode == 0, results["nextword"].stderr[-2000:]
    assert results["nextword"].stdout.strip().endswith("TiedEmbedding")
    assert results["plain"].returncode != 0 and "TiedEmbedding" in results["plain"].stderr
