"""The refusal of ``nextword evaluate --split`` where the corpus files given are not the model's corpus
as it was: what differs, how the files were read otherwise, and, for a fine-tuned model, the base's
split that ``--split-of`` makes again."""

from __future__ import annotations

import argparse
import unicodedata
from dataclasses import fields
from pathlib import Path
from typing import Any, NoReturn

from nextword.corpus import CorpusConfig, recorded_corpus
from nextword.runtime.default import BUNDLED_MODEL

from .display import shown_command

__all__ = ["READ_AS_RECORDED", "not_its_corpus"]

# How `evaluate` reads the corpus files: as the model file records its own were read, unless told.
READ_AS_RECORDED = ("format", "text_column", "json_field", "decode_html")


def not_its_corpus(args: argparse.Namespace, provenance: Any, found: str) -> NoReturn:
    """Refuse files that are not the model's corpus as it was, ``found`` saying how: their number of
    documents, or how the split made again from them differs from the model's record
    (:func:`~nextword.corpus.overlap.split_differs`). The split depends on every document and its
    place, so another corpus, or the same rows in another order, holds out other documents, which the
    model may have trained on."""
    files = ", ".join(provenance.corpus_files) or "nextword info names them"
    recorded = recorded_corpus(provenance)
    flags = {f.name: f.metadata.get("flag", "--" + f.name.replace("_", "-")) for f in fields(CorpusConfig)}
    given = {name: vars(args).get(name, getattr(recorded, name)) for name in READ_AS_RECORDED}
    otherwise = [  # as typed: --no-decode-html for a False
        f"--no-{flags[name][2:]}" if given[name] is False else flags[name]
        for name in READ_AS_RECORDED
        if given[name] != getattr(recorded, name)
    ]
    raise ValueError(
        f"--split {args.split}: these files hold {found}, so the split made again is not the one "
        f"{args.split_of or args.model} was trained with and its {args.split} documents are not its own"
        + (" (they may include some it trained on)" if args.split != "train" else "")
        + (
            f"; they were read otherwise than the model's corpus ({', '.join(otherwise)}): leave that "
            "out to read them as its file records"
            if otherwise
            else ""
        )
        + f"; give the corpus files it was trained on as they were ({files}), or score every document "
        "with --split all (--trained-on FILE leaves out those that copy one it trained on)"
        + _base_split_hint(args, provenance)
        + ". A Python "
        "with other Unicode tables than the one that trained the model can also split some words "
        "otherwise (this one's: Unicode " + unicodedata.unidata_version + ")"
    )


def _base_split_hint(args: argparse.Namespace, provenance: Any) -> str:
    """Where the refused model was fine-tuned (``provenance.base``): the files may be its base's corpus,
    whose split ``--split-of`` and the base's model file make again (the bundled model's by its path)."""
    base = provenance.base
    if base is None or not base.run:
        return ""
    named = str(BUNDLED_MODEL) if base.run == BUNDLED_MODEL.name else base.run
    model = f"--split-of {shown_command([named])}"
    if base.kind == "run":  # --split-of reads a model file
        model = f"--split-of and the model file exported from the run {base.run}"
    advice = f"add {model} to score {args.model} on the base's {args.split} documents"
    if args.split_of is not None and Path(args.model).name == base.run:  # scoring that base: its own split
        advice = f"leave --split-of out to score {args.model} on its own {args.split} documents"
    elif args.split_of is not None:
        advice = advice.replace(f"add {model}", f"give {model} in place of this one", 1)
    return f"; if they are the corpus of its base, {base.run}, {advice}"
