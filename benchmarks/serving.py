"""`nextword serve` under load: continuous batching against one thread per request.

Starts ``nextword serve`` twice on free loopback ports with the same model, batching on and off, then
for each client count (default 1, 8, 32, 128) runs that many concurrent streaming clients against each
server in turn, ``--rounds`` times ``--seconds`` each (turns, so that whatever else the machine does hits
both modes alike). Each client sends ``POST /v1/completions`` (``stream``, ``--max-tokens`` words, the
end of the document turned off so every request runs its full length), reads the events, and sends the
next request as soon as one ends. Reported per setting:

- words/s: words received by all clients together per second, the median of the rounds;
- time to first word (p50, p99): from sending the request to the first word's event;
- per-word latency (p50, p99): the gap between consecutive word events of one request;
- the server's CPU time (all its threads) per word received: unlike the rates, this hardly depends on
  what else runs on the machine;
- the server's resident memory (VmRSS) after the run.

The clients speak HTTP/1.1 over raw asyncio streams (no client library), so that 128 of them cost the
server's machine little. Everything stays on 127.0.0.1 and every run is bounded by ``--seconds``.

    python benchmarks/serving.py                       # the bundled model, about 3 minutes
    python benchmarks/serving.py --model small.onnx --clients 1 32 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import common
import numpy as np

NAME = "serving"
PROMPT = "a neural network"
SERVE = "import sys; from nextword.cli.main import main; sys.exit(main(sys.argv[1:]))"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid`` (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` and its threads so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    """``nextword serve`` in a child process on a free loopback port."""

    def __init__(self, model: str | None, flags: list[str]) -> None:
        self.port = free_port()
        argv = ["serve", "--port", str(self.port), "--log-level", "warning", "--max-streams", "1024", *flags]
        if model:
            argv += ["--model", model]
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVE, "-q", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {self.process.stderr.read().decode()}")
            try:
                status, _ = asyncio.run(request("127.0.0.1", self.port, "GET", "/health"))
                if status == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the server did not start within 120 s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


async def request(host: str, port: int, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    """One whole HTTP/1.1 exchange; returns (status, body)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(_head(method, path, host, port, body) + body)
        await writer.drain()
        status, headers = await _read_head(reader)
        if headers.get("transfer-encoding") == "chunked":
            data = b"".join([chunk async for chunk in _chunks(reader)])
        else:
            data = await reader.readexactly(int(headers.get("content-length", 0)))
        return status, data
    finally:
        writer.close()


def _head(method: str, path: str, host: str, port: int, body: bytes) -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    status_line = await reader.readline()
    status = int(status_line.split()[1])
    headers = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


async def _chunks(reader: asyncio.StreamReader):
    while True:
        size = int((await reader.readline()).strip() or b"0", 16)
        if size == 0:
            return
        yield await reader.readexactly(size)
        await reader.readexactly(2)


async def stream_once(port: int, body: bytes) -> tuple[float, list[float], int]:
    """One streamed completion: (time to first word, gaps between words, words)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.perf_counter()
    arrivals = []
    try:
        writer.write(_head("POST", "/v1/completions", "127.0.0.1", port, body) + body)
        await writer.drain()
        status, _ = await _read_head(reader)
        if status != 200:
            raise RuntimeError(f"HTTP {status}")
        buffer = b""
        async for chunk in _chunks(reader):
            buffer += chunk
            *events, buffer = buffer.split(b"\n\n")
            now = time.perf_counter()
            arrivals.extend(
                now for event in events if event.startswith(b"data: {") and b'"text":""' not in event
            )
    finally:
        writer.close()
    ttfw = arrivals[0] - started if arrivals else float("nan")
    return ttfw, list(np.diff(arrivals)), len(arrivals)


async def load(port: int, clients: int, seconds: float, max_tokens: int) -> dict[str, Any]:
    """``clients`` concurrent streaming clients for ``seconds``; the figures of every finished request."""
    deadline = time.perf_counter() + seconds
    ttfws: list[float] = []
    gaps: list[float] = []
    words = 0
    requests = 0

    async def client(i: int) -> None:
        nonlocal words, requests
        n = 0
        while time.perf_counter() < deadline:
            body = {"prompt": PROMPT, "max_tokens": max_tokens, "stop_at_end": False, "seed": i * 100_000 + n}
            body["stream"] = True
            ttfw, g, w = await stream_once(port, json.dumps(body).encode())
            ttfws.append(ttfw)
            gaps.extend(g)
            words += w
            requests += 1
            n += 1

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="the .onnx file (default: $NEXTWORD_MODEL, else the bundled model)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each run")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each setting, taken in turns")
    parser.add_argument("--max-tokens", type=int, default=50, help="words per request")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()

    # Both servers run side by side (an idle one costs nothing) and take turns, setting by setting and
    # round by round, so that a change in what else the machine does hits both modes alike.
    servers = {True: Server(args.model, []), False: Server(args.model, ["--no-batching"])}
    results = []
    try:
        for server in servers.values():
            asyncio.run(load(server.port, 1, 1.0, 5))  # warm-up: first session runs, imports
        for clients in args.clients:
            runs: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
            for _ in range(args.rounds):
                for batching, server in servers.items():
                    cpu = cpu_seconds(server.process.pid)
                    run = asyncio.run(load(server.port, clients, args.seconds, args.max_tokens))
                    run["server_cpu_s"] = cpu_seconds(server.process.pid) - cpu
                    run["server_rss"] = rss_bytes(server.process.pid)
                    runs[batching].append(run)
            for batching in (True, False):
                figures = summarize(clients, batching, runs[batching])
                results.append(figures)
                print(
                    f"batching {'on ' if batching else 'off'} {clients:4d} clients: "
                    f"{figures['words_per_s']:8.0f} words/s, first word p50 {figures['ttfw_p50_ms']:.1f} ms "
                    f"p99 {figures['ttfw_p99_ms']:.1f} ms, per word p50 {figures['word_p50_ms']:.1f} ms "
                    f"p99 {figures['word_p99_ms']:.1f} ms, "
                    f"server CPU {figures['server_cpu_us_per_word']:.0f} us/word",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        for server in servers.values():
            server.stop()

    rows = []
    for clients in args.clients:
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
                    common.fmt_bytes(r["server_rss"]),
                ]
            )
    headers = [
        "clients",
        "batching",
        "words/s",
        "on/off",
        "first word p50 ms",
        "p99 ms",
        "per word p50 ms",
        "p99 ms",
        "requests",
        "server CPU µs/word",
        "server RSS",
    ]
    print(common.markdown_table(headers, rows, align="rlrrrrrrrrr"))
    print(
        f"\n{args.max_tokens} words per request; words/s: the median of {args.rounds} runs of "
        f"{args.seconds:g} s, batching on and off in turns; latencies over all of them; "
        f"one machine: {os.cpu_count()} CPUs"
    )
    data = {"machine": common.machine_info(), "args": vars(args), "results": results}
    common.save_result(NAME, data, args.json)


if __name__ == "__main__":
    main()
