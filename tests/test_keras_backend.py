"""Keras on TensorFlow whatever the environment names: ``KERAS_BACKEND=jax``, or a keras.json whose
backend is JAX (``~/.keras``, or ``/tmp/.keras`` that another user made where the home folder cannot be
written), made train and export fail with "training needs keras (No module named 'jax'); install the
training extra", though Keras was installed."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import types

import pytest

from nextword.train import EXPORT_STACK, TRAINING_STACK, MissingExtraError, require

NEXTWORD = [sys.executable, "-c", "import sys; from nextword.cli.entry import main; sys.exit(main())"]


def _jax_settings(tmp_path):
    """A KERAS_HOME whose keras.json names JAX."""
    home = tmp_path / "keras-home"
    home.mkdir()
    (home / "keras.json").write_text(json.dumps({"backend": "jax"}), encoding="utf-8")
    return home


@pytest.mark.slow
def test_export_runs_on_tensorflow_whatever_keras_backend_and_keras_json_say(run_dir, tmp_path):
    pytest.importorskip("tensorflow", reason="tensorflow missing: install nextword[train]")
    run = shutil.copytree(run_dir, tmp_path / "run")
    env = {**os.environ, "KERAS_HOME": str(_jax_settings(tmp_path)), "KERAS_BACKEND": "jax"}
    done = subprocess.run(
        [*NEXTWORD, "-q", "export", str(run), "--out", str(tmp_path / "m.onnx")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "m.onnx").is_file()
    assert (
        "WARNING nextword.train.backend: KERAS_BACKEND=jax is set, but nextword trains and exports with "
        "Keras on TensorFlow: using KERAS_BACKEND=tensorflow in this process"
    ) in done.stderr


@pytest.mark.train
def test_the_training_stack_loads_keras_on_tensorflow_over_a_keras_json_that_names_jax(tmp_path):
    code = (
        "import os\n"
        "from nextword.train import TRAINING_STACK, require\n"
        "require('training', TRAINING_STACK)\n"
        "import keras\n"
        "print(keras.backend.backend(), os.environ['KERAS_BACKEND'])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "KERAS_HOME": str(_jax_settings(tmp_path))},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["tensorflow", "tensorflow"]
    assert "KERAS_BACKEND" not in done.stderr  # the user set no variable: nothing to warn of


def test_keras_backend_is_set_before_keras_loads(monkeypatch, caplog):
    from nextword.train import backend

    monkeypatch.setattr(backend, "_KERAS_SETTINGS", "nextword_test_no_keras_settings")  # as if not loaded
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    backend.use_tensorflow_backend()
    assert os.environ["KERAS_BACKEND"] == "tensorflow" and not caplog.records
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    with caplog.at_level(logging.WARNING, logger="nextword.train.backend"):
        backend.use_tensorflow_backend()
    assert os.environ["KERAS_BACKEND"] == "tensorflow"
    said = "KERAS_BACKEND=torch is set, but nextword trains and exports with Keras on TensorFlow"
    assert said in caplog.text


@pytest.mark.parametrize("stack", [TRAINING_STACK, EXPORT_STACK])
def test_keras_already_loaded_with_another_backend_is_named_with_the_fix(monkeypatch, stack):
    """A notebook that imported Keras on JAX before nextword: its backend cannot change in that process."""
    from nextword.train import backend

    settings = types.ModuleType("keras_settings")
    settings.backend = lambda: "jax"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, backend._KERAS_SETTINGS, settings)
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    with pytest.raises(MissingExtraError) as refused:
        require("training", stack)
    assert str(refused.value) == (
        "training needs Keras on its TensorFlow backend: Keras was already imported in this process with "
        "its 'jax' backend (KERAS_BACKEND, or the backend in keras.json), which it keeps until the process "
        "ends, and nextword trains and exports with Keras on TensorFlow; set "
        "os.environ['KERAS_BACKEND'] = 'tensorflow' before anything imports Keras, or restart Python (a "
        "notebook: its kernel)"
    )
    assert os.environ["KERAS_BACKEND"] == "jax"  # left as it is: it changes nothing now
