"""argparse options built from config dataclasses, so the CLI and the API share one list of options.

Each dataclass field becomes ``--field-name`` (or ``metadata["flag"]``), with ``metadata["help"]`` as
its help. Nested dataclass fields are flattened. Defaults are *not* put into the namespace: only the
options the user typed appear there, and :func:`config_from_args` applies them onto a base config, so a
resumed run can tell an explicit ``--epochs`` from the default.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import difflib
import functools
import logging
import re
import types
import typing
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from nextword.corpus import CorpusConfig
from nextword.corpus.patentsview import PatentsViewConfig
from nextword.export import ExportConfig
from nextword.runtime.terminal import utf8_text
from nextword.train import TrainConfig
from nextword.train.prechecks import RESUME_CHANGES

from .display import shown_command

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = [
    "COMMAND_CONFIGS",
    "RESUMABLE_OPTIONS",
    "add_config_arguments",
    "check_train_options",
    "cli_messages",
    "cli_terms",
    "config_flags",
    "config_from_args",
    "flag_names",
]

C = TypeVar("C", bound="DataclassInstance")

RESUMABLE_OPTIONS = set(RESUME_CHANGES)  # settings that `nextword train --resume` may change


def add_config_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    skip: tuple[str, ...] = (),
    prefix: str = "",
    defaults_from: str = "",
) -> None:
    """Add one option per field of dataclass ``cls`` (recursively) to ``parser``. ``defaults_from``
    names where the command takes its defaults before ``cls``'s own (``"the model file's"``): the help
    then says so."""
    hints = typing.get_type_hints(cls)
    defaults = cls()
    for field in dataclasses.fields(cls):
        dest = prefix + field.name
        if field.name in skip or dest in skip:
            continue
        hint = hints[field.name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):  # a hint is a class, not an instance
            group = field.metadata.get("group")
            target = parser.add_argument_group(group) if group else parser
            add_config_arguments(target, hint, skip=skip, prefix=dest + ".", defaults_from=defaults_from)
            continue
        default = getattr(defaults, field.name)
        kwargs: dict[str, Any] = {"dest": dest, "default": argparse.SUPPRESS}
        help_text = field.metadata.get("help", "")
        base = _base_type(hint)
        if base is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(base) in (tuple, list):
            (kwargs["type"],) = {a for a in typing.get_args(base) if a is not Ellipsis}
            if field.metadata.get("positional"):
                kwargs["nargs"] = "*"
            else:  # one value a flag, repeated for more: a list flag would take the prompts after it too
                kwargs["action"] = "append"
                help_text += "; repeat the flag for more"
        else:
            kwargs["type"] = base
        if "choices" in field.metadata:
            kwargs["choices"] = field.metadata["choices"]
        shown = ("on" if default else "off") if base is bool else field.metadata.get("unset", default)
        if default not in (None, (), "") or base is bool or "unset" in field.metadata:
            help_text += (
                f" (default: {defaults_from}, else {shown})" if defaults_from else f" (default: {shown})"
            )
        elif defaults_from and default == ():  # a file's stop strings; nothing where the default is None
            help_text += f" (default: {defaults_from})"
        kwargs["help"] = help_text
        if field.metadata.get("positional"):
            del kwargs["dest"]
            parser.add_argument(dest, metavar=field.metadata.get("metavar", field.name.upper()), **kwargs)
            continue
        flag = field.metadata.get("flag", "--" + field.name.replace("_", "-"))
        if base is not bool:
            kwargs["metavar"] = field.metadata.get("metavar", field.name.upper())
        if defaults_from and "clear" in field.metadata:  # a list the defaults fill: --no-FLAG empties it
            kwargs["action"] = _AppendNonEmpty
            parser.add_argument(flag, **kwargs)
            clear = "--no-" + flag[2:]
            parser.add_argument(
                clear,
                dest=dest,
                action=_Clear,
                default=argparse.SUPPRESS,
                help=f"{field.metadata['clear']}, not {defaults_from} ({flag} after it adds one)",
            )
            continue
        parser.add_argument(flag, **kwargs)


class _Clear(argparse.Action):
    """``--no-stop``: the option's list is empty, whatever the defaults hold; a later ``--stop`` adds."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: Any = None
    ) -> None:
        setattr(namespace, self.dest, [])


