"""Training: nextword's many-to-many recipe against the original notebook's recipe, same corpus.

Each recipe trains in a child process of its own for the same wall-clock budget (``--budget``
seconds of ``fit``, data preparation not counted), starting from the same document split
(the one ``nextword train`` makes by default: ``split_corpus``, deduplicated, 10%, seed 0) and the same
tokenizer built on the training documents:

* ours: ``build_model``, ``WindowBatches`` and ``TrainConfig``'s defaults: windows of 50 words, every
  position predicts its next word, integer labels, batches of 64 windows, Adam 2e-3 with clipnorm 1
  at a constant rate (the trainer's loss, without its learning-rate schedule);
* the notebook's (``benchmarks.notebook_recipe``): overlapping 50-word windows, only the next word, one-hot
  int8 labels, batches of 2,048 windows, Adam.

Both networks have the notebook's sizes: embedding 100 and one LSTM of 64 units (``--units``).
Reported: training words/s (one word = one predicted next word), the time of one epoch (extrapolated
from the steady rate when the budget ends first), peak RSS of each child, and the cross-entropy and
accuracy of both models on the same validation windows: every 50-word window of the validation
documents and the word that follows it, the notebook's own task.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_model import add_model_arguments
from benchmarks.childproc import child_env, run_child
from benchmarks.environment import machine_info
from benchmarks.report import fmt_bytes, markdown_table
from benchmarks.results import benchmark_parser, finish

NAME = "training"
RECIPES = {
    "ours": "nextword: many-to-many, integer labels",
    "notebook": "notebook: window → next word, one-hot int8 labels",
}
DEFAULT_BUDGET_S = 180
EVAL_BATCH = 512


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchmark_parser("training", __doc__)
    add_model_arguments(parser)
    parser.add_argument(
        "--budget",
        type=float,
        default=DEFAULT_BUDGET_S,
        help="seconds of training per recipe (default: %(default)s; the notebook used 10-minute-plus runs)",
    )
    parser.add_argument(
        "--units", type=int, default=64, help="LSTM units of both models (default: %(default)s)"
    )
    parser.add_argument(
        "--embedding-dim", type=int, default=100, help="embedding size of both models (default: %(default)s)"
    )
    parser.add_argument(
        "--max-val-windows",
        type=int,
        default=20_000,
        help="validation windows scored, a fixed random subset when there are more (default: %(default)s)",
    )
    parser.add_argument(
        "--recipes",
        default="ours,notebook",
        help=f"comma-separated recipes to run, of {','.join(RECIPES)} (default: %(default)s)",
    )
    parser.add_argument("--child", choices=sorted(RECIPES), help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    names = [r for r in args.recipes.split(",") if r]
    unknown = [r for r in names if r not in RECIPES]
    if unknown or not names:  # before any training: a typo must not cost the first recipe's minutes
        parser.error(
            f"argument --recipes: unknown recipe(s) {unknown or [args.recipes]}; choose from {list(RECIPES)}"
        )
    if args.budget <= 0:
        parser.error(f"argument --budget: must be a positive number of seconds, got {args.budget:g}")
    return args


# ----------------------------------------------------------------------------- the child: one recipe


def _peak_rss_self() -> int:
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return usage if sys.platform == "darwin" else usage * 1024


def budget_callback(budget: float, batches_per_epoch: int) -> Any:
    """A Keras callback that stops ``fit`` once ``budget`` seconds of training have passed and records
    batch and epoch timings (defined here so that importing this module does not load Keras)."""
    import keras

    class Budget(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.budget, self.batches_per_epoch = budget, batches_per_epoch
            self.start = self.first_batch_end = 0.0
            self.batches = 0
            self.epoch_seconds: list[float] = []
            self._epoch_start = 0.0
            self.fit_called = 0.0

        def on_train_begin(self, logs: Any = None) -> None:
            self.start = time.perf_counter()

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self._epoch_start = time.perf_counter()

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self.batches += 1
            now = time.perf_counter()
            if self.batches == 1:
                self.first_batch_end = now
            if now - self.start >= self.budget:
                self.model.stop_training = True

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if self.batches >= (len(self.epoch_seconds) + 1) * self.batches_per_epoch:
                self.epoch_seconds.append(time.perf_counter() - self._epoch_start)

        def summary(self, words_per_epoch: int) -> dict[str, Any]:
            end = time.perf_counter()
            elapsed = end - self.start
            steady_batches = self.batches - 1
            steady_s = end - self.first_batch_end
            per_batch = steady_s / steady_batches if steady_batches > 0 else elapsed / max(self.batches, 1)
            words_per_batch = words_per_epoch / self.batches_per_epoch
            measured = self.epoch_seconds[0] if self.epoch_seconds else None
            return {
                "train_seconds": elapsed,
                "setup_seconds": self.start - self.fit_called if self.fit_called else None,
                "batches": self.batches,
                "batches_per_epoch": self.batches_per_epoch,
                "epochs_done": self.batches / self.batches_per_epoch,
                "words_trained": self.batches * words_per_batch,
                "words_per_s": words_per_batch / per_batch,  # steady rate: first batch (tracing) left out
                "first_batch_seconds": self.first_batch_end - self.start,
                "epoch_seconds": measured if measured else per_batch * self.batches_per_epoch,
                "epoch_extrapolated": measured is None,
            }

    return Budget()


def child(args: argparse.Namespace) -> dict[str, Any]:
    """Train one recipe for the budget, then score it on the shared validation windows."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from benchmarks.notebook_recipe import BATCH_SIZE, build_notebook_model, notebook_windows, one_hot_int8
    from nextword.corpus import CorpusConfig, split_corpus
    from nextword.runtime.tokenizer import Tokenizer, TokenizerConfig

    started = time.perf_counter()
    train_docs, val_docs = split_corpus(CorpusConfig(paths=(args.corpus,))).documents()  # train's default
    tokenizer = Tokenizer.build(train_docs, TokenizerConfig())
    vocab = len(tokenizer)
    keras.utils.set_random_seed(0)
    val_x, val_y = notebook_windows(val_docs, tokenizer)
    if len(val_x) > args.max_val_windows:
        keep = np.sort(np.random.default_rng(0).choice(len(val_x), args.max_val_windows, replace=False))
        val_x, val_y = val_x[keep], val_y[keep]

    if args.child == "ours":
        from nextword.corpus import encode_stream
        from nextword.train.batches import WindowBatches
        from nextword.train.config import ModelConfig, TrainConfig
        from nextword.train.model import build_model

        config = TrainConfig(model=ModelConfig(embedding_dim=args.embedding_dim, lstm_units=args.units))
        model = build_model(config.model, vocab)
        compile_ours(model, config)
        stream = encode_stream(train_docs, tokenizer)
        data = WindowBatches(stream, config.seq_len, config.batch_size, shuffle=True, seed=config.seed)
        words_per_epoch, batches_per_epoch = len(stream) - 1, len(data)
        settings = {
            "batch_size": config.batch_size,
            "seq_len": config.seq_len,
            "learning_rate": config.learning_rate_for(1),
            "dropout": config.model.dropout,
        }
        fit_args: tuple[Any, ...] = (data,)
        fit_kwargs: dict[str, Any] = {}
    else:
        x, y = notebook_windows(train_docs, tokenizer)
        labels = one_hot_int8(y, vocab)  # (windows, vocab) int8, as the notebook held them
        del y
        model = build_notebook_model(vocab, embedding_dim=args.embedding_dim, lstm_units=args.units)
        words_per_epoch, batches_per_epoch = len(x), math.ceil(len(x) / BATCH_SIZE)
        settings = {"batch_size": BATCH_SIZE, "seq_len": x.shape[1], "labels_bytes": labels.nbytes}
        fit_args, fit_kwargs = (x, labels), {"batch_size": BATCH_SIZE, "shuffle": True}
    prepared = time.perf_counter()
    rss_prepared = _peak_rss_self()

    budget = budget_callback(args.budget, batches_per_epoch)
    budget.fit_called = time.perf_counter()
    model.fit(*fit_args, epochs=10_000, callbacks=[budget], verbose=0, **fit_kwargs)
    timing = budget.summary(words_per_epoch)
    del fit_args

    scored = time.perf_counter()
    val_loss, val_acc = score(model, val_x, val_y, many_to_many=args.child == "ours")
    return {
        "recipe": args.child,
        "vocab_size": vocab,
        "params": int(model.count_params()),
        "words_per_epoch": words_per_epoch,
        "settings": settings,
        "prepare_seconds": prepared - started,
        "peak_rss_prepared_bytes": rss_prepared,
        **timing,
        "val_windows": len(val_x),
        "val_loss": val_loss,
        "val_perplexity": math.exp(val_loss),
        "val_accuracy": val_acc,
        "score_seconds": time.perf_counter() - scored,
    }


