"""Training refuses bad input early and clearly: the seed's range, damaged word-vector files, run
folders whose id files or checkpoint are damaged, and --resume of a path that is not a run."""

import json
import logging
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="tensorflow missing: install nextword[train]")

from nextword.runtime import Tokenizer, TokenizerConfig
from nextword.train import TrainConfig, resume, train
from nextword.train.embeddings import EmbeddingsError, load_glove
from nextword.train.files import NotARunError

pytestmark = pytest.mark.slow


def _copy(run_dir: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(run_dir, out)
    return out


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# --------------------------------------------------------------------------- the seed


@pytest.mark.parametrize("seed", [-1, 2**32, 2**40, True, 1.5])
def test_a_seed_outside_numpys_range_is_refused_by_the_config(seed):
    with pytest.raises(ValueError, match=r"^seed must be in 0\.\.4294967295, got "):
        TrainConfig(seed=seed)


def test_the_seeds_whole_range_is_accepted():
    assert TrainConfig(seed=0).seed == 0 and TrainConfig(seed=2**32 - 1).seed == 2**32 - 1


@pytest.mark.parametrize("verbose", [-1, 3, 7, True, 1.0])
def test_a_verbosity_keras_does_not_know_is_refused(verbose):
    """Keras took 7 without a word and showed one line per epoch, as for 2."""
    with pytest.raises(
        ValueError, match=r"^verbose must be 0 \(silent\), 1 \(progress bar\) or 2 \(one line\), got "
    ):
        TrainConfig(verbose=verbose)
    assert [TrainConfig(verbose=v).verbose for v in (0, 1, 2)] == [0, 1, 2]


# --------------------------------------------------------------------------- word-vector files


@pytest.fixture(scope="module")
def small_tokenizer() -> Tokenizer:
    return Tokenizer.from_counts({"the": 5, "network": 3, "weights": 2}, TokenizerConfig(min_count=1))


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        ("the nan inf 0.3", "nan"),
        ("the 0.1 1e999 0.3", "inf"),
        ("the 0.1 -inf 0.3", "-inf"),
        ("the 0.1 1e39 0.3", "inf"),  # finite as a float64, too large for float32
    ],
)
def test_vectors_that_are_not_finite_are_refused_naming_the_file_and_line(
    tmp_path, small_tokenizer, line, shown
):
    glove = tmp_path / "glove.txt"
    glove.write_text(f"network 0.1 0.2 0.3\n{line}\n")
    with pytest.raises(EmbeddingsError) as caught:
        load_glove(glove, small_tokenizer, 3)
    message = str(caught.value)
    assert message.startswith(f"{glove}, line 2: ") and "'the'" in message
    assert f"holds {shown}" in message and "finite" in message


def test_a_ragged_file_is_called_damaged_not_of_another_dimension(tmp_path, small_tokenizer):
    glove = tmp_path / "glove.txt"
    glove.write_text("the 0.1 0.2 0.3\nnetwork 0.1 0.2\n")
    for dim in (3, 16):  # whether or not the first line fits the model
        with pytest.raises(EmbeddingsError) as caught:
            load_glove(glove, small_tokenizer, dim)
        message = str(caught.value)
        assert "line 1 has 3 values, line 2 has 2" in message, message
        assert "damaged or not a word-vector text file" in message
        assert "--embedding-dim" not in message


