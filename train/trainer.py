"""Training a model on a corpus, and resuming an interrupted run."""

from __future__ import annotations

import logging
import platform
from collections.abc import Collection
from dataclasses import replace
from pathlib import Path
from typing import Any

import keras
import numpy as np

from nextword.corpus import build_vocabulary, encode_corpus, recorded_split, split_corpus
from nextword.runtime import __version__
from nextword.runtime.provenance import SplitRecord

from .base import (
    Base,
    base_facts,
    extended_vocabulary,
    fine_tuning_config,
    grow_vocabulary,
    read_base,
    unknown_share,
)
from .base_overlap import base_overlap
from .config import TrainConfig
from .data import token_counts
from .dev import dev_part, hold_out_dev
from .distribute import (
    Workers,
    broadcast_json,
    confirm_workers,
    lost_workers,
    start_workers,
    worker_scratch,
)
from .embeddings import load_glove
from .files import RunDir, RunExistsError, atomic_write_json, atomic_write_text
from .fit import (
    SESSION_FIELDS,
    Start,
    chiefs_batch,
    fit_session,
    global_batch,
    settings_fingerprint,
)
from .prechecks import check_run_dir, no_checkpoint, resolved_paths, resumed_config
from .recorder import RunRecorder, metrics_document
from .restart import chief_refusal, run_differs
from .result import TrainResult
from .resumable import (
    load_checkpoint,
    marks_saving,
    read_history,
    reconcile,
    remove_stale_temporaries,
)
from .run_corpus import corpus_files, encode_again
from .sizes import check_exportable, check_step_memory

__all__ = ["RunExistsError", "TrainResult", "resume", "train"]

logger = logging.getLogger(__name__)

N_SAMPLE_PROMPTS = 5  # validation document beginnings kept as real prompts for the export parity check
SAMPLE_PROMPT_WORDS = 20


def train(config: TrainConfig, command: str | None = None, *, given: Collection[str] = ()) -> TrainResult:
    """Train a model as ``config`` says and fill the run folder ``config.out``. As Keras training seeded
    for reproducibility does, it seeds the process's global random states (Python's ``random``,
    numpy's and TensorFlow's) with ``config.seed``.

    Steps: read the corpus's documents, drop exact duplicates and split them with near-duplicates
    kept on one side (:func:`nextword.corpus.split_corpus`; by index with ``keep_duplicates``),
    build the vocabulary from the training split, encode both splits into ``train.ids``/``val.ids``,
    train on windows read from those files with early stopping on the loss of the development part
    (documents moved out of ``train.ids`` into ``dev.ids``; without one, ``dev_fraction=0``, on the
    validation loss), keep the best model. Each step streams the corpus files (see
    :mod:`nextword.train.data`): memory does not grow with the corpus. Everything the run needs
    later is written into the folder before the first epoch, so an interrupted run can be resumed
    with :func:`resume` from its last checkpoint; a run that fails before its first one (an error, a
    full disk, Ctrl-C) has nothing to resume, and what it wrote is removed. Raises ``ValueError``
    subclasses for bad corpora, embeddings or settings before any training starts,
    :class:`RunExistsError` if the folder holds a run and ``overwrite`` is off, and
    :class:`~nextword.train.files.RunBusyError` while another process trains in it or an export reads
    it. ``command``, the command line that started the run, is recorded in ``config.json``.

    With ``init_from`` (fine-tuning) the run starts from the best model of another run folder, the
    base (:mod:`nextword.train.base`): its tokenizer is this run's (no vocabulary pass; words outside
    it read as ``<unk>``, and their share is logged and recorded), its network settings are this
    run's (a conflicting value is a ``ValueError``), and its weights, with a new optimizer, are where
    training starts. The base is read and checked before anything is written. Its dropout settings and
    the corpus's ``decode_html`` are the base's where ``config`` leaves them at their defaults: a value
    equal to the default counts as not given unless ``given`` names it, by its dotted name
    (``given=("model.dropout",)`` keeps ``ModelConfig(dropout=0.2)``, the default, over the base's;
    ``nextword train`` names each option typed). See :func:`~nextword.train.base.fine_tuning_config`.
    """
    config = resolved_paths(config)
    base = None
    if config.init_from is not None:  # fine-tuning: the base run's vocabulary, network and weights
        base = read_base(config)
        config = fine_tuning_config(config, base, given)
    if config.learning_rate is None:  # the default, written out in config.json: training's or fine-tuning's
        config = replace(config, learning_rate=config.learning_rate_for(1))
    workers = start_workers(config.distribute, config.peer_timeout)  # before any other TensorFlow work
    confirm_workers(workers, settings_fingerprint(config))  # before anything is read, or removed
    run = RunDir(config.out)
    # a cluster restarted with the same command goes on with the run (the chief decides: restart.py)
    differs = run_differs(run, config) if workers.count > 1 and workers.is_chief else "one process"
    made_as = _made_as(workers, run, config, restarted=differs is None)
    if not workers.is_chief:
        with worker_scratch(workers, config.out) as scratch:
            return _prepare(RunDir(scratch), config, workers, command, replacing=False, **made_as)
    if run.root.exists() and not run.root.is_dir():
        raise RunExistsError(f"{run.root} exists and is not a folder; choose another `out`")
    # nothing in the folder is read or removed while another process trains there; what this process
    # writes goes again if it fails before its first checkpoint
    with run.in_use(), run.discarded_before_checkpoint():
        if differs is None:  # a restarted cluster: the same command goes on
            stored_config, stored = run.read_config()
            if config.overwrite:
                logger.warning(
                    "%s holds a run of these settings and corpus files: continuing it, as a cluster "
                    "restarted with the same command does; overwrite=True does not start it over. To start "
                    "over, remove the folder or choose another `out`",
                    run.root,
                )
            session = {f: getattr(config, f) for f in SESSION_FIELDS}  # and the corpus where it is now
            config = replace(
                stored_config, corpus=replace(stored_config.corpus, paths=config.corpus.paths), **session
            )
            if run.checkpoint.is_file():
                logger.info("%s holds this run: continuing it", run.root)
                return _resume(run, config, stored, workers)
            logger.info("%s holds this run, stopped before its first checkpoint: starting it again", run.root)
            return _prepare(run, config, workers, stored.get("command"), replacing=True)
        if workers.count > 1 and config.overwrite and run.checkpoint.is_file():
            logger.warning(
                "%s holds a run that is not this command's (%s): overwrite=True replaces it, and its "
                "epochs are deleted at this run's first checkpoint",
                run.root,
                differs,
            )
        return _prepare(run, config, workers, command, replacing=check_run_dir(run, config), base=base)


