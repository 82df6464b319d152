"""``nextword``: train, export, generate, evaluate, info.

Each subcommand parses its options (built from the same config dataclasses the Python API takes),
calls one API function and prints its result. Training and export load TensorFlow lazily, so
``generate``, ``evaluate`` and ``info`` work with the runtime alone.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import shlex
import signal
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

if __name__ == "__main__":  # run as a program (python -m nextword.cli.main), as entry.main does
    from nextword.cli.telemetry import telemetry_off

    telemetry_off()  # before the imports below load onnxruntime

from nextword.corpus.errors import OUT_OF_ROOM, os_advice
from nextword.export import ExportConfig
from nextword.runtime import (
    GenerationConfig,
    __version__,
)
from nextword.runtime.generation import FILE_DEFAULTS, defaults_note
from nextword.runtime.onnxruntime_build import describe_onnxruntime
from nextword.train import MissingExtraError, TrainConfig

from .args import (
    add_config_arguments,
    cli_messages,
    config_from_args,
    flag_names,
    negative_numbers_are_values,
    refuse_unknown,
)
from .corpus import add_corpus_parser
from .display import REPLACED, SafeFormatter, json_text, replaced_note, safe, writes_what_it_can
from .info import show_info
from .models import CACHE_HELP, add_device_argument, add_size_limits_argument, cached_model
from .positionals import PROMPT_FILE_HELP, model_and_prompts
from .scoring import add_evaluate_parser, score_command
from .serve import add_serve_parser
from .signals import OUT_OF_MEMORY, SIGNALLED, drop_stream, hangup_handled, how_ended, say, terminate
from .training import after_interrupt, export_command, train_command

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

__all__ = ["build_parser", "main"]

logger = logging.getLogger("nextword")

# Commands whose printed result is the point: with standard output closed they refuse to run.
PRINTS_RESULT = ("generate", "suggest", "score", "evaluate", "info")
DEFAULT_MODEL = "$NEXTWORD_MODEL, else the bundled model"
MODEL_HELP = f"the .onnx model file (default: {DEFAULT_MODEL})"
MODEL_FIRST = "a first MODEL.onnx names the model, as --model does"


class _Parser(argparse.ArgumentParser):
    """argparse's parser (its subcommands' too), but a help or a version that cannot be written (a full
    disk) raises, as any other output of the command does; argparse ignores the error, so that
    ``--help > /dev/full`` said nothing and exited 0 where standard output is unbuffered."""

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        stream = file or sys.stderr
        if message and stream is not None:
            stream.write(message)


class _Version(argparse.Action):
    """``--version``: nextword's version and the onnxruntime it runs on (version, the distributions that
    installed it, its providers) in one line, read only when asked."""

    def __init__(
        self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: object
    ) -> None:
        help_text = "show nextword's version and onnxruntime's (distribution, providers) and exit"
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help_text)

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        if sys.stdout is not None:  # closed (`>&-`): nothing to print to, as argparse's own action
            sys.stdout.write(f"nextword {__version__} ({describe_onnxruntime()})\n")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``nextword`` command."""
    parser = _Parser(
        prog="nextword", description="Word-level LSTM next-word models: train, export to ONNX, generate."
    )
    parser.add_argument("--version", action=_Version)
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("train", help="train a model on a corpus (needs nextword[train])")
    add_config_arguments(p, TrainConfig)
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint")
    p.set_defaults(handler=train_command)

    p = commands.add_parser("export", help="export a run to one ONNX file (needs nextword[train])")
    add_config_arguments(p, ExportConfig, skip=("generation.seed",))
    p.set_defaults(handler=export_command)

    p = commands.add_parser("generate", help="continue one or more prompts")
    p.add_argument(
        "prompts", nargs="*", metavar="PROMPT", help="text to continue (may be empty); " + MODEL_FIRST
    )
    p.add_argument("--file", help=PROMPT_FILE_HELP)
    p.add_argument("--model", help=MODEL_HELP)
    add_config_arguments(p, GenerationConfig, defaults_from="the model file's")
    add_device_argument(p)
    p.add_argument("--stream", action="store_true", help="print words as they are generated (one prompt)")
    p.add_argument("--json", action="store_true", help="print a JSON list of {prompt, text, full}")
    p.set_defaults(handler=_generate)

    p = commands.add_parser("suggest", help="the most likely next words after a prompt")
    p.add_argument("prompt", nargs="*", metavar="PROMPT", help="text so far; " + MODEL_FIRST)
    p.add_argument("--file", help=PROMPT_FILE_HELP)
    p.add_argument("-k", type=int, default=5, help="how many words (default: 5)")
    p.add_argument("--model", help=MODEL_HELP)
    p.add_argument("--cache", action=argparse.BooleanOptionalAction, default=None, help=CACHE_HELP)
    add_device_argument(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_suggest)

    p = commands.add_parser(
        "score",
        help="log-probability and perplexity of a text under a model",
        usage="nextword score [MODEL.onnx] (TEXT | --file F) [--model MODEL.onnx] [--cache | --no-cache] "
        "[--device DEVICE] [--no-size-limits] [--json]",
    )
    p.add_argument(
        "model", nargs="?", help="the .onnx model file (or --model; neither: " + DEFAULT_MODEL + ")"
    )
    p.add_argument("text", nargs="?", help="the text to score")
    p.add_argument("--file", help="read the text from this UTF-8 file (-: from standard input)")
    p.add_argument("--model", dest="model_option", metavar="MODEL.onnx", help="the .onnx model file")
    p.add_argument("--cache", action=argparse.BooleanOptionalAction, default=None, help=CACHE_HELP)
    add_device_argument(p)
    p.add_argument(
        "--json",
        action="store_true",
        help="print JSON with every word's log-probability; each word's `word` is the word as read, as the "
        "server's /v1/score gives it: an unknown word keeps its text, flagged `unknown` (in Python that is "
        "WordScore.token; WordScore.word is <unk> there)",
    )
    p.set_defaults(handler=score_command)

    add_evaluate_parser(commands)

    p = commands.add_parser("info", help="what a model file holds: provenance, layers, metrics, parity")
    p.add_argument("model", nargs="?", help=MODEL_HELP)
    p.add_argument("--model", dest="model_option", metavar="MODEL.onnx", help="the .onnx model file")
    add_size_limits_argument(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=show_info)
    add_corpus_parser(commands)
    add_serve_parser(commands)
    return negative_numbers_are_values(parser)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 failed check, 2 bad input)."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    top = {flag for action in parser._actions for flag in action.option_strings}
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    named = next((i for i, a in enumerate(argv) if a in commands or a == "--"), len(argv))  # "--": no more
    early = [a for a in argv[:named] if a.startswith("-") and a.split("=", 1)[0] not in top]
    if early:  # before the command's name, or with none: the top level's options (-q, --version) meant
        refuse_unknown(parser, "", early)
    try:
        args, unknown = parser.parse_known_args(argv)
    except SystemExit as exc:  # --help or --version printed (status 0), or a usage error said
        if exc.code == 0 and (status := _printed()):
            return status
        raise
    except OSError as exc:  # --help or --version could not be written
        return _unprinted(exc)
    if unknown:
        args, unknown = _intermixed(parser, args, argv, unknown)
    if unknown:  # said by the subcommand's parser: its usage, not the top level's
        refuse_unknown(_command_parser(parser, args), args.command, unknown)
    args.command_line = shlex.join(["nextword", *argv])  # recorded with runs and model files
    if sys.stderr is None:  # started with `2>&-`: print(file=None) would put the messages in the output
        sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 (for the process's life)
    if sys.stdout is None and args.command in PRINTS_RESULT:  # started with `>&-`: print() drops it all
        if sys.stderr is not None:
            print(
                f"nextword {args.command}: error: standard output is closed, so the result would be lost: "
                "redirect it (> FILE, or > /dev/null to discard it) instead of closing it",
                file=sys.stderr,
            )
        return 2
    handler = logging.StreamHandler()
    handler.setFormatter(SafeFormatter("%(levelname)s %(name)s: %(message)s"))  # messages may quote files
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, handlers=[handler])
    for stream in (sys.stdout, sys.stderr):  # a prompt may hold what the terminal cannot encode
        writes_what_it_can(stream)
    # TensorFlow's C++ start-up chatter drowns the progress bar; the user's own setting wins. Its
    # Python logger reports every collective of distributed training at INFO, tf2onnx's each pass of
    # its converter and optimizer.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for chatty in ("tensorflow", "tf2onnx"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    # SIGTERM (what timeout, systemd, docker and batch schedulers send) ends a command as Ctrl-C does,
    # with its message and its clean-up (a temporary file removed), instead of silently; serve's uvicorn
    # takes SIGTERM itself, to drain its requests, and the process then ends by the signal. As a
    # container's process 1 (no --init), where the kernel drops a signal nobody handles, serve takes
    # it too until uvicorn does: a stop while the model loads is not lost, and one that drained ends
    # with 143, not 0. SIGHUP (a terminal closed, an ssh session dropped) ends the other commands as
    # SIGTERM does, with 129 (cli/signals.py); serve takes it itself.
    main_thread = threading.current_thread() is threading.main_thread()
    terminable = main_thread and (args.command != "serve" or os.getpid() == 1)
    before = signal.signal(signal.SIGTERM, terminate) if terminable else None
    SIGNALLED.clear()
    try:
        with contextlib.nullcontext() if args.command == "serve" else hangup_handled():
            code = _run(args)
        code = 143 if code == 0 and terminable and args.command == "serve" and SIGNALLED else code
    finally:
        if terminable:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if before is None else before)
        if (note := replaced_note()) is not None:
            say(f"nextword {args.command}: note: {note}")
            REPLACED.clear()
    return code


