"""Run folders as users meet them after a crash or an early stop: export names a truncated JSON file
or malformed sample prompts, fine-tuning refuses a base cut off mid-save, a new run into a file or into
a run that stopped early says what to do, and resuming such a run warns that it trains nothing unless
its patience is raised."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture
def run_copy(run_dir: Path, tmp_path: Path) -> Path:
    """A copy of the session's tiny trained run, free to damage."""
    out = tmp_path / "run"
    shutil.copytree(run_dir, out)
    return out


def _edit_json(path: Path, **changes: object) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(changes)
    path.write_text(json.dumps(data), encoding="utf-8")


@pytest.mark.parametrize("name", ["config.json", "metrics.json", "samples.json"])
def test_export_names_a_run_file_cut_off_mid_write(run_copy: Path, tmp_path: Path, name: str) -> None:
    """A run file truncated in the middle (a full disk, a copy cut short) is a ValueError naming it as
    not valid JSON; no model file is written."""
    from nextword.export import ExportConfig, export

    path = run_copy / name
    path.write_bytes(path.read_bytes()[:40])
    out = tmp_path / "m.onnx"
    with pytest.raises(ValueError) as refused:
        export(ExportConfig(run_dir=str(run_copy), out=str(out)))
    assert str(refused.value).startswith(f"{path} is not valid JSON: "), refused.value
    assert not out.exists()


@pytest.mark.parametrize("prompts", [[1, 2], "the network", [["nested"]]])
def test_export_refuses_sample_prompts_that_are_not_strings(run_copy: Path, tmp_path: Path, prompts) -> None:
    """samples.json's prompts must be a list of strings: anything else names the file and the fix."""
    from nextword.export import ExportConfig, export

    _edit_json(run_copy / "samples.json", prompts=prompts)
    out = tmp_path / "m.onnx"
    with pytest.raises(
        ValueError, match=r"samples\.json: 'prompts' must be a list of strings; re-run training"
    ):
        export(ExportConfig(run_dir=str(run_copy), out=str(out)))
    assert not out.exists()


def test_fine_tuning_from_a_run_cut_off_while_saving_is_refused(
    run_copy: Path, tmp_path: Path, tiny_config
) -> None:
    """init_from a run whose metrics say it was saving an epoch when it stopped: its best model may be
    older than its metrics, so fine-tuning is refused with the resume() call that mends it; nothing is
    written."""
    from nextword.train import train

    _edit_json(run_copy / "metrics.json", saving_epoch=3)
    out = tmp_path / "tuned"
    config = replace(tiny_config, out=str(out), init_from=str(run_copy), epochs=1)
    with pytest.raises(ValueError, match=r"init_from: .* was cut off while it saved epoch 3") as refused:
        train(config)
    assert f"nextword.train.resume('{run_copy.resolve()}')" in str(refused.value)
    assert not out.exists()


@pytest.mark.train
def test_a_run_into_a_file_is_refused(tmp_path: Path, tiny_config) -> None:
    """out naming an existing file (not a folder) is a RunExistsError; the file is left as it was."""
    from nextword.train import RunExistsError, train

    taken = tmp_path / "notes.txt"
    taken.write_text("keep me", encoding="utf-8")
    with pytest.raises(RunExistsError, match=r"notes\.txt exists and is not a folder; choose another `out`"):
        train(replace(tiny_config, out=str(taken)))
    assert taken.read_text(encoding="utf-8") == "keep me"


def test_a_new_run_into_a_run_that_stopped_early_says_it_finished(run_copy: Path, tiny_config) -> None:
    """Training again into a run folder whose run stopped early is refused, saying the run finished
    (stopped early after its epochs) and how to export it or train it further."""
    from nextword.train import RunExistsError, train

    metrics = json.loads((run_copy / "metrics.json").read_text(encoding="utf-8"))
    done = len(metrics["epochs"])
    _edit_json(run_copy / "metrics.json", stopped_early=True)
    with pytest.raises(RunExistsError) as refused:
        train(replace(tiny_config, out=str(run_copy)))
    message = str(refused.value)
    assert f"holds a finished run (stopped early after {done} epochs)" in message
    assert f"epochs={done + 1}" in message and "overwrite=True" in message


