"""``nextword train`` and ``nextword export``: run them, print what they did, and say what comes next
(export a finished run, continue an interrupted one, or start one again that left nothing to resume).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from nextword.export import ExportConfig
from nextword.train import TrainConfig
from nextword.train.progress import counted, how_to_go_on, restored_by, run_progress

from .args import RESUMABLE_OPTIONS, check_train_options, cli_terms, config_flags, config_from_args
from .display import figure, printing_result, progress_stream, safe, shown_command
from .info import SELECTED_BY
from .quiet import import_tensorflow_quietly

if TYPE_CHECKING:
    from nextword.export.exporter import ExportReport
    from nextword.train.result import TrainResult

__all__ = ["after_interrupt", "export_command", "train_command"]


def after_interrupt(args: argparse.Namespace, ended: BaseException | None = None) -> str:
    """What an interrupted command left to the user: for ``train``, how to go on with its run --
    ``--resume`` only where there is something to resume (``ended``: what ended it; an ``--overwrite``
    stopped before its first checkpoint leaves the run it replaced, which is what is said then)."""
    if args.command != "train":
        return ""
    run_dir = str(getattr(args, "resume", None) or getattr(args, "out", None) or "")
    if not run_dir:
        return ""
    if restored_by(ended, run_dir):
        return safe("; " + cli_terms(how_to_go_on(run_dir, None, ended), (TrainConfig,)))
    if getattr(args, "distribute", None) == "multi-worker" and not getattr(args, "resume", None):
        # on separate machines only the chief's folder holds the run: this worker's says nothing of it
        return (
            "; restart every worker with the same command: the chief (worker 0) goes on from the last "
            "checkpoint its run folder holds, or starts the run again where there is none"
        )
    folder = Path(run_dir)
    progress = run_progress(folder)
    epochs = getattr(args, "epochs", None) if getattr(args, "resume", None) else None
    if progress.has_checkpoint and not (progress.finished and (epochs or 0) <= progress.epochs_done):
        command = _resume_command(args, run_dir)
        if _distribution(folder) == "multi-worker":
            return safe(
                f"; the run keeps its last checkpoint: continue it with `{command}` on the chief (worker 0) "
                "and on the other workers with it or the command that started the run, each with its "
                "TF_CONFIG (or here alone, adding --distribute none)"
            )
        return safe(f"; the run keeps its last checkpoint: continue it with `{command}`")
    return safe("; " + cli_terms(how_to_go_on(run_dir, epochs), (TrainConfig,)))


def _resume_command(args: argparse.Namespace, run_dir: str) -> str:
    """The command that continues ``run_dir`` after this session: ``--resume`` with the epoch total
    this session was given (a run folder keeps the total it started with)."""
    epochs = getattr(args, "epochs", None) if getattr(args, "resume", None) else None
    return shown_command(
        ["nextword", "train", "--resume", run_dir, *(["--epochs", str(epochs)] if epochs else [])]
    )


def _distribution(folder: Path) -> object:
    """The ``distribute`` setting a run folder's config.json records (None if it cannot be read)."""
    try:
        stored = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return stored.get("distribute") if isinstance(stored, dict) else None