def test_a_file_of_another_dimension_still_gets_the_embedding_dim_advice(tmp_path, small_tokenizer):
    glove = tmp_path / "glove.txt"
    glove.write_text("400 2\nthe 0.1 0.2\nnetwork 0.1 0.2\n")  # a word2vec-style header first
    with pytest.raises(EmbeddingsError, match=r"line 2: vectors have 2 dimensions .*embedding_dim=2$"):
        load_glove(glove, small_tokenizer, 3)
    matrix, missing = load_glove(glove, small_tokenizer, 2)
    assert matrix.shape == (len(small_tokenizer), 2) and missing == 1


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (b"\x08\x07\x12\x07tf2onnx\x1a\x051.16.1\x00\x00 graph \x01\x02" * 20, "binary"),
        (b"\x1f\x8b\x08\x00" + bytes(range(256)), "gzip"),
        (b"PK\x03\x04\x14\x00\x00\x00" + bytes(range(256)), "ZIP archive"),
    ],
)
def test_a_binary_file_is_refused_as_not_a_text_word_vector_file(tmp_path, small_tokenizer, data, said):
    path = tmp_path / "model.onnx"
    path.write_bytes(data)
    with pytest.raises(EmbeddingsError) as caught:
        load_glove(path, small_tokenizer, 3)
    message = str(caught.value)
    assert message.startswith(f"{path} is not a text word-vector file") and said in message, message
    assert f"{path}, line" not in message  # the file as a whole, not one of its "lines"


def test_bad_vectors_fail_training_before_any_file_is_written(tmp_path, tiny_config):
    glove = tmp_path / "glove.txt"
    glove.write_text("the " + " ".join(["nan"] * 16) + "\n")
    out = tmp_path / "runs" / "run"
    with pytest.raises(EmbeddingsError, match="line 1: the vector of 'the' holds nan"):
        train(replace(tiny_config, out=str(out), embeddings=str(glove)))
    assert not (tmp_path / "runs").exists()


# --------------------------------------------------------------------------- the run's id files


def _cut_after_documents(path: Path, documents: int) -> int:
    """Keep the first ``documents`` documents of an id file (a valid, shorter stream); its new words."""
    ids = np.fromfile(path, dtype=np.int32)
    eods = np.flatnonzero(ids == ids[0])
    ids[: eods[documents] + 1].tofile(path)
    return int(eods[documents])


@pytest.mark.parametrize("name", ["train.ids", "val.ids", "dev.ids"])
def test_resume_refuses_an_id_file_shorter_than_the_run_recorded(run_dir, tmp_path, name):
    run = _copy(run_dir, tmp_path)
    recorded = json.loads((run / "config.json").read_text())["data"][name.replace(".ids", "_words")]
    words = _cut_after_documents(run / name, 1)
    before = _contents(run)
    with pytest.raises(ValueError) as caught:
        resume(run, epochs=13)
    message = str(caught.value)
    assert message.startswith(f"{run / name} holds {words} words, but the run recorded {recorded}"), message
    assert f"delete {run / name}" in message and f"nextword.train.resume({str(run)!r})" in message
    assert _contents(run) == before  # nothing written, nothing trained


def test_an_id_file_deleted_as_the_refusal_says_is_written_again(run_dir, tmp_path):
    run = _copy(run_dir, tmp_path)
    original = {name: (run / name).read_bytes() for name in ("train.ids", "val.ids", "dev.ids")}
    _cut_after_documents(run / "train.ids", 2)
    with pytest.raises(ValueError, match="delete"):
        resume(run, epochs=13)
    (run / "train.ids").unlink()
    assert resume(run, epochs=13).epochs == 13
    assert {name: (run / name).read_bytes() for name in original} == original


def test_id_files_encoded_again_record_their_counts(tmp_path, tiny_config):
    """A run encoded again records what its new files hold, so the next resume checks them against
    that. (A corpus that changed is refused: tests/test_train.py.)"""
    corpus = tmp_path / "corpus.csv"
    shutil.copy(tiny_config.corpus.paths[0], corpus)
    out = tmp_path / "run"
    config = replace(
        tiny_config, out=str(out), epochs=1, corpus=replace(tiny_config.corpus, paths=(str(corpus),))
    )
    train(config)
    stored = json.loads((out / "config.json").read_text())
    stored["data"] = {k: v for k, v in stored["data"].items() if not k.startswith("dev_")}
    (out / "config.json").write_text(json.dumps(stored))  # as a run from before development parts
    for name in ("train.ids", "val.ids", "dev.ids"):
        (out / name).unlink()
    assert resume(out, epochs=2).epochs == 2
    data = json.loads((out / "config.json").read_text())["data"]
    for name in ("train", "val", "dev"):
        assert (out / f"{name}.ids").stat().st_size == 4 * (data[f"{name}_words"] + 1)
    assert resume(out, epochs=3).epochs == 3


