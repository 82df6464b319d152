"""The worst file the default ``LoadLimits`` still accept, measured: memory and time per word.

Builds, from a real model (the bundled one by default), a file that keeps the nextword step signature
and its outputs but adds as much as the graph bounds allow: constants that onnxruntime folds to the
largest tensor allowed (``max_tensor_bytes``) until the graph's total reaches ``max_graph_bytes``, and a
chain of matrix products over the largest state width that uses up ``max_macs_per_token``. The file
itself stays small (the constants are broadcast from two vectors). Each file is then loaded in a
fresh process that reports its load time, peak resident memory and milliseconds per generated word,
and a file one product larger is shown to be refused. Prints Markdown tables.

    python -m benchmarks.hostile_limits [--model MODEL.onnx] [--words 20] [--repeats 5]

Needs the ``onnx`` package (the ``train`` extra) to build the file; the runtime loads it as usual.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.paths import require_files
from benchmarks.results import at_least, benchmark_parser
from nextword.runtime import LoadLimits, ModelFileError
from nextword.runtime.default import BUNDLED_MODEL
from nextword.runtime.model_check import inspect_model_file

WIDTH = 4096  # the default max_state_width: the widest square weight of max_tensor_bytes (64 MiB)

CHILD = """
import json, resource, statistics, sys, time
t0 = time.perf_counter()
from nextword.runtime import load
imported = time.perf_counter()
model = load(sys.argv[1])
loaded = time.perf_counter()
rss_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
words, repeats = int(sys.argv[2]), int(sys.argv[3])
model.generate("the present invention", max_words=2, temperature=0)  # warm up
times = []
for _ in range(repeats):
    start = time.perf_counter()
    model.generate("the present invention", max_words=words, temperature=0, stop_at_end=False)
    times.append((time.perf_counter() - start) / words * 1000)
print(json.dumps({
    "load_ms": (loaded - imported) * 1000,
    "rss_after_load_mb": rss_load,
    "rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "ms_per_word": statistics.median(times),
}))
"""


def build(base: Path, products: int, constants: int) -> bytes:
    """``base`` plus ``products`` (WIDTH x WIDTH) matrix products per position and ``constants``
    folded constants of WIDTH x WIDTH floats, wired into the logits as ``+ 0 * f(...)``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    proto = onnx.load(str(base))
    graph = proto.graph

    def const(name: str, array: np.ndarray) -> str:
        graph.initializer.append(numpy_helper.from_array(array, name))
        return name

    def node(op: str, inputs: list[str], output: str, **attrs) -> str:
        graph.node.append(helper.make_node(op, inputs, [output], **attrs))
        return output

    column = const("wc_column", np.full((WIDTH, 1), 1e-4, dtype=np.float32))
    row = const("wc_row", np.full((1, WIDTH), 1e-4, dtype=np.float32))
    square = [node("Add", [column, row], f"wc_square_{i}") for i in range(max(constants, 1))]
    ids = node("Cast", ["input_ids"], "wc_ids", to=TensorProto.FLOAT)
    x = node("Reshape", [ids, const("wc_shape", np.array([-1, 1], dtype=np.int64))], "wc_x0")
    x = node("MatMul", [x, row], "wc_x1")  # (B*T, WIDTH)
    for i in range(products):
        x = node("MatMul", [x, square[0]], f"wc_product_{i}")  # (B*T, WIDTH) x (WIDTH, WIDTH)
    pieces = [x] + [node("Gather", [s, const(f"wc_first_{i}", np.array([0]))], f"wc_row_{i}") for i, s in
                    enumerate(square[1:])]  # fmt: skip
    total = node("MatMul", [x, const("wc_down", np.zeros((WIDTH, 1), dtype=np.float32))], "wc_sum")
    for i, piece in enumerate(pieces[1:]):
        down = node("MatMul", [piece, "wc_down"], f"wc_down_{i}")
        total = node("Add", [total, down], f"wc_total_{i}")
    first = node("Gather", [total, const("wc_index", np.array([0]))], "wc_first")  # (1, 1)
    zero = node("Mul", [first, const("wc_zero", np.zeros(1, dtype=np.float32))], "wc_zero_term")
    for output in graph.node:
        output.output[:] = ["wc_real_logits" if name == "logits" else name for name in output.output]
    node("Add", ["wc_real_logits", zero], "logits")
    return proto.SerializeToString()


