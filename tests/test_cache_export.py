"""Training holds out a development part; export tunes the continuous cache on it and stores it."""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tf2onnx", reason="tf2onnx missing: install nextword[train]")

from helpers import write_corpus
from nextword.corpus import split_corpus
from nextword.corpus.dev import MAX_DEV_DOCUMENTS, dev_count, dev_mask
from nextword.export import ExportConfig, export
from nextword.export.cache_tuning import trace_documents, tune_cache
from nextword.runtime import GenerationConfig, TokenizerConfig, evaluate, load
from nextword.runtime.cache import CacheConfig
from nextword.runtime.evaluation import evaluate_ids
from nextword.runtime.model_file import format_version_for
from nextword.train import CorpusConfig, ModelConfig, TrainConfig, train
from nextword.train.data import stream_documents
from nextword.train.files import RunDir

pytestmark = pytest.mark.slow

NAMES = [
    f"{a}{b}" for a in ("zor", "quel", "brin", "tav", "mox", "pell") for b in ("ax", "ine", "ode", "um", "et")
]


def topic_documents(n: int, seed: int = 0) -> list[str]:
    """Documents about their own made-up parts: which names a document uses cannot be known from the
    start, but once seen they come back, which is what a cache catches and a small LSTM does not."""
    rng = random.Random(seed)
    documents = []
    for _ in range(n):
        a, b = rng.sample(NAMES, 2)
        sentences = [
            f"The {a} receives the {b}.",
            f"Each {b} updates the {a}.",
            f"The {a} stores the {b} and the {b} computes an error value.",
            f"A {a} transmits the weights to the {b}.",
        ]
        rng.shuffle(sentences)
        documents.append(" ".join(sentences[: rng.randint(3, 4)]))
    return documents


