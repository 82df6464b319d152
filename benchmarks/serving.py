"""`nextword serve` under load: continuous batching against one thread per request.

Starts ``nextword serve`` twice on free loopback ports with the same model, batching on and off, then
for each client count (default 1, 8, 32, 128) runs that many concurrent streaming clients against each
server in turn, ``--rounds`` times ``--seconds`` each (turns, so that whatever else the machine does hits
both modes alike). Each client sends ``POST /v1/completions`` (``stream``, ``--max-tokens`` words, the
end of the document turned off so every request runs its full length), reads the events, and sends the
next request as soon as one ends, on the same connection (as HTTP client libraries and browsers do;
``--new-connections``: a connection per request). Reported per setting:

- words/s: words received by all clients together per second, the median of the rounds;
- time to first word (p50, p99): from sending the request to the first word's event;
- per-word latency (p50, p99): the gap between consecutive word events of one request;
- the server's CPU time (all its threads) per word received: unlike the rates, this hardly depends on
  what else runs on the machine;
- the server's resident memory (VmRSS) after the run.

The clients speak HTTP/1.1 over raw asyncio streams (no client library), so that 128 of them cost the
server's machine little. Everything stays on 127.0.0.1 and every run is bounded by ``--seconds``.

    python -m benchmarks.serving                       # the bundled model, about 3 minutes
    python -m benchmarks.serving --model small.onnx --clients 1 32 --seconds 5
    python -m benchmarks.serving --model model.onnx --device cuda   # steps on the GPU (docs/gpu.md)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

import numpy as np

from benchmarks.environment import machine_info
from benchmarks.loopback import HOST, Server, chunks, cpu_seconds, head, read_head, rss_bytes
from benchmarks.report import fmt_bytes, markdown_table
from benchmarks.results import at_least, benchmark_parser, save_result

NAME = "serving"
PROMPT = "a neural network"


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def stream_once(
    port: int, body: bytes, conn: Connection | None = None
) -> tuple[float, list[float], int]:
    """One streamed completion: (time to first word, gaps between words, words). On ``conn`` (kept open
    for the next request) if given, else on a connection of its own."""
    reader, writer = conn if conn is not None else await asyncio.open_connection(HOST, port)
    started = time.perf_counter()
    arrivals: list[float] = []
    try:
        writer.write(head("POST", "/v1/completions", port, body, keep_alive=conn is not None) + body)
        await writer.drain()
        status, _ = await read_head(reader)
        if status != 200:
            raise RuntimeError(f"HTTP {status}")
        buffer = b""
        async for chunk in chunks(reader):
            buffer += chunk
            *events, buffer = buffer.split(b"\n\n")
            now = time.perf_counter()
            arrivals.extend(
                now for event in events if event.startswith(b"data: {") and b'"text":""' not in event
            )
    finally:
        if conn is None:
            writer.close()
    ttfw = arrivals[0] - started if arrivals else float("nan")
    return ttfw, list(np.diff(arrivals)), len(arrivals)


async def load(
    port: int, clients: int, seconds: float, max_tokens: int, keep_alive: bool = False
) -> dict[str, Any]:
    """``clients`` concurrent streaming clients for ``seconds``; the figures of every finished request.
    With ``keep_alive`` each client sends its requests on one connection, as HTTP client libraries do;
    otherwise on a new connection each."""
    deadline = time.perf_counter() + seconds
    ttfws: list[float] = []
    gaps: list[float] = []
    words = 0
    requests = 0

    async def client(i: int) -> None:
        nonlocal words, requests
        conn = await asyncio.open_connection(HOST, port) if keep_alive else None
        try:
            n = 0
            while time.perf_counter() < deadline:
                seed = i * 100_000 + n
                body = {"prompt": PROMPT, "max_tokens": max_tokens, "stop_at_end": False, "seed": seed}
                body["stream"] = True
                ttfw, g, w = await stream_once(port, json.dumps(body).encode(), conn)
                ttfws.append(ttfw)
                gaps.extend(g)
                words += w
                requests += 1
                n += 1
        finally:
            if conn is not None:
                conn[1].close()

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    return {
        "seconds": time.perf_counter() - started,
        "requests": requests,
        "words": words,
        "ttfw": ttfws,
        "gaps": gaps,
    }


def summarize(clients: int, batching: bool, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One row of the table from the repeated runs of one setting: the median rate of the runs, and
    percentiles over every request and word of all of them."""
    ttfws = [t for r in runs for t in r["ttfw"]]
    gaps = [g for r in runs for g in r["gaps"]]
    words = sum(r["words"] for r in runs)
    return {
        "clients": clients,
        "batching": batching,
        "runs": len(runs),
        "requests": sum(r["requests"] for r in runs),
        "words": words,
        "words_per_s": float(np.median([r["words"] / r["seconds"] for r in runs])),
        "words_per_s_runs": [r["words"] / r["seconds"] for r in runs],
        "ttfw_p50_ms": 1000 * float(np.percentile(ttfws, 50)),
        "ttfw_p99_ms": 1000 * float(np.percentile(ttfws, 99)),
        "word_p50_ms": 1000 * float(np.percentile(gaps, 50)),
        "word_p99_ms": 1000 * float(np.percentile(gaps, 99)),
        "server_cpu_us_per_word": 1e6 * sum(r["server_cpu_s"] for r in runs) / max(words, 1),
        "server_rss": max(r["server_rss"] for r in runs),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchmark_parser("serving", __doc__)
    parser.add_argument("--model", help="the .onnx file (default: $NEXTWORD_MODEL, else the bundled model)")
    parser.add_argument(
        "--clients", type=int, nargs="+", default=[1, 8, 32, 128], help="concurrent clients of each setting"
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each run")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each setting, taken in turns")
    parser.add_argument("--max-tokens", type=int, default=50, help="words per request")
    parser.add_argument(
        "--new-connections",
        action="store_true",
        help="a new connection per request (default: each client keeps one open, as HTTP libraries do)",
    )
    parser.add_argument(
        "--stream-interval", type=float, help="the servers' --stream-interval (default: the server's default)"
    )
    parser.add_argument(
        "--device", default="cpu", help="the servers' --device: cpu, cuda or cuda:N (default: %(default)s)"
    )
    parser.add_argument(
        "--json", metavar="PATH", help="where to write the figures (default: benchmarks/.cache/results/)"
    )
    args = parser.parse_args(argv)
    at_least(
        parser, 1, {"--clients": min(args.clients), "--rounds": args.rounds, "--max-tokens": args.max_tokens}
    )
    if args.seconds <= 0:
        parser.error(f"argument --seconds: must be more than 0, got {args.seconds:g}")
    return args


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every client count against both servers, ``--rounds`` times; one row of figures per setting."""
    # Both servers run side by side (an idle one costs nothing) and take turns, setting by setting and
    # round by round, so that a change in what else the machine does hits both modes alike.
    common = [] if args.stream_interval is None else ["--stream-interval", str(args.stream_interval)]
    common += ["--device", args.device]
    servers = {True: Server(args.model, common), False: Server(args.model, [*common, "--no-batching"])}
    results = []
    try:
        for server in servers.values():
            asyncio.run(load(server.port, 1, 1.0, 5))  # warm-up: first session runs, imports
        for clients in args.clients:
            runs: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
            for _ in range(args.rounds):
                for batching, server in servers.items():
                    cpu = cpu_seconds(server.process.pid)
                    keep_alive = not args.new_connections
                    run = asyncio.run(load(server.port, clients, args.seconds, args.max_tokens, keep_alive))
                    run["server_cpu_s"] = cpu_seconds(server.process.pid) - cpu
                    run["server_rss"] = rss_bytes(server.process.pid)
                    runs[batching].append(run)
            for batching in (True, False):
                results.append(summarize(clients, batching, runs[batching]))
                _progress(results[-1])
    finally:
        for server in servers.values():
            server.stop()
    return results


def _progress(figures: dict[str, Any]) -> None:
    print(
        f"batching {'on ' if figures['batching'] else 'off'} {figures['clients']:4d} clients: "
        f"{figures['words_per_s']:8.0f} words/s, first word p50 {figures['ttfw_p50_ms']:.1f} ms "
        f"p99 {figures['ttfw_p99_ms']:.1f} ms, per word p50 {figures['word_p50_ms']:.1f} ms "
        f"p99 {figures['word_p99_ms']:.1f} ms, server CPU {figures['server_cpu_us_per_word']:.0f} us/word",
        file=sys.stderr,
        flush=True,
    )


def table(results: list[dict[str, Any]], clients_counts: list[int]) -> str:
    """The Markdown table: batching on and off for each client count."""
    rows = []
    for clients in clients_counts:
        on, off = (
            next(r for r in results if r["clients"] == clients and r["batching"] is b) for b in (True, False)
        )
        for r in (on, off):
            rows.append(
                [
                    clients,
                    "on" if r["batching"] else "off",
                    f"{r['words_per_s']:,.0f}",
                    f"{on['words_per_s'] / off['words_per_s']:.1f}x" if r is on else "",
                    f"{r['ttfw_p50_ms']:.1f}",
                    f"{r['ttfw_p99_ms']:.1f}",
                    f"{r['word_p50_ms']:.1f}",
                    f"{r['word_p99_ms']:.1f}",
                    r["requests"],
                    f"{r['server_cpu_us_per_word']:.0f}",
                    fmt_bytes(r["server_rss"]),
                ]
            )
    headers = ["clients", "batching", "words/s", "on/off", "first word p50 ms", "p99 ms", "per word p50 ms"]
    headers += ["p99 ms", "requests", "server CPU µs/word", "server RSS"]
    return markdown_table(headers, rows, align="rlrrrrrrrrr")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = measure(args)
    print(table(results, args.clients))
    print(
        f"\n{args.max_tokens} words per request; words/s: the median of {args.rounds} runs of "
        f"{args.seconds:g} s, batching on and off in turns; latencies over all of them; "
        f"{'a new connection per request' if args.new_connections else 'one connection per client'}; "
        f"one machine: {os.cpu_count()} CPUs; the model's steps on {args.device}"
    )
    save_result(NAME, {"machine": machine_info(), "args": vars(args), "results": results}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
