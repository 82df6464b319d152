"""The README's Python examples run as written (against the tiny test model and corpus)."""

import re
import shutil
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_readme_has_python_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, model_path, corpus_files, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    shutil.copy(model_path, tmp_path / "small.onnx")
    shutil.copy(corpus_files["csv"], tmp_path / "patents.csv")
    monkeypatch.setenv("NEXTWORD_MODEL", str(tmp_path / "small.onnx"))
    exec(compile(BLOCKS[index], f"README.md python block {index}", "exec"), {"__name__": "__readme__"})
    capsys.readouterr()
