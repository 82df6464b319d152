"""Fine-tuning on a small corpus of new documents (``nextword train --init-from``), against training
from scratch on it, and against the base model as it is.

The base is a run of ``nextword train`` on ``--corpus`` with the defaults, bounded by ``--base-epochs``
and ``--base-minutes`` (kept in ``--base`` and reused when it holds a finished run), or, when ``--base``
names a model file (the bundled model), that file as it is, its split made again from ``--corpus``. The
new corpus is the base's own validation documents, written to a CSV: whole groups of near-duplicates
that the split held out, so the base trained on none of them and on no copy of one. On the new corpus,
with the defaults: a run from scratch, and runs fine-tuned from the base at its default learning rate
(5e-4, a quarter of training's), at training's (2e-3) and at half of its own, and (a run folder as the
base) one fine-tuned from the base's int8 model file (``nextword export --int8``: its weights read back
from the graph, as rounded) rather than its run folder. All split it alike (the same settings and seed);
every model is exported (fp32, no cache; the base as int8 too) and scored on the new corpus's validation
documents, the model alone.

Perplexities under different vocabularies do not compare: a word outside a vocabulary is ``<unk>``,
one token for many words, and a small corpus's vocabulary leaves out more. So besides each model's own
perplexity (every word, ``<unk>`` included, as ``nextword evaluate`` reports it), the table gives the
perplexity on the words both vocabularies know (the base's, which the fine-tuned model keeps, and the
scratch run's), the same positions for every model.

    python -m benchmarks.fine_tune                 # about 27 minutes on two cores, the base included
    python -m benchmarks.fine_tune --base runtime/data/nextword-patents.onnx   # the bundled model
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.childproc import child_env
from benchmarks.environment import machine_info
from benchmarks.paths import CACHE_DIR, DEFAULT_CORPUS, require_files, shown
from benchmarks.results import benchmark_parser, finish

NAME = "fine_tune"
OTHER_RATES = ("2e-3", "2.5e-4")  # fine-tuning's: training's default, and half of fine-tuning's
BASE_INT8 = "base alone, its int8 model file"
FROM_FILE = "fine-tuned from the base's int8 model file"
EXTENDED = "fine-tuned with --extend-vocabulary"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchmark_parser(NAME, __doc__)
    parser.add_argument(
        "--corpus", default=str(DEFAULT_CORPUS), help="the base's corpus (default: %(default)s)"
    )
    parser.add_argument(
        "--base",
        default=str(CACHE_DIR / "fine_tune" / "base"),
        help="the base run folder, trained there unless it holds one, or a model file (default: %(default)s)",
    )
    parser.add_argument("--base-epochs", type=int, default=4, help="the base's epochs at most (default: 4)")
    parser.add_argument(
        "--base-minutes", type=float, default=12, help="the base's training minutes at most (default: 12)"
    )
    parser.add_argument(
        "--new-corpus",
        choices=("held-out", "debian"),
        default="held-out",
        help="the new documents: the base's validation documents (held-out), or Debian package "
        "descriptions (debian: text of another kind, drawn as benchmarks.other_corpus draws them, "
        "--new-words words; adds runs with --extend-vocabulary) (default: %(default)s)",
    )
    parser.add_argument(
        "--new-words", type=int, default=30_000, help="words of Debian descriptions (default: %(default)s)"
    )
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per command at most")
    parser.add_argument("--result-json", metavar="PATH", help="default: benchmarks/.cache/results/")
    args = parser.parse_args(argv)
    if args.base_epochs < 1 or args.base_minutes <= 0:
        parser.error("argument --base-epochs/--base-minutes: give a positive number")
    return args


def nextword(*argv: str, timeout: float) -> float:
    """``nextword ARGV`` in a child process; its wall-clock seconds."""
    command = [sys.executable, "-m", "nextword.cli.main", *argv]
    started = time.perf_counter()
    done = subprocess.run(command, env=child_env(), capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def held_out_documents(base: Path, corpus: str) -> list[str]:
    """The validation documents of ``base``'s split (a run folder's, or a model file's as it records
    it), made again from its corpus files (a model file's: ``corpus``)."""
    from nextword.corpus import rebuild_split, recorded_corpus, recorded_split, split_corpus
    from nextword.runtime import load
    from nextword.train.files import RunDir

    if base.is_file():
        provenance = load(base).info.provenance
        assert provenance is not None, f"{base} records no split"
        split = rebuild_split(provenance, recorded_corpus(provenance, (corpus,)))
    else:
        config, stored = RunDir(base).read_config()
        split = split_corpus(config.corpus, recorded_split(stored["data"], config.corpus))
    return [document for is_val, document in split.read() if is_val]


def vocabulary(model_path: Path) -> int:
    from nextword.runtime import load

    return load(model_path).vocab_size


def scores(model_path: Path, documents: list[str]) -> list[tuple[str, float, bool]]:
    """Every word of ``documents`` as ``(token, log-probability, unknown)`` under the model alone."""
    from nextword.runtime import load

    model = load(model_path)
    return [
        (token, w.logprob, w.unknown)
        for document in documents
        for token, w in zip(
            model.tokenizer.tokenize(document), model.score(document, cache=False).words, strict=True
        )
    ]


def measure(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    base = Path(args.base)
    seconds: dict[str, float | None] = {"base": None}
    if not base.is_file() and not (base / "model.keras").is_file():
        print(f"fine_tune: training the base in {base}", file=sys.stderr, flush=True)
        seconds["base"] = nextword(
            "train", args.corpus, "--out", str(base), "--epochs", str(args.base_epochs),
            "--max-minutes", str(args.base_minutes), "--verbose", "0", "--overwrite", timeout=args.timeout,
        )  # fmt: skip
    new = held_out_documents(base, args.corpus) if args.new_corpus == "held-out" else debian(args.new_words)
    corpus = scratch / "new-documents.csv"
    with corpus.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["text"], *([d] for d in new)])
    # A model file holds no documents: the run checks its held-out documents against the base's corpus.
    base_corpus = ["--base-corpus", args.corpus] if base.is_file() else []
    settings = {
        "from scratch": [],
        "fine-tuned, learning rate 5e-4 (default)": ["--init-from", str(base), *base_corpus],
    }
    for rate in OTHER_RATES:
        settings[f"fine-tuned, learning rate {rate}"] = [
            "--init-from", str(base), *base_corpus, "--learning-rate", rate,
        ]  # fmt: skip
    if args.new_corpus == "debian":
        for rate in ("5e-4", "2e-3"):
            settings[f"{EXTENDED}, learning rate {rate}"] = [
                "--init-from", str(base), *base_corpus, "--extend-vocabulary", "--learning-rate", rate,
            ]  # fmt: skip
    files = {}
    if base.is_file():  # a model file: scored as it is
        files["base alone"] = base
    elif args.new_corpus == "held-out":  # a run folder: scored in fp32, and fine-tuned from its int8 file too
        files["base alone"] = scratch / "base.onnx"
        files[BASE_INT8] = scratch / "base-int8.onnx"
        for path, precision in ((files["base alone"], []), (files[BASE_INT8], ["--int8"])):
            nextword("export", str(base), "--out", str(path), *precision, "--no-tune-cache", "--no-evaluate",
                     timeout=args.timeout)  # fmt: skip
        settings[f"{FROM_FILE}, learning rate 5e-4 (default)"] = [
            "--init-from", str(files[BASE_INT8]), "--base-corpus", args.corpus,
        ]  # fmt: skip
    else:
        files["base alone"] = scratch / "base.onnx"
        nextword("export", str(base), "--out", str(files["base alone"]), "--no-tune-cache", "--no-evaluate",
                 timeout=args.timeout)  # fmt: skip
    runs = {label: scratch / f"run-{i}" for i, label in enumerate(settings)}
    for label, extra in settings.items():
        print(f"fine_tune: {label} on {len(new)} documents", file=sys.stderr, flush=True)
        seconds[label] = nextword(
            "train", str(corpus), "--out", str(runs[label]), *extra, "--verbose", "0", timeout=args.timeout
        )
    for label, run in runs.items():
        files[label] = scratch / f"{run.name}.onnx"
        nextword("export", str(run), "--out", str(files[label]), "--no-tune-cache", "--no-evaluate",
                 timeout=args.timeout)  # fmt: skip
    tuned = next(run for label, run in runs.items() if label.startswith("fine-tuned"))
    held_out = held_out_documents(tuned, str(corpus))
    words = {label: scores(path, held_out) for label, path in files.items()}
    tokens = [[t for t, _, _ in w] for w in words.values()]
    if any(t != tokens[0] for t in tokens):
        raise RuntimeError("the models tokenize the held-out documents differently: their words do not align")
    both = known_to(words["base alone"], words["from scratch"])
    extended = next((label for label in words if label.startswith(EXTENDED)), None)
    # with added words: the positions the run from scratch and the extended vocabulary both know
    scratch_known = known_to(words["from scratch"], words[extended]) if extended else None
    rows = []
    for label, scored in words.items():
        row = {
            "model": label,
            "vocabulary": vocabulary(files[label]),
            "unknown_share": sum(u for _, _, u in scored) / len(scored),
            "perplexity": perplexity(scored, [True] * len(scored)),
            "common_perplexity": perplexity(scored, both),
            "training_seconds": seconds.get(label if label != "base alone" else "base"),
        }
        if scratch_known and (label == "from scratch" or label.startswith(EXTENDED)):
            row["scratch_known_perplexity"] = perplexity(scored, scratch_known)
        rows.append(row)
    train_facts = json.loads((tuned / "config.json").read_text(encoding="utf-8"))["data"]
    # what each fine-tuned run counted of its held-out documents that copy one the base trained on
    overlaps = set()
    for label, run in runs.items():
        if label != "from scratch":
            facts = json.loads((run / "config.json").read_text(encoding="utf-8"))["base"]
            overlaps.add((facts.get("val_overlap"), facts.get("dev_overlap")))
    return {
        "new_corpus": args.new_corpus,
        "new_documents": len(new),
        "new_train_documents": train_facts.get("train_documents"),
        "held_out_documents": len(held_out),
        "held_out_words": len(both),
        "common_words": sum(both),
        "scratch_known_words": sum(scratch_known) if scratch_known else None,
        "base_overlap": sorted(overlaps, key=str),
        "rows": rows,
    }


