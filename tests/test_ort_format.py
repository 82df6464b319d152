"""The bundled model converted to onnxruntime's ORT format (what a minimal onnxruntime build for a mobile
app reads): its metadata (the tokenizer) survives, its outputs are the .onnx file's bit for bit on this
machine, and nextword's loaders say what the file is instead of calling it corrupted."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nextword.runtime import ModelFileError, load
from nextword.runtime.default import BUNDLED_MODEL

pytest.importorskip("onnx", reason="onnxruntime's ORT converter needs onnx: install nextword[train]")
ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the bundled .onnx, its .ort), converted as docs/model-format.md says."""
    folder = tmp_path_factory.mktemp("ort")
    onnx_path = folder / "model.onnx"
    shutil.copyfile(BUNDLED_MODEL, onnx_path)
    command = [sys.executable, "-m", "onnxruntime.tools.convert_onnx_models_to_ort", str(onnx_path)]
    command += ["--optimization_style", "Fixed", "--target_platform", "arm"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=folder)
    assert done.returncode == 0, done.stdout + done.stderr
    config = folder / "model.required_operators.config"
    assert "DynamicQuantizeLSTM" in config.read_text(encoding="utf-8")  # what a minimal build must include
    return onnx_path, folder / "model.ort"


def _session(path: Path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def test_the_ort_file_keeps_the_metadata_and_gives_the_same_outputs(converted):
    """Every metadata value (the tokenizer JSON included) is the .onnx file's; a prompt fed in one call
    and 30 greedy steps give the same logits and state, as do random ids over two rows."""
    onnx_path, ort_path = converted
    ours, theirs = _session(onnx_path), _session(ort_path)
    meta = ours.get_modelmeta().custom_metadata_map
    assert theirs.get_modelmeta().custom_metadata_map == meta
    tokens = json.loads(meta["nextword.tokenizer"])["tokens"]
    units = {i.name: i.shape[1] for i in ours.get_inputs() if i.name.startswith(("h_", "c_"))}
    outputs = [o.name for o in ours.get_outputs()]

    def run(session, ids, state, logits_from):
        feed = {"input_ids": np.asarray(ids, np.int64), "logits_from": np.array(logits_from, np.int64)}
        answer = dict(zip(outputs, session.run(outputs, {**feed, **state}), strict=True))
        return answer["logits"], {name: answer[name + "_out"] for name in units}

    def zeros(rows: int) -> dict[str, np.ndarray]:
        return {name: np.zeros((rows, width), np.float32) for name, width in units.items()}

    prompt = [
        tokens.index(word) for word in ["<eod>", "a", "method", "for", "training", "a", "neural", "network"]
    ]
    states = {"onnx": zeros(1), "ort": zeros(1)}
    ids = {"onnx": [prompt], "ort": [prompt]}
    for _ in range(31):
        (a, states["onnx"]), (b, states["ort"]) = (
            run(session, ids[key], states[key], -1) for key, session in (("onnx", ours), ("ort", theirs))
        )
        assert np.array_equal(a, b)
        assert all(np.array_equal(states["onnx"][name], states["ort"][name]) for name in units)
        ids = {key: [[int(a[0, -1].argmax())]] for key in ids}
    rows = np.random.default_rng(0).integers(3, len(tokens), size=(2, 40))
    assert np.array_equal(run(ours, rows, zeros(2), 0)[0], run(theirs, rows, zeros(2), 0)[0])


def test_nextwords_loader_names_the_ort_format(converted, capsys):
    """load() and `nextword info` on the .ort: the format named and the file to give, not "truncated or
    corrupted: re-download"."""
    from nextword.cli.main import main

    _, ort_path = converted
    said = "is in onnxruntime's ORT format (convert_onnx_models_to_ort's output), not ONNX: nextword reads"
    with pytest.raises(ModelFileError, match=r"ORT format .* reads the \.onnx file it was converted from"):
        load(ort_path)
    assert main(["info", str(ort_path)]) == 2
    err = capsys.readouterr().err
    assert said in err and "re-download" not in err