def _prepare(
    run: RunDir,
    config: TrainConfig,
    workers: Workers,
    command: str | None,
    replacing: bool,
    record: SplitRecord | None = None,
    tokenizer_version: int | None = None,
    base: Base | None = None,
) -> TrainResult:
    """The three passes over the corpus, the run folder's files, then training (see :func:`train`);
    ``record`` is the split to make and ``tokenizer_version`` the tokenizer format (a run's own, when a
    worker makes its data again; None: the oldest that splits the corpus alike, ``build_vocabulary``'s);
    ``base``: the run whose vocabulary and weights a fine-tuning run starts from (no vocabulary pass
    then)."""
    split = split_corpus(config.corpus, record)  # pass 1: read, deduplicate, split
    dev = dev_part(split, config)  # held out of training: its words do not make the vocabulary
    overlap = base_overlap(base, split, dev, config.base_corpus) if base is not None else {}
    if base is not None:
        tokenizer = base.tokenizer
        if config.extend_vocabulary:
            tokenizer = extended_vocabulary(base, split, dev, config.tokenizer.max_vocab)
        added = len(tokenizer) - len(base.tokenizer)
        logger.info(
            "vocabulary %d words, the base %s's (%s)%s",
            len(tokenizer),
            base.kind,
            base.source,
            f" with {added} added" if added else "",
        )
    else:
        # pass 2: the vocabulary
        tokenizer = build_vocabulary(split, config.tokenizer, leave_out=dev, version=tokenizer_version)
        logger.info("vocabulary %d words", len(tokenizer))
    tokenizer_json = tokenizer.to_json()
    # Before anything is written or trained: a model no ONNX file can hold is refused here, not at export.
    check_exportable(config.model, len(tokenizer), len(tokenizer_json.encode()), warn=workers.is_chief)
    vectors = weights = None
    if config.embeddings:
        vectors, _ = load_glove(config.embeddings, tokenizer, config.model.embedding_dim, config.seed)
    if base is not None:
        weights = base.keras_model()
        if len(tokenizer) > len(base.tokenizer):
            weights = grow_vocabulary(weights, config.model, len(tokenizer))

    if replacing:  # only now: a bad corpus or embeddings file above must not cost the old run
        run.set_aside()  # kept until this run's first checkpoint, put back if it stops before
    run.mark()
    atomic_write_text(run.tokenizer, tokenizer_json)
    encoded = encode_corpus(split, tokenizer, run.train_ids, run.val_ids, N_SAMPLE_PROMPTS)  # pass 3
    data = {**encoded.facts(), "corpus_sha256": split.digest}  # what encode_again and evaluate check
    if dev is not None:  # before anything reads train.ids: these documents are never trained on
        data |= hold_out_dev(run, dev, tokenizer.eod_id, by_group=split.record.dev_by_group)
    facts = {
        "vocab_size": len(tokenizer),
        "data": data,
        # How the run started; a resumed session keeps the global batch (see fit.global_batch).
        "training": {
            "replicas": workers.replicas,
            "global_batch": config.batch_size * workers.replicas,
            "learning_rate": config.learning_rate_for(workers.replicas),
        },
        "versions": versions(),
        "command": command,
        "corpus_files": corpus_files(config),
    }
    counts = token_counts(run.train_ids, len(tokenizer))
    if base is not None:
        shares = unknown_share(counts, tokenizer, len(base.tokenizer), config.extend_vocabulary)
        facts["base"] = {**base_facts(base), **shares, **overlap}
    atomic_write_json(run.config, {**config.to_dict(), **facts})
    prompts = [" ".join(d.split()[:SAMPLE_PROMPT_WORDS]) for d in encoded.first_val_documents]
    atomic_write_json(run.samples, {"prompts": prompts})
    atomic_write_json(run.metrics, {"epochs": []})
    # Start the output layer at the unigram distribution: the first steps then refine it rather than
    # discover that "the" and "," are common.
    counts += 1.0
    start = Start(vectors=vectors, bias=np.log(counts / counts.sum()).astype(np.float32), weights=weights)
    return _fit(run, config, workers, len(tokenizer), [], start, facts)


