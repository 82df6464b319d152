"""``nextword score`` and ``nextword evaluate``: which model and text or corpus the arguments name, and
the figures printed."""

from __future__ import annotations

import argparse
import functools
import logging
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from nextword.corpus import (
    CorpusConfig,
    DocumentSplit,
    check_options,
    count_documents,
    read_corpus,
    rebuild_split,
    recorded_corpus,
    split_corpus,
)
from nextword.corpus.dev import split_dev_mask
from nextword.corpus.overlap import copies_of, split_differs, trained_documents
from nextword.corpus.readers import CORPUS_SUFFIXES, detect_format
from nextword.runtime import ModelFileError, NextWordModel, TextScore, evaluate
from nextword.runtime.default import BUNDLED_MODEL

from .args import add_config_arguments, config_from_args
from .display import figure, json_text
from .info import cache_text
from .models import CACHE_HELP, add_device_argument, cached_model, open_model
from .positionals import names_model, text_names_a_file, typed_text
from .split_refusal import READ_AS_RECORDED, not_its_corpus
from .text_files import read_text_file

__all__ = ["add_evaluate_parser", "evaluate_command", "score_command"]

logger = logging.getLogger(__name__)

# Corpus settings that `evaluate` takes from the model file, never from its options.
SPLIT_OPTIONS = ("val_fraction", "split_seed", "keep_duplicates", "near_duplicate_threshold")


def score_command(args: argparse.Namespace) -> int:
    model_path, text = _score_arguments(args)
    model_file = cached_model(model_path, args.cache, args.device, args.size_limits)
    if text is None:
        text_read = read_text_file(args.file)
    else:
        text_names_a_file(text_read := typed_text(text))
    try:
        result = model_file.score(text_read, cache=args.cache)
    except ValueError as exc:
        if text is not None or not str(exc).startswith("text has no words"):
            raise
        source = "standard input" if args.file == "-" else args.file
        raise ValueError(f"{source}: {exc}") from None
    _warn_if_unknown(sum(w.unknown for w in result.words), len(result.words))
    if args.json:
        print(json_text(_score_json(model_file, result)))
        return 0
    print(f"words              {len(result.words)}")
    print(f"total log-prob     {figure(result.total_logprob, '.3f')}")
    print(f"perplexity         {figure(result.perplexity, '.2f')}")
    print(f"unknown words      {sum(w.unknown for w in result.words)}")
    return 0


def _score_json(model: NextWordModel, result: TextScore) -> dict[str, Any]:
    """The score as ``--json`` prints it: every word as the server's ``/v1/score`` gives it, ``"word"``
    the word as read (``WordScore.token``: an unknown one keeps its text, flagged ``unknown``, where
    ``WordScore.word`` is ``<unk>``) and ``"text"`` its text with spacing, to render the text."""
    tokens = [w.token for w in result.words]
    pieces = model.tokenizer.pieces(tokens)
    words = [
        {"word": token, "text": piece, "logprob": w.logprob, "unknown": w.unknown}
        for token, piece, w in zip(tokens, pieces, result.words, strict=True)
    ]
    return {"total_logprob": result.total_logprob, "perplexity": result.perplexity, "words": words}


