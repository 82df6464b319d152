"""``overwrite=True`` when the files of the run it replaces cannot move, or when Ctrl-C comes while they
move: the old run used to be deleted outright where it could not be set aside (a run folder given as
``.``, a mount point, a parent folder the user cannot write), and a Ctrl-C in the middle of moving it
aside or back left it split between the run folder and ``.RUN.replaced``, with advice to start again."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import signal
from dataclasses import replace

import pytest

pytest.importorskip("tensorflow", reason="install nextword[train] to train")

from nextword.train import RunExistsError, train

pytestmark = pytest.mark.slow


def _files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


@pytest.fixture
def old_run(run_dir, tmp_path):
    """A copy of a finished run, to be replaced."""
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    return run


@pytest.fixture
def ctrl_c_raises():
    """SIGINT as Python's default (KeyboardInterrupt), whatever the test runner set."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_a_run_that_cannot_be_set_aside_is_kept_not_deleted(old_run, tiny_config, monkeypatch):
    """A move the file system refuses (EXDEV: the folder is a mount point) deleted the old run, before
    the new one had read its corpus."""
    before = _files(old_run)
    real = os.rename

    def refuse(src, dst):
        if ".replaced" in str(dst):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real(src, dst)

    monkeypatch.setattr(os, "rename", refuse)
    with pytest.raises(RunExistsError, match=r"cannot be moved there \(Invalid cross-device link\); nothing"):
        train(replace(tiny_config, out=str(old_run), overwrite=True, epochs=1))
    assert _files(old_run) == before
    assert not (old_run.parent / ".run.replaced").exists()


def test_a_run_folder_given_as_dot_is_set_aside_beside_it(old_run, tiny_config, monkeypatch):
    """``--out .`` put the aside inside the run folder itself (``./..replaced``): the move failed, and
    the old run was deleted."""
    from nextword.train import trainer

    before = _files(old_run)
    monkeypatch.chdir(old_run)
    monkeypatch.setattr(trainer, "encode_corpus", _interrupt)  # after the old run is set aside
    with pytest.raises(KeyboardInterrupt):
        train(replace(tiny_config, out=".", overwrite=True, epochs=1))
    assert _files(old_run) == before  # put back
    assert not (old_run.parent / ".run.replaced").exists() and not (old_run / "..replaced").exists()


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize("moving", ["aside", "back"])
def test_ctrl_c_while_the_old_run_moves_leaves_it_whole(
    old_run, tiny_config, monkeypatch, ctrl_c_raises, moving
):
    """The Ctrl-C comes after the first file moved (aside: the new run starts; back: a first Ctrl-C
    stopped it). It waits until the run's files have all moved, and then the old run is back whole."""
    from nextword.train import trainer

    before = _files(old_run)
    real, moved = os.rename, []

    def rename(src, dst):
        real(src, dst)
        moved.append(".replaced" in str(src))  # whether it moved back
        if (moved == [False]) if moving == "aside" else (moved[-1] and moved.count(True) == 1):
            os.kill(os.getpid(), signal.SIGINT)  # one file of the move has moved, the others have not

    monkeypatch.setattr(os, "rename", rename)
    if moving == "back":
        monkeypatch.setattr(trainer, "encode_corpus", _interrupt)  # the first Ctrl-C
    with pytest.raises(KeyboardInterrupt):
        train(replace(tiny_config, out=str(old_run), overwrite=True, epochs=1))
    assert _files(old_run) == before
    assert not (old_run.parent / ".run.replaced").exists()