# --------------------------------------------------------------------------- --resume of a path


def test_resume_of_a_missing_folder(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"does not exist; give the run folder that training wrote \(its `out`\)"
    ):
        resume(tmp_path / "nope")
    assert not (tmp_path / "nope").exists()


def test_resume_of_a_file(tmp_path):
    path = tmp_path / "afile"
    path.write_text("notes")
    with pytest.raises(NotADirectoryError, match=r"is a file, not a run folder; give the run folder"):
        resume(path)
    assert path.read_text() == "notes"


@pytest.mark.parametrize("contents", [{}, {"notes.txt": "precious"}])
def test_resume_of_a_folder_that_is_not_a_run(tmp_path, contents):
    folder = tmp_path / "unrelated"
    folder.mkdir()
    for name, text in contents.items():
        (folder / name).write_text(text)
    with pytest.raises(NotARunError, match=r"is not a nextword run folder \(no \.nextword-run marker\)"):
        resume(folder)
    assert sorted(p.name for p in folder.iterdir()) == sorted(contents)


def test_resume_of_a_run_that_stopped_before_its_first_checkpoint(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / ".nextword-run").write_text('{"nextword_run": 1}\n')
    with pytest.raises(FileNotFoundError, match=r"no checkpoint\.keras to resume from .*overwrite=True"):
        resume(folder)


# --------------------------------------------------------------------------- a damaged checkpoint


@pytest.mark.parametrize("size", [0, 2000, -100])
def test_resume_refuses_a_truncated_checkpoint_before_writing_anything(run_dir, tmp_path, size):
    run = _copy(run_dir, tmp_path)
    data = (run / "checkpoint.keras").read_bytes()
    (run / "checkpoint.keras").write_bytes(data[:size])
    (run / "train.ids").unlink()  # would be encoded again: not before the checkpoint is known good
    before = _contents(run)
    with pytest.raises(ValueError) as caught:
        resume(run, epochs=13)
    message = str(caught.value)
    assert message.startswith(f"{run / 'checkpoint.keras'} is damaged (not a readable .keras zip file"), (
        message
    )
    assert "overwrite=True" in message and "restore" in message
    assert _contents(run) == before


# --------------------------------------------------------------------------- progress display


def test_the_progress_bar_is_one_line_per_epoch_where_output_is_not_a_terminal(tmp_path, tiny_config, capfd):
    """Redrawn in a log file, Keras's bar was one line of escape codes as long as the epoch."""
    train(replace(tiny_config, out=str(tmp_path / "run"), epochs=2, verbose=1))
    out = capfd.readouterr().out
    assert "\x1b" not in out and "\r" not in out and "━" not in out
    steps = [line for line in out.splitlines() if " - loss: " in line]
    assert len(steps) == 2, out  # one line per epoch, as --verbose 2 gives


# --------------------------------------------------------------------------- files an interruption left