def _run(args: argparse.Namespace) -> int:
    """Run the chosen command; every expected failure is one line on stderr (messages may quote a
    file, so they go through safe())."""
    try:
        with cli_messages(args.command):  # library code names options as the API does: said as flags
            code = args.handler(args) or 0
            _flush_output()  # a full disk or a closed pipe fails the command, not the interpreter's exit
            return code
    except MissingExtraError as exc:
        say(f"nextword {args.command}: {safe(exc)}")
        return 2
    except ValueError as exc:  # bad input: config, corpus, model file (ModelFileError is a ValueError)
        say(f"nextword {args.command}: error: {safe(exc)}")
        return 2
    except BrokenPipeError:  # the reader went away (`nextword ... | head`): stop quietly, as cat does
        _drop_output()
        return 141  # 128 + SIGPIPE, what a shell reports for a command ended by a closed pipe
    except OSError as exc:  # a missing file, a folder where a file belongs, a read-only or full disk
        with contextlib.suppress(OSError):
            _flush_output()  # what was printed before, unless standard output is what failed
        message = _os_error(exc, args.command in PRINTS_RESULT)
        if args.command == "train" and exc.errno in OUT_OF_ROOM:
            message += after_interrupt(args)  # the run stopped: how to go on with it once there is room
        say(f"nextword {args.command}: error: {safe(message)}")
        return 2
    except RuntimeError as exc:  # a failed check, such as export parity
        say(f"nextword {args.command}: failed: {safe(exc)}")
        return 1
    except MemoryError:  # a process memory limit (ulimit -v, a container's) or a machine out of it
        lower = ", or lower --batch-size, --seq-len or the vocabulary" if args.command == "train" else ""
        say(f"nextword {args.command}: failed: {OUT_OF_MEMORY}{lower}{after_interrupt(args)}")
        return 1
    except KeyboardInterrupt as exc:  # Ctrl-C: one line, not a traceback from deep inside TensorFlow
        ended, status = how_ended(exc)  # status: 128 + the signal, as a shell reports it
        say(f"nextword {args.command}: {ended}{after_interrupt(args, exc)}")
        return status


