"""A bounded soak of `nextword serve`: thousands of requests, clients that hang up, bad requests.

Starts ``nextword serve`` (continuous batching) on a free loopback port, warms it with ``--warmup``
requests of the mix below and takes its resident memory as the baseline, then sends ``--requests``
more from ``--clients`` concurrent clients:

- 60% streamed completions of 5-60 words read to the end;
- 15% streamed completions whose client hangs up after the first word (``--max-tokens`` 1000 words
  asked, so the server must stop them);
- 15% bad requests: out-of-range values, wrong types, unknown fields, broken JSON, oversized bodies;
- 10% whole completions, suggestions and scores.

Meanwhile ``/health`` is polled every 0.2 s. At the end the server must have nothing in flight, have
answered every health check, and its memory must be back near the baseline. Everything stays on
127.0.0.1; the run stops after ``--requests`` or ``--max-seconds``, whichever comes first.

    python -m benchmarks.serving_soak                  # 3,000 requests, a few minutes on two cores
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter
from typing import Any

from benchmarks.environment import machine_info
from benchmarks.loopback import HOST, Server, chunks, head, read_head, request, rss_bytes
from benchmarks.report import fmt_bytes, markdown_table
from benchmarks.results import at_least, benchmark_parser, save_result
from benchmarks.serving import PROMPT

NAME = "serving_soak"
BAD_BODIES = [
    {"prompt": "x", "temperature": -1},
    {"prompt": "x", "top_p": 7},
    {"prompt": "x", "max_tokens": 10**9},
    {"prompt": 12},
    {"prompt": "x", "n": 0},
    {"prompt": "x", "seed": -5},
    {"prompt": "x", "unknown_option": True},
    {"prompt": ["a"] * 500},
]


async def stream(port: int, body: dict[str, Any], hang_up: bool) -> int:
    """A streamed completion; returns the HTTP status. With ``hang_up``, closes after the first event."""
    data = json.dumps(body).encode()
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(head("POST", "/v1/completions", port, data) + data)
        await writer.drain()
        status, _ = await read_head(reader)
        if status == 200:
            async for _ in chunks(reader):
                if hang_up:
                    break
        return status
    finally:
        writer.close()


async def one_request(port: int, rng: random.Random, max_tokens: int) -> str:
    """Send one request of the mix; returns its kind and status, e.g. "stream 200"."""
    roll = rng.random()
    body = {"prompt": PROMPT[: rng.randint(0, len(PROMPT))], "seed": rng.randint(0, 10**6)}
    if roll < 0.60:
        body |= {"max_tokens": rng.randint(5, 60), "stream": True}
        return f"stream {await stream(port, body, hang_up=False)}"
    if roll < 0.75:
        body |= {"max_tokens": max_tokens, "stop_at_end": False, "stream": True}
        return f"hang-up {await stream(port, body, hang_up=True)}"
    if roll < 0.90:
        kind = rng.randrange(len(BAD_BODIES) + 2)
        if kind < len(BAD_BODIES):
            status, _ = await request(port, "POST", "/v1/completions", json.dumps(BAD_BODIES[kind]).encode())
        elif kind == len(BAD_BODIES):
            status, _ = await request(port, "POST", "/v1/completions", b'{"prompt": "x", ')
        else:
            status, _ = await request(port, "POST", "/v1/score", b'{"text": "' + b"a " * 600_000 + b'"}')
        return f"bad {status}"
    path, payload = rng.choice(
        [
            ("/v1/completions", body | {"max_tokens": 20}),
            ("/v1/suggest", {"prompt": body["prompt"], "k": 5}),
            ("/v1/score", {"text": PROMPT}),
        ]
    )
    status, _ = await request(port, "POST", path, json.dumps(payload).encode())
    return f"{path} {status}"


async def soak(port: int, requests: int, clients: int, max_seconds: float, seed: int) -> dict[str, Any]:
    outcomes: Counter[str] = Counter()
    health: list[float] = []
    failures: list[str] = []
    left = requests
    deadline = time.monotonic() + max_seconds
    done = asyncio.Event()

    async def client(i: int) -> None:
        nonlocal left
        rng = random.Random(seed * 1000 + i)
        while left > 0 and time.monotonic() < deadline:
            left -= 1
            try:
                outcomes[await one_request(port, rng, 1000)] += 1
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                outcomes[f"client error {type(exc).__name__}"] += 1

    async def poll() -> None:
        while not done.is_set():
            started = time.perf_counter()
            try:
                status, _ = await asyncio.wait_for(request(port, "GET", "/health"), 5)
                if status != 200:
                    failures.append(f"status {status}")
            except (OSError, asyncio.TimeoutError) as exc:
                failures.append(type(exc).__name__)
            health.append(time.perf_counter() - started)
            await asyncio.sleep(0.2)

    started = time.monotonic()
    poller = asyncio.ensure_future(poll())
    await asyncio.gather(*(client(i) for i in range(clients)))
    done.set()
    await poller
    return {
        "seconds": time.monotonic() - started,
        "requests": sum(outcomes.values()),
        "outcomes": dict(sorted(outcomes.items())),
        "health_checks": len(health),
        "health_failures": failures,
        "health_max_ms": 1000 * max(health, default=0.0),
    }


def _merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    outcomes: Counter[str] = Counter()
    for part in parts:
        outcomes.update(part["outcomes"])
    return {
        "seconds": sum(p["seconds"] for p in parts),
        "requests": sum(p["requests"] for p in parts),
        "outcomes": dict(sorted(outcomes.items())),
        "health_checks": sum(p["health_checks"] for p in parts),
        "health_failures": [f for p in parts for f in p["health_failures"]],
        "health_max_ms": max(p["health_max_ms"] for p in parts),
    }


async def idle(port: int, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        _, data = await request(port, "GET", "/health")
        state = json.loads(data)
        if (state["generations_in_flight"] == 0 and state["sequences"] == 0) or time.monotonic() > deadline:
            return state
        await asyncio.sleep(0.1)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = benchmark_parser("serving_soak", __doc__)
    parser.add_argument("--model", help="the .onnx file (default: $NEXTWORD_MODEL, else the bundled model)")
    parser.add_argument("--requests", type=int, default=3000, help="requests of the soak, after the warm-up")
    parser.add_argument(
        "--warmup", type=int, default=300, help="requests sent before the memory baseline is taken"
    )
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    parser.add_argument("--rounds", type=int, default=3, help="memory is read after each round")
    parser.add_argument(
        "--max-seconds", type=float, default=600, help="stop the warm-up and each round after this long"
    )
    parser.add_argument(
        "--json", metavar="PATH", help="where to write the figures (default: benchmarks/.cache/results/)"
    )
    args = parser.parse_args(argv)
    at_least(parser, 1, {"--requests": args.requests, "--clients": args.clients, "--rounds": args.rounds})
    at_least(parser, 0, {"--warmup": args.warmup})
    if args.max_seconds <= 0:
        parser.error(f"argument --max-seconds: must be more than 0, got {args.max_seconds:g}")
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Warm the server up, soak it in ``--rounds`` rounds; the figures, memory after each round included."""
    server = Server(args.model, [])
    pid = server.process.pid
    try:
        rss_start = rss_bytes(pid)
        warm = asyncio.run(soak(server.port, args.warmup, args.clients, args.max_seconds, seed=1))
        asyncio.run(idle(server.port))
        baseline = peak = rss_bytes(pid)
        rounds: list[int] = []  # RSS after each round: flat if nothing leaks

        async def soak_and_watch(seed: int) -> dict[str, Any]:
            nonlocal peak
            task = asyncio.ensure_future(
                soak(server.port, args.requests // args.rounds, args.clients, args.max_seconds, seed)
            )
            while not task.done():
                peak = max(peak, rss_bytes(pid))
                await asyncio.sleep(0.5)
            await idle(server.port)
            rounds.append(rss_bytes(pid))
            return task.result()

        parts = [asyncio.run(soak_and_watch(seed=2 + r)) for r in range(args.rounds)]
        final_state = asyncio.run(idle(server.port))
        after = rss_bytes(pid)
        alive = server.process.poll() is None
    finally:
        server.stop()
    return {
        "machine": machine_info(),
        "args": vars(args),
        "warmup": warm,
        "soak": _merge(parts),
        "rss": {"start": rss_start, "baseline": baseline, "peak": peak, "after": after, "rounds": rounds},
        "final_health": final_state,
        "server_alive": alive,
    }


def report(data: dict[str, Any]) -> str:
    """The outcomes, the health of the server and its memory, as Markdown tables."""
    result, rss, final_state = data["soak"], data["rss"], data["final_health"]
    rows = [[kind, count] for kind, count in result["outcomes"].items()]
    health = [
        result["requests"],
        f"{result['seconds']:.0f}",
        result["health_checks"],
        len(result["health_failures"]),
        f"{result['health_max_ms']:.0f}",
        final_state["generations_in_flight"],
        "yes" if data["server_alive"] else "NO",
    ]
    baseline, after = rss["baseline"], rss["after"]
    growth = fmt_bytes(after - baseline) if after >= baseline else "-" + fmt_bytes(baseline - after)
    memory = [*(fmt_bytes(rss[k]) for k in ("start", "baseline", "peak", "after")), growth]
    health_headers = ["requests", "seconds", "health checks", "failed", "slowest health ms"]
    memory_headers = ["RSS at start", "after warm-up (baseline)", "peak during soak", "after soak"]
    return "\n\n".join(
        [
            markdown_table(["request, status", "count"], rows, align="lr"),
            markdown_table([*health_headers, "in flight after", "server up"], [health]),
            markdown_table([*memory_headers, "after - baseline"], [memory]),
            "RSS after each round of the soak: " + ", ".join(fmt_bytes(r) for r in rss["rounds"]),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data = run(args)
    save_result(NAME, data, args.json)
    print(report(data))
    ok = data["server_alive"] and not data["soak"]["health_failures"]
    return 0 if ok and data["final_health"]["generations_in_flight"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
