"""What a fine-tuned run takes from its base and what it leaves: the dropout settings and ``decode_html``
are the base's unless given (an option typed is given, whatever its value); a base model file's int8
weights and decoding defaults are its export's, recorded with the run and named by the fine-tuned run's
export where it leaves them out; ``nextword evaluate`` names the base to give ``--split-of``."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("tf2onnx", reason="tf2onnx missing: install nextword[train]")

from helpers import machine_documents, tuning_config, write_corpus
from nextword.cli.main import main
from nextword.cli.split_refusal import _base_split_hint
from nextword.export import ExportConfig, export
from nextword.export.provenance import warn_base_lost
from nextword.runtime import BUNDLED_MODEL, TokenizerConfig, load
from nextword.runtime.generation import GenerationConfig
from nextword.train import ModelConfig, train
from nextword.train.base import fine_tuning_config, read_base

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
# The base model file's decoding defaults: what its export was given
DECODING = GenerationConfig(no_repeat_ngram_size=3, temperature=0.7, stop=("END", "THE END"))
# The dropout settings written into the edited base run: none of them the default
BASE_DROPOUT = {"dropout": 0.3, "locked_dropout": True, "word_dropout": 0.1}
DROPOUT_FIELDS = tuple(f"model.{name}" for name in BASE_DROPOUT)


@pytest.fixture(scope="module")
def new_corpus(tmp_path_factory) -> Path:
    """Machines, some documents with HTML character references (``&amp;``) as scraped text holds them."""
    documents = machine_documents(60, seed=11)
    documents = [d.replace(" is coupled to ", " &amp; ") if i % 3 else d for i, d in enumerate(documents)]
    assert sum("&amp;" in d for d in documents) > 10
    return write_corpus(tmp_path_factory.mktemp("machines-html"), documents)["csv"]


@pytest.fixture(scope="module")
def base_file(run_dir: Path, tmp_path_factory) -> Path:
    """The session's tiny run exported as the bundled model is: int8, with decoding defaults."""
    out = tmp_path_factory.mktemp("base-file") / "base-int8.onnx"
    export(ExportConfig(run_dir=str(run_dir), out=str(out), int8=True, generation=DECODING, evaluate=False))
    return out


