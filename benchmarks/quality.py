"""The quality report of the bundled model: writes docs/quality.md and docs/model-card.md.

Every model is scored on the same validation documents, the split recorded in the bundled model made
again from the corpus, with the same tokenizer (the bundled model's), predicting every token of
``<eod> doc <eod> doc ... <eod>`` after the first: per-word perplexity, accuracy (the top prediction is
the next word) and top-5 accuracy. The count-based models are fitted on exactly the documents the
model trained on; the development part of the training documents (held out of training, where export
tuned the model's cache) tunes the n-gram cache too.

    (a) unigram frequencies (add-one smoothed)
    (b) interpolated Kneser-Ney trigram, one discount per order (benchmarks.ngram)
    (c) interpolated modified Kneser-Ney, orders 3-5: the best order on the development documents
    (d) (c) with a unigram cache of the document's earlier words, tuned on the development documents
    (e) the original notebook's recipe (benchmarks.notebook_recipe): 50-word window -> next word
        only, Embedding 100, LSTM 64, Dense 64 relu, softmax, batches of 2,048, Adam, trained for the
        same wall-clock time as our model
    (f) our model, fp32 ONNX file, alone      (g) the same with its continuous cache
    (h) our model, int8 (the bundled file), alone   (i) the same with its cache: what `nextword
        evaluate` reports by default

(e) takes as long to train as our model did. Each run that trains it saves its figures next to the
report (``quality-notebook.json``); ``--skip-notebook`` carries those figures over, marked in the report
as not rerun with the date of the run that measured them (it depends on neither our model nor its cache).

With ``--untied FILE`` (the fp32 file of the same recipe trained with ``--no-tie-embeddings``), an
ablation table sets tied against untied, each with and without its cache. A last section measures what
the cache does to generated text (benchmarks.cache_text).

Run: ``python -m benchmarks.quality`` (after ``make bundled-model``); ``--help`` for options.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import cache_text
from benchmarks.ngram import (
    KneserNeyTrigram,
    ModifiedKneserNey,
    Unigram,
    UnigramCache,
    score_stream,
    tune_cache,
)
from benchmarks.notebook_recipe import BATCH_SIZE, SEQ_LEN, build_notebook_model
from benchmarks.paths import DEFAULT_CORPUS, DOCS_DIR, REPO, require_files
from benchmarks.quality_report import render, render_card
from benchmarks.results import benchmark_parser, write_text
from nextword.corpus import rebuild_split, recorded_corpus
from nextword.corpus.dev import split_dev_mask
from nextword.runtime import evaluate, load
from nextword.runtime.default import BUNDLED_MODEL


def stream_of(documents: list[str], tokenizer) -> np.ndarray:
    """``<eod> doc1 <eod> doc2 ... <eod>`` as int32 ids."""
    ids = [tokenizer.eod_id]
    for document in documents:
        ids.extend(tokenizer.encode(document))
        ids.append(tokenizer.eod_id)
    return np.asarray(ids, dtype=np.int32)


def windows(stream: np.ndarray) -> np.ndarray:
    """Row t: the SEQ_LEN ids before ``stream[t + 1]``, left-padded with 0 at the stream's start."""
    padded = np.concatenate([np.zeros(SEQ_LEN, dtype=np.int32), stream])
    return np.lib.stride_tricks.sliding_window_view(padded[:-1], SEQ_LEN)[1:]  # (len - 1, SEQ_LEN)