@pytest.mark.train
def test_resuming_a_run_whose_patience_ran_out_warns_it_stops_again(caplog: pytest.LogCaptureFixture) -> None:
    """A resumed run whose development loss has not improved for `patience` epochs trains nothing (more
    epochs or not): the warning says so, and what patience trains on. It said the run would stop after
    the next epoch unless that improved, and the run trained none."""
    from nextword.train import TrainConfig
    from nextword.train.resumable import say_what_resuming_does

    history = [
        {"epoch": 1, "val_loss": 3.0, "dev_loss": 3.0},
        {"epoch": 2, "val_loss": 3.1, "dev_loss": 3.1},
        {"epoch": 3, "val_loss": 3.2, "dev_loss": 3.2},
    ]
    with caplog.at_level(logging.WARNING, logger="nextword.train.resumable"):
        say_what_resuming_does(TrainConfig(patience=2, epochs=10), 10, history)
    messages = [r.getMessage() for r in caplog.records]
    assert any(
        m.startswith("the run stopped early (no better development loss for 2 epochs): nothing to train")
        and "(above 2), or patience=0" in m
        for m in messages
    ), messages
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="nextword.train.resumable"):
        say_what_resuming_does(TrainConfig(patience=3, epochs=10), 10, history)
    assert not caplog.records


def test_resume_refuses_to_encode_again_a_corpus_whose_text_changed_with_its_counts(
    run_copy: Path, tmp_path: Path
) -> None:
    """The same size, the same documents, one letter changed: only the digest of the documents' text,
    which config.json records, tells it from the corpus the run started with."""
    from nextword.train import resume

    stored = json.loads((run_copy / "config.json").read_text(encoding="utf-8"))
    text = Path(stored["corpus"]["paths"][0]).read_bytes()
    at = text.index(b"e", text.index(b"\n") + 1)  # a letter of the first document
    corpus = tmp_path / "corpus.csv"
    corpus.write_bytes(text[:at] + b"a" + text[at + 1 :])
    stored["corpus"]["paths"] = [str(corpus)]
    (run_copy / "config.json").write_text(json.dumps(stored), encoding="utf-8")
    (run_copy / "train.ids").unlink()
    before = {p.name: p.read_bytes() for p in run_copy.iterdir() if p.is_file()}
    with pytest.raises(ValueError, match=r"holds as many documents as when .* but their text differs"):
        resume(str(run_copy), epochs=13)
    assert {p.name: p.read_bytes() for p in run_copy.iterdir() if p.is_file()} == before


def test_resume_refuses_to_encode_again_a_corpus_that_now_holds_other_documents(
    run_copy: Path, tmp_path: Path
) -> None:
    """A run missing train.ids whose corpus file, the same size, now holds one more document (a row
    split in two) is refused before anything is written: its split, and so its figures, would change."""
    from nextword.train import resume

    stored = json.loads((run_copy / "config.json").read_text(encoding="utf-8"))
    text = Path(stored["corpus"]["paths"][0]).read_bytes()
    cut = text.index(b". T", text.index(b"\n") + 1)  # inside a row's text: ". The ..." -> ".", then ",he ..."
    edited = text[:cut] + b".\n," + text[cut + 3 :]
    assert len(edited) == len(text)
    corpus = tmp_path / "corpus.csv"
    corpus.write_bytes(edited)
    stored["corpus"]["paths"] = [str(corpus)]
    (run_copy / "config.json").write_text(json.dumps(stored), encoding="utf-8")
    (run_copy / "train.ids").unlink()
    before = {p.name: p.read_bytes() for p in run_copy.iterdir() if p.is_file()}
    documents = stored["data"]["documents"]
    with pytest.raises(ValueError) as refused:
        resume(str(run_copy), epochs=13)
    message = str(refused.value)
    assert f"now holds {documents + 1} documents, {documents} when {run_copy} started" in message
    assert "restore the corpus files the run started with" in message
    assert {p.name: p.read_bytes() for p in run_copy.iterdir() if p.is_file()} == before