class _AppendNonEmpty(argparse._AppendAction):
    """``--stop S``, repeated for more. ``--stop ''`` looks like "no stop strings" but would be one empty
    string, which the API refuses (``stop=""``): it is refused here, naming the flag that gives none."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option: Any = None
    ) -> None:
        if values == "":
            clear = "--no-" + self.option_strings[0][2:]
            raise argparse.ArgumentError(self, f"an empty value is not allowed; {clear} gives none")
        super().__call__(parser, namespace, utf8_text(values), option)  # text, as typed (positionals.py)


def config_flags(cls: type, prefix: str = "") -> dict[str, str]:
    """``{dotted field path: command-line flag}`` for every field of dataclass ``cls``, e.g.
    ``{"model.lstm_units": "--lstm-units", "corpus.paths": "CORPUS", ...}``."""
    hints = typing.get_type_hints(cls)
    flags: dict[str, str] = {}
    for field in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[field.name]):
            flags |= config_flags(hints[field.name], prefix + field.name + ".")
        elif field.metadata.get("positional"):
            flags[prefix + field.name] = field.metadata.get("metavar", field.name.upper())
        else:
            flags[prefix + field.name] = field.metadata.get("flag", "--" + field.name.replace("_", "-"))
    return flags


def config_from_args(base: C, options: dict[str, Any], prefix: str = "", *, origin: str | None = None) -> C:
    """``base`` with every typed option of ``options`` applied; dataclass validation runs again.

    A refusal names the options by their flags (``--top-k must be in ...``, ``set --num-beams=1``),
    not by the API's field names, which the user of the command line never typed. ``origin``: whose
    defaults ``base`` holds, for a config that resolves options against them (``GenerationConfig``: a
    refusal that involves a value of the model file's says so, ``(--num-beams=4 is this model file's
    decoding default)``)."""
    try:
        return _apply(base, options, prefix, origin)
    except ValueError as exc:
        if prefix:
            raise
        raise ValueError(flag_names(str(exc), type(base))) from None


def flag_names(message: str, cls: type, *, leading: bool = True) -> str:
    """``message`` with the field names of dataclass ``cls`` that it uses as option names written as
    their flags: every ``name=value`` (``top_k=5`` as ``--top-k=5``, ``overwrite=True`` as
    ``--overwrite``, ``tune_cache=False`` as ``--no-tune-cache``, ``out='m.onnx'`` as ``--out m.onnx``),
    every name in backticks (`` `epochs` `` as ``--epochs``) and the name the message starts with: any
    such name with ``leading``, else only one followed by a colon (``init_from: ...``, the library's
    label of the setting at fault). Prose that merely holds a field name stays; a name two flags share
    stays."""
    by_name: dict[str, set[str]] = {}
    for path, flag in config_flags(cls).items():
        if flag.startswith("--"):
            by_name.setdefault(path.rsplit(".", 1)[-1], set()).add(flag)
    for name, flags in by_name.items():
        if len(flags) == 1:
            (flag,) = flags
            start = rf"(?:(?<=[\s(,`])|^){re.escape(name)}"
            message = re.sub(start + r"=True\b", flag, message)
            message = re.sub(start + r"=False\b", "--no-" + flag[2:], message)
            message = re.sub(start + rf"=({_STRING})", functools.partial(_flag_value, flag), message)
            first = rf"|^{re.escape(name)}(?= )" if leading else rf"|^{re.escape(name)}(?=: )"
            message = re.sub(rf"`{re.escape(name)}`|{start}(?==){first}", flag, message)
    return message


# The configs whose fields a command's options are, the first with a name winning: library code names
# options as the Python API does (overwrite=True), and these commands say them as their flags.
COMMAND_CONFIGS: dict[str, tuple[type, ...]] = {
    "train": (TrainConfig,),
    "export": (ExportConfig, TrainConfig),
    "evaluate": (CorpusConfig,),
    "corpus": (PatentsViewConfig,),
}
_STRING = r"'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\""
_ARGUMENTS = rf"((?:{_STRING}|[^()'\"\n])*)"
# API calls a message may name, and the command that does the same: the first positional argument
# follows the command, the keywords become flags of its config.
_CALLS: tuple[tuple[re.Pattern[str], list[str], type], ...] = (
    (re.compile(rf"nextword\.train\.resume\({_ARGUMENTS}\)"), ["nextword", "train", "--resume"], TrainConfig),
    (
        re.compile(rf"nextword\.export\.export\(ExportConfig\({_ARGUMENTS}\)\)"),
        ["nextword", "export"],
        ExportConfig,
    ),
    (
        re.compile(rf"nextword\.corpus\.patentsview\.collect\(PatentsViewConfig\({_ARGUMENTS}\)\)"),
        ["nextword", "corpus", "patentsview"],
        PatentsViewConfig,
    ),
)


def cli_terms(message: str, classes: tuple[type, ...]) -> str:
    """``message``, written by library code in the Python API's terms, as a user of the command line
    reads it: ``nextword.train.resume('RUN', epochs=9)`` as ``nextword train --resume RUN --epochs 9``,
    ``nextword.export.export(ExportConfig('RUN', out='m.onnx'))`` as ``nextword export RUN --out
    m.onnx``, and the options of ``classes`` as :func:`flag_names` writes them (not the name a message
    starts with: a message from deep inside may start with a word that is also an option's name)."""
    for pattern, words, cls in _CALLS:
        message = pattern.sub(functools.partial(_command_line, words=words, cls=cls), message)
    for cls in classes:
        message = flag_names(message, cls, leading=False)
    return message


@contextlib.contextmanager
def cli_messages(command: str) -> Iterator[None]:
    """While ``command`` runs, its log lines and the message of the exception it ends with say options
    and calls in the command line's terms (:func:`cli_terms`)."""
    classes = COMMAND_CONFIGS.get(command)
    if classes is None:
        yield
        return
    rewrite = _LogTerms(classes)
    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(rewrite)
    try:
        yield
    except Exception as exc:
        if isinstance(exc, OSError) and exc.strerror:
            exc.strerror = cli_terms(exc.strerror, classes)
        elif len(exc.args) == 1 and isinstance(exc.args[0], str):
            exc.args = (cli_terms(exc.args[0], classes),)
        raise
    finally:
        for handler in handlers:
            handler.removeFilter(rewrite)


class _LogTerms(logging.Filter):
    """Rewrites each record's message with :func:`cli_terms`; lets every record through."""

    def __init__(self, classes: tuple[type, ...]) -> None:
        super().__init__()
        self.classes = classes

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        said = cli_terms(message, self.classes)
        if said != message:
            record.msg, record.args = said, None
        return True


def _flag_value(flag: str, match: re.Match[str]) -> str:
    """``--out m.onnx`` for ``out='m.onnx'``: the flag, then the string (group 1) as a shell word."""
    try:
        value = str(ast.literal_eval(match[1]))
    except (SyntaxError, ValueError):
        value = match[1]
    return shown_command([flag, value])


def _command_line(match: re.Match[str], words: list[str], cls: type) -> str:
    """The command line for the API call ``match`` found (its arguments in group 1); the call as it
    is where its arguments are not plain values."""
    try:
        call = ast.parse(f"f({match[1]})", mode="eval").body
        assert isinstance(call, ast.Call)
        positional = [str(ast.literal_eval(a)) for a in call.args]
        options = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    except (SyntaxError, ValueError, AssertionError):
        return match[0]
    flags = {path.rsplit(".", 1)[-1]: flag for path, flag in config_flags(cls).items()}
    line = [*words, *positional]
    for name, value in options.items():
        flag = flags.get(str(name), "--" + str(name).replace("_", "-"))
        if isinstance(value, bool):
            line.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, (tuple, list)):  # a flag given once for each value
            line += [part for item in value for part in (flag, str(item))]
        else:
            line += [flag, str(value)]
    return shown_command(line)


