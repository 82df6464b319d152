"""Crash-safe file writes: a file is written under a temporary name beside its target, then renamed.

Training and export write their files the same way (``nextword.train.files`` builds on this).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path"]


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it is fsynced and renamed onto ``target``.

    On an exception the temporary file is removed and ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # The temporary name keeps the target's suffix: Keras insists on ".keras", for one.
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=target.parent
        )
    except OSError as exc:  # a read-only or full filesystem: name the file the user asked for
        raise OSError(exc.errno, exc.strerror, str(target)) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, _file_mode(target))  # mkstemp creates 0600; keep the mode a plain open() would give
        yield tmp
        with tmp.open("rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        if tmp_name in (exc.filename, exc.filename2):  # the temporary name is ours, not the user's
            raise OSError(exc.errno, exc.strerror, str(target)) from None
        raise
    finally:
        tmp.unlink(missing_ok=True)


def _file_mode(target: Path) -> int:
    if target.exists():
        return target.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask
