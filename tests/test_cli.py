"""Every ``nextword`` subcommand, called in-process through ``main(argv)`` and once as a console script."""

import json
import shutil
import subprocess
import sys

import pytest

from helpers import run_python
from nextword.cli.main import main


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_generate_prints_prompt_and_continuation_reproducibly(capsys, model_path):
    code, first, _ = run_cli(capsys, "generate", "a neural network", "--model", model_path, "--seed", 1)
    assert code == 0 and first.startswith("a neural network ") and len(first.split()) > 4
    _, second, _ = run_cli(capsys, "generate", "a neural network", "--model", model_path, "--seed", 1)
    assert second == first
    _, greedy, _ = run_cli(
        capsys,
        "generate",
        "the system",
        "--model",
        model_path,
        "--temperature",
        0,
        "--max-words",
        3,
        "--top-k",
        2,
    )
    assert len(greedy.split()) <= 2 + 3


def test_generate_rejects_bad_options(capsys, model_path):
    code, _, err = run_cli(capsys, "generate", "x", "--model", model_path, "--temperature", "-1")
    assert code == 2 and "temperature must be a finite number >= 0" in err
    code, _, err = run_cli(capsys, "generate", "x", "--model", model_path.parent / "missing.onnx")
    assert code == 2 and "does not exist" in err
    with pytest.raises(SystemExit):
        main(["generate", "x", "--model", str(model_path), "--top-k", "many"])
    assert "invalid int value: 'many'" in capsys.readouterr().err


def test_info_shows_vocabulary_layers_metrics_parity_versions(capsys, model_path, model):
    code, out, _ = run_cli(capsys, "info", model_path)
    assert code == 0
    assert f"vocabulary     {model.vocab_size} words" in out
    assert "2 LSTM layer(s) of 32, 32 units" in out
    assert "best epoch" in out and "perplexity" in out
    assert "greedy identical" in out and "tf2onnx" in out
    code, out, _ = run_cli(capsys, "info", model_path, "--json")
    data = json.loads(out)
    assert (
        data["vocab_size"] == model.vocab_size and data["parity"]["passed"] and data["metrics"]["epoch"] >= 1
    )


def test_evaluate_table_json_and_splits(capsys, model_path, corpus_files):
    code, out, _ = run_cli(capsys, "evaluate", model_path, corpus_files["csv"])
    assert code == 0 and "perplexity" in out and "top-5 accuracy" in out
    _, out, _ = run_cli(capsys, "evaluate", model_path, corpus_files["text"], "--json", "--split", "val")
    val = json.loads(out)
    _, out, _ = run_cli(capsys, "evaluate", model_path, corpus_files["jsonl"], "--json", "--split", "train")
    train = json.loads(out)
    assert val["documents"] + train["documents"] == 80 and val["documents"] == 8
    assert val["perplexity"] > 1 and 0 <= val["accuracy"] <= val["top5_accuracy"] <= 1
    code, _, err = run_cli(capsys, "evaluate", model_path, corpus_files["csv"], "--text-column", "nope")
    assert code == 2 and "no column 'nope'" in err


@pytest.mark.slow
def test_train_export_resume_through_the_cli(capsys, corpus_files, tmp_path):
    run = tmp_path / "run"
    small = [
        "--lstm-units",
        8,
        "--embedding-dim",
        8,
        "--seq-len",
        8,
        "--batch-size",
        16,
        "--min-count",
        1,
        "--verbose",
        0,
    ]
    code, out, _ = run_cli(capsys, "train", corpus_files["text"], "--out", run, "--epochs", 1, *small)
    assert code == 0 and "1 epochs" in out and (run / "model.keras").is_file()
    code, _, err = run_cli(capsys, "train", corpus_files["text"], "--out", run, *small)
    assert code == 2 and "--resume" in err and "--overwrite" in err
    code, out, _ = run_cli(capsys, "train", "--resume", run, "--epochs", 2)
    assert code == 0 and "2 epochs" in out
    code, _, err = run_cli(capsys, "train", "--resume", run, "--lstm-units", 16)
    assert code == 2 and "cannot change --lstm-units" in err
    code, out, _ = run_cli(capsys, "export", run, "--out", tmp_path / "m.onnx")
    assert code == 0 and "LSTM" in out and "identical" in out and (tmp_path / "m.onnx").is_file()
    code, _, err = run_cli(capsys, "export", tmp_path / "nothing", "--out", tmp_path / "n.onnx")
    assert code == 2 and "does not exist" in err


def test_train_without_corpus_or_out_explains(capsys, corpus_files, tmp_path):
    code, _, err = run_cli(capsys, "train", "--out", tmp_path / "r")
    assert code == 2 and "no corpus files given" in err
    code, _, err = run_cli(capsys, "train", corpus_files["csv"])
    assert code == 2 and "--out RUN_DIR" in err
    code, _, err = run_cli(capsys, "train", corpus_files["csv"], "--out", tmp_path / "r", "--lstm-units", 0)
    assert code == 2 and "lstm_units must be a positive integer" in err


def test_train_and_export_without_tensorflow_say_what_to_install(corpus_files, tmp_path):
    code = "import sys; from nextword.cli.main import main; sys.exit(main(sys.argv[1:]))"
    for argv in (
        ["train", str(corpus_files["csv"]), "--out", str(tmp_path / "r")],
        ["export", str(tmp_path), "--out", str(tmp_path / "m.onnx")],
    ):
        result = run_python(code, *argv, block_training_stack=True)
        assert result.returncode == 2, result.stderr
        assert 'pip install "nextword[train]"' in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "r").exists()


def test_console_script_is_installed():
    exe = shutil.which("nextword") or str(__import__("pathlib").Path(sys.executable).parent / "nextword")
    result = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("nextword ")
