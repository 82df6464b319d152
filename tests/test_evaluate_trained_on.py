"""``nextword evaluate --trained-on FILE``: documents that copy or nearly copy those the scored model
trained on are left out of the scores and counted; files that are not its corpus are refused."""

from __future__ import annotations

import json
import random

import pytest

from helpers import machine_documents, write_corpus
from nextword.cli.main import main
from nextword.corpus import CorpusConfig, rebuild_split
from nextword.corpus.overlap import trained_documents
from nextword.runtime import evaluate, load


def evaluated(capsys, *argv: str) -> dict:
    assert main(["evaluate", *argv, "--json", "--no-cache"]) == 0
    return json.loads(capsys.readouterr().out)


def near_copy(document: str, seed: int) -> str:
    """``document`` with one word changed: still a near-duplicate."""
    words = document.split()
    words[random.Random(seed).randrange(len(words))] = "altered"
    return " ".join(words)


def test_copies_of_training_documents_are_left_out_and_the_rest_scored(
    model_path, corpus_files, tmp_path, capsys
):
    model = load(model_path)
    provenance = model.info.provenance
    split = rebuild_split(provenance, CorpusConfig(paths=(str(corpus_files["csv"]),)))
    trained = list(trained_documents(split, provenance.data.dev_documents))
    _, val = split.documents()
    unseen = machine_documents(3, seed=11)
    copied = [trained[0], trained[1].upper(), trained[2], near_copy(trained[3], 1), near_copy(trained[4], 2)]
    mixed = [*copied[:2], *val, *copied[2:], *unseen]
    corpus = write_corpus(tmp_path / "mixed", mixed)["csv"]

    plain = evaluated(capsys, str(model_path), str(corpus))
    assert plain["documents"] == len(mixed) and "left_out_trained" not in plain
    found = evaluated(capsys, str(model_path), str(corpus), "--trained-on", str(corpus_files["csv"]))
    assert found["left_out_trained"] == len(copied)
    assert found["documents"] == len(val) + len(unseen)
    expected = evaluate(model, [*val, *unseen], cache=False)  # the documents left, in their order
    assert found["words"] == expected.words
    assert found["perplexity"] == pytest.approx(expected.perplexity, rel=1e-9)
    assert found["perplexity"] > plain["perplexity"]  # what it had seen flattered the figure

    assert main(["evaluate", str(model_path), str(corpus), "--trained-on", str(corpus_files["csv"])]) == 0
    table = capsys.readouterr().out
    assert f"left out       {len(copied)} that copy or nearly copy documents the model trained on" in table
    assert "every document but those that copy or nearly copy one the model trained on" in table

    # Its own validation documents copy nothing it trained on.
    own = evaluated(
        capsys,
        str(model_path),
        str(corpus_files["csv"]),
        "--split",
        "val",
        "--trained-on",
        str(corpus_files["csv"]),
    )
    assert own["left_out_trained"] == 0 and own["documents"] == len(val)


def test_what_cannot_be_left_out_is_refused(model_path, corpus_files, tmp_path, capsys):
    other = write_corpus(tmp_path / "other", machine_documents(30, seed=3))["csv"]
    csv = str(corpus_files["csv"])
    assert main(["evaluate", str(model_path), csv, "--trained-on", str(other)]) != 0
    err = capsys.readouterr().err
    assert (
        "--trained-on" in err and "hold 30 documents, the model's corpus 80" in err and "nextword info" in err
    )
    assert main(["evaluate", str(model_path), csv, "--split", "train", "--trained-on", csv]) != 0
    assert "--split train scores only those" in capsys.readouterr().err
    model = load(model_path)
    split = rebuild_split(model.info.provenance, CorpusConfig(paths=(csv,)))
    trained = write_corpus(
        tmp_path / "trained", list(trained_documents(split, model.info.provenance.data.dev_documents))[:5]
    )["csv"]
    assert main(["evaluate", str(model_path), str(trained), "--trained-on", csv]) != 0
    assert "all 5 documents to score copy or nearly copy documents" in capsys.readouterr().err


def test_the_same_files_in_another_order_are_not_the_models(
    model_path, corpus_files, documents, tmp_path, capsys
):
    """The same documents, rows shuffled: as many documents and validation documents, but other ones held
    out, so the training documents taken from them would be wrong; the validation words tell."""
    shuffled = documents[:]
    random.Random(4).shuffle(shuffled)
    other = write_corpus(tmp_path / "shuffled", shuffled)["csv"]
    assert main(["evaluate", str(model_path), str(corpus_files["csv"]), "--trained-on", str(other)]) != 0
    err = capsys.readouterr().err
    assert "--trained-on" in err and "validation documents of" in err and "in another order" in err, err
    assert main(["evaluate", str(model_path), str(corpus_files["csv"]), "--trained-on", ""]) != 0
    assert "--trained-on takes a corpus file" in capsys.readouterr().err


def test_an_empty_development_part_is_named(tiny_config, corpus_files, tmp_path, capsys):
    from dataclasses import replace

    from nextword.export import ExportConfig, export
    from nextword.train import train

    pytest.importorskip("tf2onnx", reason="tf2onnx missing: install nextword[train]")
    csv = str(corpus_files["csv"])
    config = replace(tiny_config, out=str(tmp_path / "run"), epochs=1, dev_fraction=0.0)
    train(config)
    model_file = tmp_path / "nodev.onnx"
    export(ExportConfig(run_dir=config.out, out=str(model_file), evaluate=False))
    for extra in ([], ["--trained-on", csv]):
        assert main(["evaluate", str(model_file), csv, "--split", "dev", *extra]) != 0
        err = capsys.readouterr().err
        assert "the dev part of the split made again from" in err and "without a development part" in err, err


def test_trained_on_files_whose_text_changed_with_every_count_are_not_the_models(
    model_path, corpus_files, documents, tmp_path, capsys
):
    """One letter changed: the same documents and words, so only the corpus digest the file records
    tells these files from the ones the model trained on."""
    edited = write_corpus(tmp_path / "edited", [documents[0].replace("e", "a", 1), *documents[1:]])["csv"]
    assert main(["evaluate", str(model_path), str(corpus_files["csv"]), "--trained-on", str(edited)]) == 2
    err = capsys.readouterr().err
    assert "--trained-on" in err and "documents whose text differs from the model's corpus" in err, err