def compile_ours(model: Any, config: Any) -> None:
    """The trainer's optimizer and loss, at a constant learning rate: a run cut by a time budget has no
    epoch count for a decay schedule to aim at (the notebook's Adam is constant too)."""
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate_for(1), clipnorm=config.clipnorm),
        loss=keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, reduction="mean_with_sample_weight"
        ),
    )


def score(model: Any, x: np.ndarray, y: np.ndarray, *, many_to_many: bool) -> tuple[float, float]:
    """Mean cross-entropy (nats) and accuracy of the next word after each window.

    Our model gives logits at every position: only the last one is computed here (the LSTM output at
    the last position through the Dense layer), so memory stays small. The notebook's model gives
    softmax probabilities of the word after the window.
    """
    import keras

    from nextword.train.model import apply_output

    if many_to_many:
        lstm_names = [
            layer.name
            for layer in model.layers
            if layer.name.startswith("lstm_") and "drop" not in layer.name
        ]
        hidden = model.get_layer(lstm_names[-1]).output  # (B, T, U)
        last = apply_output(model, hidden[:, -1, :])  # (B, V) logits
        scorer = keras.Model(model.inputs, last)
    else:
        scorer = model
    nll, correct = 0.0, 0
    for start in range(0, len(x), EVAL_BATCH):
        out = np.asarray(scorer.predict(x[start : start + EVAL_BATCH], verbose=0), dtype=np.float64)  # (b, V)
        target = y[start : start + EVAL_BATCH]
        rows = np.arange(len(target))
        if many_to_many:
            peak = out.max(axis=-1, keepdims=True)
            log_z = (peak + np.log(np.exp(out - peak).sum(axis=-1, keepdims=True)))[:, 0]
            nll += float((log_z - out[rows, target]).sum())
        else:
            nll += float(-np.log(np.clip(out[rows, target], 1e-12, None)).sum())
        correct += int((out.argmax(axis=-1) == target).sum())
    return nll / len(y), correct / len(y)


