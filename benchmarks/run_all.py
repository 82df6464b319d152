"""Run every benchmark and rewrite ``docs/benchmarks.md`` with the tables, plots, machine and versions.

    python benchmarks/run_all.py                      # what `make bench` runs
    python benchmarks/run_all.py --train-budget 600   # longer training comparison
    python benchmarks/run_all.py --run runs/big --model big.onnx

Each benchmark runs as a child process (``benchmarks/<name>.py``), writes its figures to
``benchmarks/.cache/results/<name>.json`` and prints its tables; this script then draws the plots into
``docs/img/`` and writes the document. Without ``--run``/``--model`` a small model is trained once (one
epoch, 256 units, about three minutes on two cores) and cached in ``benchmarks/.cache/``.
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

import cache_speed
import common
import generation
import size_quality
import startup
import training

BENCHMARKS = {
    "generation": generation,
    "cache": cache_speed,
    "startup": startup,
    "size_quality": size_quality,
    "training": training,
}
TITLES = {
    "generation": "Generation speed",
    "cache": "Continuous cache",
    "startup": "Start-up and footprint",
    "training": "Training",
    "size_quality": "Size against quality",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    common.add_common_arguments(parser)
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
        help=f"comma-separated subset of {','.join(BENCHMARKS)} (the document keeps the rest's last results)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="few repeats and a 30 s training budget: a smoke test, not figures",
    )
    parser.add_argument("--doc", default=str(common.DOCS_DIR / "benchmarks.md"), help="document to write")
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="run nothing: rewrite the document and plots from the last run's results",
    )
    return parser.parse_args(argv)


def script_args(name: str, args: argparse.Namespace) -> list[str]:
    """Options passed to one benchmark script."""
    if name == "training":
        out = ["--corpus", args.corpus, "--budget", str(30 if args.quick else args.train_budget)]
        return out + (["--max-val-windows", "2000"] if args.quick else [])
    out = ["--corpus", args.corpus]
    if args.run:
        out += ["--run", args.run]
    if args.model:
        out += ["--model", args.model]
    if name == "startup":
        out += ["--venv-sizes", args.venv_sizes] + (
            ["--repeats", "3", "--tf-repeats", "2"] if args.quick else []
        )
    elif name == "generation" and args.quick:
        out += ["--repeats", "3", "--keras-repeats", "1", "--lengths", "50,200", "--sweep-repeats", "1"]
    elif name == "cache" and args.quick:
        out += ["--repeats", "3", "--documents", "20", "--words", "50"]
    elif name == "size_quality" and args.quick:
        out += ["--repeats", "3"]
    return out


def run_benchmark(name: str, args: argparse.Namespace) -> tuple[bool, float]:
    command = [sys.executable, str(common.BENCH_DIR / f"{name}.py"), *script_args(name, args)]
    print(f"\n=== {name}: {shlex.join(command)}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    done = subprocess.run(command, env=common.quiet_tf_env())
    return done.returncode == 0, time.perf_counter() - start


def prepare_model(args: argparse.Namespace) -> dict[str, Any]:
    """Train and export the benchmark model if needed (in a child, so this process stays light)."""
    code = (
        "import argparse, json, sys; sys.path.insert(0, sys.argv[1]); import common; "
        "p = argparse.ArgumentParser(); common.add_common_arguments(p); "
        "a = p.parse_args(sys.argv[2:]); "
        "print(json.dumps(common.get_bench_model(a, need_run=False, need_model=True).to_dict()))"
    )
    extra = (
        ["--corpus", args.corpus]
        + (["--run", args.run] if args.run else [])
        + (["--model", args.model] if args.model else [])
    )
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, str(common.BENCH_DIR), *extra],
        stdout=subprocess.PIPE,
        text=True,
        env=common.quiet_tf_env(),
    )
    if done.returncode != 0:
        raise SystemExit("could not prepare the benchmark model (see above)")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "seconds": time.perf_counter() - start}


def model_summary(model_path: str) -> dict[str, Any]:
    from nextword.runtime import load

    model = load(model_path)
    best = model.info.metrics.get("best") or {}
    cfg = model.info.config.get("model", {})
    return {
        "vocab_size": model.vocab_size,
        "units": list(model.info.state_sizes),
        "embedding_dim": cfg.get("embedding_dim"),
        "epochs": len(model.info.metrics.get("epochs", [])),
        "val_perplexity": best.get("val_perplexity"),
        "bytes": Path(model_path).stat().st_size,
    }


def command_line(argv: list[str] | None) -> str:
    """The command that produced the document, as a reader would type it."""
    words = sys.argv[1:] if argv is None else argv
    script = "python benchmarks/run_all.py" + (" " + shlex.join(words) if words else "")
    if os.environ.get("MAKELEVEL"):
        return f"make bench  # runs: {script}"
    return script


def write_doc(
    args: argparse.Namespace,
    results: dict[str, dict[str, Any]],
    timings: dict[str, float],
    model: dict[str, Any],
    command: str,
    now: str,
) -> Path:
    doc = Path(args.doc)
    img_dir = common.IMG_DIR
    img_rel = os.path.relpath(img_dir, doc.parent)
    machine = common.machine_info()
    summary = model_summary(model["model_path"])
    total = sum(timings.values())

    lines = [
        "# Benchmarks",
        "",
        f"<!-- Generated by benchmarks/run_all.py on {now}. Do not edit: rerun `make bench`. -->",
        "",
        "The claim: an exported, stateful LSTM runtime generates text orders of magnitude faster and lighter "
        "than the Keras loop of the original notebook, while staying close to what onnxruntime itself can "
        "do. Every figure below comes from one run of the command below on the machine listed at the end.",
        "",
        f"- **Command**: `{command}` ({total / 60:.1f} minutes"
        + (", including training the benchmark model" if model.get("trained_here") else "")
        + ")",
        f"- **Date**: {now}",
        f"- **Machine**: {machine['cpu']}, {machine['usable_cores']} cores, {machine['memory_gib']} GiB, "
        f"{machine['os']}; Python {machine['python']}",
        f"- **Model**: {_model_line(model, summary)}",
        "",
        "## Targets",
        "",
    ]
    checks = []
    for name in ("generation", "cache", "startup"):
        if name in results:
            checks += BENCHMARKS[name].targets(results[name])
    _add_int8_speed(checks, results)
    if checks:
        rows = [
            [c["target"], c["measured"], "**met**" if c["met"] else "**not met**", c.get("why", "")]
            for c in checks
        ]
        lines += [common.markdown_table(["target", "measured", "result", "why"], rows, align="lrll"), ""]
    findings = _findings(results)
    if findings:
        lines += ["Other findings:", "", *[f"- {f}" for f in findings], ""]

    for name in ("generation", "cache", "startup", "training", "size_quality"):
        lines += [f"## {TITLES[name]}", ""]
        if name not in results:
            lines += ["Not run (or it failed): see the command's output.", ""]
            continue
        module = BENCHMARKS[name]
        module.plots(results[name], img_dir)
        lines += [module.render(results[name], img_rel), ""]
        if name == "training":
            lines += [
                "The notebook's recipe computes 50 LSTM steps for every predicted word (one window per word) "
                "and holds a (windows × vocabulary) label array; ours computes one step per word and keeps "
                "labels as integer ids. The notebook's validation was a random 30% of overlapping windows, "
                "so its validation text overlapped its training text; here both recipes are scored on "
                "held-out documents.",
                "",
            ]

    lines += [
        "## Machine and versions",
        "",
        common.machine_markdown(machine),
        "",
        "## Rerunning",
        "",
        "- `make bench` installs `.[train,bench]` into `.venv` and runs `benchmarks/run_all.py`, which "
        "rewrites this file and `docs/img/generation-*.png`.",
        "- `python benchmarks/run_all.py --help`: `--run RUN_DIR --model MODEL.onnx` to measure your own "
        "model, `--train-budget SECONDS` for a longer training comparison, `--venv-sizes refresh|skip`, "
        "`--only generation,startup`.",
        "- Each script also runs alone and prints its tables: `python benchmarks/generation.py`, "
        "`startup.py`, `training.py`, `size_quality.py` (`--help` on each).",
        "- Timings on a shared or busy machine are noisy: compare medians from the same run, and read the "
        "spread next to each.",
        "",
        "Time per step of this run: "
        + ", ".join(f"{k.replace('_', ' ')} {v / 60:.1f} min" for k, v in timings.items())
        + ("" if model.get("trained_here") else " (the benchmark model came from the cache)")
        + ".",
        "",
    ]
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text("\n".join(lines), encoding="utf-8")
    return doc


def _add_int8_speed(checks: list[dict[str, Any]], results: dict[str, dict[str, Any]]) -> None:
    """Tell, next to the 300× target, how the int8 file of the same weights does against (1)."""
    files = results.get("size_quality", {}).get("files", {})
    methods = results.get("generation", {}).get("methods", {})
    int8 = files.get("int8", {}).get("generation")
    if not int8 or "keras_predict" not in methods:
        return
    int8_ms = int8["ms_per_word"]["median"]
    keras_ms = methods["keras_predict"]["ms_per_word"]["median"]
    for check in checks:
        if check.get("key") == "keras_predict":
            check["why"] += (
                f". The int8 export of the same weights (the form the bundled model ships in) generates at "
                f"{int8_ms:.3f} ms/word, {keras_ms / int8_ms:,.0f}× (1); that figure comes from "
                "*Size against quality* below, measured in the same run but not interleaved with (1)"
            )


def _model_line(model: dict[str, Any], s: dict[str, Any]) -> str:
    where = "trained by the benchmarks" if "/.cache/default/" in model["model_path"] else model["model_path"]
    ppl = f", validation perplexity {s['val_perplexity']:.0f}" if s.get("val_perplexity") else ""
    return (
        f"{where}: embedding {s['embedding_dim']}, LSTM {'+'.join(map(str, s['units']))} units, vocabulary "
        f"{s['vocab_size']:,} words, {s['epochs']} training epoch(s){ppl}; {common.fmt_bytes(s['bytes'])} "
        "ONNX file. Generation and size figures depend on these sizes, not on how well the model is trained."
    )


def _findings(results: dict[str, dict[str, Any]]) -> list[str]:
    out = []
    st = results.get("startup")
    if st:
        procs = st["processes"]
        if "runtime_200" in procs and "keras" in procs and "peak_rss_bytes" in procs.get("keras", {}):
            out.append(
                f"Memory: a runtime process generating 200 words peaks at "
                f"{common.fmt_bytes(procs['runtime_200']['peak_rss_bytes']['median'])}, the notebook's Keras "
                f"process at {common.fmt_bytes(procs['keras']['peak_rss_bytes']['median'])} for one word."
            )
        sizes = st.get("venv_sizes") or {}
        if sizes.get("venvs"):
            v = sizes["venvs"]
            out.append(
                f"Disk: the runtime's venv holds {common.fmt_bytes(v['runtime']['bytes'])} of packages, one "
                f"with the `train` extra {common.fmt_bytes(v['train']['bytes'])}."
            )
    tr = results.get("training", {}).get("runs", {})
    ours, nb = tr.get("ours"), tr.get("notebook")
    if ours and nb and not ours.get("failed") and not nb.get("failed"):
        out.append(
            f"Training: our recipe trains {ours['words_per_s'] / nb['words_per_s']:,.1f}× more words per "
            f"second with {nb['peak_rss_bytes'] / ours['peak_rss_bytes']:,.1f}× less peak memory; after "
            f"{results['training']['settings']['budget']:g} s each, validation loss {ours['val_loss']:.3f} "
            f"against {nb['val_loss']:.3f}."
        )
    sq = results.get("size_quality", {}).get("files", {})
    if sq.get("fp32") and sq.get("int8") and "evaluation" in sq["int8"] and "evaluation" in sq["fp32"]:
        f, q = sq["fp32"], sq["int8"]
        out.append(
            f"int8: the file shrinks {f['bytes'] / q['bytes']:.1f}× "
            f"({common.fmt_bytes(f['bytes'])} → {common.fmt_bytes(q['bytes'])}), validation perplexity "
            f"{f['evaluation']['perplexity']:.1f} → {q['evaluation']['perplexity']:.1f}, generation "
            f"{f['generation']['ms_per_word']['median']:.3f} → "
            f"{q['generation']['ms_per_word']['median']:.3f} ms/word."
        )
    elif sq.get("int8", {}).get("failed"):
        out.append(f"int8: {sq['int8']['failed']}")
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render_only:
        meta = common.load_result("run_all")
        results = {name: common.load_result(name) for name in meta["benchmarks"]}
        doc = write_doc(args, results, meta["timings"], meta["model"], meta["command"], meta["date"])
        print(f"wrote {doc} from the results of {meta['date']}", file=sys.stderr)
        return 0
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    names = list(BENCHMARKS) if not args.only else [n for n in args.only.split(",") if n]
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")
    if not (args.run or args.model) and not Path(args.corpus).is_file():
        raise SystemExit(f"corpus {args.corpus} not found: pass --corpus FILE (or --run and --model)")

    timings: dict[str, float] = {}
    print("=== preparing the benchmark model", file=sys.stderr, flush=True)
    model = prepare_model(args)
    timings["model"] = model["seconds"]
    if model["run_dir"] and not args.run:
        args.run = model["run_dir"]
    args.model = model["model_path"]

    failed = []
    for name in names:
        ok, seconds = run_benchmark(name, args)
        timings[name] = seconds
        if not ok:
            failed.append(name)
    results = {}
    for name in BENCHMARKS:
        path = common.RESULTS_DIR / f"{name}.json"
        if name in failed or not path.is_file():
            continue
        if name not in names and args.only is None:
            continue
        results[name] = common.load_result(name)
    meta = {
        "command": command_line(argv),
        "date": now,
        "timings": timings,
        "model": model,
        "benchmarks": list(results),
    }
    common.save_result("run_all", meta)
    doc = write_doc(args, results, timings, model, meta["command"], now)
    print(f"\nwrote {doc} ({sum(timings.values()) / 60:.1f} minutes)", file=sys.stderr)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
