"""What training says about a run folder it stopped in or will not start in: ``--resume`` only where a
checkpoint has epochs left to train, ``--overwrite`` where nothing can be resumed, "finished" for a
run that has trained its epochs; and a folder this process made and filled up to a failure before
its first checkpoint (a full disk, any error) is removed, so the same command runs again."""

from __future__ import annotations

import errno
import json
import shutil

import pytest

pytest.importorskip("tensorflow", reason="tensorflow missing: install nextword[train]")

from nextword.cli.main import main
from nextword.train import RunExistsError, train
from nextword.train.files import RUN_MARKER

pytestmark = pytest.mark.slow

SMALL = ["--lstm-units", "8", "--embedding-dim", "8", "--seq-len", "8", "--min-count", "1", "--verbose", "0"]


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("existed", [False, True])
def test_a_run_that_fails_before_its_first_checkpoint_leaves_nothing_and_runs_again(
    capsys, corpus_files, tmp_path, monkeypatch, existed
):
    """A full disk while the corpus was encoded left the marker and tokenizer.json: the folder was
    then refused by the next run, whose message advised --resume, which refused it in turn."""
    from nextword.train import trainer

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run" / "train.ids"))

    run = tmp_path / "run"
    if existed:  # an empty folder of the user's: it stays, empty
        run.mkdir()
    monkeypatch.setattr(trainer, "encode_corpus", full_disk)
    argv = ["train", corpus_files["text"], "--out", run, "--epochs", "1", *SMALL]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and "No space left on device" in err, err
    assert err.strip().endswith("nothing was kept: start the run again") and "--resume" not in err
    assert run.is_dir() == existed and (not existed or not any(run.iterdir()))
    monkeypatch.undo()
    code, out, err = run_cli(capsys, *argv)
    assert code == 0, err
    assert f"run {run}: 1 epoch, best epoch 1" in out


def test_a_folder_without_a_checkpoint_is_advised_overwrite_not_resume(tiny_config, tmp_path):
    run = tmp_path / "run"  # as an earlier nextword left a failed preparation
    run.mkdir()
    (run / RUN_MARKER).write_text('{"nextword_run": 1}')
    (run / "tokenizer.json").write_text("{}")
    from dataclasses import replace

    with pytest.raises(RunExistsError) as refused:
        train(replace(tiny_config, out=str(run)))
    message = str(refused.value)
    assert "holds no checkpoint" in message and "nothing to resume" in message
    assert "overwrite=True" in message and "resume(" not in message


def test_a_finished_run_is_said_finished_and_an_unfinished_one_resumable(run_dir, tiny_config, tmp_path):
    from dataclasses import replace

    finished = tmp_path / "finished"
    shutil.copytree(run_dir, finished)
    with pytest.raises(RunExistsError) as refused:
        train(replace(tiny_config, out=str(finished)))
    message = str(refused.value)
    assert f"run folder {finished} holds a finished run (" in message
    assert "nextword.export.export(ExportConfig(" in message and "overwrite=True" in message
    assert f"nextword.train.resume({str(finished)!r})" not in message  # only with more epochs

    unfinished = tmp_path / "unfinished"
    shutil.copytree(run_dir, unfinished)
    metrics = json.loads((unfinished / "metrics.json").read_text())
    metrics["epochs_planned"], metrics["stopped_early"] = len(metrics["epochs"]) + 5, False
    (unfinished / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(RunExistsError) as refused:
        train(replace(tiny_config, out=str(unfinished)))
    message = str(refused.value)
    assert "holds an unfinished run" in message
    # it plans more epochs than config.json keeps (a session resumed with more): resume() alone would
    # train to those and stop, so the advice names the total
    planned = metrics["epochs_planned"]
    assert f"nextword.train.resume({str(unfinished)!r}, epochs={planned})" in message


def _files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_an_overwrite_that_stops_before_its_first_checkpoint_gives_the_old_run_back(
    run_dir, tiny_config, tmp_path, monkeypatch
):
    """--overwrite deleted the previous run before the new one had a checkpoint: Ctrl-C in its first
    epoch left neither. The previous run now waits beside the folder and comes back."""
    from dataclasses import replace

    from nextword.train import recorder

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    before = _files(run)

    def interrupted(self, model):
        raise KeyboardInterrupt  # Ctrl-C as the first checkpoint is about to be written

    monkeypatch.setattr(recorder.RunRecorder, "checkpoint", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(replace(tiny_config, out=str(run), overwrite=True, epochs=1))
    assert _files(run) == before  # byte for byte, the marker too
    assert not (tmp_path / ".run.replaced").exists()
    monkeypatch.undo()

    # run to its end: the replaced run is gone, from the folder and from beside it
    train(replace(tiny_config, out=str(run), overwrite=True, epochs=1, seed=tiny_config.seed + 1))
    assert _files(run) != before and (run / "checkpoint.keras").is_file()
    assert not (tmp_path / ".run.replaced").exists()


def test_a_run_an_interrupted_overwrite_left_aside_is_never_deleted_unasked(run_dir, tiny_config, tmp_path):
    from dataclasses import replace

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    aside = tmp_path / ".run.replaced"  # what a kill -9 during an overwrite's first epoch leaves
    shutil.copytree(run_dir, aside)
    kept = _files(aside)
    # killed once the new run had its checkpoint, as it deleted the old: the advice is to delete it (to
    # move it back would replace the newer run)
    with pytest.raises(RunExistsError, match=r"which the run there \(it has a checkpoint\) no longer needs"):
        train(replace(tiny_config, out=str(run), overwrite=True, epochs=1))
    (run / "checkpoint.keras").unlink()  # killed before the new run's first checkpoint
    with pytest.raises(RunExistsError, match=r"\.run\.replaced holds the run that an interrupted overwrite"):
        train(replace(tiny_config, out=str(run), overwrite=True, epochs=1))
    assert _files(aside) == kept and _files(run) == {
        k: v for k, v in _files(run_dir).items() if k != "checkpoint.keras"
    }
    # the folder emptied (its run could not be put back: a disk turned read-only, then mended): a new run
    # there finished without a word, and the old run stayed aside for good
    shutil.rmtree(run)
    for overwrite in (False, True):
        with pytest.raises(RunExistsError, match=r"\.run\.replaced holds the run that an interrupted"):
            train(replace(tiny_config, out=str(run), overwrite=overwrite, epochs=1))
    assert _files(aside) == kept and not run.exists()