def test_the_checkpoint_moves_aside_first_and_back_last(old_run, tiny_config, monkeypatch):
    """A kill part way through either move leaves the run folder without the old run's checkpoint, so
    the advice for what the kill left (check_aside_free) is to move the old run back, never to delete it
    as one a newer run no longer needs (the files moved in the order the folder listed them)."""
    from nextword.train import trainer

    real, aside, back = os.rename, [], []

    def rename(src, dst):
        (aside if ".replaced" in str(dst) else back).append(os.path.basename(src))
        real(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(trainer, "encode_corpus", _interrupt)  # stopped before its first checkpoint
    with pytest.raises(KeyboardInterrupt):
        train(replace(tiny_config, out=str(old_run), overwrite=True, epochs=1))
    assert aside[0] == "checkpoint.keras" and aside[-1] == ".nextword-run" and len(aside) > 3
    assert back[-1] == "checkpoint.keras" and sorted(back) == sorted(aside)


def test_an_old_run_that_cannot_be_moved_back_is_said_so(old_run, tiny_config, monkeypatch, caplog):
    """The disk turned read-only as the new run stopped: the warning said the new run's files "could not
    be removed", when it was the old run that could not come back from beside the folder."""
    from nextword.train import trainer

    before = _files(old_run)
    real = os.rename

    def read_only_back(src, dst):
        if ".replaced" in str(src):
            raise OSError(errno.EROFS, "Read-only file system", str(src), str(dst))
        real(src, dst)

    monkeypatch.setattr(os, "rename", read_only_back)
    monkeypatch.setattr(trainer, "encode_corpus", _interrupt)  # stopped before its first checkpoint
    with caplog.at_level(logging.WARNING, logger="nextword.train"), pytest.raises(KeyboardInterrupt):
        train(replace(tiny_config, out=str(old_run), overwrite=True, epochs=1))
    aside = old_run.parent / ".run.replaced"
    assert f"the run it replaced could not be moved back from {aside} ([Errno 30]" in caplog.text
    assert "could not be removed" not in caplog.text and _files(aside) == before  # kept whole, aside


def test_a_run_stopped_while_its_last_epoch_was_saved_is_not_called_finished(run_dir, tmp_path):
    """A full disk (or Ctrl-C) while the last epoch's models were written left metrics.json's
    saving_epoch mark, and the message said "the run has finished: export it", which export refused."""
    from nextword.train.progress import existing_run_advice, how_to_go_on

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    assert how_to_go_on(str(run)).startswith("the run has finished")
    metrics = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({**metrics, "saving_epoch": metrics["epochs"][-1]["epoch"]}))
    assert how_to_go_on(str(run)).startswith("the run keeps its last checkpoint: continue it with")
    assert "holds an unfinished run; continue it with" in existing_run_advice(str(run))


def test_the_advice_names_the_run_a_killed_overwrite_left_aside(run_dir, tmp_path):
    """After a kill -9 during an overwrite, the messages said to resume or start again, and none said
    that the old run was kept in .RUN.replaced: only the next overwrite told."""
    from nextword.train.progress import existing_run_advice, how_to_go_on

    run, aside = tmp_path / "run", tmp_path / ".run.replaced"
    shutil.copytree(run_dir, run)
    shutil.copytree(run_dir, aside)
    assert how_to_go_on(str(run)).endswith(
        f"the run it replaced is still kept in {aside}, which this one no longer needs: delete it"
    )
    (run / "checkpoint.keras").unlink()  # killed before the new run's first checkpoint
    assert existing_run_advice(str(run)).endswith(
        f"the run it replaced is kept in {aside}: to keep that one, move its files back into {run} "
        f"(replacing those there), else delete {aside}"
    )


def test_a_linked_run_folder_is_set_aside_beside_the_folder_it_links_to(old_run, tmp_path):
    """The aside went beside the link: across disks (a `runs` link onto a larger one) the move failed."""
    from nextword.train.files import RunDir

    link = tmp_path / "elsewhere" / "link"
    link.parent.mkdir()
    link.symlink_to(old_run)
    assert RunDir(link).aside == tmp_path / ".run.replaced"


def test_keras_own_temporary_counts_as_the_runs_and_a_users_look_alike_does_not(old_run):
    """Keras saves a model whose weights it thinks too large for memory through tempfile's ``tmpXXXXXXXX``
    in the model's folder: a kill left it, and the folder was no longer replaceable."""
    from nextword.train.files import RunDir

    (old_run / "tmpk1ll3d_0").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    (old_run / "tmp_notes01").write_text("precious")  # the same form of name, not an HDF5 file
    run = RunDir(old_run)
    assert [p.name for p in run.temporaries()] == ["tmpk1ll3d_0"]
    assert run.foreign_entries() == ["tmp_notes01"]