def notebook_baseline(
    train_stream: np.ndarray, val_stream: np.ndarray, vocab: int, budget_s: float, seed: int
):
    """Train the notebook's recipe for ``budget_s`` seconds on every window of the training stream
    (next word only), then score it on the validation stream."""
    import keras

    keras.utils.set_random_seed(seed)
    model = build_notebook_model(vocab)
    # Same model and optimizer as the notebook; integer labels instead of its int8 one-hot array, which
    # changes nothing in the maths and keeps (windows x vocabulary) out of memory.
    model.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy")
    features, targets = windows(train_stream), train_stream[1:]
    rng = np.random.default_rng(seed)

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.order = rng.permutation(len(targets))

        def __len__(self):
            return math.ceil(len(targets) / BATCH_SIZE)

        def __getitem__(self, i):
            rows = self.order[i * BATCH_SIZE : (i + 1) * BATCH_SIZE]
            return features[rows], targets[rows]

        def on_epoch_end(self):
            self.order = rng.permutation(len(targets))

    class Budget(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.deadline = time.monotonic() + budget_s

        def on_train_batch_end(self, batch, logs=None):
            if time.monotonic() > self.deadline:
                self.model.stop_training = True

    started = time.monotonic()
    history = model.fit(Batches(), epochs=10_000, callbacks=[Budget()], verbose=0)
    seconds = time.monotonic() - started
    steps = sum(1 for _ in history.history["loss"])
    inputs, truth = windows(val_stream), val_stream[1:]
    logp_parts: list[np.ndarray] = []
    rank_parts: list[np.ndarray] = []
    for start in range(0, len(truth), 4 * BATCH_SIZE):  # (N, V) probabilities would not fit in memory
        probs = model.predict_on_batch(inputs[start : start + 4 * BATCH_SIZE]).astype(np.float64)  # (n, V)
        target = truth[start : start + 4 * BATCH_SIZE]
        p = np.maximum(probs[np.arange(len(target)), target], 1e-300)
        logp_parts.append(np.log(p))
        rank_parts.append((probs > p[:, None]).sum(axis=-1))
    logp, ranks = np.concatenate(logp_parts), np.concatenate(rank_parts)
    return {
        "perplexity": math.exp(-logp.mean()),
        "accuracy": float((ranks == 0).mean()),
        "top5_accuracy": float((ranks < 5).mean()),
        "words": len(truth),
        "train_seconds": round(seconds, 1),
        "epochs": steps,
    }


@dataclass(frozen=True)
class Splits:
    """The documents of a model's split: trained on, development part, validation."""

    train: list[str]
    dev: list[str]
    val: list[str]
    scheme: str  # how the split was made (SplitRecord.describe())
    documents: int  # documents the corpus files hold


def model_splits(model: Any, corpus: str) -> Splits:
    """The split ``model`` was trained with, made again from ``corpus`` by
    ``nextword.corpus.rebuild_split`` from the provenance the file records (deduplicated, for models
    trained since issue 12), then its development part as training carved it out of the training
    documents (in corpus order)."""
    provenance = model.info.provenance
    if provenance is None or provenance.split is None:
        raise SystemExit(
            f"{model.source} does not record its training split, which this report scores on: export "
            "it from its run with this nextword (`nextword export RUN --out MODEL.onnx`)"
        )
    reading = recorded_corpus(provenance, (corpus,))  # the files read as the model's were
    split = rebuild_split(provenance, reading)
    train, val = split.documents()
    dev_mask = split_dev_mask(split, provenance.data.dev_documents or 0)
    fitted = [d for d, is_dev in zip(train, dev_mask.tolist(), strict=True) if not is_dev]
    dev = [d for d, is_dev in zip(train, dev_mask.tolist(), strict=True) if is_dev]
    assert split.counts.documents is not None  # split_corpus counts the documents it read
    return Splits(fitted, dev, val, provenance.split.describe(), split.counts.documents)


def grant_dates(corpus: str | Path, column: str = "patent_date") -> tuple[str, str] | None:
    """The first and last date of a CSV corpus's ``column`` (ISO dates, YYYY-MM-DD; other values
    skipped), or None when the file is not a CSV, has no such column or no date in it."""
    path = Path(corpus)
    if path.suffix.lower() != ".csv":
        return None
    csv.field_size_limit(sys.maxsize)
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        if column not in (reader.fieldnames or []):
            return None
        dates = []
        for row in reader:
            try:
                dates.append(datetime.date.fromisoformat((row.get(column) or "").strip()))
            except ValueError:
                continue
    return (min(dates).isoformat(), max(dates).isoformat()) if dates else None


def ngram_rows(splits: Splits, tokenizer: Any) -> dict[str, dict[str, Any]]:
    """(a)-(d): the count-based models, fitted on the training documents, chosen and tuned on the
    development documents, scored on the validation documents."""
    train, dev, val = (stream_of(d, tokenizer) for d in (splits.train, splits.dev, splits.val))
    vocab = len(tokenizer)
    rows: dict[str, dict[str, Any]] = {}
    started = time.monotonic()
    rows["a"] = score_stream(Unigram(train, vocab), val)
    rows["b"] = score_stream(KneserNeyTrigram(train, vocab), val)
    candidates = {}
    for order in (3, 4, 5):
        fitted = time.monotonic()
        model = ModifiedKneserNey(train, vocab, order)
        seconds = time.monotonic() - fitted
        dev_ppl = score_stream(model, dev)["perplexity"] if len(splits.dev) else math.nan
        candidates[order] = (model, dev_ppl, seconds)
        rows[f"kn{order}"] = {**score_stream(model, val), "dev_perplexity": dev_ppl, "fit_seconds": seconds}
    order = min(candidates, key=lambda k: candidates[k][1]) if len(splits.dev) else 5
    best = candidates[order][0]
    rows["c"] = {**rows[f"kn{order}"], "order": order}
    if len(splits.dev):
        mix, window, dev_ppl = tune_cache(best, dev)
        rows["d"] = {**score_stream(UnigramCache(best, mix, window), val), "order": order}
        rows["d"] |= {"mix": mix, "window": window, "dev_perplexity": dev_ppl}
    print(f"n-grams fitted and scored in {time.monotonic() - started:.0f} s", flush=True)
    return rows


def one_core() -> contextlib.AbstractContextManager:
    """Pin this process to one core while a speed is measured (Linux; elsewhere, no pinning)."""

    @contextlib.contextmanager
    def pinned():
        if not hasattr(os, "sched_setaffinity"):
            yield
            return
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(before)})
        try:
            yield
        finally:
            os.sched_setaffinity(0, before)

    return pinned()


