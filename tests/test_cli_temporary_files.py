"""What `nextword train` and `nextword export` leave in $TMPDIR: nothing. TensorFlow's autograph writes
each function it converts as a module there and removes it at exit, but importing it wrote its bytecode
to $TMPDIR/__pycache__, which stayed: some ten files a training, six an export, thousands from a nightly
job."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.train]

NEXTWORD = [sys.executable, "-c", "import sys; from nextword.cli.entry import main; sys.exit(main())"]
TINY = ["--epochs", "1", "--embedding-dim", "8", "--lstm-units", "8", "--num-layers", "1", "--seq-len", "8"]


def test_train_and_export_leave_no_files_in_tmpdir(corpus_files, tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # as a user's shell has it
    env["TMPDIR"] = str(scratch)
    run, model = tmp_path / "run", tmp_path / "m.onnx"
    commands = {
        "train": ["train", str(corpus_files["csv"]), "--out", str(run), *TINY, "--min-count", "1"],
        "export": ["export", str(run), "--out", str(model)],
    }
    for name, argv in commands.items():
        done = subprocess.run(
            [*NEXTWORD, "-q", *argv], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path
        )
        assert done.returncode == 0, done.stderr
        left = sorted(str(p.relative_to(scratch)) for p in scratch.rglob("*"))
        assert left == [], f"nextword {name} left {left}"
    assert model.is_file()