@pytest.fixture
def handlers():
    """SIGINT's and SIGTERM's handlers put back after the test."""
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in before.items():
        signal.signal(sig, handler)


def test_signals_held_leaves_an_ignored_ctrl_c_ignored_and_delivers_sigterm(handlers):
    """With Ctrl-C ignored (a script's background job), a SIGTERM that came while files moved was lost:
    only the first signal held was raised, and that was the ignored Ctrl-C."""
    from nextword.train.replacing import signals_held

    got = []
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda signum, frame: got.append(signum))
    with signals_held():
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        assert got == []  # held
    assert got == [signal.SIGTERM] and signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_signals_held_delivers_each_signal_that_came(handlers):
    from nextword.train.replacing import signals_held

    got = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: got.append(signum))
    with signals_held():
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
    assert got == [signal.SIGINT, signal.SIGTERM]  # once each, in order


def test_signals_held_puts_every_handler_back_when_a_signal_comes_as_it_does(handlers, monkeypatch):
    """A Ctrl-C just after SIGINT's handler was put back raised in the middle of putting them back, and
    SIGTERM was held, ignored, for the rest of the process."""
    from nextword.train.replacing import signals_held

    def term(signum, frame):
        pass

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, term)
    real = signal.signal

    def then_ctrl_c(sig, handler):
        before = real(sig, handler)
        if sig == signal.SIGINT and handler is signal.default_int_handler:
            os.kill(os.getpid(), signal.SIGINT)  # as a signal between the two handlers put back
        return before

    with pytest.raises(KeyboardInterrupt), signals_held():
        monkeypatch.setattr(signal, "signal", then_ctrl_c)
    monkeypatch.undo()
    assert signal.getsignal(signal.SIGTERM) is term


def test_a_signal_as_signals_held_begins_stops_it_and_puts_every_handler_back(handlers, monkeypatch):
    """A SIGTERM whose handler raises, coming after Ctrl-C was held and before SIGTERM was: the block
    did not run, and Ctrl-C stayed held, dropped, for the rest of the process."""
    from nextword.train.replacing import signals_held

    class Stop(Exception):
        pass

    def stop(signum, frame):
        raise Stop

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, stop)
    real, ran = signal.signal, []

    def then_sigterm(sig, handler):
        before = real(sig, handler)
        if sig == signal.SIGINT and handler is not signal.default_int_handler:  # Ctrl-C now held
            os.kill(os.getpid(), signal.SIGTERM)
        return before

    monkeypatch.setattr(signal, "signal", then_sigterm)
    with pytest.raises(Stop), signals_held():
        ran.append(True)
    monkeypatch.undo()
    assert ran == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) is stop


def test_an_overwrite_stopped_before_its_first_checkpoint_speaks_of_the_run_back_in_the_folder(
    old_run, tiny_config, monkeypatch, capsys
):
    """The note on the interrupt, and the command's last line, spoke of the restored old run as if it
    were the one just started ("the run has finished (12 of 12 epochs): export it"): a user who had
    asked for other settings exported or resumed the old model."""
    from nextword.cli.main import main
    from nextword.train import trainer

    before = _files(old_run)
    monkeypatch.setattr(trainer, "encode_corpus", _interrupt)  # stopped before its first checkpoint
    with pytest.raises(KeyboardInterrupt) as interrupted:
        train(replace(tiny_config, out=str(old_run), overwrite=True, epochs=1, seed=9))
    assert _files(old_run) == before  # the old run, as it was
    (note,) = interrupted.value.__notes__
    assert note.startswith(
        f"nextword: training interrupted; this run stopped before its first checkpoint, so its files were "
        f"removed and {old_run} holds the run it replaced again, as it was. That run: the run has finished"
    ), note
    assert note.endswith("; to replace it, start this run again with overwrite=True"), note
    corpus = tiny_config.corpus.paths[0]
    assert main(["-q", "train", corpus, "--out", str(old_run), "--overwrite", "--epochs", "1"]) == 130
    err = capsys.readouterr().err
    assert "holds the run it replaced again, as it was. That run: the run has finished" in err, err
    assert err.rstrip().endswith("to replace it, start this run again with --overwrite"), err
