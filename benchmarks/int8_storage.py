"""An int8 file's weights stored unsigned (as `nextword export --int8` writes them) against signed (as
onnxruntime's quantize_dynamic writes them): are this CPU's integer products exact, and what does each
form cost?

On x86-64 CPUs without VNNI, onnxruntime multiplies uint8 activations by int8 weights with saturating
16-bit pair sums; uint8 weights take kernels that are exact on every CPU (docs/model-format.md). This
script rebuilds the signed form from the file (q - 128, zero point - 128 wherever the zero point is 128:
the same values) and measures both forms on this machine:

1. exactness: each stored-weight MatMulInteger of the file, run alone on activations at the top of the
   uint8 range and on random ones, against numpy's exact integer product;
2. logits: one call over 16 contexts of 9 tokens, the largest difference between the two forms;
3. speed: bare stepper steps (batch 1, 4 and 64, per row) and ``generate()`` with the file's decoding
   defaults, in interleaved rounds.

    python -m benchmarks.int8_storage [--model FILE.onnx] [--rounds 7] [--steps 400]

Needs onnx (the ``train`` extra) to rewrite the file.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.environment import machine_info, machine_markdown
from benchmarks.paths import require_files
from benchmarks.results import benchmark_parser, finish
from benchmarks.timing import interleaved, loop_timer

__all__ = ["exact_product", "integer_product", "main", "saturating_activations", "signed_form"]

ZERO = 128  # the activations' zero point in the products run alone, and the unsigned weights' offset


def integer_product(weight: np.ndarray, zero: np.ndarray, activations: np.ndarray) -> np.ndarray:
    """onnxruntime's MatMulInteger of ``activations`` (uint8, zero point 128) by a stored weight and its
    zero point, as a one-node graph on the CPU provider."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rows, depth = activations.shape
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "B", "za", "zb"], ["Y"])],
        "product",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [rows, depth])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [rows, weight.shape[1]])],
        [
            numpy_helper.from_array(weight, "B"),
            numpy_helper.from_array(np.array(ZERO, dtype=np.uint8), "za"),
            numpy_helper.from_array(zero, "zb"),
        ],
    )
    # IR version 8, as the exporter writes: onnx 1.23's default (14) is newer than onnxruntime < 1.32 reads
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"A": activations})[0]


def exact_product(weight: np.ndarray, zero: np.ndarray, activations: np.ndarray) -> np.ndarray:
    """The same product in int64: what every kernel should return."""
    return (activations.astype(np.int64) - ZERO) @ (weight.astype(np.int64) - zero.astype(np.int64))


def saturating_activations(depth: int, seed: int = 0) -> np.ndarray:
    """Rows of activations that make a saturating 16-bit pair sum clip (the top of uint8 range, a row
    of large random values) and two plain rows (zeros, random)."""
    rng = np.random.default_rng(seed)
    rows = [np.full(depth, 255), np.zeros(depth), rng.integers(0, 256, depth), rng.integers(200, 256, depth)]
    return np.stack(rows).astype(np.uint8)


def signed_form(proto: Any) -> list[str]:
    """Rewrite ``proto`` in place to store as int8 the unsigned weights whose zero point is 128 (the ones
    the exporter moved from int8); returns their names. The inverse of
    :func:`nextword.export.quantize.store_weights_unsigned`."""
    from onnx import numpy_helper

    from nextword.export.quantize import product_weights

    initializers = {init.name: init for init in proto.graph.initializer}
    converted = []
    for weight_name, zero_name in product_weights(proto):
        weight, zero = initializers.get(weight_name), initializers.get(zero_name)
        if weight is None or zero is None:
            continue
        values, zero_point = numpy_helper.to_array(weight), numpy_helper.to_array(zero)
        if values.dtype != np.uint8 or zero_point.dtype != np.uint8 or not (zero_point == ZERO).all():
            continue
        shifted = (values.astype(np.int16) - ZERO).astype(np.int8)
        weight.CopyFrom(numpy_helper.from_array(shifted, weight_name))
        zero.CopyFrom(
            numpy_helper.from_array((zero_point.astype(np.int16) - ZERO).astype(np.int8), zero_name)
        )
        converted.append(weight_name)
    return converted


def _exactness(proto: Any) -> list[dict[str, Any]]:
    """Each stored-weight MatMulInteger run alone against numpy's exact product."""
    from onnx import numpy_helper

    weights = {init.name: numpy_helper.to_array(init) for init in proto.graph.initializer}
    rows = []
    for node in proto.graph.node:
        if node.op_type != "MatMulInteger" or node.input[1] not in weights:
            continue
        weight, zero = weights[node.input[1]], weights[node.input[3]]
        activations = saturating_activations(weight.shape[0])
        got, want = integer_product(weight, zero, activations), exact_product(weight, zero, activations)
        rows.append(
            {
                "weight": node.input[1],
                "dtype": str(weight.dtype),
                "differing": float((got != want).mean()),
                "largest_difference": int(np.abs(got - want).max()),
            }
        )
    return rows


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Both forms measured, the signed one from a file in a temporary folder removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="nextword-int8-storage-") as folder:
        return _measure(args, Path(folder))