# ----------------------------------------------------------------------------- the parent


def measure(args: argparse.Namespace) -> dict[str, Any]:
    runs = {}
    for recipe in [r for r in args.recipes.split(",") if r]:
        print(f"training: {recipe} recipe, {args.budget:g} s budget", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "result.json"
            command = [
                sys.executable,
                "-m",
                "benchmarks.training",
                "--child",
                recipe,
                "--child-out",
                str(out),
                "--corpus",
                args.corpus,
                "--budget",
                str(args.budget),
                "--units",
                str(args.units),
                "--embedding-dim",
                str(args.embedding_dim),
                "--max-val-windows",
                str(args.max_val_windows),
            ]
            done = run_child(command, env=child_env())
            if done.returncode != 0 or not out.is_file():
                tail = "\n".join(done.stderr.strip().splitlines()[-15:])
                print(f"training: {recipe} failed ({done.returncode}):\n{tail}", file=sys.stderr)
                runs[recipe] = {
                    "recipe": recipe,
                    "failed": True,
                    "returncode": done.returncode,
                    "error": tail,
                }
                continue
            runs[recipe] = {
                **json.loads(out.read_text()),
                "peak_rss_bytes": done.peak_rss_bytes,
                "wall_s": done.wall_s,
            }
    return {"runs": runs}


def render(result: dict[str, Any], img: str | None = None) -> str:
    runs, settings = result["runs"], result["settings"]
    rows = []
    for key, label in RECIPES.items():
        run = runs.get(key)
        if run is None:
            continue
        if run.get("failed"):
            rows.append([label, "failed", *[""] * 7])
            continue
        epoch = f"{run['epoch_seconds']:,.0f}" + (" (extrapolated)" if run["epoch_extrapolated"] else "")
        rows.append(
            [
                label,
                f"{run['params']:,}",
                f"{run['words_per_s']:,.0f}",
                epoch,
                fmt_bytes(run["peak_rss_bytes"]),
                f"{run['train_seconds']:.0f} s, {run['epochs_done']:.2f} epochs",
                f"{run['val_loss']:.3f}",
                f"{run['val_perplexity']:.0f}",
                f"{run['val_accuracy']:.1%}",
            ]
        )
    headers = [
        "recipe",
        "parameters",
        "train words/s",
        "one epoch (s)",
        "peak RSS",
        "trained for",
        "val loss",
        "val perplexity",
        "val accuracy",
    ]
    parts = [
        f"Both models: embedding {settings['embedding_dim']}, one LSTM of {settings['units']} units "
        f"(the notebook adds Dense 64 relu and Dropout 0.5); same tokenizer (vocabulary "
        f"{_vocab(runs)}), same document split (10% of documents held out, seed 0). Each recipe trains "
        f"in its own process for **{settings['budget']:g} s** of `fit` (data preparation not counted). "
        "Words/s counts predicted next words per second at the steady rate (the first batch, which "
        "traces the graph, left out); an epoch that did not fit in the budget is extrapolated from that "
        "rate. Peak RSS is the child process's maximum resident memory. Validation: cross-entropy and "
        f"accuracy of the word after each 50-word window of the validation documents "
        f"({_val_windows(runs)} windows), the notebook's own task, scored the same way for both.",
        "",
        markdown_table(headers, rows),
    ]
    ours, nb = runs.get("ours"), runs.get("notebook")
    if ours and nb and not ours.get("failed") and not nb.get("failed"):
        parts += [
            "",
            f"Ours trains {ours['words_per_s'] / nb['words_per_s']:,.1f}× more words per second, an epoch "
            f"takes {nb['epoch_seconds'] / ours['epoch_seconds']:,.1f}× less time, and it peaks at "
            f"{nb['peak_rss_bytes'] / ours['peak_rss_bytes']:,.1f}× less memory; the notebook's one-hot "
            f"labels alone take {fmt_bytes(nb['settings']['labels_bytes'])}. After the same "
            f"{settings['budget']:g} s, validation loss is {ours['val_loss']:.3f} (ours) against "
            f"{nb['val_loss']:.3f} (notebook). An epoch of ours predicts every one of the "
            f"{ours['words_per_epoch']:,} training words; the notebook's predicts {nb['words_per_epoch']:,} "
            "(the first 50 words of a document are never a target).",
        ]
    return "\n".join(parts)


def _vocab(runs: dict[str, Any]) -> str:
    sizes = {r["vocab_size"] for r in runs.values() if not r.get("failed")}
    return ", ".join(f"{s:,}" for s in sorted(sizes)) or "?"


def _val_windows(runs: dict[str, Any]) -> str:
    sizes = {r["val_windows"] for r in runs.values() if not r.get("failed")}
    return ", ".join(f"{s:,}" for s in sorted(sizes)) or "?"


def plots(result: dict[str, Any], img_dir: Path) -> list[Path]:
    return []


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        Path(args.child_out).write_text(json.dumps(child(args)), encoding="utf-8")
        return 0
    if not Path(args.corpus).is_file():
        raise SystemExit(f"corpus {args.corpus} not found: pass --corpus FILE")
    result = {
        "name": NAME,
        "settings": {
            "budget": args.budget,
            "units": args.units,
            "embedding_dim": args.embedding_dim,
            "max_val_windows": args.max_val_windows,
            "corpus": str(Path(args.corpus).resolve()),
        },
        "machine": machine_info(),
        **measure(args),
    }
    status = finish(NAME, result, None, render, args.result_json)
    failed = [name for name, run in result["runs"].items() if run.get("failed")]
    if failed:
        print(f"training: failed: {', '.join(failed)} (see above)", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
