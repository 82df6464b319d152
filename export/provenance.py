"""The provenance record a model file carries, made from a run folder's ``config.json``."""

from __future__ import annotations

import dataclasses
import logging
import posixpath
import re
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nextword.corpus import recorded_split
from nextword.runtime.generation import GenerationConfig
from nextword.runtime.provenance import Architecture, BaseRun, DataCounts, Provenance
from nextword.runtime.terminal import escape_surrogates
from nextword.train.config import TrainConfig

if TYPE_CHECKING:
    from .config import ExportConfig

__all__ = [
    "escape_undecodable",
    "file_name",
    "provenance_of_run",
    "travelling_command",
    "warn_base_lost",
]

logger = logging.getLogger(__name__)

_DRIVE = re.compile(r"[A-Za-z]:[\\/]")  # C:\ or C:/
# The options of `nextword train` and `export` whose values are text, never a path: kept as typed.
_TEXT_OPTIONS = frozenset({"--stop", "--text-column", "--json-field"})


def file_name(path: str) -> str:
    """The last name of ``path``, a POSIX or a Windows one (a run made on either may be exported on
    the other), after ``..`` is resolved: ``/home/me/..`` is ``home``; ``path`` itself if it has none."""
    normal = posixpath.normpath(path.replace("\\", "/"))
    return next((part for part in reversed(normal.split("/")) if part and part != ".."), path)


def travelling_command(command: Any) -> str | None:
    """``command`` (a recorded command line) as a model file that travels records it: each argument
    naming a path outside the folder the command ran in (absolute, from ``~``, or through ``..``)
    keeps only its last name, as the file's corpus paths do, so that the file does not carry the
    trainer's user name and folder layout; the values of text options (``--stop``, ``--text-column``,
    ``--json-field``) stay as typed. None for anything but a str."""
    if not isinstance(command, str):
        return None
    try:
        words = shlex.split(command)
    except ValueError:  # unbalanced quotes (a hand-edited config.json): no words to tell apart
        return None
    kept, text_value = [], False
    for word in words:
        flag, equals, value = word.partition("=")
        if text_value or (word.startswith("-") and flag in _TEXT_OPTIONS):
            kept.append(word)
            text_value = not text_value and not equals  # `--stop X`: X is next
        elif word.startswith("-"):
            kept.append(f"{flag}={_named(value)}" if equals else word)  # --out=/home/me/model.onnx
        else:
            kept.append(_named(word))
    return shlex.join(kept)


def _named(word: str) -> str:
    outside = word.startswith(("/", "\\", "~")) or _DRIVE.match(word) or ".." in re.split(r"[\\/]", word)
    return file_name(word) if outside else word


def provenance_of_run(config: TrainConfig, stored: dict[str, Any], export_command: str | None) -> Provenance:
    """What the model file records about its training: ``config`` and the facts ``stored`` beside it in
    ``config.json`` (vocabulary size, ``data`` counts and split, command), and the export command.

    Runs trained before splits were recorded (no ``data.split``) were split by document index, which
    the record says. Counts of the wrong type are left out.
    """
    data = stored.get("data")
    data = data if isinstance(data, dict) else {}
    counts = {
        f.name: data[f.name]
        for f in dataclasses.fields(DataCounts)
        if type(data.get(f.name)) is int and data[f.name] >= 0
    }
    vocab_size, command = stored.get("vocab_size"), stored.get("command")
    corpus = config.corpus
    return Provenance(
        corpus_files=tuple(file_name(p) for p in corpus.paths),
        corpus_format=corpus.format,
        text_column=corpus.text_column,
        json_field=corpus.json_field,
        decode_html=corpus.decode_html,
        split=recorded_split(data, corpus),
        data=DataCounts(**counts),
        vocab_size=vocab_size if type(vocab_size) is int else None,
        architecture=Architecture(**dataclasses.asdict(config.model)),
        train_command=travelling_command(command),
        export_command=travelling_command(export_command),
        base=_base_run(stored.get("base")),
        corpus_sha256=_digest(data.get("corpus_sha256")),
    )


def _digest(value: Any) -> str | None:
    """A run's recorded corpus digest: 64 lowercase hex digits, else (older runs, a damaged record) None."""
    return value if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value) else None


