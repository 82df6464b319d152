"""Markdown for docs/quality.md and docs/model-card.md from the figures of benchmarks.quality."""

from __future__ import annotations

import math
from typing import Any

from benchmarks import cache_text
from benchmarks.environment import features_text, machine_info

__all__ = ["cache_search", "cache_words", "render", "render_card"]

LABELS = {
    "a": "(a) unigram frequencies",
    "b": "(b) interpolated Kneser-Ney trigram (one discount per order)",
    "kn3": "modified Kneser-Ney 3-gram",
    "kn4": "modified Kneser-Ney 4-gram",
    "kn5": "modified Kneser-Ney 5-gram",
    "d": "(d) (c) + unigram cache of the document's earlier words",
    "e": "(e) notebook recipe: 50-word window → next word, LSTM 64",
    "f": "(f) nextword, fp32, model alone",
    "g": "(g) nextword, fp32, with its continuous cache",
    "h": "(h) nextword, int8 (bundled), model alone",
    "i": "(i) nextword, int8 (bundled), with its cache: `nextword evaluate`'s default, one thread",
}

# What docs/quality.md said before deduplication, and what it was on the documents without a twin
# (issue 12, measured on the previous bundled model and its split: fraction 0.1, seed 0).
PREVIOUS = {
    "val_documents": 352,
    "twins": 58,
    "twin_words": 8203,
    "words": 50765,
    "reported": 50.7,
    "on_twins": 7.5,
    "without_twins": 73.4,
    "top5_without_twins": 0.511,
    "trigram_reported": 61.7,
    "trigram_without_twins": 88.8,
}
# The figures are measured on one thread; more threads reorder onnxruntime's int8 sums a little.
THREADS_NOTE = (
    "Every model file runs on one onnxruntime thread here, as (i) is timed on one core; with more threads "
    "onnxruntime's int8 arithmetic can move the last digit (`nextword evaluate` on two threads, its "
    "default on a machine of two cores, gives (i) to within 0.1 point)."
)


def _row(label: str, r: dict[str, Any]) -> str:
    return f"| {label} | {r['perplexity']:.1f} | {r['accuracy']:.1%} | {r['top5_accuracy']:.1%} |"


def _targets(results: dict[str, Any]) -> list[tuple[str, bool]]:
    i, c, f, h = results["i"], results["c"], results["f"], results["h"]
    lower = 1 - i["perplexity"] / c["perplexity"]
    int8_gap = abs(h["perplexity"] / f["perplexity"] - 1)
    speed = i["words_per_second"]
    checks = [
        (f"(i) perplexity at most 48: {i['perplexity']:.1f}", i["perplexity"] <= 48),
        (f"(i) top-5 accuracy at least 60%: {i['top5_accuracy']:.1%}", i["top5_accuracy"] >= 0.60),
        (f"(i) at least 35% lower perplexity than the best n-gram (c): {lower:.1%} lower", lower >= 0.35),
        (f"(i) scored with the cache at 2,000 words/s or more on one core: {speed:,.0f}", speed >= 2000),
        (f"(h) within 2% of (f): {int8_gap:.2%} apart", int8_gap <= 0.02),
    ]
    if "d" in results:
        d = results["d"]["perplexity"]
        text = f"(i) below the n-gram with a cache (d): {i['perplexity']:.1f} against {d:.1f}"
        checks.insert(3, (text, i["perplexity"] < d))
    if "g" in results:
        gap = abs(i["perplexity"] / results["g"]["perplexity"] - 1)
        checks.append((f"(i) within 2% of (g): {gap:.2%} apart", gap <= 0.02))
    if "e" in results:
        fp32, e = f["perplexity"], results["e"]["perplexity"]
        checks.append(
            (f"(f) at least 15% lower perplexity than (e): {1 - fp32 / e:.1%} lower", fp32 <= 0.85 * e)
        )
    return checks