def test_a_save_cut_off_at_an_epochs_end_is_refused_by_export_and_mended_by_resume(
    tmp_path, tiny_config, monkeypatch
):
    """Killed after an epoch's metrics were written but before its checkpoint and best model: the
    exported file named epoch 2 as its best while holding epoch 1's weights."""
    from nextword.export import ExportConfig, export
    from nextword.train.recorder import RunRecorder

    out, saves, save = tmp_path / "run", [], RunRecorder.checkpoint

    def cut_off(self, model):
        saves.append(model)
        if len(saves) == 2:  # the end of epoch 2
            raise KeyboardInterrupt
        save(self, model)

    monkeypatch.setattr(RunRecorder, "checkpoint", cut_off)
    with pytest.raises(KeyboardInterrupt):
        train(replace(tiny_config, out=str(out), epochs=2, checkpoint_steps=0))
    monkeypatch.undo()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["saving_epoch"] == 2 and [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    with pytest.raises(
        ValueError,
        match=rf"^{out} was cut off while it saved epoch 2: .* `nextword\.train\.resume\('{out}'\)`",
    ):
        export(ExportConfig(run_dir=str(out), out=str(tmp_path / "m.onnx")))
    assert not (tmp_path / "m.onnx").exists()
    assert resume(out).epochs == 2  # epoch 2 trained again
    metrics = json.loads((out / "metrics.json").read_text())
    assert "saving_epoch" not in metrics and [e["epoch"] for e in metrics["epochs"]] == [1, 2]


@pytest.mark.parametrize(
    ("name", "content", "said"),
    [
        ("config.json", "[]", "does not hold a nextword run config"),
        ("config.json", '{"corpus": {"paths": []}}', "does not hold a nextword run config"),
        ("metrics.json", "[]", "does not hold a run's metrics"),
        ("metrics.json", '{"epochs": [{"epoch": 1, "loss": 2.0}]}', "epoch entry 0 is damaged"),
        ("metrics.json", '{"epochs": [{"epoch": 1, "val_loss": "low"}]}', "epoch entry 0 is damaged"),
        ("tokenizer.json", "{}", "tokenizer.json: "),
    ],
)
def test_resume_names_a_damaged_run_file(run_dir, tmp_path, name, content, said):
    """These gave an AttributeError or a KeyError from deep inside, or (config.json without its model
    settings) a Keras shape error after the run was rebuilt with default settings."""
    run = _copy(run_dir, tmp_path)
    (run / name).write_text(content)
    before = _contents(run)
    with pytest.raises(ValueError) as caught:
        resume(run, epochs=13)
    assert str(run / name) in str(caught.value) and said in str(caught.value), caught.value
    assert _contents(run) == before


def test_resume_without_a_checkpoint_keeps_the_best_model_out_of_harms_way(run_dir, tmp_path):
    """The advice was "start it again with --overwrite", which deletes the run's trained model."""
    run = _copy(run_dir, tmp_path)
    (run / "checkpoint.keras").unlink()
    with pytest.raises(FileNotFoundError) as caught:
        resume(run, epochs=13)
    message = str(caught.value)
    assert (
        f"export that with `nextword.export.export(ExportConfig({str(run)!r}, out='MODEL.onnx'))`" in message
    )
    assert "overwrite=True here would delete model.keras" in message


def test_export_of_a_run_that_is_training_says_so(run_dir, tmp_path, caplog):
    from nextword.export import ExportConfig, export
    from nextword.train.files import RunDir

    run = RunDir(_copy(run_dir, tmp_path))
    assert not run.busy()
    with run.in_use():  # as a training process holds it
        assert run.busy()
        export(ExportConfig(run_dir=str(run.root), out=str(tmp_path / "m.onnx")))
    assert not run.busy()
    best = json.loads(run.metrics.read_text())["best"]["epoch"]
    assert (
        f"being trained by another process: this exports its best model so far (epoch {best})" in caplog.text
    )


def test_resume_says_when_it_trains_nothing_or_past_the_learning_rate_schedule(tmp_path, tiny_config, caplog):
    out = tmp_path / "run"
    train(replace(tiny_config, out=str(out), epochs=1, patience=0))
    assert resume(out).epochs == 1
    assert "the run has finished its 1 epoch: nothing to train; resume with `epochs` above 1" in caplog.text
    caplog.clear()
    assert resume(out, epochs=2).epochs == 2
    assert (
        "decays over the run's first plan, 1 epoch: epochs past them train at its final rate" in caplog.text
    )
    assert "nothing to train" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="nextword.train"):
        assert resume(out, epochs=1).epochs == 2  # fewer than it has: not "after epoch 2 of 1"
    assert "the run has finished its 2 epochs: nothing to train" in caplog.text
    assert "after epoch 2\n" in caplog.text and "of 1" not in caplog.text, caplog.text


