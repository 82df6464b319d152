"""Replacing a run (``overwrite``) without losing either: the previous run's files are set aside beside
the folder until the new run's first checkpoint, and come back if it stops before that. Files move with
Ctrl-C, SIGTERM and SIGHUP held until they have all moved, so that no signal leaves a run split between
the two folders."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from nextword.runtime.model_check import RUN_MARKER

__all__ = ["Replacing", "RunExistsError", "signals_held"]

logger = logging.getLogger(__name__)

_HANGUP = (signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ()  # a closed terminal's; Windows has none


class _Run(Protocol):  # what Replacing needs of the RunDir it is part of
    root: Path
    _marked_here: bool
    _aside: Path | None

    @property
    def checkpoint(self) -> Path: ...

    @property
    def aside(self) -> Path: ...

    def check_replaceable(self) -> None: ...

    def check_aside_free(self) -> None: ...

    def clear(self) -> None: ...

    def drop_aside(self) -> None: ...

    def _put_back(self) -> bool: ...


# The attribute that an exception which stopped a replacing run before its first checkpoint carries once
# the run it replaced is back in the folder (the folder's path): what to do next is about that run.
RESTORED = "nextword_replaced_run_restored"


class RunExistsError(FileExistsError):
    """The run folder already holds a run; the message says how to resume or replace it."""


class Replacing:
    """The part of :class:`~.files.RunDir` that replaces a run: :meth:`set_aside`, then
    :meth:`drop_aside` at the new run's first checkpoint, or the old run put back by
    :meth:`discarded_before_checkpoint` when the new one stops before it."""

    root: Path
    _marked_here: bool  # set by RunDir.mark(): this process made the run
    _aside: Path | None  # where set_aside() keeps the run this one replaces

    @contextlib.contextmanager
    def discarded_before_checkpoint(self: _Run) -> Iterator[None]:
        """Remove the run's files again when the block fails (any exception, Ctrl-C too) after
        :meth:`mark` made this folder a run and before its first checkpoint: nothing in it could be
        resumed, and a folder of its leftovers (a marker and a tokenizer, after a full disk) would only
        be refused by the next run. A folder :meth:`in_use` made goes with them, and the run that
        :meth:`set_aside` kept comes back; at a checkpoint, or at the block's end, it is deleted."""
        try:
            yield
        except BaseException as exc:
            if not self.checkpoint.is_file():
                cleared = False
                try:
                    with signals_held():  # a second Ctrl-C must not leave half of the old run aside
                        if self._marked_here:
                            self.clear()  # only what a run writes; a file of the user's keeps everything
                            logger.info(
                                "%s: stopped before its first checkpoint; its files are removed", self.root
                            )
                        cleared = True
                        if self._put_back():  # the advice on the exception is then about that run
                            with contextlib.suppress(AttributeError, TypeError):
                                setattr(exc, RESTORED, str(self.root))
                except OSError as exc:
                    if cleared:  # the run's own files are gone; the one it replaced could not come back
                        logger.warning(
                            "%s stopped before its first checkpoint, and the run it replaced could not be "
                            "moved back from %s (%s): move its files back into the folder once it can be "
                            "written, or delete %s",
                            self.root,
                            self._aside,
                            exc,
                            self._aside,
                        )
                    else:
                        back = f"; the run it replaced is in {self._aside}" if self._aside else ""
                        logger.warning(
                            "%s stopped before its first checkpoint and its files could not be removed "
                            "(%s): remove what nextword did not write from it and start the run again with "
                            "overwrite=True, or choose another `out`%s",
                            self.root,
                            exc,
                            back,
                        )
            else:
                self.drop_aside()
            raise
        self.drop_aside()

    @property
    def aside(self: _Run) -> Path:
        """The folder beside this one where :meth:`set_aside` keeps the run that a new one replaces (a
        run folder given as ``.`` too: beside the current folder, not inside it; one given as a link:
        beside the folder it links to, on the same disk)."""
        root = self.root.resolve()  # a link to a run folder elsewhere: beside the folder, on its disk
        return root.parent / f".{root.name}.replaced"

    def check_aside_free(self: _Run) -> None:
        """Raise :class:`RunExistsError` where :attr:`aside` holds a run already (an overwrite killed
        before its first checkpoint left it): it is never deleted unasked. Checked before the corpus is
        read, and again when the run is set aside."""
        aside = self.aside
        if self.checkpoint.is_file() and aside.is_dir():  # killed as the new run dropped it: done with
            raise RunExistsError(
                f"{aside} holds the run that an overwrite of {self.root} replaced, which the run there (it "
                f"has a checkpoint) no longer needs: delete {aside}, then start again"
            )
        if aside.exists() or aside.is_symlink():
            raise RunExistsError(
                f"{aside} holds the run that an interrupted overwrite of {self.root} set aside; to keep "
                f"that run, move its files back into {self.root} (replacing those there), else delete "
                f"{aside}; then start again"
            )

    def set_aside(self: _Run) -> None:
        """Move the previous run's files (see :meth:`check_replaceable`) out of the folder, into
        :attr:`aside`, for a new run to replace it: they stay there until the new run writes its first
        checkpoint (:meth:`drop_aside`), and come back if it stops before that
        (:meth:`discarded_before_checkpoint`), so an interrupted ``overwrite`` loses neither run. Where
        they cannot be moved (the folder is a mount point, its parent is read-only), nothing is
        deleted: :class:`RunExistsError` says so, and what to do."""
        self.check_replaceable()
        self.check_aside_free()
        aside, moved = self.aside, []
        with signals_held():  # all of its files move, or none
            try:
                aside.mkdir()
                # the checkpoint first and the marker last: a folder cut part way holds no checkpoint
                # (check_aside_free then says to move the run back) and is no run to replace
                first, last = self.checkpoint.name, RUN_MARKER
                for entry in sorted(os.scandir(self.root), key=lambda e: (e.name != first, e.name == last)):
                    os.rename(entry.path, aside / entry.name)
                    moved.append(entry.name)
            except OSError as exc:
                for name in moved:
                    os.rename(aside / name, self.root / name)
                with contextlib.suppress(OSError):
                    aside.rmdir()
                raise RunExistsError(
                    f"overwrite=True keeps the run in {self.root} beside it, in {aside}, until the new "
                    f"run's first checkpoint, and it cannot be moved there ({exc.strerror or exc}); "
                    f"nothing was deleted. Delete the old run yourself (its files in {self.root}) to "
                    "replace it, or choose another `out`"
                ) from None
            self._aside = aside
        logger.info("the run in %s is kept in %s until this run's first checkpoint", self.root, aside)

    def drop_aside(self: _Run) -> None:
        """Delete the run :meth:`set_aside` kept, now that the new one has a checkpoint (or has ended)."""
        if self._aside is not None:
            shutil.rmtree(self._aside, ignore_errors=True)
            logger.info("the replaced run in %s is deleted", self._aside)
            self._aside = None

    def _put_back(self: _Run) -> bool:
        """Move the run :meth:`set_aside` kept back into the folder (which the new run left empty); True
        if there was one."""
        if self._aside is None:
            return False
        # the checkpoint last: a folder cut part way holds none, and the advice is to move the rest back
        for entry in sorted(os.scandir(self._aside), key=lambda e: e.name == self.checkpoint.name):
            os.rename(entry.path, self.root / entry.name)
        self._aside.rmdir()
        logger.info("%s holds the run it held before again", self.root)
        self._aside = None
        return True


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold Ctrl-C, SIGTERM and SIGHUP (where there is one) until the block ends, then act on each that
    came, in order (raise ``KeyboardInterrupt``, or whatever the handler before does): a block that moves
    files is never cut half way. On the main thread only, where signals are taken; a signal ignored, or
    handled by code outside Python, is left as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []

    def hold(signum: int, frame: Any) -> None:
        held.append(signum)

    before = {
        sig: handler
        for sig in (signal.SIGINT, signal.SIGTERM, *_HANGUP)
        if (handler := signal.getsignal(sig)) is not None and handler is not signal.SIG_IGN
    }
    first: BaseException | None = None  # what a handler raised while handlers changed: raised at the end
    for sig in before:
        raised = _put(sig, hold)  # always put: `first or _put()` would skip it
        first = first or raised
    try:
        if first is None:  # else the signal came before the block: it does not run
            yield
    finally:
        for sig, handler in before.items():
            raised = _put(sig, handler)
            first = first or raised
        for came in dict.fromkeys(held):  # each that came, once
            try:
                signal.raise_signal(came)
            except BaseException as exc:  # the first is raised below
                first = first or exc
        if first is not None:
            raise first


def _put(sig: int, handler: Any) -> BaseException | None:
    """Install ``handler`` for ``sig``. A signal that comes meanwhile runs its handler as
    signal.signal() begins, before the change: try again (a few times at most), and return the first
    exception such a handler raised."""
    first = None
    for _ in range(10):
        if signal.getsignal(sig) is handler:
            break
        try:
            signal.signal(sig, handler)
        except BaseException as exc:
            first = first or exc
    return first