def render(results: dict[str, Any], model: Any, our_seconds: float, budget_s: float) -> str:
    """docs/quality.md."""
    machine = machine_info()
    split = results["split"]
    cache = model.info.cache
    lines = [
        "# Quality of the bundled model",
        "",
        "Written by `python -m benchmarks.quality`; rerun it to check these figures (`make quality`). It "
        "needs the fp32 export of the bundled model's weights, `runs/bundled-fp32.onnx` (or `--fp32 FILE`), "
        "which `make bundled-model` writes by retraining the bundled model and overwriting the bundled file.",
        "",
        f"Validation: {split['val']} of the reference corpus's {split['documents']:,} abstracts, held out by "
        f"document ({split['scheme']}), "
        f"{results['f']['words']:,} predicted words. The model trained on {split['train']} abstracts; "
        f"{split['dev']} more, held out of training, are its development part (its cache is tuned there, and "
        "so is the n-gram cache of (d)). Every model uses the bundled model's vocabulary "
        f"({model.vocab_size:,} tokens; words outside it are `<unk>`, {results['f']['unknown_rate']:.1%} of "
        "the validation words). Every predicted token counts, as `nextword evaluate` counts it: the words, "
        "`<unk>` for a word outside the vocabulary (a cache copies it as it copies words), and the `<eod>` "
        f"that ends each document ({split['val']} of the {results['f']['words']:,}); "
        "`python -m benchmarks.top5_misses` breaks top-5 accuracy down by kind of word.",
        "",
        "| model | perplexity | accuracy | top-5 accuracy |",
        "| --- | ---: | ---: | ---: |",
    ]
    for key in ("a", "b", "kn3", "kn4", "kn5", "d", "e", "f", "g", "h", "i"):
        if key not in results:
            continue
        label = LABELS[key]
        if key == "e" and "carried_from" in results["e"]:
            label += (
                " — not rerun (it does not depend on the cache); figures from the report of "
                f"{results['e']['carried_from']}"
            )
        if key == f"kn{results['c']['order']}":
            label = f"(c) {label}, the best order on the development documents"
        lines.append(_row(label, results[key]))
    lines += ["", THREADS_NOTE, "", "Targets:", ""]
    lines += [f"- {'met' if ok else 'NOT met'}: {text}" for text, ok in _targets(results)]
    if "untied" in results:
        u, t = results["untied"], results["f"]
        lines += [
            "",
            "## Ablation: tied embeddings and the cache",
            "",
            "The same recipe and time budget with the output layer's own matrix (`--no-tie-embeddings`), "
            "fp32, on the same documents:",
            "",
            "| output layer | cache | perplexity | accuracy | top-5 accuracy |",
            "| --- | --- | ---: | ---: | ---: |",
        ]
        pairs: tuple[tuple[str, str, Any], ...] = (
            ("untied", "off", u),
            ("untied", "on", results.get("untied_cache")),
        )
        pairs += (("tied", "off", t), ("tied", "on", results.get("g")))
        for name, cached, r in pairs:
            if r is not None:
                lines.append(_row(f"{name} | {cached}", r))
    prev = PREVIOUS
    lines += [
        "",
        "## What the previous report got wrong",
        "",
        f"The report before this one (previous bundled model, its own split) gave validation perplexity "
        f"{prev['reported']} for the model and {prev['trigram_reported']} for the Kneser-Ney trigram. "
        f"{prev['twins']} of its {prev['val_documents']} validation abstracts ({prev['twin_words']:,} of "
        f"{prev['words']:,} predicted words) had an identical twin among the training abstracts (patent "
        "continuations and divisionals repeat an abstract word for word): the model scored "
        f"{prev['on_twins']} on those and **{prev['without_twins']}** on the other "
        f"{prev['val_documents'] - prev['twins']} (top-5 {prev['top5_without_twins']:.1%}), so the reported "
        f"figure was {1 - prev['reported'] / prev['without_twins']:.0%} too low; the trigram was "
        f"**{prev['trigram_without_twins']}** there, "
        f"{1 - prev['trigram_reported'] / prev['trigram_without_twins']:.0%} too low. Every figure above is "
        "measured on validation documents whose duplicates are not among the training documents (issue 12).",
    ]
    if cache is not None:
        tuning = cache.tuning
        lines += [
            "",
            "## The continuous cache",
            "",
            f"Stored in the model file: {cache_words(cache)}, tuned at export on {tuning.get('documents')} "
            f"development documents ({tuning.get('words'):,} words), where it took perplexity from "
            f"{tuning.get('perplexity_without')} to {tuning.get('perplexity_with')}"
            + cache_search(tuning)
            + ". `score`, `evaluate` and "
            "`next_words` use it by default (`cache=False`, `--no-cache` to turn it off); "
            "scoring with it feeds one token per session call, documents side by side: "
            f"{results['i']['words_per_second']:,.0f} words/s on one core here.",
        ]
    lines += ["", "## What the cache does to generated text", "", cache_text.render(results["text"]), ""]
    lines += _text_summary(results["text"])
    lines += [
        "",
        "## Notes",
        "",
        _notebook_note(results, our_seconds),
        "- (a)-(d) are fitted on the training documents; their contexts never reach back across a document "
        "start. (c) discounts counts seen once, twice and three times or more separately (Chen & Goodman); "
        "(d) mixes it with the frequencies of the document's earlier words, "
        + (
            f"mix {results['d']['mix']:.2f} over the last {results['d']['window']} words, tuned on the "
            "development documents."
            if "d" in results
            else "(no development documents: not measured)."
        ),
        "- (f)-(i) carry their LSTM state through each whole document; (e) sees the previous 50 words.",
        _selection_note(model.info.metrics, model.info.config["train"]["seq_len"]),
        f"- Files: fp32 {results['f']['file_mb']} MB, int8 {results['h']['file_mb']} MB.",
        f"- Machine: {machine['cpu']} ({features_text(machine['cpu_features'])}), "
        f"{machine['usable_cores']} cores, Python {machine['python']}; "
        "command: `python -m benchmarks.quality` (`make quality`).",
        "",
    ]
    return "\n".join(lines)


