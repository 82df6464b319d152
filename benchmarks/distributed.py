"""Distributed training: words/s of one process against two local workers, and what they mean for a
corpus the size of the PatentsView abstract table. Prints Markdown tables.

Each configuration runs ``nextword train`` on ``--corpus`` for ``--epochs`` epochs in fresh child
processes (the workers of a multi-worker run talk over 127.0.0.1):

* ``1 process``: ``--distribute none``, ``--batch-size`` windows a step;
* ``2 workers, same batch each``: ``--distribute multi-worker``, each worker ``--batch-size`` windows
  (the global batch doubles: weak scaling);
* ``2 workers, half the batch each``: each worker ``--batch-size / 2`` windows, the global batch of the
  one process (strong scaling: the same steps, split).

Words/s is the last epoch's ``train_words_per_second`` from the run's ``metrics.json`` (the first epoch
includes tracing the step functions); every word is one predicted next word (the tokenizer's tokens,
punctuation and ``<eod>`` included). Scaling efficiency: words/s over (workers x one process's
words/s). On one machine the workers share its cores, so this measures the cost of the distributed
machinery plus that sharing, not what separate machines would reach; the estimates below say how
they are derived.

    python benchmarks/distributed.py [--corpus CSV] [--epochs 2] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common

NAME = "distributed"
PATENTSVIEW_ABSTRACTS = 9_000_000  # rows of PatentsView's g_patent_abstract table, about
NETWORK_BYTES_PER_S = 10e9 / 8  # assumed link between machines: 10 Gbit/s Ethernet
NETWORK_LATENCY_S = 100e-6  # assumed per message
# Assumed sustained throughput of one GPU on this model with mixed precision (a quarter of the
# tensor-core peak; small LSTMs rarely reach more): NVIDIA T4 65 TFLOP/s fp16 peak, A100 312.
GPU_FLOPS = {"T4 (25% of 65 TFLOP/s)": 65e12 * 0.25, "A100 (25% of 312 TFLOP/s)": 312e12 * 0.25}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", default=str(common.DEFAULT_CORPUS), help="default: %(default)s")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per run (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=64, help="windows per step (default: %(default)s)")
    parser.add_argument("--seq-len", type=int, default=50, help="words per window (default: %(default)s)")
    parser.add_argument("--units", type=int, default=64, help="LSTM units (default: %(default)s)")
    parser.add_argument("--embedding-dim", type=int, default=100, help="default: %(default)s")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run at most")
    parser.add_argument("--result-json", metavar="PATH", help="default: benchmarks/.cache/results/")
    return parser.parse_args(argv)


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def run(args: argparse.Namespace, out: Path, workers: int, batch: int) -> dict[str, Any]:
    """Train once with ``workers`` processes of ``batch`` windows each; the run's figures."""
    argv = [
        sys.executable, "-m", "nextword.cli.main", "-q", "train", args.corpus, "--out", str(out),
        "--epochs", str(args.epochs), "--batch-size", str(batch), "--lstm-units", str(args.units),
        "--seq-len", str(args.seq_len),
        "--embedding-dim", str(args.embedding_dim), "--patience", "0", "--verbose", "0",
    ]  # fmt: skip
    env = common.quiet_tf_env()
    if workers > 1:
        argv += ["--distribute", "multi-worker"]
        cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(workers)]}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as logs:
        children = []
        for index in range(workers):
            if workers > 1:
                env = {
                    **env,
                    "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
                }
            log = open(Path(logs) / f"{index}.log", "w")  # noqa: SIM115 (closed below)
            children.append((subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT), log))
        codes = []
        for child, log in children:
            try:
                codes.append(child.wait(timeout=max(args.timeout - (time.perf_counter() - started), 1)))
            except subprocess.TimeoutExpired:
                child.kill()
                codes.append(child.wait())
            log.close()
        if any(codes):
            tails = "\n".join((Path(logs) / f"{i}.log").read_text()[-2000:] for i in range(workers))
            raise RuntimeError(f"training with {workers} worker(s) failed ({codes}):\n{tails}")
    wall = time.perf_counter() - started
    epochs = json.loads((out / "metrics.json").read_text())["epochs"]
    config = json.loads((out / "config.json").read_text())
    return {
        "workers": workers,
        "batch_per_worker": batch,
        "global_batch": config["training"]["global_batch"],
        "words_per_s": epochs[-1]["train_words_per_second"],
        "epoch_s": epochs[-1]["seconds"],
        "first_epoch_s": epochs[0]["seconds"],
        "wall_s": wall,
        "val_loss": epochs[-1]["val_loss"],
        "data": config["data"],
        "vocab_size": config["vocab_size"],
    }


def corpus_words(corpus: str) -> tuple[int, int]:
    """(documents, whitespace-separated words) of ``corpus``."""
    from nextword.train import CorpusConfig, load_documents

    documents = load_documents([corpus], CorpusConfig(paths=(corpus,)))
    return len(documents), sum(len(d.split()) for d in documents)


def training_flops_per_word(units: int, embedding: int, vocab: int) -> float:
    """Multiply-adds of one word through the LSTM and the output layer, x2 for FLOPs, x3 for the
    backward pass (the usual rule): an estimate that leaves out the embedding lookup and the softmax."""
    macs = 4 * units * (embedding + units + 1) + units * vocab
    return 6.0 * macs


