"""Pretrained word vectors in GloVe's text format: ``word v1 v2 ... vD`` per line."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from nextword.runtime.tokenizer import SPECIAL_TOKENS, Tokenizer

__all__ = ["EmbeddingsError", "load_glove"]

logger = logging.getLogger(__name__)


class EmbeddingsError(ValueError):
    """The word-vector file cannot be used; the message names the file, the line and the fix."""


def load_glove(path: str | Path, tokenizer: Tokenizer, dim: int, seed: int = 0) -> tuple[np.ndarray, int]:
    """Build an embedding matrix (vocab, dim) for ``tokenizer`` from a GloVe-format file.

    Rows of words found in the file take their vector; the others (the special tokens included) are
    drawn at random with the spread of the found vectors. Returns the matrix and how many vocabulary
    words the file lacked. Raises :class:`EmbeddingsError` if the file's vectors are not ``dim`` wide
    or it covers no vocabulary word. Only vocabulary words are kept in memory.
    """
    path = Path(path)
    if not path.is_file():
        raise EmbeddingsError(f"embeddings file {path} does not exist")
    vocab = {token: i for i, token in enumerate(tokenizer.tokens) if token not in SPECIAL_TOKENS}
    matrix = np.zeros((len(tokenizer), dim), dtype=np.float32)
    found = np.zeros(len(tokenizer), dtype=bool)
    with path.open(encoding="utf-8", errors="replace") as f:
        for line_no, line in enumerate(f, 1):
            parts = line.rstrip().split(" ")
            if len(parts) < 2:
                continue
            if len(parts) - 1 != dim:
                if line_no == 1 and len(parts) == 2:  # word2vec-style header "count dim"
                    continue
                raise EmbeddingsError(
                    f"{path}, line {line_no}: vectors have {len(parts) - 1} dimensions but the model's "
                    f"embedding has {dim}; pass --embedding-dim {len(parts) - 1}"
                )
            index = vocab.get(parts[0])
            if index is None or found[index]:
                continue
            try:
                matrix[index] = np.asarray(parts[1:], dtype=np.float32)
            except ValueError:
                raise EmbeddingsError(
                    f"{path}, line {line_no}: the vector holds a value that is not a number"
                ) from None
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
