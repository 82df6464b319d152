"""A model file travels (to a browser, to customers): it names the corpus files, not the folders of the
machine it was made on. The command lines it records keep only the last name of each path outside the
folder they ran in, as the corpus paths do."""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("tf2onnx", reason="tf2onnx missing: install nextword[train]")
import onnx

from nextword.export import ExportConfig, export
from nextword.export.provenance import file_name, travelling_command
from nextword.runtime import load


@pytest.mark.parametrize(
    ("command", "kept"),
    [
        (
            "nextword train /home/alice/p/corpus.csv --out /home/alice/p/runs/tiny --epochs 3",
            "nextword train corpus.csv --out tiny --epochs 3",
        ),
        ("nextword export run --out=/home/alice/m.onnx --int8", "nextword export run --out=m.onnx --int8"),
        ("nextword train ../../alice/data.csv ~/b.csv --out a/b", "nextword train data.csv b.csv --out a/b"),
        ("nextword train 'C:\\Users\\alice\\c.csv' D:/x/d.csv", "nextword train c.csv d.csv"),
        ("nextword train '/home/a b/my corpus.csv' --text-column title/abstract", None),
        ("nextword train data/corpus.csv --out runs/tiny --lr 1e-3", "same"),
        ("nextword train / --out ./x/../y", "nextword train / --out y"),
        # the values of text options stay as typed; ".." is resolved before the last name is taken
        (
            "nextword export r --stop '\\n' --stop=/end --stop ../x --out /home/alice/..",
            "nextword export r --stop '\\n' --stop=/end --stop ../x --out home",
        ),
        (
            "nextword train /a/c.csv --text-column /body --json-field ../notes --overwrite /b/d.csv",
            "nextword train c.csv --text-column /body --json-field ../notes --overwrite d.csv",
        ),
    ],
)  # fmt: skip
def test_a_travelling_command_keeps_only_the_names_of_paths_outside_its_folder(command, kept):
    if kept is None:  # quoting kept: a name with a space is still one argument
        assert travelling_command(command) == "nextword train 'my corpus.csv' --text-column title/abstract"
    else:  # "same": paths inside the folder the command ran in say nothing of the machine
        assert travelling_command(command) == (command if kept == "same" else kept)


def test_a_file_name_is_the_last_name_of_a_posix_or_a_windows_path():
    assert file_name("C:\\Users\\alice\\corpus.csv") == file_name("/home/alice/corpus.csv") == "corpus.csv"
    assert file_name("/home/alice/..") == "home" and file_name("corpus.csv") == "corpus.csv"


def test_a_travelling_command_of_anything_but_a_command_line_is_none():
    assert travelling_command(None) is None and travelling_command(["nextword"]) is None
    assert travelling_command("nextword train 'unbalanced") is None  # a hand-edited config.json


def test_an_exported_file_holds_no_folder_of_the_trainers_machine(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    stored = json.loads((run / "config.json").read_text(encoding="utf-8"))
    home = "/home/alice/secret-project"
    stored["command"] = f"nextword train {home}/corpus.csv --out={home}/runs/tiny --epochs 3"
    stored["base"] = {"run": f"{home}/runs/base", "kind": "run", "corpus_files": [f"{home}/base.csv"],
                      "command": f"nextword train {home}/base.csv --out {home}/runs/base"}  # fmt: skip
    # --init-from and --base-corpus: the base and its corpus (export reads neither)
    stored["init_from"], stored["base_corpus"] = f"{home}/runs/base", [f"{home}/base.csv"]
    (run / "config.json").write_text(json.dumps(stored), encoding="utf-8")
    out = tmp_path / "m.onnx"
    export(
        ExportConfig(run_dir=str(run), out=str(out), tune_cache=False, evaluate=False),
        command=f"nextword export {run} --out {out}",
    )
    model = load(out)
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    metadata = json.dumps(props)
    for folder in (home, str(tmp_path)):
        assert folder not in metadata, folder
    provenance = model.info.provenance
    assert provenance.train_command == "nextword train corpus.csv --out=tiny --epochs 3"
    assert provenance.export_command == "nextword export run --out m.onnx"
    assert provenance.base.train_command == "nextword train base.csv --out base"
    assert provenance.base.run == "base" and provenance.base.corpus == "base.csv"
    config = json.loads(props["nextword.config"])
    assert config["train"]["command"] == provenance.train_command
    assert config["export"]["command"] == provenance.export_command
    assert config["train"]["base_corpus"] == ["base.csv"]