def estimates(
    results: list[dict[str, Any]], args: argparse.Namespace, docs: int, words: int
) -> dict[str, Any]:
    one = results[0]
    data = one["data"]
    tokens_per_doc = (data["train_words"] + data["val_words"]) / data["documents"]
    train_share = data["train_words"] / (data["train_words"] + data["val_words"])
    epoch_tokens = PATENTSVIEW_ABSTRACTS * tokens_per_doc * train_share  # training tokens of one epoch
    vocab = one["vocab_size"]
    flops = training_flops_per_word(args.units, args.embedding_dim, vocab)
    params = (
        vocab * args.embedding_dim
        + 4 * args.units * (args.embedding_dim + args.units + 1)
        + (args.units + 1) * vocab
    )
    step_words = args.batch_size * args.seq_len  # words of one machine's share of a step, about
    rows = []
    for n in (1, 2, 4, 8, 16, 64):
        # Each machine as this one: compute as measured; per step a ring all-reduce of every gradient
        # (float32) sends 2 (n-1)/n of the model, 2 (n-1) messages (the embedding's sparse gradient
        # is counted dense: a bound).
        compute = step_words / one["words_per_s"]
        comm = (
            0.0
            if n == 1
            else 2 * (n - 1) / n * 4 * params / NETWORK_BYTES_PER_S + 2 * (n - 1) * NETWORK_LATENCY_S
        )
        rate = n * step_words / (compute + comm)
        rows.append(
            {
                "machines": n,
                "words_per_s": rate,
                "efficiency": rate / (n * one["words_per_s"]),
                "epoch_h": epoch_tokens / rate / 3600,
            }
        )
    gpus = {
        name: {"words_per_s": f / flops, "epoch_h": epoch_tokens / (f / flops) / 3600}
        for name, f in GPU_FLOPS.items()
    }
    return {
        "documents": docs,
        "words_per_document": words / docs,
        "tokens_per_document": tokens_per_doc,
        "patentsview_abstracts": PATENTSVIEW_ABSTRACTS,
        "patentsview_epoch_tokens": epoch_tokens,
        "this_machine_epoch_h": epoch_tokens / one["words_per_s"] / 3600,
        "flops_per_word": flops,
        "cpu_flops": flops * one["words_per_s"],
        "parameters": params,
        "machines": rows,
        "gpus": gpus,
    }


def report(results: list[dict[str, Any]], est: dict[str, Any], info: dict[str, Any]) -> str:
    one = results[0]["words_per_s"]
    lines = [common.machine_markdown(info), ""]
    rows = [
        [
            f"{r['workers']} {'process' if r['workers'] == 1 else 'workers'}",
            r["batch_per_worker"],
            r["global_batch"],
            f"{r['words_per_s']:,.0f}",
            f"{r['words_per_s'] / (r['workers'] * one):.0%}",
            f"{r['epoch_s']:.1f}",
            f"{r['first_epoch_s']:.1f}",
            f"{r['val_loss']:.3f}",
        ]
        for r in results
    ]
    headers = [
        "run",
        "batch per worker",
        "global batch",
        "words/s (measured)",
        "scaling efficiency",
        "epoch s",
        "first epoch s",
        "val loss",
    ]
    lines += [common.markdown_table(headers, rows, "lrrrrrrr"), ""]
    lines.append(
        f"Corpus: {est['documents']:,} documents, {est['words_per_document']:.0f} words and "
        f"{est['tokens_per_document']:.0f} tokens per document (measured). PatentsView's abstract "
        f"table: about {est['patentsview_abstracts']:,} abstracts, so about "
        f"{est['patentsview_epoch_tokens'] / 1e9:.2f} billion training tokens per epoch (estimate: this "
        "corpus's tokens per abstract and training share)."
    )
    lines.append("")
    rows = [["this machine, 1 process (measured rate)", f"{one:,.0f}", f"{est['this_machine_epoch_h']:.1f}"]]
    for r in est["machines"][1:]:
        rows.append(
            [
                f"{r['machines']} machines like this one (estimate, {r['efficiency']:.0%} efficiency)",
                f"{r['words_per_s']:,.0f}",
                f"{r['epoch_h']:.1f}",
            ]
        )
    for name, g in est["gpus"].items():
        rows.append([f"one GPU, {name} (estimate)", f"{g['words_per_s']:,.0f}", f"{g['epoch_h']:.2f}"])
    lines.append(common.markdown_table(["where", "words/s", "hours per PatentsView epoch"], rows, "lrr"))
    lines.append("")
    lines.append(
        f"Model: {est['parameters']:,} parameters, about {est['flops_per_word'] / 1e6:.1f} MFLOP per "
        "trained word (6 x multiply-adds of the LSTM and output layer); this CPU sustains "
        f"{est['cpu_flops'] / 1e9:.0f} GFLOP/s on it."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not Path(args.corpus).is_file():
        print(f"corpus {args.corpus} not found: pass --corpus", file=sys.stderr)
        return 2
    info = common.machine_info()
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for label, workers, batch in (
            ("1 process", 1, args.batch_size),
            ("2 workers, same batch each", 2, args.batch_size),
            ("2 workers, half the batch each", 2, args.batch_size // 2),
        ):
            print(f"{label}: training...", file=sys.stderr, flush=True)
            result = run(args, Path(scratch) / f"run{len(results)}", workers, batch)
            print(
                f"  {result['words_per_s']:,.0f} words/s, {result['wall_s']:.0f} s",
                file=sys.stderr,
                flush=True,
            )
            results.append({"label": label, **result})
    docs, words = corpus_words(args.corpus)
    est = estimates(results, args, docs, words)
    common.save_result(
        NAME, {"machine": info, "args": vars(args), "results": results, "estimates": est}, args.result_json
    )
    print(report(results, est, info))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
