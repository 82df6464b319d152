"""The run folder's lock: a training (a run, a resume, an overwrite) holds it exclusively, so that no other
nextword process trains there meanwhile; an export holds it shared while it reads the run, so that no
training starts there and replaces what it reads (an ``--overwrite`` while an export read gave a model file
of two runs: one corpus's provenance, the other's quality figures).

An advisory ``flock`` on the folder itself: no file is added to it, and the lock ends with the process
however that ends, so a killed process never leaves the folder locked. Where the platform or the file
system has no such locks (Windows; some network file systems), nothing is held, and a message at debug
level says so.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["RunBusyError", "folder_lock"]

logger = logging.getLogger(__name__)


class RunBusyError(FileExistsError):
    """Another process holds the run folder: a training (a run or a resume), or an export that reads it
    (see :meth:`~nextword.train.files.RunDir.in_use`)."""


@contextlib.contextmanager
def folder_lock(root: Path, shared: bool = False) -> Iterator[None]:
    """Hold a ``flock`` on the folder ``root``: exclusive (a training), or with ``shared`` one that other
    readers share (an export). Raises :class:`RunBusyError` where another process holds it in a way that
    excludes this one, its message saying which kind; where the platform or the file system has no
    ``flock``, holds nothing."""
    try:
        import fcntl
    except ImportError:  # Windows, where a folder cannot even be opened like this
        logger.debug("no flock on this platform: %s is not guarded against a second process", root)
        yield
        return
    try:
        handle = os.open(root, os.O_RDONLY)
    except OSError as exc:
        logger.debug("cannot open %s to lock it (%s): it is not guarded against a second process", root, exc)
        yield
        return
    try:
        try:
            fcntl.flock(handle, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunBusyError(_held_by(handle, root, shared)) from None
        except OSError as exc:  # a file system without flock
            logger.debug("cannot lock %s (%s): it is not guarded against a second process", root, exc)
        yield
    finally:
        os.close(handle)  # releases the lock


def _held_by(handle: int, root: Path, shared: bool) -> str:
    """What :class:`RunBusyError` says of the process that holds ``root``: a training, unless a shared
    lock is still to be had (then only exports hold it)."""
    import fcntl

    reading = False
    if not shared:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)  # released with the handle
            reading = True
        except OSError:
            pass
    if reading:
        return (
            f"run folder {root} is being read by a nextword export, and a training started now would "
            "replace what it reads; wait for the export to end, and try again"
        )
    return (
        f"run folder {root} is in use by another nextword training process (a run or a resume that has "
        "not ended); wait for it to end, or stop it, and try again"
    )
