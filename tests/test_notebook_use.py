"""Training from one long-lived Python process, as a notebook does: run after run, interrupted runs,
Keras settings of the notebook's own."""

from __future__ import annotations

import gc
import sys
import weakref
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("tensorflow", reason="training needs the train extra")

from nextword.train import ModelConfig, resume, train


def _small(tiny_config, out: Path, **changes):
    model = ModelConfig(embedding_dim=8, lstm_units=8, num_layers=1, dropout=0.0, tie_embeddings=False)
    return replace(tiny_config, out=str(out), model=model, **{"epochs": 1, **changes})


@pytest.fixture
def windows_made(monkeypatch) -> list[weakref.ref]:
    """Weak references to every DiskWindows that training makes."""
    from nextword.train import fit
    from nextword.train.data import DiskWindows

    made: list[weakref.ref] = []

    class Recorded(DiskWindows):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            made.append(weakref.ref(self))

    monkeypatch.setattr(fit, "DiskWindows", Recorded)
    return made


def _alive(made: list[weakref.ref]) -> int:
    gc.collect()
    return sum(ref() is not None for ref in made)


def test_a_finished_run_leaves_nothing_of_its_data_in_the_process(tmp_path, tiny_config, windows_made, capfd):
    """tf.numpy_function kept each dataset's windows (arrays as long as the corpus) for as long as the
    process lived: a notebook grew with every run. Each epoch's line also says which epoch it is."""
    train(_small(tiny_config, tmp_path / "run", epochs=2, verbose=2))
    assert len(windows_made) == 3  # training, validation, development
    assert _alive(windows_made) == 0
    out = capfd.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out, out


def test_an_interrupted_run_says_how_to_go_on_and_the_process_trains_on(
    tmp_path, tiny_config, windows_made, monkeypatch
):
    from nextword.train import recorder

    original = recorder.RunRecorder.epoch_end

    def interrupted(self, model, result):
        original(self, model, result)  # epoch 1 is saved, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(recorder.RunRecorder, "epoch_end", interrupted)
    config = _small(tiny_config, tmp_path / "run", epochs=2, verbose=0)
    with pytest.raises(KeyboardInterrupt) as caught:
        train(config)
    notes = getattr(caught.value, "__notes__", None)
    del caught  # its traceback holds the frames that held the windows
    assert _alive(windows_made) == 0
    if sys.version_info >= (3, 11):
        assert notes == [
            "nextword: training interrupted; the run keeps its last checkpoint: continue it with "
            f"nextword.train.resume({config.out!r})"
        ]
    monkeypatch.undo()
    assert resume(config.out).epochs == 2  # the same process goes on with it


def test_an_interrupt_before_the_first_checkpoint_removes_the_run_and_says_to_start_again(
    tmp_path, tiny_config, monkeypatch
):
    """Nothing in such a folder could be resumed: it goes, as the folder of an interrupt before anything
    was written does, and the same call starts the run again."""
    from nextword.train import loop

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop.TrainingLoop, "run", interrupted)
    config = _small(tiny_config, tmp_path / "run", verbose=0)
    with pytest.raises(KeyboardInterrupt) as caught:
        train(config)
    if sys.version_info >= (3, 11):
        note = "nextword: training interrupted; nothing was kept: start the run again"
        assert caught.value.__notes__ == [note]
    assert not Path(config.out).exists()
    monkeypatch.undo()
    assert train(config).epochs == 1


def test_a_global_mixed_precision_policy_does_not_reach_the_model(tiny_config):
    """A notebook that set Keras's global policy to mixed_float16 for a model of its own trained
    nextword's in float16 as well, saved it so, and export then failed its parity check."""
    import keras

    from nextword.train.model import build_model, build_step_model

    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        models = [build_model(tiny_config.model, 50), build_step_model(tiny_config.model, 50)]
        models.append(build_model(replace(tiny_config.model, tie_embeddings=True), 50))
    finally:
        keras.config.set_dtype_policy(before)
    for model in models:
        policies = {layer.name: layer.dtype_policy.name for layer in model.layers if layer.weights}
        assert set(policies.values()) == {"float32"}, policies
    mixed = build_model(tiny_config.model, 50, mixed_precision=True)
    assert mixed.get_layer("lstm_0").dtype_policy.name == "mixed_float16"


@pytest.mark.parametrize("in_jupyter", [True, False])
def test_a_jupyter_kernel_gets_the_live_progress_bar(tmp_path, tiny_config, monkeypatch, capfd, in_jupyter):
    """A notebook cell is no terminal, but it redraws a line on a carriage return: verbose=1 keeps
    Keras's live bar there. Output to a log file (no terminal, no kernel) gets one line per epoch."""
    import types

    if in_jupyter:
        monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    else:
        monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    train(_small(tiny_config, tmp_path / "run", verbose=1))
    out = capfd.readouterr().out
    assert "Epoch 1/1" in out
    assert ("\r" in out) is in_jupyter, repr(out[-300:])