def neural_rows(fp32: Any, int8: Any, val: list[str]) -> dict[str, dict[str, Any]]:
    """(f)-(i): the model files alone and with their caches; (i) timed on one core."""
    rows = {
        "f": evaluate(fp32, val, cache=False).to_dict(),
        "h": evaluate(int8, val, cache=False).to_dict(),
    }
    if fp32.info.cache is not None:
        rows["g"] = evaluate(fp32, val).to_dict()
    with one_core():
        started = time.perf_counter()
        rows["i"] = evaluate(int8, val).to_dict()  # as `nextword evaluate` scores it by default
        rows["i"]["words_per_second"] = rows["i"]["words"] / (time.perf_counter() - started)
    rows["i"]["cache"] = int8.info.cache.to_dict() if int8.info.cache else None
    return rows


def notebook_figures_path(report: str) -> Path:
    """Where (e)'s figures are kept between runs: next to the report."""
    return Path(report).with_name("quality-notebook.json")


def notebook_data(splits: Splits, tokenizer: Any, scheme: str) -> dict[str, Any]:
    """What (e) trains and is scored on, kept with its figures so that a later report can tell whether
    they were measured on its data: the split's scheme, the training documents (count and a digest of
    their text) and the vocabulary size (the tokenizer is the bundled model's)."""
    digest = hashlib.sha256("\x00".join(splits.train).encode("utf-8")).hexdigest()[:16]
    return {
        "split": scheme,
        "train_documents": len(splits.train),
        "train_digest": digest,
        "vocabulary": len(tokenizer),
    }


def save_notebook_figures(path: Path, figures: dict[str, Any], data: dict[str, Any]) -> None:
    """Keep (e)'s figures, dated and with the data they were measured on (:func:`notebook_data`),
    for later runs with ``--skip-notebook``."""
    record = {"measured": time.strftime("%Y-%m-%d"), "command": "python -m benchmarks.quality", "data": data}
    write_text(path, json.dumps(record | figures, indent=2) + "\n")


