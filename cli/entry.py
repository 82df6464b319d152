"""The ``nextword`` command's entry point. The command line's modules load inside :func:`main`, so a
Ctrl-C while they load (most of a second) ends the command with one line, as it does later on."""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> int:
    """Run ``nextword`` with ``sys.argv``; returns its exit status (130 when interrupted)."""
    try:
        from .main import main as run

        return run()
    except KeyboardInterrupt:  # before a command's own handler took over: importing, parsing
        if sys.stderr is not None:
            print("nextword: interrupted", file=sys.stderr)
        return 130