def _flush_output() -> None:
    """Write out what the command printed while its failure can still be reported: left to the
    interpreter's exit, a full disk was an "Exception ignored" (status 120), or, for a short output,
    nothing at all (status 0). Output that cannot be written is dropped, so exit does not try again."""
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except OSError:
        _drop_output()
        raise


def _printed() -> int:
    """The status of printing help or a version: 0 once it reached standard output; 141 for a reader
    that left (``| head -1``), quietly; else (a full disk) 2, and one line says so: left to the
    interpreter's exit, it was an "Exception ignored" and status 120."""
    try:
        _flush_output()
    except OSError as exc:
        return _unprinted(exc)
    return 0


def _unprinted(exc: OSError) -> int:
    """The status of a help or a version that could not be written: 141, quietly, for a reader that
    left; else 2, with one line that says why."""
    with contextlib.suppress(OSError):
        _drop_output()  # what is left in the buffer would fail again at exit
    if isinstance(exc, BrokenPipeError):
        return 141
    print(f"nextword: error: {safe(_os_error(exc, True))}", file=sys.stderr)
    return 2


def _drop_output() -> None:
    """Point standard output at /dev/null, so that the interpreter's final flush does not fail again."""
    drop_stream(sys.stdout)


def _command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the (sub)command ``args`` ran: ``nextword corpus patentsview``'s, say."""
    while True:
        commands = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        chosen = getattr(args, commands.dest, None) if commands else None
        if commands is None or chosen not in commands.choices:
            return parser
        parser = commands.choices[chosen]


def _intermixed(
    parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str], unknown: list[str]
) -> tuple[argparse.Namespace, list[str]]:
    """``args`` parsed again with options and positionals in any order (``nextword score MODEL --json
    TEXT``): argparse takes a command's positionals in one run, so a positional after an option was
    left over (``unknown``, returned as it is where the command is not parsed again). The top level's
    own options come before the command's name."""
    # generate: `--stop . "each neuron"` meant two stop strings, not a second prompt. corpus: a command
    # of commands (`nextword corpus SOURCE ...`), parsed as it is.
    if args.command in ("generate", "corpus"):
        return args, unknown
    command = _command_parser(parser, args)
    at = argv.index(args.command)
    reparsed = argparse.Namespace(**{k: v for k, v in vars(args).items() if k in ("quiet", "command")})
    return command.parse_known_intermixed_args(argv[at + 1 :], namespace=reparsed)