@pytest.fixture(scope="module")
def tuned_run(base_file: Path, new_corpus: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tuned-from-file") / "run"
    train(tuning_config(base_file, new_corpus, out, epochs=1))
    return out


@pytest.fixture(scope="module")
def tuned_file(tuned_run: Path) -> Path:
    out = tuned_run.parent / "tuned.onnx"
    export(ExportConfig(run_dir=str(tuned_run), out=str(out), evaluate=False, tune_cache=False))
    return out


@pytest.fixture(scope="module")
def html_base(run_dir: Path, tmp_path_factory) -> dict[str, Path]:
    """A copy of the session's run as if it had read its corpus with HTML character references decoded
    and trained with dropout settings none of which is the default (its config.json edited), and that
    run's model file."""
    folder = tmp_path_factory.mktemp("html-base")
    run = folder / "run"
    shutil.copytree(run_dir, run)
    stored = json.loads((run / "config.json").read_text(encoding="utf-8"))
    stored["corpus"]["decode_html"] = True
    stored["model"] |= BASE_DROPOUT
    (run / "config.json").write_text(json.dumps(stored), encoding="utf-8")
    model_file = folder / "html-base.onnx"
    export(ExportConfig(run_dir=str(run), out=str(model_file), evaluate=False, tune_cache=False))
    return {"run": run, "file": model_file}


def warnings_of(caplog, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger and r.levelno == logging.WARNING]


# 1. A base model file's decoding defaults and int8 weights


def test_the_run_records_the_base_files_decoding_defaults(tuned_run, run_dir):
    facts = json.loads((tuned_run / "config.json").read_text(encoding="utf-8"))["base"]
    assert facts["quantized"] is True
    assert facts["decoding_defaults"] == {
        "temperature": 0.7,
        "no_repeat_ngram_size": 3,
        "stop": ["END", "THE END"],
    }


def test_a_base_run_folder_records_no_decoding_defaults(run_dir, new_corpus, tmp_path):
    config = tuning_config(run_dir, new_corpus, tmp_path / "x")
    from nextword.train.base import base_facts

    facts = base_facts(read_base(config))
    assert facts["decoding_defaults"] is None and facts["quantized"] is False


def test_the_export_names_the_base_files_settings_it_leaves_out(tuned_run, tmp_path, capsys, caplog):
    """One warning, with the options to pass again as ``nextword export`` takes them; none once they
    are given, or once this export sets decoding defaults of its own and is int8."""
    out = tmp_path / "tuned.onnx"
    argv = ["export", str(tuned_run), "--out", str(out), "--no-evaluate", "--no-tune-cache"]
    with caplog.at_level(logging.WARNING, logger="nextword"):
        assert main(argv) == 0, capsys.readouterr().err
    (said,) = warnings_of(caplog, "nextword.export.provenance")
    flags = "--int8 --temperature=0.7 --no-repeat-ngram-size=3 --stop END --stop 'THE END'"
    assert f"the base base-int8.onnx was exported with {flags}, and this export is not int8 and " in said
    assert "sets no decoding defaults" in said and "pass them again to keep them" in said, said
    # the flags as said give the base file's settings back, and nothing is said then
    caplog.clear()
    again = [*argv, "--overwrite", "--int8", "--temperature=0.7", "--no-repeat-ngram-size=3"]
    with caplog.at_level(logging.WARNING, logger="nextword"):
        assert main([*again, "--stop", "END", "--stop", "THE END"]) == 0, capsys.readouterr().err
    assert warnings_of(caplog, "nextword.export.provenance") == []
    assert load(out).info.generation == DECODING and load(out).info.config["export"]["int8"] is True


@pytest.mark.parametrize(
    "facts, config, said",
    [
        ({"quantized": True}, ExportConfig(), "exported with int8=True, and this export is not int8: "),
        (
            {"quantized": False, "decoding_defaults": {"top_k": 5}},
            ExportConfig(),
            "exported with top_k=5, and this export sets no decoding defaults: ",
        ),
        ({"quantized": True}, ExportConfig(int8=True), None),
        (
            {"quantized": True, "decoding_defaults": {"top_k": 5}},
            ExportConfig(int8=True, generation=GenerationConfig(max_words=20)),  # its own defaults
            None,
        ),
        (
            {"quantized": True, "decoding_defaults": {"top_k": 5}},
            ExportConfig(generation=GenerationConfig(max_words=20)),
            "exported with int8=True, and this export is not int8: ",
        ),
        ({"quantized": False, "decoding_defaults": None}, ExportConfig(), None),  # a run folder
        ({"quantized": False, "decoding_defaults": {"top_k": "many"}}, ExportConfig(), None),  # hand-edited
    ],
    ids=["int8", "decoding", "int8-given", "own-defaults", "int8-only", "run-folder", "damaged"],
)
def test_what_the_export_warning_names(facts, config, said, caplog):
    stored = {"base": {"run": "/models/base.onnx", "kind": "model file", **facts}}
    with caplog.at_level(logging.WARNING, logger="nextword"):
        warn_base_lost(config, stored)
        warn_base_lost(config, {})  # trained from scratch: nothing to say
    warnings = warnings_of(caplog, "nextword.export.provenance")
    if said is None:
        assert warnings == []
    else:
        (warning,) = warnings
        assert warning.startswith(f"the base base.onnx was {said}"), warning


# 2 and 3. Dropout settings and decode_html: the base's unless given


@pytest.mark.parametrize("kind", ["run", "file"])
def test_dropout_and_decode_html_are_the_bases_unless_given(kind, html_base, new_corpus, tmp_path, caplog):
    config = tuning_config(html_base[kind], new_corpus, tmp_path / "x")  # every setting at its default
    base = read_base(config)
    assert base.config.corpus.decode_html is True
    assert {k: getattr(base.config.model, k) for k in BASE_DROPOUT} == BASE_DROPOUT
    with caplog.at_level(logging.INFO, logger="nextword"):
        tuned = fine_tuning_config(config, base)
    assert tuned.corpus.decode_html is True
    assert "decode_html=True, as the base's corpus was read" in caplog.text
    assert {k: getattr(tuned.model, k) for k in BASE_DROPOUT} == BASE_DROPOUT
    # the same values, the defaults, given: the caller's
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="nextword"):
        given = fine_tuning_config(config, base, given=(*DROPOUT_FIELDS, "corpus.decode_html"))
    assert given.corpus.decode_html is False and "decode_html" not in caplog.text
    defaults = ModelConfig()
    assert {k: getattr(given.model, k) for k in BASE_DROPOUT} == {
        k: getattr(defaults, k) for k in BASE_DROPOUT
    }