def resume(
    run_dir: str | Path,
    epochs: int | None = None,
    patience: int | None = None,
    verbose: int | None = None,
    max_minutes: float | None = None,
    distribute: str | None = None,
    peer_timeout: float | None = None,
    checkpoint_steps: int | None = None,
) -> TrainResult:
    """Continue an interrupted (or finished) run from its last checkpoint.

    The encoded corpus (``train.ids``, ``val.ids``), tokenizer, weights and optimizer state come from
    the folder; a folder without the two id files (written by a nextword before streamed training)
    gets them first, from the corpus files named in its config, split the same way. ``epochs`` raises
    the total number of epochs, ``patience`` changes early stopping, ``verbose`` the progress display,
    ``max_minutes`` gives this session a time budget (a budget of the first session does not carry
    over); ``distribute``, ``peer_timeout`` and ``checkpoint_steps`` say how this session runs (the
    global batch stays the run's: the replicas of this session must divide it). The rest stays as
    stored. The learning-rate schedule continues as it was built when the run started. A checkpoint
    taken within an epoch resumes that epoch at its step; an epoch the time budget cut short counts as
    done. Files left half-done by a killed session are mended first (see
    :func:`~.resumable.reconcile`). In a multi-worker session, the workers other than the chief read
    only the folder's ``config.json`` and train from their own copy of the corpus.

    Refuses, before anything is written: a ``run_dir`` that does not exist (``FileNotFoundError``),
    is a file (``NotADirectoryError``) or is not a run folder
    (:class:`~nextword.train.files.NotARunError`); a run without a checkpoint (``FileNotFoundError``);
    a damaged checkpoint, or an id file whose length differs from what the run recorded
    (``ValueError``, naming the file and the fix); and, with
    :class:`~nextword.train.files.RunBusyError`, a folder another process trains in or an export reads.
    """
    changes: dict[str, Any] = {
        "epochs": epochs,
        "patience": patience,
        "verbose": verbose,
        "max_minutes": max_minutes,
        "distribute": distribute,
        "peer_timeout": peer_timeout,
        "checkpoint_steps": checkpoint_steps,
    }
    run, config, stored = resumed_config(run_dir, changes)
    workers = start_workers(config.distribute, config.peer_timeout)
    confirm_workers(workers, settings_fingerprint(config))
    made_as = _made_as(workers, run, config, stored)
    if not workers.is_chief:  # the run's own split and tokenizer format, made again from the corpus files
        with worker_scratch(workers, config.out) as scratch:
            return _prepare(RunDir(scratch), config, workers, None, replacing=False, **made_as)
    with run.in_use():
        if not run.checkpoint.is_file():
            raise FileNotFoundError(no_checkpoint(run))
        run.read_tokenizer()  # a lost or damaged vocabulary is named before anything is written
        return _resume(run, config, stored, workers)


