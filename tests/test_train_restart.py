"""How the chief of a restarted cluster tells its run from another (train/restart.py): the corpus
under another path or with a new file time is the same corpus when it holds the same documents; a
corpus edited in place to the same size is not."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest


@pytest.mark.train
def test_a_moved_or_touched_corpus_is_the_same_run_an_edited_one_is_not(tiny_config, tmp_path):
    from nextword.train import CorpusConfig, train
    from nextword.train.files import RunDir
    from nextword.train.restart import run_differs

    corpus = tmp_path / "corpus.csv"
    shutil.copyfile(tiny_config.corpus.paths[0], corpus)
    config = replace(
        tiny_config, out=str(tmp_path / "run"), corpus=CorpusConfig(paths=(str(corpus),)), epochs=1
    )
    train(config)
    run = RunDir(config.out)
    assert run_differs(run, config) is None

    moved = tmp_path / "scratch" / "corpus.csv"  # another path, a new time: the same documents
    moved.parent.mkdir()
    shutil.copyfile(corpus, moved)
    assert run_differs(run, replace(config, corpus=CorpusConfig(paths=(str(moved),)))) is None
    os.utime(corpus, ns=(1, 1))  # touched: a time the run never recorded
    assert run_differs(run, config) is None

    data = corpus.read_bytes()
    at = data.index(b"network")
    corpus.write_bytes(data[:at] + b"netwerk" + data[at + 7 :])  # one letter: the same size
    assert run_differs(run, config) == "its corpus files hold other documents"
    corpus.write_bytes(data + b"more")
    assert run_differs(run, config) == "its corpus files are not the size they were"
    assert run_differs(run, replace(config, seed=config.seed + 1)) == "its settings differ (seed)"


def _recorded_run(config, data):
    """A run folder as a chief finds it, without training: the marker and a config.json of ``config``
    recording the corpus files' sizes and times now, and ``data`` as its facts."""
    from nextword.train.files import RunDir
    from nextword.train.run_corpus import corpus_files

    run = RunDir(config.out)
    run.mark()
    stored = {**config.to_dict(), "corpus_files": corpus_files(config), "data": data}
    run.config.write_text(json.dumps(stored), encoding="utf-8")
    return run


@pytest.fixture
def small_run(tiny_config, tmp_path):
    from nextword.train import CorpusConfig

    corpus = tmp_path / "corpus.csv"
    shutil.copyfile(tiny_config.corpus.paths[0], corpus)
    return replace(tiny_config, out=str(tmp_path / "run"), corpus=CorpusConfig(paths=(str(corpus),)))


@pytest.mark.train
def test_a_restart_may_change_the_session_but_a_touched_corpus_needs_the_recorded_digest(
    small_run, monkeypatch
):
    from nextword.train import restart
    from nextword.train.restart import run_differs

    config = small_run
    run = _recorded_run(config, {"corpus_sha256": "0" * 64})
    # a run from before digests were recorded, on the same corpus
    without = _recorded_run(replace(config, out=config.out + "-older"), {"documents": 3})
    assert run_differs(run, config) is None and run_differs(without, config) is None
    # the session's fields (epochs, patience, ...): the same run, trained on for longer
    assert run_differs(run, replace(config, epochs=config.epochs + 2, patience=7)) is None
    assert run_differs(run, replace(config, seq_len=config.seq_len + 1)) == "its settings differ (seq_len)"

    os.utime(config.corpus.paths[0], ns=(1, 1))  # touched: the same size, a time the run never recorded

    def unreadable(*args, **kwargs):
        raise PermissionError(13, "Permission denied", config.corpus.paths[0])

    monkeypatch.setattr(restart, "split_corpus", unreadable)
    said = run_differs(run, config)
    assert said is not None and said.startswith("its corpus could not be read again (")
    assert "Permission denied" in said

    assert run_differs(without, config) == (
        "its corpus files changed since it started (their times), and it recorded no digest"
    )


@pytest.mark.train
def test_the_chief_names_what_it_would_refuse_its_run_folder_for(small_run, tmp_path):
    from nextword.train import CorpusConfig
    from nextword.train.files import NotARunError, RunBusyError, RunDir, RunExistsError
    from nextword.train.restart import chief_refusal

    config = small_run
    run = RunDir(config.out)
    assert chief_refusal(run, config, check_folder=True) is None  # not there yet: a new run

    Path(config.out).write_text("a file where the run folder goes", encoding="utf-8")
    said = chief_refusal(run, config, check_folder=False)
    assert isinstance(said, RunExistsError)
    assert str(said) == f"{config.out} exists and is not a folder; choose another `out`"
    Path(config.out).unlink()

    Path(config.out).mkdir()
    (Path(config.out) / "notes.txt").write_text("mine", encoding="utf-8")
    assert chief_refusal(run, config, check_folder=False) is None  # only a folder check refuses it
    said = chief_refusal(run, config, check_folder=True)
    assert isinstance(said, RunExistsError) and "holds files (notes.txt) and is not a nextword run" in str(
        said
    )
    said = chief_refusal(run, replace(config, overwrite=True), check_folder=True)
    assert isinstance(said, NotARunError)
    assert "is not a nextword run folder" in str(said) and "overwrite=True will not delete" in str(said)

    with RunDir(config.out).in_use():  # another training there (a lock on the folder: any process's)
        said = chief_refusal(run, config, check_folder=False)
        assert isinstance(said, RunBusyError) and "in use by another nextword training process" in str(said)
    with RunDir(config.out).reading():  # an export reading the run
        said = chief_refusal(run, config, check_folder=False)
        assert isinstance(said, RunBusyError) and "being read by a nextword export" in str(said)
    assert chief_refusal(run, config, check_folder=False) is None

    inside = Path(config.out) / "data" / "corpus.csv"  # the corpus kept in the run folder
    inside.parent.mkdir()
    shutil.copyfile(config.corpus.paths[0], inside)
    said = chief_refusal(run, replace(config, corpus=CorpusConfig(paths=(str(inside),))), check_folder=True)
    assert isinstance(said, RunExistsError)
    assert str(said).startswith(f"the corpus file {inside} is inside the run folder {config.out}; keep")