def known_to(a: list[tuple[str, float, bool]], b: list[tuple[str, float, bool]]) -> list[bool]:
    """Which positions both models' vocabularies know."""
    return [not (x[2] or y[2]) for x, y in zip(a, b, strict=True)]


def perplexity(scored: list[tuple[str, float, bool]], chosen: list[bool]) -> float:
    logprobs = [lp for (_, lp, _), keep in zip(scored, chosen, strict=True) if keep]
    return math.exp(-sum(logprobs) / len(logprobs))


def debian(words: int) -> list[str]:
    """Debian package descriptions, ``words`` words of them, drawn as :mod:`benchmarks.other_corpus`
    draws its corpus (runs of consecutive packages; its download, kept in its cache folder)."""
    from benchmarks.other_corpus import SOURCE_URL, draw, fetch, read_packages

    source = fetch(SOURCE_URL, CACHE_DIR / "other" / "Translation-en.xz")
    return [package.text() for package in draw(list(read_packages(source)), words, seed=0)]


def _overlap(counts: list[list[int | None]] | None) -> str:
    """What the fine-tuned runs counted of their held-out documents that copy the base's."""
    if not counts or any(None in c for c in counts):
        return " The fine-tuned runs could not check their held-out documents against the base's."
    if len(counts) > 1:
        return f" The fine-tuned runs counted different held-out documents copying the base's: {counts}."
    val, dev = counts[0]
    return (
        f" {val} of the held-out documents and {dev} of the fine-tuned runs' development documents copy "
        "or nearly copy one the base trained on (as each fine-tuned run counts them)."
    )


