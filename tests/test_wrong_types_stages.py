"""The stages' configs and the corpus functions refuse a value of the wrong type with a WrongTypeError (a
TypeError and a ValueError) that names the parameter, what it takes and what it got; a value of the right
type out of range stays a plain ValueError. Before, many of these were a plain ValueError, and some
failed later on an attribute (a dict or None for a CorpusConfig), in pathlib or numpy, or were taken for
what they are not (a str's characters read as files or documents)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nextword.corpus import (
    CorpusConfig,
    check_options,
    count_documents,
    detect_format,
    encode_stream,
    load_documents,
    read_corpus,
    read_documents,
    split_corpus,
    split_documents,
    validation_indices,
)
from nextword.export import ExportConfig
from nextword.runtime import TokenizerConfig
from nextword.runtime.errors import WrongTypeError
from nextword.runtime.tokenizer import Tokenizer
from nextword.serve.config import ServeConfig
from nextword.train import ModelConfig, TrainConfig

DOCUMENTS = "the first document\n\nthe second one\n\na third document here\n"


def refused(call, message: str) -> WrongTypeError:
    """What ``call`` raised: a WrongTypeError (a TypeError and a ValueError) whose message matches."""
    with pytest.raises(WrongTypeError, match=message) as caught:
        call()
    assert isinstance(caught.value, TypeError) and isinstance(caught.value, ValueError)
    return caught.value


@pytest.fixture
def corpus_file(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(DOCUMENTS, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ModelConfig(embedding_dim="8"), r"^embedding_dim must be a positive integer, got '8'$"),
        (lambda: ModelConfig(num_layers=2.0), r"^num_layers must be a positive integer, got 2\.0$"),
        (lambda: ModelConfig(dropout="0.2"), r"^dropout must be in \[0, 1\), got '0\.2'$"),
        (
            lambda: TrainConfig(corpus={"paths": ["a.csv"]}),
            r"^corpus must be a CorpusConfig, got dict \(build",
        ),
        (lambda: TrainConfig(model=None), r"^model must be a ModelConfig, got NoneType"),
        (lambda: TrainConfig(tokenizer={}), r"^tokenizer must be a TokenizerConfig, got dict"),
        (
            lambda: TrainConfig(base_corpus=5, init_from="base"),
            r"^base_corpus must be a list of file paths, got int$",
        ),
        (lambda: TrainConfig(seq_len=50.0), r"^seq_len must be a positive integer, got 50\.0$"),
        (lambda: TrainConfig(epochs="3"), r"^epochs must be a positive integer, got '3'$"),
        (lambda: TrainConfig(seed="1"), r"^seed must be in 0\.\.4294967295, got '1'$"),
        (lambda: TrainConfig(patience=None), r"^patience must be an integer >= 0, got None$"),
        (lambda: TrainConfig(verbose=True), r"^verbose must be 0 \(silent\), 1 \(progress bar\) or 2"),
        (lambda: TrainConfig(learning_rate="0.1"), r"^learning_rate must be a positive number, got '0\.1'$"),
        (lambda: TrainConfig(clipnorm=True), r"^clipnorm must be a positive number, got True$"),
        (lambda: TrainConfig(dev_fraction=None), r"^dev_fraction must be in \[0, 1\), got None$"),
        (lambda: TrainConfig(lr_schedule=None), r"^lr_schedule must be one of \('cosine', 'constant'\)"),
        (lambda: TrainConfig(lr_scaling=1), r"^lr_scaling must be one of .*, got 1$"),
        (lambda: TrainConfig(distribute=["none"]), r"^distribute must be one of .*, got \['none'\]$"),
        (lambda: TrainConfig(checkpoint_steps=1.5), r"^checkpoint_steps must be an integer >= 0, got 1\.5$"),
        (
            lambda: TrainConfig(max_minutes="5"),
            r"^max_minutes must be a positive number of minutes, got '5'$",
        ),
        (lambda: ExportConfig(generation={"top_k": 5}), r"^generation must be a GenerationConfig, got dict"),
        (lambda: ExportConfig(parity_seed="0"), r"^parity_seed must be an integer, got '0'$"),
        (lambda: CorpusConfig(paths=5), r"^paths must be a list of file paths, got 5$"),
        (lambda: CorpusConfig(paths={"a.txt"}), r"^paths must be a list of file paths, got \{'a\.txt'\}$"),
        (lambda: CorpusConfig(format=None), r"^corpus format must be one of .*, got None$"),
        (lambda: CorpusConfig(val_fraction="0.1"), r"^val_fraction must be a number between 0 and 1"),
        (lambda: ServeConfig(port="8000"), r"^port must be an integer in 0\.\.65535, got '8000'$"),
        (lambda: ServeConfig(max_batch=2.0), r"^max_batch must be an integer in 1\.\.\d+, got 2\.0$"),
        (lambda: ServeConfig(batching="no"), r"^batching must be True or False, got 'no'$"),
        (
            lambda: ServeConfig(stream_interval="0.1"),
            r"^stream_interval must be a number of seconds in 0\.\.1",
        ),
        (
            lambda: ServeConfig(shutdown_timeout=True),
            r"^shutdown_timeout must be in 0\.\.3600 seconds, got True$",
        ),
        (lambda: ServeConfig(request_timeout=None), r"^request_timeout must be a number of seconds in 0\.1"),
        (lambda: ServeConfig(host=5), r"^host must be a host name or an IP address, got 5$"),
        (lambda: ServeConfig(model=5), r"^model must be the path of a \.onnx file, got 5; leave it out"),
        (lambda: ServeConfig(ssl_certfile=5), r"^ssl_certfile must be the path of a PEM file, got 5$"),
        (lambda: ServeConfig(cors_origins=5), r"^cors_origins must be an origin \(http"),
        (
            lambda: ServeConfig(cors_origins=["http://a.example", 5]),
            r"^cors_origins has 5, which is not a string",
        ),
        (
            lambda: ServeConfig(forwarded_allow_ips=[None]),
            r"^forwarded_allow_ips has None, which is not a string",
        ),
        (lambda: ServeConfig(root_path=5), r"^root_path must be a path prefix"),
        (lambda: ServeConfig(served_model_name=5), r"^served_model_name must be a model name or a list"),
        (lambda: ServeConfig(served_model_name=[5]), r"^served_model_name 5 is not a model name"),
        (lambda: ServeConfig(forwarded_allow_ips=5), r"^forwarded_allow_ips must be a list of IP addresses"),
    ],
)
def test_a_config_field_of_the_wrong_type_is_a_wrong_type_error(make, message: str) -> None:
    refused(make, message)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ModelConfig(embedding_dim=0), r"^embedding_dim must be a positive integer, got 0$"),
        (lambda: ModelConfig(dropout=1.0), r"^dropout must be in \[0, 1\), got 1\.0$"),
        (lambda: TrainConfig(seed=-1), r"^seed must be in 0\.\.4294967295, got -1$"),
        (lambda: TrainConfig(verbose=3), r"^verbose must be 0 \(silent\), 1 \(progress bar\) or 2"),
        (
            lambda: TrainConfig(learning_rate=float("nan")),
            r"^learning_rate must be a positive number, got nan$",
        ),
        # an integer beyond a float's range: math.isfinite raised OverflowError before
        (lambda: TrainConfig(clipnorm=10**400), r"^clipnorm must be a positive number, got 1000"),
        (lambda: TrainConfig(lr_schedule="linear"), r"^lr_schedule must be one of"),
        (lambda: TrainConfig(max_minutes=0), r"^max_minutes must be a positive number of minutes, got 0$"),
        (lambda: ExportConfig(parity_seed=-1), r"^parity_seed must be in 0\.\.4294967295, got -1$"),
        (lambda: CorpusConfig(val_fraction=1.0), r"^val_fraction must be a number between 0 and 1"),
        (lambda: CorpusConfig(format="xml"), r"^corpus format must be one of"),
        (lambda: ServeConfig(port=70000), r"^port must be an integer in 0\.\.65535, got 70000$"),
        (lambda: ServeConfig(shutdown_timeout=5000), r"^shutdown_timeout must be in 0\.\.3600 seconds"),
        (lambda: ServeConfig(host=""), r"^host must be a host name or an IP address, got ''$"),
        (lambda: ServeConfig(model=" "), r"^model must be the path of a \.onnx file, got ' '"),
        (
            lambda: ServeConfig(cors_origins=["ftp://x"]),
            r"^cors_origins has 'ftp://x', which is not an origin",
        ),
    ],
)
def test_a_value_of_the_right_type_out_of_range_stays_a_plain_value_error(make, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        make()
    assert not isinstance(caught.value, TypeError), caught.value


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "text_column",
            None,
            r"^text_column must be the name of a CSV column \(a str\), or 'auto', got None$",
        ),
        ("text_column", 5, r"^text_column must be .*, got 5$"),
        ("json_field", ["a"], r"^json_field must be the name of a JSON Lines field \(a str\), got \['a'\]$"),
        ("json_field", b"a", r"^json_field must be .*, got b'a'$"),
    ],
)
def test_the_text_column_and_json_field_are_checked_when_the_config_is_made(field, value, message) -> None:
    """Both were taken as given, then failed when a file was read: json_field=['a'] as an unhashable
    TypeError on the first JSON line."""
    refused(lambda: CorpusConfig(**{field: value}), message)


def test_from_dict_reads_a_str_path_as_one_file_as_corpus_config_does() -> None:
    """It made the characters of 'a.txt' five paths: ('a', '.', 't', 'x', 't')."""
    assert CorpusConfig(paths="a.txt").paths == ("a.txt",)
    assert TrainConfig.from_dict({"corpus": {"paths": "a.txt"}}).corpus.paths == ("a.txt",)
    assert TrainConfig.from_dict({"corpus": {"paths": ["a.txt", "b.txt"]}}).corpus.paths == ("a.txt", "b.txt")
    stored = TrainConfig(corpus=CorpusConfig(paths=("a.txt",))).to_dict()
    assert TrainConfig.from_dict(stored) == TrainConfig(
        corpus=CorpusConfig(paths=("a.txt",)), model=ModelConfig()
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], r"^data must be a mapping of settings \(a JSON object, as to_dict\(\) writes\), got \[\]$"),
        ("config.json", r"^data must be a mapping of settings"),
        (None, r"^data must be a mapping of settings"),
        ({"corpus": ["a.txt"]}, r"^corpus must be a mapping of settings .*, got \['a\.txt'\]$"),
        ({"model": None}, r"^model must be a mapping of settings .*, got None$"),
        ({"tokenizer": 5}, r"^tokenizer must be a mapping of settings .*, got 5$"),
        ({"corpus": {"paths": 5}}, r"^paths must be a list of file paths, got 5$"),
    ],
)
def test_from_dict_refuses_data_that_is_not_a_mapping(data, message: str) -> None:
    """from_dict([]) made the default config; a section that is no mapping was blamed on the version."""
    refused(lambda: TrainConfig.from_dict(data), message)


CONFIG_REFUSED = r"^config must be a CorpusConfig \(build one: CorpusConfig\(paths=\.\.\., \.\.\.\)\), got "


@pytest.mark.parametrize("config", [None, {}, {"format": "text"}, "corpus.txt"])
def test_the_corpus_readers_refuse_a_config_that_is_not_a_corpus_config(corpus_file: Path, config) -> None:
    """Each failed on an attribute of the dict or None (AttributeError), or took the str for one."""
    refused(lambda: list(read_documents(corpus_file, config)), CONFIG_REFUSED)
    refused(lambda: load_documents([corpus_file], config), CONFIG_REFUSED)
    refused(lambda: count_documents([corpus_file], config), CONFIG_REFUSED)
    refused(lambda: check_options([corpus_file], config), CONFIG_REFUSED)
    refused(lambda: list(read_corpus(config)), CONFIG_REFUSED)
    refused(lambda: split_corpus(config), r"^corpus must be a CorpusConfig \(build one")


def test_split_corpus_refuses_a_record_that_is_not_a_split_record(corpus_file: Path) -> None:
    config = CorpusConfig(paths=(str(corpus_file),), keep_duplicates=True)
    refused(lambda: split_corpus(config, {"scheme": "documents-v1"}), r"^record must be a SplitRecord")
    assert split_corpus(config, None, log=False).counts.documents == 3


class _PathLike(os.PathLike):
    def __init__(self, path: str) -> None:
        self.path = path

    def __fspath__(self) -> str:
        return self.path


def test_detect_format_takes_a_str_or_any_path_like() -> None:
    """detect_format('a.csv') raised AttributeError: 'str' object has no attribute 'suffix'."""
    assert detect_format("a.csv") == "csv"
    assert detect_format(Path("a.JSONL")) == "jsonl"
    assert detect_format(_PathLike("a.tsv")) == "csv"
    assert detect_format("notes.txt") == "text"
    refused(lambda: detect_format(5), r"^path must be a file path \(str or pathlib\.Path\), got 5$")
    refused(lambda: detect_format(b"a.csv"), r"^path must be a file path .*, got b'a\.csv'$")


@pytest.mark.parametrize("path", [5, None, ["corpus.txt"], b"corpus.txt"])
def test_read_documents_names_a_path_of_the_wrong_type(path) -> None:
    """pathlib raised its own TypeError ("expected str, bytes or os.PathLike object"), naming no
    parameter."""
    refused(lambda: list(read_documents(path, CorpusConfig())), r"^path must be a file path \(str or pathlib")


@pytest.mark.parametrize(
    ("paths", "message"),
    [
        (5, r"^paths must be a list of file paths, got 5$"),
        (None, r"^paths must be a list of file paths, got None$"),
        (b"corpus.txt", r"^paths must be a list of file paths, got b'corpus\.txt'$"),
        ([5], r"^paths\[0\] must be a file path \(str or pathlib\.Path\), got 5$"),
        (["a.txt", None], r"^paths\[1\] must be a file path"),
    ],
)
def test_load_and_count_documents_name_paths_of_the_wrong_type(paths, message: str) -> None:
    refused(lambda: load_documents(paths, CorpusConfig()), message)
    refused(lambda: count_documents(paths, CorpusConfig()), message)


def test_load_documents_reads_a_str_path_as_one_file(corpus_file: Path) -> None:
    """A str was read as a sequence of one-character paths ('c', 'o', ...)."""
    expected = ["the first document", "the second one", "a third document here"]
    assert load_documents(str(corpus_file), CorpusConfig()) == expected
    assert load_documents(corpus_file, CorpusConfig()) == expected
    assert count_documents(str(corpus_file), CorpusConfig()) == 3
    assert list(read_documents(str(corpus_file), CorpusConfig())) == expected


def _tokenizer() -> Tokenizer:
    return Tokenizer.build(["a b c"], TokenizerConfig(min_count=1))


@pytest.mark.parametrize(
    ("documents", "tokenizer", "message"),
    [
        (
            ["a b"],
            None,
            r"^tokenizer must be a Tokenizer \(Tokenizer\.build\(documents, config\) makes one\), got None$",
        ),
        (
            "a b",
            "tokenizer",
            r"^documents must be a list \(or any iterable\) of strings, got one str; pass \[text\]",
        ),
        (b"a b", "tokenizer", r"^documents must be a list \(or any iterable\) of strings, got one bytes"),
        (None, "tokenizer", r"^documents must be a list \(or any iterable\) of strings, got None$"),
    ],
)
def test_encode_stream_refuses_arguments_of_the_wrong_type(documents, tokenizer, message: str) -> None:
    """tokenizer=None raised AttributeError; a str was encoded character by character, each a document."""
    tok = _tokenizer() if tokenizer == "tokenizer" else tokenizer
    refused(lambda: encode_stream(documents, tok), message)


def test_encode_stream_still_encodes_any_iterable_of_documents() -> None:
    tok = _tokenizer()
    assert encode_stream(["a b", "c"], tok).tolist() == encode_stream(iter(["a b", "c"]), tok).tolist()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: validation_indices(5.0, 0.5, 0), r"^n_documents must be an integer, got 5\.0$"),
        (lambda: validation_indices(True, 0.5, 0), r"^n_documents must be an integer, got True$"),
        (lambda: validation_indices(10, 0.5, "0"), r"^seed must be an integer, got '0'$"),
        (lambda: split_documents(["a", "b", "c"], 0.5, "5"), r"^seed must be an integer, got '5'$"),
        (lambda: split_documents(["a", "b", "c"], 0.5, 5.5), r"^seed must be an integer, got 5\.5$"),
        (lambda: split_documents(["a", "b", "c"], 0.5, None), r"^seed must be an integer, got None$"),
        (
            lambda: split_documents(["a", "b", "c"], "0.5", 0),
            r"^val_fraction must be a finite number > 0 and <= 1",
        ),
        (
            lambda: split_documents(["a", "b", "c"], None, 0),
            r"^val_fraction must be a finite number .*, got None$",
        ),
        (
            lambda: split_documents(None, 0.5, 0),
            r"^documents must be a list of documents \(strings\), got None$",
        ),
        (
            lambda: split_documents("abc", 0.5, 0),
            r"^documents must be a list of documents \(strings\), got 'abc'$",
        ),
    ],
)
def test_the_document_split_refuses_arguments_of_the_wrong_type(call, message: str) -> None:
    """numpy raised AxisError for 5.0 and TypeError for a seed of '5' or 5.5, round() a TypeError for a
    fraction of '0.5', len() one for None; True was "the corpus has True document(s)"; a seed of None
    made an unseeded split, another each time; a str was split character by character."""
    refused(call, message)


def test_the_document_split_is_unchanged_for_arguments_of_the_right_type() -> None:
    import numpy as np

    assert (
        validation_indices(np.int64(10), 0.1, np.int64(0)).tolist() == validation_indices(10, 0.1, 0).tolist()
    )
    assert validation_indices(10, 0.1, 0).tolist() == [4]
    with pytest.raises(ValueError, match=r"^seed must be an integer >= 0, got -1$"):
        validation_indices(10, 0.1, -1)
    with pytest.raises(ValueError, match=r"^val_fraction must be a finite number > 0 and <= 1, got nan$"):
        split_documents(["a", "b"], float("nan"), 0)
    assert split_documents(("a", "b", "c", "d"), 0.25, 1) == split_documents(["a", "b", "c", "d"], 0.25, 1)


@pytest.mark.parametrize("config", [{"out": "run"}, None, "run"])
def test_train_and_export_refuse_a_config_that_is_not_theirs_before_tensorflow_loads(config) -> None:
    from nextword.export import export
    from nextword.train import train

    with pytest.raises(WrongTypeError, match=r"^config must be a TrainConfig \(TrainConfig\(corpus="):
        train(config)  # type: ignore[arg-type]
    with pytest.raises(WrongTypeError, match=r"^config must be an ExportConfig \(ExportConfig\(run_dir="):
        export(config)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"overwrite": "no"}, "^overwrite must be True or False, got 'no'$"),  # truthy: it replaced --out
        ({"progress": None}, "^progress must be True or False, got None$"),
        ({"query": 5}, "^query must be a phrase or a list of phrases, got 5$"),
        ({"limit": "5"}, "^limit must be a positive integer, got '5'$"),
        ({"max_record_bytes": 2.0}, "^max_record_bytes must be a positive integer, got 2.0$"),
    ],
)
def test_the_patentsview_config_refuses_wrong_types(settings, message) -> None:
    from nextword.corpus.patentsview.config import PatentsViewConfig

    with pytest.raises(WrongTypeError, match=message):
        PatentsViewConfig(**settings)
    with pytest.raises(ValueError, match=r"^limit must be a positive integer, got 0$") as caught:
        PatentsViewConfig(limit=0)
    assert not isinstance(caught.value, TypeError)
