"""``nextword``: train, export, generate, evaluate, info.

Each subcommand parses its options (built from the same config dataclasses the Python API takes),
calls one API function and prints its result. Training and export load TensorFlow lazily, so
``generate``, ``evaluate`` and ``info`` work with the runtime alone.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nextword.export import ExportConfig
from nextword.runtime import GenerationConfig, ModelFileError, __version__, evaluate, load
from nextword.train import (
    CorpusConfig,
    MissingExtraError,
    TrainConfig,
    load_documents,
    split_documents,
)

from .args import add_config_arguments, config_flags, config_from_args

__all__ = ["build_parser", "main"]

logger = logging.getLogger("nextword")

RESUMABLE_OPTIONS = {"epochs", "patience", "verbose"}  # settings that --resume may change


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``nextword`` command."""
    parser = argparse.ArgumentParser(
        prog="nextword", description="Word-level LSTM next-word models: train, export to ONNX, generate."
    )
    parser.add_argument("--version", action="version", version=f"nextword {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("train", help="train a model on a corpus (needs nextword[train])")
    add_config_arguments(p, TrainConfig)
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint")
    p.set_defaults(handler=_train)

    p = commands.add_parser("export", help="export a run to one ONNX file (needs nextword[train])")
    add_config_arguments(p, ExportConfig)
    p.set_defaults(handler=_export)

    p = commands.add_parser("generate", help="continue a prompt")
    p.add_argument("prompt", help="text to continue (may be empty)")
    p.add_argument("--model", required=True, help="the .onnx model file")
    add_config_arguments(p, GenerationConfig)
    p.set_defaults(handler=_generate)

    p = commands.add_parser("evaluate", help="per-word perplexity and next-word accuracy on a corpus")
    p.add_argument("model", help="the .onnx model file")
    add_config_arguments(p, CorpusConfig, skip=("val_fraction", "split_seed"))
    p.add_argument(
        "--split",
        choices=("all", "train", "val"),
        default="all",
        help="score every document, or only the training or validation split the model was trained "
        "with (same fraction and seed, read from the model file)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=_evaluate)

    p = commands.add_parser("info", help="what a model file holds: vocabulary, layers, metrics, parity")
    p.add_argument("model", help="the .onnx model file")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 failed check, 2 bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    # TensorFlow's C++ start-up chatter drowns the progress bar; the user's own setting wins.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return args.handler(args) or 0
    except MissingExtraError as exc:
        print(f"nextword {args.command}: {exc}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, FileExistsError) as exc:  # bad input: config, corpus, model file
        print(f"nextword {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # a failed check, such as export parity
        print(f"nextword {args.command}: failed: {exc}", file=sys.stderr)
        return 1


def _train(args: argparse.Namespace) -> int:
    from nextword.train import resume, train

    flags = config_flags(TrainConfig)
    options = {k: v for k, v in vars(args).items() if k in flags}
    if args.resume:
        refused = sorted(flags[k] for k in set(options) - RESUMABLE_OPTIONS)
        if refused:
            raise ValueError(
                f"--resume continues a run with its stored settings; it cannot change {', '.join(refused)} "
                f"(it can change {', '.join(sorted(flags[k] for k in RESUMABLE_OPTIONS))})"
            )
        result = resume(args.resume, **{k: options.get(k) for k in RESUMABLE_OPTIONS})
    else:
        config = config_from_args(TrainConfig(), options)
        if not config.corpus.paths:
            raise ValueError("no corpus files given: nextword train CORPUS... --out RUN_DIR")
        result = train(config)
    print(
        f"run {result.run_dir}: {result.epochs} epochs, best epoch {result.best_epoch} "
        f"(validation loss {result.best_val_loss:.4f}, perplexity {result.best_val_perplexity:.1f})"
        + (", stopped early" if result.stopped_early else "")
    )
    return 0


def _export(args: argparse.Namespace) -> int:
    from nextword.export import export

    config = config_from_args(ExportConfig(), vars(args))
    if not config.run_dir or not config.out:
        raise ValueError("usage: nextword export RUN_DIR --out MODEL.onnx")
    report = export(config)
    p = report.parity
    print(f"wrote {report.path} ({report.bytes / 1e6:.2f} MB), ops: {report.ops}")
    print(
        f"parity (tolerance {p.tolerance:g}): max |Keras - ONNX| logits {p.max_abs_diff_random:.2e} random, "
        f"{p.max_abs_diff_real:.2e} real; chunked vs whole {p.max_abs_diff_chunked:.2e}; "
        f"greedy {p.greedy_words}-word generations identical {p.greedy_identical}/{p.greedy_sequences}"
    )
    return 0


def _generate(args: argparse.Namespace) -> int:
    model = load(args.model)
    config = config_from_args(GenerationConfig(), vars(args))
    print(args.prompt + model.generate(args.prompt, config))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    model = load(args.model)
    train_corpus = model.info.config.get("train", {}).get("corpus", {})
    config = config_from_args(CorpusConfig(), vars(args))
    documents = load_documents(config.paths, config)
    if args.split != "all":
        if "val_fraction" not in train_corpus:
            raise ModelFileError(f"{args.model} does not record its training split; use --split all")
        train_docs, val_docs = split_documents(
            documents, train_corpus["val_fraction"], train_corpus["split_seed"]
        )
        documents = val_docs if args.split == "val" else train_docs
    result = evaluate(model, documents)
    if args.json:
        print(json.dumps({"model": args.model, "split": args.split, **result.to_dict()}, indent=2))
    else:
        print(f"documents      {result.documents}")
        print(f"words          {result.words}")
        print(f"perplexity     {result.perplexity:.2f}")
        print(f"accuracy       {result.accuracy:.2%}")
        print(f"top-5 accuracy {result.top5_accuracy:.2%}")
        print(f"unknown words  {result.unknown_rate:.2%}")
    return 0


def _info(args: argparse.Namespace) -> int:
    model = load(args.model)
    info = model.info
    summary: dict[str, Any] = {
        "file": args.model,
        "bytes": Path(args.model).stat().st_size,
        "format_version": info.format_version,
        "vocab_size": info.vocab_size,
        "layers": len(info.state_sizes),
        "units": list(info.state_sizes),
        "config": info.config,
        "metrics": info.metrics.get("best") or {},
        "parity": info.parity,
        "versions": info.versions,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    model_cfg = info.config.get("model", {})
    print(f"{args.model}  ({summary['bytes'] / 1e6:.2f} MB, nextword format {info.format_version})")
    print(f"  vocabulary     {info.vocab_size} words")
    print(
        f"  network        embedding {model_cfg.get('embedding_dim', '?')}, "
        f"{len(info.state_sizes)} LSTM layer(s) of {', '.join(map(str, info.state_sizes))} units"
    )
    best = summary["metrics"]
    if best:
        loss, ppl = best.get("val_loss", math.nan), best.get("val_perplexity", math.nan)
        acc, top5 = best.get("val_accuracy", math.nan), best.get("val_top5_accuracy", math.nan)
        print(
            f"  best epoch     {best.get('epoch')}: validation loss {loss:.4f}, perplexity {ppl:.1f}, "
            f"accuracy {acc:.2%}, top-5 {top5:.2%}"
        )
    if info.parity:
        p = info.parity
        worst = max(p["max_abs_diff_random"], p["max_abs_diff_real"])
        print(
            f"  parity         max |Keras - ONNX| {worst:.2e} (tolerance {p['tolerance']:g}), "
            f"greedy identical {p['greedy_identical']}/{p['greedy_sequences']}"
        )
    print("  versions       " + ", ".join(f"{k} {v}" for k, v in info.versions.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
