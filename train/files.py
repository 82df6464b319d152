"""The run folder and crash-safe file writes.

A run folder holds::

    config.json      the resolved TrainConfig plus the vocabulary size, the replicas and global batch
                     the run started with, and package versions
    tokenizer.json   the tokenizer built from the training split
    model.keras      the best model so far (lowest validation loss)
    checkpoint.keras the model after the last finished epoch or the last ``checkpoint_steps`` steps
                     within one, with optimizer state (for --resume)
    metrics.json     per-epoch metrics and the best epoch
    samples.json     beginnings of a few validation documents: real prompts for the export parity check
    train.ids        the training documents encoded: ``<eod> doc <eod> ... <eod>``, raw little-endian
                     int32 ids (4 bytes a word); the training windows are read from it
    val.ids          the validation documents, the same way
    dev.ids          the development part: training documents held out of training, the same way
                     (config.json's ``data`` records the words of each id file: ids minus one)
    .nextword-run    the marker that says "nextword wrote this folder": ``--overwrite`` replaces only
                     folders that carry it, and removes only the files listed here

Every file is written to a temporary name in the same folder and renamed into place, so a crash never
leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from nextword.corpus.encode import STREAM_DTYPE
from nextword.corpus.files import atomic_path, temporary_names
from nextword.runtime.model_check import RUN_MARKER  # load() names a run folder given as a model
from nextword.runtime.tokenizer import Tokenizer

from .atomic import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json
from .config import TrainConfig
from .folder_lock import RunBusyError, folder_lock
from .paths import GIVE_FOLDER, not_a_run_folder
from .replacing import Replacing, RunExistsError

__all__ = [
    "ID_FILE_COUNTS",
    "RUN_MARKER",
    "RUN_ONLY_KEYS",
    "SAVING",
    "RunBusyError",
    "RunDir",
    "RunExistsError",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "read_json",
]


RUN_ONLY_KEYS = (
    "vocab_size",
    "data",
    "training",
    "versions",
    "command",
    "corpus_files",
    "base",
)  # config.json keys that are facts of the run, not settings


# metrics.json's key naming the epoch whose checkpoint and best model are still being written: export
# refuses such a run until --resume mends it (see recorder.RunRecorder)
SAVING = "saving_epoch"
# Every name a run writes (the marker last of all): what --overwrite may remove, and nothing else.
RUN_FILES = (
    "config.json",
    "tokenizer.json",
    "model.keras",
    "checkpoint.keras",
    "metrics.json",
    "samples.json",
    "train.ids",
    "val.ids",
    "dev.ids",
)
# The keys of config.json's ``data`` that describe the id files' contents; written again whenever the
# files are.
ID_FILE_COUNTS = (
    "train_documents",
    "train_words",
    "val_documents",
    "val_words",
    "dev_documents",
    "dev_words",
)
# A run whose tokenizer.json is gone: its weights index a vocabulary no file holds any more.
_LOST_VOCABULARY = (
    "the run's vocabulary, which its weights are indexed by, is lost with it; restore tokenizer.json from "
    "a copy of the folder, or train the run again"
)


# Keras's saving_lib writes a large model's weights to tempfile.NamedTemporaryFile(dir=the model's
# folder) first: mkstemp's "tmp" and 8 characters
_KERAS_SPILL = re.compile(r"tmp[a-z0-9_]{8}")
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# What file browsers leave in any folder they show (compared ignoring case): macOS Finder's .DS_Store,
# Windows Explorer's Thumbs.db and desktop.ini, and "._NAME" AppleDouble files (macOS on a drive
# without extended attributes). A folder holding only these is empty for a run, and --overwrite
# removes them with the run's files.
_OS_METADATA = frozenset({".ds_store", "thumbs.db", "ehthumbs.db", "desktop.ini"})

logger = logging.getLogger(__name__)


class NotARunError(FileExistsError):
    """A folder is not a nextword run folder, so nextword will neither delete anything in it nor resume
    it."""


class RunDir(Replacing):
    """Paths inside one run folder; replacing the run it holds (:class:`~.replacing.Replacing`)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._marked_here = False  # whether mark() wrote the marker: this process made the run
        self._aside: Path | None = None  # where set_aside() keeps the run this one replaces

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def tokenizer(self) -> Path:
        return self.root / "tokenizer.json"

    @property
    def model(self) -> Path:
        return self.root / "model.keras"

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoint.keras"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def samples(self) -> Path:
        return self.root / "samples.json"

    @property
    def train_ids(self) -> Path:
        return self.root / "train.ids"

    @property
    def val_ids(self) -> Path:
        return self.root / "val.ids"

    @property
    def dev_ids(self) -> Path:
        return self.root / "dev.ids"

    @property
    def marker(self) -> Path:
        return self.root / RUN_MARKER

    def mark(self) -> None:
        """Create the folder and its marker: from now on it is a run folder that --overwrite may clear."""
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.marker.is_file():
            atomic_write_json(self.marker, {"nextword_run": 1})
            self._marked_here = True

    @contextlib.contextmanager
    def in_use(self) -> Iterator[None]:
        """Hold the folder for this process while it trains: a second training process (a run, a
        ``--resume``, an ``--overwrite`` of it) is refused with :class:`RunBusyError` before it reads or
        deletes anything, instead of writing the same files, and so is a training while an export reads
        the run (:meth:`reading`).

        An exclusive advisory lock (``flock``) on the folder itself (:mod:`~.folder_lock`): no file is
        added to it, and the lock ends with the process however that ends, so a killed run never leaves
        the folder locked. The folders made here for the lock (the run folder, and any missing above it)
        are removed again if they are still empty when the block ends. Where the file system or the
        platform has no such locks (Windows; some network file systems), runs are not guarded, and a
        message at debug level says so.
        """
        made = [f for f in (self.root, *self.root.parents) if not f.exists()]  # deepest first
        self.root.mkdir(parents=True, exist_ok=True)
        held = False  # refused, this process leaves the folders alone: another may have just locked them
        try:
            with folder_lock(self.root):
                held = True
                yield
        finally:
            for folder in made if held else ():
                try:
                    folder.rmdir()
                except OSError:  # not empty (the run began) or already gone: it stays, and those above
                    break

    @contextlib.contextmanager
    def reading(self) -> Iterator[bool]:
        """Hold the folder shared while this process reads the run (an export): a training that would
        start meanwhile, and replace what is read, is refused (:meth:`in_use`); other readers are not.
        Yields False; True where a training process holds the folder now (nothing is held then: an
        export reads its best model so far)."""
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(folder_lock(self.root, shared=True))
                training = False
            except RunBusyError:
                training = True
            yield training

    def check_free(self) -> None:
        """Raise :class:`RunBusyError` where another process holds the folder now: a training, or an
        export that reads it (see :meth:`in_use`)."""
        if self.root.is_dir():
            with folder_lock(self.root):
                pass

    def busy(self) -> bool:
        """Whether a training process holds the folder now (see :meth:`in_use`); an export that reads
        it does not count."""
        try:
            with folder_lock(self.root, shared=True):
                return False
        except RunBusyError:
            return True

    def is_run(self) -> bool:
        """Whether the folder carries the marker, or is a run written before markers existed (it holds
        a ``config.json`` and a ``tokenizer.json`` and nothing but run files)."""
        if self.marker.is_file():
            return True
        return self.config.is_file() and self.tokenizer.is_file() and not self.foreign_entries()

    def entries(self) -> list[str]:
        """The names in the folder (sorted), but the file browsers' metadata files (``.DS_Store``,
        ``._NAME``, ``Thumbs.db``, ``desktop.ini``): a folder with none holds nothing of anyone's."""
        return sorted(entry.name for entry in os.scandir(self.root) if not _os_metadata(entry))

    def foreign_entries(self) -> list[str]:
        """Names in the folder that a run never writes (sorted): anything but plain run files, leftover
        temporaries and the file browsers' metadata files (see :meth:`entries`). Links and folders
        always count as foreign, whatever their name."""
        foreign, leftovers = [], {path.name for path in self.temporaries()}
        for entry in os.scandir(self.root):
            if _os_metadata(entry):
                continue
            known = entry.name in RUN_FILES or entry.name == RUN_MARKER or entry.name in leftovers
            if not known or not entry.is_file(follow_symlinks=False):
                foreign.append(entry.name)
        return sorted(foreign)

    def temporaries(self) -> list[Path]:
        """The temporary files that a killed process left while it wrote one of the run's files
        (:func:`~nextword.corpus.files.temporary_names`), and Keras's own while it saved a model whose
        weights it thought too large for memory (``tmpXXXXXXXX``, an HDF5 file or an empty one): those
        names only, not any name with ".tmp"."""
        forms = [temporary_names(self.root / name) for name in (*RUN_FILES, RUN_MARKER)]
        with contextlib.suppress(OSError):
            return sorted(
                p
                for p in self.root.iterdir()
                if any(f.fullmatch(p.name) for f in forms) or (_KERAS_SPILL.fullmatch(p.name) and _hdf5(p))
            )
        return []

    def check_replaceable(self) -> None:
        """Raise :class:`NotARunError` unless :meth:`clear` would remove everything in the folder.

        ``--overwrite`` replaces a previous run, never a folder of the user's own files: a folder
        without the marker, or with anything a run does not write, is refused and left untouched.
        """
        if not self.is_run():
            raise NotARunError(
                f"{self.root} is not a nextword run folder (it has no {RUN_MARKER} marker), so "
                "overwrite=True will not delete anything in it; choose an empty or new folder for `out`"
            )
        foreign = self.foreign_entries()
        if foreign:
            raise NotARunError(
                f"{self.root} holds files that nextword did not write ({listed(foreign)}), so "
                "overwrite=True will not replace it; move them out of the folder or choose another `out`"
            )

    def clear(self) -> None:
        """Remove the files a run wrote (see :meth:`check_replaceable`) and the file browsers' metadata
        files (:meth:`entries`), the marker last; the folder itself stays. Files of any other name are
        never touched."""
        self.check_replaceable()
        for entry in os.scandir(self.root):
            if entry.name != RUN_MARKER:
                Path(entry.path).unlink(missing_ok=True)
        self.marker.unlink(missing_ok=True)

    def require_trained(self) -> None:
        """Raise ``FileNotFoundError`` naming what is missing unless the folder holds a trained model."""
        if (wrong := not_a_run_folder(self.root, GIVE_FOLDER)) is not None:  # a file, or a link that loops
            raise wrong
        if not self.root.is_dir():
            raise FileNotFoundError(f"run folder {self.root} does not exist; train a run there first")
        missing = [p.name for p in (self.config, self.tokenizer, self.model) if not p.is_file()]
        if missing:
            trained = self.model.is_file() or self.checkpoint.is_file()
            if self.tokenizer.name in missing and trained:  # weights whose vocabulary is gone
                raise FileNotFoundError(f"run folder {self.root} lacks {missing}: {_LOST_VOCABULARY}")
            resumable = self.checkpoint.is_file() and self.config.is_file()
            how = f": continue it with `nextword.train.resume({str(self.root)!r})`" if resumable else ""
            raise FileNotFoundError(
                f"run folder {self.root} lacks {missing}: it is not a finished nextword training run{how}"
            )

    def check_id_files(self, data: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` naming the file and the fix if an id file that exists does not hold the
        words that ``data`` (config.json's ``data``) records for it: ``train.ids`` must be
        ``train_words + 1`` ids long, ``val.ids`` and ``dev.ids`` likewise.

        A truncated file that still starts and ends with ``<eod>`` reads as a valid, shorter stream;
        only its length against the record tells it apart. Files the record has no count for (a run
        of an older nextword), and missing files (``--resume`` writes them again), are not checked.
        """
        for path, key in (
            (self.train_ids, "train_words"),
            (self.val_ids, "val_words"),
            (self.dev_ids, "dev_words"),
        ):
            recorded = data.get(key)
            if isinstance(recorded, bool) or not isinstance(recorded, int) or not path.is_file():
                continue
            size, width = path.stat().st_size, STREAM_DTYPE.itemsize
            if size == (recorded + 1) * width:
                continue
            if size % width or size < width:
                found = f"is {size} bytes (not whole {width}-byte ids)"
            else:
                words = size // width - 1
                found = f"holds {words} word{'' if words == 1 else 's'}"
            raise ValueError(
                f"{path} {found}, but the run recorded {recorded} ({self.config.name}, data.{key}): the "
                f"file is truncated or damaged; delete {path} and resume the run "
                f"(`nextword.train.resume({str(self.root)!r})`): a missing id file is encoded again from "
                f"the corpus files that {self.config.name} names"
            )

    def read_tokenizer(self) -> Tokenizer:
        """The run's tokenizer; a damaged ``tokenizer.json`` is a ``ValueError`` naming the file, a missing
        one a ``FileNotFoundError`` saying what to do."""
        if not self.tokenizer.is_file():
            raise FileNotFoundError(f"{self.tokenizer} is missing: {_LOST_VOCABULARY}")
        try:
            return Tokenizer.from_json(self.tokenizer.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"{self.tokenizer} is not UTF-8 text ({exc.reason} at byte {exc.start})"
            ) from None
        except ValueError as exc:
            raise ValueError(f"{self.tokenizer}: {exc}") from None

    def read_config(self) -> tuple[TrainConfig, dict[str, Any]]:
        """The run's TrainConfig, and config.json as stored (with vocabulary size, data counts, versions)."""
        stored = read_json(self.config)
        damaged = f"{self.config} does not hold a nextword run config"
        if not isinstance(stored, dict) or not all(
            isinstance(stored.get(k), dict) for k in ("model", "corpus")
        ):
            raise ValueError(f"{damaged} (a JSON object with its model and corpus settings)")
        try:
            config = TrainConfig.from_dict({k: v for k, v in stored.items() if k not in RUN_ONLY_KEYS})
        except ValueError as exc:  # a WrongTypeError (a TypeError too) included: a field's value
            raise ValueError(f"{self.config}: {exc}") from None
        except (AttributeError, KeyError, TypeError) as exc:  # JSON of the wrong shape inside
            raise ValueError(f"{damaged} ({exc})") from None
        return config, stored


def listed(names: list[str], most: int = 5) -> str:
    """The first ``most`` of ``names`` for a message: ``"a, b, c and 4 more"``."""
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def _os_metadata(entry: os.DirEntry[str]) -> bool:
    """Whether ``entry`` is a plain file that a file browser leaves in folders (``_OS_METADATA``)."""
    name = entry.name.lower()
    return (name in _OS_METADATA or name.startswith("._")) and entry.is_file(follow_symlinks=False)


def _hdf5(path: Path) -> bool:
    """Whether ``path`` is a plain file that is empty or starts as an HDF5 file does."""
    try:
        if not path.is_file() or path.is_symlink():
            return False
        with path.open("rb") as f:
            return f.read(len(_HDF5_SIGNATURE)) in (b"", _HDF5_SIGNATURE)
    except OSError:
        return False
