"""What training's log says of its windows and of its development part, where a setting or a small
corpus makes training differ from what a user expects: windows far shorter than the texts the model
is used on, and a development part that held out nothing."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import pytest

from helpers import synthetic_documents, write_corpus
from nextword.train import CorpusConfig, TrainConfig

SHORT = "is short: each training window starts from a zero state"


@pytest.fixture(autouse=True)
def _training_stack() -> None:
    pytest.importorskip("tf2onnx", reason="tf2onnx missing: install nextword[train]")


def _train(config: TrainConfig, caplog: pytest.LogCaptureFixture) -> str:
    from nextword.train import train

    caplog.clear()
    with caplog.at_level("INFO", logger="nextword.train"):
        train(config)
    return caplog.text


def test_windows_much_shorter_than_the_documents_are_warned_of(
    tmp_path: Path, tiny_config: TrainConfig, caplog: pytest.LogCaptureFixture
) -> None:
    # seq_len 1 trained a model on one word of context from a zero state: training's validation
    # perplexity 3.4, `nextword evaluate`'s 11.1 (the state carried over whole documents), unsaid.
    from nextword.train.fit import SHORT_WINDOWS

    log = _train(replace(tiny_config, out=str(tmp_path / "short"), epochs=1, seq_len=3), caplog)
    (line,) = [r.getMessage() for r in caplog.records if SHORT in r.getMessage()]
    assert line.startswith("`seq_len` 3 is short") and "at most 3 word(s) of context" in line
    assert f"A `seq_len` of {SHORT_WINDOWS} or more (the default is {TrainConfig.seq_len})" in line
    assert "longest document has" in line and "`nextword evaluate`" in line
    log = _train(replace(tiny_config, out=str(tmp_path / "enough"), epochs=1, seq_len=SHORT_WINDOWS), caplog)
    assert SHORT not in log


def test_short_windows_over_shorter_documents_are_not_warned_of(
    tmp_path: Path, tiny_config: TrainConfig, caplog: pytest.LogCaptureFixture
) -> None:
    # Every document fits one window: the model sees each whole, from its start, as evaluate runs it.
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma"]
    documents = [" ".join(three) for three in itertools.product(words, repeat=3)][:60]
    files = write_corpus(tmp_path / "corpus", documents)
    config = replace(
        tiny_config,
        out=str(tmp_path / "run"),
        corpus=CorpusConfig(paths=(str(files["csv"]),)),
        epochs=1,
        seq_len=4,
    )
    assert SHORT not in _train(config, caplog)


def test_one_training_document_says_none_was_held_out_for_development(
    tmp_path: Path, tiny_config: TrainConfig, caplog: pytest.LogCaptureFixture
) -> None:
    # The log said "development part: 0 of 1 training documents ... held out of training: they choose
    # the best epoch", then warned that there was no development part.
    files = write_corpus(tmp_path / "corpus", synthetic_documents(2, seed=3))
    config = replace(
        tiny_config,
        out=str(tmp_path / "run"),
        corpus=CorpusConfig(paths=(str(files["csv"]),)),
        epochs=1,
    )
    log = _train(config, caplog)
    assert "development part: none of the 1 training document held out of training" in log
    assert "development part: 0 of" not in log
    fraction = f"{config.dev_fraction:g}"
    assert f"no development part (dev_fraction {fraction} held out no training document)" in log
    caplog.clear()
    log = _train(replace(config, out=str(tmp_path / "none"), dev_fraction=0.0), caplog)
    assert "no development part (dev_fraction 0)" in log


def test_a_development_part_is_logged_with_its_counts(
    tmp_path: Path, tiny_config: TrainConfig, caplog: pytest.LogCaptureFixture
) -> None:
    log = _train(replace(tiny_config, out=str(tmp_path / "run"), epochs=1), caplog)
    assert "development part: none" not in log and "no development part" not in log
    assert "development part: " in log and " training documents (" in log
