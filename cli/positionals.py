"""Which positional arguments name a model file and which hold text, for the commands that take both
(``generate``, ``suggest``, ``score``): a model is given first, as ``evaluate`` and ``info`` take it."""

from __future__ import annotations

import logging
from pathlib import Path

from nextword.runtime.terminal import utf8_text
from nextword.train.files import RUN_MARKER

from .text_files import read_prompt_file

__all__ = ["PROMPT_FILE_HELP", "model_and_prompts", "names_model", "text_names_a_file", "typed_text"]

logger = logging.getLogger(__name__)

PROMPT_FILE_HELP = (
    "read the prompt from this UTF-8 file (-: from standard input) in place of PROMPT; a line break "
    "that ends it is dropped"
)
_ONNX_START = b"\x08"  # every ONNX file opens with field 1, ir_version, a varint


def names_model(argument: str) -> bool:
    """Whether a positional argument names a model file rather than holding text: an ONNX file, whatever
    its name (``nextword export --out mymodel`` writes one), or a name that ends in ``.onnx`` and has no
    space in it (``model.onnx`` misspelt is a model too, "saved to m.onnx" is text). A training run folder
    is refused with the way to make a model of it (it was continued as a prompt)."""
    try:
        path = Path(argument)
        if path.is_file():
            return argument.lower().endswith(".onnx") or _opens_as_onnx(path)
        run_folder = path.is_dir() and (path / RUN_MARKER).is_file()
    except (OSError, ValueError):  # no path at all: a NUL in it, or a name too long for a file
        return False
    if run_folder:
        raise ValueError(
            f"{argument} is a training run folder, not a model file: export it first, nextword export "
            f"{argument} --out MODEL.onnx"
        )
    return argument.lower().endswith(".onnx") and not any(c.isspace() for c in argument)


def _opens_as_onnx(path: Path) -> bool:
    try:
        with path.open("rb") as file:
            return file.read(1) == _ONNX_START and path.stat().st_size > 64
    except OSError:
        return False


def model_and_prompts(
    model_option: str | None, positionals: list[str], command: str, prompt_file: str | None = None
) -> tuple[str | None, list[str]]:
    """The model and the prompts of ``generate`` or ``suggest`` from ``[MODEL.onnx] PROMPT...``: a first
    positional that names a model file is the model, as for ``score``, ``evaluate`` and ``info`` (before,
    ``nextword generate model.onnx "a prompt"`` continued the file's name as a prompt of its own). Or
    ``[MODEL.onnx] --file F``: the one prompt is read from ``prompt_file`` (``-``: standard input)."""
    if positionals and names_model(positionals[0]):
        first = positionals[0]
        if model_option is not None:
            raise ValueError(f"{first} names a model file, and so does --model: give the model once")
        if len(positionals) == 1 and prompt_file is None:
            raise ValueError(
                f"{first} names a model file: give the prompt after it ('' for an empty one): nextword "
                f'{command} {first} "PROMPT"'
            )
        model_option, positionals = first, positionals[1:]
    misplaced = next((p for p in positionals if names_model(p)), None)
    if misplaced is not None:
        raise ValueError(
            f"{misplaced} names a model file: give it before the prompt, or as --model {misplaced}"
        )
    if prompt_file is not None:
        if positionals:
            raise ValueError(
                f"--file reads the prompt, and {positionals[0]!r} is one too: give one of them (a model "
                f"file may come first: nextword {command} MODEL.onnx --file {prompt_file})"
            )
        return model_option, [read_prompt_file(prompt_file)]
    if not positionals:
        raise ValueError(
            f"no prompt: nextword {command} [MODEL.onnx] PROMPT ('' for an empty one), or --file F"
        )
    if command == "suggest" and len(positionals) != 1:  # one text so far: an unquoted one was meant
        raise ValueError(f'suggest takes one prompt: quote it, nextword suggest "{" ".join(positionals)}"')
    if "-" in positionals:
        logger.warning("the prompt is the text '-' itself; --file - reads the prompt from standard input")
    return model_option, [typed_text(p) for p in positionals]


def typed_text(text: str) -> str:
    """A prompt or text given as an argument, as the text typed: UTF-8 that a locale which is not UTF-8
    read as undecodable bytes decoded (:func:`~nextword.runtime.terminal.utf8_text`), and, as ``--file``
    reads a file, Windows line breaks as line breaks and a last lone ``\r`` dropped (``"$(cat F)"``
    keeps a CRLF file's last ``\r``, which was printed as ``\x0d`` before the first new word; a
    ``\n`` typed at the end is kept, as the shell gave it)."""
    return utf8_text(text).replace("\r\n", "\n").removesuffix("\r")


def text_names_a_file(text: str) -> None:
    """Warn where the text to score is the name of a file, whose contents were most likely meant:
    ``nextword score MODEL notes.txt`` scores the word "notes.txt"; ``--file notes.txt`` reads it.
    So for ``-``, which names standard input only after ``--file``."""
    if text == "-":
        logger.warning("the text to score is '-' itself; --file - reads the text from standard input")
        return
    if "\n" in text or len(text) > 1024 or not text.strip():
        return
    try:
        if not Path(text).is_file():
            return
    except (OSError, ValueError):
        return
    logger.warning(
        "scoring the text %r itself, which names a file; to score what the file holds: --file %s", text, text
    )
