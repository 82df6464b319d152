"""A model file's record of how its corpus was read and split, when this nextword cannot follow it: a
corpus format it does not read falls back to the defaults; MinHash settings it does not compute are
refused rather than approximated by another split."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import synthetic_documents, write_corpus
from nextword.corpus import CorpusConfig, recorded_corpus, split_corpus
from nextword.runtime.provenance import SPLIT_DEDUPLICATED, DedupSettings, Provenance, SplitRecord


def test_recorded_reading_options_are_followed() -> None:
    """A record of a format, CSV column and JSON field this nextword reads is followed, with the paths
    given."""
    record = Provenance(corpus_format="jsonl", text_column="body", json_field="abstract")
    config = recorded_corpus(record, ["a.jsonl"])
    assert (config.paths, config.format, config.text_column, config.json_field) == (
        ("a.jsonl",),
        "jsonl",
        "body",
        "abstract",
    )


@pytest.mark.parametrize("record", [Provenance(corpus_format="parquet", text_column="body"), None])
def test_a_format_this_version_does_not_read_falls_back_to_the_defaults(record: Provenance | None) -> None:
    """A file from a later nextword recording a format unknown here (or no record at all) is read with
    the default options, not refused: the paths given are kept."""
    assert recorded_corpus(record, ["a.csv"]) == CorpusConfig(paths=("a.csv",))


@pytest.mark.parametrize("settings", [DedupSettings(value_bits=32), DedupSettings(num_perm=128, band_rows=4)])
def test_minhash_settings_this_version_does_not_compute_are_refused(
    tmp_path: Path, settings: DedupSettings
) -> None:
    """A recorded split that asks for other MinHash values or bands than this nextword computes is a
    ValueError saying what it computes: its near-duplicate groups, hence its split, would differ."""
    corpus = write_corpus(tmp_path, synthetic_documents(12, seed=2))["csv"]
    record = SplitRecord(SPLIT_DEDUPLICATED, 0.2, 0, settings)
    with pytest.raises(ValueError, match=r"^this nextword computes 16-bit MinHash values in bands of two$"):
        split_corpus(CorpusConfig(paths=(str(corpus),)), record)
