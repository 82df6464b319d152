"""The typed provenance record of a model file: written by export, read by the runtime, old files too."""

import json

import pytest

from helpers import legacy_bundled_record
from nextword.runtime import ModelFileError
from nextword.runtime.provenance import (
    SPLIT_BY_DOCUMENT,
    SPLIT_DEDUPLICATED,
    Architecture,
    DataCounts,
    DedupSettings,
    Provenance,
    SplitRecord,
    read_provenance,
)

RECORD = Provenance(
    corpus_files=("a.csv", "b.jsonl"),
    corpus_format="auto",
    text_column="body",
    json_field="text",
    split=SplitRecord(SPLIT_DEDUPLICATED, 0.2, 3, DedupSettings(threshold=0.3)),
    data=DataCounts(documents=10, exact_duplicates=1, near_duplicate_groups=2, near_duplicate_documents=4,
                    train_documents=7, val_documents=2, train_words=70, val_words=20),
    vocab_size=50,
    architecture=Architecture(embedding_dim=8, lstm_units=16, num_layers=2, dropout=0.1),
    train_command="nextword train a.csv b.jsonl --out run",
    export_command="nextword export run --out m.onnx",
)  # fmt: skip

# The nextword.config metadata of the bundled model (exported before the record existed), abridged.
LEGACY = {
    "model": {"embedding_dim": 256, "lstm_units": 448, "num_layers": 1, "dropout": 0.25},
    "train": {
        "corpus": {"paths": ["neural_network_patent_query.csv"], "format": "auto", "val_fraction": 0.1,
                   "text_column": "patent_abstract", "json_field": "text", "split_seed": 0},
        "vocab_size": 8664,
        "data": {"documents": 3522, "train_documents": 3170, "val_documents": 352, "train_words": 454983,
                 "val_words": 50765},
        "command": "nextword train ../shared/data/neural_network_patent_query.csv --out runs/bundled",
    },
    "export": {"command": "nextword export runs/bundled --out runtime/data/nextword-patents.onnx --int8"},
}  # fmt: skip


def test_a_record_survives_json():
    data = json.loads(json.dumps(RECORD.to_dict()))
    assert Provenance.from_dict(data) == RECORD
    assert read_provenance({"provenance": data, "train": {}}, "m.onnx") == RECORD


def test_files_from_before_the_record_read_as_split_by_document_index():
    record = read_provenance(LEGACY, "old.onnx")
    assert record.split == SplitRecord(SPLIT_BY_DOCUMENT, 0.1, 0)
    assert record.data == DataCounts(documents=3522, train_documents=3170, val_documents=352,
                                     train_words=454983, val_words=50765)  # fmt: skip
    assert record.corpus_files == ("neural_network_patent_query.csv",) and record.vocab_size == 8664
    assert record.architecture == Architecture(256, 448, 1, 0.25)
    assert record.export_command.startswith("nextword export") and record.train_command.startswith(
        "nextword train"
    )
    assert read_provenance({}, "bare.onnx") is None
    # Old files only describe themselves: values of the wrong type are left out, never fatal.
    odd = {
        "train": {"corpus": {"paths": "x.csv", "val_fraction": "0.1"}, "data": {"documents": -3}},
        "model": [],
    }
    record = read_provenance(odd, "odd.onnx")
    assert record.split is None and record.corpus_files == () and record.data.documents is None


def test_a_file_from_before_provenance_reads_as_a_record():
    record = legacy_bundled_record()
    assert record.split == SplitRecord(SPLIT_BY_DOCUMENT, 0.1, 0) and record.data.val_documents == 352
    lines = dict(record.describe())
    assert lines["corpus"] == "neural_network_patent_query.csv: 3522 documents"
    assert "by document index, not deduplicated (scheme documents-v1)" in lines["split"]


