"""The one exception of corpus work, and how an operating-system error becomes one."""

from __future__ import annotations

import errno
from pathlib import Path

__all__ = ["OUT_OF_ROOM", "CorpusError", "os_advice", "os_error"]

# A write that found no room: a full disk or quota, or a file-size limit (ulimit -f).
OUT_OF_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class CorpusError(ValueError):
    """A corpus file cannot be read or written as asked; the message names the file, the problem and
    the fix. A ``ValueError``, so the command line reports it in one line with exit status 2."""


_ADVICE = {
    errno.ENOSPC: "free some space or choose another place",
    errno.EDQUOT: "free some space or choose another place",
    errno.EROFS: "the file system is read-only: choose another place",
    errno.EACCES: "check the permissions, or choose another place",
    errno.EPERM: "check the permissions, or choose another place",
    errno.EISDIR: "it is a folder: give the path of a file",
    errno.ENOTDIR: "a part of the path is not a folder",
    errno.EFBIG: "the file outgrew what this file system or the file-size limit (ulimit -f) allows: "
    "choose another place, or raise the limit",
    errno.ENAMETOOLONG: "the name is longer than the file system allows: give a shorter one",
    errno.EBUSY: "the path is in use or a mount point: choose another place",
}


def os_advice(code: int | None) -> str | None:
    """What to do about the operating-system error ``code`` (an ``errno``), or None when nothing
    general can be said."""
    return _ADVICE.get(code or 0)


def os_error(exc: OSError, action: str, path: str | Path) -> CorpusError:
    """A :class:`CorpusError` for ``exc``, raised while ``action`` (``"read"``, ``"write"``) ``path``."""
    reason = exc.strerror or str(exc)
    advice = os_advice(exc.errno)
    return CorpusError(f"cannot {action} {path}: {reason}" + (f"; {advice}" if advice else ""))
