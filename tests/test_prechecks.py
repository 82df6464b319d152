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
    held = shutil.copytree(run_dir, tmp_path / "held")  # a run this process trains on, to be resumed
    hidden = tmp_path / "hidden"  # a folder that holds a hidden file alone (.git, .keep): still not empty
    hidden.mkdir()
    (hidden / ".keep").write_text("")
    holder = tmp_path / "holder"  # a run folder whose corpus is kept in it, one folder down
    (holder / "data").mkdir(parents=True)
    kept = Path(shutil.copy(corpus, holder / "data"))
    left = shutil.copytree(run_dir, tmp_path / "left")  # an overwrite of it was killed: its run set aside
    aside = tmp_path / ".left.replaced"
    aside.mkdir()
    marker, no_checkpoint = ".nextword-run", "has no checkpoint.keras to resume from"
    started = tmp_path / "started"  # a run stopped before it wrote its config.json: the marker alone
    started.mkdir()
    (started / marker).write_text("")
    loop = tmp_path / "loop.csv"  # a link that points to itself
    loop.symlink_to(loop)
    lone = ["train", str(corpus), "--out", str(tmp_path / "new"), "--min-count", "1"]
    tune = [*lone[:4], "--init-from", str(run_dir)]
    pair = json.dumps({"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}})
    folder, resume, export = tmp_path / "corpus", ["train", "--resume"], ["export", str(run_dir), "--out"]

    def overwrite(out: Path) -> list[str]:
        return [*lone[:2], "--out", str(out), "--overwrite"]

    cases = [  # (what the one line says, the command, TF_CONFIG)
        (f"file {tmp_path / 'missing.txt'} does not exist", ["train", "missing.txt", "--out", "x"], None),
        (f"corpus file {folder} is a folder", ["train", str(folder), "--out", "new"], None),
        (f"{taken} holds files (mine.txt) and is not a nextword run", [*lone[:2], "--out", str(taken)], None),
        (f"{run_dir} holds a finished run", [*lone[:2], "--out", str(run_dir)], None),
        (f"--init-from: {tmp_path / 'nowhere'} does not exist", [*lone[:4], "--init-from", "nowhere"], None),
        (f"--base-corpus file {loop} is a symbolic link", [*tune, "--base-corpus", str(loop)], None),
        ("TF_CONFIG has no task", [*lone, "--distribute", "multi-worker"], pair),
        ("TF_CONFIG is not valid JSON", [*lone, "--distribute", "multi-worker"], "{'cluster': 1}"),
        ("--text-column abstract chooses the column of a CSV", [*lone, "--text-column", "abstract"], None),
        (f"{corpus} exists and is not a folder", [*lone[:2], "--out", str(corpus)], None),
        (f"{hidden} holds files (.keep) and is not a nextword run", [*lone[:2], "--out", str(hidden)], None),
        (f"{kept} is inside the run folder {holder}", ["train", str(kept), "--out", str(holder)], None),
        (f"{taken} is not a nextword run folder (it has no {marker} marker)", overwrite(taken), None),
        (f"{aside} holds the run that an", overwrite(left), None),
        ("nowhere does not exist; give the run folder that training wrote", [*resume, "nowhere"], None),
        (f"{corpus} is a file, not a run folder", [*resume, str(corpus)], None),
        (f"{unresumable} {no_checkpoint}, only its best model", [*resume, str(unresumable)], None),
        (f"{started} {no_checkpoint} (the run stopped before", [*resume, str(started)], None),
        (f"{held} is in use by another nextword training", [*resume, str(held)], None),
        ("TF_CONFIG is not set here: continue it on every worker", [*resume, str(cluster)], None),
        ("TF_CONFIG is not valid JSON", [*resume, str(cluster)], "{'cluster': 1}"),
        (f"{busy} is in use by another nextword training", [*lone[:2], "--out", str(busy)], None),
        ("run folder nowhere does not exist", ["export", "nowhere", "--out", "m.onnx"], None),
        (f"--out {tmp_path} is a folder", [*export, str(tmp_path)], None),
        (f"--out {corpus} exists and is not an ONNX model", [*export, str(corpus)], None),
    ]
    from nextword.train.files import RunDir

    with RunDir(busy).in_use(), RunDir(held).in_use():
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
        ["train", [str(corpus), ""]],  # no run folder given: not the current folder
        ["export", [str(run_dir), ""]],  # no file given: not the current folder
    ]
    reported = _run(CALLS, cases, tmp_path)
    raised = reported["raised"]
    assert [r[0] for r in raised] == [
        "CorpusError",
        "RunExistsError",
        "FileNotFoundError",
        "FileNotFoundError",
        "ValueError",
        "ValueError",
        "ValueError",
    ], raised
    assert "missing.txt does not exist" in raised[0][1] and "holds a finished run" in raised[1][1]
    assert "model.keras' exists and is not an ONNX model" in raised[4][1]
    assert raised[5][1] == "the run folder is not set: pass out='RUN_DIR'"
    assert raised[6][1] == "the output file is not set: pass out='MODEL.onnx'"
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

    changes = "epochs, patience, verbose, max_minutes, distribute, peer_timeout, checkpoint_steps"
    with pytest.raises(TypeError, match=rf"argument 'epoch'; it can change {changes}$"):
        resume(run_dir, epoch=3)


def test_the_checks_take_what_training_takes(run_dir: Path, corpus: Path, tmp_path: Path, monkeypatch):
    """What the checks must not refuse: a run from before markers, every change resume() takes, a
    cluster restarted with its command (its chief goes on with the run in its folder), a worker's folder
    that holds the chief's config.json alone, a cluster's run resumed here alone with distribute='none',
    and an export file name as long as the file system allows."""
    from nextword.export import ExportConfig
    from nextword.export.prechecks import check_export
    from nextword.train import CorpusConfig, TrainConfig
    from nextword.train.prechecks import check_resume, check_train

    monkeypatch.delenv("TF_CONFIG", raising=False)
    older = shutil.copytree(run_dir, tmp_path / "older")
    (older / ".nextword-run").unlink()
    check_resume(older)
    changes = {"epochs": 3, "patience": 2, "verbose": 0, "max_minutes": 5.0, "distribute": "none"}
    check_resume(run_dir, **changes, peer_timeout=30.0, checkpoint_steps=10)

    cluster = shutil.copytree(run_dir, tmp_path / "cluster")
    stored = json.loads((cluster / "config.json").read_text())
    (cluster / "config.json").write_text(json.dumps({**stored, "distribute": "multi-worker"}))
    check_resume(cluster, distribute="none")
    worker = tmp_path / "worker"
    worker.mkdir()
    shutil.copy(cluster / "config.json", worker)
    pair = {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 1}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(pair))
    check_resume(worker)
    paths = CorpusConfig(paths=(str(corpus),))
    check_train(TrainConfig(out=str(cluster), corpus=paths, distribute="multi-worker"))

    longest = tmp_path / ("m" * 250 + ".onnx")  # 255 bytes, the most a name may have here
    check_export(ExportConfig(run_dir=str(run_dir), out=str(longest)))
    assert not longest.exists() and sorted(p.name for p in worker.iterdir()) == ["config.json"]


