"""Streamed training data: peak memory and speed of each pass, for a corpus and for a tenth of it.

Generates a synthetic plain-text corpus of ``--words`` words (default 100 million) and one of a tenth
of that, then runs, for each in a child process of its own, the data path of ``nextword train``:

1. read the documents, find exact and near-duplicates, split them (``split_corpus``, deduplicating as
   ``nextword train`` does by default; ``--keep-duplicates`` for the document-index split);
2. count the training words into the vocabulary (``build_vocabulary``);
3. encode both splits into ``train.ids``/``val.ids`` (``encode_corpus``);
4. one full training epoch of windows through the ``tf.data`` pipeline (``DiskWindows``), then one
   validation pass;
5. ``--steps`` real training steps of a small model on that pipeline.

With ``--passes-only`` the children run stages 1-3 alone and never import TensorFlow, as
``nextword.corpus`` does: their peak RSS is the memory of the corpus passes themselves.

Reported per stage: seconds, words/s and the peak resident memory of the child during that stage
(``VmHWM`` of ``/proc/self/status``, reset before each stage through ``/proc/self/clear_refs``), and
the child's peak over its whole life. If memory is bounded by the model rather than the corpus, the
two corpora show the same peaks.

The corpus: documents of 4-12 sentences of 6-24 words (one paragraph each, blank lines between), the
words drawn from a Zipf distribution (exponent 1.1) over ``--vocab`` distinct made-up words, about
one in twelve followed by a comma. Words are counted as the generator writes them (whitespace
separated); the tokenizer's figures (``tokens``) also count the punctuation marks and ``<eod>``.

    python -m benchmarks.streaming_memory --words 10000000
    python -m benchmarks.streaming_memory --words 120000000 --passes-only   # about 1,000,000 documents
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.childproc import child_env, run_child
from benchmarks.environment import machine_info
from benchmarks.paths import CACHE_DIR
from benchmarks.report import fmt_bytes, fmt_num, markdown_table
from benchmarks.results import benchmark_parser, save_result
from benchmarks.synthetic_corpus import corpus_for

NAME = "streaming_memory"
DEFAULT_WORDS = 100_000_000
STAGES = [
    ("count", "1. read, deduplicate, split"),
    ("vocabulary", "2. vocabulary (training words)"),
    ("encode", "3. encode to train.ids/val.ids"),
    ("epoch", "4. one epoch of training windows"),
    ("validation", "4b. one pass of validation windows"),
    ("train_steps", "5. training steps"),
]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchmark_parser("streaming_memory", __doc__)
    parser.add_argument(
        "--words", type=int, default=DEFAULT_WORDS, help="words of the large corpus (default: %(default)s)"
    )
    parser.add_argument(
        "--ratio", type=int, default=10, help="the small corpus has words/ratio words (default: %(default)s)"
    )
    parser.add_argument("--vocab", type=int, default=20_000, help="distinct words (default: %(default)s)")
    parser.add_argument(
        "--steps", type=int, default=20, help="training steps of the small model (default: %(default)s)"
    )
    parser.add_argument("--seq-len", type=int, default=50, help="window length (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=64, help="windows per batch (default: %(default)s)")
    parser.add_argument(
        "--lstm-units", type=int, default=128, help="units of the small model's LSTM (default: %(default)s)"
    )
    parser.add_argument(
        "--workdir",
        default=str(CACHE_DIR / "streaming"),
        help="where the corpora and run folders go (default: %(default)s)",
    )
    parser.add_argument(
        "--delete-corpora", action="store_true", help="remove the generated corpora at the end"
    )
    parser.add_argument(
        "--passes-only",
        action="store_true",
        help="run the corpus passes (stages 1-3) alone, without importing TensorFlow",
    )
    parser.add_argument(
        "--keep-duplicates", action="store_true", help="split by document index, without deduplication"
    )
    parser.add_argument(
        "--result-json",
        metavar="PATH",
        help="where to write the figures (default: benchmarks/.cache/results/)",
    )
    parser.add_argument("--child", metavar="CORPUS", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ----------------------------------------------------------------------------- the child: one data path


def _status_kib(field: str) -> int | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


_PEAKS_KIB: list[int] = []  # VmHWM read before each reset: the child's peak is the largest


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux 4.0+); False where that is not possible.

    Resetting also lowers what ``ru_maxrss`` reports at exit, so the peak before each reset is kept in
    ``_PEAKS_KIB`` and the child's whole-life peak is computed from those.
    """
    _PEAKS_KIB.append(_status_kib("VmHWM") or 0)
    try:
        Path("/proc/self/clear_refs").write_text("5", encoding="utf-8")
        return True
    except OSError:
        return False