def test_a_network_or_tokenizer_setting_given_at_its_default_is_a_conflict(run_dir, new_corpus, tmp_path):
    """Given, a default value is asked for: where the base's differs, it is refused as any other."""
    config = tuning_config(run_dir, new_corpus, tmp_path / "x")
    base = read_base(config)
    assert base.config.model.lstm_units != ModelConfig().lstm_units
    fine_tuning_config(config, base)  # left out: the base's
    with pytest.raises(ValueError, match=r"lstm_units=256 \(the base's: 32\)"):
        fine_tuning_config(config, base, given=("model.lstm_units",))
    assert base.config.tokenizer.min_count != config.tokenizer.min_count
    with pytest.raises(ValueError, match=r"tokenizer min_count=") as refused:
        fine_tuning_config(config, base, given=("tokenizer.min_count",))
    assert "extend_vocabulary" not in str(refused.value)  # it changes nothing about min_count
    # max_vocab is taken with extend_vocabulary (the bound of the words it adds), which the refusal says
    with pytest.raises(ValueError, match=r"tokenizer max_vocab=.*add extend_vocabulary=True, where it"):
        fine_tuning_config(replace(config, tokenizer=TokenizerConfig(max_vocab=5_000)), base)


def test_the_command_line_keeps_typed_defaults_and_takes_decode_html_from_the_base(
    html_base, new_corpus, tmp_path, capsys, caplog
):
    """``--dropout 0.2`` (the default) over the base's 0.3, as the recorded command says; the corpus's
    ``&amp;`` decoded as the base's corpus was, so ``--extend-vocabulary`` adds no word "amp"."""
    out = tmp_path / "cli"
    argv = ["train", str(new_corpus), "--init-from", str(html_base["run"]), "--out", str(out)]
    argv += ["--dropout", "0.2", "--no-locked-dropout", "--word-dropout", "0", "--extend-vocabulary"]
    argv += ["--epochs", "1", "--seq-len", "16", "--batch-size", "8", "--verbose", "0"]
    with caplog.at_level(logging.INFO, logger="nextword"):
        assert main(argv) == 0, capsys.readouterr().err
    stored = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert {k: stored["model"][k] for k in BASE_DROPOUT} == {
        "dropout": 0.2,
        "locked_dropout": False,
        "word_dropout": 0.0,
    }
    assert "--dropout 0.2" in stored["command"]
    assert stored["corpus"]["decode_html"] is True
    assert "--decode-html, as the base's corpus was read" in caplog.text, caplog.text
    base_tokens = json.loads((html_base["run"] / "tokenizer.json").read_text())["tokens"]
    added = json.loads((out / "tokenizer.json").read_text())["tokens"][len(base_tokens) :]
    assert "gearbox" in added and "amp" not in added, added


def test_extend_vocabulary_logs_no_coverage_of_a_vocabulary_the_run_does_not_use(
    run_dir, new_corpus, tmp_path, caplog
):
    """The vocabulary pass over the new corpus counts its words without a bound: its "0.0% of the
    training words are outside the vocabulary" is of no vocabulary the run uses, and is not logged; the
    shares of the base vocabulary and the words added are."""
    with caplog.at_level(logging.INFO, logger="nextword"):
        train(tuning_config(run_dir, new_corpus, tmp_path / "run", epochs=1, extend_vocabulary=True))
    encode = [r.getMessage() for r in caplog.records if r.name == "nextword.corpus.encode"]
    assert any(m.startswith("vocabulary pass: ") for m in encode), encode
    assert not [m for m in encode if "of the training words are outside the vocabulary" in m], encode
    assert "of this corpus's training words are outside the base vocabulary; " in caplog.text