def _resume(run: RunDir, config: TrainConfig, stored: dict[str, Any], workers: Workers) -> TrainResult:
    """Continue the run in ``run`` from its checkpoint (the chief's side of :func:`resume`)."""
    data = _recorded_data(stored)
    run.check_id_files(data)  # before anything is written: a damaged file is named, never trained on
    saved = load_checkpoint(run)  # no strategy: fit_session copies it into one
    remove_stale_temporaries(run)
    run.mark()  # a run from before markers existed gains one: --overwrite may then replace it
    encoded = run.train_ids.is_file() and run.val_ids.is_file()
    if not encoded or (config.dev_fraction and not run.dev_ids.is_file()):
        counts = encode_again(run, config, data, stored.get("corpus_files"))
        stored = {**stored, "data": {**data, **counts}}  # what the new files hold, for later checks
        atomic_write_json(run.config, stored)
    vocab_size = len(run.read_tokenizer())
    recorder = RunRecorder(run, config, [], vocab_size, writes=True)
    history, saving = read_history(run)
    history = reconcile(run, saved, history, recorder, saving, marked=marks_saving(stored))
    # "after epoch 300 of 8" where fewer epochs than done are asked for: that warning says it trains none
    planned = f" of {config.epochs}" if config.epochs is not None and config.epochs >= len(history) else ""
    logger.info("resuming %s after epoch %d%s", run.root, len(history), planned)
    return _fit(run, config, workers, vocab_size, history, Start(saved=saved), stored)


def _recorded_data(stored: dict[str, Any]) -> dict[str, Any]:
    """config.json's ``data``: what the run recorded of its corpus and id files (empty if absent)."""
    data = stored.get("data")
    return data if isinstance(data, dict) else {}


def _made_as(
    workers: Workers,
    run: RunDir,
    config: TrainConfig,
    stored: dict[str, Any] | None = None,
    restarted: bool = False,
) -> dict[str, Any]:
    """How the workers other than the chief make their copy of the data: the split and tokenizer format
    of the run the chief continues (``stored``, its config.json facts, on ``--resume``; a cluster
    restarted with the same command), else nothing (a new run: this nextword's defaults). The chief
    decides and tells them: a run started by an earlier nextword keeps its own split scheme and
    tokenizer format, which a worker's defaults would not make (the workers then disagreed)."""
    if workers.count == 1:
        return {}
    chosen: dict[str, Any] = {}
    refused = None  # a new run the chief refuses its folder for: every worker says why, and stops
    if workers.is_chief and stored is None:
        refused = chief_refusal(run, config, check_folder=not restarted)
    if refused is not None:
        chosen = {"refused": str(refused)}
    elif workers.is_chief and (stored is not None or (restarted and run.checkpoint.is_file())):
        facts = stored if stored is not None else run.read_config()[1]
        chosen = {"data": facts.get("data", {}), "tokenizer_version": run.read_tokenizer().version}
    with lost_workers(workers):
        chosen = broadcast_json(workers, chosen)
    if refused is not None:
        raise refused
    if "refused" in chosen:
        chief = "the chief" if workers.chiefs else "worker 0, the chief,"
        raise RunExistsError(f"{chief} refused the run folder: {chosen['refused']}")
    if not chosen:
        return {}
    return {
        "record": recorded_split(chosen["data"], config.corpus),
        "tokenizer_version": chosen["tokenizer_version"],
    }


def _fit(
    run: RunDir,
    config: TrainConfig,
    workers: Workers,
    vocab_size: int,
    history: list[dict[str, Any]],
    start: Start,
    stored: dict[str, Any],
) -> TrainResult:
    stored = chiefs_batch(workers, config, stored)  # every worker steps through the chief's batches
    rows = global_batch(config, stored, workers.replicas) // workers.replicas  # windows per replica
    if workers.is_chief:
        check_step_memory(config, vocab_size, rows, on_gpu=_on_gpu())
    session = fit_session(run, config, workers, vocab_size, history, start, stored)
    document = metrics_document(session.history, session.stopped_early)
    best = document["best"]
    if best is None:
        raise RuntimeError("training finished no epoch")
    return TrainResult(
        run_dir=str(Path(config.out)),
        epochs=len(session.history),
        best_epoch=best["epoch"],
        best_val_loss=best["val_loss"],
        best_val_perplexity=best["val_perplexity"],
        stopped_early=session.stopped_early,
        out_of_time=session.out_of_time,
        chief=workers.is_chief,
        selected_by=document["selected_by"],
    )


def _on_gpu() -> bool:
    """Whether TensorFlow trains on a GPU here (the output layer's activations are then in its memory)."""
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))


def versions() -> dict[str, str]:
    """Versions of the packages that shape a trained model."""
    import tensorflow as tf

    return {
        "nextword": __version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
