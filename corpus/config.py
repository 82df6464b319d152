"""Where a corpus comes from, how it is read and how it is split: :class:`CorpusConfig`.

Every field carries its help text in ``metadata``; ``nextword train`` builds its corpus flags from them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from nextword.runtime.checks import as_path, check_bool, check_int, plain_numbers, wrong_type
from nextword.runtime.field_help import with_field_help
from nextword.runtime.provenance import SPLIT_BY_DOCUMENT, SPLIT_DEDUPLICATED, DedupSettings, SplitRecord

__all__ = [
    "AUTO_COLUMN",
    "CORPUS_FORMATS",
    "MAX_DOCUMENT_CHARS",
    "TEXT_COLUMNS",
    "CorpusConfig",
    "corpus_config",
    "corpus_paths",
]

CORPUS_FORMATS = ("auto", "csv", "jsonl", "text", "lines")
AUTO_COLUMN = "auto"  # text_column: the CSV's only column, else the first of TEXT_COLUMNS it has
# The longest document read, in characters: 16 Mi, more than any book (War and Peace: 3.2 million). A
# document costs 20 to 70 bytes a character to deduplicate and tokenize, so a text file without blank
# lines (one document) of a gigabyte took tens of gigabytes before it was refused as one document.
MAX_DOCUMENT_CHARS = 1 << 24
TEXT_COLUMNS = ("text", "patent_abstract")  # patent_abstract: the reference corpus, `nextword corpus`
# The options that name where a file's text is, and what each takes.
_NAMES = (
    ("text_column", f"the name of a CSV column (a str), or {AUTO_COLUMN!r}"),
    ("json_field", "the name of a JSON Lines field (a str)"),
)


@with_field_help  # help(CorpusConfig) lists the fields with their --help
@dataclass(frozen=True)
class CorpusConfig:
    """Where the documents come from and how they are split."""

    paths: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "corpus files: .csv (.tsv, .tab), .jsonl (.ndjson) or plain text",
            "positional": True,
            "metavar": "CORPUS",
        },
    )
    format: str = field(
        default="auto",
        metadata={
            "help": "file format; auto picks by extension (.csv, .tsv and .tab; .jsonl and .ndjson; .json is "
            "refused; anything else is text: documents separated by blank lines); lines: one document per "
            "line",
            "choices": CORPUS_FORMATS,
            "flag": "--corpus-format",
        },
    )
    text_column: str = field(
        default=AUTO_COLUMN,
        metadata={
            "help": "CSV column holding the text; auto: the file's only column, else the one named text, "
            "else patent_abstract"
        },
    )
    json_field: str = field(default="text", metadata={"help": "JSON Lines field holding the text"})
    decode_html: bool = field(
        default=False,
        metadata={
            "help": "read HTML character references (&#8220;, &amp;, &eacute;) as the characters they stand "
            "for rather than as words of their own; text from web pages and PatentsView abstracts holds them"
        },
    )
    val_fraction: float = field(
        default=0.1,
        metadata={"help": "share of documents held out for validation (split by document), between 0 and 1"},
    )
    split_seed: int = field(
        default=0, metadata={"help": "seed of the document-level train/validation split, 0..4294967295"}
    )
    keep_duplicates: bool = field(
        default=False,
        metadata={
            "help": "split the documents as they are; by default exact duplicates (same words, ignoring "
            "case and punctuation) are dropped and near-duplicates kept on one side of the split"
        },
    )
    near_duplicate_threshold: float = field(
        default=DedupSettings().threshold,
        metadata={
            "help": "estimated Jaccard similarity of their 5-word shingles from which two documents are "
            "near-duplicates, above 0 and at most 1 (docs/dedup.md)",
            "metavar": "SIMILARITY",
        },
    )

    def __post_init__(self) -> None:
        plain_numbers(self)
        object.__setattr__(self, "paths", corpus_paths(self.paths))  # anything a caller passed
        if not isinstance(self.format, str):
            raise wrong_type("corpus format", f"one of {CORPUS_FORMATS}", self.format)
        if self.format not in CORPUS_FORMATS:
            raise ValueError(f"corpus format must be one of {CORPUS_FORMATS}, got {self.format!r}")
        for name, wanted in _NAMES:  # read only when a file is: checked now, not at the first CSV
            if not isinstance(getattr(self, name), str):
                raise wrong_type(name, wanted, getattr(self, name))
        wanted = "a number between 0 and 1 (exclusive)"
        value = self.val_fraction
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong_type("val_fraction", wanted, value)
        if not 0.0 < value < 1.0:
            raise ValueError(f"val_fraction must be {wanted}, got {value!r}")
        check_int("split_seed", self.split_seed, 0, 2**32 - 1)
        check_bool("keep_duplicates", self.keep_duplicates)
        check_bool("decode_html", self.decode_html)
        # the dedup settings are checked whether or not they are used (split_record() skips them with
        # keep_duplicates): a bad threshold is refused before a run records it, not when dedup is next on.
        # Checked here first so that the message names the option (the command line says its flag), where
        # DedupSettings, which a model file's record builds too, says "the near-duplicate threshold"
        value = self.near_duplicate_threshold
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong_type("near_duplicate_threshold", "a number in (0, 1]", value)
        if not 0.0 < value <= 1.0:  # NaN too
            raise ValueError(
                f"near_duplicate_threshold must be in (0, 1], got {value!r}: it is the similarity from "
                "which two documents are near-duplicates, above 0 and at most 1"
            )
        DedupSettings(threshold=value)

    def split_record(self) -> SplitRecord:
        """How these settings split a corpus, as a model file records it."""
        if self.keep_duplicates:
            return SplitRecord(SPLIT_BY_DOCUMENT, self.val_fraction, self.split_seed)
        dedup = DedupSettings(threshold=self.near_duplicate_threshold)
        return SplitRecord(SPLIT_DEDUPLICATED, self.val_fraction, self.split_seed, dedup)


def corpus_config(name: str, value: object) -> CorpusConfig:
    """``value``, given as the parameter ``name`` of a corpus function, when it is a
    :class:`CorpusConfig`; else a :class:`~nextword.runtime.errors.WrongTypeError` saying how to make
    one (a dict of settings or None would fail later, on an attribute)."""
    if not isinstance(value, CorpusConfig):
        raise wrong_type(name, "a CorpusConfig (build one: CorpusConfig(paths=..., ...))", value)
    return value


def corpus_paths(value: object) -> tuple[str, ...]:
    """Corpus files given as a list or tuple of paths (``str`` or ``os.PathLike``), or as one path (a
    ``str`` is one file, not a sequence of its characters), as the ``str`` paths a config stores."""
    if isinstance(value, (str, os.PathLike)):
        value = (value,)
    if not isinstance(value, (tuple, list)):
        raise wrong_type("paths", "a list of file paths", value)
    return tuple(as_path(f"paths[{i}]", path, empty=False) for i, path in enumerate(value))
