"""Fine-tuning with ``extend_vocabulary``: the words of the new corpus that the base vocabulary lacks are
added after the base's own ids, start at the mean of the base's words, are learned, written and
recorded; without it they stay ``<unk>``."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tf2onnx", reason="tf2onnx missing: install nextword[train]")

from helpers import machine_documents, tuning_config, write_corpus
from nextword.cli.main import main
from nextword.corpus import CorpusConfig as SplitCorpus
from nextword.corpus import split_corpus
from nextword.export import ExportConfig, export
from nextword.runtime import Tokenizer, TokenizerConfig, load
from nextword.train import TrainConfig, resume, train
from nextword.train.base import extended_vocabulary, fine_tuning_config, read_base
from nextword.train.model import load_keras_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def new_corpus(tmp_path_factory) -> Path:
    """Another kind of text than the base corpus's: some of its words, and many it lacks."""
    return write_corpus(tmp_path_factory.mktemp("machines"), machine_documents(60, seed=7))["csv"]


def fine_tuning(base: Path, corpus: Path, out: Path, **changes) -> TrainConfig:
    settings = {"learning_rate": 1e-2, "epochs": 3, "extend_vocabulary": True, **changes}
    return tuning_config(base, corpus, out, **settings)


def test_added_words_follow_the_base_ids_and_start_at_the_mean_of_its_words(run_dir, new_corpus, tmp_path):
    out = tmp_path / "still"
    train(fine_tuning(run_dir, new_corpus, out, learning_rate=1e-12, epochs=1))  # nothing moves
    base_tokens = json.loads((run_dir / "tokenizer.json").read_text())["tokens"]
    tokens = json.loads((out / "tokenizer.json").read_text())["tokens"]
    assert tokens[: len(base_tokens)] == base_tokens  # the base's words keep their ids
    added = tokens[len(base_tokens) :]
    assert {"gearbox", "torque", "clutch", "housing"} <= set(added), added
    assert not set(added) & set(base_tokens)
    base, tuned = load_keras_model(run_dir / "model.keras"), load_keras_model(out / "model.keras")
    for mine, theirs in zip(tuned.weights, base.weights, strict=True):
        mine, theirs = np.asarray(mine), np.asarray(theirs)
        if mine.shape == theirs.shape:  # the LSTM layers
            np.testing.assert_allclose(mine, theirs, atol=1e-6)
            continue
        axis = 0 if mine.shape[0] != theirs.shape[0] else 1  # the embedding's rows, the output's columns
        kept, new = np.split(mine, [theirs.shape[axis]], axis=axis)
        np.testing.assert_allclose(kept, theirs, atol=1e-6)
        np.testing.assert_allclose(
            new, np.broadcast_to(theirs.mean(axis=axis, keepdims=True), new.shape), atol=1e-6
        )
    facts = json.loads((out / "config.json").read_text())
    assert facts["vocab_size"] == len(tokens) and facts["extend_vocabulary"] is True
    base_facts = facts["base"]
    assert base_facts["added_words"] == len(added)
    assert 0.1 < base_facts["added_share"] <= base_facts["unknown_share"] < 0.6


def test_added_words_are_learned_written_and_recorded(run_dir, new_corpus, tmp_path):
    out = tmp_path / "tuned"
    train(fine_tuning(run_dir, new_corpus, out))
    model_file = tmp_path / "tuned.onnx"
    export(ExportConfig(run_dir=str(out), out=str(model_file), evaluate=False))
    model = load(model_file)
    scored = model.score("The gearbox transmits torque to the output shaft.", cache=False)
    assert not any(w.unknown for w in scored.words)
    by_token = {w.word: w for w in scored.words}
    # after "transmits", where the corpus always has it: learned, well above a uniform guess
    assert by_token["torque"].logprob > 1 - np.log(len(model.tokenizer))
    added = json.loads((out / "config.json").read_text())["base"]["added_words"]
    new_words = set(model.tokenizer.table[-added:])
    written = {t for seed in range(3) for t in model.tokenizer.tokenize(model.generate("The", seed=seed))}
    assert written & new_words, written  # generated, not only read
    line = dict(model.info.provenance.describe())["fine-tuned from"]
    assert f"; {added} words were added to it (" in line and "of the fine-tuning words" in line, line
    resume(str(out), epochs=4)  # resumes with its own, extended vocabulary
    assert len(json.loads((out / "metrics.json").read_text())["epochs"]) == 4


