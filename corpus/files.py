"""Crash-safe file writes: a file is written under a temporary name beside its target, then renamed.

Training and export write their files the same way (``nextword.train.files`` builds on this).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["STALE_AFTER_S", "TargetExistsError", "atomic_path", "file_identity", "temporary_names"]

_NAME_MAX = 255  # bytes in one file name, where the file system does not say (ext4, xfs, btrfs, APFS, NTFS)
_RANDOM = 8  # characters mkstemp puts between the prefix and the suffix
#: A temporary file untouched for this long was left by a killed writer (each write touches it).
STALE_AFTER_S = 3600.0

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def atomic_path(target: str | Path, replace: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it is fsynced and renamed onto ``target``.
    With ``replace`` false it only becomes ``target`` where no file is there by then (another process
    may have written one since the caller checked): a ``FileExistsError`` otherwise, nothing replaced.

    On an exception the temporary file is removed and ``target`` is left as it was. An ``OSError``
    names ``target`` (the file the user asked for), never the temporary name: also one raised while the
    temporary file was written without a file name of its own (a full disk, a file-size limit). The
    temporary file stays writable until it is complete; it takes the target's mode (a read-only
    target stays read-only) and, where the process may give it, the target's group just before the
    rename.

    A process killed outright (SIGKILL, the kernel's out-of-memory killer) cannot remove its temporary
    file; after a successful rename, those of the same target untouched for :data:`STALE_AFTER_S` are
    removed (logged). A writer still at work touches its file, so it keeps it.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=_temporary_prefix(target), suffix=f".tmp{target.suffix}", dir=target.parent
        )
    except OSError as exc:  # a read-only or full filesystem: name the file the user asked for
        raise OSError(exc.errno, exc.strerror, str(target)) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with tmp.open("rb+") as f:
            os.fsync(f.fileno())
        _keep_group(tmp, target)  # first: the mode then opens the file to the target's group, no other
        os.chmod(tmp, _file_mode(target))  # mkstemp creates 0600; keep the mode a plain open() would give
        if replace:
            os.replace(tmp, target)
        else:
            _publish_new(tmp, target)
        _remove_stale(target)
    except OSError as exc:
        if exc.errno is not None and (exc.filename is None or tmp_name in (exc.filename, exc.filename2)):
            # the temporary name is ours, not the user's; an error without a name (ENOSPC from a write)
            # happened while the file was written
            raise OSError(exc.errno, exc.strerror, str(target)) from None
        raise
    finally:
        _discard(tmp)  # never raises: an error that brought it here is the one the caller sees


def _discard(tmp: Path) -> None:
    """Remove the temporary file, as far as it can be: made writable first where it cannot be removed
    (it took a read-only target's mode, and Windows removes no read-only file), and left, with a
    warning, where it still cannot; an error here never masks the one that made the write fail."""
    try:
        tmp.unlink(missing_ok=True)
        return
    except OSError:
        pass
    with contextlib.suppress(OSError):
        os.chmod(tmp, 0o600)
    try:
        tmp.unlink(missing_ok=True)
    except OSError as exc:
        logger.warning("could not remove the temporary file %s (%s): delete it yourself", tmp, exc)


def file_identity(stat: os.stat_result) -> tuple[int, int, int]:
    """What tells a file from one written in its place (``stat`` of it): its inode, size and
    modification time."""
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


class TargetExistsError(FileExistsError):
    """:func:`atomic_path` with ``replace`` false found a file at its target by the time it was to
    become it (another process wrote one since the caller checked)."""


def _publish_new(tmp: Path, target: Path) -> None:
    """``tmp`` as ``target`` where no file is there: a hard link, which fails where one is, atomically;
    on a file system without hard links, a check then a rename (a race left open there)."""
    taken = TargetExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(target))
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise taken from None
    except OSError as exc:
        unsupported = (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.EXDEV, errno.ENOSYS)
        # Windows says EINVAL for a file system without hard links (FAT, some SMB shares)
        if exc.errno not in unsupported and not (os.name == "nt" and exc.errno == errno.EINVAL):
            raise
        if os.path.lexists(target):
            raise taken from None
        os.replace(tmp, target)


def temporary_names(target: Path) -> re.Pattern[str]:
    """The names :func:`atomic_path` gives ``target``'s temporary files (mkstemp's: the prefix,
    :data:`_RANDOM` of its characters, the suffix), to find those a killed writer left, and nothing
    else beside it."""
    prefix, suffix = _temporary_prefix(target), f".tmp{target.suffix}"
    return re.compile(f"{re.escape(prefix)}[a-z0-9_]{{{_RANDOM}}}{re.escape(suffix)}")


def _remove_stale(target: Path) -> None:
    """Remove the temporary files of ``target`` that killed writers left (:func:`temporary_names`)."""
    form = temporary_names(target)
    now = time.time()
    with contextlib.suppress(OSError):  # a folder that cannot be listed: nothing to tidy
        for left in target.parent.iterdir():
            if not form.fullmatch(left.name):
                continue
            with contextlib.suppress(OSError):  # gone meanwhile, or not ours to remove
                if now - left.lstat().st_mtime >= STALE_AFTER_S:
                    left.unlink()
                    logger.info(
                        "removed %s, left beside %s by a write that was killed", left.name, target.name
                    )


def _temporary_prefix(target: Path) -> str:
    """``.{stem}.``, the stem shortened so that the temporary name fits where ``target``'s name fits. It
    keeps the target's suffix: Keras insists on ".keras", for one."""
    try:
        name_max = os.pathconf(target.parent, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # Windows has no pathconf
        name_max = _NAME_MAX
    room = name_max - len(os.fsencode(f"..{_RANDOM * 'x'}.tmp{target.suffix}"))
    stem = target.stem
    while stem and len(os.fsencode(stem)) > room:
        stem = stem[:-1]
    return f".{stem}."


def _keep_group(tmp: Path, target: Path) -> None:
    """Give ``tmp`` the group of the file it replaces, where it differs and the process may (a member
    of that group): a model file published to a service's group (0640, group ``svc``) stays readable by
    the service once replaced, where the new file would take the writer's own group."""
    chown = getattr(os, "chown", None)  # not on Windows
    with contextlib.suppress(OSError):  # no target, or a group this process cannot give
        group = target.stat().st_gid
        if chown is not None and tmp.stat().st_gid != group:
            chown(tmp, -1, group)


def _file_mode(target: Path) -> int:
    if target.exists():
        return target.stat().st_mode & 0o777
    return 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask. Linux shows it in ``/proc/self/status``; elsewhere it can only be read by
    setting it, which leaves a moment in which another thread's new files take mode 0666 (a notebook's
    or a trainer's threads write files too), so that is the fallback."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        status = Path("/proc/self/status").read_text(encoding="ascii", errors="replace").splitlines()
        return int(next(line for line in status if line.startswith("Umask:")).split()[1], 8)
    umask = os.umask(0)
    os.umask(umask)
    return umask
