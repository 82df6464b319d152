"""Findings of a docstring audit: what the docstrings say is true, and where the code did not do what a
docstring or the error conventions promise, it does now: ServeConfig's log_level, model and api_keys
types, the near-duplicate threshold checked with keep_duplicates too, and wrong types given to
create_app, serve, rebuild_split and build_vocabulary refused with a WrongTypeError (or a
CorpusError for a model file that records no provenance)."""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import sys
import textwrap
import types
from pathlib import Path

import pytest

from helpers import synthetic_documents, write_corpus
from nextword.corpus import CorpusConfig, CorpusError, rebuild_split, split_corpus
from nextword.corpus.encode import build_vocabulary
from nextword.runtime import BUNDLED_MODEL, NextWordModel, WrongTypeError, load
from nextword.runtime.limits import LoadLimits
from nextword.runtime.tokenizer import TokenizerConfig
from nextword.serve import ServeConfig, create_app, serve


@pytest.fixture(scope="module")
def bundled() -> NextWordModel:
    return load(BUNDLED_MODEL)


# ----------------------------------------------------------------- ServeConfig


@pytest.mark.parametrize(
    ("level", "error", "message"),
    [
        (
            "trace",
            ValueError,
            r"^log_level must be one of debug, info, warning, error, critical .*got 'trace'$",
        ),
        (
            "INFO",
            ValueError,
            r"^log_level must be one of debug, info, warning, error, critical \(lowercase.*got 'INFO'$",
        ),
        (5, WrongTypeError, r"^log_level must be one of debug, info, warning, error, critical, got 5$"),
        (None, WrongTypeError, r"^log_level must be one of .*got None$"),
    ],
)
def test_serve_config_refuses_a_log_level_serve_cannot_use(level, error, message):
    """serve() crashed on these (logging.getLevelName("TRACE") is a string; 5 has no .upper())."""
    with pytest.raises(error, match=message) as caught:
        ServeConfig(log_level=level)
    assert isinstance(caught.value, WrongTypeError) is (error is WrongTypeError)


def test_log_level_takes_its_declared_choices_and_nothing_else():
    (field,) = [item for item in dataclasses.fields(ServeConfig) if item.name == "log_level"]
    choices = field.metadata["choices"]
    assert [ServeConfig(log_level=level).log_level for level in choices] == list(choices)
    with pytest.raises(ValueError, match="log_level must be one of"):
        ServeConfig(log_level="trace")  # uvicorn's, but serve() cannot set nextword's loggers to it


def test_serve_config_takes_a_path_object_as_model_and_stores_its_str(tmp_path):
    """As TrainConfig and ExportConfig do; the workers of --workers get it back from JSON."""
    config = ServeConfig(model=tmp_path / "m.onnx", workers=2)
    assert config.model == str(tmp_path / "m.onnx") and type(config.model) is str
    again = ServeConfig(**json.loads(json.dumps(dataclasses.asdict(config))))  # app_from_environment's way
    assert again == config


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (123, r"^api_keys must be an API key or a list of them, got int$"),
        ({"k": 1}, r"^api_keys must be an API key or a list of them, got dict$"),
        ([123], r"^api_keys has a key that is not 1 to 1024 visible ASCII characters \(int\)"),
    ],
)
def test_api_keys_of_the_wrong_type_are_wrong_type_errors(keys, message):
    with pytest.raises(WrongTypeError, match=message):
        ServeConfig(api_keys=keys)
    with pytest.raises(ValueError, match="has a key that is not 1 to 1024") as caught:
        ServeConfig(api_keys=["with space"])  # a str, of the wrong characters: a plain ValueError
    assert not isinstance(caught.value, WrongTypeError)


# ----------------------------------------------------------------- create_app and serve


@pytest.fixture()
def no_server(monkeypatch):
    """uvicorn replaced: a serve() that got past its checks fails at once instead of serving."""

    def run(*args, **kwargs):
        raise AssertionError("serve() was not refused before the server started")

    monkeypatch.setitem(sys.modules, "uvicorn", types.SimpleNamespace(run=run, __version__="0"))