def _chosen_by_dev(metrics: dict[str, Any]) -> bool:
    """Whether the development part's loss chose the best epoch (files without ``selected_by`` come
    from runs that chose by the validation loss)."""
    return metrics.get("selected_by") == "dev_loss"


def _selection_note(metrics: dict[str, Any], seq_len: int) -> str:
    """Which loss chose the model's best epoch and, where the validation loss did, how much that choice
    can move the validation figures: the largest gap to the validation loss of the epochs around it
    (as training measures it, over windows of ``seq_len`` words)."""
    epochs, best = metrics.get("epochs", []), metrics.get("best")
    if not epochs or not best:
        return "- The model file records no training epochs."
    chose = f"its best epoch ({best['epoch']} of {len(epochs)})"
    if _chosen_by_dev(metrics):
        return (
            f"- {chose.capitalize()} was chosen by the development documents' loss; the validation "
            "documents chose nothing."
        )
    i = next(k for k, e in enumerate(epochs) if e["epoch"] == best["epoch"])
    near = epochs[max(0, i - 2) : i + 3]
    gap = max(e["val_loss"] for e in near) - best["val_loss"]
    return (
        f"- The model's run predates choosing the epoch on the development documents: {chose} was "
        "chosen by the validation loss, on the documents scored above. Had any of epochs "
        f"{near[0]['epoch']}-{near[-1]['epoch']} been kept instead, the model's validation loss (as "
        f"training measures it, over {seq_len}-word windows, without the cache) would have been at most "
        f"{gap:.3f} higher, {math.expm1(gap):.1%} in perplexity. Runs trained now choose on the "
        "development documents."
    )


