"""The refusals a training makes before TensorFlow loads: a mistake in the command (a corpus file that is
not there, a run folder that holds something, a ``--resume`` path that is no run) is said in a fraction
of a second, not after the seconds TensorFlow takes to import.

:func:`check_train` and :func:`check_resume` raise what :func:`nextword.train.train` and
:func:`nextword.train.resume` would raise for the same input, and write nothing. Both are called by
those functions before TensorFlow loads, and by ``nextword train`` before it imports TensorFlow itself.
The trainer makes the folder checks again once it holds the folder (:mod:`nextword.train.trainer`):
what is said here early is never all that is checked.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from nextword.corpus import CorpusError, check_options
from nextword.corpus.readers import check_file

from .config import TrainConfig
from .distribute import DistributeError, parse_tf_config
from .files import RUN_MARKER, NotARunError, RunDir, RunExistsError, listed
from .paths import GIVE_RUN, not_a_run_folder, resolved
from .progress import aside_note, existing_run_advice

__all__ = [
    "RESUME_CHANGES",
    "check_resumable",
    "check_resume",
    "check_run_dir",
    "check_train",
    "no_checkpoint",
    "resolved_paths",
    "resumed_config",
]


# What a resumed run may change (nextword.train.resume's keyword arguments): the rest stays as stored.
RESUME_CHANGES = (
    "epochs",
    "patience",
    "verbose",
    "max_minutes",
    "distribute",
    "peer_timeout",
    "checkpoint_steps",
)


def resolved_paths(config: TrainConfig) -> TrainConfig:
    """``config`` with its run folder checked and its corpus files, base and base corpus resolved to
    absolute paths (a link that loops is refused, naming it); ``ValueError`` for an unset ``out``."""
    if not config.out:
        raise ValueError("the run folder is not set: pass out='RUN_DIR'")
    resolved(config.out, "the run folder `out`", other="choose another `out`")  # not a looping link
    paths = tuple(str(resolved(p, "corpus file", CorpusError)) for p in config.corpus.paths)
    config = replace(config, corpus=replace(config.corpus, paths=paths))
    if config.init_from is not None:  # fine-tuning: the base run or model file, and the base's corpus
        files = tuple(str(resolved(p, "`base_corpus` file", CorpusError)) for p in config.base_corpus)
        config = replace(config, init_from=str(resolved(config.init_from, "`init_from`")), base_corpus=files)
    return config


def check_train(config: TrainConfig) -> None:
    """Raise what :func:`nextword.train.train` would raise for ``config`` before it trains, where that
    needs no TensorFlow: the paths (:func:`resolved_paths`), each corpus file (there, a regular file,
    text: :func:`~nextword.corpus.readers.check_file`) and the options that read them, the base of a
    fine-tuning (there: :func:`~nextword.train.base.base_source`), ``TF_CONFIG`` in a multi-worker
    run, and, in one process, the run folder (:func:`check_run_dir`; another process training there is
    :class:`~nextword.train.files.RunBusyError`). A multi-worker run's folder is left to its chief, which
    tells the other workers why it refuses one. Reads the corpus files' first bytes; writes nothing."""
    config = resolved_paths(config)
    for path in config.corpus.paths:
        check_file(path, config.corpus)
    check_options(config.corpus.paths, config.corpus)
    if config.init_from is not None:  # its files are read once, by the trainer, which logs what it finds
        from .base import base_source  # numpy's weights reader: not at import, which every command pays

        base_source(config)
    if config.distribute == "multi-worker":
        parse_tf_config(os.environ.get("TF_CONFIG"))
        return
    run = RunDir(config.out)
    if run.root.exists() and not run.root.is_dir():
        raise RunExistsError(f"{run.root} exists and is not a folder; choose another `out`")
    run.check_free()
    check_run_dir(run, config)


def check_run_dir(run: RunDir, config: TrainConfig) -> bool:
    """Refuse a run folder that holds something, unless ``config.overwrite`` and it holds a previous run
    and nothing else (:meth:`RunDir.check_replaceable`); True if it is to be replaced. A corpus file
    inside the folder is refused either way: the run's files would be written beside it."""
    root = run.root.resolve()
    inside = [p for p in config.corpus.paths if root in Path(p).resolve().parents]
    if inside:
        raise RunExistsError(
            f"the corpus file {inside[0]} is inside the run folder {run.root}; keep corpora outside `out` "
            "(a run folder holds only what training writes)"
        )
    run.check_aside_free()  # an overwrite that could not put the run back left it there: said, never lost
    found = run.entries() if run.root.is_dir() else []  # a file browser's .DS_Store counts as nothing
    if found:
        if not config.overwrite and not run.is_run():  # neither resume nor overwrite would take it
            raise RunExistsError(
                f"{run.root} holds files ({listed(found, 3)}) and is not a nextword run folder (it has no "
                f"{RUN_MARKER} marker): choose an empty or new folder for `out`"
            )
        if not config.overwrite:
            raise RunExistsError(existing_run_advice(str(run.root)))
        run.check_replaceable()
        return True
    return False


