"""The run folder as export reads it: held against a training that would start there meanwhile, and
checked, before the model file is written, for a run that was replaced all the same.

Export holds the folder shared (:meth:`~nextword.train.files.RunDir.reading`), so a ``train
--overwrite`` or ``--resume`` started meanwhile is refused. A run that another process is training is
exported as it is (its best model so far): nothing is held then, and the training may end and another
start there with ``overwrite=True`` before the export is done, which moves the run's files aside and
writes its own. So the files a run writes once, at its start, are compared before and after: another
run found there fails the export, which writes nothing, rather than a model file mixing the two runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from nextword.corpus.files import file_identity
from nextword.train.files import RunDir

from .errors import ExportError

__all__ = ["RunRead", "identity", "reading"]

Identity = tuple[int, int, int]


def identity(path: Path) -> Identity | None:
    """What tells a file from the one saved in its place (inode, size, time); None where there is none."""
    try:
        return file_identity(path.stat())
    except OSError:
        return None


def _instance(run: RunDir) -> tuple[object, ...]:
    """What tells the run in ``run`` from another written there since: the folder itself, and the files
    a run writes once, when it starts (an overwrite writes them anew; a training's epochs do not)."""
    try:
        stat = run.root.stat()
        folder: object = (stat.st_dev, stat.st_ino)
    except OSError:
        folder = None
    return (folder, *(identity(path) for path in (run.marker, run.config, run.tokenizer)))


@dataclass(frozen=True)
class RunRead:
    """A run folder that export reads."""

    run: RunDir
    began: tuple[object, ...]  # the run found when the export began (_instance)

    def check_unchanged(self) -> None:
        """Raise :class:`~nextword.export.ExportError` where the folder holds another run than when the
        export began: what was read may come from both."""
        if _instance(self.run) != self.began:
            raise ExportError(
                f"the run in {self.run.root} was replaced while it was exported (a training started there "
                "with overwrite=True, or the folder was made again), so what was read may mix two runs; "
                "nothing was written: export again"
            )


@contextlib.contextmanager
def reading(run: RunDir) -> Iterator[RunRead]:
    """Hold ``run`` for an export while the block reads it (see the module docstring)."""
    with run.reading():  # True, and nothing held, where another process trains there
        yield RunRead(run, _instance(run))
