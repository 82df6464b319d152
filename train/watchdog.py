"""The watchdog of a multi-worker start, and the SIGTERM handler that creating the strategy takes.

While ``MultiWorkerMirroredStrategy`` forms its cluster, TensorFlow waits inside its C++ code holding
the interpreter's lock: no Python thread runs, Python's signal handlers never run (Ctrl-C is only
noted), and the SIGTERM handler TensorFlow installs for its own preemption notices swallows SIGTERM.
A worker whose cluster cannot form (another service at a peer's address, ``TF_CONFIG`` lists that
disagree, a peer that stopped meanwhile) would wait for ever, and one stopped then would not stop.

So :class:`Watchdog` runs a child process from the strategy's creation until the workers' first
exchange (``confirm_workers``); it ends the worker

* after ``peer_timeout`` seconds, saying what to check (the worker ends killed: status 137);
* when a signal that stops a command (SIGINT: Ctrl-C, SIGTERM: ``timeout``, a scheduler; SIGHUP: a
  closed terminal) reaches the process group, the watchdog's too: it says so in one line and ends
  the worker as Ctrl-C ends a program (SIGINT, status 130), killing it if that does not.

For that last step the worker leaves SIGINT at its default action while the watchdog runs (unless
SIGINT is ignored, as for a background job): Ctrl-C then ends it at once, and so does a SIGINT sent
to it alone. Nothing needs cleaning up at that point: the run folder is neither read nor written
before the cluster has formed. Signals that this process ignores (``nohup``) are left ignored.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from typing import Any

__all__ = ["Watchdog", "give_sigterm_back"]

logger = logging.getLogger(__name__)

# The child: argv is the worker's pid, the timeout, the message after it, and the message after a
# signal ("{}": "interrupted" or "terminated"). It leaves quietly once the worker is gone: its parent
# changed (POSIX) or its standard input, a pipe from the worker, closed (everywhere: Windows keeps a
# dead parent's pid, which may be reused). Checked every 0.1 s, so a signal that reaches the group as
# the worker dies of it still gets its line.
_SCRIPT = """
import os, signal, sys, threading, time
STOPS = {"SIGINT": "interrupted", "SIGHUP": "interrupted", "SIGTERM": "terminated"}
HARD = getattr(signal, "SIGKILL", signal.SIGTERM)  # Windows has no SIGKILL: os.kill there always ends it
parent, timeout, late, stopped = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
closed = threading.Event()

def watch_pipe():
    try:
        while os.read(0, 1024):  # the fd, not sys.stdin: its lock, held here, would fail the exit
            pass
    except OSError:  # no pipe: the parent's pid alone tells
        return
    closed.set()

threading.Thread(target=watch_pipe, daemon=True).start()

def alive():
    return os.getppid() == parent and not closed.is_set()

def say(text):
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError):  # no terminal left (SIGHUP)
        pass

def end_parent(grace):
    if not alive():  # gone already (a group's SIGINT ends it at once)
        return
    if grace and hasattr(signal, "SIGKILL"):  # SIGINT, at its default in the worker: as Ctrl-C ends it
        try:
            os.kill(parent, signal.SIGINT)
        except OSError:
            return
        waited = 0.0
        while alive() and waited < grace:
            time.sleep(0.05)
            waited += 0.05
    if alive():
        try:
            os.kill(parent, HARD)
        except OSError:
            pass

def on_signal(signum, frame):
    say(stopped.format(STOPS.get(signal.Signals(signum).name, "interrupted")))
    end_parent(grace=2.0)
    os._exit(128 + signum)

for name in STOPS:
    number = getattr(signal, name, None)
    if number is not None and signal.getsignal(number) is not signal.SIG_IGN:  # nohup's stays ignored
        signal.signal(number, on_signal)
deadline = time.monotonic() + timeout
while alive():  # the worker cancels this process once its cluster has formed
    if time.monotonic() >= deadline:
        say(late)
        end_parent(grace=0)
        break
    time.sleep(0.1)
os._exit(0)
"""


class Watchdog:
    """The child process of the module docstring, for the worker messages call ``name`` (``worker 1``)
    in a cluster whose other workers are at ``others``; :meth:`cancel` once the cluster has formed (or
    failed otherwise)."""

    def __init__(self, name: str, others: list[str], timeout: float) -> None:
        late = (
            f"nextword train: error: {name} could not form the cluster within {timeout:g} s although "
            f"every address answered ({', '.join(others)}): another service may be listening at one of "
            "them, or the workers' TF_CONFIG differ (every worker needs the same cluster list, in the same "
            "order, and its own index), or another worker stopped while the cluster formed; restart every "
            "worker, after checking TF_CONFIG on each (peer_timeout, --peer-timeout: the wait)\n"
        )
        stopped = "nextword train: {} while the cluster formed\n"
        self._sigint: Any = _sigint_to_default()
        try:
            self._child: subprocess.Popen[bytes] | None = subprocess.Popen(
                [sys.executable, "-c", _SCRIPT, str(os.getpid()), str(timeout), late, stopped],
                stdin=subprocess.PIPE,  # its end closes when this process ends, however it ends
                stdout=subprocess.DEVNULL,
            )
        except OSError as exc:  # no process left to start: the wait is TensorFlow's, without limit
            logger.warning(
                "cannot start the watchdog of the cluster's start-up (%s): a cluster that cannot form "
                "keeps this worker waiting",
                exc,
            )
            self._child = None

    def cancel(self) -> None:
        """Stop the child, and give SIGINT its handler back."""
        if self._child is not None:
            self._child.kill()
            self._child.wait()
            if self._child.stdin is not None:
                self._child.stdin.close()
            self._child = None
        if self._sigint is not None:
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, self._sigint)
            self._sigint = None


def _sigint_to_default() -> Any:
    """Put SIGINT at its default action (see the module docstring) and return the handler it had, or
    None where it is left alone: ignored, not Python's to set, or not this thread's to change."""
    if threading.current_thread() is not threading.main_thread():
        return None
    handler = signal.getsignal(signal.SIGINT)
    if handler in (signal.SIG_IGN, signal.SIG_DFL, None):
        return None
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    return handler


def give_sigterm_back() -> None:
    """Put Python's SIGTERM handler back at the C level: creating ``MultiWorkerMirroredStrategy``
    installs TensorFlow's own there (``signal.getsignal`` still names Python's, which then never runs),
    so SIGTERM was ignored and ``timeout`` or a scheduler could not stop a worker."""
    handler = signal.getsignal(signal.SIGTERM)
    if handler is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