def test_a_resume_that_trains_nothing_leaves_the_best_model_as_it_was(tmp_path, tiny_config):
    """It wrote model.keras again, in this release's layout: a run that 0.2.0 trained could then no
    longer be exported by 0.2.0 ("expected 0 variables, but received 1 ... Re-run training"). It is
    written again only where it may hold an earlier epoch than the checkpoint: a save cut short (the
    saving mark, 0.2.0 on), or in a run from before the mark, a best model older than the checkpoint
    (written after it)."""
    out = tmp_path / "run"
    train(replace(tiny_config, out=str(out), epochs=1, patience=0))
    best, checkpoint = out / "model.keras", out / "checkpoint.keras"
    before = best.stat().st_mtime_ns, best.read_bytes()
    assert resume(out).epochs == 1
    assert (best.stat().st_mtime_ns, best.read_bytes()) == before
    older = checkpoint.stat().st_mtime_ns - 10**9
    os.utime(best, ns=(older, older))  # as a copy that kept no times may leave it (cp -r, scp -r)
    assert resume(out).epochs == 1
    assert best.stat().st_mtime_ns == older  # this release marks a save cut short: no mark, no rewrite
    stored = json.loads((out / "config.json").read_text())
    stored["versions"]["nextword"] = "0.1.0"  # some of whose commits wrote no mark
    (out / "config.json").write_text(json.dumps(stored))
    assert resume(out).epochs == 1
    assert best.stat().st_mtime_ns > checkpoint.stat().st_mtime_ns


def test_resume_of_a_run_whose_epochs_were_planned_says_the_same(tmp_path, tiny_config, caplog, monkeypatch):
    """A run trained without `epochs` records none: resuming it warned of nothing, neither that it had
    finished its planned epochs nor that more train past its learning-rate schedule."""
    from nextword.train import config as train_config

    monkeypatch.setattr(train_config, "AUTO_EPOCHS", (1, 1))  # the corpus's size plans one epoch
    out = tmp_path / "run"
    train(replace(tiny_config, out=str(out), epochs=None, patience=0))
    assert json.loads((out / "config.json").read_text())["epochs"] is None
    caplog.clear()
    resume(out)
    assert "the run has finished its 1 epoch: nothing to train" in caplog.text
    caplog.clear()
    assert resume(out, epochs=2).epochs == 2
    assert "decays over the run's first plan, 1 epoch" in caplog.text


def test_a_folder_given_as_the_embeddings_file_is_called_a_folder(tmp_path, small_tokenizer):
    with pytest.raises(EmbeddingsError, match=r"embeddings file .* is a folder; give the vectors' text file"):
        load_glove(tmp_path, small_tokenizer, 3)
    with pytest.raises(EmbeddingsError, match=r"embeddings file .*gone\.txt does not exist"):
        load_glove(tmp_path / "gone.txt", small_tokenizer, 3)


def test_a_run_whose_tokenizer_is_gone_is_not_advised_to_resume(run_dir, tmp_path):
    """Resuming needs the vocabulary as much as exporting does: both name the lost file and the fix, and
    resuming writes nothing first (the advice was to resume, which then failed on a bare missing file)."""
    from nextword.export import ExportConfig, export

    run = _copy(run_dir, tmp_path)
    (run / "tokenizer.json").unlink()
    before = sorted(p.name for p in run.iterdir())
    with pytest.raises(FileNotFoundError) as exported:
        export(ExportConfig(run_dir=str(run), out=str(tmp_path / "m.onnx")))
    with pytest.raises(FileNotFoundError) as resumed:
        resume(run, epochs=13)
    for caught in (exported, resumed):
        message = str(caught.value)
        assert "tokenizer.json" in message and "restore tokenizer.json from a copy" in message, message
        assert "resume" not in message
    assert sorted(p.name for p in run.iterdir()) == before
    assert not (tmp_path / "m.onnx").exists()