def test_a_missing_extra_is_looked_up_not_imported(tmp_path: Path, monkeypatch):
    """require_installed names every module of the extra that is not there, with the fix; one that is
    there is not imported (that costs TensorFlow's seconds), and a module half there (no __spec__, as
    some tools leave one in sys.modules) is left to the import that follows."""
    import types

    from nextword.train import MissingExtraError, require_installed

    (tmp_path / "nextword_probe_here.py").write_text("raise RuntimeError('imported by the lookup')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    require_installed("probing", ("json", "nextword_probe_here"))
    assert "nextword_probe_here" not in sys.modules
    half = types.ModuleType("nextword_probe_half")
    half.__spec__ = None
    monkeypatch.setitem(sys.modules, "nextword_probe_half", half)
    require_installed("probing", ("json", "nextword_probe_half"))
    for missing in ("nextword_probe_gone", "nextword_probe_gone.sub"):  # a lookup of .sub imports its parent
        with pytest.raises(
            MissingExtraError, match=rf"^probing needs {missing} \(No module named .*\); fix$"
        ):
            require_installed("probing", ("json", missing), "fix")
    with pytest.raises(
        MissingExtraError, match=r"needs nextword_probe_gone \(.*\), nextword_probe_x \(.*\); fix$"
    ):
        require_installed("probing", ("nextword_probe_gone", "json", "nextword_probe_x"), "fix")


def test_the_base_of_a_fine_tuning_is_checked_by_its_place(
    run_dir: Path, corpus: Path, tmp_path, monkeypatch
):
    """Before TensorFlow, without reading it: a model file that an export wrote into its run's folder (as
    export suggests), whatever the case of its suffix, or one beside another tool's config.json, is a
    base; a run folder that holds the new run's `out`, however deep, and a model file in `out` given
    by a relative path, are not."""
    from nextword.train import CorpusConfig, TrainConfig
    from nextword.train.prechecks import check_train

    def tune(out: Path | str, base: Path) -> TrainConfig:
        return TrainConfig(out=str(out), corpus=CorpusConfig(paths=(str(corpus),)), init_from=str(base))

    run = shutil.copytree(run_dir, tmp_path / "run")
    other = tmp_path / "models"
    other.mkdir()
    (other / "config.json").write_text("{}")
    for base in (run / "model.onnx", run / "MODEL.ONNX", other / "tiny.model"):
        base.write_bytes(b"\x08")  # read by the trainer, not here
        check_train(tune(tmp_path / "new", base))
    with pytest.raises(ValueError, match=r"out='.*/run/a/b' lies inside the run folder init_from="):
        check_train(tune(run / "a" / "b", run))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fresh").mkdir()
    (tmp_path / "fresh" / "base.onnx").write_bytes(b"\x08")
    with pytest.raises(ValueError, match=r"base\.onnx lies in the run folder out='fresh', which the new run"):
        check_train(tune("fresh", tmp_path / "fresh" / "base.onnx"))
    assert not (tmp_path / "new").exists() and not (run / "a").exists()
