"""What each process of ``nextword serve --workers N`` holds in memory. Prints a Markdown table.

Two measurements, Linux only (resident memory, ``VmRSS``, read from /proc):

* a fresh process that builds the server's app step by step: Python with numpy and onnxruntime
  imported; then FastAPI, uvicorn and ``nextword.serve`` imported; then ``create_app()``, which loads
  the model's sessions (``--model``, the bundled model by default);
* ``nextword serve --workers N`` (this script's ``--workers``) on a free loopback port: after
  ``--requests`` streamed completions of ``--words`` words (``--clients`` at a time), the resident
  memory of each worker and of the supervising process (which checks the model file but loads no session).

Memory hardly depends on what else runs on the machine, so the figures can be compared across runs;
what ``--workers N`` costs is about the supervisor plus N workers.

    python -m benchmarks.worker_memory [--model MODEL.onnx] [--workers 2] [--requests 400]
                                       [--clients 8] [--words 50]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.environment import machine_info
from benchmarks.loopback import Server, request, rss_bytes
from benchmarks.paths import require_files
from benchmarks.report import markdown_table
from benchmarks.results import at_least, benchmark_parser
from nextword.runtime.default import BUNDLED_MODEL

STAGES = """
import json, sys

def rss():
    for line in open("/proc/self/status", encoding="utf-8"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

out = {}
import numpy, onnxruntime
out["Python + numpy + onnxruntime imported"] = rss()
import fastapi, uvicorn
from nextword.serve import create_app
from nextword.serve.config import ServeConfig
out["+ FastAPI, uvicorn and nextword.serve imported"] = rss()
app = create_app(ServeConfig(model=sys.argv[1]))
out["+ create_app(): the app and the model's sessions"] = rss()
print(json.dumps(out))
"""


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text(encoding="utf-8").rpartition(")")[2].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def workers_of(pid: int) -> list[int]:
    """The uvicorn workers among ``pid``'s children: processes multiprocessing spawned (not its
    resource tracker)."""
    out = []
    for child in children(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"spawn_main" in cmdline or b"multiprocessing-fork" in cmdline:
            out.append(child)
    return sorted(out)


async def load(port: int, requests: int, clients: int, words: int) -> int:
    """``requests`` completions in all, ``clients`` at a time; how many answered 200."""
    ok = 0
    queue = list(range(requests))

    async def client() -> None:
        nonlocal ok
        while queue:
            seed = queue.pop()
            body = {"prompt": "a neural network", "max_tokens": words, "stop_at_end": False, "seed": seed}
            status, _ = await request(port, "POST", "/v1/completions", json.dumps(body).encode())
            ok += status == 200

    await asyncio.gather(*(client() for _ in range(clients)))
    return ok


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchmark_parser("worker_memory", __doc__)
    parser.add_argument("--model", default=str(BUNDLED_MODEL), help="the model file to serve")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of the server")
    parser.add_argument("--requests", type=int, default=400, help="completions sent before measuring")
    parser.add_argument("--clients", type=int, default=8, help="completions in flight at a time")
    parser.add_argument("--words", type=int, default=50, help="words of each completion")
    args = parser.parse_args(argv)
    at_least(parser, 1, {"--requests": args.requests, "--clients": args.clients, "--words": args.words})
    at_least(parser, 2, {"--workers": args.workers})
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    require_files({"--model": (args.model, "model file", "")})
    if not Path("/proc/self/status").is_file():
        raise SystemExit("worker_memory reads /proc: it runs on Linux only")
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", STAGES, args.model], capture_output=True, text=True, timeout=600
    )
    if done.returncode:
        raise SystemExit(f"worker_memory: building the app failed:\n{done.stderr[-3000:]}")
    rows: list[list[Any]] = [[label, f"{mb:.0f} MB"] for label, mb in json.loads(done.stdout).items()]
    server = Server(args.model, ["--workers", str(args.workers)])
    try:
        answered = asyncio.run(load(server.port, args.requests, args.clients, args.words))
        pids = workers_of(server.process.pid)
        if len(pids) != args.workers:
            raise SystemExit(f"worker_memory: found {len(pids)} worker process(es), expected {args.workers}")
        worker_mb = [rss_bytes(pid) / 2**20 for pid in pids]
        supervisor_mb = rss_bytes(server.process.pid) / 2**20
    finally:
        server.stop()
    rows.append(
        [
            f"a worker of `--workers {args.workers}` after {args.requests:,} completions "
            f"({answered:,} answered), each worker",
            ", ".join(f"{mb:.0f} MB" for mb in worker_mb),
        ]
    )
    rows.append(
        [
            "the supervising process of `--workers` (checks the file, loads no session)",
            f"{supervisor_mb:.0f} MB",
        ]
    )
    machine = machine_info()
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"Model: `{args.model}`; {now}; Python {machine['python']}, onnxruntime "
        f"{machine['versions'].get('onnxruntime')}; completions of {args.words} words, "
        f"{args.clients} at a time.\n"
    )
    print(markdown_table(["process", "RSS"], rows))
    average = sum(worker_mb) / len(worker_mb)
    print(
        f"\nSo `--workers N` holds about {supervisor_mb:.0f} + {average:.0f} × N MB "
        f"(measured in {time.perf_counter() - started:.0f} s)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