@pytest.mark.parametrize(
    ("scheme", "drawn"),
    [("dedup-v3", "whole groups of near-duplicates"), ("dedup-v2", "drawn document by document")],
)
def test_info_names_the_split_scheme_and_how_the_development_part_was_drawn(scheme, drawn):
    split = SplitRecord(scheme, 0.2, 3, DedupSettings(threshold=0.3))
    counts = DataCounts(train_documents=7, dev_documents=1, val_documents=2)
    line = dict(Provenance(split=split, data=counts).describe())["split"]
    assert f"7 for training (1 more held out of training, the development part, {drawn}), 2 held out" in line
    assert line.endswith(f"similarity >= 0.3; scheme {scheme}))")


def test_the_bundled_model_records_its_deduplicated_split():
    from nextword.runtime import load
    from nextword.runtime.default import BUNDLED_MODEL

    record = load(BUNDLED_MODEL).info.provenance
    assert record.split.scheme != SPLIT_BY_DOCUMENT and record.split.dedup is not None
    assert record.data.documents == 3522 and record.data.val_documents > 0
    assert "not deduplicated" not in dict(record.describe())["split"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"split": {"scheme": 7, "val_fraction": 0.1, "seed": 0}}, "split.scheme must be str"),
        ({"split": {"scheme": "", "val_fraction": 0.1, "seed": 0}}, "split scheme must be a non-empty"),
        ({"split": {"scheme": SPLIT_BY_DOCUMENT, "val_fraction": 2.0, "seed": 0}}, "val_fraction"),
        ({"data": {"documents": "many"}}, "data.documents must be int"),
        ({"vocab_size": 1.5}, "vocab_size must be int"),
        ({"corpus_files": "a.csv"}, "corpus_files must be a list"),
        # JSON holds integers of any length; float() of a 400-digit one raised OverflowError
        ({"split": {"scheme": "dedup-v1", "val_fraction": 10**400, "seed": 0}}, "val_fraction must be a num"),
        ({"architecture": {"dropout": -(10**400)}}, r"architecture.dropout must be a number within a float"),
    ],
)
def test_an_invalid_record_is_refused_naming_the_field(change, message):
    data = {**RECORD.to_dict(), **change}
    with pytest.raises(
        ModelFileError, match=f"m.onnx: metadata 'nextword.config' holds an invalid provenance.*{message}"
    ):
        read_provenance({"provenance": data}, "m.onnx")
    with pytest.raises(ModelFileError, match="must be a JSON object"):
        read_provenance({"provenance": []}, "m.onnx")


def test_a_split_scheme_of_a_later_version_loads_but_is_not_rebuilt(tmp_path):
    from nextword.corpus import CorpusConfig, CorpusError, rebuild_split

    data = {**RECORD.to_dict(), "split": {"scheme": "shuffle-v7", "val_fraction": 0.1, "seed": 0}}
    record = read_provenance({"provenance": data}, "m.onnx")
    assert not record.split.known and record.split.scheme == "shuffle-v7"
    assert "scheme 'shuffle-v7', unknown to this nextword" in dict(record.describe())["split"]
    corpus = tmp_path / "c.txt"
    corpus.write_text("one document\n\nanother one\n")
    with pytest.raises(CorpusError, match=r"split scheme 'shuffle-v7' is unknown.*upgrade nextword"):
        rebuild_split(record, CorpusConfig(paths=(str(corpus),)))


def test_fields_a_later_version_records_are_ignored_not_refused():
    data = {**RECORD.to_dict(), "colour": "red", "data": {**RECORD.to_dict()["data"], "new_count": 3}}
    assert read_provenance({"provenance": data}, "m.onnx") == RECORD


@pytest.mark.parametrize(
    ("added", "said"), [(1, "; 1 word was added to it (0.5%"), (3, "; 3 words were added to it (")]
)
def test_info_counts_the_words_added_to_a_base_vocabulary(added, said):
    from nextword.runtime.provenance import BaseRun
    from nextword.runtime.provenance_base import describe_base

    base = BaseRun(run="base", kind="run", corpus="a.csv", documents=40, added_words=added, added_share=0.005)
    line = describe_base(base, DataCounts(documents=10))
    assert said in line, line