@pytest.mark.parametrize("start", [create_app, serve], ids=["create_app", "serve"])
@pytest.mark.parametrize(
    ("config", "model", "message"),
    [
        (
            {},
            None,
            r"^config must be a ServeConfig \(ServeConfig\(model=\.\.\., port=\.\.\.\)\), or None, got \{\}$",
        ),
        ({"port": 9}, None, r"^config must be a ServeConfig"),
        (
            None,
            "model.onnx",
            r"^model must be a loaded NextWordModel, got the path 'model\.onnx'.*ServeConfig\(model=path\)",
        ),
        (
            None,
            Path("model.onnx"),
            r"got the path 'model\.onnx': to serve a file, pass ServeConfig\(model=path\)",
        ),
        (
            None,
            5,
            r"^model must be a loaded NextWordModel \(nextword\.runtime\.load\(path\)\), or None, got 5$",
        ),
    ],
)
def test_create_app_and_serve_refuse_arguments_of_the_wrong_type(no_server, start, config, model, message):
    """A dict was taken for the defaults when empty and failed on an attribute otherwise; a path as the
    model failed with "'str' object has no attribute 'source'"."""
    with pytest.raises(WrongTypeError, match=message):
        start(config, model)


# ----------------------------------------------------------------- corpus


@pytest.mark.parametrize(
    ("threshold", "error"),
    [(5, ValueError), (0, ValueError), ("0.5", WrongTypeError), (True, WrongTypeError)],
)
def test_the_near_duplicate_threshold_is_checked_with_keep_duplicates_too(threshold, error):
    with pytest.raises(error, match="near_duplicate_threshold must be"):
        CorpusConfig(keep_duplicates=True, near_duplicate_threshold=threshold)
    with pytest.raises(error, match="near_duplicate_threshold must be"):
        CorpusConfig(keep_duplicates=False, near_duplicate_threshold=threshold)


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    path = write_corpus(tmp_path_factory.mktemp("corpus"), synthetic_documents(20))["csv"]
    return split_corpus(CorpusConfig(paths=(str(path),)), log=False)


def test_rebuild_split_of_a_model_that_records_no_provenance_is_a_corpus_error(split):
    with pytest.raises(CorpusError, match=r"records no provenance .*split_corpus\(corpus\) makes a new one"):
        rebuild_split(None, split.corpus)


def test_rebuild_split_refuses_a_provenance_of_another_type(split):
    with pytest.raises(WrongTypeError, match=r"^provenance must be a Provenance, as load\(path\)\.info"):
        rebuild_split({"split": {"scheme": "documents-v1"}}, split.corpus)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (lambda split: ({"labels": []}, TokenizerConfig()), r"^split must be a DocumentSplit"),
        (
            lambda split: (split.corpus, TokenizerConfig()),
            r"^split must be a DocumentSplit .*got CorpusConfig",
        ),
        (
            lambda split: (split, {"max_vocab": 50}),
            r"^config must be a TokenizerConfig .*got \{'max_vocab': 50\}$",
        ),
        (lambda split: (split, None), r"^config must be a TokenizerConfig"),
    ],
)
def test_build_vocabulary_refuses_arguments_of_the_wrong_type(split, args, message):
    with pytest.raises(WrongTypeError, match=message):
        build_vocabulary(*args(split))
    assert len(build_vocabulary(split, TokenizerConfig(min_count=1))) > 3  # the right types still build


# ----------------------------------------------------------------- what the docstrings say


def _public_names():
    from nextword.runtime import BeamSearch, Evaluation, GenerationConfig, StepModel, Tokenizer

    return {
        "NextWordModel.tokenizer": NextWordModel.tokenizer,
        "NextWordModel.vocab_size": NextWordModel.vocab_size,
        "Tokenizer.pad_id": Tokenizer.pad_id,
        "Tokenizer.unk_id": Tokenizer.unk_id,
        "Tokenizer.eod_id": Tokenizer.eod_id,
        "GenerationConfig.greedy": GenerationConfig.greedy,
        "BeamSearch.done": BeamSearch.done,
        "Evaluation.to_dict": Evaluation.to_dict,
        "StepModel.tokenizer": StepModel.tokenizer,
        "StepModel.vocab_size": StepModel.vocab_size,
    }


@pytest.mark.parametrize("name", sorted(_public_names()))
def test_public_names_have_a_docstring(name):
    assert (_public_names()[name].__doc__ or "").strip(), f"{name} has no docstring for help() to show"


