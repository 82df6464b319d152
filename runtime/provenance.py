"""What a model file records about its training: corpus, split, counts, architecture, commands.

:class:`Provenance` is written by the exporter (into the ``nextword.config`` metadata, under
``"provenance"``) and read back by :func:`read_provenance`, which :class:`~nextword.runtime.ModelInfo`
calls; ``nextword info`` shows it and :func:`nextword.corpus.rebuild_split` rebuilds a model's
validation split from it. Files exported before the record existed (the bundled model among them) get
one derived from their untyped ``train`` section: their split is the document-index split
(:data:`SPLIT_BY_DOCUMENT`), without deduplication.

Pure Python: the runtime reads it, so nothing here may import more than the standard library.
"""

from __future__ import annotations

import typing
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .checks import finite, shown, wrong_type
from .errors import ModelFileError, WrongTypeError
from .provenance_base import describe_base

__all__ = [
    "DEDUP_SCHEMES",
    "SPLIT_BY_DOCUMENT",
    "SPLIT_DEDUPLICATED",
    "SPLIT_DEDUPLICATED_V1",
    "SPLIT_DEDUPLICATED_V2",
    "SPLIT_DEDUPLICATED_V3",
    "SPLIT_DEDUPLICATED_V4",
    "SPLIT_DEDUPLICATED_V5",
    "SPLIT_SCHEMES",
    "Architecture",
    "DataCounts",
    "DedupSettings",
    "Provenance",
    "SplitRecord",
    "read_provenance",
]

# How the training documents were split. A new scheme gets a new name; old names keep their meaning.
SPLIT_BY_DOCUMENT = "documents-v1"  # a seeded permutation of the document indices; nothing dropped
# Exact duplicates dropped, near-duplicate groups kept on one side; groups held out in a seeded order
# until the fraction is reached (v1, which may hold out a group of any size), or only groups that
# still fit in it (v2, since v1 could hold out one huge group of templated documents). v3 makes v2's
# split and also carves the development part (training documents held out of training) out of whole
# groups; v1 and v2 drew it document by document, so a development document could have a
# near-duplicate among the documents trained on. v4 is v3 with combining marks (Unicode Mn, Mc, Me)
# inside the words compared; under v1 to v3 they separated words, so Hindi, Arabic or Hebrew documents
# that differ only in vowel signs were duplicates. v5, the default, is v4 with MinHash values that
# keep bits of the whole minimum; v1 to v4 kept its low bits, which made unrelated documents of five
# words or fewer near-duplicates (nextword.corpus.minhash).
SPLIT_DEDUPLICATED_V1 = "dedup-v1"
SPLIT_DEDUPLICATED_V2 = "dedup-v2"
SPLIT_DEDUPLICATED_V3 = "dedup-v3"
SPLIT_DEDUPLICATED_V4 = "dedup-v4"
SPLIT_DEDUPLICATED_V5 = "dedup-v5"
SPLIT_DEDUPLICATED = SPLIT_DEDUPLICATED_V5  # what new runs record
DEDUP_SCHEMES = (
    SPLIT_DEDUPLICATED_V1,
    SPLIT_DEDUPLICATED_V2,
    SPLIT_DEDUPLICATED_V3,
    SPLIT_DEDUPLICATED_V4,
    SPLIT_DEDUPLICATED_V5,
)
_DEV_BY_DOCUMENT = (SPLIT_BY_DOCUMENT, SPLIT_DEDUPLICATED_V1, SPLIT_DEDUPLICATED_V2)
SPLIT_SCHEMES = (SPLIT_BY_DOCUMENT, *DEDUP_SCHEMES)