def _measure(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    import onnx

    from nextword.runtime import GenerationConfig, default_model, load

    source = default_model(args.model).source
    unsigned_proto = onnx.load(str(source))
    signed_proto = onnx.load(str(source))
    moved = signed_form(signed_proto)
    signed_path = folder / "signed.onnx"
    onnx.save(signed_proto, str(signed_path))
    models = {"unsigned": load(source), "signed": load(signed_path)}
    exactness = {"unsigned": _exactness(unsigned_proto), "signed": _exactness(signed_proto)}

    rng = np.random.default_rng(3)
    model = models["unsigned"]
    ids = rng.integers(0, model.vocab_size, (16, 9))
    logits = {name: m.forward(ids, m.initial_state(16))[0] for name, m in models.items()}
    difference = np.abs(logits["unsigned"] - logits["signed"])

    def bare(m: Any, rows: int):
        def run(seed: int, steps: int) -> int:
            stepper, state = m.stepper(), m.initial_state(rows)
            tokens = np.full(rows, seed % m.vocab_size, dtype=np.int64)
            for _ in range(steps):
                _, state = stepper.step(tokens, state)
            return steps * rows

        return run

    def generate(m: Any):
        def run(seed: int, words: int) -> int:
            config = GenerationConfig.from_options(
                m.info.generation, max_words=words, stop_at_end=False, seed=seed
            )
            m.generate("a neural network", config)
            return words

        return run

    seeds, steps = list(range(args.rounds)), args.steps
    cases = {  # (rows of a bare step, or None for generate(); steps or words per round)
        "bare step, batch 1": (1, steps),
        "bare step, batch 4, per row": (4, max(steps // 2, 1)),
        "bare step, batch 64, per row": (64, max(steps // 16, 1)),
        "generate(), the file's defaults": (None, steps),
    }
    timers = {}
    for case, (rows, units) in cases.items():
        for name, m in models.items():
            run = generate(m) if rows is None else bare(m, rows)
            timers[f"{case} | {name}"] = (loop_timer(run, units), seeds)
    speed = interleaved(timers)
    return {
        "model": str(source),
        "moved_to_signed": moved,
        "exactness": exactness,
        "logits": {
            "largest_difference": float(difference.max()),
            "differing": float((difference > 0).mean()),
        },
        "speed": {name: result["ms_per_word"] for name, result in speed.items()},
        "machine": machine_info(),
        "vnni": _vnni(),
        "rounds": args.rounds,
    }


def _vnni() -> bool | None:
    """Whether this CPU offers VNNI (AVX512_VNNI or AVX_VNNI), where Linux says; None elsewhere."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8").split()
    except OSError:
        return None
    return "avx512_vnni" in flags or "avx_vnni" in flags


def render(result: dict[str, Any]) -> str:
    lines = [
        f"Model: `{result['model']}`; the signed form moves {len(result['moved_to_signed'])} weights back "
        "to int8.",
        "",
        "| form | integer product | weight type | outputs differing from exact | largest difference |",
        "| :--- | :--- | :--- | ---: | ---: |",
    ]
    for form, rows in result["exactness"].items():
        for row in rows:
            lines.append(
                f"| {form} | `{row['weight']}` | {row['dtype']} | {100 * row['differing']:.2f}% | "
                f"{row['largest_difference']:,} |"
            )
    logits = result["logits"]
    lines += [
        "",
        f"Logits of 16 contexts, unsigned against signed: {100 * logits['differing']:.2f}% differ, "
        f"by at most {logits['largest_difference']:.4g}.",
        "",
        "| what | unsigned, ms | signed, ms | unsigned / signed |",
        "| :--- | ---: | ---: | ---: |",
    ]
    cases = dict.fromkeys(name.split(" | ")[0] for name in result["speed"])
    for case in cases:
        unsigned, signed = (result["speed"][f"{case} | {form}"]["median"] for form in ("unsigned", "signed"))
        lines.append(f"| {case} | {unsigned:.4f} | {signed:.4f} | {unsigned / signed:.3f} |")
    lines += [
        "",
        f"Medians of {result['rounds']} interleaved rounds (ms per step or word; per row for batches of 4 "
        "and 64).",
        "",
    ]
    vnni = {True: "has", False: "has no", None: "may have"}[result["vnni"]]
    lines.append(f"This CPU {vnni} VNNI.")
    lines += ["", machine_markdown(result["machine"])]
    return "\n".join(lines)


def targets(result: dict[str, Any]) -> dict[str, Any]:
    exact = all(row["differing"] == 0 for row in result["exactness"]["unsigned"])
    return {"unsigned products exact on this CPU": exact}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchmark_parser("int8_storage", __doc__)
    parser.add_argument("--model", help="an int8 model file (default: the bundled model)")
    parser.add_argument(
        "--rounds", type=int, default=7, help="interleaved timed rounds (default: %(default)s)"
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=400,
        help="steps of batch 1 and words of generate() per round; batch 4 takes half as many steps, "
        "batch 64 a sixteenth (default: %(default)s)",
    )
    parser.add_argument("--result-json", metavar="PATH", help="default: benchmarks/.cache/results/")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    require_files({"--model": (args.model, "model file", "")})
    return finish("int8_storage", measure(args), targets, render, args.result_json)


if __name__ == "__main__":
    raise SystemExit(main())