def test_without_it_the_new_words_stay_unknown_and_the_warning_says_how_to_add_them(
    run_dir, new_corpus, tmp_path, caplog
):
    out = tmp_path / "plain"
    with caplog.at_level(logging.WARNING, logger="nextword"):
        train(replace(fine_tuning(run_dir, new_corpus, out, epochs=1), extend_vocabulary=False))
    assert "<unk> to the fine-tuned run" in caplog.text and "extend_vocabulary=True adds them" in caplog.text
    assert (out / "tokenizer.json").read_bytes() == (run_dir / "tokenizer.json").read_bytes()
    assert "added_words" not in json.loads((out / "config.json").read_text())["base"]


def test_max_vocab_bounds_what_is_added_and_may_be_raised(run_dir, new_corpus, tmp_path, caplog):
    base = read_base(fine_tuning(run_dir, new_corpus, Path("unused")))
    split = split_corpus(SplitCorpus(paths=(str(new_corpus),)))
    everything = extended_vocabulary(base, split, None, 1_000)
    with caplog.at_level(logging.WARNING, logger="nextword"):
        bounded = extended_vocabulary(base, split, None, len(base.tokenizer) + 3)
    assert len(bounded) == len(base.tokenizer) + 3 and "leaves room for 3 of them" in caplog.text
    assert bounded.table == everything.table[: len(bounded)]  # the most frequent new words first
    assert len(everything) > len(bounded) and bounded.config.max_vocab == len(base.tokenizer) + 3
    # a base whose vocabulary is full (its own max_vocab) gets room from a larger max_vocab
    full = replace(base.tokenizer.config, max_vocab=len(base.tokenizer))
    base = replace(base, tokenizer=Tokenizer(base.tokenizer.table, full, base.tokenizer.version))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="nextword"):
        assert extended_vocabulary(base, split, None, len(base.tokenizer)).table == base.tokenizer.table
    assert "leaves room for 0 of them" in caplog.text and "A larger max_vocab makes room" in caplog.text
    config = fine_tuning(run_dir, new_corpus, tmp_path / "x")
    with pytest.raises(ValueError, match="below the base vocabulary's"):
        fine_tuning_config(replace(config, tokenizer=TokenizerConfig(max_vocab=8)), base)
    raised = fine_tuning_config(replace(config, tokenizer=TokenizerConfig(max_vocab=5_000)), base)
    assert raised.tokenizer == replace(full, max_vocab=5_000)


def test_it_needs_a_base_and_the_command_line_takes_it(run_dir, new_corpus, tmp_path, capsys):
    with pytest.raises(ValueError, match="extend_vocabulary adds words to the vocabulary of the base"):
        TrainConfig(out=str(tmp_path / "x"), extend_vocabulary=True)
    out = tmp_path / "cli"
    argv = ["train", str(new_corpus), "--init-from", str(run_dir), "--extend-vocabulary", "--out", str(out)]
    assert main([*argv, "--epochs", "1", "--seq-len", "16", "--batch-size", "8", "--verbose", "0"]) == 0
    assert json.loads((out / "config.json").read_text())["base"]["added_words"] > 0
    bounded = tmp_path / "bounded"  # --max-vocab goes with --extend-vocabulary: it bounds the words added
    size = len(json.loads((run_dir / "tokenizer.json").read_text())["tokens"]) + 2
    argv = [*argv[:-1], str(bounded), "--max-vocab", str(size), "--epochs", "1", "--seq-len", "16"]
    assert main([*argv, "--batch-size", "8", "--verbose", "0"]) == 0
    assert json.loads((bounded / "config.json").read_text())["base"]["added_words"] == 2
    assert main(["train", str(new_corpus), "--extend-vocabulary", "--out", str(tmp_path / "y")]) != 0
    assert "--extend-vocabulary adds words to the vocabulary of the base" in capsys.readouterr().err
    assert not (tmp_path / "y").exists()