class Stage:
    """Times one stage and records the peak RSS during it."""

    def __init__(self, results: dict[str, Any], name: str) -> None:
        self.results, self.name = results, name

    def __enter__(self) -> Stage:
        self.reset = _reset_peak()
        self.rss_before = _status_kib("VmRSS")
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        seconds = time.perf_counter() - self.started
        self.results[self.name] = {
            "seconds": seconds,
            "peak_rss_bytes": (_status_kib("VmHWM") or 0) * 1024,
            "peak_reset": self.reset,
            "rss_before_bytes": (self.rss_before or 0) * 1024,
            "rss_after_bytes": (_status_kib("VmRSS") or 0) * 1024,
        }
        print(f"  {self.name}: {seconds:.1f} s", file=sys.stderr, flush=True)


def child(args: argparse.Namespace) -> dict[str, Any]:
    """Run the data path of a training run on ``args.child`` and measure each stage."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    corpus_path = Path(args.child)
    run_dir = corpus_path.with_name(corpus_path.stem + "-run")
    run_dir.mkdir(exist_ok=True)
    stages: dict[str, Any] = {}
    results: dict[str, Any] = {"stages": stages, "rss_at_start_bytes": (_status_kib("VmRSS") or 0) * 1024}
    if not args.passes_only:
        import keras  # noqa: F401  loaded first, so that its own memory is not charged to the first stage
        import tensorflow  # noqa: F401

    from nextword.corpus import CorpusConfig, build_vocabulary, encode_corpus, split_corpus
    from nextword.runtime.tokenizer import TokenizerConfig

    results["rss_after_imports_bytes"] = (_status_kib("VmRSS") or 0) * 1024
    corpus = CorpusConfig(paths=(str(corpus_path),), keep_duplicates=args.keep_duplicates)
    with Stage(stages, "count"):
        split = split_corpus(corpus)
    with Stage(stages, "vocabulary"):
        tokenizer = build_vocabulary(split, TokenizerConfig())
    with Stage(stages, "encode"):
        encoded = encode_corpus(split, tokenizer, run_dir / "train.ids", run_dir / "val.ids")
    counts = encoded.counts
    results.update(
        documents=counts.documents,
        exact_duplicates=counts.exact_duplicates,
        near_duplicate_groups=counts.near_duplicate_groups,
        near_duplicate_documents=counts.near_duplicate_documents,
        train_documents=counts.train_documents,
        val_documents=counts.val_documents,
        vocab_size=len(tokenizer),
        train_tokens=counts.train_words,
        val_tokens=counts.val_words,
        ids_bytes=(run_dir / "train.ids").stat().st_size + (run_dir / "val.ids").stat().st_size,
    )
    if not args.passes_only:
        _train_stages(args, run_dir, len(tokenizer), stages, results)
    _PEAKS_KIB.append(_status_kib("VmHWM") or 0)
    results["peak_rss_bytes"] = max(_PEAKS_KIB) * 1024  # the whole life of the child
    return results


def _train_stages(
    args: argparse.Namespace, run_dir: Path, vocab_size: int, stages: dict[str, Any], results: dict[str, Any]
) -> None:
    """Stages 4 and 5: windows through tf.data, then real training steps."""
    import keras
    import tensorflow as tf

    from nextword.train.config import ModelConfig, TrainConfig
    from nextword.train.data import DiskWindows
    from nextword.train.fit import build_optimizer, compile_model  # the trainer's optimizer and loss
    from nextword.train.model import build_model

    config = TrainConfig(
        out=str(run_dir),
        model=ModelConfig(embedding_dim=64, lstm_units=args.lstm_units, num_layers=1, dropout=0.0),
        seq_len=args.seq_len,
        batch_size=args.batch_size,
        epochs=1,
        verbose=0,
    )
    train_windows = DiskWindows(
        run_dir / "train.ids", config.seq_len, config.batch_size, shuffle=True, seed=config.seed
    )
    val_windows = DiskWindows(run_dir / "val.ids", config.seq_len, config.batch_size, shuffle=False)
    with Stage(stages, "epoch"):
        checksum = 0.0
        for _, _, weights in train_windows.dataset().take(len(train_windows)):
            checksum += float(tf.reduce_sum(weights))
        if int(checksum) != train_windows.words:
            raise RuntimeError(f"an epoch trained {checksum} positions, not {train_windows.words}")
    with Stage(stages, "validation"):
        for _ in val_windows.dataset():
            pass
    with Stage(stages, "train_steps"):
        keras.utils.set_random_seed(0)
        model = build_model(config.model, vocab_size)
        compile_model(model, build_optimizer(config, len(train_windows)))
        model.fit(
            train_windows.dataset(),
            steps_per_epoch=args.steps,
            epochs=1,
            shuffle=False,
            verbose=0,
        )
    results.update(
        train_batches=len(train_windows),
        val_batches=len(val_windows),
        model_params=int(model.count_params()),
    )


# ----------------------------------------------------------------------------- the parent


def measure(args: argparse.Namespace, corpus: Path) -> dict[str, Any]:
    out = Path(args.workdir) / f"{corpus.stem}-result.json"
    command = [
        sys.executable,
        "-m",
        "benchmarks.streaming_memory",
        "--child",
        str(corpus),
        "--child-out",
        str(out),
    ]
    command += ["--steps", str(args.steps), "--seq-len", str(args.seq_len)]
    command += ["--batch-size", str(args.batch_size), "--lstm-units", str(args.lstm_units)]
    command += ["--passes-only"] * args.passes_only + ["--keep-duplicates"] * args.keep_duplicates
    print(f"measuring {corpus}", file=sys.stderr)
    result = run_child(command, env=child_env())
    if result.returncode != 0:
        raise SystemExit(f"the child for {corpus} failed:\n{result.stderr[-4000:]}")
    data = json.loads(out.read_text())
    data["child_wall_s"] = result.wall_s
    return data


def stage_words(name: str, corpus: dict[str, Any], data: dict[str, Any], args: argparse.Namespace) -> float:
    """The words a stage went through: corpus words for the passes, window positions for the rest."""
    if name in ("count", "vocabulary", "encode"):
        return corpus["words"]
    if name == "epoch":
        return data["train_tokens"]
    if name == "validation":
        return data["val_tokens"]
    return args.steps * args.batch_size * args.seq_len


def markdown(results: dict[str, Any], args: argparse.Namespace) -> str:
    sizes = results["sizes"]
    headers = ["stage"]
    for size in sizes:
        label = f"{size['corpus']['words'] / 1e6:g}M words"
        headers += [f"{label}: s", "words/s", "peak RSS"]
    stages = [(n, label) for n, label in STAGES if n in sizes[0]["data"]["stages"]]
    rows = []
    for name, label in stages:
        row: list[Any] = [label if name != "train_steps" else f"5. {args.steps} training steps"]
        for size in sizes:
            stage = size["data"]["stages"][name]
            words = stage_words(name, size["corpus"], size["data"], args)
            row += [
                fmt_num(stage["seconds"]),
                fmt_num(words / stage["seconds"]),
                fmt_bytes(stage["peak_rss_bytes"]),
            ]
        rows.append(row)
    baseline = ["RSS after imports" + ("" if args.passes_only else " (TensorFlow included)")]
    whole = ["whole child: wall time, peak RSS"]
    for size in sizes:
        baseline += ["", "", fmt_bytes(size["data"]["rss_after_imports_bytes"])]
        whole += [
            fmt_num(size["data"]["child_wall_s"]),
            "",
            fmt_bytes(size["data"]["peak_rss_bytes"]),
        ]
    rows += [baseline, whole]
    facts = ["corpus: documents / file / train.ids+val.ids"]
    for size in sizes:
        c, d = size["corpus"], size["data"]
        facts += [f"{d['documents']:,}", fmt_bytes(c["bytes"]), fmt_bytes(d["ids_bytes"])]
    rows.append(facts)
    dedup = ["exact duplicates / near-duplicate groups (documents)"]
    for size in sizes:
        d = size["data"]
        if d.get("exact_duplicates") is None:
            dedup += ["-", "-", "-"]
        else:
            dedup += [
                f"{d['exact_duplicates']:,}",
                f"{d['near_duplicate_groups']:,}",
                f"({d['near_duplicate_documents']:,})",
            ]
    rows.append(dedup)
    model = ["vocabulary / model parameters / training tokens"]
    for size in sizes:
        d = size["data"]
        model += [
            f"{d['vocab_size']:,}",
            f"{d.get('model_params', 0):,}" if "model_params" in d else "-",
            f"{d['train_tokens']:,}",
        ]
    rows.append(model)
    return markdown_table(headers, rows)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        save_result(NAME, child(args), args.child_out)
        return 0
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    sizes = []
    for words in (args.words // args.ratio, args.words):
        corpus, facts = corpus_for(workdir, words, args.vocab)
        sizes.append({"corpus": facts, "data": measure(args, corpus)})
        if args.delete_corpora:
            corpus.unlink()
    results = {
        "machine": machine_info(),
        "settings": {k: v for k, v in vars(args).items() if k not in ("child", "child_out")},
        "sizes": sizes,
    }
    path = save_result(NAME, results, args.result_json)
    print(markdown(results, args))
    print(f"\nfigures: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