def load_breakdown(path: Path, repeats: int = 30) -> dict[str, float]:
    """Median milliseconds of each step of ``load()`` on ``path``, in this process."""
    import onnxruntime as ort

    from nextword.runtime import load
    from nextword.runtime.model import default_session_options
    from nextword.runtime.model_file import read_model_info
    from nextword.runtime.probe import probe_model

    steps: dict[str, list[float]] = {"load()": [], "file checks": [], "session": [], "probe step": []}
    for _ in range(repeats):
        start = time.perf_counter()
        load(path)
        steps["load()"].append(time.perf_counter() - start)
        start = time.perf_counter()
        checked = inspect_model_file(path)
        steps["file checks"].append(time.perf_counter() - start)
        start = time.perf_counter()
        session = ort.InferenceSession(
            checked.data, default_session_options(), providers=["CPUExecutionProvider"]
        )
        steps["session"].append(time.perf_counter() - start)
        info = read_model_info(session, checked.name, checked.metadata)
        start = time.perf_counter()
        probe_model(session, info, checked.name)
        steps["probe step"].append(time.perf_counter() - start)
    return {name: float(np.median(times)) * 1000 for name, times in steps.items()}


def measure(path: Path, words: int, repeats: int) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(words), str(repeats)],
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def _accepted(data: bytes) -> bool:
    try:
        inspect_model_file(data, LoadLimits())
    except ModelFileError:
        return False
    return True


def largest_accepted(base: Path) -> tuple[bytes, int, int]:
    """The most folded constants, then the most products, that the default limits accept."""
    constants = 1
    while _accepted(build(base, 0, constants + 1)):
        constants += 1
    products = 0
    while _accepted(build(base, products + 1, constants)):
        products += 1
    return build(base, products, constants), products, constants


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchmark_parser("hostile_limits", __doc__)
    parser.add_argument("--model", default=str(BUNDLED_MODEL), help="the model to start from")
    parser.add_argument("--words", type=int, default=20, help="words of each timed greedy generation")
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed generations per file (the median shown)"
    )
    args = parser.parse_args(argv)
    at_least(parser, 1, {"--words": args.words, "--repeats": args.repeats})
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    require_files({"--model": (args.model, "model file", "")})
    base = Path(args.model)
    data, products, constants = largest_accepted(base)
    refused = build(base, products + 1, constants)
    try:
        inspect_model_file(refused)
        raise SystemExit("one more product should have been refused")
    except ModelFileError as exc:
        refusal = str(exc).split(": ", 1)[1]
    limits, bounds = LoadLimits(), inspect_model_file(data).bounds
    base_bounds = inspect_model_file(base).bounds
    assert bounds is not None and base_bounds is not None  # LoadLimits() bounds the graph (bound_graph)
    with tempfile.TemporaryDirectory() as folder:
        worst = Path(folder) / "worst.onnx"
        worst.write_bytes(data)
        start = time.perf_counter()
        label = f"worst accepted ({products} products, {constants} constants)"
        rows = [
            ("base model", base.stat().st_size, base_bounds, measure(base, args.words, args.repeats)),
            (label, len(data), bounds, measure(worst, args.words, args.repeats)),
        ]
        seconds = time.perf_counter() - start
    print(f"base model: {base}; greedy generation of {args.words} words, median of {args.repeats}\n")
    print(
        f"default limits: max_tensor_bytes {limits.max_tensor_bytes:,}, max_graph_bytes "
        f"{limits.max_graph_bytes:,}, max_macs_per_token {limits.max_macs_per_token:,}, "
        f"max_state_width {limits.max_state_width:,}\n"
    )
    print("| file | bytes | bound: largest tensor | bound: all tensors | bound: MACs per word | load ms | "
          "peak RSS after load (MB) | peak RSS (MB) | ms per word |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, size, b, m in rows:
        print(
            f"| {label} | {size:,} | {b.largest_tensor_bytes:,} | {b.total_bytes:,} | "
            f"{b.macs_per_token:,} | {m['load_ms']:.0f} | {m['rss_after_load_mb']:.0f} | "
            f"{m['rss_peak_mb']:.0f} | {m['ms_per_word']:.2f} |"
        )
    print(f"\none product more is refused: {refusal}")
    print(f"\nload() of the base model, median of 30 in one process (ms): {load_breakdown(base)}")
    print(f"\n(measured in {seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
