"""A run interrupted and resumed ends where the same run left alone ends: the same validation losses
and the same weights, bit for bit, with dropout on (its masks continue from the checkpoint's random
state), whether the interrupt came within an epoch or at its end."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="tensorflow missing: install nextword[train]")

from nextword.train import ModelConfig, resume, train

pytestmark = pytest.mark.slow

CHECKPOINT_STEPS = 4


def _config(tiny_config, out: Path):
    model = ModelConfig(embedding_dim=8, lstm_units=16, num_layers=2, dropout=0.3, tie_embeddings=False)
    # word dropout too: every kind of dropout layer draws from a seed generator of its own
    model = replace(model, word_dropout=0.1)
    return replace(tiny_config, out=str(out), model=model, epochs=2, checkpoint_steps=CHECKPOINT_STEPS)


def _weights(path: Path) -> list[np.ndarray]:
    from nextword.train.model import load_keras_model

    return [np.asarray(w) for w in load_keras_model(path).get_weights()]


def _losses(run: Path) -> list[tuple[float, float]]:
    epochs = json.loads((run / "metrics.json").read_text())["epochs"]
    return [(e["val_loss"], e["dev_loss"]) for e in epochs]


@pytest.fixture(scope="module")
def left_alone(tiny_config, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("left-alone") / "run"
    train(_config(tiny_config, out))
    return out


@pytest.mark.parametrize("where", ["within an epoch", "at an epoch's end"])
def test_a_resumed_run_with_dropout_equals_one_left_alone(
    left_alone, tiny_config, tmp_path, monkeypatch, where
):
    from nextword.train import recorder

    config = _config(tiny_config, tmp_path / "run")
    if where == "within an epoch":  # Ctrl-C right after the second checkpoint within epoch 1
        original, saved = recorder.RunRecorder.checkpoint, []

        def checkpoint(self, model):
            original(self, model)
            saved.append(int(model.optimizer.iterations.numpy()))
            if len(saved) == 2:
                raise KeyboardInterrupt

        monkeypatch.setattr(recorder.RunRecorder, "checkpoint", checkpoint)
    else:  # Ctrl-C once epoch 1 is saved
        original_end = recorder.RunRecorder.epoch_end

        def epoch_end(self, model, result):
            original_end(self, model, result)
            raise KeyboardInterrupt

        monkeypatch.setattr(recorder.RunRecorder, "epoch_end", epoch_end)
    with pytest.raises(KeyboardInterrupt):
        train(config)
    monkeypatch.undo()
    done = json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs"]
    assert len(done) == (0 if where == "within an epoch" else 1)

    resume(config.out)
    run = Path(config.out)
    if where == "within an epoch":
        first = json.loads((run / "metrics.json").read_text())["epochs"][0]
        assert first["resumed_at_step"] == 2 * CHECKPOINT_STEPS
    assert _losses(run) == _losses(left_alone)
    for name in ("checkpoint.keras", "model.keras"):
        mine, theirs = _weights(run / name), _weights(left_alone / name)
        assert all(np.array_equal(a, b) for a, b in zip(mine, theirs, strict=True)), name


def test_a_checkpoint_without_dropout_state_resumes_and_says_it_differs(
    tiny_config, tmp_path, caplog, monkeypatch
):
    """A checkpoint written before the dropout layers kept their random state resumes as before (masks
    drawn afresh), and the log says the run will differ slightly from an uninterrupted one."""
    import keras

    from nextword.train.model import ReplicaDropout

    config = replace(_config(tiny_config, tmp_path / "run"), epochs=1)
    # as an earlier nextword saved it: nothing of the seed generators
    monkeypatch.setattr(ReplicaDropout, "save_own_variables", keras.layers.Dropout.save_own_variables)
    train(config)
    monkeypatch.undo()
    with caplog.at_level(logging.WARNING, logger="nextword.train.fit"):
        assert resume(config.out, epochs=2).epochs == 2
    assert "no random state of the dropout layers" in caplog.text