# 4 and 5. The base's own text, scored; the refusal that names --split-of


def test_evaluate_names_the_base_to_give_split_of_and_scores_the_bases_documents(
    tuned_file, base_file, corpus_files, run_dir, capsys
):
    """The fine-tuned model on the base's validation documents, as docs/fine-tuning.md shows: refused
    without ``--split-of`` (the files are not its corpus), with the base's file named; scored with it."""
    base_corpus = str(corpus_files["csv"])
    assert main(["evaluate", str(tuned_file), base_corpus, "--split", "val"]) != 0
    err = capsys.readouterr().err
    hint = "if they are the corpus of its base, base-int8.onnx, add --split-of base-int8.onnx to score "
    assert hint in err and f"{tuned_file} on the base's val documents" in err, err
    argv = [
        "evaluate",
        str(tuned_file),
        base_corpus,
        "--split",
        "val",
        "--split-of",
        str(base_file),
        "--json",
    ]
    assert main([*argv, "--no-cache"]) == 0, capsys.readouterr().err
    scored = json.loads(capsys.readouterr().out)
    assert scored["documents"] == json.loads((run_dir / "config.json").read_text())["data"]["val_documents"]
    doc = (ROOT / "docs" / "fine-tuning.md").read_text(encoding="utf-8")
    assert "nextword evaluate TUNED.onnx BASE_CORPUS.csv --split val --split-of BASE.onnx" in doc


def test_a_split_of_the_fine_tuned_model_on_the_bases_corpus_is_told_what_to_give_instead(
    tuned_file, base_file, corpus_files, capsys
):
    """--split-of already given, naming the fine-tuned model, on its base's corpus: the advice was to
    "add" --split-of with the base, which the command had (and, scoring the base itself, needs none)."""
    base_corpus = str(corpus_files["csv"])
    split = ["--split", "val", "--split-of", str(tuned_file)]
    assert main(["evaluate", str(base_file), base_corpus, *split]) != 0
    err = capsys.readouterr().err
    said = f"base-int8.onnx, leave --split-of out to score {base_file} on its own val documents"
    assert said in err and "add --split-of" not in err, err
    assert main(["evaluate", str(tuned_file), base_corpus, *split]) != 0
    err = capsys.readouterr().err
    said = f"give --split-of base-int8.onnx in place of this one to score {tuned_file} on the base's val"
    assert said in err and "add --split-of" not in err, err


@pytest.mark.parametrize(
    "base, said",
    [
        (None, ""),
        (
            SimpleNamespace(run="base run", kind="run"),
            "add --split-of and the model file exported from the run base run ",
        ),
        (SimpleNamespace(run="my base.onnx", kind="model file"), "add --split-of 'my base.onnx' to score"),
        (
            SimpleNamespace(run=BUNDLED_MODEL.name, kind="model file"),
            f"add --split-of {BUNDLED_MODEL} to score",
        ),
    ],
    ids=["scratch", "run", "file", "bundled"],
)
def test_the_split_of_hint(base, said):
    hint = _base_split_hint(
        SimpleNamespace(model="t.onnx", split="val", split_of=None), SimpleNamespace(base=base)
    )
    assert said in hint and (hint == "") == (base is None), hint


def test_the_doc_says_what_comes_from_the_base_and_what_the_export_sets():
    doc = (ROOT / "docs" / "fine-tuning.md").read_text(encoding="utf-8")
    for words in ("decoding_defaults", "--no-decode-html", 'given=("model.dropout",)', "What the base knew"):
        assert words in doc, words
    assert "nextword export runs/mine --out mine.onnx --int8 --no-repeat-ngram-size 4" in doc