def _notebook_note(results: dict[str, Any], our_seconds: float) -> str:
    if "e" not in results:
        return "- (e) not trained in this run (`--skip-notebook`, and no earlier figures were kept)."
    e = results["e"]
    trained = f"trained for {e['train_seconds'] / 60:.1f} minutes ({e['epochs']} epochs started)"
    if "carried_from" in e:
        carried = (
            f"- (e) was not rerun for this report (`--skip-notebook`; it does not depend on the cache): its "
            f"figures are those of the report of {e['carried_from']} (docs/quality-notebook.json), where it "
            f"{trained}, the wall-clock time the model of that report took to train"
        )
        if e.get("same_data"):
            return f"{carried}, on the same machine and the same training documents."
        if e.get("same_data") is None:
            return f"{carried}; the kept figures do not record which training documents and vocabulary."
        then, now = e["data"], e["data_now"]
        return (
            f"{carried}, on other data than the rows above: {then['train_documents']:,} training documents "
            f"of a `{then['split']}` split and a vocabulary of {then['vocabulary']:,} words, where this "
            f"report's model trained on {now['train_documents']:,} documents of a `{now['split']}` split "
            f"with {now['vocabulary']:,} words. The row compares the recipes on different data."
        )
    return (
        f"- (e) {trained}, the wall-clock time our model's training took ({our_seconds / 60:.1f} minutes, "
        "from its metrics), on the same machine, on the same training documents."
    )


def cache_words(cache: Any) -> str:
    """The stored settings in a sentence."""
    similarity = "cosine similarities" if cache.similarity == "cosine" else "dot products"
    if cache.gate is None:
        share = f"a constant share (mix) of {cache.mix:g}"
    else:
        a, b = cache.gate
        share = (
            f"a share set per position by a gate on the cache's own confidence, sigmoid({a:.3f} + {b:.3f} L) "
            "where L is the log of the summed exp(theta x similarity) over the kept positions"
        )
    scale = f"scaled by theta {cache.theta:g}"
    return f"{similarity} of the LSTM states {scale}, {share}, a window of {cache.window} positions"


def cache_search(tuning: dict[str, Any]) -> str:
    """What the search tried, from the tuning record (files tuned before the gate have none)."""
    kinds = tuning.get("best_of_each")
    if not kinds:
        return ""
    shown = ", ".join(f"{name} {k['perplexity']}" for name, k in kinds.items())
    return (
        f" (the best development perplexity of each kind searched: {shown}; a gate is kept only when it "
        "beats the constant mix by more than 0.5%, cosines only when they beat dot products by more than "
        "0.2%)"
    )


def _text_summary(text: dict[str, Any]) -> list[str]:
    sampled = text["settings"]["sampling, temperature 1"]
    off, on = sampled["no_cache"], sampled["cache"]
    return [
        f"At temperature 1 the cache raises the share of repeated 2-grams from {off['repeated_2']:.1%} to "
        f"{on['repeated_2']:.1%} and of words that repeat the word before them from {off['stutter']:.2%} to "
        f"{on['stutter']:.2%}. The cache helps predict the words a document will use again, but sampling "
        "from it feeds the text's own words back into it, so `generate` and `stream` leave it off unless "
        "asked (`cache=True`, `nextword generate --cache`).",
    ]


SAMPLES = (("the present invention", 0.5, 1), ("a neural network", 0.8, 2), ("", 1.0, 3))  # prompt, T, seed


QUERY_RANGE = "1976-2018"  # the grant years the PatentsView query asked for (../shared/data/README.md)


def granted_text(granted: list[str] | tuple[str, str] | None) -> str:
    """When the corpus's patents were granted: the first and last of its date column when it has one
    (``quality.grant_dates``), else the range the query asked for."""
    if granted:
        first, last = granted
        return f"granted {first} to {last}, as its `patent_date` column says"
    return f"the query asked for patents granted {QUERY_RANGE}"


