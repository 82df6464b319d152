"""The quality report of the bundled model: writes docs/quality.md.

Every model is scored on the same validation documents (the split recorded in the bundled model, made
again by ``nextword.corpus.rebuild_split``), with the same tokenizer (the bundled model's), predicting
every token of ``<eod> doc <eod> doc ... <eod>`` after the first: per-word perplexity, accuracy (the
top prediction is the next word) and top-5 accuracy.

    (a) unigram frequencies (add-one smoothed)
    (b) interpolated Kneser-Ney trigram (benchmarks/ngram.py)
    (c) the original notebook's recipe (benchmarks/notebook_recipe.py): 50-word window -> next word only,
        Embedding 100, LSTM 64, Dense 64 relu, softmax, batches of 2,048, Adam, trained for the same
        wall-clock time as our model
    (d) our model, fp32 ONNX file        (e) our model, int8 ONNX file (the bundled one)

Run: ``python -m benchmarks.quality`` (after ``make bundled-model``); ``--help`` for options.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.environment import machine_info
from benchmarks.ngram import KneserNeyTrigram, Unigram, score_stream
from benchmarks.notebook_recipe import BATCH_SIZE, SEQ_LEN, build_notebook_model
from nextword.corpus import CorpusConfig, rebuild_split
from nextword.runtime import evaluate, load
from nextword.runtime.default import BUNDLED_MODEL

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "data" / "neural_network_patent_query.csv"


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
    logp, ranks = [], []
    for start in range(0, len(truth), 4 * BATCH_SIZE):  # (N, V) probabilities would not fit in memory
        probs = model.predict_on_batch(inputs[start : start + 4 * BATCH_SIZE]).astype(np.float64)  # (n, V)
        target = truth[start : start + 4 * BATCH_SIZE]
        p = np.maximum(probs[np.arange(len(target)), target], 1e-300)
        logp.append(np.log(p))
        ranks.append((probs > p[:, None]).sum(axis=-1))
    logp, ranks = np.concatenate(logp), np.concatenate(ranks)
    return {
        "perplexity": math.exp(-logp.mean()),
        "accuracy": float((ranks == 0).mean()),
        "top5_accuracy": float((ranks < 5).mean()),
        "words": len(truth),
        "train_seconds": round(seconds, 1),
        "epochs": steps,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--int8", default=str(BUNDLED_MODEL), help="int8 model file (default: the bundled one)"
    )
    parser.add_argument(
        "--fp32", default=str(ROOT / "runs" / "bundled" / "fp32.onnx"), help="fp32 model file"
    )
    parser.add_argument("--corpus", default=str(CORPUS), help="the reference corpus CSV")
    parser.add_argument(
        "--budget-minutes",
        type=float,
        help="training time of (c) (default: our model's recorded training time)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of (c)'s initialization and shuffling")
    parser.add_argument("--out", default=str(ROOT / "docs" / "quality.md"), help="report to write")
    parser.add_argument("--card", default=str(ROOT / "docs" / "model-card.md"), help="model card to write")
    parser.add_argument("--json", help="also write the figures as JSON to this file")
    args = parser.parse_args()

    int8, fp32 = load(args.int8), load(args.fp32)
    tokenizer = int8.tokenizer
    if fp32.tokenizer != tokenizer:
        raise SystemExit("the fp32 and int8 files hold different tokenizers: export both from one run")
    split = rebuild_split(int8.info.provenance, CorpusConfig(paths=(args.corpus,)))
    train_docs, val_docs = split.documents()
    train_stream, val_stream = stream_of(train_docs, tokenizer), stream_of(val_docs, tokenizer)
    epochs = int8.info.metrics.get("epochs", [])
    our_seconds = sum(e.get("seconds", 0.0) for e in epochs)
    budget_s = args.budget_minutes * 60 if args.budget_minutes else our_seconds

    results: dict[str, dict] = {}
    timer = time.monotonic()
    results["a"] = score_stream(Unigram(train_stream, len(tokenizer)), val_stream)
    results["b"] = score_stream(KneserNeyTrigram(train_stream, len(tokenizer)), val_stream)
    print(
        f"n-grams scored in {time.monotonic() - timer:.0f} s; training (c) for {budget_s / 60:.1f} min",
        flush=True,
    )
    results["c"] = notebook_baseline(train_stream, val_stream, len(tokenizer), budget_s, args.seed)
    results["d"] = evaluate(fp32, val_docs).to_dict()
    results["e"] = evaluate(int8, val_docs).to_dict()
    for key, name in (("d", args.fp32), ("e", args.int8)):
        results[key]["file_mb"] = round(Path(name).stat().st_size / 1e6, 2)

    report = render(results, int8, len(val_docs), our_seconds, budget_s, args)
    Path(args.out).write_text(report, encoding="utf-8")
    card = render_card(results, int8, split.counts.documents, len(val_docs))
    Path(args.card).write_text(card, encoding="utf-8")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(report)
    return 0


def render(results, model, n_val_docs, our_seconds, budget_s, args) -> str:
    machine = machine_info()
    labels = {
        "a": "(a) unigram frequencies",
        "b": "(b) interpolated Kneser-Ney trigram",
        "c": "(c) notebook recipe: 50-word window → next word, LSTM 64",
        "d": "(d) nextword, fp32",
        "e": "(e) nextword, int8 (bundled)",
    }
    lines = [
        "# Quality of the bundled model",
        "",
        "Written by `benchmarks/quality.py`; rerun it to check these figures (`make quality`).",
        "",
        f"Validation: {n_val_docs} of the reference corpus's abstracts, held out by document "
        f"({model.info.provenance.split.describe()}), {results['d']['words']:,} predicted words. "
        f"Every model uses the bundled model's vocabulary ({model.vocab_size:,} tokens; words outside it are "
        f"`<unk>`, {results['d']['unknown_rate']:.1%} of the validation words).",
        "",
        "| model | perplexity | accuracy | top-5 accuracy |",
        "| --- | ---: | ---: | ---: |",
    ]
    for key, label in labels.items():
        r = results[key]
        lines.append(f"| {label} | {r['perplexity']:.1f} | {r['accuracy']:.1%} | {r['top5_accuracy']:.1%} |")
    d, c, b, e = (results[k]["perplexity"] for k in "dcbe")
    checks = [
        (f"(d) at least 15% lower perplexity than (c): {1 - d / c:.1%} lower", d <= 0.85 * c),
        (f"(d) lower perplexity than (b): {d:.1f} against {b:.1f}", d < b),
        (f"(e) within 2% of (d): {abs(e - d) / d:.2%} apart", abs(e - d) / d <= 0.02),
    ]
    lines += ["", "Targets:", ""]
    lines += [f"- {'met' if ok else 'NOT met'}: {text}" for text, ok in checks]
    lines += [
        "",
        "Notes:",
        "",
        f"- (c) trained for {results['c']['train_seconds'] / 60:.1f} minutes "
        f"({results['c']['epochs']} epochs started), the wall-clock time our model's training took "
        f"({our_seconds / 60:.1f} minutes, from its metrics), on the same machine. It sees every window "
        "of the training stream, documents separated by "
        "`<eod>` as for our model, so it learns document ends too; the notebook's one-hot int8 labels are "
        "replaced by integer labels, which leaves the loss unchanged.",
        "- (a) and (b) are fitted on the training stream; (b) discounts each order by n1 / (n1 + 2 n2).",
        "- (d) and (e) carry their LSTM state through each whole document; (c) and (b) see the previous 50 "
        "and 2 words, across document boundaries.",
        f"- Files: fp32 {results['d']['file_mb']} MB, int8 {results['e']['file_mb']} MB.",
        f"- Machine: {machine['cpu']}, {machine['usable_cores']} cores, Python {machine['python']}; "
        "command: `python -m benchmarks.quality` (`make quality`).",
        "",
    ]
    return "\n".join(lines)


SAMPLES = (("the present invention", 0.5, 1), ("a neural network", 0.8, 2), ("", 1.0, 3))  # prompt, T, seed


def render_card(results, model, n_documents, n_val_docs) -> str:
    """docs/model-card.md: what the bundled model is, how good it is, what it writes, what it cannot do."""
    train = model.info.config["train"]
    arch = model.info.config["model"]
    epochs = model.info.metrics.get("epochs", [])
    minutes = sum(e.get("seconds", 0.0) for e in epochs) / 60
    d, e, b, c = (results[k] for k in "debc")
    lines = [
        "# Model card: nextword-patents",
        "",
        "Written by `benchmarks/quality.py` from the bundled model file (`nextword info` shows the same "
        "provenance); the figures are those of [quality.md](quality.md).",
        "",
        "## What it is",
        "",
        f"A word-level LSTM language model of patent abstracts: embedding {arch['embedding_dim']}, "
        f"{arch['num_layers']} LSTM layer of {arch['lstm_units']} units, a softmax over {model.vocab_size:,} "
        f"tokens; int8 weights (onnxruntime dynamic quantization), {e['file_mb']} MB. It ships inside the "
        'runtime package: `nextword generate "..."` and `nextword.runtime.generate("...")` use it when '
        "no model is given.",
        "",
        "- Trained with: `" + str(train.get("command")) + "`",
        "- Exported with: `" + str(model.info.config.get("export", {}).get("command")) + "`",
        f"- Training: {len(epochs)} epochs in {minutes:.1f} minutes on a 2-core CPU, many-to-many windows "
        f"of {train['seq_len']} words following document boundaries, Adam with cosine decay, dropout "
        f"{arch['dropout']}, early stopping on validation loss.",
        "",
        "## Data",
        "",
        f"The reference corpus: {n_documents:,} US patent abstracts returned by a PatentsView query for "
        '"neural network" (granted 1976-2018), a public record (see ../shared/data/README.md). '
        f"{n_val_docs} abstracts ({model.info.provenance.split.describe()}) are held out by document for "
        "validation; the vocabulary "
        f"(words seen at least {train['tokenizer']['min_count']} times in the training abstracts) comes "
        'from the rest. Text is lowercased, figure references such as "(12)" are dropped.',
        "",
        "## Quality (validation abstracts)",
        "",
        "| model | perplexity | accuracy | top-5 accuracy |",
        "| --- | ---: | ---: | ---: |",
        f"| this model (int8) | {e['perplexity']:.1f} | {e['accuracy']:.1%} | {e['top5_accuracy']:.1%} |",
        f"| same weights, fp32 | {d['perplexity']:.1f} | {d['accuracy']:.1%} | {d['top5_accuracy']:.1%} |",
        f"| Kneser-Ney trigram | {b['perplexity']:.1f} | {b['accuracy']:.1%} | {b['top5_accuracy']:.1%} |",
        f"| the original notebook's recipe | {c['perplexity']:.1f} | {c['accuracy']:.1%} | "
        f"{c['top5_accuracy']:.1%} |",
        "",
        "## Samples",
        "",
        "Generated by the bundled model with `max_words=80`; rerun the command to get the same text.",
        "",
    ]
    for prompt, temperature, seed in SAMPLES:
        text = model.generate(prompt, max_words=80, temperature=temperature, seed=seed)
        command = f'nextword generate "{prompt}" --temperature {temperature} --seed {seed} --max-words 80'
        lines += [f"**Temperature {temperature}, seed {seed}** (`{command}`):", "", f"> {prompt}{text}", ""]
    lines += [
        "## Intended use",
        "",
        "Demonstrations, autocompletion and next-word suggestions in the register of patent abstracts about "
        "neural networks, and a reference model for the toolkit's tests of speed and quality.",
        "",
        "## Limitations",
        "",
        "- It imitates the style of abstracts; it knows no facts and its text is not a patent, an invention "
        "or legal language anyone should rely on.",
        "- Its vocabulary is that of one narrow corpus: other words become `<unk>` in prompts, and it "
        "cannot write them.",
        "- A word-level LSTM of this size keeps topic over a sentence or two, not over a whole abstract; "
        "long samples drift.",
        "- Near-duplicate abstracts in the corpus (patent families) let it reproduce phrases of real "
        "patents verbatim.",
        "- English only; lowercased input; punctuation limited to what the tokenizer splits.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
