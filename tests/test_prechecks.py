"""A mistake in a `nextword train` or `nextword export` command is said before TensorFlow loads: a
corpus file that is not there, a run folder that holds something else, a --resume path that is no run,
a bad TF_CONFIG, an export of a folder that holds no run. The commands imported TensorFlow first and
said each of these after some six seconds on this machine; the Python API does the same checks first.

Each case runs in a fresh interpreter, which reports whether TensorFlow was imported."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from helpers import synthetic_documents, write_corpus

# Runs each command line of argv[1] (a JSON list of [argv, TF_CONFIG or null]) through `nextword`'s main
# in this one process, and prints [[status, standard error, TensorFlow imported by then], ...].
COMMANDS = """
import contextlib, io, json, os, sys
from nextword.cli.main import main
results = []
for argv, tf_config in json.loads(sys.argv[1]):
    os.environ.pop("TF_CONFIG", None)
    if tf_config is not None:
        os.environ["TF_CONFIG"] = tf_config
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv)
    results.append([code, err.getvalue(), "tensorflow" in sys.modules])
print(json.dumps(results))
"""

# The Python API: each call of argv[1] (a list of [function, arguments]) raises; prints the exceptions'
# types and messages and whether TensorFlow was imported.
CALLS = """
import json, sys
from nextword.export import ExportConfig, export
from nextword.train import CorpusConfig, TrainConfig, resume, train
raised = []
for function, argument in json.loads(sys.argv[1]):
    try:
        if function == "train":
            train(TrainConfig(out=argument[1], corpus=CorpusConfig(paths=(argument[0],))))
        elif function == "resume":
            resume(argument)
        else:
            export(ExportConfig(run_dir=argument[0], out=argument[1]))
    except Exception as exc:
        raised.append([type(exc).__name__, str(exc)])
    else:
        raised.append(None)
print(json.dumps({"raised": raised, "tensorflow": "tensorflow" in sys.modules}))
"""


def _run(script: str, cases: list, cwd: Path) -> Any:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    result = subprocess.run(
        [sys.executable, "-c", script, json.dumps(cases)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "corpus", synthetic_documents(8, seed=2))["text"]


def test_train_command_mistakes_are_said_before_tensorflow_loads(run_dir: Path, corpus: Path, tmp_path: Path):
    taken = tmp_path / "notes"
    taken.mkdir()
    (taken / "mine.txt").write_text("mine")
    unresumable = shutil.copytree(run_dir, tmp_path / "no-checkpoint")
    (unresumable / "checkpoint.keras").unlink()
    cluster = shutil.copytree(run_dir, tmp_path / "cluster")  # a run of a cluster, resumed here alone
    stored = json.loads((cluster / "config.json").read_text())
    (cluster / "config.json").write_text(json.dumps({**stored, "distribute": "multi-worker"}))
    busy = tmp_path / "busy"  # a folder this process trains in (holds), as another training would
    lone = ["train", str(corpus), "--out", str(tmp_path / "new"), "--min-count", "1"]
    pair = json.dumps({"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}})
    folder, resume, export = tmp_path / "corpus", ["train", "--resume"], ["export", str(run_dir), "--out"]
    cases = [  # (what the one line says, the command, TF_CONFIG)
        (f"file {tmp_path / 'missing.txt'} does not exist", ["train", "missing.txt", "--out", "x"], None),
        (f"corpus file {folder} is a folder", ["train", str(folder), "--out", "new"], None),
        (f"{taken} holds files (mine.txt) and is not a nextword run", [*lone[:2], "--out", str(taken)], None),
        (f"{run_dir} holds a finished run", [*lone[:2], "--out", str(run_dir)], None),
        (f"--init-from: {tmp_path / 'nowhere'} does not exist", [*lone[:4], "--init-from", "nowhere"], None),
        ("TF_CONFIG has no task", [*lone, "--distribute", "multi-worker"], pair),
        ("TF_CONFIG is not valid JSON", [*lone, "--distribute", "multi-worker"], "{'cluster': 1}"),
        ("nowhere does not exist; give the run folder that training wrote", [*resume, "nowhere"], None),
        (f"{unresumable} has no checkpoint.keras to resume from", [*resume, str(unresumable)], None),
        ("TF_CONFIG is not set here: continue it on every worker", [*resume, str(cluster)], None),
        (f"{busy} is in use by another nextword training", [*lone[:2], "--out", str(busy)], None),
        ("run folder nowhere does not exist", ["export", "nowhere", "--out", "m.onnx"], None),
        (f"--out {tmp_path} is a folder", [*export, str(tmp_path)], None),
        (f"--out {corpus} exists and is not an ONNX model", [*export, str(corpus)], None),
    ]
    from nextword.train.files import RunDir

    with RunDir(busy).in_use():
        reported = _run(COMMANDS, [case[1:] for case in cases], tmp_path)
    for (expected, *_), (code, err, tensorflow) in zip(cases, reported, strict=True):
        lines = err.splitlines()
        assert code == 2 and len(lines) == 1 and expected in lines[0], (expected, err)
        assert lines[0].startswith(("nextword train: error: ", "nextword export: error: "))
        assert not tensorflow, expected
    assert not (tmp_path / "new").exists() and sorted(p.name for p in taken.iterdir()) == ["mine.txt"]


def test_the_python_api_refuses_before_tensorflow_loads_too(run_dir: Path, corpus: Path, tmp_path: Path):
    cases = [
        ["train", ["missing.txt", str(tmp_path / "new")]],
        ["train", [str(corpus), str(run_dir)]],
        ["resume", "nowhere"],
        ["export", ["nowhere", "m.onnx"]],
        ["export", [str(run_dir), str(run_dir / "model.keras")]],
    ]
    reported = _run(CALLS, cases, tmp_path)
    raised = reported["raised"]
    assert [r[0] for r in raised] == [
        "CorpusError",
        "RunExistsError",
        "FileNotFoundError",
        "FileNotFoundError",
        "ValueError",
    ], raised
    assert "missing.txt does not exist" in raised[0][1] and "holds a finished run" in raised[1][1]
    assert "model.keras' exists and is not an ONNX model" in raised[4][1]
    assert reported["tensorflow"] is False
    assert not (tmp_path / "new").exists()


def test_a_command_the_checks_pass_still_trains_and_resumes(corpus: Path, tmp_path: Path, capsys):
    """The checks refuse nothing that training takes: a new folder, the same folder with --overwrite
    once it holds a run, and --resume of it."""
    from nextword.cli.main import main

    out = tmp_path / "run"
    small = ["--min-count", "1", "--lstm-units", "8", "--embedding-dim", "8", "--seq-len", "8"]
    small += ["--epochs", "1"]
    assert main(["train", str(corpus), "--out", str(out), *small]) == 0
    assert main(["train", str(corpus), "--out", str(out), *small, "--overwrite"]) == 0
    assert main(["train", "--resume", str(out), "--epochs", "2"]) == 0
    assert len(json.loads((out / "metrics.json").read_text())["epochs"]) == 2
    capsys.readouterr()


def test_resume_names_what_it_can_change(run_dir: Path):
    """A misspelt change is refused before the folder is looked at, naming those resume() takes."""
    from nextword.train import resume

    with pytest.raises(TypeError, match=r"argument 'epoch'; it can change epochs, patience, verbose,"):
        resume(run_dir, epoch=3)