def render(result: dict[str, Any]) -> str:
    n = f"{result['new_documents']:,}"
    what = (
        f"{n} Debian package descriptions"
        if result.get("new_corpus") == "debian"
        else f"the base's {n} validation documents"
    )
    extra = result.get("scratch_known_words")
    lines = [
        f"New corpus: {what}; trained on "
        f"{result['new_train_documents']:,} of them, scored on {result['held_out_documents']:,} held out "
        f"({result['held_out_words']:,} words, {result['common_words']:,} of them known to both "
        "vocabularies"
        + (f"; {extra:,} known to the run from scratch and the extended vocabulary" if extra else "")
        + ")."
        + _overlap(result.get("base_overlap")),
        "",
        "| model | vocabulary | `<unk>` share | perplexity | perplexity, words both vocabularies know | "
        + ("perplexity, words the run from scratch and the extended vocabulary know | " if extra else "")
        + "training, minutes |",
        "| :--- | ---: | ---: | ---: | ---: | " + ("---: | " if extra else "") + "---: |",
    ]
    for r in result["rows"]:
        minutes = "–" if r["training_seconds"] is None else f"{r['training_seconds'] / 60:.1f}"
        known = r.get("scratch_known_perplexity")
        lines.append(
            f"| {r['model']} | {r['vocabulary']:,} | {100 * r['unknown_share']:.1f}% | "
            f"{r['perplexity']:.1f} | {r['common_perplexity']:.1f} | "
            + (("–" if known is None else f"{known:.1f}") + " | " if extra else "")
            + f"{minutes} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    require_files({"--corpus": (args.corpus, "corpus", "")})
    with tempfile.TemporaryDirectory() as scratch:
        result = {
            "name": NAME,
            "corpus": shown(args.corpus),
            "base": shown(args.base),
            "machine": machine_info(),
            **measure(args, Path(scratch)),
        }
    return finish(NAME, result, None, render, args.result_json)


if __name__ == "__main__":
    sys.exit(main())