def _base_run(facts: Any) -> BaseRun | None:
    """The record of a fine-tuned run's base, from its ``config.json`` facts (``base``); values of the
    wrong type are left out."""
    if not isinstance(facts, dict):
        return None

    def typed(key: str, kind: type) -> Any:
        value = facts.get(key)
        return value if type(value) is kind or (kind is float and type(value) is int) else None

    files = facts.get("corpus_files")
    names = [Path(f).name for f in files if isinstance(f, str)] if isinstance(files, list) else []
    return BaseRun(
        run=Path(facts["run"]).name if isinstance(facts.get("run"), str) else None,
        kind=facts["kind"] if facts.get("kind") in ("run", "model file") else None,
        quantized=typed("quantized", bool),
        best_epoch=typed("best_epoch", int),
        corpus=", ".join(names) or None,
        documents=typed("documents", int),
        unknown_share=typed("unknown_share", float),
        added_words=typed("added_words", int),
        added_share=typed("added_share", float),
        val_overlap=typed("val_overlap", int),
        dev_overlap=typed("dev_overlap", int),
        overlap_unchecked=typed("overlap_unchecked", str),
        val_trained=typed("val_trained", int),
        val_documents=typed("val_documents", int),
        train_command=travelling_command(facts.get("command")),
    )


def warn_base_lost(config: ExportConfig, stored: dict[str, Any]) -> None:
    """Log one warning where the run was fine-tuned from a model file exported with int8 weights or
    decoding defaults (as its ``config.json`` records the base: ``base.quantized``,
    ``base.decoding_defaults``) and this export leaves them out: it is not ``int8``, or it sets no
    decoding default of its own (``config.generation`` is :class:`GenerationConfig`'s defaults). A
    fine-tuned run does not take them from its base: each export says its own, and a model whose file
    drops the base's ``no_repeat_ngram_size`` may loop. The warning names them, to pass again."""
    base = stored.get("base")
    if not isinstance(base, dict):
        return
    int8 = base.get("quantized") is True and not config.int8
    recorded = base.get("decoding_defaults")
    decoding: dict[str, Any] = {}
    if isinstance(recorded, dict) and recorded and not config.generation.changes():
        try:  # a hand-edited config.json: values this version refuses are not named
            decoding = GenerationConfig.from_options(**recorded).changes()
        except (TypeError, ValueError):
            decoding = {}
    settings = ["int8=True"] if int8 else []
    for name, value in decoding.items():  # as the API takes them, which `nextword export` says as flags
        items = value if isinstance(value, tuple) else (value,)  # stop strings: the option once for each
        settings += [f"{name}={item!r}" for item in items]
    if not settings:
        return
    lost = (["is not int8"] if int8 else []) + (["sets no decoding defaults"] if decoding else [])
    them = "them" if len(settings) > 1 else "it"
    logger.warning(
        "the base %s was exported with %s, and this export %s: a fine-tuned run does not take its base "
        "file's export settings; pass %s again to keep %s",
        file_name(str(base.get("run"))),
        " ".join(settings),
        " and ".join(lost),
        them,
        them,
    )


def escape_undecodable(value: Any) -> Any:
    """``value`` (a str, or dicts and lists of them, walked) as text that encodes as UTF-8: the model
    file's metadata is UTF-8 text.

    A file name with bytes that are not UTF-8 comes to Python with each such byte as a surrogate
    escape (``os.fsdecode(b"corpus-\\xff.csv")`` is ``"corpus-\\udcff.csv"``), and so does every non-ASCII
    name under a locale that is not UTF-8 (``PYTHONUTF8=0`` in the C locale). Bytes that make UTF-8
    are decoded (``corpüs.csv`` stays readable); the run's own files record other names exactly (JSON
    escapes), and the model file, which travels to readers in other languages, records such a byte as
    Python's ``backslashreplace`` shows it: ``corpus-\\xff.csv``
    (:func:`~nextword.runtime.terminal.escape_surrogates`). Other values are returned as they are.
    """
    if isinstance(value, str):
        return escape_surrogates(value)
    if isinstance(value, dict):
        return {escape_undecodable(k): escape_undecodable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [escape_undecodable(v) for v in value]
    return value
