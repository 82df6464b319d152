"""The scratch folder of a multi-worker run's other workers: where a worker that is not the chief keeps
its own copy of the encoded corpus (``$TMPDIR/nextword-worker<index>-<hash of the run folder>``).

A worker holds its folder locked while it trains (an exclusive ``flock``, which ends with the process
however that ends, as :meth:`~nextword.train.files.RunDir.in_use` holds a run folder): a second worker
of the same run on this machine (a second cluster started with the same ``out``, or two workers given
the same index) is refused, instead of clearing and rewriting the files the first one reads. A folder
carries a marker once it is locked; when a worker starts, it removes the marked folders that no worker
holds (those of workers that were killed), its own predecessor's included. Where the platform or the
file system has no such locks (Windows), a worker clears its own folder and leaves the others alone.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Protocol

from .files import RunBusyError

__all__ = ["MARKER", "worker_scratch"]

logger = logging.getLogger(__name__)

PREFIX = "nextword-worker"
MARKER = ".nextword-worker"  # in a locked folder: "nextword made this, for a worker that trains"
_TRIES = 10  # a lock held a moment (the folder's last user ending, another worker clearing it) is waited
_PAUSE = 0.1  # seconds between tries
_FOLDER = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)  # a folder, not a link


class _Worker(Protocol):
    @property
    def index(self) -> int: ...


@contextlib.contextmanager
def worker_scratch(workers: _Worker, out: str) -> Iterator[Path]:
    """The scratch folder of worker ``workers.index`` of the run in ``out``, this user's alone (mode
    700): emptied at the start, removed at the end, held meanwhile (see the module docstring);
    :class:`~nextword.train.files.RunBusyError` where another worker holds it."""
    digest = hashlib.sha1(str(Path(out).resolve()).encode()).hexdigest()[:12]
    base = Path(tempfile.gettempdir())
    root = base / f"{PREFIX}{workers.index}-{digest}"
    fcntl = _fcntl()
    if fcntl is None:  # Windows: unguarded, as run folders are there
        shutil.rmtree(root, ignore_errors=True)
        _make(root)
        try:
            yield root
        finally:
            shutil.rmtree(root, ignore_errors=True)
        return
    _clear_stale(base, fcntl)
    with _held(root, fcntl):
        _empty(root)
        (root / MARKER).write_bytes(b"the scratch folder of a nextword worker; removed when it ends\n")
        try:
            yield root
        finally:
            shutil.rmtree(root, ignore_errors=True)  # still held: nobody else clears or takes it meanwhile


@contextlib.contextmanager
def _held(root: Path, fcntl: ModuleType) -> Iterator[None]:
    """Hold ``root`` (made if missing) locked; :class:`RunBusyError` if another process holds it."""
    for attempt in range(_TRIES):
        _make(root)
        try:
            handle = os.open(root, _FOLDER)
        except FileNotFoundError:  # removed meanwhile by the worker that held it, ending
            continue
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if attempt + 1 < _TRIES:
                    time.sleep(_PAUSE)
                    continue
                raise RunBusyError(
                    f"another worker of this run uses {root} on this machine: a second cluster started "
                    "with the same `out`, or two workers given the same task index in TF_CONFIG; stop it "
                    "or wait for it to end, or choose another `out`"
                ) from None
            except OSError as exc:  # a file system without flock
                logger.debug("cannot lock %s (%s): it is not guarded against a second worker", root, exc)
            if not _same_folder(handle, root):  # removed (and made again?) between its making and the lock
                continue
            yield
            return
        finally:
            os.close(handle)  # releases the lock
    raise RunBusyError(f"{root} was removed each time this worker took it: is another worker clearing it?")


def _fcntl() -> ModuleType | None:
    """The ``fcntl`` module where the platform has it (not on Windows)."""
    try:
        import fcntl
    except ImportError:
        return None
    return fcntl


def _make(root: Path) -> None:
    """Make ``root`` (mode 700: the corpus's ids, on a shared /tmp, are no other user's to read) unless
    it is there; refuse one that is not this user's own folder."""
    for _ in range(_TRIES):
        try:
            root.mkdir(mode=0o700)
            return
        except FileExistsError:
            if _own_folder(root):
                return
        if os.path.lexists(root):  # another user's, a link, a file
            why = "there already, and not a folder this run can clear: remove it or set TMPDIR"
            raise FileExistsError(errno.EEXIST, why, str(root))
        # gone since mkdir found it (its last user, ending, removed it): made again
    raise RunBusyError(f"{root} was removed each time this worker made it: is another worker clearing it?")


def _own_folder(path: Path) -> bool:
    """Whether ``path`` is a folder (not a link to one) that this user owns."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    getuid = getattr(os, "getuid", None)
    return stat.S_ISDIR(info.st_mode) and (getuid is None or info.st_uid == getuid())


def _same_folder(handle: int, root: Path) -> bool:
    """Whether the open folder ``handle`` is still the one at ``root``."""
    try:
        at_path, held = os.lstat(root), os.fstat(handle)
    except OSError:
        return False
    return (at_path.st_dev, at_path.st_ino) == (held.st_dev, held.st_ino)


def _empty(root: Path) -> None:
    """Remove what ``root`` holds: a killed worker's leftovers."""
    for entry in os.scandir(root):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)


def _clear_stale(base: Path, fcntl: ModuleType) -> None:
    """Remove the scratch folders in ``base`` that carry the marker and that no worker holds: those of
    workers that were killed. A folder another process holds, or one without the marker, is left."""
    try:
        candidates = [p for p in base.iterdir() if p.name.startswith(PREFIX)]
    except OSError:
        return
    for folder in candidates:
        if not _own_folder(folder) or not (folder / MARKER).is_file():
            continue
        try:
            handle = os.open(folder, _FOLDER)
        except OSError:
            continue
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _same_folder(handle, folder) and (folder / MARKER).is_file():
                shutil.rmtree(folder, ignore_errors=True)
                logger.info("removed %s, the scratch folder of a worker that was stopped", folder)
        except OSError:  # held by a worker that trains (or no flock here): left alone
            pass
        finally:
            os.close(handle)
