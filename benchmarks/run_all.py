"""Run every benchmark of docs/benchmarks.md and rewrite it with the tables, plots, machine and versions.

    python -m benchmarks.run_all                      # what `make bench` runs
    python -m benchmarks.run_all --train-budget 600   # longer training comparison
    python -m benchmarks.run_all --run runs/big --model big.onnx
    python -m benchmarks.run_all --only speed,threads,keras_ratio   # the shipped model's sections alone

Each benchmark runs as a child process (``python -m benchmarks.NAME``), writes its figures to
``benchmarks/.cache/results/NAME.json`` and prints its tables; this program then draws the plots into
``docs/img/`` and writes the document (``benchmarks.document``). Without ``--run``/``--model`` a model of
the bundled model's network is trained once (one epoch, about three minutes on two cores) and cached in
``benchmarks/.cache/``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import training
from benchmarks.bench_model import add_model_arguments
from benchmarks.childproc import child_env, module_command
from benchmarks.document import SECTIONS, write_doc
from benchmarks.paths import DOCS_DIR, RESULTS_DIR
from benchmarks.results import benchmark_parser, load_result, save_result

SHIPPED_ONLY = ("keras_ratio", "graph_sampling", "multistep")  # they measure the bundled file alone
QUICK = {  # --quick: few repeats, small settings; a smoke test, not figures
    "startup": ["--repeats", "3", "--tf-repeats", "2"],
    "generation": ["--repeats", "3", "--keras-repeats", "1", "--lengths", "50,200", "--sweep-repeats", "1"],
    "speed": ["--rounds", "2", "--words", "100", "--max-seconds", "30"],
    "keras_ratio": ["--rounds", "2", "--keras-words", "5", "--words", "100"],
    "graph_sampling": ["--rounds", "2", "--words", "50", "--check-steps", "50", "--profile-steps", "50"],
    "multistep": ["--rounds", "2", "--words", "64", "--steps", "8,16"],
    "threads": ["--rounds", "1", "--cell-seconds", "0.1"],
    "cache_speed": ["--repeats", "3", "--documents", "20", "--words", "50"],
    "size_quality": ["--repeats", "3"],
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchmark_parser("run_all", __doc__)
    add_model_arguments(parser)
    parser.add_argument(
        "--train-budget",
        type=float,
        default=training.DEFAULT_BUDGET_S,
        help="seconds of training per recipe in the training comparison (default: %(default)s)",
    )
    parser.add_argument(
        "--venv-sizes",
        choices=("auto", "refresh", "skip"),
        default="auto",
        help="venv disk sizes: cached figures if valid (auto), measure again, or skip (default: %(default)s)",
    )
    parser.add_argument(
        "--only",
        help=f"comma-separated subset of {','.join(SECTIONS)} (the document keeps the rest's last results)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="few repeats and a 30 s training budget: a smoke test, not figures",
    )
    parser.add_argument("--doc", default=str(DOCS_DIR / "benchmarks.md"), help="document to write")
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="run nothing: rewrite the document and plots from the last run's results",
    )
    return parser.parse_args(argv)


def benchmark_args(name: str, args: argparse.Namespace) -> list[str]:
    """Options passed to one benchmark."""
    if name == "training":
        out = ["--corpus", args.corpus, "--budget", str(30 if args.quick else args.train_budget)]
        return out + (["--max-val-windows", "2000"] if args.quick else [])
    out = [] if name in SHIPPED_ONLY else ["--corpus", args.corpus, *_model_options(args)]
    if name == "startup":
        out += ["--venv-sizes", args.venv_sizes]
    return out + (QUICK.get(name, []) if args.quick else [])


def _model_options(args: argparse.Namespace) -> list[str]:
    return (["--run", args.run] if args.run else []) + (["--model", args.model] if args.model else [])


def run_benchmark(name: str, args: argparse.Namespace) -> tuple[bool, float]:
    command = module_command(f"benchmarks.{name}", *benchmark_args(name, args))
    print(f"\n=== {name}: {shlex.join(command)}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    done = subprocess.run(command, env=child_env())
    return done.returncode == 0, time.perf_counter() - start


def prepare_model(args: argparse.Namespace) -> dict[str, Any]:
    """Train and export the benchmark model if needed (in a child, so this process stays light)."""
    command = module_command("benchmarks.bench_model", "--corpus", args.corpus, *_model_options(args))
    start = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, env=child_env())
    if done.returncode != 0:
        raise SystemExit("could not prepare the benchmark model (see above)")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "seconds": time.perf_counter() - start}


def model_summary(model_path: str) -> dict[str, Any]:
    """The benchmark model's sizes and quality, for the document's header."""
    from nextword.runtime import load

    model = load(model_path)
    best = model.info.metrics.get("best") or {}
    return {
        "vocab_size": model.vocab_size,
        "units": list(model.info.state_sizes),
        "embedding_dim": model.info.config.get("model", {}).get("embedding_dim"),
        "epochs": len(model.info.metrics.get("epochs", [])),
        "val_perplexity": best.get("val_perplexity"),
        "bytes": Path(model_path).stat().st_size,
    }


def command_line(argv: list[str] | None) -> str:
    """The command that produced the document, as a reader would type it."""
    words = sys.argv[1:] if argv is None else argv
    command = "python -m benchmarks.run_all" + (" " + shlex.join(words) if words else "")
    return f"make bench  # runs: {command}" if os.environ.get("MAKELEVEL") else command


def chosen(args: argparse.Namespace) -> list[str]:
    names = list(SECTIONS) if not args.only else [n for n in args.only.split(",") if n]
    unknown = sorted(set(names) - set(SECTIONS))
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; choose from {list(SECTIONS)}")
    return names


def section_dates(results: dict[str, Any], ran: list[str], now: str) -> dict[str, str | None]:
    """When each section's figures were measured: ``now`` for those this command ran, else the date the
    previous run's record gives them (None where it does not tell)."""
    previous = load_result("run_all") if (RESULTS_DIR / "run_all.json").is_file() else {}
    earlier = dict.fromkeys(previous.get("ran", []), previous.get("date")) | previous.get("dates", {})
    return {name: now if name in ran else earlier.get(name) for name in results}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render_only:
        meta = load_result("run_all")
        results = {name: load_result(name) for name in meta["benchmarks"]}
        print(
            f"wrote {write_doc(Path(args.doc), results, meta)} from the results of {meta['date']}",
            file=sys.stderr,
        )
        return 0
    names = chosen(args)
    if not (args.run or args.model) and not Path(args.corpus).is_file():
        raise SystemExit(f"corpus {args.corpus} not found: pass --corpus FILE (or --run and --model)")
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    print("=== preparing the benchmark model", file=sys.stderr, flush=True)
    model = prepare_model(args)
    timings = {"model": model["seconds"]}
    args.run = args.run or model["run_dir"]
    args.model = model["model_path"]
    failed = []
    for name in names:
        ok, timings[name] = run_benchmark(name, args)
        if not ok:
            failed.append(name)
    results = {  # with --only, the others' last results stay in the document
        name: load_result(name)
        for name in SECTIONS
        if name not in failed and (RESULTS_DIR / f"{name}.json").is_file() and (name in names or args.only)
    }
    meta = {
        "command": command_line(argv),
        "date": now,
        "dates": section_dates(results, names, now),
        "timings": timings,
        "model": model,
        "summary": model_summary(model["model_path"]),
        "benchmarks": list(results),
        "ran": names,
    }
    save_result("run_all", meta)
    doc = write_doc(Path(args.doc), results, meta)
    print(f"\nwrote {doc} ({sum(timings.values()) / 60:.1f} minutes)", file=sys.stderr)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
