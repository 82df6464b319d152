"""``nextword serve`` in a child process on a free loopback port, a minimal HTTP/1.1 client over raw
asyncio streams (so that a hundred clients cost the measured machine little), and the server process's
memory and CPU time read from /proc (Linux)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

__all__ = [
    "HOST",
    "Server",
    "chunks",
    "cpu_seconds",
    "free_port",
    "head",
    "read_head",
    "request",
    "rss_bytes",
]

HOST = "127.0.0.1"  # everything stays on loopback
SERVE = "import sys; from nextword.cli.main import main; sys.exit(main(sys.argv[1:]))"
START_TIMEOUT_S = 120


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid`` (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` and its threads so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    """``nextword serve`` in a child process on a free loopback port, ready once constructed."""

    def __init__(self, model: str | None, flags: list[str]) -> None:
        self.port = free_port()
        argv = ["serve", "--port", str(self.port), "--log-level", "warning", "--max-streams", "1024", *flags]
        if model:
            argv += ["--model", model]
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVE, "-q", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                assert self.process.stderr is not None  # stderr=subprocess.PIPE
                raise RuntimeError(f"the server exited: {self.process.stderr.read().decode()}")
            try:
                status, _ = asyncio.run(request(self.port, "GET", "/health"))
                if status == 200:
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the server did not start within {START_TIMEOUT_S} s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


async def request(port: int, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    """One whole HTTP/1.1 exchange with the server on ``port``; returns (status, body)."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(head(method, path, port, body) + body)
        await writer.drain()
        status, headers = await read_head(reader)
        if headers.get("transfer-encoding") == "chunked":
            data = b"".join([chunk async for chunk in chunks(reader)])
        else:
            data = await reader.readexactly(int(headers.get("content-length", 0)))
        return status, data
    finally:
        writer.close()


def head(method: str, path: str, port: int, body: bytes, keep_alive: bool = False) -> bytes:
    """The request line and headers of a JSON request with ``body`` (the connection closed after the
    response unless ``keep_alive``)."""
    connection = "keep-alive" if keep_alive else "close"
    return (
        f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: {connection}\r\n\r\n"
    ).encode()


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    """The status and the (lower-cased) headers of a response."""
    status_line = await reader.readline()
    status = int(status_line.split()[1])
    headers = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


async def chunks(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    """The chunks of a chunked response body, as they arrive."""
    while True:
        size = int((await reader.readline()).strip() or b"0", 16)
        if size == 0:
            await reader.readline()  # the blank line that ends the body: the connection may be reused
            return
        yield await reader.readexactly(size)
        await reader.readexactly(2)
