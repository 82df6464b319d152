"""Paths the user gives, checked before they are used: a symbolic link that points to itself, and a
file where a run folder belongs, each refused with a message that names the path and the fix.

``Path.resolve()`` meets a looping link with ``RuntimeError("Symlink loop from ...")``, which the
command line reports as a failed check; ``Path.exists()`` answers False, which reads as "does not
exist" when the path is there."""

from __future__ import annotations

import errno
import os
from pathlib import Path

__all__ = ["GIVE_FOLDER", "GIVE_RUN", "loop_message", "looping_link", "not_a_run_folder", "resolved"]

GIVE_FOLDER = "give the run folder that training wrote"
GIVE_RUN = f"{GIVE_FOLDER} (its `out`)"  # where `out` is no option of the command itself


def looping_link(path: str | Path) -> Path | None:
    """The symbolic link that loops on the way to ``path`` (``path`` itself, or a folder above it), or
    None when ``path`` has none."""
    try:
        os.stat(path)
        return None
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            return None
    full = Path(path).absolute()  # not normalized: `..` after a link is the link's parent
    for part in (*reversed(full.parents), full):
        try:
            os.stat(part)
        except OSError as exc:
            return part if exc.errno == errno.ELOOP else full
    return full


def loop_message(named: str, path: str | Path, link: Path, other: str = "") -> str:
    """``{named} is a symbolic link that points to itself (a loop): fix the link``, ``named`` naming
    ``path`` (``corpus file PATH``, say); the link on its way is named where it is not ``path`` itself,
    and ``or {other}`` follows the fix."""
    if link == Path(path).absolute():
        where = f"{named} is a symbolic link"
    else:
        where = f"{named} goes through {link}, a symbolic link"
    return f"{where} that points to itself (a loop): fix the link" + (f", or {other}" if other else "")


def resolved(path: str | Path, what: str, error: type[Exception] = ValueError, other: str = "") -> Path:
    """``Path(path).resolve()``, or ``error`` (:func:`loop_message`, ``path`` named as ``{what} {path}``)
    where a link on the way loops."""
    link = looping_link(path)
    if link is None:
        try:
            return Path(path).resolve()
        except RuntimeError:  # a link made into a loop since: named as one all the same
            link = Path(path).absolute()
    raise error(loop_message(f"{what} {path}", path, link, other))


def not_a_run_folder(root: Path, give: str = GIVE_RUN) -> Exception | None:
    """Why ``root``, given as a run folder, cannot be one although something is there: a link that loops
    (``ValueError``), or a file or other non-folder (``NotADirectoryError``); None where ``root`` is a
    folder or nothing."""
    link = looping_link(root)
    if link is not None:
        return ValueError(loop_message(f"run folder {root}", root, link, give))
    if root.exists() and not root.is_dir():
        what = "a file" if root.is_file() else "not a folder"
        return NotADirectoryError(f"{root} is {what}, not a run folder; {give}")
    return None
