"""Run every benchmark of docs/benchmarks.md and rewrite it with the tables, plots, machine and versions.

    python -m benchmarks.run_all                      # what `make bench` runs
    python -m benchmarks.run_all --train-budget 600   # longer training comparison
    python -m benchmarks.run_all --run runs/big --model big.onnx
    python -m benchmarks.run_all --only speed,threads,keras_ratio   # the shipped model's sections alone

Each benchmark runs as a child process (``python -m benchmarks.NAME``), writes its figures to
``benchmarks/.cache/results/NAME.json`` (stamped with its own date and arguments) and prints its tables;
this program then draws the plots into ``docs/img/`` and writes the document (``benchmarks.document``).
Without ``--run``/``--model`` a model of the bundled model's network is trained once (one epoch, about
three minutes on two cores) and cached in ``benchmarks/.cache/``.

``--quick`` is a smoke test: its figures, plots and document go to a new temporary folder (named at the
end) unless ``--doc`` names the document, and never into ``benchmarks/.cache/results/`` or ``docs/``.
It needs the bench extra (matplotlib, for the plots): ``pip install -e '.[train,bench]'``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import training
from benchmarks.bench_model import add_model_arguments
from benchmarks.childproc import child_env, module_command
from benchmarks.document import SECTIONS, write_doc
from benchmarks.paths import DOCS_DIR, IMG_DIR, RESULTS_DIR
from benchmarks.results import benchmark_parser, load_result, recorded_date, save_result

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
        help="few repeats and a 30 s training budget: a smoke test, not figures (written to a temporary "
        "folder unless --doc is given)",
    )
    parser.add_argument(
        "--doc",
        help=f"document to write (default: {DOCS_DIR.relative_to(DOCS_DIR.parent)}/benchmarks.md; with "
        "--quick, one in a new temporary folder)",
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="run nothing: rewrite the document and plots from the last run's results",
    )
    return parser.parse_args(argv)


BENCH_EXTRA = "needs the bench extra: pip install -e '.[train,bench]' (make bench does)"


@dataclass(frozen=True)
class Outputs:
    """Where one run_all command writes: the results, the plots and the document."""

    results: Path  # one NAME.json per benchmark, and run_all.json
    img: Path
    doc: Path


def outputs(args: argparse.Namespace) -> Outputs:
    """The real places (benchmarks/.cache/results, docs/img, docs/benchmarks.md, or --doc), or for
    ``--quick`` a new temporary folder, so that a smoke test never replaces the document's figures."""
    if not args.quick:
        return Outputs(RESULTS_DIR, IMG_DIR, Path(args.doc or DOCS_DIR / "benchmarks.md"))
    folder = Path(tempfile.mkdtemp(prefix="nextword-bench-quick-"))
    return Outputs(folder / "results", folder / "img", Path(args.doc or folder / "benchmarks.md"))


def benchmark_args(name: str, args: argparse.Namespace, results_dir: Path | None = None) -> list[str]:
    """Options passed to one benchmark (``--result-json`` when its figures go elsewhere than the
    default ``benchmarks/.cache/results/``)."""
    where = [] if results_dir in (None, RESULTS_DIR) else ["--result-json", str(results_dir / f"{name}.json")]
    if name == "training":
        out = ["--corpus", args.corpus, "--budget", str(30 if args.quick else args.train_budget), *where]
        return out + (["--max-val-windows", "2000"] if args.quick else [])
    out = [*where] if name in SHIPPED_ONLY else ["--corpus", args.corpus, *_model_options(args), *where]
    if name == "startup":
        out += ["--venv-sizes", args.venv_sizes]
    return out + (QUICK.get(name, []) if args.quick else [])


def _model_options(args: argparse.Namespace) -> list[str]:
    return (["--run", args.run] if args.run else []) + (["--model", args.model] if args.model else [])


def run_benchmark(name: str, args: argparse.Namespace, results_dir: Path) -> tuple[bool, float]:
    command = module_command(f"benchmarks.{name}", *benchmark_args(name, args, results_dir))
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


def section_dates(
    results: dict[str, Any], ran: list[str], now: str, results_dir: Path | None = None
) -> dict[str, str | None]:
    """When each section's figures were measured: the date its result file was stamped with; for a file
    written before the stamps, ``now`` for those this command ran, else the date the previous run's
    record gives them (None where it does not tell)."""
    record = (results_dir or RESULTS_DIR) / "run_all.json"
    previous = load_result("run_all", record) if record.is_file() else {}
    earlier = dict.fromkeys(previous.get("ran", []), previous.get("date")) | previous.get("dates", {})
    return {
        name: recorded_date(result) or (now if name in ran else earlier.get(name))
        for name, result in results.items()
    }


def render_only(args: argparse.Namespace) -> int:
    """``--render-only``: the document and plots again from the last run's results."""
    record = RESULTS_DIR / "run_all.json"
    if not record.is_file():
        print(
            f"run_all: no earlier run to render ({record} not found): run python -m benchmarks.run_all "
            "(or make bench) first",
            file=sys.stderr,
        )
        return 2
    meta = load_result("run_all", record)
    files = {name: RESULTS_DIR / f"{name}.json" for name in meta["benchmarks"]}
    results = {name: load_result(name, path) for name, path in files.items() if path.is_file()}
    meta = {**meta, "benchmarks": list(results)}
    meta["dates"] = {  # a result rewritten since (by a benchmark run alone) says its own date
        name: recorded_date(result) or meta.get("dates", {}).get(name) for name, result in results.items()
    }
    doc = write_doc(Path(args.doc or DOCS_DIR / "benchmarks.md"), results, meta)
    print(f"wrote {doc} from the results of {meta['date']}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if importlib.util.find_spec("matplotlib") is None:  # the plots come last: say so before the hour of runs
        print(f"run_all {BENCH_EXTRA}", file=sys.stderr)
        return 2
    if args.render_only:
        return render_only(args)
    names = chosen(args)
    if not (args.run or args.model) and not Path(args.corpus).is_file():
        print(
            f"run_all: corpus {args.corpus} not found: pass --corpus FILE (or --run and --model)",
            file=sys.stderr,
        )
        return 2
    out = outputs(args)
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    print("=== preparing the benchmark model", file=sys.stderr, flush=True)
    model = prepare_model(args)
    timings = {"model": model["seconds"]}
    args.run = args.run or model["run_dir"]
    args.model = model["model_path"]
    failed = []
    for name in names:
        ok, timings[name] = run_benchmark(name, args, out.results)
        if not ok:
            failed.append(name)
    results = {  # with --only, the others' last results stay in the document
        name: load_result(name, out.results / f"{name}.json")
        for name in SECTIONS
        if name not in failed and (out.results / f"{name}.json").is_file() and (name in names or args.only)
    }
    meta = {
        "command": command_line(argv),
        "date": now,
        "dates": section_dates(results, names, now, out.results),
        "timings": timings,
        "model": model,
        "summary": model_summary(model["model_path"]),
        "benchmarks": list(results),
        "ran": names,
    }
    save_result("run_all", meta, out.results / "run_all.json")
    doc = write_doc(out.doc, results, meta, out.img)
    print(f"\nwrote {doc} ({sum(timings.values()) / 60:.1f} minutes)", file=sys.stderr)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
