"""A fine-tuning run counts the held-out documents of its corpus that copy the base's training documents:
:func:`nextword.corpus.dedup.shared_documents`, the count a run records and ``nextword info`` shows,
and the cases where it cannot be counted."""

from __future__ import annotations

import json
import logging
import os
import random
from pathlib import Path

from helpers import write_corpus
from nextword.corpus import CorpusConfig as SplitCorpus
from nextword.corpus import split_corpus
from nextword.corpus.dedup import shared_documents
from nextword.corpus.dev import split_dev_mask
from nextword.runtime.provenance import DedupSettings

WORDS = ["network", "layer", "neuron", "weight", "signal", "input", "output", "training", "memory", "gate"]


def text(rng: random.Random, words: int = 150) -> str:
    return " ".join(rng.choice(WORDS) + str(rng.randrange(1000)) for _ in range(words))


def edited(rng: random.Random, document: str, changes: int) -> str:
    words = document.split()
    for position in rng.sample(range(len(words)), changes):
        words[position] = "changed" + str(rng.randrange(10**6))
    return " ".join(words)


def test_shared_documents_are_copies_and_near_duplicates_of_the_reference_only():
    rng = random.Random(5)
    reference = [text(rng), text(rng), "A neural network is trained on patent text."]
    alone = text(rng)
    documents = [
        "a  NEURAL network is trained, on patent text",  # an exact copy (case, spacing, punctuation)
        edited(rng, reference[0], 4),  # a near-duplicate
        alone,
        alone.upper(),  # a copy of a document that is not a reference one
        edited(rng, alone, 3),  # a near-duplicate of it
        "A NEURAL NETWORK IS TRAINED ON PATENT TEXT",  # a copy of a copy of a reference document
        text(rng),
    ]
    shared = shared_documents(iter(reference), iter(documents), DedupSettings())
    assert shared.tolist() == [True, True, False, False, False, True, False]
    assert not shared_documents([], documents, DedupSettings()).any()
    # A stricter threshold: the near-duplicate is no longer one, the copies still are.
    strict = shared_documents(reference, documents, DedupSettings(threshold=0.99))
    assert strict.tolist() == [True, False, False, False, False, True, False]


# ----------------------------------------------------------------------------- fine-tuning runs


def fine_tune(base: Path, corpus: Path, out: Path, **changes):
    from nextword.train import CorpusConfig, TrainConfig, train

    corpus_settings = {"paths": (str(corpus),), **changes.pop("split", {})}
    settings = {"seq_len": 16, "batch_size": 8, "learning_rate": 1e-9, "epochs": 1, "verbose": 0, **changes}
    config = TrainConfig(
        out=str(out), corpus=CorpusConfig(**corpus_settings), init_from=str(base), **settings
    )
    train(config)
    return json.loads((out / "config.json").read_text())["base"]


def base_trained_documents(run_dir: Path) -> set[str]:
    """The documents the base trained on, by their text: its split's training side less its development
    part."""
    stored = json.loads((run_dir / "config.json").read_text())
    corpus = SplitCorpus(paths=tuple(stored["corpus"]["paths"]))
    from nextword.corpus import recorded_split

    split = split_corpus(corpus, recorded_split(stored["data"], corpus))
    dev = split_dev_mask(split, stored["data"].get("dev_documents") or 0)
    train, _ = split.documents()
    return {d for d, developing in zip(train, dev, strict=True) if not developing}


def test_the_base_corpus_split_another_way_shares_held_out_documents(
    run_dir, documents, tmp_path, caplog, capsys
):
    """The base's own corpus again, split with another seed: the held-out documents that the base trained
    on are counted (as plain set membership finds them), warned of, recorded and shown."""
    trained = base_trained_documents(run_dir)
    corpus = write_corpus(tmp_path / "again", documents)["csv"]
    with caplog.at_level(logging.INFO, logger="nextword"):
        facts = fine_tune(run_dir, corpus, tmp_path / "tuned", split={"split_seed": 99})
    out = tmp_path / "tuned"
    stored = json.loads((out / "config.json").read_text())
    split = split_corpus(SplitCorpus(paths=(str(corpus),), split_seed=99))
    train, val = split.documents()
    dev = split_dev_mask(split, stored["data"]["dev_documents"])
    expected_val = sum(d in trained for d in val)
    expected_dev = sum(d in trained for d, developing in zip(train, dev, strict=True) if developing)
    assert expected_val > 0 and expected_dev > 0  # the case is the one meant
    assert (facts["val_overlap"], facts["dev_overlap"]) == (expected_val, expected_dev)
    warned = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "trained on" in r.getMessage()
    ]
    assert len(warned) == 1, warned
    assert f"{expected_val} of this corpus's {len(val)} validation documents" in warned[0]
    assert str(run_dir) in warned[0] and "give only the documents that are new" in warned[0]

    from nextword.cli.main import main
    from nextword.export import ExportConfig, export

    model_file = tmp_path / "tuned.onnx"
    export(ExportConfig(run_dir=str(out), out=str(model_file), evaluate=False))
    from nextword.runtime import load

    base = load(model_file).info.provenance.base
    assert (base.val_overlap, base.dev_overlap) == (expected_val, expected_dev)
    capsys.readouterr()
    assert main(["info", str(model_file)]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert (
        f"{expected_val} of its {len(val)} validation documents and {expected_dev} of its "
        f"{int(dev.sum())} development documents are copies or near-duplicates of documents the base "
        "trained on"
    ) in shown


def test_the_same_corpus_split_the_same_way_shares_none(run_dir, tiny_config):
    """Fine-tuning on the base's corpus with its split: the held-out documents are the base's own."""
    facts = fine_tune(run_dir, Path(tiny_config.corpus.paths[0]), Path(tiny_config.out).parent / "same")
    assert (facts["val_overlap"], facts["dev_overlap"]) == (0, 0)


def test_unknown_when_the_base_corpus_changed_or_the_base_is_a_model_file(
    run_dir, model_path, documents, tmp_path, caplog
):
    corpus = write_corpus(tmp_path / "copy", documents)["csv"]
    with caplog.at_level(logging.INFO, logger="nextword"):
        facts = fine_tune(model_path, corpus, tmp_path / "from-file")
    assert "val_overlap" not in facts and "dev_overlap" not in facts
    assert any("a model file does not hold the documents" in r.getMessage() for r in caplog.records)

    # A base run whose corpus file was edited since: its split cannot be made again as it was.
    moved = tmp_path / "base"
    import shutil

    shutil.copytree(run_dir, moved)
    base_corpus = tmp_path / "base-corpus.csv"
    shutil.copy(json.loads((run_dir / "config.json").read_text())["corpus"]["paths"][0], base_corpus)
    stored = json.loads((moved / "config.json").read_text())
    stored["corpus"]["paths"] = [str(base_corpus)]
    (moved / "config.json").write_text(json.dumps(stored))
    stat = base_corpus.stat()
    os.utime(base_corpus, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="nextword"):
        facts = fine_tune(moved, corpus, tmp_path / "from-changed")
    assert "val_overlap" not in facts
    assert any("changed since it trained" in r.getMessage() for r in caplog.records)