def _score_arguments(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """The model (``None``: the default one) and the text of ``nextword score``, from ``MODEL TEXT``,
    ``TEXT --model MODEL``, ``MODEL --file F``, ``--file F --model MODEL``, ``TEXT`` or ``--file F``."""
    given = [a for a in (args.model, args.text) if a is not None]
    reads_file = args.file is not None
    if args.model_option is not None:
        if len(given) + reads_file != 1:
            raise ValueError(
                "with --model, give the text to score or --file, one of them: "
                "nextword score TEXT --model MODEL.onnx"
            )
        return args.model_option, None if reads_file else given[0]
    if reads_file:
        if len(given) > 1:
            raise ValueError("--file reads the text to score: give the model before it, and no text")
        return (given[0] if given else None), None
    if len(given) == 2:
        if not names_model(given[0]) and names_model(given[1]):  # a run folder first is refused here
            raise ValueError(f"{given[1]} names a model file: give it first, nextword score {given[1]} TEXT")
        return given[0], given[1]
    if not given:
        raise ValueError("no text to score: nextword score [MODEL.onnx] TEXT, or --file F")
    lone = given[0]
    if names_model(lone):
        raise ValueError(f"{lone} names a model file: give the text to score after it, or --file F")
    return None, given[0]


def add_evaluate_parser(commands: Any) -> None:
    """The ``nextword evaluate`` command's parser, under ``commands`` (the main parser's subparsers)."""
    p = commands.add_parser("evaluate", help="per-word perplexity and next-word accuracy on a corpus")
    p.add_argument(
        "model", nargs="?", help="the .onnx model file (or --model: then every positional is a corpus file)"
    )
    p.add_argument("--model", dest="model_option", metavar="MODEL.onnx", help="the .onnx model file")
    add_config_arguments(p, CorpusConfig, skip=(*SPLIT_OPTIONS, *READ_AS_RECORDED))
    add_config_arguments(p, CorpusConfig, skip=(*SPLIT_OPTIONS, "paths"), defaults_from="the model file's")
    p.add_argument(
        "--split",
        choices=("all", "train", "dev", "val"),
        default="all",
        help="score every document, or only the documents the model trained on, its development part "
        "(training documents held out of training, where its cache was tuned) or its validation "
        "documents, from the split made again as the model file records it (fraction, seed, "
        "deduplication)",
    )
    p.add_argument(
        "--split-of",
        metavar="OTHER.onnx",
        help="make --split as this other model file records its own: a base scored on the validation "
        "documents of a model fine-tuned from it, or two models on the same documents",
    )
    p.add_argument(
        "--trained-on",
        action="append",
        metavar="FILE",
        help="the corpus files the scored model was trained on (nextword info names them): documents that "
        "copy or nearly copy those it trained on are left out of the scores, and counted; repeat the flag "
        "for more",
    )
    p.add_argument("--cache", action=argparse.BooleanOptionalAction, default=None, help=CACHE_HELP)
    add_device_argument(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=evaluate_command)


def evaluate_command(args: argparse.Namespace) -> int:
    if args.model_option is not None:  # then every positional is a corpus file
        if args.model is not None:
            args.paths = [args.model, *getattr(args, "paths", ())]
        args.model = args.model_option
    if args.model is None:
        raise ValueError("no model given: nextword evaluate MODEL.onnx CORPUS... (or --model MODEL.onnx)")
    if args.model_option is None and Path(args.model).suffix.lower() in CORPUS_SUFFIXES:
        raise ValueError(
            f"{args.model} looks like a corpus, and evaluate's first argument is the model: nextword "
            f"evaluate MODEL.onnx {args.model} (the bundled model is {BUNDLED_MODEL})"
        )
    # --cache without settings: the flag named
    model = cached_model(args.model, args.cache, args.device, args.size_limits)
    split_model = _split_model(args, model)
    provenance = split_model.info.provenance
    if args.trained_on and args.split == "train":
        raise ValueError(
            "--trained-on leaves out the documents the model trained on, and --split train scores only "
            "those; use --split all or val"
        )
    # read the files as the model's were read, unless the options say otherwise
    config = config_from_args(recorded_corpus(provenance), vars(args))
    if not config.paths:
        raise ValueError("no corpus files given: nextword evaluate MODEL.onnx CORPUS...")
    if "format" not in vars(args):
        _check_recorded_format(config)
    typed = {key: vars(args)[key] for key in ("text_column", "json_field") if key in vars(args)}
    check_options(config.paths, replace(CorpusConfig(format=config.format), **typed))  # typed ones only
    # Streamed: one document in memory at a time, whatever the corpus size.
    if args.split == "all":
        documents: Callable[[], Iterator[str]] = functools.partial(read_corpus, config)
    elif provenance is None or provenance.split is None:
        raise ModelFileError(
            f"{args.split_of or args.model} does not record its training split; use --split all"
        )
    else:
        recorded = provenance.data.documents if provenance.data else None
        counted = count_documents(config.paths, config)  # before the split's deduplication pass
        if recorded is not None and counted != recorded:
            not_its_corpus(args, provenance, f"{counted:,} documents, the model's corpus {recorded:,}")
        made = rebuild_split(provenance, config)
        if provenance.data is not None:  # the counts of the split, then its validation words
            differs = split_differs(
                made, provenance.data, "the model's", split_model.tokenizer, provenance.corpus_sha256
            )
            if differs:
                not_its_corpus(args, provenance, differs)
        documents = functools.partial(_split_documents, made, provenance, args.split)
    left_out = None
    if args.trained_on:
        kept = ~_copies_of_trained(args, model, documents())
        left_out = int((~kept).sum())
        if len(kept) and not kept.any():
            raise ValueError(
                f"all {left_out} documents to score copy or nearly copy documents {args.model} trained on "
                "(--trained-on): none is held out"
            )
        documents = functools.partial(_kept, documents, kept)
    try:
        result = evaluate(model, documents(), cache=args.cache)
    except ValueError as exc:
        if str(exc) != "no documents to evaluate":
            raise
        files = ", ".join(map(str, config.paths))
        if args.split == "all":
            as_csv = config.format == "csv" or (
                config.format == "auto" and any(detect_format(Path(p)) == "csv" for p in config.paths)
            )
            note = " (read as CSV: the first line is the header, each row below it a document)"
            raise ValueError(
                f"no documents to evaluate: {files} holds no non-empty document{note if as_csv else ''}"
            ) from None
        raise ValueError(
            f"no documents to evaluate: the {args.split} part of the split made again from {files} is empty"
            + (" (the model was trained without a development part)" if args.split == "dev" else "")
        ) from None
    _warn_if_unknown(round(result.unknown_rate * result.words), result.words)
    if args.split_of and args.split == "val" and not args.trained_on:  # --trained-on left those out
        _warn_if_seen(args, model.info.provenance, provenance)
    cache = model.info.cache if args.cache is not False else None
    if args.json:
        summary = {"model": args.model, "split": args.split, "cache": cache.to_dict() if cache else None}
        summary |= {"split_of": args.split_of} if args.split_of else {}
        summary |= {"left_out_trained": left_out} if left_out is not None else {}
        print(json_text({**summary, **result.to_dict()}))
    else:
        of = f" (the split of {args.split_of})" if args.split_of else ""
        what = _SPLITS[args.split]
        if left_out is not None:
            what = (
                "every document but those that copy or nearly copy one the model trained on (--trained-on)"
                if args.split == "all"
                else f"{what}, less those that copy one it trained on (--trained-on)"
            )
        print(f"split          {args.split}: {what}{of}")
        print(f"cache          {cache_text(cache)}")
        print(f"documents      {result.documents}")
        if left_out is not None:
            print(f"left out       {left_out} that copy or nearly copy documents the model trained on")
        print(f"words          {result.words}")
        print(f"perplexity     {figure(result.perplexity, '.2f')}")
        print(f"accuracy       {result.accuracy:.2%}")
        print(f"top-5 accuracy {result.top5_accuracy:.2%}")
        print(f"unknown words  {result.unknown_rate:.2%}")
    return 0


def _copies_of_trained(
    args: argparse.Namespace, model: NextWordModel, documents: Iterator[str]
) -> np.ndarray:
    """For each of ``documents``: whether it copies or nearly copies one the scored model trained on, its
    training documents made again from ``--trained-on``'s files as its file records its split."""
    recorded = model.info.provenance
    if recorded is None or recorded.split is None:
        raise ModelFileError(
            f"{args.model} does not record how its corpus was split, so --trained-on cannot tell the "
            "documents it trained on from those it held out"
        )
    if not all(args.trained_on):
        raise ValueError("--trained-on takes a corpus file; an empty path was given")
    files = recorded_corpus(recorded, args.trained_on)
    split = split_corpus(files, recorded.split, log=False)
    differs = split_differs(split, recorded.data, tokenizer=model.tokenizer, digest=recorded.corpus_sha256)
    if differs:
        raise ValueError(
            f"--trained-on: {list(files.paths)} hold {differs}: they are not the files {args.model} was "
            "trained on; give those (nextword info names them)"
        )
    return copies_of(trained_documents(split, recorded.data.dev_documents), documents, recorded.split)


def _kept(documents: Callable[[], Iterator[str]], kept: np.ndarray) -> Iterator[str]:
    """The documents ``documents()`` yields where ``kept`` is True (the same documents, read again)."""
    return (document for document, keep in zip(documents(), kept.tolist(), strict=True) if keep)


def _split_model(args: argparse.Namespace, model: NextWordModel) -> NextWordModel:
    """The model whose recorded split ``--split`` makes again: ``--split-of``'s, else the scored one."""
    if args.split_of is None:
        return model
    if args.split == "all":
        raise ValueError(
            "--split-of names the model whose split --split makes again; add --split val (or train, dev)"
        )
    return open_model(args.split_of, size_limits=args.size_limits)


_SPLITS = {
    "all": "every document, those the model trained on included",
    "train": "the documents the model trained on",
    "dev": "training documents held out of training (where the cache was tuned)",
    "val": "the validation documents, held out",
}
UNKNOWN_SHARE = 0.2  # from this share of unknown words on, the figures are said to flatter the text


def _warn_if_unknown(unknown: int, words: int) -> None:
    """Say when many words are outside the vocabulary: each is the one word ``<unk>``, and predicting
    *an* unknown word is easy, so perplexity and accuracy can flatter the text (gibberish scored better
    than prose)."""
    if words >= 5 and unknown / words >= UNKNOWN_SHARE:
        logger.warning(
            "%d of the %d words (%.0f%%) are outside the model's vocabulary; each reads as the one word "
            "<unk>, and the figures count predicting that an unknown word comes as right, so they can "
            "look better than the text deserves",
            unknown,
            words,
            100 * unknown / words,
        )


def _warn_if_seen(args: argparse.Namespace, scored: Any, other: Any) -> None:
    """Say when the validation documents of ``--split-of``'s split hold text the scored model trained
    on, as a fine-tuned model records it: the scored model was fine-tuned on copies of its base's
    validation documents and ``other`` is a model of the base's corpus (its file names and documents),
    or ``other`` is a fine-tuned model whose validation documents copy its base's training documents
    and the scored model is a model of that base's corpus."""
    if scored is None or other is None:
        return
    mine, theirs = scored.base, other.base
    if mine is not None and mine.val_trained and _of_corpus(other, mine):
        logger.warning(
            "%s was fine-tuned on copies of %d of its base's %s validation documents, and %s was trained on "
            "the same corpus: if it is the base, or has its split, these figures include text %s trained on. "
            "The fine-tuned model's own validation documents compare the two: score it with --split val "
            "alone, and the base with --split-of %s; or leave them out with --trained-on and its corpus "
            "files",
            args.model,
            mine.val_trained,
            mine.val_documents if mine.val_documents is not None else "?",
            args.split_of,
            args.model,
            args.model,
        )
    if theirs is not None and theirs.val_overlap and _of_corpus(scored, theirs):
        logger.warning(
            "%d of the validation documents of %s copy or nearly copy documents its base trained on, and %s "
            "was trained on the base's corpus: if it is the base, its figures here include text it trained "
            "on; --trained-on with the base's corpus files leaves them out",
            theirs.val_overlap,
            args.split_of,
            args.model,
        )


def _of_corpus(provenance: Any, base: Any) -> bool:
    """Whether ``provenance`` (a model's) names the corpus ``base`` (a fine-tuned model's record of its
    base) was trained on: the same file names and number of documents."""
    return ", ".join(provenance.corpus_files) == base.corpus and provenance.data.documents == base.documents


def _check_recorded_format(config: CorpusConfig) -> None:
    """Refuse a file whose extension names a format other than the one recorded from the model's
    corpus (``--corpus-format lines`` for a .txt would read a .csv's header and commas as text)."""
    if config.format not in ("text", "lines"):
        return
    for path in config.paths:
        kind = detect_format(Path(path)) if Path(path).suffix.lower() != ".json" else "json"
        if kind != "text":
            raise ValueError(
                f"{path} is {kind.upper()} by its name, but evaluate reads the corpus as the model's was "
                f"read, --corpus-format {config.format}; pass --corpus-format auto to read it by its name"
            )


def _split_documents(split: DocumentSplit, provenance: Any, part: str) -> Iterator[str]:
    """The documents of one part of a model's split, read from the files: ``val``, ``train`` (the
    documents it trained on) or ``dev`` (training documents held out of training to tune its cache)."""
    if part == "val":  # the development part is carved from the training side: not needed here
        yield from (document for is_val, document in split.read() if is_val)
        return
    try:
        is_dev = split_dev_mask(split, provenance.data.dev_documents or 0)
    except ValueError as exc:  # a corpus other than the model's: its training side is too small
        recorded = provenance.data.documents
        trained_on = f"{recorded:,} documents; " if recorded else ""
        raise ValueError(
            f"--split {part}: {exc}; give the corpus the model was trained on ({trained_on}nextword info "
            "names its files), or score every document with --split all"
        ) from None
    index = 0
    for is_val, document in split.read():
        if is_val:
            continue
        if part == ("dev" if is_dev[index] else "train"):
            yield document
        index += 1
