"""The model users get: the bundled int8 file, and an fp32 file of the same network to compare it with.

The fp32 twin is ``runs/bundled-fp32.onnx`` (``make bundled-model`` writes it: the same weights) when it
exists, else the benchmark model of :mod:`benchmarks.bench_model` (the same network, one epoch of
training: other weights, the same work per step). Every result says which.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.bench_model import add_model_arguments, get_bench_model
from benchmarks.paths import REPO, require_files

__all__ = [
    "BUNDLED_RUN",
    "FP32_TWIN",
    "SHORT_PROMPT",
    "ShippedFile",
    "add_shipped_arguments",
    "bundled_path",
    "shipped_files",
]

BUNDLED_RUN = REPO / "runs" / "bundled"  # Makefile: bundled-model
FP32_TWIN = BUNDLED_RUN.with_name("bundled-fp32.onnx")
SHORT_PROMPT = "a neural network"  # the 3-word prompt of the per-word figures (issue 17)


@dataclass(frozen=True)
class ShippedFile:
    """A model file to measure and where it comes from, in words."""

    path: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def bundled_path() -> Path:
    """The model file shipped in the wheel."""
    from nextword.runtime.default import BUNDLED_MODEL

    return Path(BUNDLED_MODEL)


def add_shipped_arguments(parser: argparse.ArgumentParser) -> None:
    """``--int8`` and ``--fp32``, and the benchmark model's options for the fp32 fallback."""
    parser.add_argument("--int8", metavar="MODEL.onnx", help="the int8 file (default: the bundled model)")
    parser.add_argument(
        "--fp32",
        metavar="MODEL.onnx",
        help=f"the fp32 file (default: {FP32_TWIN.relative_to(REPO)} when present, else the benchmark "
        "model: --model, --run, or one trained on --corpus)",
    )
    add_model_arguments(parser)


def shipped_files(args: argparse.Namespace) -> dict[str, ShippedFile]:
    """``{"int8": ..., "fp32": ...}`` as the options of :func:`add_shipped_arguments` say."""
    # the files given first: a wrong --int8 must not be reported as the fallback's missing corpus
    require_files(
        {"--int8": (args.int8, "int8 model file", ""), "--fp32": (args.fp32, "fp32 model file", "")}
    )
    int8 = (
        ShippedFile(str(args.int8), "given (--int8)")
        if args.int8
        else ShippedFile(str(bundled_path()), "the bundled model")
    )
    if args.fp32:
        fp32 = ShippedFile(str(args.fp32), "given (--fp32)")
    elif FP32_TWIN.is_file():
        fp32 = ShippedFile(str(FP32_TWIN), "the bundled model's fp32 export")
    else:
        bench = get_bench_model(args, need_run=False, need_model=True)
        fp32 = ShippedFile(
            str(bench.model_path),
            "the benchmark model: the same network trained one epoch (other weights, the same work per "
            f"step), {FP32_TWIN.relative_to(REPO)} being absent",
        )
    for name, file in (("int8", int8), ("fp32", fp32)):
        if not Path(file.path).is_file():
            raise SystemExit(f"the {name} model file {file.path} does not exist")
    return {"int8": int8, "fp32": fp32}
