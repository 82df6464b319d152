"""A fine-tuning run counts the held-out documents of its corpus that copy the base's training documents:
:func:`nextword.corpus.dedup.shared_documents`, the count a run records and ``nextword info`` shows,
and the cases where it cannot be counted."""

from __future__ import annotations

import json
import logging
import os
import random
from pathlib import Path

import pytest

from helpers import edited, machine_documents, random_text, tuning_config, write_corpus
from nextword.corpus import CorpusConfig as SplitCorpus
from nextword.corpus import split_corpus
from nextword.corpus.dedup import shared_documents
from nextword.corpus.dev import dev_count, split_dev_mask
from nextword.runtime.provenance import DedupSettings


def test_shared_documents_are_copies_and_near_duplicates_of_the_reference_only():
    rng = random.Random(5)
    reference = [random_text(rng, 150), random_text(rng, 150), "A neural network is trained on patent text."]
    alone = random_text(rng, 150)
    documents = [
        "a  NEURAL network is trained, on patent text",  # an exact copy (case, spacing, punctuation)
        edited(rng, reference[0], 4),  # a near-duplicate
        alone,
        alone.upper(),  # a copy of a document that is not a reference one
        edited(rng, alone, 3),  # a near-duplicate of it
        "A NEURAL NETWORK IS TRAINED ON PATENT TEXT",  # a copy of a copy of a reference document
        random_text(rng, 150),
    ]
    shared = shared_documents(iter(reference), iter(documents), DedupSettings())
    assert shared.tolist() == [True, True, False, False, False, True, False]
    assert not shared_documents([], documents, DedupSettings()).any()
    # A stricter threshold: the near-duplicate is no longer one, the copies still are.
    strict = shared_documents(reference, documents, DedupSettings(threshold=0.99))
    assert strict.tolist() == [True, False, False, False, False, True, False]


# ----------------------------------------------------------------------------- fine-tuning runs


def fine_tune(base: Path, corpus: Path, out: Path, **changes):
    """Fine-tune ``base`` for one epoch at a rate that moves nothing; the ``base`` facts it records."""
    from nextword.train import train

    train(tuning_config(base, corpus, out, **{"learning_rate": 1e-9, "epochs": 1, **changes}))
    return json.loads((out / "config.json").read_text())["base"]


def base_documents(run_dir: Path) -> tuple[set[str], set[str]]:
    """The documents the base trained on (its split's training side less its development part) and its
    validation documents, by their text."""
    from nextword.corpus import recorded_split

    stored = json.loads((run_dir / "config.json").read_text())
    corpus = SplitCorpus(paths=tuple(stored["corpus"]["paths"]))
    split = split_corpus(corpus, recorded_split(stored["data"], corpus))
    dev = split_dev_mask(split, stored["data"].get("dev_documents") or 0)
    train, val = split.documents()
    return {d for d, developing in zip(train, dev, strict=True) if not developing}, set(val)


@pytest.fixture(scope="module")
def resplit(run_dir, documents, tmp_path_factory) -> dict:
    """The base's own corpus in another file, split with another seed, and what that split holds out that
    the base trained on, found by plain set membership of the texts."""
    corpus = write_corpus(tmp_path_factory.mktemp("again"), documents)["csv"]
    split = split_corpus(SplitCorpus(paths=(str(corpus),), split_seed=99))
    train, val = split.documents()
    from nextword.train.config import TrainConfig

    dev = split_dev_mask(split, dev_count(len(train), TrainConfig().dev_fraction))
    trained, base_val = base_documents(run_dir)
    expected = (
        sum(d in trained for d in val),
        sum(d in trained for d, x in zip(train, dev, strict=True) if x),
    )
    # the other way: the base's validation documents that this split trains on
    new_trained = {d for d, x in zip(train, dev, strict=True) if not x}
    seen = sum(d in new_trained for d in base_val)
    assert expected[0] > 0 and expected[1] > 0 and seen > 0  # the case is the one meant
    return {
        "corpus": corpus,
        "expected": expected,
        "val": len(val),
        "dev": int(dev.sum()),
        "seen": (seen, len(base_val)),
    }


