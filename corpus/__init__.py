"""nextword.corpus: reading corpus files, deduplicating and splitting them, encoding them to ids, and
collecting a corpus from PatentsView (:mod:`nextword.corpus.patentsview`).

Needs numpy and the runtime's tokenizer only, never TensorFlow: ``nextword corpus``, ``nextword
evaluate`` and the first passes of training work where the training stack is not installed.
"""

from __future__ import annotations

from .config import CORPUS_FORMATS, CorpusConfig
from .encode import STREAM_DTYPE, EncodedCorpus, build_vocabulary, encode_corpus, encode_stream
from .errors import CorpusError
from .readers import (
    check_options,
    count_documents,
    detect_format,
    load_documents,
    read_corpus,
    read_documents,
)
from .split import (
    DocumentSplit,
    rebuild_split,
    recorded_corpus,
    recorded_split,
    split_corpus,
    split_documents,
    validation_indices,
)

__all__ = [
    "CORPUS_FORMATS",
    "STREAM_DTYPE",
    "CorpusConfig",
    "CorpusError",
    "DocumentSplit",
    "EncodedCorpus",
    "build_vocabulary",
    "check_options",
    "count_documents",
    "detect_format",
    "encode_corpus",
    "encode_stream",
    "load_documents",
    "read_corpus",
    "read_documents",
    "rebuild_split",
    "recorded_corpus",
    "recorded_split",
    "split_corpus",
    "split_documents",
    "validation_indices",
]