def _writing_no_bytecode(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """``command`` with Python's bytecode writes off while it runs. TensorFlow's autograph writes each
    function it converts as a module to $TMPDIR, and imports it: Python then wrote the module's bytecode
    to $TMPDIR/__pycache__, which stayed after autograph removed the module at exit (some ten files a
    training, six an export; thousands from a nightly job)."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        before, sys.dont_write_bytecode = sys.dont_write_bytecode, True
        try:
            return command(args)
        finally:
            sys.dont_write_bytecode = before

    return run


@_writing_no_bytecode
def train_command(args: argparse.Namespace) -> int:
    """``nextword train``: a new run, or ``--resume`` of one; prints where it ended and what is next."""
    from nextword.train import TRAINING_STACK, require_installed, resume, train
    from nextword.train.prechecks import check_resume, check_train

    require_installed("training", TRAINING_STACK)
    flags = config_flags(TrainConfig)
    options = {k: v for k, v in vars(args).items() if k in flags}
    check_train_options(options, flags, RESUMABLE_OPTIONS if args.resume else None)
    changes = {k: options.get(k) for k in RESUMABLE_OPTIONS}
    config = TrainConfig()
    if args.resume:
        check_resume(args.resume, **changes)
    else:
        config = config_from_args(config, options)
        if not config.corpus.paths:
            raise ValueError("no corpus files given: nextword train CORPUS... --out RUN_DIR")
        check_train(config)
    import_tensorflow_quietly()  # after the mistakes a command can hold are said: seconds saved on each
    # The progress (Keras's bar, each epoch's line) goes to standard error: standard output holds the
    # result alone, for a script to read (as in Python, a notebook's progress stays on its stdout). -q
    # drops it, unless --verbose asks, for this session only: verbose=0 would be stored with the run.
    quiet = args.quiet and options.get("verbose") is None
    with contextlib.ExitStack() as stack:
        shown = stack.enter_context(open(os.devnull, "w", encoding="utf-8")) if quiet else progress_stream()
        stack.enter_context(contextlib.redirect_stdout(shown))
        if args.resume:
            result = resume(args.resume, **changes)
        else:  # the options typed keep their value over a base's, even where it is the default
            result = train(config, command=args.command_line, given=tuple(options))
    with printing_result(f"the run is in {result.run_dir}" if result.chief else "the worker's part is done"):
        return _print_trained(args, result)


def _print_trained(args: argparse.Namespace, result: TrainResult) -> int:
    where = f"run {result.run_dir}" if result.chief else "worker done; the chief wrote the run (its --out)"
    print(
        f"{where}: {counted(result.epochs, 'epoch')}, best epoch {result.best_epoch} "
        f"by {SELECTED_BY.get(result.selected_by, result.selected_by)} "
        f"(validation loss {result.best_val_loss:.4f}, "
        f"perplexity {figure(result.best_val_perplexity, '.1f')} in training's windows)"
        + (", stopped early" if result.stopped_early else "")
    )
    if not result.chief:
        return 0
    export = shown_command(["nextword", "export", result.run_dir, "--out", "MODEL.onnx"])
    if result.out_of_time:
        command = _resume_command(args, result.run_dir)
        print(
            safe(
                f"the --max-minutes budget ended this session: continue the run with `{command}`, or export "
                f"its best epoch so far with `{export}`"
            )
        )
    else:
        print(safe(f"next: export the model with `{export}`"))
    return 0


@_writing_no_bytecode
def export_command(args: argparse.Namespace) -> int:
    """``nextword export``: prints the file written, its parity figures and validation quality."""
    config = config_from_args(ExportConfig(), vars(args))
    named = (("the run folder", config.run_dir), ("--out", config.out))
    missing = [what for what, given in named if not given]
    if missing:  # before TensorFlow is imported: seconds, for a mistake in the command line
        raise ValueError(f"{' and '.join(missing)} not given: nextword export RUN_DIR --out MODEL.onnx")
    from nextword.export import export
    from nextword.export.prechecks import check_export
    from nextword.train import EXPORT_STACK, require_installed

    require_installed("export", EXPORT_STACK)
    check_export(config)
    import_tensorflow_quietly()
    report = export(config, command=args.command_line)
    with printing_result(f"{report.path} was written"):
        _print_exported(report)
    return 0


def _print_exported(report: ExportReport) -> None:
    p = report.parity
    # Without the run's samples.json there are no real prompts: that comparison did not happen.
    real = "real prompts not checked (the run has no samples.json)"
    if p.real_prompts:
        real = f"{p.max_abs_diff_real:.2e} real"
    print(f"wrote {report.path} ({report.bytes / 1e6:.2f} MB), ops: {report.ops}")
    print(
        f"parity (tolerance {p.tolerance:g}): max |Keras - ONNX| logits {p.max_abs_diff_random:.2e} random, "
        f"{real}; chunked vs whole {p.max_abs_diff_chunked:.2e}; "
        f"greedy {p.greedy_words}-word generations identical {p.greedy_identical}/{p.greedy_sequences}"
    )
    if report.int8_vs_fp32:
        q = report.int8_vs_fp32
        print(
            f"int8 against fp32: max |logit difference| {q['max_abs_logit_diff']:.3g}, "
            f"greedy identical {q['greedy_identical']}/{q['greedy_sequences']}"
        )
    for precision in ("fp32", "int8", "fp32_cache", "int8_cache"):
        if precision in report.quality:
            figures, name = report.quality[precision], precision.replace("_cache", " + cache")
            print(
                f"validation ({name}): perplexity {figure(figures['perplexity'], '.2f')}, "
                f"accuracy {figures['accuracy']:.2%}, top-5 {figures['top5_accuracy']:.2%} "
                f"over {figures['words']} words"
            )