def test_the_base_corpus_split_another_way_shares_held_out_documents(
    run_dir, model_path, resplit, tmp_path, caplog, capsys
):
    """Held-out documents that the base trained on are counted, warned of, recorded and shown."""
    out = tmp_path / "tuned"
    with caplog.at_level(logging.INFO, logger="nextword"):
        facts = fine_tune(run_dir, resplit["corpus"], out, split={"split_seed": 99})
    stored = json.loads((out / "config.json").read_text())
    assert (
        stored["data"]["dev_documents"] == resplit["dev"]
        and stored["data"]["val_documents"] == resplit["val"]
    )
    expected_val, expected_dev = resplit["expected"]
    assert (facts["val_overlap"], facts["dev_overlap"]) == (expected_val, expected_dev)
    assert (facts["val_trained"], facts["val_documents"]) == resplit["seen"]
    warned = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "trained on" in r.getMessage()
    ]
    assert len(warned) == 1, warned
    assert f"{expected_val} of this corpus's {resplit['val']} validation documents" in warned[0]
    assert str(run_dir) in warned[0] and "give only the documents that are new" in warned[0]

    from nextword.cli.main import main
    from nextword.export import ExportConfig, export
    from nextword.runtime import load

    model_file = tmp_path / "tuned.onnx"
    export(ExportConfig(run_dir=str(out), out=str(model_file), evaluate=False))
    base = load(model_file).info.provenance.base
    assert (base.val_overlap, base.dev_overlap) == (expected_val, expected_dev)
    capsys.readouterr()
    assert main(["info", str(model_file)]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert (
        f"{expected_val} of its {resplit['val']} validation documents and {expected_dev} of its "
        f"{resplit['dev']} development documents are copies or near-duplicates of documents the base "
        "trained on"
    ) in shown
    seen, base_val = resplit["seen"]
    assert f"it trained on copies of {seen} of the base's {base_val} validation documents" in shown

    def warned_by_evaluate(scored: Path, split_of: Path, *extra: str) -> str:
        caplog.clear()
        argv = [
            "evaluate",
            str(scored),
            str(resplit["corpus"]),
            "--split",
            "val",
            "--split-of",
            str(split_of),
        ]
        assert main([*argv, *extra]) == 0
        return " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)

    # Scored on the base's split, the fine-tuned model has seen some of it: evaluate says so.
    warned = warned_by_evaluate(model_file, model_path)
    assert f"fine-tuned on copies of {seen} of its base's {base_val} validation documents" in warned, warned
    assert f"the base with --split-of {model_file}" in warned
    caplog.clear()
    assert main(["evaluate", str(model_file), str(resplit["corpus"]), "--split", "val"]) == 0
    assert not [r for r in caplog.records if "fine-tuned on copies" in r.getMessage()]
    # The base scored on the fine-tuned model's split: some of those documents it trained on.
    warned = warned_by_evaluate(model_path, model_file)
    assert f"{expected_val} of the validation documents of {model_file} copy or nearly copy" in warned, warned
    # With the base's corpus given, those documents are left out: no warning, the count is the run's.
    capsys.readouterr()
    base_corpus = json.loads((run_dir / "config.json").read_text())["corpus"]["paths"][0]
    assert not warned_by_evaluate(model_path, model_file, "--trained-on", base_corpus, "--json")
    assert json.loads(capsys.readouterr().out)["left_out_trained"] == expected_val


def test_the_same_corpus_split_the_same_way_shares_none(run_dir, tiny_config):
    """Fine-tuning on the base's corpus with its split: the held-out documents are the base's own."""
    facts = fine_tune(run_dir, Path(tiny_config.corpus.paths[0]), Path(tiny_config.out).parent / "same")
    assert (facts["val_overlap"], facts["dev_overlap"]) == (0, 0)


def test_a_model_file_base_is_checked_against_the_corpus_files_given(
    model_path, tiny_config, resplit, documents, tmp_path, caplog, capsys
):
    """A model file holds no documents: unchecked without base_corpus; with it, the split the file records
    is made again and the counts are a run folder's. Files that are not its corpus are refused before
    anything is written."""
    with caplog.at_level(logging.INFO, logger="nextword"):
        facts = fine_tune(model_path, resplit["corpus"], tmp_path / "unchecked", split={"split_seed": 99})
    assert "val_overlap" not in facts and "dev_overlap" not in facts
    assert any("a model file does not hold the documents" in r.getMessage() for r in caplog.records)
    assert facts["overlap_unchecked"] == "a model-file base, its corpus files not given"
    # recorded in the model file, and said by nextword info: not checked, not a file older than the check
    from nextword.cli.main import main
    from nextword.export import ExportConfig, export
    from nextword.runtime import load

    unchecked = tmp_path / "unchecked.onnx"
    export(ExportConfig(run_dir=str(tmp_path / "unchecked"), out=str(unchecked), evaluate=False))
    assert load(unchecked).info.provenance.base.overlap_unchecked == facts["overlap_unchecked"]
    capsys.readouterr()
    assert main(["info", str(unchecked)]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    assert (
        "its held-out documents were not checked against those the base trained on "
        "(a model-file base, its corpus files not given)"
    ) in shown

    base_corpus = tiny_config.corpus.paths
    facts = fine_tune(
        model_path, resplit["corpus"], tmp_path / "checked", split={"split_seed": 99}, base_corpus=base_corpus
    )
    assert (facts["val_overlap"], facts["dev_overlap"]) == resplit["expected"]
    assert "overlap_unchecked" not in facts

    shuffled = documents[:]
    random.Random(4).shuffle(shuffled)  # as many documents, other ones held out: the words tell
    moved = write_corpus(tmp_path / "shuffled", shuffled)["csv"]
    with pytest.raises(ValueError, match=r"`base_corpus`: .*validation documents of \d+ words, the base's"):
        fine_tune(model_path, resplit["corpus"], tmp_path / "shuffled-run", base_corpus=(str(moved),))
    assert not (tmp_path / "shuffled-run").exists()
    # one letter changed, every count kept: the base's corpus digest (in its model file) tells
    edited = write_corpus(tmp_path / "edited", [documents[0].replace("e", "a", 1), *documents[1:]])["csv"]
    with pytest.raises(ValueError, match=r"`base_corpus`: .*documents whose text differs from the base's"):
        fine_tune(model_path, resplit["corpus"], tmp_path / "edited-run", base_corpus=(str(edited),))
    assert not (tmp_path / "edited-run").exists()
    with pytest.raises(
        ValueError, match=r"`base_corpus`: .*hold 30 documents, the base's corpus 80.*give those"
    ):
        short = write_corpus(tmp_path / "short", machine_documents(30, seed=2))["csv"]
        fine_tune(model_path, resplit["corpus"], tmp_path / "refused", base_corpus=(str(short),))
    assert not (tmp_path / "refused").exists()


def test_a_base_run_whose_corpus_changed_is_not_checked_unless_its_files_are_given(
    run_dir, resplit, tmp_path, caplog
):
    import shutil

    moved = tmp_path / "base"
    shutil.copytree(run_dir, moved)
    stored = json.loads((moved / "config.json").read_text())
    base_corpus = tmp_path / "base-corpus.csv"
    shutil.copy(stored["corpus"]["paths"][0], base_corpus)
    stored["corpus"]["paths"] = [str(base_corpus)]
    (moved / "config.json").write_text(json.dumps(stored))
    # A copy of the same file (a new modification time) is the same corpus: checked.
    stat = base_corpus.stat()
    os.utime(base_corpus, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    facts = fine_tune(moved, resplit["corpus"], tmp_path / "copied", split={"split_seed": 99})
    assert (facts["val_overlap"], facts["dev_overlap"]) == resplit["expected"]

    with base_corpus.open("a", encoding="utf-8") as f:  # edited since it trained
        f.write('80,"A document added since."\n')
    with caplog.at_level(logging.INFO, logger="nextword"):
        facts = fine_tune(moved, resplit["corpus"], tmp_path / "changed", split={"split_seed": 99})
    assert (
        "val_overlap" not in facts
        and facts["overlap_unchecked"] == "its corpus files changed since it trained"
    )
    assert any("changed since it trained" in r.getMessage() for r in caplog.records)
    stored["corpus_files"] = [[base_corpus.stat().st_size, 0]]  # the size as recorded: the documents tell
    (moved / "config.json").write_text(json.dumps(stored))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="nextword"):
        facts = fine_tune(moved, resplit["corpus"], tmp_path / "counted", split={"split_seed": 99})
    assert "val_overlap" not in facts
    assert any("hold 81 documents, the base's corpus 80" in r.getMessage() for r in caplog.records)

    base_corpus.unlink()  # gone: the message says how to name where it is now
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="nextword"):
        facts = fine_tune(moved, resplit["corpus"], tmp_path / "gone", split={"split_seed": 99})
    assert "val_overlap" not in facts and facts["overlap_unchecked"] == "its corpus files are gone"
    assert any("are gone; `base_corpus` names where" in r.getMessage() for r in caplog.records)
    facts = fine_tune(
        moved,
        resplit["corpus"],
        tmp_path / "given",
        split={"split_seed": 99},
        base_corpus=(str(resplit["corpus"]),),
    )
    assert (facts["val_overlap"], facts["dev_overlap"]) == resplit["expected"]
