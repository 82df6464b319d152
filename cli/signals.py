"""SIGTERM as the command line takes it: raised as :class:`Terminated` where Python next runs code, as
Ctrl-C raises ``KeyboardInterrupt``. Imports nothing, so the entry point installs it before the
command line's modules load."""

from __future__ import annotations

__all__ = ["SIGNALLED", "Terminated", "terminate"]

# Whether a SIGTERM reached terminate(): `nextword serve` as process 1 ends with 143 after a drain that
# uvicorn began on it. uvicorn hands the signal back to terminate() once it has drained; 0.30.3 and
# later swallow what that raises (serve() returns, and this list says why), older ones let it through
# (`nextword serve: terminated`, 143 as well).
SIGNALLED: list[int] = []


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Python next runs code, as Ctrl-C raises KeyboardInterrupt."""


def terminate(signum: int, frame: object) -> None:
    """The command line's SIGTERM handler: raises :class:`Terminated`."""
    SIGNALLED.append(signum)
    raise Terminated
