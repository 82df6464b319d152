"""A synthetic plain-text corpus of any size, for the benchmarks of the data path (streaming_memory).

Documents of 4-12 sentences of 6-24 words (one paragraph each, blank lines between), the words drawn from
a Zipf distribution (exponent 1.1) over made-up pronounceable words, about one in twelve followed by a
comma. Generated a million words at a time, so memory stays small whatever the size.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.results import write_text
from nextword.corpus.files import atomic_path

__all__ = ["corpus_for", "generate_corpus", "make_vocabulary"]

CHUNK_WORDS = 1_000_000  # words generated per numpy draw
SYLLABLES = [c + v for c in "bdfghklmnprstvz" for v in ("a", "e", "i", "o", "u", "ai", "ou")]


def make_vocabulary(size: int, seed: int = 0) -> list[str]:
    """``size`` distinct pronounceable made-up words of 1-4 syllables, shortest (most frequent) first."""
    rng = np.random.default_rng(seed)
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < size:
        n_syllables = 1 + min(3, len(words) // 200 + int(rng.integers(0, 2)))  # frequent words are short
        word = "".join(SYLLABLES[i] for i in rng.integers(0, len(SYLLABLES), n_syllables))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def generate_corpus(path: Path, words: int, vocab: int, seed: int = 0) -> dict[str, Any]:
    """Write a corpus of ``words`` words to ``path`` (plain text); returns its facts."""
    rng = np.random.default_rng(seed)
    vocabulary = np.array(make_vocabulary(vocab, seed), dtype=object)
    ranks = np.arange(1, vocab + 1, dtype=np.float64)
    probabilities = ranks**-1.1
    probabilities /= probabilities.sum()
    with_comma = np.array([w + "," for w in vocabulary], dtype=object)
    with_stop = np.array([w + "." for w in vocabulary], dtype=object)
    documents = written = sentences_left = 0
    started = time.perf_counter()
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as f:  # a stop leaves no part behind
        while written < words:
            n = min(CHUNK_WORDS, words - written)
            ids = rng.choice(vocab, size=n, p=probabilities)
            # Sentences of 6-24 words (the chunk's last one ends at the chunk's end); each document
            # is 4-12 sentences and may go on in the next chunk.
            ends = np.cumsum(rng.integers(6, 25, size=n // 6 + 2))
            ends = np.append(ends[ends < n], n)
            tokens = np.where(rng.random(n) < 1 / 12, with_comma[ids], vocabulary[ids])
            tokens[ends - 1] = with_stop[ids[ends - 1]]
            start = 0
            pieces: list[str] = []
            for end in ends.tolist():
                if sentences_left == 0:
                    sentences_left = int(rng.integers(4, 13))
                sentences_left -= 1
                documents += sentences_left == 0
                pieces.append(" ".join(tokens[start:end].tolist()) + ("\n\n" if sentences_left == 0 else " "))
                start = end
            f.write("".join(pieces))
            written += n
    documents += sentences_left > 0  # the last document, unfinished: it ends with the file
    seconds = time.perf_counter() - started
    return {"words": words, "documents": documents, "bytes": path.stat().st_size, "seconds": seconds}


def corpus_for(workdir: Path, words: int, vocab: int) -> tuple[Path, dict[str, Any]]:
    """The corpus of ``words`` words in ``workdir``, generated unless a matching one is there."""
    path = workdir / f"corpus-{words}.txt"
    stamp = path.with_suffix(".json")
    wanted = {"words": words, "vocab": vocab, "generator": 1}
    if path.is_file() and stamp.is_file():
        facts = json.loads(stamp.read_text())
        if {k: facts.get(k) for k in wanted} == wanted:
            return path, facts
    print(f"generating {words:,} words into {path}", file=sys.stderr)
    facts = {**generate_corpus(path, words, vocab), **wanted}
    print(f"  {facts['seconds']:.0f} s, {facts['bytes'] / 1e6:.0f} MB", file=sys.stderr)
    write_text(stamp, json.dumps(facts, indent=2) + "\n")
    return path, facts