def render_card(results: dict[str, Any], model: Any) -> str:
    """docs/model-card.md: what the bundled model is, how good it is, what it writes, what it cannot do."""
    train = model.info.config["train"]
    arch = model.info.config["model"]
    epochs = model.info.metrics.get("epochs", [])
    minutes = sum(e.get("seconds", 0.0) for e in epochs) / 60
    split, cache = results["split"], model.info.cache
    output = "the embedding matrix (tied)" if arch.get("tie_embeddings") else "its own matrix"
    lines = [
        "# Model card: nextword-patents",
        "",
        "Written by `python -m benchmarks.quality` from the bundled model file (`nextword info` shows the "
        "same provenance); the figures are those of [quality.md](quality.md).",
        "",
        "## What it is",
        "",
        f"A word-level LSTM language model of patent abstracts: embedding {arch['embedding_dim']}, "
        f"{arch['num_layers']} LSTM layer of {arch['lstm_units']} units, a softmax over {model.vocab_size:,} "
        f"tokens whose output layer is {output}; int8 weights (onnxruntime dynamic quantization), "
        f"{results['h']['file_mb']} MB. "
        + (
            f"It carries a continuous cache ({cache.describe()}) that scoring uses by default. "
            if cache
            else ""
        )
        + 'It ships inside the runtime package: `nextword generate "..."` and '
        '`nextword.runtime.generate("...")` use it when no model is given.',
        "",
        "- Trained with: `" + str(train.get("command")) + "`",
        "- Exported with: `" + str(model.info.config.get("export", {}).get("command")) + "`",
        f"- Training: {len(epochs)} epochs in {minutes:.1f} minutes on a 2-core CPU, many-to-many windows "
        f"of {train['seq_len']} words following document boundaries, Adam with cosine decay, dropout "
        f"{arch['dropout']}, early stopping on "
        + (
            "the development documents' loss."
            if _chosen_by_dev(model.info.metrics)
            else "validation loss (see *Notes* in quality.md)."
        ),
        "",
        "## Data",
        "",
        f"The reference corpus: {split['documents']:,} US patent abstracts returned by a PatentsView query "
        f'for "neural network" ({granted_text(split.get("granted"))}), a public record '
        "(the file of WillKoehrsen/recurrent-neural-networks; runtime/data/NOTICE). "
        f"{split['val']} abstracts are "
        f"held out by document for validation ({split['scheme']}), {split['dev']} more as the development "
        f"part; the model trained on {split['train']}. The vocabulary (words seen at least "
        f"{train['tokenizer']['min_count']} times in the training abstracts) comes from the training side. "
        'Text is lowercased, figure references such as "(12)" are dropped.',
        "",
        "## Quality (validation abstracts)",
        "",
        "| model | perplexity | accuracy | top-5 accuracy |",
        "| --- | ---: | ---: | ---: |",
        _row("this model (int8) with its cache, as `nextword evaluate` scores it (one thread)", results["i"]),
        _row("this model (int8) alone", results["h"]),
        _row("same weights, fp32, alone", results["f"]),
        _row(f"modified Kneser-Ney {results['c']['order']}-gram", results["c"]),
    ]
    if "d" in results:
        lines.append(_row("the same with a unigram cache", results["d"]))
    if "e" in results:
        carried = results["e"].get("carried_from")
        label = f"the original notebook's recipe (not rerun: figures of {carried})" if carried else None
        lines.append(_row(label or "the original notebook's recipe", results["e"]))
    lines += [
        "",
        "## Samples",
        "",
        "Generated by the bundled model with `max_words=80` (the cache off, as `generate` leaves it); rerun "
        "the command to get the same text.",
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
        "long samples drift. The cache keeps a text's own terms likely, but in sampling it also feeds "
        "repetition, which is why generation leaves it off by default.",
        "- Patent families share near-identical abstracts; exact duplicates are kept out of the validation "
        "side, but phrases of real patents can still come out verbatim.",
        "- English only; lowercased input; punctuation limited to what the tokenizer splits.",
        "",
    ]
    return "\n".join(lines)