@pytest.fixture(scope="module")
def topic_run(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("topic")
    files = write_corpus(folder / "corpus", topic_documents(160))
    config = TrainConfig(
        out=str(folder / "run"),
        corpus=CorpusConfig(paths=(str(files["csv"]),)),
        tokenizer=TokenizerConfig(min_count=1),
        model=ModelConfig(embedding_dim=16, lstm_units=32, dropout=0.1),
        seq_len=16,
        batch_size=8,
        learning_rate=1e-2,
        epochs=6,
        dev_fraction=0.15,
        verbose=0,
    )
    train(config)
    return Path(config.out)


@pytest.fixture(scope="module")
def topic_model(topic_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("topic-model") / "topic.onnx"
    export(ExportConfig(run_dir=str(topic_run), out=str(out)))
    return load(out)


def test_development_documents_are_held_out_of_training(topic_run):
    data = json.loads((topic_run / "config.json").read_text())["data"]
    training_side = 160 - data["val_documents"] - data["exact_duplicates"]
    assert data["dev_documents"] == dev_count(training_side, 0.15) > 0
    held = data["train_documents"] + data["dev_documents"] + data["val_documents"] + data["exact_duplicates"]
    assert held == data["documents"] == 160
    train_docs = [tuple(d.tolist()) for d in stream_documents(topic_run / "train.ids")]
    dev_docs = [tuple(d.tolist()) for d in stream_documents(topic_run / "dev.ids")]
    assert (len(train_docs), len(dev_docs)) == (data["train_documents"], data["dev_documents"])
    words = sum(len(d) - 1 for d in train_docs), sum(len(d) - 1 for d in dev_docs)
    assert words == (data["train_words"], data["dev_words"])
    assert all(d[0] == d[-1] == 2 for d in train_docs + dev_docs)  # whole documents, <eod> to <eod>


def test_the_development_part_holds_out_whole_groups_of_near_duplicates(topic_run):
    stored = json.loads((topic_run / "config.json").read_text(encoding="utf-8"))
    data = stored["data"]
    assert data["split"]["scheme"] == "dedup-v5"
    split = split_corpus(CorpusConfig(paths=tuple(stored["corpus"]["paths"])))
    groups = split.training_groups()
    assert (np.unique(groups, return_counts=True)[1] > 1).any()  # near-duplicates to keep together
    chosen = dev_mask(len(groups), data["dev_documents"], 0, groups)
    assert not set(groups[chosen].tolist()) & set(groups[~chosen].tolist())
    tokenizer = RunDir(topic_run).read_tokenizer()
    training = [document for is_val, document in split.read() if not is_val]
    expected = [tuple(tokenizer.encode(d)) for d, is_dev in zip(training, chosen, strict=True) if is_dev]
    assert [tuple(d[1:-1].tolist()) for d in stream_documents(topic_run / "dev.ids")] == expected
    trained_on = [d for d, is_dev in zip(training, chosen, strict=True) if not is_dev]
    words = {i for d in trained_on for i in tokenizer.encode(d)} - {tokenizer.unk_id}
    assert words == set(range(len(tokenizer))) - set(tokenizer.special_ids)  # no untrained word


def test_dev_count_bounds():
    assert dev_count(100, 0.0) == 0 and dev_count(1, 0.5) == 0
    assert dev_count(10, 0.01) == 1 and dev_count(2, 0.9) == 1
    assert dev_count(10**7, 0.05) == MAX_DEV_DOCUMENTS


def test_export_tunes_the_cache_on_the_development_documents(topic_run, topic_model):
    data = json.loads((topic_run / "config.json").read_text())["data"]
    cache = topic_model.info.cache
    assert cache is not None and cache.tuning["documents"] == data["dev_documents"]
    assert cache.tuning["perplexity_with"] <= 0.99 * cache.tuning["perplexity_without"]
    quality = topic_model.info.quality
    assert quality["fp32_cache"]["perplexity"] < quality["fp32"]["perplexity"]
    assert quality["fp32_cache"]["words"] == quality["fp32"]["words"]
    held_out = topic_documents(20, seed=99)
    assert (
        evaluate(topic_model, held_out).perplexity < evaluate(topic_model, held_out, cache=False).perplexity
    )


def test_the_tuned_figure_is_what_the_runtime_computes(topic_run, topic_model):
    """The search and the runtime implement the mixture separately; they must agree."""
    cache = topic_model.info.cache
    documents = list(stream_documents(topic_run / "dev.ids"))
    runtime = evaluate_ids(topic_model, documents, cache=cache)
    assert runtime.perplexity == pytest.approx(cache.tuning["perplexity_with"], rel=2e-3)
    assert evaluate_ids(topic_model, documents, cache=False).perplexity == pytest.approx(
        cache.tuning["perplexity_without"], rel=2e-3
    )


def test_int8_file_keeps_the_cache(topic_run, tmp_path):
    out = tmp_path / "topic-int8.onnx"
    report = export(ExportConfig(run_dir=str(topic_run), out=str(out), int8=True))
    model = load(out)
    assert model.info.cache is not None
    fp32, int8 = report.quality["fp32_cache"]["perplexity"], report.quality["int8_cache"]["perplexity"]
    assert abs(int8 - fp32) / fp32 < 0.05


def test_no_cache_without_a_development_part(topic_run, tmp_path, caplog):
    run = tmp_path / "run"
    shutil.copytree(topic_run, run)
    (run / "dev.ids").unlink()  # as in a run trained with --dev-fraction 0, or before dev parts
    config = json.loads((run / "config.json").read_text())
    for key in ("dev_documents", "dev_words"):  # such runs record none (one that does is refused)
        config["data"].pop(key, None)
    (run / "config.json").write_text(json.dumps(config))
    with caplog.at_level(logging.WARNING):
        report = export(ExportConfig(run_dir=str(run), out=str(tmp_path / "m.onnx")))
    assert load(report.path).info.cache is None and "fp32_cache" not in report.quality
    assert "dev.ids is missing" in caplog.text
    # a training side too small (or one group of near-duplicates) to set a document apart: one <eod>
    np.array([2], dtype=np.int32).tofile(run / "dev.ids")
    config = json.loads((run / "config.json").read_text())
    config["data"].update(dev_documents=0, dev_words=0)  # as training records such a part
    (run / "config.json").write_text(json.dumps(config))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        report = export(ExportConfig(run_dir=str(run), out=str(tmp_path / "e.onnx")))
    assert load(report.path).info.cache is None and "dev.ids holds no document" in caplog.text
    report = export(ExportConfig(run_dir=str(topic_run), out=str(tmp_path / "n.onnx"), tune_cache=False))
    assert load(report.path).info.cache is None
    with pytest.raises(ValueError, match="needs a tuned cache"):
        ExportConfig(
            run_dir=str(run), out="x.onnx", tune_cache=False, generation=GenerationConfig(cache=True)
        )
    with pytest.raises(ValueError, match="needs a cache"):
        export(
            ExportConfig(
                run_dir=str(run), out=str(tmp_path / "o.onnx"), generation=GenerationConfig(cache=True)
            )
        )


def test_tuning_keeps_no_cache_that_does_not_help(topic_model):
    """Traces whose next tokens never repeat: the cache can only hurt, so none is stored."""
    rng = np.random.default_rng(0)
    docs = [[2, *rng.permutation(np.arange(3, topic_model.vocab_size))[:20].tolist(), 2] for _ in range(12)]
    assert tune_cache(trace_documents(topic_model, docs)) is None


def test_tuned_settings_are_valid_cache_settings(topic_model):
    cache = topic_model.info.cache
    assert isinstance(cache, CacheConfig) and math.isfinite(cache.theta)
    assert cache.gate is not None or 0 < cache.mix < 1
    assert cache.window in cache.tuning["windows"]
    assert set(cache.tuning["best_of_each"]) == {"dot mix", "dot gate", "cosine mix", "cosine gate"}
    # Format 3 only when the settings need it, so a reader of version 2 reads every other file.
    assert topic_model.info.format_version == format_version_for(cache)


def test_export_warns_when_the_tuned_cache_raises_validation_perplexity(
    topic_run, tmp_path, caplog, monkeypatch
):
    """A tiny development part can tune a cache that validation finds harmful; the file still gets it
    (validation never chooses), and the export says so with both figures and the ways out."""
    import nextword.export.exporter as exporter
    from nextword.runtime.cache import CacheConfig

    harmful = CacheConfig(theta=30.0, mix=0.95, window=64)  # nearly all the weight on the cache
    monkeypatch.setattr(exporter, "tune_cache", lambda traces: harmful)
    with caplog.at_level(logging.WARNING):
        report = export(ExportConfig(run_dir=str(topic_run), out=str(tmp_path / "m.onnx")))
    alone, cached = report.quality["fp32"]["perplexity"], report.quality["fp32_cache"]["perplexity"]
    assert cached > alone and load(report.path).info.cache == harmful
    assert (
        f"fp32: {alone:.2f} alone, {cached:.2f} with it" in caplog.text and "tune_cache=False" in caplog.text
    )