def _apply(base: C, options: dict[str, Any], prefix: str, origin: str | None = None) -> C:
    changes: dict[str, Any] = {}
    for field in dataclasses.fields(base):
        key = prefix + field.name
        value = getattr(base, field.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):  # a nested config
            changes[field.name] = _apply(value, options, key + ".")
        elif key in options:
            new = options[key]
            changes[field.name] = tuple(new) if isinstance(new, list) else new
    # a config that resolves options against its defaults (GenerationConfig: --max-words under a file's
    # min_words, --num-beams over a file's top_k) does so here too
    resolve = getattr(type(base), "from_options", None)
    if not callable(resolve):
        return dataclasses.replace(base, **changes)
    return resolve(base, **changes) if origin is None else resolve(base, origin=origin, **changes)


def _base_type(hint: Any) -> Any:
    """``int`` for ``int | None``; the hint itself otherwise."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


# argparse reads only "-1" and "-.5" as negative numbers, anything else that starts with "-" as an
# option: `--length-penalty -1e-1` said "expected one argument", and `--temperature -inf` never reached
# its range check.
_NEGATIVE_NUMBER = re.compile(r"^-(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?$|^-(?:inf|infinity|nan)$", re.IGNORECASE)


def negative_numbers_are_values(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``parser``, and its commands' parsers, taking ``-1e-1``, ``-2.5E3`` and ``-inf`` as values (no
    option of nextword's looks like one)."""
    parser._negative_number_matcher = _NEGATIVE_NUMBER  # argparse's own, widened
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in set(action.choices.values()):
                negative_numbers_are_values(command)
    return parser


