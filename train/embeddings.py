"""Pretrained word vectors in GloVe's text format: ``word v1 v2 ... vD`` per line."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TextIO

import numpy as np

from nextword.corpus.sniffing import not_text
from nextword.runtime.tokenizer import SPECIAL_TOKENS, Tokenizer

__all__ = ["EmbeddingsError", "load_glove"]

logger = logging.getLogger(__name__)

FORMAT = "one word and its vector per line, `word v1 v2 ... vD`"
SNIFF_BYTES = 8192  # the start of the file read to tell text from binary data
LOOKAHEAD_LINES = 1000  # lines read past one of another width, to tell a ragged file from another width
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_CONTROL_BYTES = frozenset(range(32)) - frozenset(b"\t\n\v\f\r")  # never in a text file


class EmbeddingsError(ValueError):
    """The word-vector file cannot be used; the message names the file, the line and the fix."""


def load_glove(path: str | Path, tokenizer: Tokenizer, dim: int, seed: int = 0) -> tuple[np.ndarray, int]:
    """Build an embedding matrix (vocab, dim) for ``tokenizer`` from a GloVe-format file.

    Rows of words found in the file take their vector; the others (the special tokens included) are
    drawn at random with the spread of the found vectors. Returns the matrix and how many vocabulary
    words the file lacked. Raises :class:`EmbeddingsError`, naming the file (and the line), if it is
    not a text file (a model file, a compressed or binary word2vec file), if its lines disagree on the
    number of values (a damaged file), if its vectors are not ``dim`` wide, if a vector it gives a
    vocabulary word holds a value that is not a finite number (nan, inf, or beyond float32's range),
    or if it covers no vocabulary word. Only vocabulary words are kept in memory.
    """
    path = Path(path)
    if path.is_dir():
        raise EmbeddingsError(f"embeddings file {path} is a folder; give the vectors' text file in it")
    if not path.is_file():
        raise EmbeddingsError(f"embeddings file {path} does not exist")
    _check_text(path)
    vocab = {token: i for i, token in enumerate(tokenizer.tokens) if token not in SPECIAL_TOKENS}
    matrix = np.zeros((len(tokenizer), dim), dtype=np.float32)
    found = np.zeros(len(tokenizer), dtype=bool)
    first: tuple[int, int] | None = None  # (line number, values) of the first vector line
    with path.open(encoding="utf-8-sig", errors="replace") as f:  # a BOM is not part of the first word
        for line_no, line in enumerate(f, 1):
            parts = line.rstrip().split(" ")
            if len(parts) < 2:
                continue
            if line_no == 1 and len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
                continue  # word2vec-style header "count dim"
            values = len(parts) - 1
            if first is None:
                first = (line_no, values)
            elif values != first[1]:
                raise _ragged(path, first, line_no, values)
            if values != dim:  # the lines agree so far: a file of another width, unless later ones differ
                _check_widths_agree(f, path, first, line_no)
                raise EmbeddingsError(
                    f"{path}, line {line_no}: vectors have {values} dimensions but the model's "
                    f"embedding has {dim}; pass embedding_dim={values}"
                )
            index = vocab.get(parts[0])
            if index is None or found[index]:
                continue
            matrix[index] = _vector(parts, path, line_no)
            found[index] = True
    n_found = int(found.sum())
    if n_found == 0:
        raise EmbeddingsError(f"{path} holds a vector for none of the {len(vocab)} vocabulary words")
    scale = float(matrix[found].std())
    rng = np.random.default_rng(seed)
    matrix[~found] = rng.normal(0.0, scale, size=(int((~found).sum()), dim)).astype(np.float32)
    missing = len(vocab) - n_found
    logger.info(
        "embeddings %s: %d of %d vocabulary words found, %d initialized randomly",
        path,
        n_found,
        len(vocab),
        missing,
    )
    return matrix, missing


def _check_text(path: Path) -> None:
    """Refuse a file whose start is not text: a model file, an archive, word2vec's binary format."""
    with path.open("rb") as f:
        head = f.read(SNIFF_BYTES)
    found = not_text(head)
    if found is not None:
        reason = f"it is {found[0]}: {found[1]}"
    elif any(byte in _CONTROL_BYTES for byte in head):
        reason = (
            "it holds binary data, such as a model file or word2vec's binary format; convert word2vec "
            "vectors to text first"
        )
    else:
        return
    raise EmbeddingsError(f"{path} is not a text word-vector file ({reason}); `embeddings` takes {FORMAT}")


def _ragged(path: Path, first: tuple[int, int], line_no: int, values: int) -> EmbeddingsError:
    return EmbeddingsError(
        f"{path}: line {first[0]} has {first[1]} values, line {line_no} has {values}: the lines disagree, "
        f"so the file is damaged or not a word-vector text file (`embeddings` takes {FORMAT}, every line "
        "with the same number of values)"
    )


def _check_widths_agree(f: TextIO, path: Path, first: tuple[int, int], line_no: int) -> None:
    """Read up to :data:`LOOKAHEAD_LINES` more lines of ``f``; raise the ragged-file error if one has
    another number of values than the first vector line."""
    for offset, line in enumerate(f, 1):
        if offset > LOOKAHEAD_LINES:
            return
        parts = line.rstrip().split(" ")
        if len(parts) >= 2 and len(parts) - 1 != first[1]:
            raise _ragged(path, first, line_no + offset, len(parts) - 1)


def _vector(parts: list[str], path: Path, line_no: int) -> np.ndarray:
    """The values of one line as float32, refusing text that is not a number and non-finite values."""
    try:
        vector = np.asarray(parts[1:], dtype=np.float64)
    except ValueError:
        raise EmbeddingsError(
            f"{path}, line {line_no}: the vector holds a value that is not a number"
        ) from None
    bad = np.flatnonzero(~(np.abs(vector) <= _FLOAT32_MAX))  # nan, inf, and what float32 cannot hold
    if len(bad):
        text = parts[1 + int(bad[0])]
        value = float(vector[bad[0]])
        shown = ("inf" if value > 0 else "-inf") if math.isfinite(value) else str(value)  # as float32
        written = f" (written {text}: beyond float32's range of +-3.4e38)" if math.isfinite(value) else ""
        raise EmbeddingsError(
            f"{path}, line {line_no}: the vector of {parts[0]!r} holds {shown}{written}, not a finite "
            "number; fix or remove that line"
        )
    return vector.astype(np.float32)