def check_resumable(run: RunDir) -> None:
    """Refuse a ``--resume`` path that is not a run folder, each case with its own message.

    A folder counts as a run when it carries the marker, or holds a ``config.json`` (a run from before
    markers existed; or, on a worker of a multi-worker run, a copy of the chief's, all it reads)."""
    if (wrong := not_a_run_folder(run.root)) is not None:  # a file, or a link that loops
        raise wrong
    if not run.root.exists():
        raise FileNotFoundError(f"{run.root} does not exist; {GIVE_RUN}")
    if not run.marker.is_file() and not run.config.is_file():
        raise NotARunError(f"{run.root} is not a nextword run folder (no {RUN_MARKER} marker); {GIVE_RUN}")
    if not run.checkpoint.is_file() and not run.config.is_file():
        raise FileNotFoundError(no_checkpoint(run))


def no_checkpoint(run: RunDir) -> str:
    """Why ``run`` cannot resume without a checkpoint, and what to do instead."""
    if run.model.is_file():  # a run that trained, whose checkpoint is gone: --overwrite would lose it
        return (
            f"{run.root} has no checkpoint.keras to resume from, only its best model (model.keras): "
            f"export that with `nextword.export.export(ExportConfig({str(run.root)!r}, out='MODEL.onnx'))`; "
            "to train more, start a run in another folder (overwrite=True here would delete model.keras)"
        )
    return (
        f"{run.root} has no checkpoint.keras to resume from (the run stopped before its first "
        f"checkpoint); start it again with overwrite=True{aside_note(str(run.root))}"
    )


def resumed_config(
    run_dir: str | Path, changes: Mapping[str, Any]
) -> tuple[RunDir, TrainConfig, dict[str, Any]]:
    """The run folder ``run_dir`` (checked: :func:`check_resumable`, not in use by another process), its
    stored config with ``changes`` made (those of :func:`check_resume`: ``max_minutes`` always, the others
    where not None) and its stored facts; a multi-worker run without ``TF_CONFIG`` here is a
    :class:`DistributeError` unless ``changes`` give ``distribute``."""
    run = RunDir(run_dir)
    run.check_free()  # an overwrite under way has set the marker aside: "in use" says why, not "not a run"
    check_resumable(run)
    config, stored = run.read_config()
    config = replace(config, out=str(run.root))
    if "dev_fraction" not in stored:  # a run from before development parts trained on all its documents
        config = replace(config, dev_fraction=0.0)
    session = {k: v for k, v in changes.items() if k != "max_minutes" and v is not None}
    config = replace(config, max_minutes=changes.get("max_minutes"), **session)
    unset = not os.environ.get("TF_CONFIG")
    if "distribute" not in session and config.distribute == "multi-worker" and unset:
        raise DistributeError(
            f"{run.root} trained with distribute='multi-worker', and TF_CONFIG is not set here: continue "
            "it on every worker, each with its TF_CONFIG, or here alone with distribute='none'"
        )
    return run, config, stored


def check_resume(run_dir: str | Path, **changes: Any) -> None:
    """Raise what :func:`nextword.train.resume` would raise for these arguments (the same: the
    ``changes`` of :data:`RESUME_CHANGES`) before it trains, where that needs no TensorFlow: the folder
    and the changes (:func:`resumed_config`), ``TF_CONFIG`` in a multi-worker session and, in one
    process, a run without a checkpoint. Writes nothing."""
    unknown = sorted(set(changes) - set(RESUME_CHANGES))
    if unknown:
        raise TypeError(
            f"resume() got an unexpected keyword argument {unknown[0]!r}; it can change "
            f"{', '.join(RESUME_CHANGES)}"
        )
    run, config, _ = resumed_config(run_dir, changes)
    if config.distribute == "multi-worker":  # the other workers hold the chief's config.json alone
        parse_tf_config(os.environ.get("TF_CONFIG"))
    elif not run.checkpoint.is_file():
        raise FileNotFoundError(no_checkpoint(run))
