"""``nextword``: train, export, generate, evaluate, info.

Each subcommand parses its options (built from the same config dataclasses the Python API takes),
calls one API function and prints its result. Training and export load TensorFlow lazily, so
``generate``, ``evaluate`` and ``info`` work with the runtime alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nextword.export import ExportConfig
from nextword.runtime import GenerationConfig, ModelFileError, __version__, default_model, evaluate, load
from nextword.train import CorpusConfig, MissingExtraError, TrainConfig
from nextword.train.corpus import count_documents, read_split, validation_indices

from .args import add_config_arguments, config_flags, config_from_args
from .corpus import add_corpus_parser

__all__ = ["build_parser", "main"]

logger = logging.getLogger("nextword")

RESUMABLE_OPTIONS = {"epochs", "patience", "verbose", "max_minutes"}  # settings that --resume may change
MODEL_HELP = "the .onnx model file (default: $NEXTWORD_MODEL, else the bundled model)"
CACHE_HELP = (
    "mix in the continuous cache stored in the model file (default: on when the file has one; "
    "--no-cache scores with the model alone)"
)


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
    add_config_arguments(p, ExportConfig, skip=("generation.seed",))
    p.set_defaults(handler=_export)

    p = commands.add_parser("generate", help="continue one or more prompts")
    p.add_argument("prompts", nargs="+", metavar="PROMPT", help="text to continue (may be empty)")
    p.add_argument("--model", help=MODEL_HELP)
    add_config_arguments(p, GenerationConfig)
    p.add_argument("--stream", action="store_true", help="print words as they are generated (one prompt)")
    p.add_argument("--json", action="store_true", help="print a JSON list of {prompt, text, full}")
    p.set_defaults(handler=_generate)

    p = commands.add_parser("suggest", help="the most likely next words after a prompt")
    p.add_argument("prompt", help="text so far")
    p.add_argument("-k", type=int, default=5, help="how many words (default: 5)")
    p.add_argument("--model", help=MODEL_HELP)
    p.add_argument("--cache", action=argparse.BooleanOptionalAction, default=None, help=CACHE_HELP)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_suggest)

    p = commands.add_parser("score", help="log-probability and perplexity of a text under a model")
    p.add_argument("model", help="the .onnx model file")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("text", nargs="?", help="the text to score")
    source.add_argument("--file", help="read the text from this UTF-8 file")
    p.add_argument("--cache", action=argparse.BooleanOptionalAction, default=None, help=CACHE_HELP)
    p.add_argument("--json", action="store_true", help="print JSON with every word's log-probability")
    p.set_defaults(handler=_score)

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
    p.add_argument("--cache", action=argparse.BooleanOptionalAction, default=None, help=CACHE_HELP)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=_evaluate)

    p = commands.add_parser("info", help="what a model file holds: provenance, layers, metrics, parity")
    p.add_argument("model", nargs="?", help=MODEL_HELP)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_info)
    add_corpus_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 failed check, 2 bad input)."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    args = parser.parse_args(argv)
    args.command_line = shlex.join(["nextword", *argv])  # recorded with runs and model files
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    for stream in (sys.stdout, sys.stderr):  # a prompt may hold what the terminal cannot encode
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")
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
        result = train(config, command=args.command_line)
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
    report = export(config, command=args.command_line)
    p = report.parity
    print(f"wrote {report.path} ({report.bytes / 1e6:.2f} MB), ops: {report.ops}")
    print(
        f"parity (tolerance {p.tolerance:g}): max |Keras - ONNX| logits {p.max_abs_diff_random:.2e} random, "
        f"{p.max_abs_diff_real:.2e} real; chunked vs whole {p.max_abs_diff_chunked:.2e}; "
        f"greedy {p.greedy_words}-word generations identical {p.greedy_identical}/{p.greedy_sequences}"
    )
    if report.int8_vs_fp32:
        q = report.int8_vs_fp32
        print(
            f"int8 against fp32: max |logit difference| {q['max_abs_logit_diff']:.3f}, "
            f"greedy identical {q['greedy_identical']}/{q['greedy_sequences']}"
        )
    for precision in ("fp32", "int8", "fp32_cache", "int8_cache"):
        if precision in report.quality:
            figures, name = report.quality[precision], precision.replace("_cache", " + cache")
            print(
                f"validation ({name}): perplexity {figures['perplexity']:.2f}, "
                f"accuracy {figures['accuracy']:.2%}, top-5 {figures['top5_accuracy']:.2%} "
                f"over {figures['words']} words"
            )
    return 0


def _generate(args: argparse.Namespace) -> int:
    model = default_model(args.model)
    config = config_from_args(model.info.generation, vars(args))
    if args.stream:
        if len(args.prompts) != 1:
            raise ValueError("--stream takes one prompt")
        print(args.prompts[0], end="", flush=True)
        for piece in model.stream(args.prompts[0], config):
            print(piece, end="", flush=True)
        print()
        return 0
    texts = model.generate(args.prompts, config)
    per_prompt = config.num_return_sequences
    results = [
        {"prompt": args.prompts[i // per_prompt], "text": text, "full": args.prompts[i // per_prompt] + text}
        for i, text in enumerate(texts)
    ]
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
    else:
        print("\n\n".join(r["full"] for r in results))
    return 0


def _suggest(args: argparse.Namespace) -> int:
    suggestions = default_model(args.model).next_words(args.prompt, k=args.k, cache=args.cache)
    if args.json:
        print(
            json.dumps([{"word": w, "probability": p} for w, p in suggestions], indent=2, ensure_ascii=False)
        )
    else:
        for word, probability in suggestions:
            print(f"{word}\t{probability:.4f}")
    return 0


def _score(args: argparse.Namespace) -> int:
    text = args.text if args.file is None else _read_text_file(args.file)
    result = load(args.model).score(text, cache=args.cache)
    if args.json:
        print(json.dumps(dataclasses.asdict(result), indent=2, ensure_ascii=False))
        return 0
    print(f"words              {len(result.words)}")
    print(f"total log-prob     {result.total_logprob:.3f}")
    print(f"perplexity         {result.perplexity:.2f}")
    print(f"unknown words      {sum(w.unknown for w in result.words)}")
    return 0


def _read_text_file(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _evaluate(args: argparse.Namespace) -> int:
    model = load(args.model)
    train_corpus = model.info.config.get("train", {}).get("corpus", {})
    config = config_from_args(CorpusConfig(), vars(args))
    if args.split != "all" and "val_fraction" not in train_corpus:
        raise ModelFileError(f"{args.model} does not record its training split; use --split all")
    # Streamed: one document in memory at a time, whatever the corpus size.
    n_documents = count_documents(config.paths, config)
    held_out = (
        validation_indices(n_documents, train_corpus["val_fraction"], train_corpus["split_seed"])
        if args.split != "all"
        else np.zeros(0, dtype=np.int64)
    )
    wanted = {"all": (False, True), "val": (True,), "train": (False,)}[args.split]
    pairs = read_split(config.paths, config, n_documents, held_out)
    result = evaluate(model, (document for is_val, document in pairs if is_val in wanted), cache=args.cache)
    cache = model.info.cache if args.cache is not False else None
    if args.json:
        summary = {"model": args.model, "split": args.split, "cache": cache.to_dict() if cache else None}
        print(json.dumps({**summary, **result.to_dict()}, indent=2))
    else:
        print(f"cache          {_cache_text(cache)}")
        print(f"documents      {result.documents}")
        print(f"words          {result.words}")
        print(f"perplexity     {result.perplexity:.2f}")
        print(f"accuracy       {result.accuracy:.2%}")
        print(f"top-5 accuracy {result.top5_accuracy:.2%}")
        print(f"unknown words  {result.unknown_rate:.2%}")
    return 0


def _cache_text(cache: Any) -> str:
    if cache is None:
        return "off"
    return f"theta {cache.theta:g}, mix {cache.mix:g}, window {cache.window}"


def _info(args: argparse.Namespace) -> int:
    model = default_model(args.model)
    info = model.info
    train = info.config.get("train", {})
    summary: dict[str, Any] = {
        "file": model.source,
        "bytes": Path(model.source).stat().st_size,
        "format_version": info.format_version,
        "vocab_size": info.vocab_size,
        "layers": len(info.state_sizes),
        "units": list(info.state_sizes),
        "config": info.config,
        "metrics": info.metrics.get("best") or {},
        "quality": info.quality,
        "parity": info.parity,
        "cache": info.cache.to_dict() if info.cache else None,
        "versions": info.versions,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    model_cfg = info.config.get("model", {})
    print(f"{model.source}  ({summary['bytes'] / 1e6:.2f} MB, nextword format {info.format_version})")
    print(f"  vocabulary     {info.vocab_size} words")
    print(
        f"  network        embedding {model_cfg.get('embedding_dim', '?')}, "
        f"{len(info.state_sizes)} LSTM layer(s) of {', '.join(map(str, info.state_sizes))} units"
    )
    corpus, data = train.get("corpus", {}), train.get("data", {})
    if corpus:
        print(
            f"  corpus         {', '.join(corpus.get('paths', []))}: {data.get('documents', '?')} documents, "
            f"{data.get('val_documents', '?')} held out for validation "
            f"(fraction {corpus.get('val_fraction')}, split seed {corpus.get('split_seed')})"
        )
    for step, command in (
        ("trained with", train.get("command")),
        ("exported with", info.config.get("export", {}).get("command")),
    ):
        if command:
            print(f"  {step:<14} {command}")
    best = summary["metrics"]
    if best:
        loss, ppl = best.get("val_loss", math.nan), best.get("val_perplexity", math.nan)
        acc, top5 = best.get("val_accuracy", math.nan), best.get("val_top5_accuracy", math.nan)
        print(
            f"  best epoch     {best.get('epoch')} of {len(info.metrics.get('epochs', []))}: validation loss "
            f"{loss:.4f}, perplexity {ppl:.1f}, accuracy {acc:.2%}, top-5 {top5:.2%} (training windows)"
        )
    for precision in ("fp32", "int8", "fp32_cache", "int8_cache"):
        figures = info.quality.get(precision)
        if figures:
            name = precision.replace("_cache", "+cache")
            print(
                f"  quality {name:<11}validation documents: perplexity {figures['perplexity']:.2f}, "
                f"accuracy {figures['accuracy']:.2%}, top-5 {figures['top5_accuracy']:.2%}"
            )
    if info.parity:
        p = info.parity
        worst = max(p["max_abs_diff_random"], p["max_abs_diff_real"])
        print(
            f"  parity         max |Keras - ONNX| {worst:.2e} (tolerance {p['tolerance']:g}), "
            f"greedy identical {p['greedy_identical']}/{p['greedy_sequences']}"
        )
        if "int8_vs_fp32" in p:
            q = p["int8_vs_fp32"]
            print(
                f"  int8 vs fp32   max |logit difference| {q['max_abs_logit_diff']:.3f}, "
                f"greedy identical {q['greedy_identical']}/{q['greedy_sequences']}"
            )
    if info.cache is not None:
        tuned = info.cache.tuning
        gain = (
            f" (development perplexity {tuned['perplexity_without']:.1f} -> {tuned['perplexity_with']:.1f} "
            f"on {tuned.get('documents', '?')} training documents held out of training)"
            if "perplexity_with" in tuned
            else ""
        )
        print(f"  cache          {_cache_text(info.cache)}{gain}")
    defaults = info.generation.changes()
    if defaults:
        print("  decoding       " + ", ".join(f"{k}={v}" for k, v in defaults.items()) + " (model defaults)")
    print("  versions       " + ", ".join(f"{k} {v}" for k, v in info.versions.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
