"""How many epochs a small corpus needs: ``nextword train``'s default against a fixed 10 epochs.

For each ``--documents`` size, the first documents of ``--corpus`` (the reference corpus by default) are
trained twice with every other setting at its default, in a fresh child process each: once with
``--epochs 10`` (the default before epochs were planned from the corpus's size) and once without
``--epochs`` (at least 1,000 optimizer steps, in 10 to 200 epochs; early stopping as always). Reported
per run: the training words, steps per epoch, epochs planned, run and chosen (by the development
loss), the validation perplexity of the chosen epoch (the model alone, as training measures it over
its windows) and the wall-clock time.

    python -m benchmarks.small_corpus                      # about 10 minutes on two cores
    python -m benchmarks.small_corpus --documents 100      # one size, a few minutes
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.childproc import child_env
from benchmarks.distributed import subset
from benchmarks.environment import machine_info
from benchmarks.paths import DEFAULT_CORPUS, require_files
from benchmarks.results import benchmark_parser, finish, positive_ints

NAME = "small_corpus"
SETTINGS = {"--epochs 10": ["--epochs", "10"], "default": []}
PLANNED = re.compile(r"(\d+) epochs planned, (\d+) training steps each")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchmark_parser("small_corpus", __doc__)
    parser.add_argument("--corpus", default=str(DEFAULT_CORPUS), help="default: %(default)s")
    parser.add_argument(
        "--documents", default="40,200,800", help="corpus sizes, in documents (default: %(default)s)"
    )
    parser.add_argument("--timeout", type=float, default=1200, help="seconds per run at most")
    parser.add_argument("--result-json", metavar="PATH", help="default: benchmarks/.cache/results/")
    args = parser.parse_args(argv)
    positive_ints(parser, "--documents", args.documents)
    return args


def train_once(corpus: Path, out: Path, extra: list[str], timeout: float) -> dict[str, Any]:
    """``nextword train corpus --out out *extra`` in a child process; the run's figures."""
    argv = [sys.executable, "-m", "nextword.cli.main", "train", str(corpus), "--out", str(out)]
    argv += [*extra, "--verbose", "0"]
    started = time.perf_counter()
    done = subprocess.run(argv, env=child_env(), capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stderr[-3000:]}")
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    best, epochs = metrics["best"], metrics["epochs"]
    found = PLANNED.search(done.stderr)
    return {
        "train_words": config["data"]["train_words"],
        "steps_per_epoch": int(found.group(2)) if found else epochs[0].get("steps"),
        "epochs_planned": int(found.group(1)) if found else config["epochs"],
        "epochs_run": len(epochs),
        "best_epoch": best["epoch"],
        "selected_by": metrics.get("selected_by", "val_loss"),
        "val_loss": best["val_loss"],
        "val_perplexity": math.exp(best["val_loss"]),
        "stopped_early": metrics.get("stopped_early", False),
        "seconds": seconds,
    }


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for documents in [int(d) for d in args.documents.split(",") if d.strip()]:
            folder = Path(scratch) / str(documents)
            folder.mkdir()
            corpus, _, _ = subset(args.corpus, documents, folder)
            for label, extra in SETTINGS.items():
                print(f"small_corpus: {documents} documents, {label}", file=sys.stderr, flush=True)
                run = train_once(corpus, folder / label.replace(" ", "_"), extra, args.timeout)
                rows.append({"documents": documents, "setting": label, **run})
    return rows


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """No target: the figures say whether planning epochs from the corpus's size pays."""
    return []


def render(result: dict[str, Any]) -> str:
    lines = [
        "| documents | training words | setting | steps per epoch | epochs planned | epochs run | best "
        "epoch | validation perplexity | seconds |",
        "| ---: | ---: | :--- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in result["runs"]:
        lines.append(
            f"| {r['documents']:,} | {r['train_words']:,} | {r['setting']} | {r['steps_per_epoch']} | "
            f"{r['epochs_planned']} | {r['epochs_run']}{' (stopped early)' if r['stopped_early'] else ''} | "
            f"{r['best_epoch']} | {r['val_perplexity']:.1f} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    require_files({"--corpus": (args.corpus, "corpus", "")})
    result = {
        "name": NAME,
        "corpus": args.corpus,
        "machine": machine_info(),
        "runs": measure(args),
    }
    return finish(NAME, result, targets, render, args.result_json)


if __name__ == "__main__":
    sys.exit(main())
