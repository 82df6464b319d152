"""Commands given too little to work on say what is missing in their usage's words and exit 2: evaluate
without corpus files, export without --out, and --trained-on with a model that does not record how its
corpus was split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import synthetic_documents, write_corpus
from nextword.cli.main import main
from nextword.runtime.default import BUNDLED_MODEL


def test_evaluate_without_corpus_files_says_how_to_give_them(capsys: pytest.CaptureFixture[str]) -> None:
    """`nextword evaluate MODEL` (no corpus) is a usage error naming the missing CORPUS, not an empty
    table."""
    assert main(["evaluate", str(BUNDLED_MODEL)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert (
        "nextword evaluate: error: no corpus files given: nextword evaluate MODEL.onnx CORPUS..."
        in captured.err
    )


def test_export_without_out_names_what_is_missing_before_tensorflow(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`nextword export RUN_DIR` without --out is a usage error naming --out, said before TensorFlow is
    imported (seconds for a mistake in the command line); nothing is written in the run folder."""
    import sys

    run = tmp_path / "run"
    run.mkdir()
    imported = "tensorflow" in sys.modules
    assert main(["export", str(run)]) == 2
    assert (
        "nextword export: error: --out not given: nextword export RUN_DIR --out MODEL.onnx"
        in capsys.readouterr().err
    )
    assert list(run.iterdir()) == []
    assert imported or "tensorflow" not in sys.modules
    assert main(["export", "", "--out", str(tmp_path / "m.onnx")]) == 2
    assert "error: the run folder not given: nextword export RUN_DIR" in capsys.readouterr().err


@pytest.fixture(scope="module")
def model_without_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled model with its provenance (and the older train section it could be derived from)
    taken out of nextword.config: a file that does not say how its corpus was split."""
    onnx = pytest.importorskip("onnx", reason="install nextword[train] to edit a model file")
    proto = onnx.load(str(BUNDLED_MODEL))
    for prop in proto.metadata_props:
        if prop.key == "nextword.config":
            config = json.loads(prop.value)
            config.pop("provenance", None)
            config.pop("train", None)
            prop.value = json.dumps(config)
    path = tmp_path_factory.mktemp("models") / "no-split.onnx"
    onnx.save(proto, str(path))
    return path


def test_trained_on_with_a_model_that_records_no_split_is_refused(
    model_without_split: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--trained-on needs the model's split to tell trained from held-out documents: a file without it
    is refused naming the file, while evaluating the same corpus without the option works."""
    corpus = write_corpus(tmp_path / "corpus", synthetic_documents(6, seed=1))["text"]
    code = main(["evaluate", str(model_without_split), str(corpus), "--trained-on", str(corpus)])
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert captured.out == ""
    assert (
        f"{model_without_split} does not record how its corpus was split, so --trained-on cannot tell the "
        "documents it trained on from those it held out"
    ) in captured.err
    assert main(["evaluate", str(model_without_split), str(corpus), "--split", "all"]) == 0
    assert "perplexity" in capsys.readouterr().out