def carried_notebook_figures(path: Path, data: dict[str, Any]) -> dict[str, Any] | None:
    """(e)'s figures from an earlier run, marked ``carried_from`` (its date) and ``same_data``: whether
    they were measured on ``data`` (this report's :func:`notebook_data`; None when the kept record
    does not say); None when none were kept."""
    if not path.is_file():
        print(f"{path} not found: (e) is left out of the report", flush=True)
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    same = None if "data" not in record else record["data"] == data
    return {**record, "carried_from": record["measured"], "same_data": same, "data_now": data}


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser("quality", __doc__)
    parser.add_argument(
        "--int8", default=str(BUNDLED_MODEL), help="int8 model file (default: the bundled one)"
    )
    parser.add_argument(
        "--fp32",
        default=str(REPO / "runs" / "bundled-fp32.onnx"),
        help="fp32 model file of the same weights (default: %(default)s, which make bundled-model writes)",
    )
    parser.add_argument("--untied", help="fp32 file of the same recipe with --no-tie-embeddings (ablation)")
    parser.add_argument("--corpus", default=str(DEFAULT_CORPUS), help="the reference corpus CSV")
    parser.add_argument(
        "--budget-minutes",
        type=float,
        help="training time of (e) (default: our model's recorded training time)",
    )
    parser.add_argument(
        "--skip-notebook",
        action="store_true",
        help="do not train (e), the notebook's recipe: carry over its figures from the last run that did "
        "(quality-notebook.json next to --out), marked as not rerun",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of (e)'s initialization and shuffling")
    parser.add_argument("--text-seeds", type=int, default=5, help="seeds per prompt in the text measurements")
    parser.add_argument("--out", default=str(DOCS_DIR / "quality.md"), help="report to write")
    parser.add_argument("--card", default=str(DOCS_DIR / "model-card.md"), help="model card to write")
    parser.add_argument("--json", help="also write the figures as JSON to this file")
    args = parser.parse_args(argv)
    require_files(
        {
            "--int8": (args.int8, "int8 model file", ""),
            "--fp32": (
                args.fp32,
                "fp32 model file",
                "make bundled-model writes runs/bundled-fp32.onnx (it retrains the bundled model and "
                "overwrites the bundled file)",
            ),
            "--untied": (args.untied, "untied fp32 model file", ""),
            "--corpus": (args.corpus, "corpus", ""),
        }
    )

    int8, fp32 = load(args.int8, threads=1), load(args.fp32, threads=1)  # (i) is timed on one core
    tokenizer = int8.tokenizer
    if fp32.tokenizer != tokenizer:
        raise SystemExit("the fp32 and int8 files hold different tokenizers: export both from one run")
    splits = model_splits(int8, args.corpus)
    epochs = int8.info.metrics.get("epochs", [])
    our_seconds = sum(e.get("seconds", 0.0) for e in epochs)
    budget_s = args.budget_minutes * 60 if args.budget_minutes else our_seconds

    results: dict[str, Any] = ngram_rows(splits, tokenizer)
    results |= neural_rows(fp32, int8, splits.val)
    provenance = int8.info.provenance
    assert provenance is not None and provenance.split is not None  # model_splits needed both
    data = notebook_data(splits, tokenizer, provenance.split.scheme)
    if not args.skip_notebook:
        print(f"training (e) for {budget_s / 60:.1f} min", flush=True)
        train_stream, val_stream = stream_of(splits.train, tokenizer), stream_of(splits.val, tokenizer)
        results["e"] = notebook_baseline(train_stream, val_stream, len(tokenizer), budget_s, args.seed)
        save_notebook_figures(notebook_figures_path(args.out), results["e"], data)
    elif (carried := carried_notebook_figures(notebook_figures_path(args.out), data)) is not None:
        results["e"] = carried
    if args.untied:
        untied = load(args.untied, threads=1)
        if untied.tokenizer != tokenizer:
            raise SystemExit("the untied file holds another tokenizer: train it on the same corpus and split")
        results["untied"] = evaluate(untied, splits.val, cache=False).to_dict()
        if untied.info.cache is not None:
            results["untied_cache"] = evaluate(untied, splits.val).to_dict()
        results["untied"]["config"] = untied.info.config.get("model", {})
    for key, name in (("f", args.fp32), ("h", args.int8)):
        results[key]["file_mb"] = round(Path(name).stat().st_size / 1e6, 2)
    results["text"] = cache_text.measure(int8, args.text_seeds, 100, splits.val[:200])
    results["split"] = {
        "train": len(splits.train),
        "dev": len(splits.dev),
        "val": len(splits.val),
        "scheme": splits.scheme,
        "documents": splits.documents,
        "granted": grant_dates(args.corpus),
    }

    report = render(results, int8, our_seconds, budget_s)
    write_text(args.out, report)
    write_text(args.card, render_card(results, int8))
    if args.json:
        write_text(args.json, json.dumps(results, indent=2, default=str))
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
