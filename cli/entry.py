"""The ``nextword`` command's entry point. The command line's modules load inside :func:`main`, so a
Ctrl-C while they load (most of a second) ends the command with one line, as it does later on."""

from __future__ import annotations

import os
import signal
import sys
import threading

from .signals import Terminated, say, terminate

__all__ = ["ONNXRUNTIME_TELEMETRY", "main"]

# onnxruntime 1.29 and later (Linux, macOS and Windows releases) record usage and errors with a device id
# under ~/.cache and upload them, unless this is set before onnxruntime is imported (read then, once)
ONNXRUNTIME_TELEMETRY = "ORT_DISABLE_TELEMETRY"


def main() -> int:
    """Run ``nextword`` with ``sys.argv``; returns its exit status (130 when interrupted, 143 when
    terminated)."""
    # a container's first process: the kernel drops a signal it does not handle, so a stop while the
    # modules load would be lost (signals are taken on the main thread only)
    if os.getpid() == 1 and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, terminate)
    # the command, its server's workers and what it starts run onnxruntime without telemetry, unless the
    # user chose otherwise (ORT_DISABLE_TELEMETRY=0); a library does not touch its caller's environment:
    # a program of your own sets it (docs/security.md)
    os.environ.setdefault(ONNXRUNTIME_TELEMETRY, "1")
    try:
        from .main import main as run

        code = run()
    except KeyboardInterrupt as exc:  # before a command's own handler took over: importing, parsing
        say(f"nextword: {'terminated' if isinstance(exc, Terminated) else 'interrupted'}")
        return 143 if isinstance(exc, Terminated) else 130
    if (serve := sys.modules.get("nextword.cli.serve")) is not None:
        serve.end_now_if_forced(code)  # the process is the command's alone: no caller to return to
    return code
