"""The ``if __name__ == "__main__":`` guard that a script calling ``serve()`` with ``workers > 1`` needs.

uvicorn starts its workers with multiprocessing's "spawn" method, on every platform, and a spawned
process first runs its parent's main script again (as ``__mp_main__``) to find what the script defines.
Where the script's ``serve()`` call is not under the guard, each worker calls ``serve()`` again while it
is still starting (multiprocessing's bootstrapping phase): uvicorn then fails there with
multiprocessing's "An attempt has been made to start a new process before the current process has
finished its bootstrapping phase", its supervisor starts the worker again, and nothing is ever served.

Such a worker now stops at once (:func:`exit_if_bootstrapping`) with uvicorn's exit status for a worker
that cannot start, which stops the supervisor (uvicorn 0.50 and later), after leaving the reason in the
file that the supervising process names in :data:`REPORT_ENV`; :func:`said_by_workers` raises it there.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "REPORT_ENV",
    "STARTUP_FAILURE",
    "UnguardedScriptError",
    "exit_if_bootstrapping",
    "said_by_workers",
]

logger = logging.getLogger(__name__)

#: the file where a worker that re-ran a script without the guard says so, for the supervising process
REPORT_ENV = "NEXTWORD_SERVE_UNGUARDED"
#: uvicorn's exit status for a worker that cannot start (``uvicorn.config.STARTUP_FAILURE``)
STARTUP_FAILURE = 3


class UnguardedScriptError(RuntimeError):
    """``serve()`` with ``workers > 1`` was called at the top level of a script, outside
    ``if __name__ == "__main__":``, so each worker process called it again as it started."""


def _bootstrapping() -> bool:
    """Whether this process is a spawned child (multiprocessing) still running its parent's main script
    as it starts: what that script does at its top level, it does again here. (``parent_process()``
    is still None then: it is set once the process has started.)"""
    if getattr(multiprocessing.current_process(), "_inheriting", False):  # what multiprocessing checks
        return True
    running = sys.modules.get("__mp_main__")  # the script, while it runs (runpy's temporary module)
    return running is not None and running is not sys.modules.get("__main__")


def _message() -> str:
    script = getattr(sys.modules.get("__mp_main__"), "__file__", None)
    return (
        f"serve() with workers > 1 was called again in each worker process, which runs the main script"
        f"{f' {script}' if script else ''} again as it starts (uvicorn starts its workers with "
        'multiprocessing\'s spawn): put the serve() call under `if __name__ == "__main__":` '
        "(docs/serving.md)"
    )


def exit_if_bootstrapping() -> None:
    """In a worker that re-ran a script without the guard: say why (in the log, and in the file
    :data:`REPORT_ENV` names) and exit with :data:`STARTUP_FAILURE`; elsewhere, nothing."""
    if not _bootstrapping():
        return
    message = _message()
    report = os.environ.get(REPORT_ENV)
    if report:
        with contextlib.suppress(OSError):
            Path(report).write_text(message, encoding="utf-8")
    logger.error("%s", message)
    raise SystemExit(STARTUP_FAILURE)  # an exception would exit 1, which uvicorn restarts forever


@contextlib.contextmanager
def said_by_workers() -> Iterator[None]:
    """For the supervising process, around uvicorn's run: :data:`REPORT_ENV` names an empty file meanwhile,
    and where a worker wrote to it (:func:`exit_if_bootstrapping`), an :class:`UnguardedScriptError` with
    what it said replaces the error the block ended with (a worker failed to start) or its return."""
    handle, name = tempfile.mkstemp(prefix="nextword-serve-", suffix=".txt")
    os.close(handle)
    earlier = os.environ.get(REPORT_ENV)
    os.environ[REPORT_ENV] = name
    try:
        try:
            yield
        except Exception:
            _raise_said(name)
            raise
        _raise_said(name)
    finally:
        if earlier is None:
            os.environ.pop(REPORT_ENV, None)
        else:
            os.environ[REPORT_ENV] = earlier
        with contextlib.suppress(OSError):
            os.unlink(name)


def _raise_said(name: str) -> None:
    try:
        said = Path(name).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return
    if said:
        raise UnguardedScriptError(said) from None
