"""Check nextword on an NVIDIA GPU; prints a Markdown report to paste into docs/gpu.md.

Two checks, in an environment with ``nextword[train-gpu]`` and onnxruntime-gpu (docs/gpu.md):

    python scripts/gpu_check.py --train CORPUS [--mixed-precision] [--out DIR]   # train, export, generate
    python scripts/gpu_check.py MODEL.onnx                                        # generate only

``--train`` trains one epoch on CORPUS on the GPU(s) (``--distribute mirrored``; the bundled model's
network unless ``--units``/``--embedding-dim`` say otherwise), checks that the training LSTM runs
TensorFlow's fused cuDNN kernel while the exported graph holds ONNX ``LSTM`` nodes (tf2onnx cannot
convert CudnnRNN; export builds its step model with ``use_cudnn=False``), exports with the usual
parity checks, then runs the generation check on the exported file: logits and greedy generations with
the CUDA execution provider against the CPU, and step times. ``--cpu-dry-run`` runs the same steps
where there is no GPU, to check the script itself (the GPU-specific checks then report "no").
Exit status 0 when every check passes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from nextword.cli.telemetry import telemetry_off

telemetry_off()  # a program: onnxruntime 1.29+'s telemetry off (it is imported below, in functions)

PROMPTS = ["a neural network", "the present invention relates to", "", "each neuron of the hidden layer"]


def compare_generation(path: str, dry_run: bool = False) -> bool:
    """CUDA against CPU for one model file: logits, greedy text, step times. True when they agree.
    With ``dry_run`` and no CUDA, the 'CUDA' sessions are CPU sessions, so the comparison and the
    timing run all the same, to check the script."""
    import onnxruntime as ort

    from nextword.runtime import load

    print(f"onnxruntime {ort.__version__}, available providers: {ort.get_available_providers()}")
    # The reference steps on one CPU thread, as the CPU nodes of a CUDA session do: an int8 model's
    # numbers depend on the thread count at larger batches (docs/benchmarks.md, "Session threads").
    # onnxruntime's CUDA provider may round float32 matrix products to TF32 (Ampere and later GPUs):
    # the session with that off must match the CPU; the default one is measured.
    cpu = load(path, threads=1)
    try:
        gpu = load(path, device="cuda")
        exact = load(path, providers=[("CUDAExecutionProvider", {"use_tf32": "0"}), "CPUExecutionProvider"])
    except ValueError as exc:
        print(f"CUDA is not available to onnxruntime: {exc}")
        if not dry_run:
            return False
        print("a dry run: the 'CUDA' sessions run on the CPU\n")
        gpu, exact = load(path, threads=1), load(path, threads=1)
    print(f"session providers: CPU {cpu.providers}, CUDA {gpu.providers}, TF32 off {exact.providers}\n")
    print("| check | result |\n| --- | --- |")
    agree = True
    for name, model in (("CUDA", gpu), ("CUDA, TF32 off", exact)):
        worst = 0.0
        for prompt in PROMPTS:
            ids = np.asarray([cpu.prompt_ids(prompt)])
            a, _ = cpu.forward(ids, cpu.initial_state(1))
            b, _ = model.forward(ids, model.initial_state(1))
            worst = max(worst, float(np.abs(a - b).max()))
        same = [
            cpu.generate(p, temperature=0, max_words=50) == model.generate(p, temperature=0, max_words=50)
            for p in PROMPTS
        ]
        batched = cpu.generate(PROMPTS, temperature=0, max_words=50) == model.generate(
            PROMPTS, temperature=0, max_words=50
        )
        beams = cpu.generate(PROMPTS, num_beams=3, max_words=20) == model.generate(
            PROMPTS, num_beams=3, max_words=20
        )
        print(f"| {name}: max abs logit diff from the CPU's | {worst:.2e} |")
        print(
            f"| {name}: beam search (3 beams, 20 words, 4 prompts) identical | {'yes' if beams else 'no'} |"
        )
        print(f"| {name}: greedy 50-word texts identical, one prompt a call; all four in one batch "
              f"| {sum(same)}/{len(same)}; {'yes' if batched else 'no'} |")  # fmt: skip
        if model is exact:
            agree = worst < 1e-3 and all(same) and batched and beams
    timed = (
        ("CPU, 1 thread", cpu),
        ("CPU, load()'s default", load(path)),
        ("CUDA", gpu),
        ("CUDA, TF32 off", exact),
    )
    for name, model in timed:
        for batch in (1, 64):
            state, ids = model.initial_state(batch), np.full((batch, 1), 5, dtype=np.int64)
            for _ in range(10):
                _, state = model.forward(ids, state)
            start = time.perf_counter()
            for _ in range(200):
                _, state = model.forward(ids, state)
            per_step = (time.perf_counter() - start) / 200
            print(
                f"| {name} step, batch {batch} | {per_step * 1e3:.3f} ms ({batch / per_step:,.0f} words/s) |"
            )
    for name, model in timed:
        for batch in (1, 64):
            per_word = time_generate(model, batch)
            print(
                f"| {name} generate(), batch {batch}, file's defaults | {per_word * 1e3:.3f} ms a step "
                f"({batch / per_word:,.0f} words/s) |"
            )
    for name, model in timed[2:]:
        sampled = [
            cpu.generate(p, max_words=50, seed=7) == model.generate(p, max_words=50, seed=7) for p in PROMPTS
        ]
        print(
            f"| {name}: seeded sampled 50-word texts identical (file's defaults, seed 7) | {sum(sampled)}/4 |"
        )
    print(f"| GPU memory held by this process | {gpu_memory()} |")
    return agree


def time_generate(model, batch: int, words: int = 100) -> float:
    """Seconds per generated word of each row: ``generate`` of ``batch`` prompts, the file's decoding
    defaults, ``words`` words each (the fastest of three rounds, after one to warm up)."""
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(batch)]
    options = {"max_words": words, "min_words": words, "stop_at_end": False, "seed": 1}
    model.generate(prompts, **options)
    rounds = []
    for _ in range(3):
        start = time.perf_counter()
        model.generate(prompts, **options)
        rounds.append((time.perf_counter() - start) / words)
    return min(rounds)


def gpu_memory() -> str:
    """What nvidia-smi says this process holds on the GPU, or why it could not say."""
    import subprocess

    query = ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader"]
    try:
        rows = subprocess.run(query, capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError) as error:
        return f"not read ({type(error).__name__})"
    mine = [
        row.split(",")[1].strip()
        for row in rows.splitlines()
        if row.split(",")[0].strip() == str(os.getpid())
    ]
    return mine[0] if mine else "not listed by nvidia-smi"


def training_ops(run_dir: Path) -> set[str]:
    """Op types of the run's training model (its checkpoint: the dtype policy it trained with) run
    forward in training mode on the default device, with the functions it calls."""
    import keras
    import tensorflow as tf

    model = keras.saving.load_model(run_dir / "checkpoint.keras", compile=False)
    trace = tf.function(lambda ids: model(ids, training=True))
    graph_def = trace.get_concrete_function(tf.TensorSpec([None, None], tf.int32)).graph.as_graph_def()
    ops = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        ops |= {node.op for node in function.node_def}
    return ops


def train_and_check(args: argparse.Namespace) -> bool:
    import onnx
    import tensorflow as tf

    from nextword.export import ExportConfig, export
    from nextword.runtime import TokenizerConfig
    from nextword.train import CorpusConfig, ModelConfig, TrainConfig, train

    gpus = tf.config.list_physical_devices("GPU")
    print(f"TensorFlow {tf.__version__}, built with CUDA: {tf.test.is_built_with_cuda()}, GPUs: {gpus}")
    if not gpus and not args.cpu_dry_run:
        print("TensorFlow sees no GPU: install nextword[train-gpu] on a machine with one (docs/gpu.md)")
        return False
    out = Path(args.out or tempfile.mkdtemp(prefix="nextword-gpu-check-"))
    config = TrainConfig(
        out=str(out / "run"),
        corpus=CorpusConfig(paths=(args.train,)),
        tokenizer=TokenizerConfig(),
        model=ModelConfig(embedding_dim=args.embedding_dim, lstm_units=args.units),
        batch_size=args.batch_size,
        epochs=1,
        distribute="mirrored",
        mixed_precision=args.mixed_precision,
        overwrite=True,
        verbose=2,
    )
    started = time.perf_counter()
    train(config)
    epoch = json.loads((out / "run" / "metrics.json").read_text())["epochs"][-1]
    ops = training_ops(out / "run")
    cudnn = sorted(op for op in ops if op.startswith("CudnnRNN"))
    model_path = out / "model.onnx"
    report = export(ExportConfig(run_dir=str(out / "run"), out=str(model_path)))
    onnx_ops = {node.op_type for node in onnx.load(str(model_path)).graph.node}
    print("\n| training check | result |\n| --- | --- |")
    print(f"| GPUs, mixed precision | {len(gpus)}, {'on' if args.mixed_precision else 'off'} |")
    print(f"| one epoch: words/s (first epoch, tracing included) | {epoch['train_words_per_second']:,.0f} |")
    print(f"| one epoch: seconds; whole run with data preparation | {epoch['seconds']:.1f}; "
          f"{time.perf_counter() - started:.1f} |")  # fmt: skip
    print(f"| validation loss after one epoch | {epoch['val_loss']:.3f} |")
    print(f"| training LSTM runs cuDNN (ops {', '.join(cudnn) or 'none'}) | {'yes' if cudnn else 'no'} |")
    print(
        f"| exported graph: fused ONNX LSTM, no CudnnRNN | {'LSTM' in onnx_ops and not cudnn_in(onnx_ops)} |"
    )
    print(f"| export parity (max abs logit diff, greedy identical) | {report.parity.passed} "
          f"({max(report.parity.max_abs_diff_random, report.parity.max_abs_diff_real):.2e}, "
          f"{report.parity.greedy_identical}/{report.parity.greedy_sequences}) |\n")  # fmt: skip
    generation = compare_generation(str(model_path), args.cpu_dry_run)
    checks = [
        bool(cudnn) or args.cpu_dry_run,
        "LSTM" in onnx_ops,
        report.parity.passed,
        generation,
    ]
    return all(checks)


def cudnn_in(ops: set[str]) -> bool:
    return any("cudnn" in op.lower() for op in ops)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", nargs="?", help="an exported .onnx file: the generation check only")
    parser.add_argument("--train", metavar="CORPUS", help="train one epoch on this corpus, export, generate")
    parser.add_argument("--out", help="folder for the run and the model (default: a new temporary folder)")
    parser.add_argument("--mixed-precision", action="store_true", help="train in mixed_float16")
    parser.add_argument("--units", type=int, default=448, help="LSTM units (default: the bundled model's)")
    parser.add_argument("--embedding-dim", type=int, default=256, help="(default: the bundled model's)")
    parser.add_argument("--batch-size", type=int, default=256, help="windows per step and GPU")
    parser.add_argument("--cpu-dry-run", action="store_true", help="run the steps without a GPU")
    args = parser.parse_args(argv)
    if bool(args.model) == bool(args.train):
        parser.error("give a MODEL.onnx or --train CORPUS")
    ok = train_and_check(args) if args.train else compare_generation(args.model, args.cpu_dry_run)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
