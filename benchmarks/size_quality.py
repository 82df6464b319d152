"""Size against quality: the fp32 model file against an int8 one.

For each file: its size, generation speed (``generate()``, batch 1, 200 words, ms/word) and
validation perplexity, accuracy and top-5 accuracy (``nextword.runtime.evaluate`` on the validation
documents of the split the model was trained with). The int8 file comes from ``nextword export
--int8`` where that option exists, else from ``onnxruntime.quantization.quantize_dynamic`` applied
to the fp32 file here; the output says which. A file that ``nextword.runtime.load`` refuses is
reported and skipped.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_model import BenchModel, add_model_arguments, get_bench_model, validation_documents
from benchmarks.childproc import child_env
from benchmarks.decoding import PROMPT, generate_timer
from benchmarks.environment import machine_info
from benchmarks.paths import CACHE_DIR
from benchmarks.report import fmt_bytes, fmt_stat, markdown_table
from benchmarks.results import benchmark_parser, finish
from benchmarks.timing import SETTLE_SECONDS, interleaved

NAME = "size_quality"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchmark_parser("size_quality", __doc__)
    add_model_arguments(parser)
    parser.add_argument(
        "--words", type=int, default=200, help="words per timed generation (default: %(default)s)"
    )
    parser.add_argument(
        "--repeats", type=int, default=7, help="timed generations per file (default: %(default)s)"
    )
    parser.add_argument(
        "--temperature", type=float, default=1.0, help="sampling temperature (default: %(default)s)"
    )
    return parser.parse_args(argv)


def export_has_int8() -> bool:
    """Whether this nextword's ``export`` command offers ``--int8``."""
    done = subprocess.run(
        [sys.executable, "-m", "nextword.cli.main", "export", "--help"],
        capture_output=True,
        text=True,
        env=child_env(),
    )
    return done.returncode == 0 and "--int8" in done.stdout


def make_int8(bench: BenchModel) -> tuple[str, str]:
    """Write the int8 model next to the cached files; return its path and how it was made."""
    assert bench.model_path is not None  # get_bench_model(need_model=True)
    out = CACHE_DIR / "quantized" / (Path(bench.model_path).stem + ".int8.onnx")
    out.parent.mkdir(parents=True, exist_ok=True)
    if bench.run_dir and export_has_int8():
        command = [
            sys.executable,
            "-m",
            "nextword.cli.main",
            "export",
            bench.run_dir,
            "--out",
            str(out),
            "--int8",
        ]
        done = subprocess.run(command, capture_output=True, text=True, env=child_env())
        if done.returncode != 0:
            raise RuntimeError(f"nextword export --int8 failed: {done.stderr.strip()[-500:]}")
        return str(out), "`nextword export --int8`"
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(bench.model_path, str(out), weight_type=QuantType.QInt8)
    why = "this `nextword export` has no `--int8`" if bench.run_dir else "no run folder to export from"
    return str(out), f"`onnxruntime.quantization.quantize_dynamic` (QInt8 weights) on the fp32 file ({why})"


def measure(args: argparse.Namespace, bench: BenchModel) -> dict[str, Any]:
    from nextword.runtime import evaluate, load

    assert bench.model_path is not None  # get_bench_model(need_model=True)
    fp32 = load(bench.model_path)
    documents = validation_documents(bench.corpus, fp32.info)
    files: dict[str, Any] = {"fp32": {"path": bench.model_path, "made_by": "`nextword export`"}}
    models = {"fp32": fp32}
    print("size_quality: making the int8 file", file=sys.stderr, flush=True)
    try:
        path, how = make_int8(bench)
    except Exception as exc:  # quantization itself failed: say so, keep the fp32 figures
        files["int8"] = {"failed": f"could not make the int8 file: {exc}", "made_by": "–"}
    else:
        files["int8"] = {"path": path, "made_by": how}
        try:
            models["int8"] = load(path)
        except Exception as exc:  # report any refusal and go on with the fp32 file
            files["int8"]["failed"] = f"nextword.runtime.load refused it: {exc}"
    for f in files.values():
        if "path" in f:
            f["bytes"] = Path(f["path"]).stat().st_size

    print("size_quality: generation speed, interleaved", file=sys.stderr, flush=True)
    timers = {}
    for name, model in models.items():
        timer, seeds, _ = generate_timer(model, PROMPT, args.words, args.temperature, args.repeats)
        timers[name] = (timer, seeds)
    for name, timed in interleaved(timers, settle=SETTLE_SECONDS).items():
        files[name]["generation"] = timed
    for name, model in models.items():
        print(f"size_quality: evaluating {name}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        files[name]["evaluation"] = evaluate(model, documents).to_dict()
        files[name]["evaluation_seconds"] = time.perf_counter() - start
    return {"files": files, "val_documents": len(documents)}


def render(result: dict[str, Any], img: str | None = None) -> str:
    files, settings = result["files"], result["settings"]
    rows, notes = [], []
    fp32 = files["fp32"]
    for name, f in files.items():
        if f.get("failed"):
            rows.append([name, fmt_bytes(f.get("bytes")), "skipped", "", "", "", ""])
            notes.append(f"{name}: {f['failed']}")
            continue
        ev = f["evaluation"]
        rows.append(
            [
                name,
                fmt_bytes(f["bytes"]),
                f"{f['bytes'] / fp32['bytes']:.2f}×",
                fmt_stat(f["generation"]["ms_per_word"]),
                f"{ev['perplexity']:.1f}",
                f"{ev['accuracy']:.1%}",
                f"{ev['top5_accuracy']:.1%}",
            ]
        )
    headers = ["model", "file size", "vs fp32", "ms/word (spread)", "val perplexity", "accuracy", "top-5"]
    words = next((f["evaluation"]["words"] for f in files.values() if "evaluation" in f), 0)
    parts = [
        f"int8 file made by {files['int8'].get('made_by', '–')}. Speed: `generate()`, batch 1, "
        f"{settings['words']} words, temperature {settings['temperature']:g}, median of "
        f"{settings['repeats']} runs with the interquartile range. Quality: `nextword.runtime.evaluate` "
        f"over the {result['val_documents']:,} validation documents ({words:,} predicted words).",
        "",
        markdown_table(headers, rows),
    ]
    if notes:
        parts += ["", *[f"- {n}" for n in notes]]
    return "\n".join(parts)


def plots(result: dict[str, Any], img_dir: Path) -> list[Path]:
    return []


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = get_bench_model(args, need_run=False, need_model=True)
    result = {
        "name": NAME,
        "settings": {"words": args.words, "repeats": args.repeats, "temperature": args.temperature},
        "model": bench.to_dict(),
        "machine": machine_info(),
        **measure(args, bench),
    }
    return finish(NAME, result, None, render, args.result_json)


if __name__ == "__main__":
    sys.exit(main())
