"""Compare CUDA and CPU generation for one model file; prints a Markdown report.

Run in an environment with onnxruntime-gpu installed (see docs/gpu.md):

    python scripts/gpu_check.py MODEL.onnx
"""

from __future__ import annotations

import sys
import time

import numpy as np
import onnxruntime as ort

from nextword.runtime import load

PROMPTS = ["a neural network", "the present invention relates to", "", "each neuron of the hidden layer"]


def main(path: str) -> int:
    print(f"onnxruntime {ort.__version__}, available providers: {ort.get_available_providers()}")
    cpu = load(path)
    gpu = load(path, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    print(f"session providers: cpu={cpu.providers}, gpu={gpu.providers}")
    if "CUDAExecutionProvider" not in gpu.providers:
        print("CUDA is not available: nothing to compare")
        return 1
    worst = 0.0
    for prompt in PROMPTS:
        ids = np.asarray([cpu.prompt_ids(prompt)])
        a, _ = cpu.forward(ids, cpu.initial_state(1))
        b, _ = gpu.forward(ids, gpu.initial_state(1))
        worst = max(worst, float(np.abs(a - b).max()))
    same = [
        cpu.generate(p, temperature=0, max_words=50) == gpu.generate(p, temperature=0, max_words=50)
        for p in PROMPTS
    ]
    print(f"| check | result |\n| --- | --- |\n| max abs logit diff CPU vs CUDA | {worst:.2e} |")
    print(f"| greedy 50-word generations identical | {sum(same)}/{len(same)} |")
    for name, model in (("cpu", cpu), ("cuda", gpu)):
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
    return 0 if worst < 1e-3 and all(same) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
