"""The ``nextword`` command's entry point. The command line's modules load inside :func:`main`, so a
Ctrl-C while they load (most of a second) ends the command with one line, as it does later on."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading

from .signals import OUT_OF_MEMORY, how_ended, say, terminate
from .telemetry import telemetry_off

__all__ = ["main"]


def main() -> int:
    """Run ``nextword`` with ``sys.argv``; returns its exit status (130 when interrupted, 143 when
    terminated, 129 when hung up)."""
    # In an app frozen with PyInstaller, `serve --workers N` starts each worker (and multiprocessing's
    # resource tracker) by running the app's executable again with multiprocessing's own arguments:
    # this runs that process's part and exits, where the command would refuse the arguments. Elsewhere
    # it does nothing.
    multiprocessing.freeze_support()
    # a container's first process: the kernel drops a signal it does not handle, so a stop while the
    # modules load would be lost (signals are taken on the main thread only)
    if os.getpid() == 1 and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, terminate)
    telemetry_off()  # the command, its server's workers and what it starts (cli/telemetry.py)
    try:
        try:
            from .main import main as run
        except ImportError as exc:  # a broken install (onnxruntime's, say): its message names the fix
            if (exc.name or "").startswith("nextword"):
                raise  # nextword's own module: a bug, with its traceback
            mapped = "failed to map segment" in str(exc)  # a library loaded past a memory limit
            limit = " (this process's memory limit, ulimit -v or a container's, is likely too low)"
            say(f"nextword: error: {exc}{limit if mapped else ''}")
            return 2
        except MemoryError:  # the libraries themselves did not fit (ulimit -v)
            say(f"nextword: failed: {OUT_OF_MEMORY}")
            return 1
        code = run()
    except KeyboardInterrupt as exc:  # before a command's own handler took over: importing, parsing
        ended, status = how_ended(exc)
        say(f"nextword: {ended}")
        return status
    if (serve := sys.modules.get("nextword.cli.serve")) is not None:
        serve.end_now_if_forced(code)  # the process is the command's alone: no caller to return to
    return code
