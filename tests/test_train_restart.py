"""How the chief of a restarted cluster tells its run from another (train/restart.py): the corpus
under another path or with a new file time is the same corpus when it holds the same documents; a
corpus edited in place to the same size is not."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace

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