def _docs():
    """(object, the phrases its docstring must hold): each names a behaviour checked in the code."""
    from nextword.corpus import load_documents, split_documents
    from nextword.export import export
    from nextword.runtime import BeamSearch, Generator, astream, default_model, evaluate, evaluate_ids
    from nextword.serve import require_framework
    from nextword.train import MissingExtraError, TrainConfig, resume, train

    return {
        "load": (
            load,
            ["ModelLimitError", "``threads`` outside 1..256 or with ``session_options``", "``device``"],
        ),
        "NextWordModel": (NextWordModel, ["``info``", "``source``", '"<model bytes>"']),
        "NextWordModel.score": (NextWordModel.score, ["No words: ``ValueError``", "next_words"]),
        "NextWordModel.generate_ids": (
            NextWordModel.generate_ids,
            ["defaults not merged in", "``num_beams`` and ``num_return_sequences`` set to 1"],
        ),
        "evaluate": (evaluate, ["``True`` for the file's", "CacheConfig", "No documents: ``ValueError``"]),
        "evaluate_ids": (evaluate_ids, ["No documents", "``ValueError``"]),
        "Generator": (Generator, ["``chunk``", "``stepper``"]),
        "Generator.text": (Generator.text, ["unknown or released row is a ``ValueError``"]),
        "Generator.tokens": (Generator.tokens, ["unknown or released row is a ``ValueError``"]),
        "Generator.finish_reason": (Generator.finish_reason, ["unknown or released"]),
        "BeamSearch": (BeamSearch, ["``lstrip[i]``", "``ends[i]``"]),
        "astream": (astream, ["``config``: a :class:`~.generation.GenerationConfig`"]),
        "default_model": (default_model, ["``device`` or ``limits`` with a loaded model, an empty path"]),
        "split_documents": (split_documents, ["Under 2 documents", "CorpusError"]),
        "load_documents": (load_documents, ["``config.paths`` is ignored"]),
        "ServeConfig.load_limits": (
            ServeConfig.load_limits,
            ["``None``", "LoadLimits().without_size_caps()"],
        ),
        "TrainConfig.from_dict": (TrainConfig.from_dict, ["``tie_embeddings=False``", "default ``True``"]),
        "MissingExtraError": (MissingExtraError, ["``train``", "``serve``", "prometheus_client"]),
        "require_framework": (require_framework, ["prometheus_client"]),
        "export": (
            export,
            [
                "ExportReport",
                "WrongTypeError",
                "MissingExtraError",
                "unset ``out``",
                "not a nextword model",
                "``FileNotFoundError``",
                "ModelTooLargeError",
                "ParityError",
                "ExportError",
            ],
        ),
        "create_app": (
            create_app,
            [
                "``ServeConfig()``",
                "served as it is",
                "``device`` other than ``cpu`` with a ``model``",
                "WrongTypeError",
                "ModelFileError",
                "MissingExtraError",
            ],
        ),
        "serve": (serve, ["``model`` with ``workers > 1``", "AddressUnavailableError"]),
        "train": (train, ["``dev_fraction=0``", "RunBusyError", "MissingExtraError", "WrongTypeError"]),
        "resume": (
            resume,
            [
                "return a :class:`TrainResult`",
                "A finished run continues",
                "``checkpoint_steps``",
                "``TypeError``",
                "NotARunError",
                "RunBusyError",
                "MissingExtraError",
            ],
        ),
    }


@pytest.mark.parametrize("name", sorted(_docs()))
def test_docstrings_say_what_the_code_does(name):
    obj, phrases = _docs()[name]
    doc = " ".join(inspect.getdoc(obj).split())  # one line: a phrase may be wrapped anywhere
    missing = [phrase for phrase in phrases if phrase not in doc]
    assert not missing, f"{name}'s docstring does not say {missing}"


def test_next_words_is_refused_past_the_vocabulary_and_lists_every_word_from_vocab_size_minus_3(bundled):
    doc = " ".join(inspect.getdoc(NextWordModel.next_words).split())
    assert "``k``: 1..``vocab_size``" in doc and "``k >= vocab_size - 3`` lists every word" in doc
    assert "CacheConfig" in doc and "``True``: the file's" in doc
    every = bundled.vocab_size - len(bundled.tokenizer.special_ids)
    listed = bundled.next_words("the", k=every)
    assert len(listed) == every == len(bundled.next_words("the", k=bundled.vocab_size))
    assert not {word for word, _ in listed} & {"<pad>", "<unk>", "<eod>"}
    with pytest.raises(ValueError, match=f"k must be an integer in 1..{bundled.vocab_size}"):
        bundled.next_words("the", k=bundled.vocab_size + 1)


def test_the_load_limits_example_imports_what_it_uses_and_runs():
    doc = inspect.getdoc(LoadLimits)
    block = re.search(r"e\.g\.::\n\n((?:    .*\n|\n)+)", doc + "\n")
    assert block, "LoadLimits' docstring has no example block"
    code = textwrap.dedent(block.group(1))
    assert "from nextword.runtime.limits import MiB" in code
    scope = {"load": load, "LoadLimits": LoadLimits, "path": BUNDLED_MODEL}
    exec(code, scope)  # MiB comes from the example's own import
    assert scope["MiB"] == 1 << 20