def _os_error(exc: OSError, prints_result: bool = False) -> str:
    """``out.onnx: No space left on device; free some space or choose another place`` rather than
    ``[Errno 28] No space left on device``: the file, the problem and what to do. An error without a
    file in a command that only prints (``generate``, ``info``...) was standard output's."""
    reason = exc.strerror or str(exc)
    if exc.filename is not None:
        where = str(exc.filename) + (f" -> {exc.filename2}" if exc.filename2 is not None else "")
    elif prints_result and exc.errno in (*OUT_OF_ROOM, errno.EIO):
        return f"cannot write the result to standard output: {reason}; redirect it where there is room"
    else:
        where = ""
    advice = None if getattr(exc, "advised", False) else os_advice(exc.errno)  # an address's own advice
    return (f"{where}: {reason}" if where else reason) + (f"; {advice}" if advice else "")


def _generate(args: argparse.Namespace) -> int:
    args.model, args.prompts = model_and_prompts(args.model, args.prompts, "generate", args.file)
    model = cached_model(args.model, getattr(args, "cache", None), args.device, args.size_limits)
    config = config_from_args(model.info.generation, vars(args), origin=FILE_DEFAULTS)
    if args.stream:
        if len(args.prompts) != 1:
            raise ValueError("--stream takes one prompt")
        if args.json:
            raise ValueError("--stream prints the text as it comes, --json one list at the end: choose one")
        if config.num_return_sequences != 1 or config.num_beams != 1:
            beams = ("num_return_sequences", "num_beams")  # a file's own, perhaps: say so (as flags)
            note = defaults_note(model.info.generation, beams, vars(args), FILE_DEFAULTS)
            raise ValueError(
                "--stream prints one text: use --num-return-sequences 1 and --num-beams 1"
                + (f" ({flag_names(note, GenerationConfig)})" if note else "")
            )
        pieces = model.stream(args.prompts[0], config)  # checks the options before the prompt is printed
        print(safe(args.prompts[0], lines=True), end="", flush=True)
        wrote = False
        try:
            for piece in pieces:
                wrote = wrote or bool(piece)
                print(safe(piece, lines=True), end="", flush=True)
        finally:  # Ctrl-C too: the streamed line ends before "interrupted" is printed
            print(flush=True)
        _warn_if_empty(0 if wrote else 1, 1, config)
        return 0
    per_prompt = config.num_return_sequences
    if per_prompt > 1 and config.greedy and config.num_beams == 1:
        logger.warning(
            "temperature 0 picks the most likely word every time: the %d texts of each prompt will be the "
            "same; sample (--temperature above 0) or search (--num-beams %d) for different ones",
            per_prompt,
            per_prompt,
        )
    if "length_penalty" in vars(args) and config.num_beams == 1:
        logger.warning(
            "--length-penalty ranks beam search's texts; it does nothing without --num-beams above 1"
        )
    texts = model.generate(args.prompts, config)
    _warn_if_empty(sum(not text for text in texts), len(texts), config)
    results = [
        {"prompt": args.prompts[i // per_prompt], "text": text, "full": args.prompts[i // per_prompt] + text}
        for i, text in enumerate(texts)
    ]
    if args.json:
        print(json_text(results))
    else:
        print("\n\n".join(safe(r["full"], lines=True) for r in results))
    return 0


def _warn_if_empty(empty: int, total: int, config: GenerationConfig) -> None:
    """Say why a text came back empty (not a failure, but it looks like one): the model ended the
    document before its first word, which a model trained briefly does after an empty prompt."""
    if empty and config.min_words == 0 and config.max_words > 0 and not config.stop:
        logger.warning(
            "%s empty: the model ended the document before writing a word; --min-words 1 makes it write "
            "at least one",
            "the text is" if total == 1 else f"{empty} of the {total} texts {'is' if empty == 1 else 'are'}",
        )


def _suggest(args: argparse.Namespace) -> int:
    args.model, (args.prompt,) = model_and_prompts(args.model, args.prompt, "suggest", args.file)
    model = cached_model(args.model, args.cache, args.device, args.size_limits)
    if not 1 <= args.k <= model.vocab_size:
        raise ValueError(f"-k must be in 1..{model.vocab_size} (the model's vocabulary), got {args.k}")
    suggestions = model.next_words(args.prompt, k=args.k, cache=args.cache)
    if args.json:
        print(json_text([{"word": w, "probability": p} for w, p in suggestions]))
    else:
        for word, probability in suggestions:
            print(f"{safe(word)}\t{probability:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