@dataclass(frozen=True)
class DedupSettings:
    """How :data:`SPLIT_DEDUPLICATED` finds near-duplicates (``nextword.corpus.dedup`` computes it).

    Each document's words (NFKC, case-folded, runs of letters and digits, combining marks too from
    ``dedup-v4`` on) are cut into shingles of ``shingle_words`` words; ``num_perm`` MinHash values of
    the shingles, ``value_bits`` bits of each (from ``dedup-v5`` on, of a scramble of the whole value;
    before, its low bits), are its signature. Documents whose signatures
    agree on a band of ``band_rows`` values are compared, and those agreeing on at least ``threshold``
    of the values (an estimate of the Jaccard similarity of their shingle sets) are near-duplicates.
    """

    threshold: float = 0.2
    shingle_words: int = 5
    num_perm: int = 64
    band_rows: int = 2
    value_bits: int = 16

    def __post_init__(self) -> None:
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)):
            raise WrongTypeError(f"the near-duplicate threshold must be a number, got {self.threshold!r}")
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"the near-duplicate threshold must be in (0, 1], got {self.threshold!r}")
        for name in ("shingle_words", "num_perm", "band_rows", "value_bits"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise wrong_type(name, "a positive integer", value)
            if value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.num_perm % self.band_rows:
            raise ValueError(f"num_perm ({self.num_perm}) must be a multiple of band_rows ({self.band_rows})")


@dataclass(frozen=True)
class SplitRecord:
    """Everything needed to rebuild a split from the same corpus files."""

    scheme: str = SPLIT_BY_DOCUMENT
    val_fraction: float = 0.1
    seed: int = 0
    dedup: DedupSettings | None = None  # set for the DEDUP_SCHEMES only

    def __post_init__(self) -> None:
        if not isinstance(self.scheme, str):
            raise wrong_type("the split scheme", "a non-empty string", self.scheme)
        if not self.scheme:
            raise ValueError(f"the split scheme must be a non-empty string, got {self.scheme!r}")
        fraction = self.val_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
            raise wrong_type("val_fraction", "between 0 and 1 (exclusive)", fraction)
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"val_fraction must be between 0 and 1 (exclusive), got {fraction!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise WrongTypeError(f"the split seed must be an integer, got {self.seed!r}")
        if self.known and (self.dedup is not None) != (self.scheme in DEDUP_SCHEMES):
            raise ValueError(
                f"split scheme {self.scheme!r} takes dedup settings if and only if it is one of "
                f"{list(DEDUP_SCHEMES)}"
            )

    @property
    def known(self) -> bool:
        """Whether this nextword can make the split again. A file from a later nextword may record a
        scheme this one does not know: the file still loads (the record describes, the graph is what
        runs), but its split cannot be rebuilt here (:meth:`check_known`)."""
        return self.scheme in SPLIT_SCHEMES

    @property
    def dev_by_group(self) -> bool:
        """Whether the development part is carved out of the training documents by whole near-duplicate
        groups (``dedup-v3``) rather than document by document (the older schemes)."""
        return self.known and self.scheme not in _DEV_BY_DOCUMENT

    def check_known(self) -> None:
        """Raise ``ValueError`` naming the scheme unless this nextword can make the split again."""
        if not self.known:
            raise ValueError(
                f"split scheme {self.scheme!r} is unknown to this nextword (it knows {list(SPLIT_SCHEMES)}); "
                "upgrade nextword to make this split again"
            )

    @classmethod
    def from_dict(cls, data: Any) -> SplitRecord:
        """Read what ``asdict`` wrote; raises ``ValueError`` naming the first field that is wrong."""
        data = _fields_of(cls, data, "split")
        dedup = data.get("dedup")
        if dedup is not None:
            dedup = DedupSettings(**_typed_fields(DedupSettings, dedup, "split.dedup"))
        return cls(
            scheme=_expect(data.get("scheme", SPLIT_BY_DOCUMENT), str, "split.scheme"),
            val_fraction=_expect(data.get("val_fraction", 0.1), float, "split.val_fraction"),
            seed=_expect(data.get("seed", 0), int, "split.seed"),
            dedup=dedup,
        )

    def describe(self) -> str:
        """One line for people, e.g. ``fraction 0.1, split seed 0, deduplicated (...)``."""
        text = f"fraction {self.val_fraction:g}, split seed {self.seed}"
        if not self.known:
            return f"{text}, scheme {self.scheme!r}, unknown to this nextword"
        if self.dedup is None:
            return f"{text}, by document index, not deduplicated (scheme {self.scheme})"
        d = self.dedup
        return (
            f"{text}, deduplicated (exact duplicates dropped; near-duplicates: MinHash of "
            f"{d.shingle_words}-word shingles, similarity >= {d.threshold:g}; scheme {self.scheme})"
        )


def _dev_drawn(split: SplitRecord) -> str:
    """How a split's development part was drawn, for :meth:`Provenance.describe` ("" if unknown)."""
    if not split.known:
        return ""
    return ", whole groups of near-duplicates" if split.dev_by_group else ", drawn document by document"


@dataclass(frozen=True)
class DataCounts:
    """What the split made of the corpus; ``None`` where a file does not record it."""

    documents: int | None = None  # non-empty documents read from the corpus files
    exact_duplicates: int | None = None  # dropped: the same words as an earlier document
    near_duplicate_groups: int | None = None  # groups of two or more near-duplicates, kept on one side
    near_duplicate_documents: int | None = None  # documents in those groups
    train_documents: int | None = None
    val_documents: int | None = None
    train_words: int | None = None  # ids in train.ids minus one: the positions an epoch trains
    val_words: int | None = None
    dev_documents: int | None = None  # training documents held out of training: export tunes the cache there
    dev_words: int | None = None


@dataclass(frozen=True)
class Architecture:
    """The network: Embedding -> LSTM x num_layers -> Dense logits."""

    embedding_dim: int | None = None
    lstm_units: int | None = None
    num_layers: int | None = None
    dropout: float | None = None
    tie_embeddings: bool | None = None  # the output layer reuses the embedding matrix
    locked_dropout: bool | None = None  # one dropout mask per training window, for all its time steps
    word_dropout: float | None = None  # share of input words dropped whole in training


@dataclass(frozen=True)
class BaseRun:
    """What a fine-tuned model's file records of the run it started from (``init_from``)."""

    run: str | None = None  # the base run folder's name, or the base model file's (no folder layout)
    kind: str | None = None  # "run" or "model file"; None: a file written before model files could be bases
    quantized: bool | None = None  # a base model file's weights were int8 (fine-tuning started from them)
    best_epoch: int | None = None  # the base's epoch whose weights fine-tuning started from
    corpus: str | None = None  # the base run's corpus file names, comma-separated
    documents: int | None = None  # documents read from them
    unknown_share: float | None = None  # share of the fine-tuning words outside the base vocabulary
    added_words: int | None = None  # words added to the base vocabulary (extend_vocabulary); None: none
    added_share: float | None = None  # share of the fine-tuning words that are added words
    # held-out documents of the fine-tuning corpus that copy or nearly copy the base's training documents
    # (validation; development part); None: not checked (a model-file base, its corpus gone or changed)
    val_overlap: int | None = None
    dev_overlap: int | None = None
    overlap_unchecked: str | None = None  # why they were not checked, in a few words; None: checked, or older
    val_trained: int | None = None  # the base's validation documents that the fine-tuning documents copy
    val_documents: int | None = None  # of the base's validation documents
    train_command: str | None = None  # the command that trained the base


@dataclass(frozen=True)
class Provenance:
    """What a model file records about how it was trained and exported."""

    corpus_files: tuple[str, ...] = ()  # file names only: a model file should not carry folder layouts
    corpus_format: str = "auto"  # how the files were read: CorpusConfig.format, text_column, json_field
    text_column: str = "patent_abstract"
    json_field: str = "text"
    decode_html: bool = False  # CorpusConfig.decode_html: HTML character references read as characters
    split: SplitRecord | None = None  # None if the file does not record how its corpus was split
    data: DataCounts = field(default_factory=DataCounts)
    vocab_size: int | None = None
    architecture: Architecture = field(default_factory=Architecture)
    train_command: str | None = None
    export_command: str | None = None
    base: BaseRun | None = None  # the run a fine-tuned model started from; None: trained from scratch
    # SHA-256 (hex) of the documents read from the corpus files, in order (nextword.corpus.split);
    # None: not recorded (a run trained before 2026-12-05)
    corpus_sha256: str | None = None

    def describe(self) -> list[tuple[str, str]]:
        """What ``nextword info`` shows: ``(label, text)`` for the corpus, the split and the commands."""
        d, lines = self.data, []
        corpus = f"{', '.join(self.corpus_files) or '?'}: {_number(d.documents)} documents"
        if self.decode_html:
            corpus += " (HTML character references read as characters)"
        if d.exact_duplicates is not None:
            corpus += f", {d.exact_duplicates} exact duplicates dropped"
        if d.near_duplicate_groups is not None:
            corpus += (
                f", {d.near_duplicate_groups} groups of near-duplicates "
                f"({_number(d.near_duplicate_documents)} documents) each kept on one side"
            )
        lines.append(("corpus", corpus))
        if self.corpus_sha256 is not None:
            lines.append(("corpus SHA-256", f"{self.corpus_sha256} (of its documents, in order)"))
        if self.split is not None:
            lines.append(
                (
                    "split",
                    f"{_number(d.train_documents)} for training"
                    + (
                        f" ({d.dev_documents} more held out of training, "
                        f"the development part{_dev_drawn(self.split)})"
                        if d.dev_documents
                        else ""
                    )
                    + f", {_number(d.val_documents)} held out for validation ({self.split.describe()})",
                )
            )
        if self.base is not None:
            lines.append(("fine-tuned from", describe_base(self.base, d)))
        for label, command in (("trained with", self.train_command), ("exported with", self.export_command)):
            if command:
                lines.append((label, command))
        return lines

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data; :meth:`from_dict` reads it back."""
        data = asdict(self)
        data["corpus_files"] = list(self.corpus_files)
        return data

    @classmethod
    def from_dict(cls, data: Any) -> Provenance:
        """Read what :meth:`to_dict` wrote; raises ``ValueError`` naming the first field that is wrong."""
        data = _fields_of(cls, data, "provenance")
        record = None if data.get("split") is None else SplitRecord.from_dict(data["split"])
        files = data.get("corpus_files", [])
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise ValueError("corpus_files must be a list of file names")
        return cls(
            corpus_files=tuple(files),
            corpus_format=_expect(data.get("corpus_format", "auto"), str, "corpus_format"),
            text_column=_expect(data.get("text_column", "patent_abstract"), str, "text_column"),
            json_field=_expect(data.get("json_field", "text"), str, "json_field"),
            decode_html=_expect(data.get("decode_html", False), bool, "decode_html"),
            split=record,
            data=DataCounts(**_typed_fields(DataCounts, data.get("data", {}), "data")),
            vocab_size=_expect(data.get("vocab_size"), int, "vocab_size", optional=True),
            architecture=Architecture(
                **_typed_fields(Architecture, data.get("architecture", {}), "architecture")
            ),
            train_command=_expect(data.get("train_command"), str, "train_command", optional=True),
            export_command=_expect(data.get("export_command"), str, "export_command", optional=True),
            base=None
            if data.get("base") is None
            else BaseRun(**_typed_fields(BaseRun, data["base"], "base")),
            corpus_sha256=_expect(data.get("corpus_sha256"), str, "corpus_sha256", optional=True),
        )

    @classmethod
    def from_legacy_config(cls, config: dict[str, Any]) -> Provenance | None:
        """The record of a file exported before :class:`Provenance` existed, from its ``nextword.config``
        (``{"model": ..., "train": ..., "export": ...}``); ``None`` when it has no ``train`` section.

        Such files were split by document index (:data:`SPLIT_BY_DOCUMENT`). Values of the wrong type
        are left out rather than refused: the record only describes the file.
        """
        train = config.get("train")
        if not isinstance(train, dict):
            return None
        corpus, data = _dict(train.get("corpus")), _dict(train.get("data"))
        model, export = _dict(config.get("model")), _dict(config.get("export"))
        files = corpus.get("paths")
        try:
            split: SplitRecord | None = SplitRecord(
                SPLIT_BY_DOCUMENT, corpus["val_fraction"], corpus["split_seed"]
            )
        except (KeyError, ValueError):  # a file that does not say how it was split
            split = None
        return cls(
            corpus_files=tuple(f for f in files if isinstance(f, str)) if isinstance(files, list) else (),
            corpus_format=_or(corpus.get("format"), str, "auto"),
            text_column=_or(corpus.get("text_column"), str, "patent_abstract"),
            json_field=_or(corpus.get("json_field"), str, "text"),
            split=split,
            data=DataCounts(**{f.name: _count(data.get(f.name)) for f in fields(DataCounts)}),
            vocab_size=_count(train.get("vocab_size")),
            architecture=Architecture(
                **{
                    name: _or(model.get(name), int, None)
                    for name in ("embedding_dim", "lstm_units", "num_layers")
                },
                dropout=_or(model.get("dropout"), float, None),
            ),
            train_command=_or(train.get("command"), str, None),
            export_command=_or(export.get("command"), str, None),
        )


def read_provenance(config: dict[str, Any], source: str) -> Provenance | None:
    """The provenance recorded in a model file's ``nextword.config`` metadata (already parsed).

    The ``"provenance"`` entry when there is one (a malformed one raises :class:`ModelFileError` naming
    ``source``), else the record derived from an older file's ``train`` section, else ``None``.
    """
    if "provenance" not in config:
        return Provenance.from_legacy_config(config)
    try:
        return Provenance.from_dict(config["provenance"])
    except ValueError as exc:
        raise ModelFileError(
            f"{source}: metadata 'nextword.config' holds an invalid provenance: {exc}"
        ) from None


# ----------------------------------------------------------------------------- reading helpers


def _fields_of(cls: type, data: Any, name: str) -> dict[str, Any]:
    """The entries of ``data`` that are fields of ``cls``; raises ``ValueError`` unless it is an object.

    Fields this version does not know are left out, not refused: a record is a description, and a file
    written by a later nextword that records more should still load here (the format version says
    when a file cannot be read)."""
    if not isinstance(data, dict):
        raise ValueError(f"{name} must be a JSON object, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    return {key: value for key, value in data.items() if key in known}


def _typed_fields(cls: type, data: Any, name: str) -> dict[str, Any]:
    """The entries of ``data`` for a flat dataclass ``cls``, each checked against its field's type."""
    data = _fields_of(cls, data, name)
    hints = typing.get_type_hints(cls)
    checked = {}
    for key, value in data.items():
        kinds = typing.get_args(hints[key]) or (hints[key],)
        kind = next(k for k in kinds if k is not type(None))
        checked[key] = _expect(value, kind, f"{name}.{key}", optional=type(None) in kinds)
    return checked


def _expect(value: Any, kind: type, name: str, optional: bool = False) -> Any:
    """``value`` if it is a ``kind`` (an int passes for a float; None if ``optional``), else ValueError."""
    if value is None and optional:
        return None
    if kind is float and type(value) is int:
        if not finite(value):  # a JSON file can hold a 400-digit number
            raise ValueError(f"{name} must be a number within a float's range, got {shown(value)}")
        return float(value)
    if type(value) is not kind:
        raise ValueError(f"{name} must be {kind.__name__}, got {type(value).__name__}")
    return value


def _number(value: int | None) -> str:
    return "?" if value is None else str(value)


def _count(value: Any) -> int | None:
    return value if type(value) is int and value >= 0 else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _or(value: Any, kind: type, default: Any) -> Any:
    """``value`` if it is a ``kind`` (an int passes for a float), else ``default``."""
    if kind is float and type(value) is int:
        return float(value) if finite(value) else default
    return value if type(value) is kind else default