# What other tools call nextword's options (OpenAI's API, Hugging Face's generate()): the flag meant
_OTHER_NAMES = {
    "max-tokens": ("max-words",),
    "max-new-tokens": ("max-words",),
    "max-length": ("max-words",),
    "min-tokens": ("min-words",),
    "min-new-tokens": ("min-words",),
    "n": ("num-return-sequences",),
}


def refuse_unknown(command: argparse.ArgumentParser, name: str, unknown: Sequence[str]) -> NoReturn:
    """Exit with status 2 (argparse's ``error``) about the arguments ``command``, the parser of command
    ``name``, did not take, and what to do: the option meant, for a mistyped one (``--temprature``);
    where the options are listed, for an unknown one; for generate, that a word after an option's
    values was taken as a second prompt; for score, that a text of several words goes in quotes."""
    flags = [arg.split("=", 1)[0] for arg in unknown if arg.startswith("-") and arg != "-"]
    hint = {
        "generate": " (the prompts go before the options)",
        "score": ' (the text to score is one argument: quote it, nextword score MODEL.onnx "the whole text")',
    }.get(name, "")
    if flags:
        wrong = flags[0].lstrip("-")
        known = {flag.lstrip("-"): flag for action in command._actions for flag in action.option_strings}
        close = [known[other] for other in _OTHER_NAMES.get(wrong.replace("_", "-"), ()) if other in known]
        close += [flag for bare, flag in known.items() if len(wrong) > 2 and wrong in bare]
        close += [known[bare] for bare in difflib.get_close_matches(wrong, list(known), n=1, cutoff=0.75)]
        hint = f" (did you mean {close[0]}?)" if close else f" ({command.prog} --help lists the options)"
        if wrong in ("q", "quiet"):  # the top level's: `nextword -q generate ...`
            hint = f" (-q goes before the command: nextword -q {name} ...)"
    command.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")


def check_train_options(options: dict[str, Any], flags: dict[str, str], resumable: set[str] | None) -> None:
    """Refuse ``nextword train`` options (``options``: those typed, by setting name; ``flags``: their
    flags) that the run would not honour: with ``--resume`` (``resumable``: what it may change), any
    other setting; with ``--init-from``, the tokenizer and network settings, which the base run fixes."""

    def typed(key: str) -> str:  # the flag as given: --no-tie-embeddings for tie_embeddings=False
        return "--no-" + flags[key][2:] if options[key] is False else flags[key]

    if resumable is not None:
        refused = sorted(typed(k) for k in set(options) - resumable)
        if refused:
            raise ValueError(
                f"--resume continues a run with its stored settings; it cannot change {', '.join(refused)} "
                f"(it can change {', '.join(sorted(flags[k] for k in resumable))})"
            )
    elif options.get("init_from"):
        from nextword.train.base import ARCHITECTURE

        fixed = [k for k in options if k.startswith("tokenizer.") or k.removeprefix("model.") in ARCHITECTURE]
        if options.get("extend_vocabulary"):  # --max-vocab bounds the extended vocabulary
            fixed = [k for k in fixed if k != "tokenizer.max_vocab"]
        if fixed:
            grow = (
                ", or add --extend-vocabulary, which --max-vocab bounds"
                if "tokenizer.max_vocab" in fixed
                else ""
            )
            raise ValueError(
                "--init-from keeps the base's vocabulary and network: leave out "
                f"{', '.join(sorted(typed(k) for k in fixed))} (they come from the base run or model file)"
                f"{grow}"
            )
